//! Reliable sessions, pure: sequence numbers, cumulative ACKs, a bounded replay
//! queue, resume after a lost link, and loss that is detected and reported,
//! never silent (seed 002, Diffusion's "Reliable Reconnection").
//!
//! A [`Session`] outlives any one TCP link. Each side numbers the DATA it sends
//! (1, 2, 3, ...) and keeps every message until the peer acknowledges it. ACKs
//! are cumulative ("everything up to N was delivered to the application") and
//! batched: one after `ack_every` messages or `ack_delay`, whichever comes first.
//! When a link is lost, the client reconnects and both sides exchange their last
//! received sequence number in HELLO/WELCOME; each then replays from the peer's
//! last received + 1. Order is kept, and the application never sees a message
//! twice (a replayed message the peer already had is dropped by sequence number).
//!
//! Loss is never silent. If a side cannot replay what the peer is missing (the
//! peer claims to have received less than it already acknowledged, or more than
//! was ever sent), or a DATA arrives out of sequence, the session closes with
//! [`SessionEnd::Lost`]; if the server dropped the session because the client
//! stayed away longer than `reconnect_timeout`, with [`SessionEnd::Expired`].
//! Both carry how many messages may not have been delivered.
//!
//! Memory: the replay queue is one byte ring of `max_bytes` and an index of
//! `max_depth_disconnected` entries, allocated when the session is built.

mod admission;
mod backoff;
mod config;
mod messages;
mod restore;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::fallible::{self, AllocError};
use crate::replay::{ReplayError, ReplayQueue};
use crate::time::Instant;
use crate::wire::{Greeting, PROTOCOL_VERSION, TOKEN_LEN};

pub use backoff::Backoff;
pub(crate) use backoff::Redial;
pub use config::{Overflow, SessionConfig, REFUSAL_HOLD};
pub use messages::{Received, Sent, SessionEnd, SessionEnds, SessionError, SessionEvent, Transmit};
pub use restore::StoredSession;
pub use table::{Entropy, PeerKey, SessionId, SessionNote, SessionTable};

#[derive(Clone, Copy, Debug)]
struct Meta {
    key: Option<u64>,
    superseded: bool,
}

/// One end of a reliable session. See the module docs.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    id: u64,
    token: [u8; TOKEN_LEN],
    replay: ReplayQueue,
    /// Per message in `replay`: its conflation key, and whether a newer message
    /// with that key superseded it.
    meta: VecDeque<Meta>,
    /// Highest sequence number ever written on any link: only messages above it
    /// may be conflated (the peer may already hold anything written).
    max_written: u64,
    /// Sequence number of the oldest message in `replay` (all below are acked).
    base: u64,
    /// Highest sequence number written on the current link.
    written: u64,
    /// Highest sequence number delivered to the application, in order.
    delivered: u64,
    /// Last cumulative ACK sent.
    ack_sent: u64,
    ack_due: Option<Instant>,
    ack_now: bool,
    connected: bool,
    disconnected_at: Option<Instant>,
    ever_connected: bool,
    client: bool,
    ended: Option<SessionEnd>,
    events: heapless::Deque<SessionEvent, 4>,
    /// Replayed DATA the peer already had (dropped by sequence number).
    duplicates: u64,
    /// When a DATA was first refused on the current link (see `Received::Refused`).
    refused_at: Option<Instant>,
    /// Restored from a stored state and not yet resumed: what is queued may
    /// have been written by the process that stored it (`session/restore.rs`).
    restored: bool,
    /// The highest sequence number this side may acknowledge (ACKs and the
    /// greeting): what its driver made durable. `None`: all delivered.
    ack_limit: Option<u64>,
    /// The peer's highest DATA seen on this link (or its replay point): never
    /// acknowledge beyond what the peer wrote since our greeting.
    peer_written: u64,
    /// What our last greeting claimed received (set when it is built): a
    /// greeting acknowledges, so the next claim and ACK never go below it.
    claimed: core::cell::Cell<u64>,
}

impl Session {
    /// A client's session: its identity comes with the first WELCOME.
    pub fn client(cfg: SessionConfig, now: Instant) -> Self {
        Session::new(cfg, 0, [0; TOKEN_LEN], true, now)
    }

    /// A server's session with a fresh `id` and an unguessable `token` (from the
    /// OS's random source, read by the driver).
    pub fn server(cfg: SessionConfig, id: u64, token: [u8; TOKEN_LEN], now: Instant) -> Self {
        Session::new(cfg, id, token, false, now)
    }

    fn new(
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) -> Self {
        // As `Vec` does when memory runs out; the node uses `try_new`.
        Session::try_new(cfg, id, token, client, now).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A session whose replay ring and index are allocated fallibly: `Err`
    /// names what the host could not provide.
    pub(crate) fn try_new(
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) -> Result<Self, AllocError> {
        let depth = cfg.max_depth_disconnected.max(cfg.max_depth);
        let replay = ReplayQueue::try_new(cfg.max_bytes, depth)?;
        let meta = fallible::deque_with_capacity(depth, "session conflation keys")?;
        Ok(Session::new_with(cfg, id, token, client, now, replay, meta))
    }

    fn new_with(
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
        replay: ReplayQueue,
        meta: VecDeque<Meta>,
    ) -> Self {
        Session {
            cfg,
            id,
            token,
            meta,
            max_written: 0,
            replay,
            base: 1,
            written: 0,
            delivered: 0,
            ack_sent: 0,
            ack_due: None,
            ack_now: false,
            connected: false,
            disconnected_at: Some(now),
            ever_connected: false,
            client,
            ended: None,
            events: heapless::Deque::new(),
            duplicates: 0,
            refused_at: None,
            restored: false,
            ack_limit: None,
            peer_written: 0,
            claimed: core::cell::Cell::new(0),
        }
    }

    /// Starts a new session in this one's memory: same settings and replay ring
    /// (no allocation), fresh identity and state.
    pub fn restart(&mut self, id: u64, token: [u8; TOKEN_LEN], client: bool, now: Instant) {
        self.restart_as(self.cfg, id, token, client, now);
    }

    /// True when a session with `cfg` fits this one's replay ring and index
    /// exactly (its other settings may differ): see [`Session::restart_as`].
    pub(crate) fn same_memory(&self, cfg: &SessionConfig) -> bool {
        let depth = |c: &SessionConfig| c.max_depth_disconnected.max(c.max_depth);
        cfg.max_bytes == self.cfg.max_bytes && depth(cfg) == depth(&self.cfg)
    }

    /// Like [`Session::restart`], with settings `cfg` that have the same
    /// memory ([`Session::same_memory`]): no allocation either.
    pub(crate) fn restart_as(
        &mut self,
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) {
        let mut replay = ReplayQueue::new(0, 0);
        core::mem::swap(&mut replay, &mut self.replay);
        replay.clear();
        let mut meta = core::mem::take(&mut self.meta);
        meta.clear();
        let mut fresh = Session::new_with(cfg, id, token, client, now, replay, meta);
        core::mem::swap(self, &mut fresh);
    }

    /// The settings it was built with.
    pub fn config(&self) -> SessionConfig {
        self.cfg
    }

    /// The session id (0 until assigned).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True when `token` is this session's token (compared in constant time).
    pub fn token_matches(&self, token: &[u8; TOKEN_LEN]) -> bool {
        self.token
            .iter()
            .zip(token)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Messages sent and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.replay.len() as u64
    }

    /// Highest sequence number delivered to the application.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Replayed messages dropped as duplicates.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// How the session ended, if it did.
    pub fn ended(&self) -> Option<SessionEnd> {
        self.ended
    }

    /// True while a link carries the session.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Since when it has waited for a link (not connected, not ended).
    pub fn disconnected_since(&self) -> Option<Instant> {
        self.disconnected_at
            .filter(|_| !self.connected && self.ended.is_none())
    }

    /// Queues a message; it goes out now or after the next resume. Returns its
    /// sequence number.
    pub fn send(&mut self, payload: &[u8]) -> Result<u64, SessionError> {
        self.send_with(payload, None)
    }

    /// Queues a message with a conflation key: a queued message with the same key
    /// that was never written is superseded (sent as a SKIP, so the peer delivers
    /// only the newest). Fewer messages to deliver after an outage; the ring
    /// space of the superseded one is freed when it is acknowledged.
    pub fn send_keyed(&mut self, payload: &[u8], key: u64) -> Result<u64, SessionError> {
        self.send_with(payload, Some(key))
    }

    /// Messages superseded by conflation and not yet acknowledged.
    pub fn superseded(&self) -> usize {
        self.meta.iter().filter(|m| m.superseded).count()
    }

    /// Messages the replay queue may hold now. A session that reserves room for
    /// replies keeps its larger bound while connected too: its requester may
    /// have `max_depth` requests in flight (with the same settings), plus those
    /// whose replies it has not acknowledged yet.
    fn depth(&self) -> usize {
        if self.connected && !self.cfg.reserve_reply {
            self.cfg.max_depth
        } else {
            self.cfg.max_depth_disconnected.max(self.cfg.max_depth)
        }
    }

    /// True when `send` of a `len`-byte message would be queued now.
    pub fn has_room(&self, len: usize) -> bool {
        self.ended.is_none() && self.replay.fits(len, self.depth())
    }

    pub(crate) fn send_with(
        &mut self,
        payload: &[u8],
        key: Option<u64>,
    ) -> Result<u64, SessionError> {
        if self.ended.is_some() {
            return Err(SessionError::Ended);
        }
        match self.replay.push(payload, self.depth()) {
            Ok(()) => {
                if let Some(k) = key {
                    // Never-written messages only: seq > max_written.
                    let first_unwritten = (self.max_written + 1).saturating_sub(self.base) as usize;
                    for m in self.meta.iter_mut().skip(first_unwritten) {
                        if m.key == Some(k) {
                            m.superseded = true;
                        }
                    }
                }
                self.meta.push_back(Meta {
                    key,
                    superseded: false,
                });
                let seq = self.base + self.replay.len() as u64 - 1;
                if self.restored {
                    self.max_written = seq;
                }
                Ok(seq)
            }
            Err(ReplayError::TooLarge) => Err(SessionError::TooLarge),
            Err(ReplayError::Full) if self.cfg.overflow == Overflow::CloseSession => {
                self.end(SessionEnd::QueueFull {
                    undelivered: self.unacked(),
                });
                Err(SessionError::QueueFull)
            }
            Err(ReplayError::Full) => Err(SessionError::QueueFull),
        }
    }

    /// The greeting this side sends (HELLO from a client, WELCOME from a server).
    pub fn greeting(&self) -> Greeting {
        Greeting {
            version: PROTOCOL_VERSION,
            flags: 0,
            session: self.id,
            token: self.token,
            last_received: self.greeting_claim(),
        }
    }

    /// The peer's greeting arrived on a new link (client: WELCOME; server: HELLO
    /// of a known session after its token was checked). Sets the replay point.
    pub fn handle_greeting(&mut self, now: Instant, peer: Greeting) {
        if self.ended.is_some() {
            return;
        }
        let last_sent = self.base + self.replay.len() as u64 - 1;
        if self.client && peer.session == 0 {
            // The server speaks the protocol but keeps no sessions: nothing it
            // receives is acknowledged, so nothing could be replayed safely.
            log::warn!("the server has no sessions (WELCOME with session 0)");
            self.end(SessionEnd::Lost {
                undelivered: self.unacked(),
            });
            return;
        }
        if self.client && self.id == 0 {
            // First WELCOME: the server assigns identity.
            self.id = peer.session;
            self.token = peer.token;
        } else if self.client && peer.session != self.id {
            // Client: the server answered with another session, so ours is gone.
            self.end(SessionEnd::Expired {
                undelivered: self.unacked(),
            });
            return;
        }
        let r = peer.last_received;
        // A client's peer cannot have more than was ever written (a restored
        // session counts all it holds as possibly written by its predecessor).
        let beyond_written = self.client && r > self.max_written;
        self.restored = false;
        // `base >= 1` always; `r` comes from the wire, so no arithmetic on it.
        if r < self.base - 1 || r > last_sent || beyond_written {
            // The peer is missing messages we no longer hold, or claims messages
            // we never sent: we cannot make its stream whole.
            log::warn!(
                "session {}: peer has {r}, we hold {}..={last_sent}",
                self.id,
                self.base
            );
            self.end(SessionEnd::Lost {
                undelivered: self.unacked(),
            });
            return;
        }
        self.ack_through(r);
        self.written = r;
        // The peer replays from what our greeting claimed.
        if self.client {
            self.ack_sent = self.ack_sent.max(self.claimed.get());
            self.peer_written = self.claimed.get();
        } else {
            self.peer_written = self.delivered;
        }
        self.connected = true;
        self.disconnected_at = None;
        let resumed = self.ever_connected;
        self.ever_connected = true;
        // Tell the peer where we are soon, even if nothing new arrives.
        self.ack_now = self.ackable() > self.ack_sent;
        let _ = now;
        // Messages queued before the first link are first sends, not replays.
        let replaying = if resumed { last_sent - r } else { 0 };
        let _ = self
            .events
            .push_back(SessionEvent::Established { resumed, replaying });
    }

    fn ack_through(&mut self, seq: u64) {
        while self.base <= seq && self.replay.len() > 0 {
            self.replay.pop_front();
            self.meta.pop_front();
            self.base += 1;
        }
    }

    /// A SKIP arrived: like a DATA in sequence, with nothing to deliver (and so
    /// nothing to answer: never refused).
    pub fn handle_skip(&mut self, now: Instant, seq: u64) -> Received {
        match self.take_data(now, seq, None) {
            Received::Deliver => Received::Skipped,
            r => r,
        }
    }

    /// A DATA arrived.
    pub fn handle_data(&mut self, now: Instant, seq: u64) -> Received {
        self.take_data(now, seq, None)
    }

    /// A DATA with a payload of `len` bytes arrived. With
    /// [`SessionConfig::reserve_reply`], a new message is taken only while the
    /// replay queue could take a reply as large as it, else
    /// [`Received::Refused`]. The peer's next resume frees the queue by what it
    /// received, so a peer that never acknowledges is held to one queue of
    /// replies (bounded in bytes and messages), and a well-behaved one loses
    /// nothing.
    pub fn handle_data_sized(&mut self, now: Instant, seq: u64, len: usize) -> Received {
        let reply = self.cfg.reserve_reply.then_some(len);
        self.take_data(now, seq, reply)
    }

    fn take_data(&mut self, now: Instant, seq: u64, reply: Option<usize>) -> Received {
        if self.ended.is_some() {
            return Received::Lost;
        }
        if seq <= self.delivered.saturating_add(1) {
            self.peer_written = self.peer_written.max(seq);
        }
        if seq <= self.delivered {
            self.duplicates += 1;
            return Received::Duplicate;
        }
        // Refused only while acknowledgements could make room: a message too
        // large for the empty ring is taken (its reply is then refused by name).
        let full = |len| !self.has_room(len) && self.unacked() > 0;
        if seq == self.delivered + 1 && reply.is_some_and(full) {
            self.refused_at.get_or_insert(now);
            return Received::Refused;
        }
        self.refused_at = None;
        if seq != self.delivered + 1 {
            log::warn!(
                "session {}: DATA {seq} after {}: gap",
                self.id,
                self.delivered
            );
            self.end(SessionEnd::Lost {
                undelivered: self.unacked(),
            });
            return Received::Lost;
        }
        self.delivered = seq;
        if self.delivered - self.ack_sent >= u64::from(self.cfg.ack_every) {
            self.ack_now = true;
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now + self.cfg.ack_delay);
        }
        Received::Deliver
    }

    /// A cumulative ACK arrived.
    pub fn handle_ack(&mut self, seq: u64) {
        if self.ended.is_some() {
            return;
        }
        if seq > self.written {
            log::warn!(
                "session {}: ACK {seq} beyond written {}",
                self.id,
                self.written
            );
            self.end(SessionEnd::Lost {
                undelivered: self.unacked(),
            });
            return;
        }
        self.ack_through(seq);
    }

    /// True while a refused DATA holds the link (see [`Received::Refused`]).
    pub fn is_refusing(&self) -> bool {
        self.refused_at.is_some()
    }

    /// True once a refused DATA has held the link for [`REFUSAL_HOLD`]: the
    /// driver closes the link (`SessionQueueFull`) so the peer resumes.
    pub fn refusal_expired(&self, now: Instant) -> bool {
        self.refused_at.is_some_and(|t| t + REFUSAL_HOLD <= now)
    }

    /// The link carrying the session was lost.
    pub fn handle_link_lost(&mut self, now: Instant) {
        self.refused_at = None;
        if self.connected {
            self.connected = false;
            self.disconnected_at = Some(now);
            self.ack_due = None;
            self.ack_now = false;
        }
    }

    /// The next protocol message to write on the current link: a due ACK first,
    /// then unsent or replayed DATA in order. Call [`Session::handle_transmitted`]
    /// once it is queued.
    ///
    /// Any DATA is preceded by an ACK of everything delivered so far, due or
    /// not: the peer's replies are acknowledged before our next request reaches
    /// it, so a peer whose replay queue holds our replies has room again by then
    /// (else it refuses the request: [`Received::Refused`]).
    #[must_use]
    pub fn poll_transmit(&self) -> Option<Transmit<'_>> {
        if !self.connected || self.ended.is_some() {
            return None;
        }
        let next = self.written + 1;
        let data = next.checked_sub(self.base).and_then(|i| {
            let i = i as usize;
            if self.meta.get(i).is_some_and(|m| m.superseded) {
                return Some(Transmit::Skip(next));
            }
            self.replay
                .get(i)
                .map(|payload| Transmit::Data { seq: next, payload })
        });
        let ackable = self.ackable();
        if ackable > self.ack_sent && (self.ack_now || data.is_some()) {
            return Some(Transmit::Ack(ackable));
        }
        data
    }

    /// The message from [`Session::poll_transmit`] was queued on the link.
    pub fn handle_transmitted(&mut self, sent: Sent) {
        match sent {
            Sent::Ack(seq) => {
                self.ack_sent = seq;
                self.ack_now = false;
                self.ack_due = None;
            }
            Sent::Data(seq) | Sent::Skip(seq) => {
                self.written = self.written.max(seq);
                self.max_written = self.max_written.max(seq);
            }
        }
    }

    /// Makes a pending ACK due now (before closing, so the peer knows what arrived).
    pub fn flush_ack(&mut self) {
        if self.ackable() > self.ack_sent {
            self.ack_now = true;
        }
    }

    /// The earliest time [`Session::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        // Only a server drops a disconnected session; a client reconnects.
        let expiry = if self.client {
            None
        } else {
            self.disconnected_at.map(|t| t + self.cfg.reconnect_timeout)
        };
        let refusal = self.refused_at.map(|t| t + REFUSAL_HOLD);
        crate::time::earliest(crate::time::earliest(self.ack_due, expiry), refusal)
    }

    /// Time passed: a due ACK, and on the server the expiry of a session whose
    /// client stayed away longer than `reconnect_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        if self.ack_due.is_some_and(|t| t <= now) {
            self.ack_due = None;
            self.ack_now = true;
        }
        if !self.client
            && self
                .disconnected_at
                .is_some_and(|t| t + self.cfg.reconnect_timeout <= now)
        {
            self.end(SessionEnd::Expired {
                undelivered: self.unacked(),
            });
        }
    }

    /// Ends the session for `how` (no-op if it already ended).
    pub fn end(&mut self, how: SessionEnd) {
        if self.ended.is_none() {
            self.ended = Some(how);
            self.connected = false;
            let _ = self.events.push_back(SessionEvent::Ended(how));
        }
    }

    /// The next session event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }
}
