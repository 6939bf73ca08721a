//! The node's session table: binds reliable sessions ([`crate::session`]) to
//! links, resumes them, reconnects clients with backoff, and reports their
//! events. Policy lives in the pure `Session`; this file moves its messages.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Event, LinkId, Node, SetupError, Warning};

mod admit;
use crate::config::ConnectConfig;
use crate::error::{CloseReason, ConfigError};
use crate::fallible::AllocError;
use crate::ratelimit::warn_limited;
use crate::session::{
    Received, Session, SessionConfig, SessionEnd, SessionError, SessionEvent, Transmit,
};
use crate::time::Instant;
use crate::wire::{self, Greeting, Msg, TOKEN_LEN};

/// Identifies a session of a node; stale ids (of an ended session whose slot was
/// reused) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A session event as the node reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionNote {
    /// A link carries the session (new, or resumed after a lost link).
    Established {
        /// True when an existing session was resumed.
        resumed: bool,
        /// Messages of ours that are sent again because the peer lacked them.
        replaying: u64,
    },
    /// Client: the link was lost; attempt `attempt` starts after `delay`.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
        /// Wait before it.
        delay: Duration,
    },
    /// The session ended; no more events for it.
    Ended(SessionEnd),
}

/// A client session's way back to its server.
#[derive(Clone, Debug)]
pub(super) struct Redial {
    addr: SocketAddr,
    cfg: ConnectConfig,
    attempt: u32,
    at: Option<Instant>,
}

/// One entry of the session table.
pub(super) struct SessionSlot {
    gen: u32,
    pub(super) session: Option<Session>,
    /// In use (a live session, or an ended one not yet reported).
    used: bool,
    /// The link carrying it now.
    pub(super) link: Option<LinkId>,
    redial: Option<Redial>,
    /// Server: the address of the link that last carried it (admission counts
    /// sessions per address).
    peer: Option<IpAddr>,
}

impl SessionSlot {
    pub(super) fn empty() -> Self {
        SessionSlot {
            gen: 0,
            session: None,
            used: false,
            link: None,
            redial: None,
            peer: None,
        }
    }
}

impl Node {
    pub(super) fn session_id_of(&self, idx: u32) -> SessionId {
        self.session_id(idx)
    }

    fn session_id(&self, idx: u32) -> SessionId {
        SessionId {
            idx,
            gen: self.sessions[idx as usize].gen,
        }
    }

    fn session_idx(&self, id: SessionId) -> Option<u32> {
        let s = self.sessions.get(id.idx as usize)?;
        (s.used && s.gen == id.gen).then_some(id.idx)
    }

    /// Takes a free session slot and starts a session in it.
    fn take_session(
        &mut self,
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) -> Result<Option<u32>, AllocError> {
        let Some(idx) = self.sessions.iter().position(|s| !s.used) else {
            return Ok(None);
        };
        let idx = idx as u32;
        self.start_session(idx, cfg, id, token, client, now)?;
        Ok(Some(idx))
    }

    /// Starts a session in slot `idx` (reusing its replay ring when the
    /// settings match, else allocating one, fallibly); a new generation, so the
    /// old id is stale. On `Err` the slot is as it was.
    fn start_session(
        &mut self,
        idx: u32,
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) -> Result<(), AllocError> {
        let slot = &mut self.sessions[idx as usize];
        match slot.session.as_mut() {
            Some(s) if s.config() == cfg => s.restart(id, token, client, now),
            _ => {
                slot.session = Some(Session::try_new(cfg, id, token, client, now)?);
            }
        }
        slot.gen = slot.gen.wrapping_add(1);
        slot.used = true;
        slot.link = None;
        slot.redial = None;
        slot.peer = None;
        Ok(())
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
        cfg.validate()?;
        crate::config::validate_session(cfg.session.as_ref(), &cfg.liveness, &self.cfg)?;
        let scfg = cfg
            .session
            .ok_or(SetupError::Config(ConfigError::ZeroSize {
                field: "session",
            }))?;
        let now = self.tick();
        let idx = self
            .take_session(scfg, 0, [0; TOKEN_LEN], true, now)?
            .ok_or(SetupError::NoSlot)?;
        self.sessions[idx as usize].redial = Some(Redial {
            addr,
            cfg: cfg.clone(),
            attempt: 0,
            at: None,
        });
        self.dial(idx, now);
        Ok(self.session_id(idx))
    }

    /// Starts a connect for a client session; on failure, schedules the next.
    fn dial(&mut self, idx: u32, now: Instant) {
        let Some(r) = self.sessions[idx as usize].redial.clone() else {
            return;
        };
        match self.connect(r.addr, &r.cfg) {
            Ok(link) => {
                let g = self.greeting_of(idx);
                let i = link.slot;
                self.slots[i as usize].session = Some(idx);
                self.slots[i as usize].link.set_greeting(g);
                self.sessions[idx as usize].link = Some(link);
            }
            Err(e) => {
                log::debug!("session reconnect to {} failed at once: {e}", r.addr);
                self.schedule_redial(idx, now);
            }
        }
        self.resched_session(idx);
    }

    fn greeting_of(&self, idx: u32) -> Greeting {
        self.sessions[idx as usize]
            .session
            .as_ref()
            .map_or(Greeting::new_session(), Session::greeting)
    }

    fn schedule_redial(&mut self, idx: u32, now: Instant) {
        let random = self.random_u64();
        let slot = &mut self.sessions[idx as usize];
        let Some(r) = slot.redial.as_mut() else {
            return;
        };
        match r.cfg.backoff.delay(r.attempt, random) {
            Some(delay) => {
                r.attempt = r.attempt.saturating_add(1);
                r.at = Some(now + delay);
                let attempt = r.attempt;
                self.note(idx, SessionNote::Reconnecting { attempt, delay });
            }
            None => {
                let undelivered = slot.session.as_ref().map_or(0, Session::unacked);
                self.end_session(idx, SessionEnd::Lost { undelivered });
            }
        }
    }

    /// Queues a message on the session; it goes out now or after the next resume.
    /// Returns its sequence number.
    pub fn session_send(&mut self, id: SessionId, payload: &[u8]) -> Result<u64, SessionError> {
        self.session_queue(id, payload, None)
    }

    /// Like [`Node::session_send`], with a conflation key: a queued message with
    /// the same key that was never written is superseded (the peer gets only the
    /// newest). See [`Session::send_keyed`].
    pub fn session_send_keyed(
        &mut self,
        id: SessionId,
        payload: &[u8],
        key: u64,
    ) -> Result<u64, SessionError> {
        self.session_queue(id, payload, Some(key))
    }

    /// Both sends: checks the size, queues on the session, reports, pumps.
    fn session_queue(
        &mut self,
        id: SessionId,
        payload: &[u8],
        key: Option<u64>,
    ) -> Result<u64, SessionError> {
        let idx = self.session_idx(id).ok_or(SessionError::Ended)?;
        if payload.len() + wire::DATA_HEADER > self.cfg.max_frame {
            return Err(SessionError::TooLarge);
        }
        let s = self.sessions[idx as usize]
            .session
            .as_mut()
            .ok_or(SessionError::Ended)?;
        let seq = s.send_with(payload, key);
        self.drain_session_events(idx);
        if seq.is_ok() {
            self.pump_session(idx);
        }
        seq
    }

    /// Ends the session (closing its link); reported as `Ended(Closed)` here and,
    /// through a CLOSE with `SessionClosed`, at the peer. A due ACK goes out first.
    pub fn close_session(&mut self, id: SessionId) {
        if let Some(idx) = self.session_idx(id) {
            if let Some(s) = self.sessions[idx as usize].session.as_mut() {
                s.flush_ack();
            }
            self.pump_session(idx);
            self.end_session(idx, SessionEnd::Closed);
        }
    }

    /// The session's id on the wire (the same number at both ends, for logs).
    pub fn session_number(&self, id: SessionId) -> Option<u64> {
        let idx = self.session_idx(id)?;
        self.sessions[idx as usize]
            .session
            .as_ref()
            .map(Session::id)
    }

    /// Messages of the session not yet acknowledged by the peer.
    pub fn session_unacked(&self, id: SessionId) -> Option<u64> {
        let idx = self.session_idx(id)?;
        self.sessions[idx as usize]
            .session
            .as_ref()
            .map(Session::unacked)
    }

    fn end_session(&mut self, idx: u32, how: SessionEnd) {
        if let Some(s) = self.sessions[idx as usize].session.as_mut() {
            s.end(how);
        }
        let reason = link_reason(how);
        if let Some(link) = self.sessions[idx as usize].link.take() {
            if let Some(i) = self.slot_of(link) {
                self.slots[i as usize].session = None;
                self.close_slot(i, reason);
            }
        }
        self.sessions[idx as usize].redial = None;
        self.drain_session_events(idx);
        self.resched_session(idx);
    }

    /// Moves the pure session's events into the node's report queue.
    fn drain_session_events(&mut self, idx: u32) {
        while let Some(ev) = self.sessions[idx as usize]
            .session
            .as_mut()
            .and_then(Session::poll_event)
        {
            let note = match ev {
                SessionEvent::Established { resumed, replaying } => {
                    SessionNote::Established { resumed, replaying }
                }
                SessionEvent::Ended(how) => SessionNote::Ended(how),
            };
            self.note(idx, note);
            if let SessionEvent::Ended(how) = ev {
                // The session is over: its link goes too.
                let reason = link_reason(how);
                self.sessions[idx as usize].redial = None;
                if let Some(link) = self.sessions[idx as usize].link.take() {
                    if let Some(i) = self.slot_of(link) {
                        self.slots[i as usize].session = None;
                        self.close_slot(i, reason);
                    }
                }
            }
        }
    }

    fn note(&mut self, idx: u32, note: SessionNote) {
        let id = self.session_id(idx);
        if self.session_notes.len() < self.session_notes.capacity() {
            self.session_notes.push_back((id, note));
        } else {
            self.stats.unreported_session_events += 1;
            let now = self.now;
            warn_limited!(
                self.warnings[Warning::SessionEvents as usize],
                now,
                "session event not reported (queue full): {note:?}"
            );
        }
    }

    /// The next session event, for `next_event`; frees the slot of an ended one.
    pub(super) fn next_session_note(&mut self) -> Option<Event<'static>> {
        let (id, note) = self.session_notes.pop_front()?;
        if let SessionNote::Ended(_) = note {
            if let Some(slot) = self.sessions.get_mut(id.idx as usize) {
                if slot.gen == id.gen {
                    slot.used = false;
                    slot.link = None;
                }
            }
        }
        Some(Event::Session { session: id, note })
    }

    /// Writes what the session wants to send on its link, until the transmit
    /// buffer is full (it resumes when the link drains).
    pub(super) fn pump_session(&mut self, idx: u32) {
        let Some(link) = self.sessions[idx as usize].link else {
            return;
        };
        let Some(i) = self.slot_of(link) else {
            return;
        };
        if !self.slots[i as usize].link.may_send() {
            return; // handshake first
        }
        let now = self.now;
        loop {
            let Node {
                sessions,
                slots,
                bufs,
                codec,
                ..
            } = self;
            let Some(sess) = sessions[idx as usize].session.as_mut() else {
                return;
            };
            let slot = &mut slots[i as usize];
            let Some(tx) = sess.poll_transmit() else {
                break;
            };
            let sent = tx.sent();
            // ACK and SKIP are 17-byte control messages; DATA is a header + payload.
            let mut control = [0u8; 17];
            let queued = match tx {
                Transmit::Data { seq, payload } => {
                    let h = wire::data_header(seq);
                    super::write_frame(slot, bufs, codec.as_ref(), &h, super::Body::Bytes(payload))
                }
                Transmit::Ack(seq) | Transmit::Skip(seq) => {
                    let m = if matches!(tx, Transmit::Ack(_)) {
                        Msg::Ack(seq)
                    } else {
                        Msg::Skip(seq)
                    };
                    wire::encode(&m, &mut control).is_some_and(|n| {
                        let body = super::Body::Bytes(&control[..n]);
                        super::write_frame(slot, bufs, codec.as_ref(), &[], body)
                    })
                }
            };
            if !queued {
                self.note_tx_full(i);
                break;
            }
            sess.handle_transmitted(sent);
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
        let link = LinkId {
            slot: i,
            gen: slot.gen,
        };
        let idx = match (slot.session, slot.listener) {
            (Some(idx), _) => {
                // Client: the WELCOME.
                if let Some(s) = self.sessions[idx as usize].session.as_mut() {
                    s.handle_greeting(now, peer);
                }
                if peer.session == 0 {
                    // The server keeps no sessions (the session above ended):
                    // the link closes naming that, before the session's end
                    // is reported, so that the application can say what to fix.
                    self.slots[i as usize].session = None;
                    self.close_slot(i, CloseReason::NoSessions);
                    self.drain_session_events(idx);
                    return false;
                }
                if let Some(r) = self.sessions[idx as usize].redial.as_mut() {
                    r.attempt = 0;
                    r.at = None;
                }
                idx
            }
            (None, Some(l)) => {
                let Some(scfg) = self.listeners[l as usize].cfg.session else {
                    return true; // a listener without sessions: protocol only
                };
                let per_ip = self.listeners[l as usize].cfg.max_sessions_per_ip;
                match self.server_session(i, scfg, per_ip, peer, now) {
                    Some(idx) => idx,
                    None => return false,
                }
            }
            (None, None) => return true,
        };
        // A session resumed on a new link drops the old one (it was half-open).
        let old = self.sessions[idx as usize].link.replace(link);
        if let Some(old) = old.filter(|&o| o != link) {
            if let Some(j) = self.slot_of(old) {
                self.slots[j as usize].session = None;
                self.close_slot(j, CloseReason::StaleReplaced);
            }
        }
        self.slots[i as usize].session = Some(idx);
        let g = self.greeting_of(idx);
        self.slots[i as usize].link.set_greeting(g);
        self.drain_session_events(idx);
        // The caller queues WELCOME/HELLO output first, then pumps the session:
        // replayed DATA must follow the handshake on the wire.
        self.slots[i as usize].session.is_some()
    }

    /// Server side of a HELLO: a new session, or the resume of a known one with
    /// its token. `None` when the link was closed.
    fn server_session(
        &mut self,
        i: u32,
        scfg: SessionConfig,
        per_ip: Option<usize>,
        peer: Greeting,
        now: Instant,
    ) -> Option<u32> {
        let from = self.slots[i as usize].peer.ip();
        if peer.session == 0 {
            let idx = match self.admit_session(scfg, from, per_ip, now) {
                Ok(idx) => idx,
                Err(reason) => {
                    warn_limited!(
                        self.warnings[Warning::NoSessionSlot as usize],
                        now,
                        "no session slot for a new session from {from}: {reason}"
                    );
                    self.close_slot(i, reason);
                    return None;
                }
            };
            if let Some(s) = self.sessions[idx as usize].session.as_mut() {
                s.handle_greeting(now, peer);
            }
            return Some(idx);
        }
        let found = self.sessions.iter().position(|s| {
            s.used
                && s.redial.is_none()
                && s.session
                    .as_ref()
                    .is_some_and(|x| x.id() == peer.session && x.ended().is_none())
        });
        let Some(idx) = found else {
            log::info!("resume of unknown or expired session {}", peer.session);
            self.close_slot(i, CloseReason::SessionExpired);
            return None;
        };
        let ok = self.sessions[idx]
            .session
            .as_ref()
            .is_some_and(|s| s.token_matches(&peer.token));
        if !ok {
            warn_limited!(
                self.warnings[Warning::BadToken as usize],
                now,
                "bad token for session {} from {}",
                peer.session,
                self.slots[i as usize].peer
            );
            self.stats.bad_tokens += 1;
            self.close_slot(i, CloseReason::BadToken);
            return None;
        }
        if let Some(s) = self.sessions[idx].session.as_mut() {
            s.handle_greeting(now, peer);
        }
        self.sessions[idx].peer = Some(from);
        Some(idx as u32)
    }

    /// A DATA of `len` payload bytes arrived on a session's link: deliver it,
    /// drop a replayed duplicate, end the session on a gap, or, when the replay
    /// queue has no room for a reply as large, hold it unread (the link is not
    /// read; it closes with `SessionQueueFull` after `REFUSAL_HOLD`, and the
    /// peer's resume frees the queue and resends it).
    pub(super) fn session_data(
        &mut self,
        idx: u32,
        seq: Option<u64>,
        len: usize,
        now: Instant,
    ) -> Received {
        let Some(seq) = seq else {
            return Received::Lost;
        };
        let r = self.sessions[idx as usize]
            .session
            .as_mut()
            .map_or(Received::Lost, |s| s.handle_data_sized(now, seq, len));
        if r == Received::Refused {
            self.resched_session(idx); // the hold's deadline
        } else if r == Received::Lost {
            self.drain_session_events(idx);
        } else {
            self.pump_session(idx); // an ACK may be due
        }
        r
    }

    /// A SKIP (a message conflated away by the peer) arrived on a session's link.
    pub(super) fn session_skip(&mut self, idx: u32, seq: u64, now: Instant) {
        let r = self.sessions[idx as usize]
            .session
            .as_mut()
            .map_or(Received::Lost, |s| s.handle_skip(now, seq));
        if r == Received::Lost {
            self.drain_session_events(idx);
        } else {
            self.pump_session(idx);
        }
    }

    /// A cumulative ACK arrived on a session's link.
    pub(super) fn session_ack(&mut self, idx: u32, seq: u64) {
        if let Some(s) = self.sessions[idx as usize].session.as_mut() {
            s.handle_ack(seq);
        }
        self.drain_session_events(idx);
        self.pump_session(idx);
    }

    /// The session's link closed: the session waits for a resume (server) or
    /// reconnects (client).
    pub(super) fn session_link_lost(&mut self, idx: u32, reason: CloseReason, now: Instant) {
        let slot = &mut self.sessions[idx as usize];
        slot.link = None;
        let Some(s) = slot.session.as_mut() else {
            return;
        };
        s.handle_link_lost(now);
        if s.ended().is_some() {
            return;
        }
        match reason {
            // The server told us it no longer has the session, or refused us.
            CloseReason::SessionExpired => {
                let undelivered = s.unacked();
                s.end(SessionEnd::Expired { undelivered });
                self.drain_session_events(idx);
            }
            CloseReason::BadToken | CloseReason::SessionLost => {
                let undelivered = s.unacked();
                s.end(SessionEnd::Lost { undelivered });
                self.drain_session_events(idx);
            }
            // The peer's application closed the session.
            CloseReason::SessionClosed => {
                s.end(SessionEnd::Closed);
                self.drain_session_events(idx);
            }
            _ if self.sessions[idx as usize].redial.is_some() => self.schedule_redial(idx, now),
            _ => {}
        }
        self.resched_session(idx);
    }

    /// Timer index of session `idx` in the node's deadline heap.
    fn session_timer(&self, idx: u32) -> u32 {
        self.slots.len() as u32 + idx
    }

    pub(super) fn resched_session(&mut self, idx: u32) {
        let slot = &self.sessions[idx as usize];
        let at = crate::time::earliest(
            slot.session.as_ref().and_then(Session::poll_timeout),
            slot.redial.as_ref().and_then(|r| r.at),
        );
        let t = self.session_timer(idx);
        self.timers.set(t, at);
    }

    /// True while session `idx` holds a refused DATA: its link is not read.
    pub(super) fn session_refusing(&self, idx: u32) -> bool {
        self.sessions[idx as usize]
            .session
            .as_ref()
            .is_some_and(Session::is_refusing)
    }

    /// A session's deadline passed (heap index `t`).
    pub(super) fn session_timeout(&mut self, t: u32, now: Instant) {
        let idx = t - self.slots.len() as u32;
        if !self.sessions[idx as usize].used {
            return;
        }
        if let Some(s) = self.sessions[idx as usize].session.as_mut() {
            s.handle_timeout(now);
        }
        self.drain_session_events(idx);
        let expired = self.sessions[idx as usize]
            .session
            .as_ref()
            .is_some_and(|s| s.refusal_expired(now));
        if let Some(i) = self.sessions[idx as usize]
            .link
            .filter(|_| expired)
            .and_then(|l| self.slot_of(l))
        {
            self.stats.session_queue_full += 1;
            log::info!(
                "session link to {}: replay queue full, closing so the peer resumes",
                self.slots[i as usize].peer
            );
            self.close_slot(i, CloseReason::SessionQueueFull);
        }
        let due = self.sessions[idx as usize]
            .redial
            .as_ref()
            .and_then(|r| r.at)
            .is_some_and(|at| at <= now);
        if due && self.sessions[idx as usize].link.is_none() {
            if let Some(r) = self.sessions[idx as usize].redial.as_mut() {
                r.at = None;
            }
            self.dial(idx, now);
        }
        self.pump_session(idx);
        self.resched_session(idx);
    }

    fn random_token(&mut self) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        let from_os = self
            .urandom
            .as_mut()
            .is_some_and(|f| f.read_exact(&mut t).is_ok());
        if !from_os {
            // Never hand out a guessable token silently.
            log::error!("no OS randomness for a session token; mixing the clock instead");
            for chunk in t.chunks_mut(8) {
                let r = self.random_u64().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
        }
        t
    }

    /// Jitter for reconnect backoff: spread, not secrecy. Seeded from the OS.
    fn random_u64(&mut self) -> u64 {
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

/// The reason a session's link closes with when the session ends `how`.
fn link_reason(how: SessionEnd) -> CloseReason {
    match how {
        SessionEnd::Expired { .. } | SessionEnd::Evicted { .. } => CloseReason::SessionExpired,
        SessionEnd::Closed => CloseReason::SessionClosed,
        SessionEnd::Lost { .. } | SessionEnd::QueueFull { .. } => CloseReason::SessionLost,
    }
}
