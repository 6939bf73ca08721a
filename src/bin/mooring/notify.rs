//! systemd's notify protocol, in the few lines it takes: datagrams such as
//! `READY=1` to the Unix socket named by `NOTIFY_SOCKET` (a path, or `@name`
//! in the abstract namespace), and `WATCHDOG=1` at half of `WATCHDOG_USEC`
//! so that a wedged loop is restarted. Nothing happens without
//! `NOTIFY_SOCKET`; a failed send is logged, never fatal.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Where to notify, and the watchdog's period.
pub struct Notifier {
    sock: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
    /// Half of `WATCHDOG_USEC` (when set for this process).
    watchdog_every: Option<Duration>,
    /// When the next `WATCHDOG=1` is due.
    next_watchdog: Option<Instant>,
}

impl Notifier {
    /// From the environment; `None` when `NOTIFY_SOCKET` is not set (or
    /// cannot be used: then a warning says why).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        match Notifier::open(&path) {
            Ok(mut n) => {
                n.watchdog_every = watchdog_period(
                    std::env::var("WATCHDOG_USEC").ok().as_deref(),
                    std::env::var("WATCHDOG_PID").ok().as_deref(),
                    std::process::id(),
                );
                n.next_watchdog = n.watchdog_every.map(|d| Instant::now() + d);
                Some(n)
            }
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={path}: {e}: systemd is not notified");
                None
            }
        }
    }

    fn open(path: &str) -> std::io::Result<Notifier> {
        let target = match path.strip_prefix('@') {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Some(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)?
            }
            _ => std::os::unix::net::SocketAddr::from_pathname(path)?,
        };
        Ok(Notifier {
            sock: UnixDatagram::unbound()?,
            target,
            watchdog_every: None,
            next_watchdog: None,
        })
    }

    /// Sends one state line (`READY=1`, `STOPPING=1`, ...).
    pub fn send(&self, state: &str) {
        if let Err(e) = self.sock.send_to_addr(state.as_bytes(), &self.target) {
            log::warn!("systemd notify {state}: {e}");
        }
    }

    /// How long until the next `WATCHDOG=1` is due (`None`: no watchdog).
    pub fn watchdog_in(&self, now: Instant) -> Option<Duration> {
        self.next_watchdog.map(|t| t.saturating_duration_since(now))
    }

    /// Sends `WATCHDOG=1` when it is due at `now`.
    pub fn pet(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.next_watchdog, self.watchdog_every) else {
            return;
        };
        if now >= at {
            self.send("WATCHDOG=1");
            self.next_watchdog = Some(now + every);
        }
    }
}

/// Half of `WATCHDOG_USEC` when it is set for this process (`WATCHDOG_PID`
/// unset or `pid`), as systemd advises; `None` otherwise.
pub fn watchdog_period(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    if for_pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(pid)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_petted_at_half_its_timeout_and_only_for_this_process() {
        let half = Some(Duration::from_secs(1));
        assert_eq!(watchdog_period(Some("2000000"), None, 7), half);
        assert_eq!(watchdog_period(Some("2000000"), Some("7"), 7), half);
        assert_eq!(watchdog_period(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("x"), None, 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
    }
}
