//! The binary's logger: `mooring: <level>: <message>` lines on stderr.
//!
//! The library only calls `log` macros; choosing where they go is the
//! application's business. A dozen lines here instead of a logging crate keeps
//! the static binary small, and stderr keeps the log apart from the event lines
//! on stdout that scripts parse.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::args::Verbosity;

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
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // One write per line so lines from the demo's threads do not interleave;
        // a closed stderr is not worth dying for.
        let line = format!("mooring: {level}: {}\n", record.args());
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
