//! Running as a service: SIGTERM and SIGINT on the node's own mio loop, the
//! shutdown deadline (`--shutdown-timeout`), and systemd's notify protocol
//! (`READY=1`, `STOPPING=1`, `WATCHDOG=1`).
//!
//! The signal handler (signal-hook) only writes to a pipe registered with the
//! node as a wake source ([`Node::register_wake_source`]): the loop wakes from
//! its poll and reads which signal came, all on one thread. The library does
//! the shutdown itself ([`Node::begin_shutdown`], `Relay::begin_shutdown`);
//! this file wires signals and systemd to it.

use std::io;
use std::time::{Duration, Instant};

use mooring::Node;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::args::ServiceOpts;
use crate::line::Line;
use crate::notify::Notifier;

/// A subcommand's life as a service: signals, shutdown deadline, notify.
pub struct Service {
    signals: Signals,
    notify: Option<Notifier>,
    timeout: Duration,
    /// The signal that started the shutdown, and when.
    stopping: Option<(&'static str, Instant)>,
}

impl Service {
    /// Catches SIGTERM and SIGINT from now on, waking `node`'s poll.
    pub fn new(node: &mut Node, opts: &ServiceOpts) -> io::Result<Service> {
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        node.register_wake_source(&mut signals)?;
        Ok(Service {
            signals,
            notify: Notifier::from_env(),
            timeout: opts.shutdown_timeout,
            stopping: None,
        })
    }

    /// Tells systemd the service is up (listening).
    pub fn ready(&self) {
        if let Some(n) = &self.notify {
            n.send("READY=1");
        }
    }

    /// The longest the next poll may wait: `cap`, less when the watchdog or
    /// the shutdown deadline comes sooner.
    pub fn max_wait(&self, cap: Duration) -> Duration {
        let now = Instant::now();
        let watchdog = self.notify.as_ref().and_then(|n| n.watchdog_in(now));
        let deadline = self
            .stopping
            .map(|(_, since)| (since + self.timeout).saturating_duration_since(now));
        [watchdog, deadline]
            .into_iter()
            .flatten()
            .fold(cap, Duration::min)
    }

    /// After each turn of the loop: pets the watchdog when due, and returns
    /// the name of a signal that asks to stop, the first time one comes. A
    /// second signal while stopping ends the wait at once.
    pub fn after_turn(&mut self, node: &mut Node) -> Option<&'static str> {
        let now = Instant::now();
        if let Some(n) = self.notify.as_mut() {
            n.pet(now);
        }
        if !node.take_wakeup() {
            return None;
        }
        let mut caught = None;
        for sig in self.signals.pending() {
            caught = Some(match sig {
                SIGINT => "SIGINT",
                _ => "SIGTERM",
            });
        }
        let sig = caught?;
        if self.stopping.is_some() {
            log::warn!("{sig} again: stopping now");
            self.timeout = Duration::ZERO;
            return None;
        }
        self.stopping = Some((sig, now));
        if let Some(n) = &self.notify {
            n.send("STOPPING=1");
        }
        log::info!("{sig}: stopping (at most {:?})", self.timeout);
        Some(sig)
    }

    /// True once stopping and the shutdown timeout has passed.
    pub fn expired(&self) -> bool {
        self.stopping
            .is_some_and(|(_, since)| since.elapsed() >= self.timeout)
    }

    /// True once a signal asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The start of the `event=stopped` line: `reason=signal signal=... drained=... ms=...`.
    pub fn stopped_line(&self, drained: bool) -> Line {
        let (sig, since) = self.stopping.unwrap_or(("none", Instant::now()));
        Line::new("event", "stopped")
            .kv("reason", "signal")
            .kv("signal", sig)
            .kv("drained", drained)
            .kv("ms", since.elapsed().as_millis())
    }
}
