//! The server's side of a handshake: a HELLO resumes a known session (its
//! token checked) or admits a new one ([`crate::session::admission`]: a free
//! slot, or evicting the session disconnected longest).

use std::net::{IpAddr, SocketAddr};

use super::{Entropy, Entry, PeerKey, SessionTable, Warning};
use crate::error::CloseReason;
use crate::ratelimit::warn_limited;
use crate::session::{Session, SessionConfig, SessionEnd};
use crate::session_core::admission::{self, Admission};
use crate::time::Instant;
use crate::wire::Greeting;

impl<L: Copy + PartialEq, T> SessionTable<L, T> {
    /// Server: a HELLO arrived on `link` from `from`, for a listener with
    /// sessions `cfg` and an optional per-address limit. A new session (taking
    /// a free slot or evicting one), or the resume of a known one with its
    /// token. `None`: refused, the link is to close (see `poll_close`).
    /// The link has no authenticated identity (see
    /// [`SessionTable::handle_authenticated_hello`]).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_hello(
        &mut self,
        link: L,
        from: SocketAddr,
        cfg: SessionConfig,
        per_ip: Option<usize>,
        peer: Greeting,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) -> Option<u32> {
        self.handle_authenticated_hello(link, from, None, cfg, per_ip, peer, now, entropy)
    }

    /// [`SessionTable::handle_hello`] on a link whose peer proved `identity`
    /// (a TLS client certificate's [`PeerKey`]; `None`: none proved). A new
    /// session is bound to it; a resume from a link with another identity (or
    /// none, for a session that has one) is refused like a wrong token
    /// (`BadToken`, counted in `bad_tokens`): a captured token alone is worth
    /// nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_authenticated_hello(
        &mut self,
        link: L,
        from: SocketAddr,
        identity: Option<PeerKey>,
        cfg: SessionConfig,
        per_ip: Option<usize>,
        peer: Greeting,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) -> Option<u32> {
        self.now = now;
        let idx = match self.find(from, identity, peer, now) {
            Ok(Some(idx)) => idx,
            Ok(None) => match self.admit(cfg, from.ip(), per_ip, now, entropy) {
                Ok(idx) => idx,
                Err(reason) => {
                    warn_limited!(
                        self.warnings[Warning::NoSlot as usize],
                        now,
                        "no session slot for a new session from {}: {reason}",
                        from.ip()
                    );
                    self.closes.push_back((link, reason));
                    return None;
                }
            },
            Err(reason) => {
                self.closes.push_back((link, reason));
                return None;
            }
        };
        if let Some(s) = self.session_mut(idx) {
            s.handle_greeting(now, peer);
        }
        let e = &mut self.entries[idx as usize];
        e.peer = Some(from.ip());
        e.identity = identity;
        self.bind(idx, link).then_some(idx)
    }

    /// The session a HELLO resumes: `Ok(None)` for a new one, `Err` when the
    /// session is unknown (expired), or the token or the identity is wrong.
    fn find(
        &mut self,
        from: SocketAddr,
        identity: Option<PeerKey>,
        peer: Greeting,
        now: Instant,
    ) -> Result<Option<u32>, CloseReason> {
        if peer.session == 0 {
            return Ok(None);
        }
        let found = self.entries.iter().position(|e| {
            e.used
                && e.redial.is_none()
                && e.session
                    .as_ref()
                    .is_some_and(|s| s.id() == peer.session && s.ended().is_none())
        });
        let Some(idx) = found else {
            log::info!("resume of unknown or expired session {}", peer.session);
            return Err(CloseReason::SessionExpired);
        };
        let ok = self.entries[idx]
            .session
            .as_ref()
            .is_some_and(|s| s.token_matches(&peer.token));
        if !ok {
            return Err(self.refuse_resume(
                now,
                format_args!("bad token for session {} from {from}", peer.session),
            ));
        }
        if self.entries[idx].identity != identity {
            return Err(self.refuse_resume(
                now,
                format_args!(
                    "resume of session {} from {from} by another identity than the one that created it",
                    peer.session
                ),
            ));
        }
        Ok(Some(idx as u32))
    }

    /// A resume refused as a wrong token (the token, or the identity that
    /// goes with it): warned about (`why`, rate-limited), counted in
    /// `bad_tokens`; the reason its link closes with.
    fn refuse_resume(&mut self, now: Instant, why: std::fmt::Arguments<'_>) -> CloseReason {
        warn_limited!(self.warnings[Warning::BadToken as usize], now, "{why}");
        self.stats.bad_tokens += 1;
        CloseReason::BadToken
    }

    /// A slot for a new server session from `from` (see [`super::admission`]):
    /// free, or taken from the session disconnected longest, which ends
    /// `Evicted`. `Err` names why there is none.
    fn admit(
        &mut self,
        cfg: SessionConfig,
        from: IpAddr,
        per_ip: Option<usize>,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) -> Result<u32, CloseReason> {
        let table = self.entries.iter().map(Entry::occupant);
        let idx = match admission::admit(table, from, per_ip) {
            Admission::Free(idx) => idx,
            Admission::Evict(idx) => {
                let undelivered = self.session(idx).map_or(0, Session::unacked);
                log::info!(
                    "session table: evicting a session waiting for its client ({undelivered} undelivered)"
                );
                self.stats.evicted += 1;
                self.end(idx, SessionEnd::Evicted { undelivered });
                idx
            }
            Admission::Refuse(reason) => return Err(reason),
        };
        self.next_id += 1;
        let id = self.next_id;
        let token = entropy.token();
        if let Err(e) = self.start(idx, cfg, id, token, false, now) {
            // The table cannot hold it after all: refused, the node goes on.
            log::error!("new session from {from} refused: {e}");
            return Err(CloseReason::TooManyConnections);
        }
        Ok(idx)
    }
}
