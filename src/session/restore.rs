//! A client session restored from a stored state, so a process that restarts
//! (the relay, from its spool) resumes its session at the server instead of
//! opening a new one: the server sees an ordinary resume, and its sequence
//! numbers drop what it already had, so nothing is delivered twice.
//!
//! The driver restores the session ([`Session::restore_client`], or
//! [`SessionTable::restore`](super::SessionTable::restore)), then queues the
//! messages it had not seen acknowledged, in their original order, before
//! anything new: they get the sequence numbers `next`, `next + 1`, ... they
//! had (or would have had). Until the first WELCOME, everything queued counts
//! as possibly written by the earlier process, so the server's
//! `last_received` may cover any of it (those are acknowledged, the rest
//! replayed); a claim beyond them ends the session [`SessionEnd::Lost`]. A
//! server that no longer has the session answers with another one:
//! [`SessionEnd::Expired`], and the driver falls back to a new session.
//!
//! What the server sent us (replies) is acknowledged only up to what the
//! driver stored ([`Session::set_ack_limit`]): a restored session claims
//! exactly that in its HELLO, which the server still holds.
//!
//! [`SessionEnd::Lost`]: super::SessionEnd::Lost
//! [`SessionEnd::Expired`]: super::SessionEnd::Expired

use super::{Session, SessionConfig};
use crate::fallible::AllocError;
use crate::time::Instant;
use crate::wire::TOKEN_LEN;

/// A client session's state as its driver stored it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredSession {
    /// The session's id at the server (not 0).
    pub id: u64,
    /// Its token.
    pub token: [u8; TOKEN_LEN],
    /// The sequence number of the first message the server had not
    /// acknowledged (the next to queue gets it).
    pub next: u64,
    /// The server's messages received in order (and stored by the driver).
    pub received: u64,
}

impl Session {
    /// A client session resuming `stored`: no link yet, nothing queued, ACKs
    /// limited to `stored.received` (raise it with [`Session::set_ack_limit`]).
    /// `next` below 1 is taken as 1.
    pub fn restore_client(
        cfg: SessionConfig,
        stored: StoredSession,
        now: Instant,
    ) -> Result<Self, AllocError> {
        let mut s = Session::try_new(cfg, 0, [0; TOKEN_LEN], true, now)?;
        s.restore(stored);
        Ok(s)
    }

    /// Turns this fresh client session into `stored` (no allocation).
    pub(crate) fn restore(&mut self, stored: StoredSession) {
        let next = stored.next.max(1);
        self.id = stored.id;
        self.token = stored.token;
        self.base = next;
        self.written = next - 1;
        self.max_written = next - 1;
        self.delivered = stored.received;
        self.ack_sent = stored.received;
        self.ack_limit = Some(stored.received);
        self.claimed.set(stored.received);
        self.ever_connected = true;
        self.restored = true;
    }

    /// Limits what this side acknowledges (ACKs and its greeting) to `limit`
    /// of the peer's messages (`None`: everything delivered): a driver that
    /// stores the session's state raises it as the state becomes durable.
    pub fn set_ack_limit(&mut self, limit: Option<u64>) {
        self.ack_limit = limit;
    }

    /// What the greeting says was received: what may be acknowledged, never
    /// less than an earlier claim (recorded: a client's greeting is built
    /// once per link, before the peer's).
    pub(super) fn greeting_claim(&self) -> u64 {
        let claim = self.ackable().max(self.claimed.get());
        if self.client {
            self.claimed.set(claim);
        }
        claim
    }

    /// The highest sequence number of the peer's this side may acknowledge.
    pub(super) fn ackable(&self) -> u64 {
        self.ack_limit
            .map_or(self.delivered, |l| l.min(self.delivered))
            .min(self.peer_written)
            .max(self.ack_sent)
    }

    /// The state to store for it: `None` until the server gave it an id.
    /// `next` is the first message not acknowledged by the server.
    pub fn stored(&self) -> Option<StoredSession> {
        (self.id != 0 && self.client).then_some(StoredSession {
            id: self.id,
            token: self.token,
            next: self.base,
            received: self.delivered,
        })
    }
}

impl<L: Copy + PartialEq, T> super::SessionTable<L, T> {
    /// Like [`open`](super::SessionTable::open), for a client session that
    /// resumes `stored` (see the module docs): queue its unacknowledged
    /// messages next, in order, then dial.
    pub fn restore(
        &mut self,
        cfg: SessionConfig,
        target: T,
        backoff: super::Backoff,
        stored: StoredSession,
        now: Instant,
    ) -> Result<Option<u32>, AllocError> {
        let Some(idx) = self.open(cfg, target, backoff, now)? else {
            return Ok(None);
        };
        if let Some(s) = self.session_mut(idx) {
            s.restore(stored);
        }
        Ok(Some(idx))
    }

    /// See [`Session::set_ack_limit`].
    pub fn set_ack_limit(&mut self, idx: u32, limit: Option<u64>) {
        if let Some(s) = self.session_mut(idx) {
            s.set_ack_limit(limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Received, Sent, SessionEnd, SessionEvent};
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn cfg() -> SessionConfig {
        SessionConfig {
            max_depth: 8,
            max_depth_disconnected: 8,
            max_bytes: 256,
            ack_every: 1,
            ..Default::default()
        }
    }

    /// Moves what `a` wants to send into `b` (DATA only up to `data_limit`
    /// of them); returns the sequence numbers `b` delivered.
    fn flow(a: &mut Session, b: &mut Session, data_limit: usize) -> Vec<u64> {
        let mut got = Vec::new();
        let mut data = 0;
        while let Some(sent) = a.poll_transmit().map(|tx| tx.sent()) {
            match sent {
                Sent::Ack(seq) => b.handle_ack(seq),
                Sent::Data(seq) | Sent::Skip(seq) => {
                    if data == data_limit {
                        break;
                    }
                    data += 1;
                    if b.handle_data(t(1), seq) == Received::Deliver {
                        got.push(seq);
                    }
                }
            }
            a.handle_transmitted(sent);
        }
        got
    }

    fn pair() -> (Session, Session) {
        let mut s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
        let mut c = Session::client(cfg(), t(0));
        s.handle_greeting(t(0), c.greeting());
        c.handle_greeting(t(0), s.greeting());
        (c, s)
    }

    #[test]
    fn a_restored_client_resumes_and_the_server_gets_each_message_once() {
        let (mut c, mut s) = pair();
        for m in [b"1", b"2", b"3", b"4", b"5"] {
            c.send(m).unwrap();
        }
        // 1..=2 acknowledged and stored; 3 and 4 reach the server; then the
        // client process dies (its ACK of 3 and 4 never arrives).
        assert_eq!(flow(&mut c, &mut s, 2), vec![1, 2]);
        flow(&mut s, &mut c, 0);
        let stored = c.stored().unwrap();
        assert_eq!((stored.id, stored.next), (7, 3));
        assert_eq!(flow(&mut c, &mut s, 2), vec![3, 4]);
        drop(c);
        s.handle_link_lost(t(2));

        let mut c = Session::restore_client(cfg(), stored, t(3)).unwrap();
        for m in [b"3", b"4", b"5"] {
            c.send(m).unwrap();
        }
        s.handle_greeting(t(3), c.greeting());
        assert_eq!(s.ended(), None);
        c.handle_greeting(t(3), s.greeting());
        assert_eq!(c.ended(), None);
        assert_eq!(
            c.poll_event(),
            Some(SessionEvent::Established {
                resumed: true,
                replaying: 1
            })
        );
        assert_eq!(c.unacked(), 1, "3 and 4 acknowledged by the WELCOME");
        assert_eq!(flow(&mut c, &mut s, 8), vec![5], "only 5 is new to it");
        assert_eq!(s.duplicates(), 0);
    }

    #[test]
    fn a_claim_beyond_what_was_restored_ends_the_session_lost() {
        let (mut c, mut s) = pair();
        for m in [b"1", b"2", b"3"] {
            c.send(m).unwrap();
        }
        let stored = c.stored().unwrap();
        assert_eq!(flow(&mut c, &mut s, 3), vec![1, 2, 3]);
        // Restored with only message 1 queued (the others were lost with the
        // store): the server's 3 cannot be made whole.
        let mut c = Session::restore_client(cfg(), stored, t(3)).unwrap();
        c.send(b"1").unwrap();
        s.handle_link_lost(t(3));
        c.handle_greeting(t(3), s.greeting());
        assert!(matches!(c.ended(), Some(SessionEnd::Lost { .. })));
    }

    #[test]
    fn a_server_that_lost_the_session_makes_it_expire() {
        let stored = StoredSession {
            id: 7,
            token: [9; TOKEN_LEN],
            next: 4,
            received: 0,
        };
        let mut c = Session::restore_client(cfg(), stored, t(0)).unwrap();
        c.send(b"4").unwrap();
        let s = Session::server(cfg(), 8, [1; TOKEN_LEN], t(0));
        c.handle_greeting(t(0), s.greeting());
        assert_eq!(c.ended(), Some(SessionEnd::Expired { undelivered: 1 }));
    }

    #[test]
    fn replies_are_acknowledged_only_up_to_the_limit() {
        let (mut c, mut s) = pair();
        c.set_ack_limit(Some(1));
        for m in [b"a", b"b", b"c"] {
            s.send(m).unwrap();
        }
        assert_eq!(flow(&mut s, &mut c, 8), vec![1, 2, 3]);
        c.flush_ack();
        flow(&mut c, &mut s, 8);
        assert_eq!(s.unacked(), 2, "only reply 1 acknowledged");
        assert_eq!(c.greeting().last_received, 1);
        c.set_ack_limit(Some(3));
        c.flush_ack();
        flow(&mut c, &mut s, 8);
        assert_eq!(s.unacked(), 0);
    }
}
