//! One TCP link's policy state, pure: driven by events and `now`, never by a socket.
//!
//! The driver ([`crate::Node`]) tells a [`Link`] what happened (bytes in, a frame
//! decoded, a frame queued, bytes written, time passed) and asks it what to do
//! (may it read, when must it wake, should it close and why).
//!
//! # Which traffic refreshes which deadline
//!
//! | timer      | set when                         | refreshed by                 | cleared when            | on expiry          |
//! |------------|----------------------------------|------------------------------|-------------------------|--------------------|
//! | `Connect`  | an outbound connect starts       | -                            | connected               | `ConnectTimeout`   |
//! | `Idle`     | the link opens (if configured)   | any byte received            | the link closes         | `IdleTimeout`      |
//! | `Response` | a request is queued              | -                            | a whole frame arrives   | `ResponseTimeout`  |
//! | `Write`    | a write blocks with bytes queued, or a frame finds no buffer | any byte written | tx is empty, or room came back | `WriteTimeout` |
//! | `Frame`    | a frame's first byte is buffered | its bytes (extend, see below)| the frame is whole      | `FrameTimeout`     |
//!
//! `Idle` is lazy: receiving bytes only records `last_rx`; when the scheduled
//! check fires early it moves itself to `last_rx + idle_timeout`. That keeps the
//! node's deadline heap untouched on the per-message path. `Frame` is lazy the
//! same way: its deadline only moves later as the frame arrives
//! ([`crate::frame_deadline`] has the rule), and an entry left from a finished
//! frame fires early and clears itself.
//!
//! While the driver stops reading a link for want of a buffer
//! ([`Link::pause_reads`]), the wait is not the peer's doing: `Idle` does not
//! close it and `Frame` does not run. That wait is bounded, because whoever holds
//! the buffer is bounded by its own `Frame` deadline.
//!
//! Heartbeat, keep-alive message and handshake deadlines live in the embedded
//! [`Liveness`] (see its module for their table); the link adds its own timers
//! to them.

use core::time::Duration;

use crate::error::CloseReason;
use crate::frame_deadline::FrameClock;
use crate::liveness::{Control, Inbound, Liveness, LivenessConfig, Protocol};
use crate::time::Instant;
use crate::wire::{self, Greeting};

/// The timers a link keeps, indexing its timer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Outbound connect must complete.
    Connect = 0,
    /// No byte received for `idle_timeout`.
    Idle = 1,
    /// A reply to the last request must arrive.
    Response = 2,
    /// Queued bytes must make progress.
    Write = 3,
    /// The frame in progress must be complete (slow peers).
    Frame = 4,
}

impl Timer {
    /// Number of timers.
    pub const COUNT: usize = 5;
    /// Every timer, in table order.
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::Connect,
        Timer::Idle,
        Timer::Response,
        Timer::Write,
        Timer::Frame,
    ];
}

/// Counters of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Frames received (including discarded ones).
    pub frames_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Noise bytes skipped between frames (MLLP: stray CR/LF/NUL).
    pub skipped_bytes: u64,
    /// Frames received but not processed (close-after-reply: after the first message).
    pub discarded_frames: u64,
    /// Bytes received toward the reply currently awaited (0 when none is awaited).
    pub partial_reply_bytes: u64,
}

/// Policy knobs a link needs, copied from the node's configuration.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Close after this long without a received byte.
    pub idle_timeout: Option<Duration>,
    /// Close when queued bytes make no progress for this long.
    pub write_timeout: Duration,
    /// Outbound only: give up connecting after this long.
    pub connect_timeout: Duration,
    /// Server close-after-reply policy.
    pub close_after_reply: bool,
    /// Protocol, heartbeat, keep-alive message, handshake, frame timeout.
    pub liveness: LivenessConfig,
}

/// Where a link is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Outbound connect in progress.
    Connecting,
    /// Connected.
    Open,
    /// Closed, with the reason.
    Closed(CloseReason),
}

/// Close-after-reply progress of a server link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyPhase {
    AwaitingMessage,
    MessageDelivered,
    ReplyQueued,
}

/// Bytes a buffer passed to [`Link::poll_transmit`] must hold.
pub const CONTROL_SCRATCH: usize = crate::liveness::MAX_KEEPALIVE + wire::DATA_HEADER;

/// What the driver does with an inbound frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameAction {
    /// Hand `frame[offset..]` to the application.
    Deliver {
        /// Where the application payload starts.
        offset: usize,
        /// The DATA's sequence number (mooring protocol; `None` raw), for the
        /// session layer.
        seq: Option<u64>,
    },
    /// The handshake completed: report the link as connected. Carries the peer's
    /// greeting for the session layer.
    Established(Greeting),
    /// A cumulative ACK for the session layer.
    Ack(u64),
    /// A conflated sequence number for the session layer.
    SessionSkip(u64),
    /// Nothing for the application (control message, or a discarded frame).
    Skip,
    /// Close the link.
    Close(CloseReason),
}

/// One link's policy state machine.
#[derive(Clone, Debug)]
pub struct Link {
    cfg: LinkConfig,
    state: LinkState,
    timers: [Option<Instant>; Timer::COUNT],
    last_rx: Instant,
    phase: ReplyPhase,
    awaiting_reply: bool,
    server: bool,
    closed_by_peer: bool,
    /// The reason the peer's CLOSE message gave (a claim).
    peer_reason: Option<CloseReason>,
    tx_seq: u64,
    greeting: Option<Greeting>,
    live: Liveness,
    frame: FrameClock,
    stats: LinkStats,
}

impl Link {
    /// A link for an accepted connection, open at `now`.
    pub fn accepted(cfg: LinkConfig, now: Instant) -> Self {
        let mut l = Link::new(cfg, true, now);
        l.handle_connected(now);
        l
    }

    /// A link for an outbound connect started at `now`.
    pub fn outbound(cfg: LinkConfig, now: Instant) -> Self {
        let mut l = Link::new(cfg, false, now);
        l.timers[Timer::Connect as usize] = Some(now + cfg.connect_timeout);
        l
    }

    fn new(cfg: LinkConfig, server: bool, now: Instant) -> Self {
        Link {
            cfg,
            state: LinkState::Connecting,
            timers: [None; Timer::COUNT],
            last_rx: now,
            phase: ReplyPhase::AwaitingMessage,
            awaiting_reply: false,
            server,
            closed_by_peer: false,
            peer_reason: None,
            tx_seq: 0,
            greeting: None,
            // Liveness starts when the link opens; until then nothing to keep alive.
            live: Liveness::new(LivenessConfig::default(), server, now),
            frame: FrameClock::default(),
            stats: LinkStats::default(),
        }
    }

    /// The connect completed.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != LinkState::Connecting {
            return;
        }
        self.state = LinkState::Open;
        self.last_rx = now;
        self.live = Liveness::new(self.cfg.liveness, self.server, now);
        if let Some(g) = self.greeting {
            self.live.set_greeting(g);
        }
        self.timers[Timer::Connect as usize] = None;
        self.timers[Timer::Idle as usize] = self.cfg.idle_timeout.map(|d| now + d);
    }

    /// `n` bytes arrived.
    pub fn handle_input(&mut self, now: Instant, n: usize) {
        self.last_rx = now;
        self.live.handle_input(now);
        self.stats.bytes_in += n as u64;
        if self.awaiting_reply {
            self.stats.partial_reply_bytes += n as u64;
        }
    }

    /// After decoding: `pending` bytes of an unfinished frame are buffered (the
    /// bytes the codec neither decoded nor skipped). The first starts the
    /// frame's deadline, the rest extend it. True when the link's next deadline
    /// moved earlier: the driver reschedules it.
    #[must_use]
    pub fn handle_partial_frame(&mut self, now: Instant, pending: usize) -> bool {
        let Some(cfg) = self.cfg.liveness.frame_timeout else {
            return false;
        };
        if !self.frame.progress(now, pending) || !self.is_open() {
            return false;
        }
        // A new frame. An entry left from an earlier frame may be later than
        // this frame's first deadline (it moved with that frame's bytes).
        let slot = &mut self.timers[Timer::Frame as usize];
        let at = crate::time::earliest(*slot, self.frame.deadline(&cfg));
        let earlier = at != *slot;
        *slot = at;
        earlier
    }

    /// The driver stopped reading this link at `now` because no buffer was free
    /// for its frame (not the peer's doing): until [`Link::resume_reads`] the
    /// idle timer does not close it and its frame deadline does not run.
    pub fn pause_reads(&mut self, now: Instant) {
        self.frame.pause(now);
    }

    /// The driver reads the link again (a buffer came free). True when it was
    /// paused: its timers restart, and the driver reschedules it.
    #[must_use]
    pub fn resume_reads(&mut self, now: Instant) -> bool {
        if !self.frame.resume(now) {
            return false;
        }
        // The wait was not idleness.
        self.last_rx = self.last_rx.max(now);
        if !self.is_open() {
            return true;
        }
        let idle = self.cfg.idle_timeout.map(|d| now + d);
        let frame = self
            .cfg
            .liveness
            .frame_timeout
            .and_then(|c| self.frame.deadline(&c));
        for (t, at) in [(Timer::Idle, idle), (Timer::Frame, frame)] {
            let slot = &mut self.timers[t as usize];
            *slot = crate::time::earliest(*slot, at);
        }
        true
    }

    /// `n` noise bytes were skipped between frames.
    pub fn handle_skipped(&mut self, n: usize) {
        self.stats.skipped_bytes += n as u64;
    }

    /// A whole frame was decoded: what to do with it. Protocol messages are handled
    /// here; a close-after-reply link delivers only its first message.
    #[must_use]
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> FrameAction {
        self.stats.frames_in += 1;
        self.frame.finish();
        let (offset, seq) = match self.live.handle_frame(now, frame) {
            Ok(Inbound::Deliver { offset, seq }) => (offset, seq),
            Ok(Inbound::Established(g)) => return FrameAction::Established(g),
            Ok(Inbound::Ack(seq)) => return FrameAction::Ack(seq),
            Ok(Inbound::Skip(seq)) => return FrameAction::SessionSkip(seq),
            Ok(Inbound::Handled) => return FrameAction::Skip,
            Err(r) => {
                if let Ok(wire::Msg::Close(claim)) = wire::decode(frame) {
                    self.closed_by_peer = true;
                    self.peer_reason = match claim {
                        wire::WireReason::Known(c) => Some(c),
                        wire::WireReason::Unknown(_) => None,
                    };
                }
                return FrameAction::Close(r);
            }
        };
        if self.awaiting_reply {
            self.awaiting_reply = false;
            self.live.set_busy(false);
            self.stats.partial_reply_bytes = 0;
            self.timers[Timer::Response as usize] = None;
        }
        if self.cfg.close_after_reply {
            if self.phase != ReplyPhase::AwaitingMessage {
                self.stats.discarded_frames += 1;
                return FrameAction::Skip;
            }
            self.phase = ReplyPhase::MessageDelivered;
        }
        FrameAction::Deliver { offset, seq }
    }

    /// The header to put in front of the next application payload (mooring
    /// protocol: DATA with the next sequence number; raw: none).
    pub fn next_data_header(&self) -> Option<[u8; wire::DATA_HEADER]> {
        (self.live.protocol() == Protocol::Mooring).then(|| wire::data_header(self.tx_seq + 1))
    }

    /// The keep-alive message payload, when one is configured.
    pub fn keepalive_payload(&self) -> Option<&'static [u8]> {
        self.cfg.liveness.keepalive.map(|k| k.payload)
    }

    /// The greeting this side sends in HELLO (client) or WELCOME (server).
    pub fn set_greeting(&mut self, g: Greeting) {
        self.greeting = Some(g);
        self.live.set_greeting(g);
    }

    /// True when [`Link::poll_transmit`] has something.
    pub fn wants_transmit(&self) -> bool {
        self.is_open() && self.live.wants_transmit()
    }

    /// Writes the payload of the next control frame (HELLO, WELCOME, PING, PONG, or
    /// the keep-alive message) into `out`, which must hold [`CONTROL_SCRATCH`]
    /// bytes. The driver frames and queues it, then calls
    /// [`Link::handle_transmitted`]; a control frame it could not queue is dropped
    /// (a full transmit queue is traffic the peer will hear anyway).
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<(Control, usize)> {
        if !self.is_open() {
            return None;
        }
        let c = self.live.poll_transmit()?;
        let n = match c {
            Control::KeepAlive => {
                let p = self.keepalive_payload()?;
                let h = self.next_data_header();
                let hl = h.map_or(0, |h| h.len());
                let dst = out.get_mut(..hl + p.len())?;
                if let Some(h) = h {
                    dst[..hl].copy_from_slice(&h);
                }
                dst[hl..].copy_from_slice(p);
                hl + p.len()
            }
            c => self.live.encode_control(c, out)?,
        };
        Some((c, n))
    }

    /// The control frame `c` from [`Link::poll_transmit`] was queued.
    pub fn handle_transmitted(&mut self, now: Instant, c: Control) {
        if c == Control::KeepAlive {
            // The keep-alive message is an application message on the wire.
            self.handle_queued(now, None);
            return;
        }
        self.live.handle_sent(now);
    }

    /// True when closing for `reason` should tell the peer with a CLOSE message
    /// (mooring protocol, and the peer did not end the link itself).
    pub fn wants_farewell(&self, reason: CloseReason) -> bool {
        self.live.protocol() == Protocol::Mooring
            && (self.live.is_established() || reason == CloseReason::VersionMismatch)
            && !self.closed_by_peer
            && !reason.is_peer_side()
    }

    /// True once open and, with the mooring protocol, the handshake completed.
    pub fn may_send(&self) -> bool {
        self.is_open() && self.live.is_established()
    }

    /// True once the handshake (if any) completed.
    pub fn is_established(&self) -> bool {
        self.live.is_established()
    }

    /// The frame that arrived was not the awaited reply (the application rejected
    /// it, e.g. HL7 correlation): keep waiting for the reply until `deadline`.
    pub fn keep_awaiting_reply(&mut self, deadline: Instant) {
        if self.is_open() {
            self.awaiting_reply = true;
            self.live.set_busy(true);
            self.timers[Timer::Response as usize] = Some(deadline);
        }
    }

    /// A frame was queued for sending; `reply_within` starts the response timer.
    pub fn handle_queued(&mut self, now: Instant, reply_within: Option<Duration>) {
        self.stats.frames_out += 1;
        self.live.handle_sent(now);
        if self.live.protocol() == Protocol::Mooring {
            self.tx_seq += 1;
        }
        if self.cfg.close_after_reply && self.phase == ReplyPhase::MessageDelivered {
            self.phase = ReplyPhase::ReplyQueued;
        }
        if let Some(d) = reply_within {
            self.awaiting_reply = true;
            self.live.set_busy(true);
            self.stats.partial_reply_bytes = 0;
            self.timers[Timer::Response as usize] = Some(now + d);
        }
    }

    /// A write would block with bytes still queued: from now on they must make
    /// progress within `write_timeout`. (Not armed at queue time: most writes
    /// complete at once, and arming and clearing a timer per message costs.)
    pub fn handle_write_blocked(&mut self, now: Instant) {
        if self.timers[Timer::Write as usize].is_none() {
            self.timers[Timer::Write as usize] = Some(now + self.cfg.write_timeout);
        }
    }

    /// A frame found no room and nothing is queued (no buffer to queue it in):
    /// the transmit side is stuck as surely as a blocked write, so the same
    /// timer runs (cleared by [`Link::handle_room`] or any write).
    pub fn handle_no_room(&mut self, now: Instant) {
        self.handle_write_blocked(now);
    }

    /// Room came back with nothing queued: no write is pending, the timer stops.
    pub fn handle_room(&mut self) {
        self.timers[Timer::Write as usize] = None;
    }

    /// `n` bytes were written; `tx_empty` when nothing is left queued. Returns a
    /// reason when the policy says the link is done.
    #[must_use]
    pub fn handle_written(
        &mut self,
        now: Instant,
        n: usize,
        tx_empty: bool,
    ) -> Option<CloseReason> {
        self.stats.bytes_out += n as u64;
        if tx_empty {
            self.timers[Timer::Write as usize] = None;
            if self.phase == ReplyPhase::ReplyQueued {
                return Some(CloseReason::ClosedAfterReply);
            }
        } else if n > 0 {
            self.timers[Timer::Write as usize] = Some(now + self.cfg.write_timeout);
        }
        None
    }

    /// Time passed: returns the reason to close if a timer expired.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        for t in Timer::ALL {
            let Some(at) = self.timers[t as usize] else {
                continue;
            };
            if at > now {
                continue;
            }
            self.timers[t as usize] = None;
            let reason = match t {
                Timer::Connect => CloseReason::ConnectTimeout,
                Timer::Response => CloseReason::ResponseTimeout,
                Timer::Write => CloseReason::WriteTimeout,
                Timer::Idle => {
                    let Some(idle) = self.cfg.idle_timeout else {
                        continue;
                    };
                    if self.frame.is_paused() {
                        continue; // waiting for a buffer is not idleness: resume re-arms
                    }
                    let due = self.last_rx + idle;
                    if due > now {
                        // Traffic since scheduling: move the check, don't close.
                        self.timers[t as usize] = Some(due);
                        continue;
                    }
                    CloseReason::IdleTimeout
                }
                Timer::Frame => {
                    let cfg = self.cfg.liveness.frame_timeout;
                    match cfg.and_then(|c| self.frame.deadline(&c)) {
                        // Between frames, or paused (resume re-arms).
                        None => continue,
                        Some(due) if due > now => {
                            // Bytes bought time since scheduling: move the check.
                            self.timers[t as usize] = Some(due);
                            continue;
                        }
                        Some(_) => CloseReason::FrameTimeout,
                    }
                }
            };
            return Some(reason);
        }
        if self.is_open() {
            return self.live.handle_timeout(now);
        }
        None
    }

    /// The earliest time this link needs [`Link::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.iter().flatten().min().copied();
        let live = if self.is_open() {
            self.live.poll_timeout()
        } else {
            None
        };
        crate::time::earliest(own, live)
    }

    /// The link is closed for `reason`; every timer stops.
    pub fn close(&mut self, reason: CloseReason) {
        if !matches!(self.state, LinkState::Closed(_)) {
            self.state = LinkState::Closed(reason);
        }
        self.timers = [None; Timer::COUNT];
    }

    /// Current state.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// True when open.
    pub fn is_open(&self) -> bool {
        self.state == LinkState::Open
    }

    /// True when the link closes as soon as its queue is written out: a
    /// close-after-reply link with its reply queued. (A driver writing early to
    /// make room would close it before the rest of a reply is queued.)
    pub fn closes_once_written(&self) -> bool {
        self.phase == ReplyPhase::ReplyQueued
    }

    /// True when the driver may read more bytes (open, and not a close-after-reply
    /// link that already has its message).
    pub fn may_read(&self) -> bool {
        self.is_open() && !(self.cfg.close_after_reply && self.phase != ReplyPhase::AwaitingMessage)
    }

    /// How long since the last byte arrived.
    pub fn idle_for(&self, now: Instant) -> Duration {
        now - self.last_rx
    }

    /// The reason the peer gave in its CLOSE message (mooring protocol), if it
    /// sent one with a known reason. It is the peer's claim, unverified: the
    /// link itself closes as `PeerClosed`.
    pub fn peer_reason(&self) -> Option<CloseReason> {
        self.peer_reason
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }
}

/// What to do with a new connection on a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it.
    Accept,
    /// Close the current (stale) link with `StaleReplaced`, then serve it.
    ReplaceStale,
    /// Close it at once with this reason.
    Reject(CloseReason),
}

/// The accept policy, pure: allow-list first, then `max_connections`, then stale
/// recovery (`stale`: the current link's idle time and the stale timeout, only when
/// stale recovery is on and the single slot is taken).
pub fn admit(
    allowed: bool,
    active: usize,
    max_connections: usize,
    stale: Option<(Duration, Duration)>,
) -> Admission {
    if !allowed {
        return Admission::Reject(CloseReason::NotAllowed);
    }
    if active < max_connections {
        return Admission::Accept;
    }
    match stale {
        Some((idle, stale_after)) if idle >= stale_after => Admission::ReplaceStale,
        _ => Admission::Reject(CloseReason::TooManyConnections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_deadline::FrameTimeout;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn cfg() -> LinkConfig {
        LinkConfig {
            idle_timeout: Some(Duration::from_millis(100)),
            write_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(30),
            close_after_reply: false,
            liveness: LivenessConfig::default(),
        }
    }

    fn deliver(l: &mut Link, now: Instant) -> bool {
        matches!(
            l.handle_frame(now, b"MSH|"),
            FrameAction::Deliver { offset: 0, .. }
        )
    }

    #[test]
    fn silent_link_closes_at_exactly_the_idle_timeout() {
        let mut l = Link::accepted(cfg(), t(0));
        assert_eq!(l.poll_timeout(), Some(t(100)));
        assert_eq!(l.handle_timeout(t(99)), None);
        assert_eq!(l.handle_timeout(t(100)), Some(CloseReason::IdleTimeout));
    }

    #[test]
    fn inbound_bytes_push_the_idle_deadline_without_rescheduling() {
        let mut l = Link::accepted(cfg(), t(0));
        l.handle_input(t(60), 5);
        assert_eq!(l.poll_timeout(), Some(t(100)), "lazy: still the old check");
        assert_eq!(l.handle_timeout(t(100)), None);
        assert_eq!(l.poll_timeout(), Some(t(160)));
        assert_eq!(l.handle_timeout(t(160)), Some(CloseReason::IdleTimeout));
    }

    #[test]
    fn activity_exactly_at_the_deadline_keeps_the_link() {
        let mut l = Link::accepted(cfg(), t(0));
        l.handle_input(t(100), 1);
        assert_eq!(l.handle_timeout(t(100)), None);
        assert_eq!(l.poll_timeout(), Some(t(200)));
    }

    #[test]
    fn outbound_connect_times_out() {
        let mut l = Link::outbound(cfg(), t(0));
        assert_eq!(l.poll_timeout(), Some(t(30)));
        assert_eq!(l.handle_timeout(t(30)), Some(CloseReason::ConnectTimeout));
    }

    #[test]
    fn connected_link_stops_the_connect_timer_and_starts_idle() {
        let mut l = Link::outbound(cfg(), t(0));
        l.handle_connected(t(10));
        assert_eq!(l.poll_timeout(), Some(t(110)));
    }

    #[test]
    fn reply_clears_the_response_timer() {
        let mut l = Link::accepted(
            LinkConfig {
                idle_timeout: None,
                ..cfg()
            },
            t(0),
        );
        l.handle_queued(t(0), Some(Duration::from_millis(40)));
        assert_eq!(l.handle_written(t(1), 10, true), None);
        l.handle_input(t(5), 3);
        assert_eq!(l.stats().partial_reply_bytes, 3);
        assert!(deliver(&mut l, t(6)));
        assert_eq!(l.stats().partial_reply_bytes, 0);
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn missing_reply_is_a_response_timeout() {
        let mut l = Link::accepted(
            LinkConfig {
                idle_timeout: None,
                ..cfg()
            },
            t(0),
        );
        l.handle_queued(t(0), Some(Duration::from_millis(40)));
        assert_eq!(l.handle_written(t(1), 10, true), None);
        assert_eq!(l.handle_timeout(t(40)), Some(CloseReason::ResponseTimeout));
    }

    #[test]
    fn stuck_writes_are_a_write_timeout_and_progress_refreshes_it() {
        let mut l = Link::accepted(
            LinkConfig {
                idle_timeout: None,
                ..cfg()
            },
            t(0),
        );
        l.handle_queued(t(0), None);
        assert_eq!(
            l.poll_timeout(),
            None,
            "no timer while writes complete at once"
        );
        l.handle_write_blocked(t(10));
        assert_eq!(l.poll_timeout(), Some(t(60)));
        assert_eq!(l.handle_written(t(30), 4, false), None);
        assert_eq!(l.handle_timeout(t(60)), None);
        assert_eq!(l.handle_timeout(t(80)), Some(CloseReason::WriteTimeout));
    }

    #[test]
    fn a_frame_without_a_buffer_for_write_timeout_is_a_write_timeout_unless_room_comes_back() {
        let quiet = LinkConfig {
            idle_timeout: None,
            ..cfg()
        };
        let mut l = Link::accepted(quiet, t(0));
        l.handle_no_room(t(10));
        assert_eq!(l.poll_timeout(), Some(t(60)));
        assert_eq!(l.handle_timeout(t(60)), Some(CloseReason::WriteTimeout));

        let mut l = Link::accepted(quiet, t(0));
        l.handle_no_room(t(10));
        l.handle_room();
        assert_eq!(l.poll_timeout(), None, "room came back: nothing is stuck");
    }

    #[test]
    fn close_after_reply_delivers_one_message_and_closes_once_the_reply_is_written() {
        let mut l = Link::accepted(
            LinkConfig {
                close_after_reply: true,
                ..cfg()
            },
            t(0),
        );
        assert!(l.may_read());
        assert!(deliver(&mut l, t(1)));
        assert!(
            !l.may_read(),
            "nothing after the first message is processed"
        );
        assert!(!deliver(&mut l, t(2)));
        assert_eq!(l.stats().discarded_frames, 1);
        assert!(!l.closes_once_written());
        l.handle_queued(t(3), None);
        assert!(l.closes_once_written(), "the reply is queued");
        assert_eq!(l.handle_written(t(4), 2, false), None);
        assert_eq!(
            l.handle_written(t(5), 2, true),
            Some(CloseReason::ClosedAfterReply)
        );
    }

    #[test]
    fn closed_link_has_no_deadline() {
        let mut l = Link::accepted(cfg(), t(0));
        l.close(CloseReason::LocalClose);
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(l.state(), LinkState::Closed(CloseReason::LocalClose));
        l.close(CloseReason::Reset);
        assert_eq!(
            l.state(),
            LinkState::Closed(CloseReason::LocalClose),
            "first reason wins"
        );
    }

    /// Idle off unless given; frame timeout `ms` + 1 ms per byte (1000 B/s),
    /// at most 10 s.
    fn slow_cfg(frame_ms: u64, idle_ms: Option<u64>) -> LinkConfig {
        LinkConfig {
            idle_timeout: idle_ms.map(Duration::from_millis),
            liveness: LivenessConfig {
                frame_timeout: Some(FrameTimeout {
                    timeout: Duration::from_millis(frame_ms),
                    min_rate: 1000,
                    max: Duration::from_secs(10),
                }),
                ..LivenessConfig::default()
            },
            ..cfg()
        }
    }

    #[test]
    fn a_stalled_frame_closes_at_its_deadline_which_its_bytes_extend() {
        let mut l = Link::accepted(slow_cfg(300, None), t(0));
        assert_eq!(l.poll_timeout(), None, "no frame, no deadline");
        assert!(l.handle_partial_frame(t(10), 1), "first byte: schedule");
        assert_eq!(l.poll_timeout(), Some(t(311)));
        assert!(!l.handle_partial_frame(t(200), 100), "lazy: no reschedule");
        assert_eq!(l.handle_timeout(t(311)), None);
        assert_eq!(l.poll_timeout(), Some(t(410)), "100 bytes bought 100 ms");
        assert_eq!(l.handle_timeout(t(409)), None);
        assert_eq!(l.handle_timeout(t(410)), Some(CloseReason::FrameTimeout));
    }

    #[test]
    fn a_whole_frame_stops_its_deadline_and_the_next_frame_starts_its_own() {
        let mut l = Link::accepted(slow_cfg(300, None), t(0));
        assert!(l.handle_partial_frame(t(0), 5_000));
        assert_eq!(l.handle_timeout(t(300)), None);
        assert_eq!(l.poll_timeout(), Some(t(5_300)));
        assert!(deliver(&mut l, t(400)));
        // The next frame's deadline is earlier than the entry the last one left.
        assert!(l.handle_partial_frame(t(500), 1));
        assert_eq!(l.poll_timeout(), Some(t(801)));
        assert!(deliver(&mut l, t(600)));
        assert_eq!(l.handle_timeout(t(801)), None, "whole: no close");
        assert_eq!(l.poll_timeout(), None, "and the entry cleared itself");
    }

    #[test]
    fn a_trickle_keeps_the_idle_timer_quiet_but_not_the_frame_deadline() {
        let mut cfg = slow_cfg(1_000, Some(100));
        if let Some(f) = cfg.liveness.frame_timeout.as_mut() {
            f.min_rate = 1; // a byte buys a second: the trickle would live 10 s
        }
        let mut l = Link::accepted(cfg, t(0));
        let mut closed = None;
        for ms in (0..20_000).step_by(10) {
            if ms % 50 == 0 {
                // One byte every 50 ms of a frame that never ends.
                l.handle_input(t(ms), 1);
                if l.handle_partial_frame(t(ms), 1 + ms as usize / 50) {
                    assert!(l.poll_timeout().is_some());
                }
            }
            if l.poll_timeout().is_some_and(|at| at <= t(ms)) {
                if let Some(r) = l.handle_timeout(t(ms)) {
                    closed = Some((ms, r));
                    break;
                }
            }
        }
        assert_eq!(
            closed,
            Some((10_000, CloseReason::FrameTimeout)),
            "cut at the maximum"
        );
    }

    #[test]
    fn a_link_paused_for_a_buffer_is_neither_idle_nor_late_until_resumed() {
        let mut l = Link::accepted(
            LinkConfig {
                liveness: LivenessConfig {
                    frame_timeout: Some(FrameTimeout {
                        min_rate: 0,
                        ..FrameTimeout::default()
                    }),
                    ..LivenessConfig::default()
                },
                ..slow_cfg(0, Some(100))
            },
            t(0),
        );
        l.handle_input(t(0), 16_000);
        assert!(l.handle_partial_frame(t(0), 16_000));
        l.pause_reads(t(50));
        for ms in [100, 1_000, 30_000, 600_000] {
            assert_eq!(l.handle_timeout(t(ms)), None, "paused at {ms} ms");
        }
        assert_eq!(l.poll_timeout(), None, "nothing runs while paused");
        assert!(l.resume_reads(t(600_000)));
        assert!(!l.resume_reads(t(600_001)), "once");
        assert_eq!(
            l.poll_timeout(),
            Some(t(600_100)),
            "idle counts from resume"
        );
        // The peer trickles on: idle stays quiet, and the frame gets its 30 s
        // without the pause: 50 ms before it, 29,950 ms after.
        let mut closed = None;
        for ms in (600_050..700_000).step_by(50) {
            l.handle_input(t(ms), 1);
            if let Some(r) = l.handle_timeout(t(ms)) {
                closed = Some((ms, r));
                break;
            }
        }
        assert_eq!(closed, Some((629_950, CloseReason::FrameTimeout)));
    }

    #[test]
    fn huge_pending_counts_are_capped_not_overflowed_and_off_means_off() {
        let mut l = Link::accepted(slow_cfg(300, None), t(u64::MAX - 20_000));
        assert!(l.handle_partial_frame(t(u64::MAX - 20_000), usize::MAX));
        assert_eq!(l.handle_timeout(t(u64::MAX - 19_700)), None);
        assert_eq!(l.poll_timeout(), Some(t(u64::MAX - 10_000)), "the 10 s cap");
        assert_eq!(
            l.handle_timeout(t(u64::MAX)),
            Some(CloseReason::FrameTimeout)
        );
        let mut off = Link::accepted(
            LinkConfig {
                liveness: LivenessConfig {
                    frame_timeout: None,
                    ..LivenessConfig::default()
                },
                ..cfg()
            },
            t(0),
        );
        off.handle_input(t(0), 1);
        assert!(!off.handle_partial_frame(t(0), 1));
        assert_eq!(
            off.handle_timeout(t(u64::MAX)),
            Some(CloseReason::IdleTimeout)
        );
    }

    #[test]
    fn admission_checks_allow_list_then_capacity_then_staleness() {
        let s = Duration::from_secs;
        assert_eq!(
            admit(false, 0, 10, None),
            Admission::Reject(CloseReason::NotAllowed)
        );
        assert_eq!(admit(true, 9, 10, None), Admission::Accept);
        assert_eq!(
            admit(true, 10, 10, None),
            Admission::Reject(CloseReason::TooManyConnections)
        );
        assert_eq!(
            admit(true, 1, 1, Some((s(119), s(120)))),
            Admission::Reject(CloseReason::TooManyConnections)
        );
        assert_eq!(
            admit(true, 1, 1, Some((s(120), s(120)))),
            Admission::ReplaceStale
        );
        assert_eq!(
            admit(false, 1, 1, Some((s(500), s(120)))),
            Admission::Reject(CloseReason::NotAllowed)
        );
    }
}
