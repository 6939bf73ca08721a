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

/// The driver's clock: converts `std::time::Instant` to [`Instant`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        let ms = self.epoch.elapsed().as_millis();
        Instant(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
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
}
