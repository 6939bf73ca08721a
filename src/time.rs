//! Time as the pure layers see it.
//!
//! The protocol core never reads a clock: every input carries `now`, an
//! [`Instant`] of monotonic milliseconds that the driver (or a test, or a C
//! caller with a `uint64_t now_ms`) supplies. Durations are
//! [`core::time::Duration`].

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in monotonic time, in whole milliseconds since an arbitrary epoch.
///
/// Milliseconds match every timer mooring keeps (the shortest is tens of
/// milliseconds) and fit a `u64` for half a billion years.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// The earlier of two optional deadlines (`None`: no deadline).
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whole milliseconds in `d`, rounded up so a deadline never fires early.
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if !d.subsec_nanos().is_multiple_of(1_000_000) {
        ms + 1
    } else {
        ms
    };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates instead of overflowing: a deadline "never" stays never.
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(ceil_millis(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: see [`Instant::saturating_since`].
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// Where a driver reads the time. A [`crate::Node`] reads it twice per
/// [`crate::Node::poll`], before and after waiting (and when a link is opened
/// or closed by the caller);
/// everything below the driver takes that `now` as an argument.
///
/// The default is [`SystemClock`]. Tests give a node a [`ManualClock`] and move
/// it themselves, so timeouts pass without waiting for them.
pub trait Clock: Send {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock, in milliseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    epoch: std::time::Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        SystemClock {
            epoch: std::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        Self::millis_since(self.epoch, std::time::Instant::now())
    }

    /// [`SystemClock::now`], the same to the millisecond, without the
    /// subtraction and conversion while the clock is still in the millisecond
    /// `memo` saw last (one comparison instead: a node reads the clock twice
    /// per poll, many polls per millisecond under load).
    pub(crate) fn now_memo(&self, memo: &mut MilliMemo) -> Instant {
        let t = std::time::Instant::now();
        if let Some((ms, next)) = memo.0 {
            // Monotonic: `t` is not before the reading that set `next`, so
            // it is in the same millisecond until it reaches `next`.
            if t < next {
                return ms;
            }
        }
        let ms = Self::millis_since(self.epoch, t);
        memo.0 = self
            .epoch
            .checked_add(Duration::from_millis(ms.0.saturating_add(1)))
            .map(|next| (ms, next));
        ms
    }

    fn millis_since(epoch: std::time::Instant, t: std::time::Instant) -> Instant {
        let ms = t.saturating_duration_since(epoch).as_millis();
        Instant(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// The millisecond a [`SystemClock`] read last, and the instant the next one
/// starts (see [`SystemClock::now_memo`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MilliMemo(Option<(Instant, std::time::Instant)>);

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        SystemClock::now(self)
    }
}

/// A clock that moves only when told: virtual time for tests of a whole node.
/// Clones share one time, so a test keeps a clone and advances the node's
/// clock from outside (from another thread too).
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Instant) -> Self {
        ManualClock {
            ms: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(start.as_millis())),
        }
    }

    /// Moves the clock forward by `d` (rounded up to whole milliseconds; saturating).
    pub fn advance(&self, d: Duration) {
        let by = ceil_millis(d);
        let _ = self.ms.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |ms| Some(ms.saturating_add(by)),
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant(self.ms.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_sub_millisecond_duration_rounds_up() {
        let t = Instant::from_millis(10);
        assert_eq!((t + Duration::from_micros(1)).as_millis(), 11);
        assert_eq!((t + Duration::from_millis(5)).as_millis(), 15);
    }

    #[test]
    fn adding_to_the_far_future_saturates() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(10)).as_millis(), u64::MAX);
    }

    #[test]
    fn difference_of_instants_saturates_at_zero() {
        let a = Instant::from_millis(100);
        let b = Instant::from_millis(40);
        assert_eq!(a - b, Duration::from_millis(60));
        assert_eq!(b - a, Duration::ZERO);
    }

    #[test]
    fn the_memoised_system_clock_reads_what_the_clock_reads() {
        // Bracketed by plain reads, a memoised one lies between them: it is
        // never a stale millisecond, across several millisecond boundaries.
        let c = SystemClock::new();
        let mut memo = MilliMemo::default();
        let until = std::time::Instant::now() + Duration::from_millis(20);
        let (mut reads, mut last) = (0u64, Instant::ZERO);
        while std::time::Instant::now() < until {
            let before = c.now();
            let read = c.now_memo(&mut memo);
            let after = c.now();
            assert!(
                before <= read && read <= after,
                "{before:?} {read:?} {after:?}"
            );
            assert!(read >= last);
            last = read;
            reads += 1;
        }
        assert!(
            reads > 0 && last.as_millis() >= 5,
            "{reads} reads to {last:?}"
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_its_clones_share_it() {
        let c = ManualClock::new(Instant::from_millis(5));
        let view = c.clone();
        assert_eq!(view.now(), Instant::from_millis(5));
        c.advance(Duration::from_micros(1_500));
        assert_eq!(view.now(), Instant::from_millis(7));
        c.advance(Duration::MAX);
        assert_eq!(view.now().as_millis(), u64::MAX);
    }
}
