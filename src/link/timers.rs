//! The link's one timer table: every deadline of one link, policy and liveness,
//! in `[Option<Instant>; Timer::COUNT]`, and the expiry step that serves them all.

use super::Link;
use crate::error::CloseReason;
use crate::time::Instant;

/// The timers a link keeps, indexing its timer table (the table in the
/// `crate::link` module docs says what sets and refreshes each).
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
    /// Mooring protocol: the handshake must complete.
    Handshake = 5,
    /// Heartbeat: PING after this long without sending.
    HeartbeatSend = 6,
    /// Heartbeat: dead after this long without receiving.
    HeartbeatDead = 7,
    /// Keep-alive message: send it after this long without receiving.
    KeepAliveSend = 8,
    /// Keep-alive message: some frame must answer it.
    KeepAliveReply = 9,
    /// TLS: the handshake must complete.
    TlsHandshake = 10,
}

impl Timer {
    /// Number of timers.
    pub const COUNT: usize = 11;
    /// Every timer, in table order (the order expiries are checked in).
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::Connect,
        Timer::Idle,
        Timer::Response,
        Timer::Write,
        Timer::Frame,
        Timer::Handshake,
        Timer::HeartbeatSend,
        Timer::HeartbeatDead,
        Timer::KeepAliveSend,
        Timer::KeepAliveReply,
        Timer::TlsHandshake,
    ];
}

impl Link {
    /// Time passed: returns the reason to close if a timer expired; a probe it
    /// queued waits in [`Link::poll_transmit`].
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
            let next = match t {
                Timer::Connect => Err(CloseReason::ConnectTimeout),
                Timer::Response => Err(CloseReason::ResponseTimeout),
                Timer::Write => Err(CloseReason::WriteTimeout),
                Timer::TlsHandshake => Err(CloseReason::TlsHandshakeTimeout),
                Timer::Idle => self.expire_idle(now),
                Timer::Frame => self.expire_frame(now),
                _ => self.expire_liveness(t, now),
            };
            match next {
                Ok(at) => self.timers[t as usize] = at,
                Err(reason) => return Some(reason),
            }
        }
        None
    }

    /// The earliest time this link needs [`Link::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Lazy idle check: traffic since scheduling moves it instead of closing.
    fn expire_idle(&self, now: Instant) -> Result<Option<Instant>, CloseReason> {
        let Some(idle) = self.cfg.idle_timeout else {
            return Ok(None);
        };
        if self.frame.is_paused() {
            return Ok(None); // waiting for a buffer is not idleness: resume re-arms
        }
        let due = self.last_rx + idle;
        if due > now {
            return Ok(Some(due));
        }
        Err(CloseReason::IdleTimeout)
    }

    /// Lazy frame check: bytes that bought time since scheduling move it.
    fn expire_frame(&self, now: Instant) -> Result<Option<Instant>, CloseReason> {
        let cfg = self.cfg.liveness.frame_timeout;
        match cfg.and_then(|c| self.frame.deadline(&c)) {
            // Between frames, or paused (resume re-arms).
            None => Ok(None),
            Some(due) if due > now => Ok(Some(due)),
            Some(_) => Err(CloseReason::FrameTimeout),
        }
    }
}
