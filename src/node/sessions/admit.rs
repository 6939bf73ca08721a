//! Admission glue: the pure policy ([`crate::admission`]) applied to the
//! node's session table.

use std::net::IpAddr;

use super::SessionSlot;
use crate::admission::{self, Admission, Occupant};
use crate::error::CloseReason;
use crate::node::Node;
use crate::session::{Session, SessionConfig, SessionEnd};
use crate::time::Instant;

impl SessionSlot {
    /// What admission of a new session sees in this slot.
    fn occupant(&self) -> Occupant {
        match &self.session {
            _ if !self.used => Occupant::Free,
            Some(s) if self.redial.is_none() && s.ended().is_none() => Occupant::Server {
                peer: self.peer,
                waiting_since: s.disconnected_since(),
            },
            _ => Occupant::Other,
        }
    }
}

impl Node {
    /// A slot for a new server session from `from` (see [`crate::admission`]):
    /// free, or taken from the session disconnected longest, which ends
    /// `Evicted`. `Err` names why there is none.
    pub(super) fn admit_session(
        &mut self,
        cfg: SessionConfig,
        from: IpAddr,
        per_ip: Option<usize>,
        now: Instant,
    ) -> Result<u32, CloseReason> {
        let table = self.sessions.iter().map(SessionSlot::occupant);
        let idx = match admission::admit(table, from, per_ip) {
            Admission::Free(idx) => idx,
            Admission::Evict(idx) => {
                let undelivered = self.sessions[idx as usize]
                    .session
                    .as_ref()
                    .map_or(0, Session::unacked);
                log::info!(
                    "session table: evicting a session waiting for its client ({undelivered} undelivered)"
                );
                self.stats.sessions_evicted += 1;
                self.end_session(idx, SessionEnd::Evicted { undelivered });
                idx
            }
            Admission::Refuse(reason) => return Err(reason),
        };
        self.next_session_id += 1;
        let id = self.next_session_id;
        let token = self.random_token();
        if let Err(e) = self.start_session(idx, cfg, id, token, false, now) {
            // The table cannot hold it after all: refused, the node goes on.
            log::error!("new session from {from} refused: {e}");
            return Err(CloseReason::TooManyConnections);
        }
        self.sessions[idx as usize].peer = Some(from);
        Ok(idx)
    }
}
