//! The one retry strategy of the library: exponential backoff with full
//! jitter. Sessions, raw links and the relay (its upstream redials, session
//! reopenings and probes of the primary) redial with it (through [`Redial`],
//! the pure redial timer), [`crate::Client`] waits by it between attempts,
//! and `mooring send` pauses by it between retries.

use core::time::Duration;

use crate::time::Instant;

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

/// The pure redial timer of one client session, one raw outbound link or one
/// of the relay's redials: which attempt comes next and when it is due. The
/// driver gives it the time and a random number; it never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Redial {
    backoff: Backoff,
    /// Attempts scheduled since the last success.
    attempt: u32,
    /// When the scheduled attempt is due (`None`: none scheduled).
    at: Option<Instant>,
}

impl Redial {
    /// A redial timer that waits by `backoff`, nothing scheduled.
    pub(crate) fn new(backoff: Backoff) -> Redial {
        Redial {
            backoff,
            attempt: 0,
            at: None,
        }
    }

    /// The link was lost (or a dial failed) at `now`: schedules the next
    /// attempt with `random` as its jitter. Returns the attempt's number
    /// (from 1) and its wait, or `None` when the attempts are exhausted
    /// (nothing is scheduled then).
    pub(crate) fn schedule(&mut self, now: Instant, random: u64) -> Option<(u32, Duration)> {
        let Some(delay) = self.backoff.delay(self.attempt, random) else {
            self.at = None;
            return None;
        };
        Some(self.wait(now, delay))
    }

    /// As [`Redial::schedule`], but never gives up: once the backoff's
    /// attempts are exhausted every further attempt waits the backoff's `max`
    /// (without jitter), still counted. The relay redials its upstream so: it
    /// holds messages that must be delivered.
    pub(crate) fn schedule_or_max(&mut self, now: Instant, random: u64) -> (u32, Duration) {
        let delay = self
            .backoff
            .delay(self.attempt, random)
            .unwrap_or(self.backoff.max);
        self.wait(now, delay)
    }

    /// Counts the next attempt and makes it due `delay` after `now`.
    fn wait(&mut self, now: Instant, delay: Duration) -> (u32, Duration) {
        self.attempt = self.attempt.saturating_add(1);
        self.at = Some(now + delay);
        (self.attempt, delay)
    }

    /// Starts over with the first attempt due at `now`, without a wait (a
    /// link not dialled yet, or one moved to another upstream).
    pub(crate) fn restart(&mut self, now: Instant) {
        self.attempt = 0;
        self.at = Some(now);
    }

    /// Attempts scheduled since the last success (or restart): the number of
    /// the attempt that is scheduled or under way.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A dial succeeded: the next loss starts from the first attempt again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
        self.at = None;
    }

    /// When the scheduled attempt is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }

    /// True (once) when the scheduled attempt is due at `now`: the driver
    /// dials then.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.at.is_some_and(|at| at <= now) {
            self.at = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn redial_schedules_growing_jittered_attempts_and_fires_once_when_due() {
        let b = Backoff {
            min: ms(100),
            max: ms(1000),
            max_attempts: None,
        };
        let mut r = Redial::new(b);
        let t0 = Instant::ZERO + Duration::from_secs(10);
        assert_eq!(r.poll_timeout(), None);
        assert!(!r.handle_timeout(t0), "nothing scheduled");
        // The largest random number reaches each ceiling: 100, 200, 400, 800, 1000.
        for (n, ceiling) in [100, 200, 400, 800, 1000, 1000].into_iter().enumerate() {
            let (attempt, after) = r.schedule(t0, ceiling).unwrap();
            assert_eq!(attempt, n as u32 + 1);
            assert_eq!(after, ms(ceiling), "attempt {attempt}");
            assert_eq!(r.poll_timeout(), Some(t0 + after));
            assert!(!r.handle_timeout(t0 + (after - ms(1))), "not due yet");
            assert!(r.handle_timeout(t0 + after));
            assert!(!r.handle_timeout(t0 + after), "fires once");
        }
        // Jitter: the wait is `random` modulo the ceiling + 1, never above it.
        let (_, after) = r.schedule(t0, 1001 + 7).unwrap();
        assert_eq!(after, ms(7));
        r.reset();
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(
            r.schedule(t0, 250),
            Some((1, ms(250 % 101))),
            "from the first ceiling again"
        );
    }

    #[test]
    fn redial_gives_up_when_its_attempts_are_exhausted() {
        let mut r = Redial::new(Backoff {
            min: ms(10),
            max: ms(10),
            max_attempts: Some(2),
        });
        let t0 = Instant::ZERO;
        assert_eq!(r.schedule(t0, 3), Some((1, ms(3))));
        assert_eq!(r.schedule(t0, 4), Some((2, ms(4))));
        assert_eq!(r.schedule(t0, 5), None);
        assert_eq!(r.poll_timeout(), None, "nothing scheduled after giving up");
        r.reset();
        assert_eq!(r.schedule(t0, 5), Some((1, ms(5))), "a success starts over");
    }

    #[test]
    fn a_redial_that_never_gives_up_waits_the_maximum_once_attempts_are_exhausted() {
        let mut r = Redial::new(Backoff {
            min: ms(10),
            max: ms(50),
            max_attempts: Some(2),
        });
        let t0 = Instant::ZERO + Duration::from_secs(1);
        assert_eq!(r.schedule_or_max(t0, 3), (1, ms(3)), "jittered as usual");
        assert_eq!(r.attempt(), 1);
        assert_eq!(r.schedule_or_max(t0, 4), (2, ms(4)));
        // Exhausted: the maximum, unjittered, and the attempts still count.
        for n in 3..6 {
            assert_eq!(r.schedule_or_max(t0, 4), (n, ms(50)), "attempt {n}");
            assert_eq!(r.poll_timeout(), Some(t0 + ms(50)));
        }
        assert!(r.handle_timeout(t0 + ms(50)));
        assert_eq!(r.attempt(), 5, "firing does not count an attempt");
        r.reset();
        assert_eq!(
            r.schedule_or_max(t0, 4),
            (1, ms(4)),
            "a success starts over"
        );
    }

    #[test]
    fn a_restarted_redial_is_due_at_once_from_the_first_attempt() {
        let mut r = Redial::new(Backoff::default());
        let t0 = Instant::ZERO + Duration::from_secs(5);
        let _ = r.schedule_or_max(t0, 999);
        let _ = r.schedule_or_max(t0, 999);
        r.restart(t0);
        assert_eq!(r.attempt(), 0);
        assert_eq!(r.poll_timeout(), Some(t0));
        assert!(r.handle_timeout(t0), "due at once");
        assert_eq!(
            r.schedule_or_max(t0, 1000),
            (1, Duration::from_secs(1)),
            "the first ceiling again"
        );
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
    fn backoff_with_the_largest_durations_does_not_overflow() {
        let b = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
            max_attempts: None,
        };
        assert!(b.delay(u32::MAX, u64::MAX).is_some());
    }
}
