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

use core::time::Duration;

use std::collections::VecDeque;

use crate::fallible::{self, AllocError};
use crate::replay::{ReplayError, ReplayQueue};
use crate::time::Instant;
use crate::wire::{Greeting, PROTOCOL_VERSION, TOKEN_LEN};

/// How long a session holds a DATA it refused (its link unread) before the
/// driver cuts the link: time for the replies already written to reach the peer,
/// so its resume acknowledges them. See [`Received::Refused`].
pub const REFUSAL_HOLD: Duration = Duration::from_millis(200);

/// What `send` does when the replay queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// `send` returns [`SessionError::QueueFull`]; nothing is queued (default).
    #[default]
    Backpressure,
    /// The session closes with [`SessionEnd::QueueFull`] (Diffusion's behaviour).
    CloseSession,
}

/// Session settings with documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Unacknowledged messages kept while connected. Default 1000.
    pub max_depth: usize,
    /// Unacknowledged messages kept while disconnected (at least `max_depth`).
    /// Default 10,000.
    pub max_depth_disconnected: usize,
    /// Bytes of unacknowledged payload kept, whichever limit comes first.
    /// Default 8 MiB.
    pub max_bytes: usize,
    /// How long the server keeps a disconnected session. Default 60 s.
    pub reconnect_timeout: Duration,
    /// Send a cumulative ACK after this many messages. Default 32.
    pub ack_every: u32,
    /// ... or after this delay, whichever comes first. Default 20 ms.
    pub ack_delay: Duration,
    /// Queue-full policy. Default backpressure.
    pub overflow: Overflow,
    /// Request/reply: the application answers each message through the
    /// session, so a message is taken only while the replay queue has room for
    /// a reply as large as it; otherwise it is held unread and the link cut so
    /// the peer resumes ([`Received::Refused`]). A peer that never acknowledges
    /// then holds at most one queue of replies. The queue's bound is then
    /// `max_depth_disconnected` while connected too, so a requester with the
    /// same settings (at most `max_depth` in flight) never meets a full one.
    /// Default off (`mooring listen --session` turns it on).
    pub reserve_reply: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_depth: 1000,
            max_depth_disconnected: 10_000,
            max_bytes: 8 << 20,
            reconnect_timeout: Duration::from_secs(60),
            ack_every: 32,
            ack_delay: Duration::from_millis(20),
            overflow: Overflow::Backpressure,
            reserve_reply: false,
        }
    }
}

impl SessionConfig {
    /// `self` with the connected queue depth `depth` and the disconnected depth
    /// that goes with it, ten times as many (the defaults: 1,000 and 10,000).
    /// The one place of that rule: the CLI's `--queue` and the C API's
    /// `session_queue` both come through here.
    pub fn with_depth(self, depth: usize) -> SessionConfig {
        SessionConfig {
            max_depth: depth,
            max_depth_disconnected: depth.saturating_mul(10),
            ..self
        }
    }
}

/// Why `send` refused a message. Nothing was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The replay queue is at its depth or byte limit: backpressure.
    QueueFull,
    /// The message is larger than the whole replay ring.
    TooLarge,
    /// The session has ended.
    Ended,
}

/// How a session ended. Every variant that can lose data says how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// A side could not replay what its peer was missing, or data arrived out of
    /// sequence: `undelivered` messages of ours may not have reached the peer.
    Lost {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The server no longer had the session (the client stayed away longer than
    /// `reconnect_timeout`).
    Expired {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The replay queue overflowed under [`Overflow::CloseSession`].
    QueueFull {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The application closed it.
    Closed,
    /// Server: a new session took its slot while its client was away (the
    /// table was full, or its address was at `max_sessions_per_ip`; see
    /// [`crate::config::ListenConfig::max_sessions_per_ip`]).
    Evicted {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
}

/// What happened to a session, pulled with [`Session::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A link carries the session: new, or resumed after a lost link.
    Established {
        /// True when an existing session was resumed.
        resumed: bool,
        /// Our messages that will be sent again (the peer had not received them).
        replaying: u64,
    },
    /// The session ended.
    Ended(SessionEnd),
}

/// What an inbound DATA means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// New, in order: deliver it.
    Deliver,
    /// Already delivered (a replay): drop it.
    Duplicate,
    /// A conflated message: counted, nothing to deliver.
    Skipped,
    /// Out of sequence: the session has ended (see [`Session::poll_event`]).
    Lost,
    /// New and in order, but our replay queue has no room for a reply as large
    /// as it (see [`Session::handle_data_sized`]): not taken, not acknowledged.
    /// The driver stops reading the link; [`REFUSAL_HOLD`] later (see
    /// [`Session::refusal_expired`]) it closes it (`SessionQueueFull`). The peer
    /// resumes, which acknowledges what it received and frees the queue, and
    /// sends the message again. (The peer's ACKs queue behind its DATA, so
    /// holding the link alone would never free room.)
    Refused,
}

/// One outbound protocol message from [`Session::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit<'a> {
    /// Cumulative acknowledgement.
    Ack(u64),
    /// A message that was conflated away (see [`Session::send_keyed`]): the peer
    /// counts the sequence number and delivers nothing.
    Skip(u64),
    /// A message, new or replayed; `payload` borrows the replay queue.
    Data {
        /// Its sequence number.
        seq: u64,
        /// The application payload.
        payload: &'a [u8],
    },
}

impl Transmit<'_> {
    /// What to report to [`Session::handle_transmitted`] once this is queued.
    pub fn sent(&self) -> Sent {
        match *self {
            Transmit::Ack(seq) => Sent::Ack(seq),
            Transmit::Skip(seq) => Sent::Skip(seq),
            Transmit::Data { seq, .. } => Sent::Data(seq),
        }
    }
}

/// A [`Transmit`] that was queued, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// An ACK for this sequence number.
    Ack(u64),
    /// The DATA with this sequence number.
    Data(u64),
    /// The SKIP with this sequence number.
    Skip(u64),
}

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
        }
    }

    /// Starts a new session in this one's memory: same settings and replay ring
    /// (no allocation), fresh identity and state.
    pub fn restart(&mut self, id: u64, token: [u8; TOKEN_LEN], client: bool, now: Instant) {
        let mut replay = ReplayQueue::new(0, 0);
        core::mem::swap(&mut replay, &mut self.replay);
        replay.clear();
        let mut meta = core::mem::take(&mut self.meta);
        meta.clear();
        let mut fresh = Session::new_with(self.cfg, id, token, client, now, replay, meta);
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
                Ok(self.base + self.replay.len() as u64 - 1)
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
            last_received: self.delivered,
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
        // `base >= 1` always; `r` comes from the wire, so no arithmetic on it.
        if r < self.base - 1 || r > last_sent {
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
        self.connected = true;
        self.disconnected_at = None;
        let resumed = self.ever_connected;
        self.ever_connected = true;
        // Tell the peer where we are soon, even if nothing new arrives.
        self.ack_now = self.delivered > self.ack_sent;
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
        if self.delivered > self.ack_sent && (self.ack_now || data.is_some()) {
            return Some(Transmit::Ack(self.delivered));
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
        if self.delivered > self.ack_sent {
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

/// Client reconnection strategy: exponential backoff with full jitter.
///
/// Attempt `n` (from 0) waits a uniformly random time in `[0, min(max, min x 2^n)]`
/// ("full jitter"), so a fleet of clients cut off by the same outage does not
/// reconnect in lockstep. Defaults: 1 s doubling to 30 s, unlimited attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first wait.
    pub min: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Give up after this many attempts (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt`, given a uniformly random `random`
    /// (the driver's xorshift); `None` when attempts are exhausted.
    pub fn delay(&self, attempt: u32, random: u64) -> Option<Duration> {
        if self.max_attempts.is_some_and(|m| attempt >= m) {
            return None;
        }
        let ceiling = self
            .min
            .checked_mul(1u32 << attempt.min(20))
            .map_or(self.max, |d| d.min(self.max));
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(random % ms.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn cfg() -> SessionConfig {
        SessionConfig {
            max_depth: 4,
            max_depth_disconnected: 6,
            max_bytes: 64,
            ack_every: 2,
            ..Default::default()
        }
    }

    fn connected_pair() -> (Session, Session) {
        let mut s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
        let mut c = Session::client(cfg(), t(0));
        s.handle_greeting(t(0), c.greeting());
        c.handle_greeting(t(0), s.greeting());
        assert_eq!(c.id(), 7);
        (c, s)
    }

    /// Moves everything `a` wants to send into `b`; returns delivered sequences.
    fn flow(a: &mut Session, b: &mut Session, now: Instant) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(sent) = a.poll_transmit().map(|tx| tx.sent()) {
            match sent {
                Sent::Ack(seq) => b.handle_ack(seq),
                Sent::Data(seq) => {
                    if b.handle_data(now, seq) == Received::Deliver {
                        got.push(seq);
                    }
                }
                Sent::Skip(seq) => {
                    let _ = b.handle_skip(now, seq);
                }
            }
            a.handle_transmitted(sent);
        }
        got
    }

    #[test]
    fn messages_flow_in_order_and_acks_free_the_replay_queue() {
        let (mut c, mut s) = connected_pair();
        for m in [b"a", b"b", b"c"] {
            c.send(m).unwrap();
        }
        assert_eq!(flow(&mut c, &mut s, t(1)), vec![1, 2, 3]);
        assert_eq!(c.unacked(), 3);
        flow(&mut s, &mut c, t(1)); // ack_every = 2 reached: one ACK covers all 3
        assert_eq!(c.unacked(), 0);
    }

    #[test]
    fn a_lone_message_is_acknowledged_after_the_ack_delay() {
        let (mut c, mut s) = connected_pair();
        c.send(b"a").unwrap();
        assert_eq!(flow(&mut c, &mut s, t(1)), vec![1]);
        assert_eq!(s.poll_transmit(), None, "batched: not yet");
        assert_eq!(s.poll_timeout(), Some(t(21)));
        s.handle_timeout(t(21));
        flow(&mut s, &mut c, t(21));
        assert_eq!(c.unacked(), 0);
    }

    #[test]
    fn resume_replays_only_what_the_peer_missed_and_never_twice() {
        let (mut c, mut s) = connected_pair();
        for m in [b"1", b"2", b"3", b"4"] {
            c.send(m).unwrap();
        }
        // Only 1 and 2 made it before the link died.
        for _ in 0..2 {
            let sent = c.poll_transmit().map(|tx| tx.sent());
            let Some(Sent::Data(seq)) = sent else {
                panic!("expected DATA, got {sent:?}");
            };
            assert_eq!(s.handle_data(t(1), seq), Received::Deliver);
            c.handle_transmitted(Sent::Data(seq));
        }
        c.handle_transmitted(Sent::Data(3)); // written, but lost in flight
        c.handle_link_lost(t(2));
        s.handle_link_lost(t(2));
        c.send(b"5").unwrap();
        // Resume: each side learns what the other has.
        s.handle_greeting(t(3), c.greeting());
        c.handle_greeting(t(3), s.greeting());
        assert_eq!(
            c.poll_event(),
            Some(SessionEvent::Established {
                resumed: false,
                replaying: 0
            })
        );
        assert_eq!(
            c.poll_event(),
            Some(SessionEvent::Established {
                resumed: true,
                replaying: 3
            })
        );
        assert_eq!(flow(&mut c, &mut s, t(4)), vec![3, 4, 5]);
        assert_eq!(c.unacked(), 3, "1 and 2 were acknowledged by the resume");
    }

    #[test]
    fn a_replayed_message_the_peer_already_had_is_dropped() {
        let (mut c, mut s) = connected_pair();
        c.send(b"x").unwrap();
        assert_eq!(flow(&mut c, &mut s, t(1)), vec![1]);
        assert_eq!(s.handle_data(t(2), 1), Received::Duplicate);
        assert_eq!(s.duplicates(), 1);
    }

    #[test]
    fn a_gap_ends_the_session_as_lost() {
        let (_, mut s) = connected_pair();
        assert_eq!(s.handle_data(t(1), 2), Received::Lost);
        assert_eq!(
            s.poll_event().and_then(|_| s.poll_event()),
            Some(SessionEvent::Ended(SessionEnd::Lost { undelivered: 0 }))
        );
    }

    #[test]
    fn a_peer_that_forgot_acknowledged_messages_ends_the_session_with_the_count() {
        let (mut c, mut s) = connected_pair();
        for m in [b"1", b"2", b"3"] {
            c.send(m).unwrap();
        }
        for seq in 1..=2 {
            c.handle_transmitted(Sent::Data(seq));
            assert_eq!(s.handle_data(t(1), seq), Received::Deliver);
        }
        assert_eq!(s.poll_transmit(), Some(Transmit::Ack(2)));
        c.handle_ack(2);
        c.handle_transmitted(Sent::Data(3)); // written; its ACK never comes
        c.handle_link_lost(t(2));
        let mut forgetful = s.greeting();
        forgetful.last_received = 0; // a restarted peer
        c.handle_greeting(t(3), forgetful);
        assert_eq!(
            c.ended(),
            Some(SessionEnd::Lost { undelivered: 1 }),
            "message 3 is in doubt"
        );
    }

    #[test]
    fn server_expires_a_session_whose_client_stays_away() {
        let (mut c, mut s) = connected_pair();
        s.send(b"to client").unwrap();
        s.handle_link_lost(t(10));
        c.handle_link_lost(t(10));
        s.handle_timeout(t(10 + 59_999));
        assert_eq!(s.ended(), None);
        s.handle_timeout(t(10 + 60_000));
        assert_eq!(s.ended(), Some(SessionEnd::Expired { undelivered: 1 }));
        // The client, greeted by a new session, learns its own is gone.
        let fresh = Session::server(cfg(), 8, [1; TOKEN_LEN], t(60_011));
        c.handle_greeting(t(60_011), fresh.greeting());
        assert_eq!(c.ended(), Some(SessionEnd::Expired { undelivered: 0 }));
    }

    #[test]
    fn full_queue_is_backpressure_and_a_larger_bound_applies_while_disconnected() {
        let (mut c, _) = connected_pair();
        for _ in 0..4 {
            c.send(b"m").unwrap();
        }
        assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
        c.handle_link_lost(t(1));
        c.send(b"m").unwrap();
        c.send(b"m").unwrap();
        assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
        assert_eq!(c.unacked(), 6);
    }

    #[test]
    fn byte_bound_applies_and_the_ring_wraps() {
        let (mut c, mut s) = connected_pair();
        let big = [7u8; 30];
        c.send(&big).unwrap();
        c.send(&big).unwrap();
        assert_eq!(c.send(&big), Err(SessionError::QueueFull), "64-byte ring");
        flow(&mut c, &mut s, t(1));
        flow(&mut s, &mut c, t(1)); // ACK 2 frees both
        c.send(&big).unwrap();
        c.send(&big).unwrap();
        assert_eq!(c.send(&[0u8; 65]), Err(SessionError::TooLarge));
    }

    #[test]
    fn overflow_can_close_the_session_instead() {
        let mut c = Session::client(
            SessionConfig {
                overflow: Overflow::CloseSession,
                ..cfg()
            },
            t(0),
        );
        for _ in 0..6 {
            c.send(b"m").unwrap();
        }
        assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
        assert_eq!(c.ended(), Some(SessionEnd::QueueFull { undelivered: 6 }));
    }

    #[test]
    fn backoff_ceiling_doubles_to_its_cap_with_full_jitter() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(0, u64::MAX),
            Some(Duration::from_millis(u64::MAX % 1001))
        );
        assert_eq!(b.delay(0, 1000), Some(Duration::from_secs(1)));
        assert_eq!(b.delay(3, 8000), Some(Duration::from_secs(8)));
        assert_eq!(b.delay(10, 30_000), Some(Duration::from_secs(30)), "capped");
        assert_eq!(
            b.delay(10, 0),
            Some(Duration::ZERO),
            "full jitter reaches zero"
        );
        assert_eq!(b.delay(u32::MAX, 30_000), Some(Duration::from_secs(30)));
        let limited = Backoff {
            max_attempts: Some(3),
            ..b
        };
        assert!(limited.delay(2, 5).is_some());
        assert_eq!(limited.delay(3, 5), None);
    }

    #[test]
    fn a_keyed_message_supersedes_the_unwritten_one_with_its_key() {
        let (mut c, mut s) = connected_pair();
        c.send_keyed(b"temp=20", 1).unwrap();
        assert_eq!(
            flow(&mut c, &mut s, t(1)),
            vec![1],
            "written: not conflated any more"
        );
        c.handle_link_lost(t(2));
        s.handle_link_lost(t(2));
        c.send_keyed(b"temp=21", 1).unwrap(); // seq 2
        c.send(b"alarm").unwrap(); // seq 3
        c.send_keyed(b"temp=22", 1).unwrap(); // seq 4 supersedes 2
        assert_eq!(c.superseded(), 1);
        s.handle_greeting(t(3), c.greeting());
        c.handle_greeting(t(3), s.greeting());
        let mut delivered = Vec::new();
        while let Some(tx) = c.poll_transmit() {
            let sent = tx.sent();
            match tx {
                Transmit::Skip(seq) => assert_eq!(s.handle_skip(t(4), seq), Received::Skipped),
                Transmit::Data { seq, payload } => {
                    assert_eq!(s.handle_data(t(4), seq), Received::Deliver);
                    delivered.push(payload.to_vec());
                }
                Transmit::Ack(_) => {}
            }
            c.handle_transmitted(sent);
        }
        assert_eq!(delivered, vec![b"alarm".to_vec(), b"temp=22".to_vec()]);
        assert_eq!(
            s.delivered(),
            4,
            "sequence stays contiguous: no gap, no loss"
        );
        assert!(s.ended().is_none());
    }

    /// Greetings from a hostile peer: `last_received` at the extremes of u64.
    #[test]
    fn a_greeting_claiming_impossible_receipts_ends_the_session_by_name() {
        for claim in [u64::MAX, u64::MAX - 1, 1 << 63, 5] {
            // Server: a HELLO for a new session that claims DATA never sent.
            let mut s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
            let hello = Greeting {
                last_received: claim,
                ..Greeting::new_session()
            };
            s.handle_greeting(t(0), hello);
            assert_eq!(s.ended(), Some(SessionEnd::Lost { undelivered: 0 }));
            // Client: the same in a WELCOME, with messages queued.
            let mut c = Session::client(cfg(), t(0));
            c.send(b"queued").unwrap();
            let mut welcome = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0)).greeting();
            welcome.last_received = claim;
            c.handle_greeting(t(0), welcome);
            assert_eq!(c.ended(), Some(SessionEnd::Lost { undelivered: 1 }));
        }
        // And a resume that forgets everything (0) after acknowledged messages.
        let (mut c, mut s) = connected_pair();
        c.send(b"a").unwrap();
        flow(&mut c, &mut s, t(1));
        s.handle_timeout(t(100));
        flow(&mut s, &mut c, t(100));
        c.send(b"b").unwrap();
        c.handle_link_lost(t(101));
        let mut forgot = s.greeting();
        forgot.last_received = 0;
        c.handle_greeting(t(102), forgot);
        assert_eq!(c.ended(), Some(SessionEnd::Lost { undelivered: 1 }));
    }

    /// DATA, SKIP and ACK with sequence numbers at the extremes of u64, or far
    /// ahead/behind: a named outcome each, never a panic (tests run with
    /// overflow checks).
    #[test]
    fn extreme_sequence_numbers_are_named_outcomes() {
        for seq in [u64::MAX, u64::MAX - 1, 1 << 63, 3] {
            let (_, mut s) = connected_pair();
            assert_eq!(s.handle_data(t(1), seq), Received::Lost, "DATA {seq}");
            assert_eq!(s.ended(), Some(SessionEnd::Lost { undelivered: 0 }));
            let (_, mut s) = connected_pair();
            assert_eq!(s.handle_skip(t(1), seq), Received::Lost, "SKIP {seq}");
            let (mut c, _) = connected_pair();
            c.send(b"m").unwrap();
            c.handle_ack(seq);
            assert_eq!(
                c.ended(),
                Some(SessionEnd::Lost { undelivered: 1 }),
                "ACK {seq} of nothing written"
            );
        }
        // Zero and "behind": duplicates and no-ops, counted, the session lives.
        let (mut c, mut s) = connected_pair();
        assert_eq!(s.handle_data(t(1), 0), Received::Duplicate);
        assert_eq!(s.handle_data(t(1), 1), Received::Deliver);
        assert_eq!(s.handle_data(t(1), 1), Received::Duplicate);
        assert_eq!(s.handle_skip(t(1), 0), Received::Duplicate);
        c.handle_ack(0);
        assert_eq!((c.ended(), s.ended()), (None, None));
        assert_eq!(s.duplicates(), 3);
    }

    #[test]
    fn backoff_with_the_largest_durations_does_not_overflow() {
        let b = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
            max_attempts: None,
        };
        assert!(b.delay(u32::MAX, u64::MAX).is_some());
    }

    #[test]
    fn with_reserve_reply_a_message_waits_for_room_for_its_reply() {
        let rr = SessionConfig {
            reserve_reply: true,
            ..cfg()
        };
        let mut s = Session::server(rr, 7, [9; TOKEN_LEN], t(0));
        let mut c = Session::client(cfg(), t(0));
        s.handle_greeting(t(0), c.greeting());
        c.handle_greeting(t(0), s.greeting());
        // Six replies fill the queue (max_depth_disconnected, connected too):
        // the seventh request waits.
        for seq in 1..=6 {
            assert_eq!(s.handle_data_sized(t(1), seq, 1), Received::Deliver);
            s.send(b"r").unwrap();
        }
        assert_eq!(s.handle_data_sized(t(2), 7, 1), Received::Refused);
        assert!(s.is_refusing());
        assert_eq!(s.delivered(), 6, "not taken");
        s.handle_timeout(t(21)); // the ACK of the six goes out
        s.handle_transmitted(Sent::Ack(6));
        assert_eq!(
            s.poll_timeout(),
            Some(t(2) + REFUSAL_HOLD),
            "the hold's end"
        );
        assert!(!s.refusal_expired(t(2) + (REFUSAL_HOLD - Duration::from_millis(1))));
        assert!(s.refusal_expired(t(2) + REFUSAL_HOLD));
        // The driver cut the link; the resume acknowledges the replies it got.
        s.handle_link_lost(t(3));
        assert!(!s.is_refusing());
        let mut hello = c.greeting();
        hello.last_received = 6;
        s.handle_greeting(t(4), hello);
        assert_eq!(s.handle_data_sized(t(4), 7, 1), Received::Deliver);
        // Bytes count too: a message larger than the room left waits.
        s.send(b"r").unwrap(); // seq 7, one byte of the 64-byte ring
        assert_eq!(s.handle_data_sized(t(5), 8, 64), Received::Refused);
        // But with nothing to acknowledge, waiting cannot help: taken.
        s.handle_transmitted(Sent::Data(7));
        s.handle_ack(7);
        assert_eq!(s.unacked(), 0);
        assert_eq!(s.handle_data_sized(t(6), 8, 65), Received::Deliver);
        // Without reserve_reply nothing is refused.
        let (_, mut plain) = connected_pair();
        for _ in 0..4 {
            plain.send(b"r").unwrap();
        }
        assert_eq!(plain.handle_data_sized(t(1), 1, 1), Received::Deliver);
    }

    #[test]
    fn data_goes_out_behind_an_ack_of_everything_delivered() {
        let (mut c, mut s) = connected_pair();
        s.send(b"reply").unwrap();
        flow(&mut s, &mut c, t(1));
        assert_eq!(c.poll_transmit(), None, "batched: no ACK due yet");
        c.send(b"next").unwrap();
        assert_eq!(c.poll_transmit(), Some(Transmit::Ack(1)), "ACK first");
        c.handle_transmitted(Sent::Ack(1));
        assert!(matches!(
            c.poll_transmit(),
            Some(Transmit::Data { seq: 1, .. })
        ));
    }

    #[test]
    fn tokens_are_compared_exactly() {
        let s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
        assert!(s.token_matches(&[9; TOKEN_LEN]));
        let mut bad = [9; TOKEN_LEN];
        bad[15] = 8;
        assert!(!s.token_matches(&bad));
    }

    #[test]
    fn with_depth_keeps_ten_times_the_depth_while_disconnected() {
        let d = SessionConfig::default();
        assert_eq!(d.with_depth(d.max_depth), d, "the defaults follow the rule");
        let s = d.with_depth(7);
        assert_eq!((s.max_depth, s.max_depth_disconnected), (7, 70));
        assert_eq!(
            SessionConfig {
                max_depth: 7,
                max_depth_disconnected: 70,
                ..d
            },
            s
        );
        assert_eq!(d.with_depth(usize::MAX).max_depth_disconnected, usize::MAX);
    }
}
