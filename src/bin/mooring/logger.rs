//! The binary's logger: `mooring: <level>: <message>` lines on stderr.
//!
//! The library only calls `log` macros; choosing where they go is the
//! application's business. A dozen lines here instead of a logging crate keeps
//! the static binary small, and stderr keeps the log apart from the event lines
//! on stdout that scripts parse. `info`, `warn` and `error` lines are
//! rate-limited per call site (one line per cause per 10 s, then the count of
//! those held back), so no peer can flood stderr with a line per message.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use mooring::internals::ratelimit::RateLimit;
use mooring::SystemClock;

use crate::args::Verbosity;

/// Call sites whose lines are limited each on its own; lines from further sites
/// share one more limiter.
const SITES: usize = 64;

/// One line per call site (the cause) per [`mooring::internals::ratelimit::DEFAULT_INTERVAL`],
/// for `info`, `warn` and `error` lines: a peer that makes the same line repeat
/// per message cannot flood stderr. (`-v`/`-vv` debug and trace lines are not
/// limited: the operator asked for them.) Fixed table, no allocation.
struct Limits {
    clock: Option<SystemClock>,
    /// `(file, line)` of each call site seen, with its limiter.
    sites: [(&'static str, u32, RateLimit); SITES],
    used: usize,
    other: RateLimit,
}

impl Limits {
    const fn new() -> Self {
        Limits {
            clock: None,
            sites: [(
                "",
                0,
                RateLimit::new(mooring::internals::ratelimit::DEFAULT_INTERVAL),
            ); SITES],
            used: 0,
            other: RateLimit::new(mooring::internals::ratelimit::DEFAULT_INTERVAL),
        }
    }

    /// `Some(n)`: write this line (`n` like it were held back); `None`: hold it back.
    fn admit(&mut self, record: &Record<'_>) -> Option<u64> {
        let now = self.clock.get_or_insert_with(SystemClock::new).now();
        let (Some(file), Some(line)) = (record.file_static(), record.line()) else {
            return self.other.admit(now);
        };
        let known = self.sites[..self.used]
            .iter()
            .position(|&(f, l, _)| l == line && f == file);
        let at = match known {
            Some(at) => at,
            None if self.used < SITES => {
                self.sites[self.used] = (file, line, RateLimit::default());
                self.used += 1;
                self.used - 1
            }
            None => return self.other.admit(now),
        };
        self.sites[at].2.admit(now)
    }
}

static LIMITS: Mutex<Limits> = Mutex::new(Limits::new());

/// Set while the demo feeds bad input on purpose: warnings then say they are
/// expected, so that a newcomer does not read them as failures.
static EXPECTED: AtomicBool = AtomicBool::new(false);

/// Marks the warnings that follow as expected (`true`) or not (`false`).
pub fn expect_warnings(expected: bool) {
    EXPECTED.store(expected, Ordering::Relaxed);
}

/// Writes each record as one line on stderr.
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn if EXPECTED.load(Ordering::Relaxed) => {
                "warn (expected: the demo sends bad input on purpose)"
            }
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let held_back = if record.level() <= Level::Info {
            // A poisoned lock only means another thread panicked mid-log.
            let mut limits = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
            match limits.admit(record) {
                Some(n) => n,
                None => return,
            }
        } else {
            0
        };
        // One write per line so lines from the demo's threads do not interleave;
        // a closed stderr is not worth dying for.
        let line = if held_back > 0 {
            format!(
                "mooring: {level}: {} ({held_back} more like this suppressed)\n",
                record.args()
            )
        } else {
            format!("mooring: {level}: {}\n", record.args())
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The one logger; `log` needs a `'static` reference.
static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger at the level `-q`/`-v`/`-vv` asked for (default: warnings).
pub fn init(v: Verbosity) {
    let level = match v {
        Verbosity::Quiet => LevelFilter::Error,
        Verbosity::Normal => LevelFilter::Warn,
        Verbosity::Debug => LevelFilter::Debug,
        Verbosity::Trace => LevelFilter::Trace,
    };
    // Fails only if a logger is already set, which `main` never does twice.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit_from(limits: &mut Limits, file: &'static str, line: u32) -> Option<u64> {
        limits.admit(
            &Record::builder()
                .level(Level::Warn)
                .file_static(Some(file))
                .line(Some(line))
                .args(format_args!("reply not sent"))
                .build(),
        )
    }

    #[test]
    fn each_call_site_gets_one_line_per_interval_and_sites_beyond_the_table_share_one() {
        let mut limits = Limits::new();
        // A burst far shorter than the 10 s interval.
        assert_eq!(admit_from(&mut limits, "a.rs", 1), Some(0));
        for _ in 0..1000 {
            assert_eq!(admit_from(&mut limits, "a.rs", 1), None);
        }
        assert_eq!(admit_from(&mut limits, "a.rs", 2), Some(0), "another cause");
        assert_eq!(admit_from(&mut limits, "b.rs", 1), Some(0), "another file");
        for line in 0..(SITES - 3) as u32 {
            assert_eq!(admit_from(&mut limits, "c.rs", line), Some(0));
        }
        // The table is full: further sites share one limiter.
        assert_eq!(admit_from(&mut limits, "d.rs", 1), Some(0));
        assert_eq!(admit_from(&mut limits, "d.rs", 2), None);
        assert_eq!(limits.sites[0].2.suppressed(), 1000);
    }
}
