//! The slow-peer defence, pure: how long one frame may take to arrive.
//!
//! A peer that starts a frame and then trickles it (a byte a second, or nothing
//! more at all) holds a link slot for as long as it likes, and with a frame
//! bigger than the working buffer one of the node's few large buffers too. The
//! idle timer cannot catch it: every byte refreshes it (slowloris). So a frame
//! whose first byte has arrived must be complete by its deadline, else the link
//! closes with `FrameTimeout`, the defence of HTTP servers (HAProxy's
//! `timeout http-request`, nginx's `client_body_timeout`).
//!
//! Edge links can be slow but steady (1 MiB over a 64 kbit/s cellular link
//! takes about two minutes), so the data received buys time, as Apache's
//! mod_reqtimeout does with `MinRate`:
//!
//! ```text
//! deadline = first_byte + min(timeout + received / min_rate, max(max, timeout))
//! ```
//!
//! - `first_byte`: when the driver first found the frame's first byte buffered
//!   (MLLP: the start block; len32: a header byte);
//! - `received`: the frame's bytes buffered so far, framing included;
//! - time the driver itself stops reading the link (it waits for a free large
//!   buffer) does not count: `first_byte` moves later by the pause.
//!
//! So a frame stays alive while `received >= (elapsed - timeout) x min_rate`:
//! after the first `timeout` it must keep arriving at `min_rate` on average, and
//! it never gets more than `max`. With the defaults (30 s, 500 bytes/s, 10 min)
//! a 16 KiB frame has 63 s, and a 1 MiB frame has the whole 10 min, so it must
//! average about 1.8 kB/s (14 kbit/s).
//!
//! Reads happen when the application pulls events: one that stops pulling
//! for longer than a half-read frame's deadline gets that link closed too,
//! though the rest of the frame may wait in the socket.
//!
//! The frame is over when it is decoded whole (`FrameClock::finish`); the
//! deadline only ever moves later while it arrives, so the link's timer is lazy
//! (see `crate::link`).

use core::time::Duration;

use crate::time::Instant;

/// Default [`FrameTimeout::timeout`]: 30 s.
pub(crate) const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`FrameTimeout::min_rate`]: 500 bytes/s (mod_reqtimeout's default).
pub(crate) const DEFAULT_FRAME_MIN_RATE: u32 = 500;
/// Default [`FrameTimeout::max`]: 10 min.
pub(crate) const DEFAULT_FRAME_MAX: Duration = Duration::from_secs(600);

/// How long a frame may take from its first byte to its last (see the module
/// docs for the rule). `LivenessConfig::frame_timeout`; default on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameTimeout {
    /// Time every frame gets from its first byte. Default 30 s.
    pub timeout: Duration,
    /// Each received byte of the frame adds `1 / min_rate` s; 0 adds nothing (a
    /// fixed `timeout`). Default 500 bytes/s.
    pub min_rate: u32,
    /// No frame gets longer than this (or `timeout`, if that is longer).
    /// Default 10 min.
    pub max: Duration,
}

impl Default for FrameTimeout {
    fn default() -> Self {
        FrameTimeout {
            timeout: DEFAULT_FRAME_TIMEOUT,
            min_rate: DEFAULT_FRAME_MIN_RATE,
            max: DEFAULT_FRAME_MAX,
        }
    }
}

impl FrameTimeout {
    /// The time a frame of which `received` bytes have arrived gets from its
    /// first byte: `min(timeout + received / min_rate, max(max, timeout))`.
    /// Saturating: no byte count overflows it.
    pub fn allowance(&self, received: u64) -> Duration {
        let credit = match u64::from(self.min_rate) {
            0 => Duration::ZERO,
            rate => {
                // (received % rate) < rate <= u32::MAX, so x 1e9 fits a u64.
                let nanos = (received % rate) * 1_000_000_000 / rate;
                Duration::from_secs(received / rate).saturating_add(Duration::from_nanos(nanos))
            }
        };
        self.timeout
            .saturating_add(credit)
            .min(self.max.max(self.timeout))
    }
}

/// One link's frame in progress, for [`FrameTimeout`]: when its first byte came,
/// how much of it is here, and whether the driver has paused reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FrameClock {
    /// First byte of the frame in progress (moved later by pauses); `None`
    /// between frames.
    started: Option<Instant>,
    /// Bytes of that frame buffered so far.
    received: u64,
    /// The driver stopped reading this link at this time (no free buffer).
    paused_at: Option<Instant>,
}

impl FrameClock {
    /// `pending` bytes of an unfinished frame are buffered at `now` (0: none).
    /// Returns true when this started a frame.
    pub(crate) fn progress(&mut self, now: Instant, pending: usize) -> bool {
        if pending == 0 {
            self.finish();
            return false;
        }
        self.received = u64::try_from(pending).unwrap_or(u64::MAX);
        if self.started.is_some() {
            return false;
        }
        self.started = Some(now);
        true
    }

    /// The frame in progress arrived whole.
    pub(crate) fn finish(&mut self) {
        self.started = None;
        self.received = 0;
    }

    /// The driver stopped reading the link at `now`.
    pub(crate) fn pause(&mut self, now: Instant) {
        if self.paused_at.is_none() {
            self.paused_at = Some(now);
        }
    }

    /// The driver reads the link again at `now`: the frame in progress gets the
    /// paused time back. False when it was not paused.
    pub(crate) fn resume(&mut self, now: Instant) -> bool {
        let Some(p) = self.paused_at.take() else {
            return false;
        };
        if let Some(s) = self.started {
            // A frame started during the pause only lost the time since it started.
            self.started = Some(s + now.saturating_since(p.max(s)));
        }
        true
    }

    /// True while the driver has stopped reading the link.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// When the frame in progress must be complete; `None` between frames and
    /// while paused (no deadline runs then).
    pub(crate) fn deadline(&self, cfg: &FrameTimeout) -> Option<Instant> {
        if self.is_paused() {
            return None;
        }
        self.started.map(|s| s + cfg.allowance(self.received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn cfg(timeout_ms: u64, min_rate: u32, max_ms: u64) -> FrameTimeout {
        FrameTimeout {
            timeout: Duration::from_millis(timeout_ms),
            min_rate,
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn received_bytes_buy_time_at_the_minimum_rate_up_to_the_maximum() {
        let c = cfg(30_000, 500, 600_000);
        assert_eq!(c.allowance(0), Duration::from_secs(30));
        assert_eq!(c.allowance(500), Duration::from_secs(31));
        assert_eq!(c.allowance(250), Duration::from_millis(30_500));
        assert_eq!(c.allowance(1), Duration::from_millis(30_002));
        assert_eq!(
            c.allowance(16 * 1024),
            Duration::from_nanos(30_000_000_000 + 16_384 * 2_000_000)
        );
        // 1 MiB at 500 B/s would be 2,127 s: the maximum caps it.
        assert_eq!(c.allowance(1 << 20), Duration::from_secs(600));
        assert_eq!(
            FrameTimeout::default(),
            c,
            "the documented defaults are these"
        );
    }

    #[test]
    fn zero_rate_is_a_fixed_timeout_and_a_short_maximum_never_cuts_below_it() {
        assert_eq!(
            cfg(300, 0, 600_000).allowance(1 << 30),
            Duration::from_millis(300)
        );
        assert_eq!(cfg(5_000, 500, 1_000).allowance(0), Duration::from_secs(5));
        assert_eq!(
            cfg(5_000, 500, 1_000).allowance(1 << 20),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn huge_byte_counts_and_rates_do_not_overflow() {
        let c = cfg(u64::MAX, u32::MAX, u64::MAX);
        let d = c.allowance(u64::MAX);
        assert!(d >= Duration::from_millis(u64::MAX));
        let uncapped = |timeout_ms, min_rate| FrameTimeout {
            max: Duration::MAX,
            ..cfg(timeout_ms, min_rate, 0)
        };
        assert_eq!(
            uncapped(0, 1).allowance(u64::MAX),
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(
            uncapped(1, 3).allowance(u64::MAX - 1),
            Duration::from_millis(1)
                + Duration::from_secs((u64::MAX - 1) / 3)
                + Duration::from_nanos(((u64::MAX - 1) % 3) * 1_000_000_000 / 3)
        );
        assert_eq!(uncapped(u64::MAX, 1).allowance(u64::MAX), Duration::MAX);
        // A deadline that far out saturates instead of wrapping.
        let mut f = FrameClock::default();
        assert!(f.progress(t(u64::MAX - 5), usize::MAX));
        assert_eq!(f.deadline(&c), Some(t(u64::MAX)));
    }

    #[test]
    fn the_deadline_starts_at_the_first_byte_and_grows_with_the_frame() {
        let c = cfg(300, 1000, 10_000);
        let mut f = FrameClock::default();
        assert_eq!(f.deadline(&c), None, "no frame, no deadline");
        assert!(f.progress(t(100), 1), "first byte starts the frame");
        assert_eq!(f.deadline(&c), Some(t(401)));
        assert!(!f.progress(t(350), 200), "more bytes of the same frame");
        assert_eq!(f.deadline(&c), Some(t(600)), "started at 100, 300 + 200 ms");
        f.finish();
        assert_eq!(f.deadline(&c), None);
        assert!(f.progress(t(700), 1), "the next frame starts its own clock");
        assert_eq!(f.deadline(&c), Some(t(1001)));
        assert!(!f.progress(t(800), 0));
        assert_eq!(f.deadline(&c), None, "nothing pending: no frame");
    }

    #[test]
    fn paused_time_does_not_count() {
        let c = cfg(300, 0, 10_000);
        let mut f = FrameClock::default();
        f.progress(t(0), 16);
        f.pause(t(100));
        f.pause(t(150)); // still the first pause
        assert_eq!(f.deadline(&c), None, "no deadline runs while paused");
        assert!(f.is_paused());
        assert!(f.resume(t(1100)));
        assert!(!f.resume(t(1200)), "resumed once");
        assert_eq!(f.deadline(&c), Some(t(1300)), "1000 ms paused added");
        // A frame that started while paused only gets back what it lost.
        let mut g = FrameClock::default();
        g.pause(t(0));
        g.progress(t(500), 1);
        g.resume(t(800));
        assert_eq!(g.deadline(&c), Some(t(1100)));
    }
}
