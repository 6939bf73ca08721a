//! Rate limiting for repeated log lines, pure: time is passed in.
//!
//! A warning that a peer can trigger once per message (an unexpected reply, a
//! refused send, a bad frame) must not turn a misbehaving peer into a flood of
//! log lines. One [`RateLimit`] per cause lets the first occurrence through,
//! counts the ones that follow within `interval`, and lets the next one after
//! the interval through together with that count: at most one line per cause
//! per interval, and no occurrence goes unaccounted. No allocation, no clock.

use core::time::Duration;

use crate::time::Instant;

/// Interval used by the library's and the CLI's limited warnings: 10 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One cause's limiter. See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    interval: Duration,
    /// Until when lines are held back (`None`: the next one goes through).
    quiet_until: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter letting one line through per `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimit {
            interval,
            quiet_until: None,
            suppressed: 0,
        }
    }

    /// An occurrence at `now`. `Some(n)`: write the line now; `n` occurrences were
    /// held back since the last line written (mention them). `None`: held back
    /// and counted.
    #[must_use]
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.quiet_until.is_some_and(|until| now < until) {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.quiet_until = Some(now + self.interval);
        Some(core::mem::take(&mut self.suppressed))
    }

    /// Occurrences held back and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new(DEFAULT_INTERVAL)
    }
}

/// `log::warn!` through a [`RateLimit`]: `warn_limited!(limit, now, "fmt", args..)`.
/// A line written after held-back ones ends with their count.
macro_rules! warn_limited {
    ($limit:expr, $now:expr, $($arg:tt)+) => {
        match $limit.admit($now) {
            Some(0) => log::warn!($($arg)+),
            Some(n) => log::warn!("{} ({} more like this suppressed)", format_args!($($arg)+), n),
            None => {}
        }
    };
}

pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn first_occurrence_goes_through_and_repeats_within_the_interval_are_counted() {
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert_eq!(r.admit(t(1_000)), Some(0));
        let mut held = 0;
        for ms in (1_001..11_000).step_by(7) {
            assert_eq!(r.admit(t(ms)), None, "at {ms} ms");
            held += 1;
        }
        assert_eq!(r.suppressed(), held);
        // The interval is over: one line, carrying the count.
        assert_eq!(r.admit(t(11_000)), Some(held));
        assert_eq!(r.suppressed(), 0);
        assert_eq!(r.admit(t(11_001)), None);
    }

    #[test]
    fn a_million_occurrences_in_a_minute_write_at_most_one_line_per_interval() {
        let mut r = RateLimit::new(Duration::from_secs(10));
        let mut lines = 0;
        let mut accounted = 0;
        for i in 0..1_000_000u64 {
            if let Some(n) = r.admit(t(i * 60 / 1_000)) {
                lines += 1;
                accounted += n + 1;
            }
        }
        assert_eq!(lines, 6, "one line per 10 s over 60 s");
        assert_eq!(
            accounted + r.suppressed(),
            1_000_000,
            "every occurrence counted"
        );
    }

    #[test]
    fn occurrences_further_apart_than_the_interval_all_go_through() {
        let mut r = RateLimit::new(Duration::from_millis(100));
        for k in 0..5 {
            assert_eq!(r.admit(t(k * 100)), Some(0));
        }
    }
}
