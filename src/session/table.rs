//! The session table, pure: every decision about which session a link
//! carries. It owns ids, tokens, resume (lookup and token check), expiry,
//! admission and eviction (`session/admission.rs`), and the client's
//! redial/backoff timer; it says which links to close and why.
//!
//! A driver (the node, or a simulation) moves bytes and reads the clock:
//!
//! 1. A handshake completed: [`SessionTable::handle_hello`] (server) or
//!    [`SessionTable::handle_welcome`] (client), then write the session's
//!    output ([`SessionTable::poll_transmit`] until `None`, reporting each
//!    with [`SessionTable::handle_transmitted`]).
//! 2. A frame arrived: [`SessionTable::handle_data`] / `handle_skip` /
//!    `handle_ack`, then write the output as in 1.
//! 3. A session's link closed: [`SessionTable::handle_link_lost`] with what
//!    the peer said (or why it closed).
//! 4. [`SessionTable::poll_timeout`] passed: [`SessionTable::handle_timeout`];
//!    `true` means dial the session's target ([`SessionTable::dial_target`])
//!    and report [`SessionTable::handle_dialed`] or `handle_dial_failed`.
//! 5. After each call, close every link [`SessionTable::poll_close`] names
//!    (without reporting it back as lost: the table already let go of it),
//!    and report [`SessionTable::next_note`] to the application.
//!
//! Randomness (tokens, jitter) comes from the driver through [`Entropy`], so
//! the table is deterministic under test.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::IpAddr;

use super::admission::Occupant;
use super::{
    Backoff, Received, Sent, Session, SessionConfig, SessionEnd, SessionEnds, SessionError,
    SessionEvent, Transmit,
};
use crate::error::CloseReason;
use crate::fallible::{self, AllocError};
use crate::ratelimit::{warn_limited, RateLimit};
use crate::time::Instant;
use crate::wire::{Greeting, TOKEN_LEN};

mod hello;
#[cfg(test)]
mod tests;

/// Identifies a session of a table (and of a node); stale ids (of an ended
/// session whose slot was reused) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A session event as the table (and the node) reports it.
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

/// Randomness the table needs, supplied by its driver (the node reads the
/// OS's random source; a simulation uses a seeded generator).
pub trait Entropy {
    /// An unguessable token for a new server session.
    fn token(&mut self) -> [u8; TOKEN_LEN];
    /// A uniformly random number for backoff jitter: spread, not secrecy.
    fn jitter(&mut self) -> u64;
}

/// What the table counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Resumes refused for a wrong token.
    pub bad_tokens: u64,
    /// Disconnected sessions evicted to make room for a new one.
    pub evicted: u64,
    /// Links closed because a refused DATA held them for `REFUSAL_HOLD`.
    pub queue_full: u64,
    /// Notes dropped because the note queue was full.
    pub unreported: u64,
    /// Sessions established on a link for the first time.
    pub started: u64,
    /// Sessions resumed on a new link.
    pub resumed: u64,
    /// Sessions ended, by how.
    pub ended: SessionEnds,
    /// Sessions live now (in a slot and not ended).
    pub live: u64,
}

/// A client session's way back to its server.
#[derive(Clone, Debug)]
struct Redial<T> {
    target: T,
    timer: super::backoff::Redial,
}

/// One slot of the table.
struct Entry<L, T> {
    gen: u32,
    session: Option<Session>,
    /// In use (a live session, or an ended one not yet reported).
    used: bool,
    /// The link carrying it now.
    link: Option<L>,
    redial: Option<Redial<T>>,
    /// Server: the address of the link that last carried it (admission counts
    /// sessions per address).
    peer: Option<IpAddr>,
    /// Server: the authenticated identity (TLS client certificate) of the link
    /// that created it; only a link with the same identity resumes it.
    identity: Option<PeerKey>,
}

/// A fixed-size key for a peer's authenticated identity (e.g. the SHA-256
/// digest of the names a TLS client certificate proved): a server session is
/// bound to the key of the link that created it, so a captured token alone
/// cannot resume it.
pub type PeerKey = [u8; 32];

impl<L, T> Entry<L, T> {
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

/// Warnings a peer can repeat at will, each limited to one line per interval.
#[derive(Clone, Copy)]
enum Warning {
    Notes = 0,
    NoSlot = 1,
    BadToken = 2,
}

/// A fixed table of sessions over links named by `L` (the node's `LinkId`),
/// client sessions redialing a target `T` (the node's address and settings).
/// See the module docs for the order of calls.
pub struct SessionTable<L, T> {
    entries: Vec<Entry<L, T>>,
    next_id: u64,
    notes: VecDeque<(SessionId, SessionNote)>,
    /// Links to close; the driver drains them after each call.
    closes: VecDeque<(L, CloseReason)>,
    stats: TableStats,
    warnings: [RateLimit; 3],
    /// The latest time a call brought (for rate-limited warnings).
    now: Instant,
}

impl<L: Copy + PartialEq, T> SessionTable<L, T> {
    /// A table of `capacity` sessions reporting up to `notes` unread notes
    /// (allocated fallibly; sessions' replay rings are allocated as they start).
    pub fn new(capacity: usize, notes: usize) -> Result<Self, AllocError> {
        let mut entries = fallible::vec_with_capacity(capacity, "session table")?;
        entries.extend((0..capacity).map(|_| Entry {
            gen: 0,
            session: None,
            used: false,
            link: None,
            redial: None,
            peer: None,
            identity: None,
        }));
        Ok(SessionTable {
            entries,
            next_id: 0,
            notes: fallible::deque_with_capacity(notes, "session events")?,
            // At most two per call (an eviction's and a replaced link's).
            closes: fallible::deque_with_capacity(capacity.saturating_add(2), "session closes")?,
            stats: TableStats::default(),
            warnings: [RateLimit::default(); 3],
            now: Instant::from_millis(0),
        })
    }

    /// Its number of slots.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// What it counted (`live` counted now, over the slots).
    pub fn stats(&self) -> TableStats {
        let live = self
            .entries
            .iter()
            .filter(|e| e.used && e.session.as_ref().is_some_and(|s| s.ended().is_none()))
            .count();
        TableStats {
            live: live as u64,
            ..self.stats
        }
    }

    /// The id of slot `idx` now.
    pub fn id(&self, idx: u32) -> SessionId {
        SessionId {
            idx,
            gen: self.entries.get(idx as usize).map_or(0, |e| e.gen),
        }
    }

    /// The slot of `id`, unless it is stale.
    pub fn idx(&self, id: SessionId) -> Option<u32> {
        let e = self.entries.get(id.idx as usize)?;
        (e.used && e.gen == id.gen).then_some(id.idx)
    }

    /// The session in slot `idx`.
    pub fn session(&self, idx: u32) -> Option<&Session> {
        self.entries.get(idx as usize)?.session.as_ref()
    }

    pub(super) fn session_mut(&mut self, idx: u32) -> Option<&mut Session> {
        self.entries.get_mut(idx as usize)?.session.as_mut()
    }

    /// The link carrying session `idx`.
    pub fn link(&self, idx: u32) -> Option<L> {
        self.entries.get(idx as usize)?.link
    }

    /// The greeting its link sends (HELLO or WELCOME).
    pub fn greeting(&self, idx: u32) -> Greeting {
        self.session(idx)
            .map_or(Greeting::new_session(), Session::greeting)
    }

    /// True while session `idx` holds a refused DATA: its link is not read.
    pub fn is_refusing(&self, idx: u32) -> bool {
        self.session(idx).is_some_and(Session::is_refusing)
    }

    /// True while notes wait to be read.
    pub fn has_notes(&self) -> bool {
        !self.notes.is_empty()
    }

    /// Starts a session in slot `idx` (reusing its replay ring when its size
    /// matches, else allocating one, fallibly); a new generation, so the
    /// old id is stale. On `Err` the slot is as it was.
    pub(super) fn start(
        &mut self,
        idx: u32,
        cfg: SessionConfig,
        id: u64,
        token: [u8; TOKEN_LEN],
        client: bool,
        now: Instant,
    ) -> Result<(), AllocError> {
        let e = &mut self.entries[idx as usize];
        match e.session.as_mut() {
            Some(s) if s.same_memory(&cfg) => s.restart_as(cfg, id, token, client, now),
            _ => e.session = Some(Session::try_new(cfg, id, token, client, now)?),
        }
        e.gen = e.gen.wrapping_add(1);
        e.used = true;
        e.link = None;
        e.redial = None;
        e.peer = None;
        e.identity = None;
        Ok(())
    }

    /// Opens a client session that reaches `target`, redialing with `backoff`
    /// after lost links. `Ok(None)`: no free slot. The driver dials at once.
    pub fn open(
        &mut self,
        cfg: SessionConfig,
        target: T,
        backoff: Backoff,
        now: Instant,
    ) -> Result<Option<u32>, AllocError> {
        self.now = now;
        let Some(idx) = self.entries.iter().position(|e| !e.used) else {
            return Ok(None);
        };
        let idx = idx as u32;
        self.start(idx, cfg, 0, [0; TOKEN_LEN], true, now)?;
        self.entries[idx as usize].redial = Some(Redial {
            target,
            timer: super::backoff::Redial::new(backoff),
        });
        Ok(Some(idx))
    }

    /// Where client session `idx` dials.
    pub fn dial_target(&self, idx: u32) -> Option<&T> {
        Some(&self.entries.get(idx as usize)?.redial.as_ref()?.target)
    }

    /// A dial of session `idx` started: `link` carries its greeting.
    pub fn handle_dialed(&mut self, idx: u32, link: L) {
        self.entries[idx as usize].link = Some(link);
    }

    /// A dial of session `idx` failed at once: the next is scheduled (or the
    /// session ends when its attempts are exhausted).
    pub fn handle_dial_failed(&mut self, idx: u32, now: Instant, entropy: &mut dyn Entropy) {
        self.now = now;
        self.schedule_redial(idx, now, entropy);
    }

    fn schedule_redial(&mut self, idx: u32, now: Instant, entropy: &mut dyn Entropy) {
        let random = entropy.jitter();
        let e = &mut self.entries[idx as usize];
        let Some(r) = e.redial.as_mut() else {
            return;
        };
        match r.timer.schedule(now, random) {
            Some((attempt, delay)) => {
                self.note(idx, SessionNote::Reconnecting { attempt, delay });
            }
            None => {
                let undelivered = e.session.as_ref().map_or(0, Session::unacked);
                self.end(idx, SessionEnd::Lost { undelivered });
            }
        }
    }

    /// Queues a message on session `id` (see [`Session::send_keyed`] for
    /// `key`). Returns its slot (write its output next) and sequence number.
    pub fn send(
        &mut self,
        id: SessionId,
        payload: &[u8],
        key: Option<u64>,
    ) -> Result<(u32, u64), SessionError> {
        let idx = self.idx(id).ok_or(SessionError::Ended)?;
        let s = self.session_mut(idx).ok_or(SessionError::Ended)?;
        let seq = s.send_with(payload, key);
        self.drain(idx);
        seq.map(|seq| (idx, seq))
    }

    /// Makes a pending ACK of session `idx` due now (before it is closed).
    pub fn flush_ack(&mut self, idx: u32) {
        if let Some(s) = self.session_mut(idx) {
            s.flush_ack();
        }
    }

    /// Ends session `idx` for `how`: its link closes (reason from `how`), its
    /// redial stops, and `Ended` is noted.
    pub fn end(&mut self, idx: u32, how: SessionEnd) {
        if let Some(s) = self.session_mut(idx) {
            s.end(how);
        }
        let e = &mut self.entries[idx as usize];
        if let Some(link) = e.link.take() {
            self.closes.push_back((link, link_reason(how)));
        }
        self.entries[idx as usize].redial = None;
        self.drain(idx);
    }

    /// The next link to close, and why.
    pub fn poll_close(&mut self) -> Option<(L, CloseReason)> {
        self.closes.pop_front()
    }

    /// The next note for the application; an ended session's slot is freed
    /// once its `Ended` is read.
    pub fn next_note(&mut self) -> Option<(SessionId, SessionNote)> {
        let (id, note) = self.notes.pop_front()?;
        if let SessionNote::Ended(_) = note {
            if let Some(e) = self.entries.get_mut(id.idx as usize) {
                if e.gen == id.gen {
                    e.used = false;
                    e.link = None;
                }
            }
        }
        Some((id, note))
    }

    /// Moves the session's events into the notes; an ended session lets go of
    /// its link and its redial.
    fn drain(&mut self, idx: u32) {
        while let Some(ev) = self.session_mut(idx).and_then(Session::poll_event) {
            let note = match ev {
                SessionEvent::Established { resumed, replaying } => {
                    if resumed {
                        self.stats.resumed += 1;
                    } else {
                        self.stats.started += 1;
                    }
                    SessionNote::Established { resumed, replaying }
                }
                SessionEvent::Ended(how) => {
                    self.stats.ended.count(how);
                    SessionNote::Ended(how)
                }
            };
            self.note(idx, note);
            if let SessionEvent::Ended(how) = ev {
                let e = &mut self.entries[idx as usize];
                e.redial = None;
                if let Some(link) = e.link.take() {
                    self.closes.push_back((link, link_reason(how)));
                }
            }
        }
    }

    fn note(&mut self, idx: u32, note: SessionNote) {
        let id = self.id(idx);
        if self.notes.len() < self.notes.capacity() {
            self.notes.push_back((id, note));
        } else {
            self.stats.unreported += 1;
            warn_limited!(
                self.warnings[Warning::Notes as usize],
                self.now,
                "session event not reported (queue full): {note:?}"
            );
        }
    }

    /// Client: the WELCOME arrived on `link`. True when the link carries the
    /// session now (else the driver closes it: see [`SessionTable::poll_close`]).
    pub fn handle_welcome(&mut self, idx: u32, link: L, peer: Greeting, now: Instant) -> bool {
        self.now = now;
        if let Some(s) = self.session_mut(idx) {
            s.handle_greeting(now, peer);
        }
        if peer.session == 0 {
            // The server keeps no sessions (the session above ended): the link
            // closes naming that, before the session's end is reported, so the
            // application can say what to fix.
            self.closes.push_back((link, CloseReason::NoSessions));
            self.drain(idx);
            return false;
        }
        if let Some(r) = self.entries[idx as usize].redial.as_mut() {
            r.timer.reset();
        }
        self.bind(idx, link)
    }

    /// Session `idx` is carried by `link` now; a link that carried it before
    /// closes (it was half-open). True unless the session ended meanwhile.
    pub(super) fn bind(&mut self, idx: u32, link: L) -> bool {
        let old = self.entries[idx as usize].link.replace(link);
        if let Some(old) = old.filter(|&o| o != link) {
            self.closes.push_back((old, CloseReason::StaleReplaced));
        }
        self.drain(idx);
        self.entries[idx as usize].link == Some(link)
    }

    /// The next message session `idx` wants written on its link.
    pub fn poll_transmit(&self, idx: u32) -> Option<Transmit<'_>> {
        self.session(idx)?.poll_transmit()
    }

    /// The message from [`SessionTable::poll_transmit`] was queued.
    pub fn handle_transmitted(&mut self, idx: u32, sent: Sent) {
        if let Some(s) = self.session_mut(idx) {
            s.handle_transmitted(sent);
        }
    }

    /// A DATA of `len` payload bytes arrived on session `idx`'s link (`seq`:
    /// `None` when the frame carried none). See [`Session::handle_data_sized`].
    pub fn handle_data(
        &mut self,
        idx: u32,
        now: Instant,
        seq: Option<u64>,
        len: usize,
    ) -> Received {
        self.now = now;
        let r = match (seq, self.session_mut(idx)) {
            (Some(seq), Some(s)) => s.handle_data_sized(now, seq, len),
            _ => Received::Lost,
        };
        if r == Received::Lost {
            self.drain(idx);
        }
        r
    }

    /// A SKIP arrived on session `idx`'s link.
    pub fn handle_skip(&mut self, idx: u32, now: Instant, seq: u64) -> Received {
        self.now = now;
        let r = self
            .session_mut(idx)
            .map_or(Received::Lost, |s| s.handle_skip(now, seq));
        if r == Received::Lost {
            self.drain(idx);
        }
        r
    }

    /// A cumulative ACK arrived on session `idx`'s link.
    pub fn handle_ack(&mut self, idx: u32, seq: u64) {
        if let Some(s) = self.session_mut(idx) {
            s.handle_ack(seq);
        }
        self.drain(idx);
    }

    /// Session `idx`'s link closed for `reason` (what the peer said, if it
    /// said): the session waits for a resume (server), redials (client), or
    /// ends when the peer said it is gone.
    pub fn handle_link_lost(
        &mut self,
        idx: u32,
        reason: CloseReason,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) {
        self.now = now;
        let e = &mut self.entries[idx as usize];
        e.link = None;
        let redial = e.redial.is_some();
        let Some(s) = e.session.as_mut() else {
            return;
        };
        s.handle_link_lost(now);
        if s.ended().is_some() {
            return;
        }
        let undelivered = s.unacked();
        match reason {
            // The server told us it no longer has the session, or refused us.
            CloseReason::SessionExpired => s.end(SessionEnd::Expired { undelivered }),
            CloseReason::BadToken | CloseReason::SessionLost => {
                s.end(SessionEnd::Lost { undelivered });
            }
            // The peer's application closed the session.
            CloseReason::SessionClosed => s.end(SessionEnd::Closed),
            _ if redial => return self.schedule_redial(idx, now, entropy),
            _ => return,
        }
        self.drain(idx);
    }

    /// The earliest time [`SessionTable::handle_timeout`] has work for `idx`.
    pub fn poll_timeout(&self, idx: u32) -> Option<Instant> {
        let e = self.entries.get(idx as usize)?;
        crate::time::earliest(
            e.session.as_ref().and_then(Session::poll_timeout),
            e.redial.as_ref().and_then(|r| r.timer.poll_timeout()),
        )
    }

    /// Session `idx`'s deadline passed: a due ACK, expiry, the end of a
    /// refusal's hold (its link closes with `SessionQueueFull`), a redial.
    /// True when the driver is to dial now.
    pub fn handle_timeout(&mut self, idx: u32, now: Instant, entropy: &mut dyn Entropy) -> bool {
        self.now = now;
        if !self.entries.get(idx as usize).is_some_and(|e| e.used) {
            return false;
        }
        if let Some(s) = self.session_mut(idx) {
            s.handle_timeout(now);
        }
        self.drain(idx);
        let expired = self.session(idx).is_some_and(|s| s.refusal_expired(now));
        if let Some(link) = self.link(idx).filter(|_| expired) {
            // The driver logs it with the peer's address.
            self.stats.queue_full += 1;
            self.closes.push_back((link, CloseReason::SessionQueueFull));
            self.handle_link_lost(idx, CloseReason::SessionQueueFull, now, entropy);
        }
        let e = &mut self.entries[idx as usize];
        match e.redial.as_mut() {
            Some(r) if e.link.is_none() => r.timer.handle_timeout(now),
            _ => false,
        }
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
