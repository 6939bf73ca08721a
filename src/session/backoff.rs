//! The one retry strategy of the library: exponential backoff with full
//! jitter. Sessions redial with it, and [`crate::Client`] waits by it between
//! attempts.

use core::time::Duration;

/// Retry strategy: exponential backoff with full jitter. Sessions redial with
/// it ([`crate::ConnectConfig::backoff`]), and [`crate::Client`] waits by it
/// between retries ([`crate::ClientConfig::retry_backoff`]).
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
    /// No wait at all (every delay is zero), unlimited attempts.
    pub const IMMEDIATE: Backoff = Backoff {
        min: Duration::ZERO,
        max: Duration::ZERO,
        max_attempts: None,
    };

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
    fn backoff_with_the_largest_durations_does_not_overflow() {
        let b = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
            max_attempts: None,
        };
        assert!(b.delay(u32::MAX, u64::MAX).is_some());
    }
}
