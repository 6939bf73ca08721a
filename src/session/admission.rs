//! Admission of a new server session into the node's session table, pure.
//!
//! The table is fixed at `NodeConfig::max_sessions` slots, and a disconnected
//! session keeps its slot for the whole resume window (60 s by default). Left
//! at that, a flood of `connect, HELLO, close` from anyone would fill the table
//! and lock every new session out for a minute. The policy:
//!
//! 1. With `ListenConfig::max_sessions_per_ip`, an address that already holds
//!    that many sessions gets a new one only by replacing its own session that
//!    has been disconnected longest; with none disconnected, the link closes
//!    with `TooManySessionsFromPeer`.
//! 2. Otherwise a free slot is taken.
//! 3. In a full table, the new session replaces the session that has been
//!    disconnected longest, from any address. It ends with
//!    `SessionEnd::Evicted` and its undelivered count.
//! 4. With every session connected, the link closes with `TooManyConnections`.
//!
//! So a flood can only displace sessions whose clients are away (connected
//! sessions are never evicted), and with a per-address limit it only churns
//! its own. Client sessions of this node (`open_session`) are never evicted.

use std::net::IpAddr;

use crate::error::CloseReason;
use crate::time::Instant;

/// One slot of the session table, as admission sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Occupant {
    /// Free.
    Free,
    /// A server session. `waiting_since` is when its link was lost, while it
    /// waits for a resume (`None` while connected or ended).
    Server {
        /// Address of the link that last carried it.
        peer: Option<IpAddr>,
        /// Disconnected since, when it may be evicted.
        waiting_since: Option<Instant>,
    },
    /// Anything else: a client session, or an ended one not yet reported.
    Other,
}

/// Where a new session goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Into this free slot.
    Free(u32),
    /// Into this slot, whose session ends `Evicted` first.
    Evict(u32),
    /// Nowhere: close the link with this reason.
    Refuse(CloseReason),
}

/// Decides where a new session from `from` goes in `table` (slot `i` is the
/// `i`-th item), under an optional per-address limit. See the module docs.
pub(crate) fn admit(
    table: impl Iterator<Item = Occupant>,
    from: IpAddr,
    per_ip: Option<usize>,
) -> Admission {
    let mut free = None;
    let mut oldest: Option<(Instant, u32)> = None;
    let mut oldest_own: Option<(Instant, u32)> = None;
    let mut own = 0usize;
    for (i, o) in table.enumerate() {
        let Ok(i) = u32::try_from(i) else { break };
        match o {
            Occupant::Free => {
                free.get_or_insert(i);
            }
            Occupant::Server {
                peer,
                waiting_since,
            } => {
                let mine = peer == Some(from);
                own += usize::from(mine);
                if let Some(t) = waiting_since {
                    // Strictly older wins; ties go to the lower slot.
                    if oldest.is_none_or(|(o, _)| t < o) {
                        oldest = Some((t, i));
                    }
                    if mine && oldest_own.is_none_or(|(o, _)| t < o) {
                        oldest_own = Some((t, i));
                    }
                }
            }
            Occupant::Other => {}
        }
    }
    if per_ip.is_some_and(|n| own >= n) {
        return oldest_own.map_or(
            Admission::Refuse(CloseReason::TooManySessionsFromPeer),
            |(_, i)| Admission::Evict(i),
        );
    }
    match (free, oldest) {
        (Some(i), _) => Admission::Free(i),
        (None, Some((_, i))) => Admission::Evict(i),
        (None, None) => Admission::Refuse(CloseReason::TooManyConnections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn waiting(last: u8, since_ms: u64) -> Occupant {
        Occupant::Server {
            peer: Some(ip(last)),
            waiting_since: Some(Instant::from_millis(since_ms)),
        }
    }

    fn connected(last: u8) -> Occupant {
        Occupant::Server {
            peer: Some(ip(last)),
            waiting_since: None,
        }
    }

    #[test]
    fn a_free_slot_is_taken_first() {
        let t = [waiting(1, 5), Occupant::Free, Occupant::Free];
        assert_eq!(admit(t.into_iter(), ip(2), None), Admission::Free(1));
    }

    #[test]
    fn a_full_table_evicts_the_session_disconnected_longest() {
        let t = [waiting(1, 50), connected(1), waiting(2, 10), waiting(3, 10)];
        assert_eq!(admit(t.into_iter(), ip(9), None), Admission::Evict(2));
    }

    #[test]
    fn connected_client_and_ended_sessions_are_never_evicted() {
        let t = [connected(1), Occupant::Other, connected(2)];
        assert_eq!(
            admit(t.into_iter(), ip(9), None),
            Admission::Refuse(CloseReason::TooManyConnections)
        );
    }

    #[test]
    fn an_address_at_its_limit_replaces_only_its_own_oldest_waiting_session() {
        let t = [
            waiting(2, 1), // older, but another address's
            waiting(1, 30),
            waiting(1, 20),
            Occupant::Free,
        ];
        assert_eq!(admit(t.into_iter(), ip(1), Some(2)), Admission::Evict(2));
        // Under the limit: the free slot.
        assert_eq!(admit(t.into_iter(), ip(1), Some(3)), Admission::Free(3));
        // At the limit with all its sessions connected: refused by name.
        let t = [connected(1), connected(1), Occupant::Free];
        assert_eq!(
            admit(t.into_iter(), ip(1), Some(2)),
            Admission::Refuse(CloseReason::TooManySessionsFromPeer)
        );
        // Another address is not affected by it.
        assert_eq!(admit(t.into_iter(), ip(2), Some(2)), Admission::Free(2));
    }
}
