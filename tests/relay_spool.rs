//! `mooring relay --spool DIR` end to end on loopback: devices (MLLP senders
//! written here) -> relay -> a raw upstream written here that records every
//! MSH-10 it gets and acknowledges it. The relay is killed with SIGKILL by its
//! PID and restarted on the same directory: every message a device got AA for
//! must arrive upstream (at least once).
//!
//! Every wait has a deadline; every process a test starts is killed by its own
//! handle (or by PID) when the test ends.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;
// The raw MLLP peer the library tests use.
mod common;
use support::{field, free_port, mooring, relay_to, Proc, WITHIN};

const CR: u8 = 0x0d;

/// An HL7 message from sending application `app` with MSH-10 `id`, padded
/// with a `pad`-byte OBX so tests can fill a spool quickly.
fn msg(app: &str, id: &str, pad: usize) -> Vec<u8> {
    let mut m =
        format!("MSH|^~\\&|{app}|WARD|EHR|HOSP|20260101120000||ORU^R01|{id}|P|2.5\rPID|1||{app}\r")
            .into_bytes();
    if pad > 0 {
        m.extend_from_slice(b"OBX|1|TX|||");
        m.resize(m.len() + pad, b'x');
        m.push(CR);
    }
    m
}

/// MSH-10 (or, for an ACK, MSA-1 then MSA-2) of a frame.
fn hl7_field(frame: &[u8], seg: &str, n: usize) -> Option<String> {
    let text = String::from_utf8_lossy(frame);
    let s = text.split(['\r', '\n']).find(|s| s.starts_with(seg))?;
    s.split('|').nth(n).map(str::to_string)
}

/// A blocking MLLP peer that never panics on a dead link (the relay dies
/// under it on purpose).
struct Peer(common::Peer);

impl Peer {
    fn connect(addr: SocketAddr) -> Option<Peer> {
        let s = TcpStream::connect_timeout(&addr, WITHIN).ok()?;
        Some(Peer(common::Peer::wrap(s)))
    }

    fn send(&mut self, payload: &[u8]) -> Option<()> {
        self.0.try_send(&common::mllp(payload)).ok()
    }

    /// The next frame within `within`; `None` on timeout, EOF or error.
    fn frame(&mut self, within: Duration) -> Option<Vec<u8>> {
        self.0.read_mllp(within).ok()
    }

    /// Sends `payload` (MSH-10 `id`) and returns the ACK's MSA-1.
    fn request(&mut self, payload: &[u8], id: &str) -> Option<String> {
        self.send(payload)?;
        let ack = self.frame(WITHIN)?;
        assert_eq!(
            hl7_field(&ack, "MSA|", 2).as_deref(),
            Some(id),
            "ACK names it"
        );
        hl7_field(&ack, "MSA|", 1)
    }
}

/// A raw upstream on `listener`: records every MSH-10 it gets, in order, and
/// answers MSA|AA; one link at a time, until `stop`.
struct Upstream {
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while let Ok((s, _)) = listener.accept() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let mut p = Peer(common::Peer::wrap(s));
                // A link ends when the relay dies; the next one is accepted.
                while let Some(f) = p.frame(Duration::from_secs(60)) {
                    let Some(id) = hl7_field(&f, "MSH|", 9) else {
                        continue;
                    };
                    g.lock().unwrap().push(id.clone());
                    let ack = format!(
                        "MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|A{id}|P|2.5\rMSA|AA|{id}\r"
                    );
                    if p.send(ack.as_bytes()).is_none() || st.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        });
        Upstream {
            got,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until every id of `want` arrived; panics naming the missing.
    fn wait_for(&self, want: &HashSet<String>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got: HashSet<String> = self.got().into_iter().collect();
            let missing: Vec<&String> = want.iter().filter(|id| !got.contains(*id)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} acknowledged messages never arrived upstream: {:?}",
                missing.len(),
                missing.iter().take(20).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a shared set
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fresh spool directory for one test.
fn spool_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mooring-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `mooring relay --spool DIR` to `upstream`; waits for its `event=spool` line.
fn relay(upstream: SocketAddr, dir: &Path, extra: &[&str]) -> (Proc, SocketAddr, String) {
    let dir = dir.to_str().expect("utf-8 temp dir");
    let mut cmd = relay_to(
        upstream,
        &[
            "--spool",
            dir,
            "--spool-size",
            "4M",
            "--reconnect-min",
            "20ms",
            "--reconnect-max",
            "100ms",
        ],
    );
    cmd.args(extra);
    let (mut p, addr) = Proc::listen_cmd(cmd);
    let spool = p.expect_line(|l| l.starts_with("event=spool "), WITHIN);
    (p, addr, spool)
}

/// SIGKILL by PID, then reaped.
fn kill9(p: Proc) {
    let pid = p.pid().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -KILL {pid}");
    drop(p);
}

#[test]
fn a_killed_relay_restarted_on_its_spool_delivers_every_acknowledged_message_in_order() {
    let dir = spool_dir("spool-restart");
    let down = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (r, addr, first) = relay(down, &dir, &[]);
    assert_eq!(field(&first, "recovered"), Some("0"), "{first}");
    assert_eq!(field(&first, "size"), Some("4194304"), "{first}");
    // The upstream is down: every AA is for a message that exists only in the spool.
    let mut dev = Peer::connect(addr).expect("connect");
    let ids: Vec<String> = (0..50).map(|i| format!("R{i}")).collect();
    for id in &ids {
        assert_eq!(dev.request(&msg("DEV", id, 0), id).as_deref(), Some("AA"));
    }
    kill9(r);
    let up = Upstream::start(TcpListener::bind(down).expect("rebind the upstream port"));
    let (_r, _addr, line) = relay(down, &dir, &[]);
    assert_eq!(field(&line, "recovered"), Some("50"), "{line}");
    assert_eq!(field(&line, "corrupt"), Some("0"), "{line}");
    up.wait_for(&ids.iter().cloned().collect(), WITHIN);
    let got = up.got();
    assert_eq!(
        &got[..50],
        &ids[..],
        "in the original order, before anything new"
    );
    drop(_r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tiny deterministic generator for kill delays (no crate needed).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    const KILLS: usize = 20;
    let dir = spool_dir("spool-crash");
    let up = Upstream::start(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let down = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let started = Instant::now();
    for round in 0..KILLS {
        // Upstream up in even rounds, down (nothing listening) in odd ones.
        let target = if round % 2 == 0 { up.addr } else { down };
        let (r, addr, _) = relay(target, &dir, &[]);
        let delay = Duration::from_millis(30 + next(&mut rng) % 250);
        stream_then_kill9(r, addr, &format!("K{round}"), &acked, delay);
    }
    let (_r, _, line) = relay(up.addr, &dir, &[]);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > KILLS, "traffic flowed: {} AAs", acked.len());
    up.wait_for(&acked, Duration::from_secs(20));
    eprintln!(
        "{KILLS} kills, {} messages acknowledged, {} upstream deliveries, last start: {line}, {:?}",
        acked.len(),
        up.got().len(),
        started.elapsed()
    );
    drop(_r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills the spool with the upstream down: devices get MSA|AR (never AA for
/// what is not on disk) with `event=spool_refused reason=full`; once the
/// upstream is back and takes the backlog, the relay accepts again by itself
/// and nothing acknowledged is lost.
fn fill_and_drain(dir: &Path) {
    let down = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (mut r, addr, _) = relay(down, dir, &[]);
    let mut dev = Peer::connect(addr).expect("connect");
    let mut acked = HashSet::new();
    let mut refused = None;
    // 4 MiB of spool, 60 KB messages: full after about 64.
    for i in 0..200 {
        let id = format!("F{i}");
        match dev.request(&msg("DEV", &id, 60_000), &id).as_deref() {
            Some("AA") => {
                acked.insert(id);
            }
            Some("AR") => {
                refused = Some(id);
                break;
            }
            other => panic!("unexpected ACK {other:?}"),
        }
    }
    let refused = refused.expect("the spool filled up and the device got AR");
    r.expect_line(|l| l.starts_with("event=spool_pressure state=full"), WITHIN);
    r.expect_line(
        |l| l.starts_with("event=spool_refused") && field(l, "reason") == Some("full"),
        WITHIN,
    );
    assert!(acked.len() >= 30, "{} accepted before full", acked.len());
    // The upstream comes back: the backlog drains, segments are recycled.
    let up = Upstream::start(TcpListener::bind(down).expect("rebind"));
    up.wait_for(&acked, Duration::from_secs(20));
    // The refused message is accepted again by itself once space returns.
    let deadline = Instant::now() + WITHIN;
    loop {
        match dev
            .request(&msg("DEV", &refused, 60_000), &refused)
            .as_deref()
        {
            Some("AA") => break,
            _ => assert!(Instant::now() < deadline, "still refused after the drain"),
        }
        std::thread::sleep(Duration::from_millis(50)); // the device's resend interval
    }
    r.expect_line(|l| l.starts_with("event=spool_pressure state=ok"), WITHIN);
    acked.insert(refused);
    up.wait_for(&acked, WITHIN);
    drop(r); // before the upstream, whose link it holds
}

#[test]
fn a_full_spool_answers_ar_and_resumes_by_itself_once_the_upstream_drains_it() {
    let dir = spool_dir("spool-full");
    fill_and_drain(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on a small tmpfs made for the test (root only, in `.ci/run`): the
/// filesystem itself is too small for a larger spool, which is refused at
/// start with a named cause; a spool that fits fills, answers AR and resumes.
#[test]
#[ignore = "root only: mounts a tmpfs (run by .ci/run)"]
fn on_a_small_tmpfs_a_full_disk_is_refused_and_a_full_spool_resumes() {
    let base = spool_dir("spool-tmpfs");
    std::fs::create_dir_all(&base).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&base)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (not root?)",
            base.display()
        );
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(base.clone());
    // 8 MiB cannot be preallocated on 6 MiB: a clear error at start.
    let big = base.join("big");
    let out = mooring(&[
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--spool",
        big.to_str().unwrap(),
        "--spool-size",
        "8M",
    ])
    .output()
    .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--spool") && err.contains("ENOSPC"), "{err}");
    let _ = std::fs::remove_dir_all(&big);
    fill_and_drain(&base.join("spool"));
}

/// Streams from `DEVICES` devices to the relay `r` (listening on `addr`),
/// adding every MSH-10 that got AA to `acked`, and SIGKILLs it after `delay`.
fn stream_then_kill9(
    r: Proc,
    addr: SocketAddr,
    tag: &str,
    acked: &Arc<Mutex<HashSet<String>>>,
    delay: Duration,
) {
    const DEVICES: usize = 3;
    let stop = Arc::new(AtomicBool::new(false));
    let devices: Vec<JoinHandle<()>> = (0..DEVICES)
        .map(|d| {
            let (acked, stop, tag) = (acked.clone(), stop.clone(), tag.to_string());
            std::thread::spawn(move || {
                let Some(mut p) = Peer::connect(addr) else {
                    return;
                };
                let app = format!("DEV{d}");
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let id = format!("{tag}-{d}-{n}");
                    match p.request(&msg(&app, &id, 200), &id).as_deref() {
                        Some("AA") => {
                            acked.lock().unwrap().insert(id);
                        }
                        Some(_) => {}
                        None => return, // the relay died under us
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(delay); // the random moment of the kill
    kill9(r);
    stop.store(true, Ordering::SeqCst);
    for d in devices {
        d.join().expect("device thread");
    }
}

/// Reads the upstream's (`mooring listen --session`) lines up to the first
/// one `stop` matches, adding the MSH-10 of each `event=session_message` to
/// `got` (in the order its application got them).
fn upstream_lines_until(up: &mut Proc, stop: impl Fn(&str) -> bool, got: &mut Vec<String>) {
    loop {
        let l = up.expect_line(|_| true, WITHIN);
        if l.starts_with("event=session_message ") {
            got.push(field(&l, "id").expect("id").to_string());
        }
        if stop(&l) {
            return;
        }
    }
}

/// Sends one last message through the relay at `addr` and adds to `got`
/// every MSH-10 the upstream's application got before it: the relay forwards
/// in spool order, so everything recovered comes first.
fn delivered_before_last(up: &mut Proc, addr: SocketAddr, got: &mut Vec<String>) {
    let mut dev = Peer::connect(addr).expect("connect");
    assert_eq!(
        dev.request(&msg("LAST", "LAST", 0), "LAST").as_deref(),
        Some("AA")
    );
    upstream_lines_until(up, |l| field(l, "id") == Some("LAST"), got);
    assert_eq!(got.pop().as_deref(), Some("LAST"));
}

/// The ids of `got` delivered more than once, and the ids of `acked` never delivered.
fn twice_and_missing(got: &[String], acked: &HashSet<String>) -> (Vec<String>, Vec<String>) {
    let mut seen = HashSet::new();
    let twice = got
        .iter()
        .filter(|id| !seen.insert(id.as_str()))
        .cloned()
        .collect();
    let missing = acked
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .cloned()
        .collect();
    (twice, missing)
}

/// Over a mooring upstream (`mooring listen --session`), the session lives in
/// the spool: 20 SIGKILLs at random moments during a stream from 3 devices,
/// each restart resuming the stored session (`event=spool_session
/// state=resumed`), and every MSH-10 a device got AA for reaches the
/// upstream's application exactly once.
#[test]
fn sigkill_over_a_mooring_upstream_delivers_every_acknowledged_message_exactly_once() {
    const KILLS: usize = 20;
    let dir = spool_dir("spool-exactly-once");
    let (mut up, up_addr) = Proc::listen(&["--protocol", "mooring", "--session"]);
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    let mooring = ["--protocol", "mooring"];
    for round in 0..KILLS {
        let (mut r, addr, _) = relay(up_addr, &dir, &mooring);
        let start = r.expect_line(|l| l.starts_with("event=spool_session "), WITHIN);
        let want = if round == 0 { "new" } else { "resumed" };
        assert_eq!(field(&start, "state"), Some(want), "round {round}: {start}");
        let delay = Duration::from_millis(30 + next(&mut rng) % 250);
        stream_then_kill9(r, addr, &format!("X{round}"), &acked, delay);
    }
    let (_r, addr, _) = relay(up_addr, &dir, &mooring);
    let mut got = Vec::new();
    delivered_before_last(&mut up, addr, &mut got);
    let acked = acked.lock().unwrap().clone();
    let (twice, missing) = twice_and_missing(&got, &acked);
    eprintln!(
        "{KILLS} kills over a mooring upstream: {} messages acknowledged, {} delivered upstream, {} twice, {} missing",
        acked.len(),
        got.len(),
        twice.len(),
        missing.len()
    );
    assert!(acked.len() > KILLS, "traffic flowed: {} AAs", acked.len());
    assert!(
        missing.is_empty(),
        "acknowledged, never delivered: {missing:?}"
    );
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    drop(_r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A relay restarted after the upstream dropped its session (beyond
/// `--resume-window`): a new session, `event=spool_session state=new
/// possible_duplicates=N`, every acknowledged message delivered at least
/// once and at most N of them twice.
#[test]
fn a_restart_beyond_the_resume_window_is_at_least_once_with_the_duplicates_counted() {
    let dir = spool_dir("spool-beyond-window");
    let args = [
        "--protocol",
        "mooring",
        "--session",
        "--resume-window",
        "300ms",
    ];
    let (mut up, up_addr) = Proc::listen(&args);
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mooring = ["--protocol", "mooring"];
    let (r, addr, _) = relay(up_addr, &dir, &mooring);
    stream_then_kill9(r, addr, "W", &acked, Duration::from_millis(200));
    // The upstream drops the session once the window has passed.
    let mut got = Vec::new();
    let expired = |l: &str| l.starts_with("event=session ") && l.contains("Expired");
    upstream_lines_until(&mut up, expired, &mut got);
    let (mut r, addr, _) = relay(up_addr, &dir, &mooring);
    let start = r.expect_line(|l| l.starts_with("event=spool_session "), WITHIN);
    assert_eq!(field(&start, "state"), Some("new"), "{start}");
    let possible: usize = field(&start, "possible_duplicates")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{start}"));
    delivered_before_last(&mut up, addr, &mut got);
    let acked = acked.lock().unwrap().clone();
    let (twice, missing) = twice_and_missing(&got, &acked);
    eprintln!(
        "beyond the window: {} acknowledged, {} delivered, {} twice, {possible} possible",
        acked.len(),
        got.len(),
        twice.len()
    );
    assert!(!acked.is_empty(), "traffic flowed");
    assert!(
        missing.is_empty(),
        "acknowledged, never delivered: {missing:?}"
    );
    assert!(
        twice.len() <= possible,
        "{} twice, {possible} reported: {start}",
        twice.len()
    );
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
}
