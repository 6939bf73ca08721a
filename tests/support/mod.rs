//! Running programs from tests: the `mooring` binary and peer programs.
//!
//! Every wait is for an expected line or exit, with a deadline; every process
//! started here is killed by its own handle when its [`Proc`] is dropped, pass or
//! fail.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mooring");
/// Three HL7 messages, LF line ends, MSH-10 `MSG00001`..`MSG00003`.
pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.hl7");
/// Bound on any single expected line: loopback answers in microseconds, so this
/// only matters when something is broken.
pub const WITHIN: Duration = Duration::from_secs(10);
/// Bound on a whole run of a program that is expected to exit by itself.
pub const RUN_WITHIN: Duration = Duration::from_secs(30);

/// `mooring <args>` as a command.
pub fn mooring(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

/// `mooring listen --bind 127.0.0.1:0 <args>`.
pub fn listen_cmd(args: &[&str]) -> Command {
    let mut c = mooring(&["listen", "--bind", "127.0.0.1:0"]);
    c.args(args);
    c
}

/// `mooring relay --listen 127.0.0.1:0 --upstream <upstream>`, then `extra`.
pub fn relay_to(upstream: SocketAddr, extra: &[&str]) -> Command {
    let up = upstream.to_string();
    let mut c = mooring(&["relay", "--listen", "127.0.0.1:0", "--upstream", &up]);
    c.args(extra);
    c
}

/// [`relay_to`] with fast reconnects (50 ms, at most 200 ms), then `extra`.
pub fn relay_cmd(upstream: SocketAddr, extra: &[&str]) -> Command {
    let mut c = relay_to(
        upstream,
        &["--reconnect-min", "50ms", "--reconnect-max", "200ms"],
    );
    c.args(extra);
    c
}

/// A running program whose stdout lines are read on a thread into a channel,
/// each with the instant it was read (for tests that measure when something was
/// reported). Killed on drop.
pub struct Proc {
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` with stdout piped (stdin closed, stderr goes to the
    /// test's output).
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_with(cmd, Stdio::null(), Stdio::inherit())
    }

    /// [`Proc::spawn`] with stdin and stderr as given (piped stdin: write it
    /// with [`Proc::write_stdin`]; piped stderr: read it from
    /// [`Proc::take_stderr`]).
    pub fn spawn_with(mut cmd: Command, stdin: Stdio, stderr: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Writes `bytes` to the program's stdin (spawned with it piped) and
    /// flushes them.
    pub fn write_stdin(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(bytes).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// The program's stderr, when it was spawned with it piped.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Waits for the next stdout line matching `want` (earlier lines are skipped
    /// but kept for the failure message).
    pub fn expect_line(&mut self, want: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.expect_line_at(want, timeout).0
    }

    /// [`Proc::expect_line`], with the instant the line was read from the pipe
    /// (the program flushes each line as it prints it).
    pub fn expect_line_at(
        &mut self,
        want: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> (String, Instant) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, l)) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return (l, at);
                    }
                }
                Err(e) => panic!(
                    "no expected line within {timeout:?} ({e}); lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Starts `mooring listen --bind 127.0.0.1:0 <args>` and returns it with the
    /// address from its first line, which must be `event=listening`.
    pub fn listen(args: &[&str]) -> (Proc, SocketAddr) {
        Proc::listen_cmd(listen_cmd(args))
    }

    /// Starts `cmd`, a `mooring listen --bind 127.0.0.1:0 ...` however wrapped
    /// (e.g. in `ip netns exec`), and returns it with the address from its first
    /// line, which must be `event=listening`.
    pub fn listen_cmd(cmd: Command) -> (Proc, SocketAddr) {
        Proc::spawn(cmd).listening()
    }

    /// This program, a `mooring listen --bind 127.0.0.1:0 ...` just started,
    /// with the address from its first line, which must be `event=listening`.
    pub fn listening(mut self) -> (Proc, SocketAddr) {
        let p = &mut self;
        let first = p.expect_line(|_| true, WITHIN);
        let addr = first
            .strip_prefix("event=listening addr=")
            .unwrap_or_else(|| panic!("first line is not event=listening: {first}"));
        let addr: SocketAddr = addr.parse().expect("listening addr");
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0, "the real port, not 0");
        (self, addr)
    }
}

impl Proc {
    /// Waits (up to `timeout`) for the program to end by itself: its stdout
    /// reaches EOF; earlier lines are kept for failure messages. Panics if it
    /// does not end in time.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, l)) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "did not exit within {timeout:?}; lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
        // Stdout closed: the process is exiting (or closed stdout, which these
        // programs never do); the kill on drop bounds a surprise.
        self.child.wait().expect("wait")
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// The process id (for `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Output of a finished run.
pub struct Run {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout, line by line.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The first stdout line starting with `prefix` (`"event=tls "`); panics
    /// with the whole stdout when there is none.
    pub fn line_starting(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}", self.stdout))
    }
}

/// Runs `cmd` to completion (feeding it `stdin`), killing it if it outlives
/// [`RUN_WITHIN`].
pub fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).expect("write stdin");
    }
    // Readers report when their pipe reaches EOF, which happens when the process
    // exits: the wait is on that, with a deadline.
    let (tx, rx) = mpsc::channel();
    let read_all = |is_err: bool, mut r: Box<dyn Read + Send>| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            let _ = tx.send((is_err, s));
        });
    };
    read_all(false, Box::new(child.stdout.take().expect("stdout")));
    read_all(true, Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + RUN_WITHIN;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, s)) => stderr = s,
            Ok((false, s)) => stdout = s,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {RUN_WITHIN:?}");
            }
        }
    }
    let status = child.wait().expect("wait");
    Run {
        status,
        stdout,
        stderr,
    }
}

/// The value of `key` in a `key=value` line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// A file under the temp directory, removed on drop. `name` must be unique
/// within the test binary (the process id tells binaries apart).
pub struct TempFile(std::path::PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!("mooring-test-{}-{name}", std::process::id()));
        std::fs::write(&p, contents).expect("write temp file");
        TempFile(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Each command line in `cases` is refused as a usage error: status 2, one
/// stderr line starting `error: <needle>`, nothing on stdout.
pub fn assert_usage_errors(cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        let r = run(mooring(args), None);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!("error: {needle}")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
}

/// `send`'s reply lines for `SAMPLE`, in order: reply `i` (from 0) names
/// `MSG0000{i+1}` and was accepted (`AA`).
pub fn assert_sample_replies(lines: &[&str]) {
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(field(l, "event"), Some("reply"), "{l}");
        assert_eq!(
            field(l, "id"),
            Some(format!("MSG{:05}", i + 1).as_str()),
            "{l}"
        );
        assert_eq!(field(l, "ack"), Some("AA"), "{l}");
    }
}

/// A `listen` that got `SAMPLE` on one link: its `event=connected` line, then
/// `MSG00001`..`MSG00003` from that peer. Returns the peer's address.
pub fn expect_sample_received(listen: &mut Proc) -> String {
    let connected = listen.expect_line(|l| l.starts_with("event=connected "), WITHIN);
    let peer = field(&connected, "peer").expect("peer").to_string();
    for n in 1..=3 {
        let m = listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
        assert_eq!(field(&m, "peer"), Some(peer.as_str()), "{m}");
        assert_eq!(field(&m, "id"), Some(format!("MSG{n:05}").as_str()), "{m}");
    }
    peer
}

/// A peer that connects to `addr`, starts an MLLP frame and sends one more byte
/// of it every 50 ms (a frame that never ends: slowloris), for at most 5 s or
/// until the other side closes. Returns its local address and the thread.
pub fn trickle_a_frame(addr: SocketAddr) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let me = s.local_addr().expect("addr");
    let t = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(5);
        let mut next: &[u8] = b"\x0bMSH|";
        while Instant::now() < end && s.write_all(next).is_ok() {
            next = b"x";
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    (me, t)
}

/// Certificates for the TLS tests, generated at test time.
#[cfg(feature = "tls")]
pub mod pki;
