//! One TCP link's protocol core, pure: driven by events and `now`, never by a socket.
//!
//! A [`Link`] is the one state machine of one link: its policy (timeouts,
//! close-after-reply), its liveness (handshake, heartbeat, keep-alive message:
//! [`liveness`]) and its framing state (the frame deadline of
//! [`crate::frame_deadline`]), with ONE timer table ([`Timer`]) and one
//! `last_rx`. It decodes each protocol frame once and writes every per-link
//! control frame itself (HELLO, WELCOME, PING, PONG, CLOSE, the keep-alive
//! message, the MLLP commit ACK); the driver ([`crate::Node`]) moves bytes and
//! reads the clock. (Session messages, ACK/SKIP and replayed DATA, belong to the
//! session layer.)
//!
//! # How a driver calls it
//!
//! 1. Make it with [`Link::accepted`], or [`Link::outbound`] and then
//!    [`Link::handle_connected`] once the connect completes; before any
//!    handshake output, [`Link::set_greeting`] (mooring sessions).
//! 2. After each read of `n` bytes: [`Link::handle_input`]. Then decode the
//!    buffered bytes with the framing codec, and for each result:
//!    - noise skipped: [`Link::handle_skipped`];
//!    - a whole frame: [`Link::handle_frame`], and do what its [`FrameAction`]
//!      says; for an application message that no session takes,
//!      [`Link::handle_delivery`] next (MLLP commit ACKs);
//!    - an unfinished frame: [`Link::handle_partial_frame`] with the bytes
//!      still buffered (reschedule when it says so);
//!    - a codec error: close with [`Link::handle_decode_error`]'s reason.
//! 3. Whenever [`Link::wants_transmit`]: drain [`Link::poll_transmit`], frame
//!    and queue each payload, and report each with [`Link::handle_transmitted`]
//!    (one it could not queue is dropped: the peer hears other traffic).
//! 4. Application frames: [`Link::may_send`], then the header from
//!    [`Link::next_data_header`], then [`Link::handle_queued`] once queued.
//! 5. Writes: [`Link::handle_written`] after each, [`Link::handle_write_blocked`]
//!    when the socket pushes back, [`Link::handle_no_room`]/[`Link::handle_room`]
//!    when a frame finds no buffer / room comes back. No buffer to read into:
//!    [`Link::pause_reads`], then [`Link::resume_reads`].
//! 6. After any of these, the link's deadline is [`Link::poll_timeout`]; at or
//!    after it, [`Link::handle_timeout`], then step 3.
//! 7. To close: write the bytes of [`Link::farewell`] if it gives any (best
//!    effort), then [`Link::close`].
//!
//! A returned [`CloseReason`] (from `handle_timeout`, `handle_written`,
//! `FrameAction::Close`, `handle_decode_error`) means: close now, step 7.
//!
//! # Which traffic refreshes which deadline
//!
//! | timer            | set when                         | refreshed by                 | cleared when            | on expiry          |
//! |------------------|----------------------------------|------------------------------|-------------------------|--------------------|
//! | `Connect`        | an outbound connect starts       | -                            | connected               | `ConnectTimeout`   |
//! | `Idle`           | the link opens (if configured)   | any byte received            | the link closes         | `IdleTimeout`      |
//! | `Response`       | a request is queued              | -                            | a whole frame arrives   | `ResponseTimeout`  |
//! | `Write`          | a write blocks with bytes queued, or a frame finds no buffer | any byte written | tx is empty, or room came back | `WriteTimeout` |
//! | `Frame`          | a frame's first byte is buffered | its bytes (extend, see below)| the frame is whole      | `FrameTimeout`     |
//! | `Handshake`      | the link opens (mooring)         | -                            | HELLO (server) / WELCOME (client) received | `HandshakeTimeout` |
//! | `HeartbeatSend`  | the link opens (heartbeat on)    | any frame sent (after `interval`; accepting side 1.5 x) | - | queue PING |
//! | `HeartbeatDead`  | the link opens (heartbeat on)    | any byte received            | -                       | `HeartbeatTimeout` |
//! | `KeepAliveSend`  | the link opens (keep-alive on)   | any byte received (not sent while a reply is awaited) | - | queue the keep-alive message |
//! | `KeepAliveReply` | the keep-alive message is queued (with `timeout`) | -           | any frame received      | `KeepAliveTimeout` |
//! | `TlsHandshake`   | a TLS link opens ([`Link::start_tls_handshake`]) | -             | the TLS handshake completed | `TlsHandshakeTimeout` |
//!
//! Every timer stops when the link closes. `Idle`, `HeartbeatSend`,
//! `HeartbeatDead` and `KeepAliveSend` are lazy: traffic only records `last_rx`
//! (or the last send); when the scheduled check fires early it moves itself to
//! the deadline the traffic earned. That keeps the node's deadline heap
//! untouched on the per-message path. `Frame` is lazy the same way: its
//! deadline only moves later as the frame arrives ([`crate::frame_deadline`]
//! has the rule), and an entry left from a finished frame fires early and
//! clears itself.
//!
//! While the driver stops reading a link for want of a buffer
//! ([`Link::pause_reads`]), the wait is not the peer's doing: `Idle` does not
//! close it and `Frame` does not run, and on [`Link::resume_reads`] the link
//! counts as having just received (`last_rx`). That wait is bounded, because
//! whoever holds the buffer is bounded by its own `Frame` deadline.

pub(crate) mod keepalive;
pub mod liveness;
#[cfg(test)]
mod liveness_tests;
#[cfg(test)]
mod tests;
mod timers;

pub use timers::Timer;

use core::time::Duration;

use crate::error::CloseReason;
use crate::frame::{FrameError, MLLP_ACK, MLLP_NAK};
use crate::frame_deadline::FrameClock;
use crate::time::Instant;
use crate::wire::{self, Greeting, Msg, WireReason};
use liveness::{LivenessConfig, Protocol};

/// Control output a link wants sent (see [`Link::poll_transmit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// HELLO (client).
    Hello,
    /// WELCOME (server).
    Welcome,
    /// PING.
    Ping,
    /// PONG.
    Pong,
    /// The keep-alive message (an application message on the wire).
    KeepAlive,
    /// The MLLP commit ACK (`0x06`) a receiver answers a message with.
    CommitAck,
}

// Pending control output, one bit each, sent in this order.
pub(crate) const OUT_HELLO: u8 = 1;
pub(crate) const OUT_WELCOME: u8 = 2;
pub(crate) const OUT_PONG: u8 = 4;
pub(crate) const OUT_PING: u8 = 8;
pub(crate) const OUT_KEEPALIVE: u8 = 16;
pub(crate) const OUT_COMMIT_ACK: u8 = 32;

const OUT_ORDER: [(u8, Control); 6] = [
    (OUT_HELLO, Control::Hello),
    (OUT_WELCOME, Control::Welcome),
    (OUT_PONG, Control::Pong),
    (OUT_PING, Control::Ping),
    (OUT_KEEPALIVE, Control::KeepAlive),
    (OUT_COMMIT_ACK, Control::CommitAck),
];

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
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Close after this long without a received byte.
    pub idle_timeout: Option<Duration>,
    /// Close when queued bytes make no progress for this long.
    pub write_timeout: Duration,
    /// Outbound only: give up connecting after this long.
    pub connect_timeout: Duration,
    /// Server close-after-reply policy.
    pub close_after_reply: bool,
    /// MLLP release 2 commit ACKs (`NodeConfig::mllp_commit_ack`): a server
    /// link answers every message with one; any link takes an inbound ACK/NAK
    /// as the reply.
    pub mllp_commit_ack: bool,
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
pub const CONTROL_SCRATCH: usize = liveness::MAX_KEEPALIVE + wire::DATA_HEADER;

/// Bytes a buffer passed to [`Link::farewell`] must hold.
pub const FAREWELL_SCRATCH: usize = 3;

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

/// One link's protocol state machine (see the module docs).
#[derive(Clone, Debug)]
pub struct Link {
    cfg: LinkConfig,
    state: LinkState,
    timers: [Option<Instant>; Timer::COUNT],
    /// Last byte received (or reads resumed after a pause).
    last_rx: Instant,
    /// Last frame queued (heartbeat send).
    last_tx: Instant,
    /// Last keep-alive message queued.
    last_keepalive: Instant,
    phase: ReplyPhase,
    /// A request awaits its reply (and that request probes the peer: no
    /// keep-alive message meanwhile).
    awaiting_reply: bool,
    server: bool,
    /// Open and, with the mooring protocol, the handshake completed.
    established: bool,
    closed_by_peer: bool,
    /// The reason the peer's CLOSE message gave (a claim).
    peer_reason: Option<CloseReason>,
    tx_seq: u64,
    /// Sent in HELLO (client) or WELCOME (server).
    greeting: Greeting,
    /// Pending control output (`OUT_*` bits).
    out: u8,
    frame: FrameClock,
    stats: LinkStats,
    /// Raw protocol, no close-after-reply, no MLLP commit ACKs: fixed by the
    /// configuration for the link's life (see [`Link::is_plain_open`]).
    plain: bool,
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
        l.timers[Timer::Connect as usize] = Some(now + l.cfg.connect_timeout);
        l
    }

    fn new(cfg: LinkConfig, server: bool, now: Instant) -> Self {
        let plain = cfg.liveness.protocol == Protocol::Raw
            && !cfg.close_after_reply
            && !cfg.mllp_commit_ack;
        Link {
            cfg,
            state: LinkState::Connecting,
            timers: [None; Timer::COUNT],
            last_rx: now,
            last_tx: now,
            last_keepalive: now,
            phase: ReplyPhase::AwaitingMessage,
            awaiting_reply: false,
            server,
            // Liveness starts when the link opens; until then nothing is spoken.
            established: false,
            closed_by_peer: false,
            peer_reason: None,
            tx_seq: 0,
            greeting: Greeting::new_session(),
            out: 0,
            frame: FrameClock::default(),
            stats: LinkStats::default(),
            plain,
        }
    }

    /// The protocol spoken (a link that is not open yet sends nothing, so
    /// nothing asks before).
    fn protocol(&self) -> Protocol {
        self.cfg.liveness.protocol
    }

    /// The connect completed.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != LinkState::Connecting {
            return;
        }
        self.state = LinkState::Open;
        self.last_rx = now;
        self.timers[Timer::Connect as usize] = None;
        self.timers[Timer::Idle as usize] = self.cfg.idle_timeout.map(|d| now + d);
        self.start_liveness(now);
    }

    /// TLS: the link's TLS handshake starts now (the link is open) and must
    /// complete within `timeout`, or the link closes with `TlsHandshakeTimeout`.
    pub fn start_tls_handshake(&mut self, now: Instant, timeout: Duration) {
        if self.is_open() {
            self.timers[Timer::TlsHandshake as usize] = Some(now + timeout);
        }
    }

    /// TLS: the handshake completed; its deadline stops.
    pub fn handle_tls_established(&mut self) {
        self.timers[Timer::TlsHandshake as usize] = None;
    }

    /// `n` bytes arrived.
    pub fn handle_input(&mut self, now: Instant, n: usize) {
        self.last_rx = now;
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

    /// A whole frame was decoded: what to do with it. Protocol messages are
    /// handled here (decoded once); a close-after-reply link delivers only its
    /// first message.
    #[must_use]
    pub fn handle_frame(&mut self, _now: Instant, frame: &[u8]) -> FrameAction {
        self.frame_arrived();
        let (offset, seq) = match self.protocol() {
            Protocol::Raw => (0, None),
            Protocol::Mooring => match self.handle_protocol_frame(frame) {
                Ok((offset, seq)) => (offset, Some(seq)),
                Err(action) => return action,
            },
        };
        self.reply_arrived();
        if self.cfg.close_after_reply {
            if self.phase != ReplyPhase::AwaitingMessage {
                self.stats.discarded_frames += 1;
                return FrameAction::Skip;
            }
            self.phase = ReplyPhase::MessageDelivered;
        }
        FrameAction::Deliver { offset, seq }
    }

    /// True while open, for a link whose every inbound frame is an application
    /// message to deliver whole: raw protocol, no close-after-reply, no MLLP
    /// commit ACKs. Its frames may then go through [`Link::handle_plain_frame`].
    #[inline]
    pub fn is_plain_open(&self) -> bool {
        self.plain && self.state == LinkState::Open
    }

    /// [`Link::handle_skipped`] then [`Link::handle_frame`], for a link that
    /// [`Link::is_plain_open`] (whose answer is then always `Deliver` of the
    /// whole frame): the same changes, without the protocol's steps. True when
    /// its deadline ([`Link::poll_timeout`]) may have moved (a keep-alive
    /// reply or a response arrived): only then need the driver reschedule it.
    #[inline]
    pub fn handle_plain_frame(&mut self, skipped: usize) -> bool {
        self.handle_skipped(skipped);
        let keepalive = self.frame_arrived();
        let reply = self.reply_arrived();
        keepalive || reply
    }

    /// Any inbound frame: counted, its frame deadline done, and an answer to a
    /// keep-alive message. True when that stopped the keep-alive reply timer.
    #[inline]
    fn frame_arrived(&mut self) -> bool {
        self.stats.frames_in += 1;
        self.frame.finish();
        self.timers[Timer::KeepAliveReply as usize].take().is_some()
    }

    /// An application message arrived: the reply awaited, if any. True when
    /// that stopped the response timer.
    #[inline]
    fn reply_arrived(&mut self) -> bool {
        if !self.awaiting_reply {
            return false;
        }
        self.awaiting_reply = false;
        self.stats.partial_reply_bytes = 0;
        self.timers[Timer::Response as usize].take().is_some()
    }

    /// An application message `payload` (from [`FrameAction::Deliver`]) that no
    /// session takes: with MLLP commit ACKs, an inbound ACK/NAK is the reply to
    /// what this side sent (`Some(accepted)`: not a message), and a server link
    /// queues its commit ACK for any other ([`Link::poll_transmit`]).
    #[must_use]
    pub fn handle_delivery(&mut self, payload: &[u8]) -> Option<bool> {
        if !self.cfg.mllp_commit_ack {
            return None;
        }
        if payload == MLLP_ACK || payload == MLLP_NAK {
            return Some(payload == MLLP_ACK);
        }
        if self.server && self.may_send() {
            self.out |= OUT_COMMIT_ACK;
        }
        None
    }

    /// The codec found the inbound bytes unframeable: the reason to close.
    pub fn handle_decode_error(&self, e: FrameError) -> CloseReason {
        match e {
            FrameError::TooLarge => CloseReason::FrameTooLarge,
            FrameError::Bad => CloseReason::BadFrame,
        }
    }

    /// The header to put in front of the next application payload (mooring
    /// protocol: DATA with the next sequence number; raw: none). Inline: asked
    /// per frame queued, and a raw link's answer is one comparison.
    #[inline]
    pub fn next_data_header(&self) -> Option<[u8; wire::DATA_HEADER]> {
        (self.protocol() == Protocol::Mooring).then(|| wire::data_header(self.tx_seq + 1))
    }

    /// The greeting this side sends in HELLO (client) or WELCOME (server), set
    /// from the session (a new-session greeting by default).
    pub fn set_greeting(&mut self, g: Greeting) {
        self.greeting = g;
    }

    /// True when [`Link::poll_transmit`] has something.
    pub fn wants_transmit(&self) -> bool {
        self.is_open() && self.out != 0
    }

    /// Writes the payload of the next control frame (HELLO, WELCOME, PONG, PING,
    /// the keep-alive message, the MLLP commit ACK) into `out`, which must hold
    /// [`CONTROL_SCRATCH`] bytes. The driver frames and queues it, then calls
    /// [`Link::handle_transmitted`]; a control frame it could not queue is
    /// dropped (a full transmit queue is traffic the peer will hear anyway).
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<(Control, usize)> {
        if !self.is_open() {
            return None;
        }
        let (bit, c) = OUT_ORDER.into_iter().find(|(bit, _)| self.out & bit != 0)?;
        self.out &= !bit;
        let n = match c {
            Control::Hello => wire::encode(&Msg::Hello(self.greeting), out)?,
            Control::Welcome => wire::encode(&Msg::Welcome(self.greeting), out)?,
            Control::Ping => wire::encode(&Msg::Ping, out)?,
            Control::Pong => wire::encode(&Msg::Pong, out)?,
            Control::KeepAlive => {
                let k = self.cfg.liveness.keepalive.as_ref()?;
                self.write_app_payload(&k.payload, out)?
            }
            Control::CommitAck => self.write_app_payload(MLLP_ACK, out)?,
        };
        Some((c, n))
    }

    /// An application payload a control step sends, behind its DATA header.
    fn write_app_payload(&self, p: &[u8], out: &mut [u8]) -> Option<usize> {
        let h = self.next_data_header();
        let hl = h.map_or(0, |h| h.len());
        let dst = out.get_mut(..hl + p.len())?;
        if let Some(h) = h {
            dst[..hl].copy_from_slice(&h);
        }
        dst[hl..].copy_from_slice(p);
        Some(hl + p.len())
    }

    /// The control frame `c` from [`Link::poll_transmit`] was queued.
    pub fn handle_transmitted(&mut self, now: Instant, c: Control) {
        match c {
            // Application messages on the wire.
            Control::KeepAlive | Control::CommitAck => self.handle_queued(now, None),
            _ => self.last_tx = now,
        }
    }

    /// The CLOSE message to send before closing for `reason`, written into
    /// `out` ([`FAREWELL_SCRATCH`] bytes): mooring protocol, and the peer did
    /// not end the link itself. The driver writes it best effort, then calls
    /// [`Link::close`]; the peer logs it as its `peer_reason`.
    #[must_use]
    pub fn farewell(&self, reason: CloseReason, out: &mut [u8]) -> Option<usize> {
        let wanted = self.protocol() == Protocol::Mooring
            && (self.established || reason == CloseReason::VersionMismatch)
            && !self.closed_by_peer
            && !reason.is_peer_side();
        if !wanted {
            return None;
        }
        wire::encode(&Msg::Close(WireReason::Known(reason)), out)
    }

    /// True once open and, with the mooring protocol, the handshake completed.
    pub fn may_send(&self) -> bool {
        self.is_open() && self.established
    }

    /// True once the handshake (if any) completed.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The frame that arrived was not the awaited reply (the application rejected
    /// it, e.g. HL7 correlation): keep waiting for the reply until `deadline`.
    pub fn keep_awaiting_reply(&mut self, deadline: Instant) {
        if self.is_open() {
            self.awaiting_reply = true;
            self.timers[Timer::Response as usize] = Some(deadline);
        }
    }

    /// A frame was queued for sending; `reply_within` starts the response timer.
    pub fn handle_queued(&mut self, now: Instant, reply_within: Option<Duration>) {
        self.stats.frames_out += 1;
        self.last_tx = now;
        if self.protocol() == Protocol::Mooring {
            self.tx_seq += 1;
        }
        if self.cfg.close_after_reply && self.phase == ReplyPhase::MessageDelivered {
            self.phase = ReplyPhase::ReplyQueued;
        }
        if let Some(d) = reply_within {
            self.awaiting_reply = true;
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
