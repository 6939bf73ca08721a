//! The `mooring listen` processes under soak: started from the real binary,
//! their stdout and stderr read on threads (close reasons counted, the first
//! stderr lines kept), their RSS read from /proc. Each is killed by its own
//! handle (its PID) and waited for when dropped, pass or fail.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a server gets to print its `event=listening` line.
const START_WITHIN: Duration = Duration::from_secs(10);
/// Kinds of stderr line counted apart (the rest count as `other`).
const STDERR_KINDS: usize = 16;

/// What a server's output said, filled by its reader threads.
#[derive(Default)]
pub struct Tally {
    /// `closed:<reason>`, `rejected:<reason>`, `session_ended:<how>` -> count.
    pub closes: Mutex<BTreeMap<String, u64>>,
    /// Local port of a peer -> the reason of its last close (to name why a
    /// well-behaved client lost a reply).
    pub last_close_by_port: Mutex<HashMap<u16, String>>,
    /// Stderr lines (warnings and errors the server logged).
    pub stderr_lines: AtomicU64,
    /// Their kinds (digits masked as `#`) with counts.
    pub stderr_kinds: Mutex<BTreeMap<String, u64>>,
    /// Stdout reached EOF: the process exited (or closed stdout).
    pub stdout_closed: AtomicBool,
}

/// One running `mooring listen`.
pub struct Server {
    /// Name in the report (`raw`, `session`).
    pub name: &'static str,
    /// The bound address from its first line.
    pub addr: SocketAddr,
    /// Its output, as read so far.
    pub tally: Arc<Tally>,
    child: Child,
}

impl Server {
    /// Starts `bin listen --bind 127.0.0.1:0 <args>` and waits for its
    /// `event=listening addr=...` line.
    pub fn start(name: &'static str, bin: &Path, args: &[String]) -> Result<Server, String> {
        let mut child = Command::new(bin)
            .args(["listen", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let tally = Arc::new(Tally::default());
        let (first_tx, first_rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let t = Arc::clone(&tally);
            std::thread::spawn(move || read_stdout(out, &t, first_tx));
        }
        if let Some(err) = child.stderr.take() {
            let t = Arc::clone(&tally);
            std::thread::spawn(move || read_stderr(err, &t));
        }
        // From here on the guard owns the child: an early return kills it.
        let mut server = Server {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tally,
            child,
        };
        let first = first_rx
            .recv_timeout(START_WITHIN)
            .map_err(|_| server.start_failure("no first line"))?;
        server.addr = first
            .strip_prefix("event=listening addr=")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| server.start_failure(&format!("first line is {first:?}")))?;
        Ok(server)
    }

    /// Why a start failed, with what the process said on stderr.
    fn start_failure(&mut self, what: &str) -> String {
        // Give the stderr reader a moment to collect an error that came with an exit.
        let exited = (0..20).find_map(|_| match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        });
        let err: Vec<String> = self.stderr_kinds().into_iter().map(|(l, _)| l).collect();
        let err = err.join(" | ");
        format!(
            "{} server: {what} within {START_WITHIN:?} (exit: {}; stderr: {err})",
            self.name,
            exited.as_deref().unwrap_or("still running"),
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size now, in KiB (`VmRSS` from /proc).
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// True while the process runs and its stdout is open.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
            && !self.tally.stdout_closed.load(Ordering::Relaxed)
    }

    /// Kinds of stderr line (digits masked as `#`), the most frequent first.
    pub fn stderr_kinds(&self) -> Vec<(String, u64)> {
        let kinds = self
            .tally
            .stderr_kinds
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut v: Vec<(String, u64)> = kinds.into_iter().collect();
        v.sort_by_key(|k| std::cmp::Reverse(k.1));
        v
    }

    /// Close and refusal counts, as `reason:count` joined by `,` (`none` if none).
    pub fn closes(&self) -> String {
        let closes = self
            .tally
            .closes
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        if closes.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = closes.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        parts.join(",")
    }

    /// The reason of the last close of the peer at local port `port`.
    pub fn close_reason_of(&self, port: u16) -> Option<String> {
        self.tally
            .last_close_by_port
            .lock()
            .ok()
            .and_then(|m| m.get(&port).cloned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, by its handle: kill, then reap.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key` in a `key=value` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Lines of `r` until EOF or a read error (bytes that are not UTF-8 are
/// replaced, so a stray byte never ends the reading).
fn text_lines(r: impl Read) -> impl Iterator<Item = String> {
    BufReader::new(r)
        .split(b'\n')
        .map_while(Result::ok)
        .map(|l| String::from_utf8_lossy(&l).into_owned())
}

/// Reads stdout: the first line goes to `first`, every close is counted.
fn read_stdout(out: impl Read, t: &Tally, first: mpsc::Sender<String>) {
    let mut lines = text_lines(out);
    if let Some(l) = lines.next() {
        let _ = first.send(l);
    }
    for line in lines {
        let key = match field(&line, "event") {
            Some("closed") => field(&line, "reason").map(|r| format!("closed:{r}")),
            Some("rejected") => field(&line, "reason").map(|r| format!("rejected:{r}")),
            Some("session") if field(&line, "note") == Some("ended") => {
                field(&line, "how").map(|h| format!("session_ended:{h}"))
            }
            _ => None,
        };
        let Some(key) = key else { continue };
        if let Ok(mut m) = t.closes.lock() {
            *m.entry(key).or_insert(0) += 1;
        }
        let port = field(&line, "peer")
            .and_then(|p| p.parse::<SocketAddr>().ok())
            .map(|a| a.port());
        if let (Some(port), Some(reason)) = (port, field(&line, "reason")) {
            if let Ok(mut m) = t.last_close_by_port.lock() {
                m.insert(port, reason.to_string());
            }
        }
    }
    t.stdout_closed.store(true, Ordering::Relaxed);
}

/// Reads stderr: counts lines by kind.
fn read_stderr(err: impl Read, t: &Tally) {
    for line in text_lines(err) {
        t.stderr_lines.fetch_add(1, Ordering::Relaxed);
        let mut kind = String::with_capacity(line.len());
        for c in line.chars() {
            match c {
                '0'..='9' if kind.ends_with('#') => {}
                '0'..='9' => kind.push('#'),
                _ => kind.push(c),
            }
        }
        if let Ok(mut m) = t.stderr_kinds.lock() {
            if m.len() >= STDERR_KINDS && !m.contains_key(&kind) {
                kind = "other".into();
            }
            *m.entry(kind).or_insert(0) += 1;
        }
    }
}
