//! The node's session glue: moves the pure session table's
//! ([`crate::session::SessionTable`]) messages between links and the table,
//! closes the links it names, and gives it the clock and the OS's randomness.
//! Every decision (ids, tokens, resume, expiry, eviction, redial) is the
//! table's.

use std::io::Read;
use std::net::SocketAddr;

use super::{Event, LinkId, Node, SetupError};

use crate::config::ConnectConfig;
use crate::error::{CloseReason, ConfigError};
use crate::session::{Entropy, Received, SessionError, SessionTable};
use crate::time::Instant;
use crate::wire::{self, Greeting, TOKEN_LEN};

pub use crate::session::{SessionId, SessionNote};

/// The node's table: sessions over its links, client sessions redialing an
/// address with their connect settings.
pub(super) type Table = SessionTable<LinkId, (SocketAddr, ConnectConfig)>;

/// Randomness from the OS: `/dev/urandom` for tokens, and a generator seeded
/// from it for jitter.
pub(super) struct OsEntropy {
    urandom: Option<std::fs::File>,
    rng: Option<crate::rng::XorShift64>,
    /// A simulation's: tokens too come from the seeded generator.
    seeded: bool,
}

impl OsEntropy {
    /// Opens the OS's random source when `sessions` are on.
    pub(super) fn new(sessions: bool) -> Self {
        OsEntropy {
            urandom: sessions
                .then(|| std::fs::File::open("/dev/urandom").ok())
                .flatten(),
            rng: None,
            seeded: false,
        }
    }

    /// Everything from a generator seeded with `seed`, so a simulation
    /// replays exactly (tokens then are not secret).
    pub(super) fn seeded(seed: u64) -> Self {
        OsEntropy {
            urandom: None,
            rng: Some(crate::rng::XorShift64::new(seed)),
            seeded: true,
        }
    }
}

impl Entropy for OsEntropy {
    fn token(&mut self) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        let from_os = self
            .urandom
            .as_mut()
            .is_some_and(|f| f.read_exact(&mut t).is_ok());
        if !from_os && !self.seeded {
            // Never hand out a guessable token silently.
            log::error!("no OS randomness for a session token; mixing the clock instead");
        }
        if !from_os {
            for chunk in t.chunks_mut(8) {
                let r = self.jitter().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
        }
        t
    }

    /// Seeded from the OS (the clock without it).
    fn jitter(&mut self) -> u64 {
        let rng = match self.rng.as_mut() {
            Some(r) => r,
            None => {
                let mut b = [0u8; 8];
                let seeded = self
                    .urandom
                    .as_mut()
                    .is_some_and(|f| f.read_exact(&mut b).is_ok());
                let seed = if seeded {
                    u64::from_le_bytes(b)
                } else {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                };
                self.rng.insert(crate::rng::XorShift64::new(seed))
            }
        };
        rng.next_u64()
    }
}

impl Node {
    /// A uniformly random number for backoff jitter (the sessions' source).
    pub(crate) fn jitter(&mut self) -> u64 {
        self.entropy.jitter()
    }

    pub(super) fn session_id_of(&self, idx: u32) -> SessionId {
        self.sessions.id(idx)
    }

    /// Opens a reliable session to `addr` (`cfg.session` must be set, with the
    /// mooring protocol). The node connects, resumes after lost links with
    /// `cfg.backoff`, and reports [`SessionNote`]s; messages sent meanwhile queue
    /// up to the session's bounds.
    pub fn open_session(
        &mut self,
        addr: SocketAddr,
        cfg: &ConnectConfig,
    ) -> Result<SessionId, SetupError> {
        let scfg = self.client_session_config(cfg)?;
        let now = self.tick();
        let idx = self
            .sessions
            .open(scfg, (addr, cfg.clone()), cfg.backoff, now)?
            .ok_or(SetupError::NoSlot)?;
        self.dial(idx, now);
        Ok(self.sessions.id(idx))
    }

    /// Checks `cfg` for a client session (opened or resumed) and gives its
    /// session settings.
    pub(super) fn client_session_config(
        &self,
        cfg: &ConnectConfig,
    ) -> Result<crate::session::SessionConfig, SetupError> {
        cfg.validate()?;
        crate::config::validate_session(cfg.session.as_ref(), &cfg.liveness, &self.cfg)?;
        cfg.session.ok_or(SetupError::Config(ConfigError::ZeroSize {
            field: "session",
        }))
    }

    /// Starts a connect for a client session; on failure, the table schedules
    /// the next.
    pub(super) fn dial(&mut self, idx: u32, now: Instant) {
        let Some((addr, cfg)) = self.sessions.dial_target(idx).cloned() else {
            return;
        };
        match self.connect(addr, &cfg) {
            Ok(link) => {
                let i = link.slot as usize;
                self.slots[i].session = Some(idx);
                self.slots[i].link.set_greeting(self.sessions.greeting(idx));
                self.sessions.handle_dialed(idx, link);
            }
            Err(e) => {
                log::debug!("session reconnect to {addr} failed at once: {e}");
                self.sessions
                    .handle_dial_failed(idx, now, &mut self.entropy);
                self.close_session_links();
            }
        }
        self.resched_session(idx);
    }

    /// Queues a message on the session; it goes out now or after the next resume.
    /// Returns its sequence number. `Err(Unframeable)`: the payload holds a byte
    /// the framing cannot carry (MLLP: `0x0B` or `0x1C`).
    pub fn session_send(&mut self, id: SessionId, payload: &[u8]) -> Result<u64, SessionError> {
        self.session_queue(id, payload, None)
    }

    /// Like [`Node::session_send`], with a conflation key: a queued message with
    /// the same key that was never written is superseded (sent as a SKIP: the
    /// peer delivers only the newest). Fewer messages to deliver after an
    /// outage; the superseded one's queue space is freed when it is
    /// acknowledged.
    pub fn session_send_keyed(
        &mut self,
        id: SessionId,
        payload: &[u8],
        key: u64,
    ) -> Result<u64, SessionError> {
        self.session_queue(id, payload, Some(key))
    }

    /// Both sends: checks the size against the frame limit, queues, pumps.
    fn session_queue(
        &mut self,
        id: SessionId,
        payload: &[u8],
        key: Option<u64>,
    ) -> Result<u64, SessionError> {
        self.sessions.idx(id).ok_or(SessionError::Ended)?;
        if payload.len() + wire::DATA_HEADER > self.cfg.max_frame {
            return Err(SessionError::TooLarge);
        }
        // Queued, such a payload would be replayed into the same broken frame
        // at every resume: the session would stall, never end.
        if !self.codec.can_carry(payload) {
            return Err(SessionError::Unframeable);
        }
        let r = self.sessions.send(id, payload, key);
        self.close_session_links();
        let (idx, seq) = r?;
        self.pump_session(idx);
        Ok(seq)
    }

    /// Ends the session (closing its link); reported as `Ended(Closed)` here and,
    /// through a CLOSE with `SessionClosed`, at the peer. A due ACK goes out first.
    pub fn close_session(&mut self, id: SessionId) {
        if let Some(idx) = self.sessions.idx(id) {
            self.sessions.flush_ack(idx);
            self.pump_session(idx);
            self.sessions.end(idx, crate::session::SessionEnd::Closed);
            self.close_session_links();
            self.resched_session(idx);
        }
    }

    /// The session's id on the wire (the same number at both ends, for logs).
    pub fn session_number(&self, id: SessionId) -> Option<u64> {
        let idx = self.sessions.idx(id)?;
        self.sessions.session(idx).map(|s| s.id())
    }

    /// Messages of the session not yet acknowledged by the peer.
    pub fn session_unacked(&self, id: SessionId) -> Option<u64> {
        let idx = self.sessions.idx(id)?;
        self.sessions.session(idx).map(|s| s.unacked())
    }

    /// Closes the links the table let go of (they no longer carry a session,
    /// so their close is not reported back to it).
    fn close_session_links(&mut self) {
        while let Some((link, reason)) = self.sessions.poll_close() {
            if let Some(i) = self.slot_of(link) {
                if reason == CloseReason::SessionQueueFull {
                    log::info!(
                        "session link to {}: replay queue full, closing so the peer resumes",
                        self.slots[i as usize].peer
                    );
                }
                self.slots[i as usize].session = None;
                self.close_slot(i, reason);
            }
        }
    }

    /// The next session event, for `next_event`.
    pub(super) fn next_session_note(&mut self) -> Option<Event<'static>> {
        let (session, note) = self.sessions.next_note()?;
        Some(Event::Session { session, note })
    }

    /// Writes what the session wants to send on its link, until the transmit
    /// buffer is full (it resumes when the link drains).
    pub(super) fn pump_session(&mut self, idx: u32) {
        let Some(link) = self.sessions.link(idx) else {
            return;
        };
        let Some(i) = self.slot_of(link) else {
            return;
        };
        if !self.slots[i as usize].link.may_send() {
            return; // handshake first
        }
        let now = self.now;
        let mut scratch = [0u8; wire::MAX_CONTROL];
        loop {
            let Node {
                sessions,
                slots,
                bufs,
                codec,
                ..
            } = self;
            let slot = &mut slots[i as usize];
            let Some(tx) = sessions.poll_transmit(idx) else {
                break;
            };
            let sent = tx.sent();
            let (head, payload) = tx.encode(&mut scratch);
            let body = super::Body::Bytes(payload);
            if !super::write_frame(slot, bufs, codec.as_ref(), head, body) {
                self.note_tx_full(i);
                break;
            }
            sessions.handle_transmitted(idx, sent);
            slot.link.handle_queued(now, None);
            self.queue_flush(i);
        }
        self.resched(i);
        self.resched_session(idx);
    }

    /// A link's handshake completed: bind it to its session (server: find or
    /// create it; client: take the server's greeting). False when the link was
    /// closed instead.
    pub(super) fn bind_session(&mut self, i: u32, peer: Greeting, now: Instant) -> bool {
        let slot = &self.slots[i as usize];
        let link = slot.id(i);
        let bound = match (slot.session, slot.listener) {
            (Some(idx), _) => self
                .sessions
                .handle_welcome(idx, link, peer, now)
                .then_some(idx),
            (None, Some(l)) => {
                let Some(scfg) = self.listeners[l as usize].cfg.session else {
                    return true; // a listener without sessions: protocol only
                };
                let per_ip = self.listeners[l as usize].cfg.max_sessions_per_ip;
                let from = slot.peer;
                #[cfg(feature = "tls")]
                let identity = self.peer_identity_key(i);
                #[cfg(not(feature = "tls"))]
                let identity = None;
                self.sessions.handle_authenticated_hello(
                    link,
                    from,
                    identity,
                    scfg,
                    per_ip,
                    peer,
                    now,
                    &mut self.entropy,
                )
            }
            (None, None) => return true,
        };
        if let Some(idx) = bound {
            self.slots[i as usize].session = Some(idx);
            let g = self.sessions.greeting(idx);
            self.slots[i as usize].link.set_greeting(g);
        }
        self.close_session_links();
        // The caller queues WELCOME/HELLO output first, then pumps the session:
        // replayed DATA must follow the handshake on the wire.
        self.slots[i as usize].session.is_some()
    }

    /// A DATA of `len` payload bytes arrived on a session's link (see
    /// [`SessionTable::handle_data`]); a refused one holds the link unread.
    pub(super) fn session_data(
        &mut self,
        idx: u32,
        seq: Option<u64>,
        len: usize,
        now: Instant,
    ) -> Received {
        let r = self.sessions.handle_data(idx, now, seq, len);
        match r {
            Received::Refused => self.resched_session(idx), // the hold's deadline
            Received::Lost => {
                self.close_session_links();
                self.resched_session(idx);
            }
            _ => self.pump_session(idx), // an ACK may be due
        }
        r
    }

    /// A SKIP (a message conflated away by the peer) arrived on a session's link.
    pub(super) fn session_skip(&mut self, idx: u32, seq: u64, now: Instant) {
        if self.sessions.handle_skip(idx, now, seq) == Received::Lost {
            self.close_session_links();
            self.resched_session(idx);
        } else {
            self.pump_session(idx);
        }
    }

    /// A cumulative ACK arrived on a session's link.
    pub(super) fn session_ack(&mut self, idx: u32, seq: u64) {
        self.sessions.handle_ack(idx, seq);
        self.close_session_links();
        self.pump_session(idx);
    }

    /// The session's link closed for `reason`: the table decides what becomes
    /// of the session.
    pub(super) fn session_link_lost(&mut self, idx: u32, reason: CloseReason, now: Instant) {
        self.sessions
            .handle_link_lost(idx, reason, now, &mut self.entropy);
        self.close_session_links();
        self.resched_session(idx);
    }

    /// Timer index of session `idx` in the node's deadline heap.
    fn session_timer(&self, idx: u32) -> u32 {
        self.slots.len() as u32 + idx
    }

    pub(super) fn resched_session(&mut self, idx: u32) {
        let at = self.sessions.poll_timeout(idx);
        let t = self.session_timer(idx);
        self.timers.set(t, at);
    }

    /// True while session `idx` holds a refused DATA: its link is not read.
    pub(super) fn session_refusing(&self, idx: u32) -> bool {
        self.sessions.is_refusing(idx)
    }

    /// A session's deadline passed (heap index `t`).
    pub(super) fn session_timeout(&mut self, t: u32, now: Instant) {
        let idx = t - self.slots.len() as u32;
        let dial = self.sessions.handle_timeout(idx, now, &mut self.entropy);
        self.close_session_links();
        if dial {
            self.dial(idx, now);
        }
        self.pump_session(idx);
        self.resched_session(idx);
    }
}
