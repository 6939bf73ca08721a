//! A client session resumed from a stored state (see `session/restore.rs`):
//! the relay's spool keeps its upstream session, and a restarted relay
//! resumes it here instead of opening a new one.

use std::net::SocketAddr;

use super::{Node, SessionId, SetupError};
use crate::config::ConnectConfig;
use crate::session::StoredSession;

impl Node {
    /// Like [`Node::open_session`], resuming `stored` at `addr`: queue the
    /// messages it had not seen acknowledged next, in their original order
    /// (they get `stored.next`, `stored.next + 1`, ...), before the WELCOME
    /// is handled (the next [`Node::poll`]). A server that no longer has the
    /// session ends it `Expired`.
    pub fn resume_session(
        &mut self,
        addr: SocketAddr,
        cfg: &ConnectConfig,
        stored: StoredSession,
    ) -> Result<SessionId, SetupError> {
        let scfg = self.client_session_config(cfg)?;
        let now = self.tick();
        let idx = self
            .sessions
            .restore(scfg, (addr, cfg.clone()), cfg.backoff, stored, now)?
            .ok_or(SetupError::NoSlot)?;
        self.dial(idx, now);
        Ok(self.sessions.id(idx))
    }

    /// The state to store for client session `id` (`None` until the server
    /// gave it an identity).
    pub fn session_stored(&self, id: SessionId) -> Option<StoredSession> {
        let idx = self.sessions.idx(id)?;
        self.sessions.session(idx)?.stored()
    }

    /// Limits what session `id` acknowledges (ACKs and its greeting) to
    /// `limit` of the peer's messages (`None`: everything delivered): a driver
    /// that stores the session's state raises it as the state becomes
    /// durable. A raised limit goes out at once.
    pub fn session_set_ack_limit(&mut self, id: SessionId, limit: Option<u64>) {
        if let Some(idx) = self.sessions.idx(id) {
            self.sessions.set_ack_limit(idx, limit);
            self.sessions.flush_ack(idx);
            self.pump_session(idx);
        }
    }
}
