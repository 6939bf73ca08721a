//! `mooring relay` with several upstreams and with a raw upstream window, end
//! to end on loopback: devices (MLLP senders written here) -> relay ->
//! upstreams (MLLP receivers written here, each recording every MSH-10 it
//! receives before it answers, so a kill loses no record).
//!
//! Every wait is for an expected line, count or reply, with a deadline; every
//! process and thread a test starts is stopped by its own handle.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Process helpers shared with the other CLI tests.
mod support;

use support::{field, mooring, relay_cmd, Proc, WITHIN};

#[path = "mllp/mod.rs"]
mod mllp_wire;
use mllp_wire::{mllp, take_mllp};

/// Message `n` of device `dev`: MSH-3 names the device, MSH-10 is `D<dev>-<n>`.
fn msg(dev: usize, n: usize) -> Vec<u8> {
    format!(
        "MSH|^~\\&|DEV{dev}|WARD|EHR|HOSP|20260101120000||ORU^R01|D{dev}-{n:04}|P|2.5\rPID|1||{dev}\r"
    )
    .into_bytes()
}

/// MSH-10 of a message, or MSA-2 / MSA-1 of an ACK.
fn msh10(m: &[u8]) -> String {
    let t = String::from_utf8_lossy(m);
    t.split('|').nth(9).unwrap_or("").to_string()
}

fn msa(ack: &[u8]) -> (String, String) {
    let t = String::from_utf8_lossy(ack);
    let seg = t.split('\r').find(|s| s.starts_with("MSA|")).unwrap_or("");
    let mut f = seg.split('|').skip(1);
    let code = f.next().unwrap_or("").to_string();
    (code, f.next().unwrap_or("").to_string())
}

/// Whole MLLP frames taken off the front of `buf`.
fn frames(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| take_mllp(buf)).collect()
}

/// How a test receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Each message at once, in order.
    InOrder,
    /// Each message after a pause, in order (a slower receiver).
    Slow(Duration),
    /// Holds messages until `n` are unanswered (or 300 ms passed), then
    /// answers them in order: only a relay that pipelines gets `n` at once.
    Batch(usize),
    /// The first time two are unanswered, answers the second first; then in
    /// order.
    SwapOnce,
}

/// An MLLP receiver: records every MSH-10 before it answers it AA.
struct Receiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Records but answers nothing more (a receiver hanging before it dies).
    mute: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
    /// The most messages it held unanswered at once.
    max_pending: Arc<AtomicUsize>,
    /// Messages received and held unanswered since `mute` (0 until then).
    held: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(bind: SocketAddr, answer: Answer) -> Receiver {
        let listener = TcpListener::bind(bind).expect("bind receiver");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mute = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let max_pending = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let swapped = Arc::new(AtomicBool::new(false));
        let (s, g, m, u) = (stop.clone(), got.clone(), max_pending.clone(), mute.clone());
        let h = held.clone();
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        let (s, g, m, w, u) =
                            (s.clone(), g.clone(), m.clone(), swapped.clone(), u.clone());
                        let h = h.clone();
                        conns.push(std::thread::spawn(move || {
                            serve(c, answer, &s, (&u, &h), &g, &m, &w)
                        }));
                    }
                    // A short poll interval: the loop also watches `stop`.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Receiver {
            addr,
            stop,
            mute,
            got,
            max_pending,
            held,
            accept: Some(accept),
        }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    /// Stops it (listener and links closed) and returns what it received.
    fn kill(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            a.join().expect("receiver thread");
        }
        self.got()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

/// One receiver link: records and answers until `stop` or the peer closes;
/// while `mute.0` is set it answers nothing and counts what it holds in `mute.1`.
fn serve(
    mut c: TcpStream,
    answer: Answer,
    stop: &AtomicBool,
    mute: (&AtomicBool, &AtomicUsize),
    got: &Mutex<Vec<String>>,
    max_pending: &AtomicUsize,
    swapped: &AtomicBool,
) {
    c.set_nonblocking(false).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let mut buf = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut since = Instant::now();
    let mut chunk = [0u8; 8192];
    while !stop.load(Ordering::SeqCst) {
        match c.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        for f in frames(&mut buf) {
            let id = msh10(&f);
            got.lock().unwrap().push(id.clone());
            if pending.is_empty() {
                since = Instant::now();
            }
            pending.push(id);
            max_pending.fetch_max(pending.len(), Ordering::SeqCst);
        }
        let due = match answer {
            Answer::InOrder => true,
            Answer::Slow(d) => {
                if !pending.is_empty() {
                    std::thread::sleep(d);
                }
                true
            }
            Answer::Batch(n) => pending.len() >= n || since.elapsed() > Duration::from_millis(300),
            Answer::SwapOnce => {
                if pending.len() >= 2 && !swapped.swap(true, Ordering::SeqCst) {
                    pending.swap(0, 1);
                }
                swapped.load(Ordering::SeqCst) || since.elapsed() > Duration::from_millis(300)
            }
        };
        if mute.0.load(Ordering::SeqCst) {
            mute.1.store(pending.len(), Ordering::SeqCst);
            continue;
        }
        if !due {
            continue;
        }
        for id in pending.drain(..) {
            let ack = format!(
                "MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|A{id}|P|2.5\rMSA|AA|{id}\r"
            );
            if c.write_all(&mllp(ack.as_bytes())).is_err() {
                return;
            }
        }
    }
}

/// A device: sends its messages one at a time, each until it gets AA (an AR
/// is answered by sending the same message again). Before message `gate.0`
/// it waits for `gate.1` to be set.
fn device(
    relay: SocketAddr,
    dev: usize,
    count: usize,
    acked: Arc<AtomicUsize>,
    gate: (usize, Arc<AtomicBool>),
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&relay, WITHIN).expect("device connect");
        s.set_nodelay(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        for n in 0..count {
            if n == gate.0 {
                wait_for("the gate", WITHIN, || gate.1.load(Ordering::SeqCst));
            }
            let id = format!("D{dev}-{n:04}");
            'resend: loop {
                s.write_all(&mllp(&msg(dev, n))).expect("device write");
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(!left.is_zero(), "device {dev}: no AA for {id} in time");
                    if let Some(f) = frames(&mut buf).into_iter().next() {
                        let (code, of) = msa(&f);
                        assert_eq!(of, id, "the ACK names the message");
                        if code == "AA" {
                            break 'resend;
                        }
                        continue 'resend;
                    }
                    s.set_read_timeout(Some(left)).unwrap();
                    match s.read(&mut chunk) {
                        Ok(0) => panic!("device {dev}: relay closed the link"),
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) => panic!("device {dev}: {e}"),
                    }
                }
            }
            acked.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// `count` devices ([`device`], numbered from 0) sending `each` messages to
/// `relay`, all held at the one `gate`; and the count of AAs they got.
fn devices(
    relay: SocketAddr,
    count: usize,
    each: usize,
    gate: (usize, Arc<AtomicBool>),
) -> (Arc<AtomicUsize>, Vec<JoinHandle<()>>) {
    let acked = Arc::new(AtomicUsize::new(0));
    let devs = (0..count)
        .map(|d| device(relay, d, each, acked.clone(), (gate.0, gate.1.clone())))
        .collect();
    (acked, devs)
}

/// No gate.
fn open_gate() -> (usize, Arc<AtomicBool>) {
    (0, Arc::new(AtomicBool::new(true)))
}

/// Polls `cond` until it holds, up to `within`.
fn wait_for(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// [`relay_cmd`] (fast reconnects) to `upstreams` (in order), and the
/// device address from its first line.
fn relay(upstreams: &[SocketAddr], extra: &[&str]) -> (Proc, SocketAddr) {
    let backups: Vec<String> = upstreams[1..].iter().map(|a| a.to_string()).collect();
    let mut args = Vec::new();
    for u in &backups {
        args.extend_from_slice(&["--upstream", u]);
    }
    args.extend_from_slice(extra);
    Proc::listen_cmd(relay_cmd(upstreams[0], &args))
}

/// Per device, the MSH-10s in the order they first arrived anywhere
/// (`received`: each upstream's record, in the order the upstreams had the
/// traffic).
fn first_arrivals(received: &[&[String]]) -> HashMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut per_dev: HashMap<String, Vec<String>> = HashMap::new();
    for id in received.iter().flat_map(|r| r.iter()) {
        if seen.insert(id.clone()) {
            let dev = id.split('-').next().unwrap_or("").to_string();
            per_dev.entry(dev).or_default().push(id.clone());
        }
    }
    per_dev
}

fn expected(dev: usize, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("D{dev}-{n:04}")).collect()
}

/// Each of `devices` devices' `each` messages arrived (first arrivals across
/// `received`, see [`first_arrivals`]), in order.
fn assert_each_device_in_order(received: &[&[String]], devices: usize, each: usize, what: &str) {
    let per_dev = first_arrivals(received);
    for d in 0..devices {
        assert_eq!(
            per_dev.get(&format!("D{d}")),
            Some(&expected(d, each)),
            "device {d}: {what}"
        );
    }
}

#[test]
fn the_relay_fails_over_to_the_backup_and_returns_to_the_restarted_primary() {
    const DEVICES: usize = 4;
    const EACH: usize = 150;
    // The last messages wait until the relay is back on the primary, so that
    // some surely go there; the backup is slower than the primary, so the
    // return normally comes mid-stream anyway.
    const GATE: usize = 130;
    let total = DEVICES * EACH;
    let primary = Receiver::start("127.0.0.1:0".parse().unwrap(), Answer::InOrder);
    let p_addr = primary.addr;
    let slow = Answer::Slow(Duration::from_millis(2));
    let backup = Receiver::start("127.0.0.1:0".parse().unwrap(), slow);
    let (mut r, addr) = relay(
        &[p_addr, backup.addr],
        &["--failover-after", "2", "--ack-after", "upstream"],
    );
    r.expect_line(
        |l| field(l, "state") == Some("connected") && field(l, "active") == Some("0"),
        WITHIN,
    );
    let gate = Arc::new(AtomicBool::new(false));
    let (acked, devs) = devices(addr, DEVICES, EACH, (GATE, gate.clone()));

    // Mid-stream: the primary hangs with a message unanswered, then dies
    // (its links and its port): that message is in doubt.
    wait_for("a third at the primary", WITHIN, || {
        primary.got().len() >= total / 3
    });
    primary.mute.store(true, Ordering::SeqCst);
    // Held: one that arrives after the mute, or one read just before it
    // whose answer the mute stopped (then nothing more may come: the
    // devices wait for their AAs).
    wait_for("a message the primary leaves unanswered", WITHIN, || {
        primary.held.load(Ordering::SeqCst) > 0
    });
    let p1 = primary.kill();
    let l = r.expect_line(|l| field(l, "state") == Some("lost"), WITHIN);
    assert_ne!(field(&l, "in_doubt"), Some("none"), "{l}");
    assert_eq!(field(&l, "resent"), Some("1"), "{l}");
    let l = r.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("failover"), "{l}");
    assert_eq!(field(&l, "failures"), Some("2"), "{l}");
    assert_eq!(
        field(&l, "addr"),
        Some(backup.addr.to_string().as_str()),
        "{l}"
    );
    assert_eq!(field(&l, "from"), Some(p_addr.to_string().as_str()), "{l}");
    assert_eq!(field(&l, "active"), Some("1"), "{l}");

    // Some through the backup, then the primary comes back.
    let base = acked.load(Ordering::SeqCst);
    wait_for("messages through the backup", WITHIN, || {
        acked.load(Ordering::SeqCst) >= base + 50
    });
    let primary = Receiver::start(p_addr, Answer::InOrder);
    let l = r.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("primary_back"), "{l}");
    assert_eq!(field(&l, "addr"), Some(p_addr.to_string().as_str()), "{l}");
    assert_eq!(field(&l, "active"), Some("0"), "{l}");
    gate.store(true, Ordering::SeqCst);

    for d in devs {
        d.join().expect("device");
    }
    assert_eq!(acked.load(Ordering::SeqCst), total);
    // --ack-after upstream: every AA was an upstream's ACK, so all arrived.
    let b = backup.kill();
    let p2 = primary.kill();
    assert!(!b.is_empty(), "the backup took the traffic meanwhile");
    assert!(!p2.is_empty(), "the relay returned to the primary");
    assert_each_device_in_order(
        &[&p1, &b, &p2],
        DEVICES,
        EACH,
        "every message, in order, across primary, backup, primary",
    );
}

#[test]
fn a_raw_window_keeps_several_messages_in_flight_and_in_order() {
    const DEVICES: usize = 8;
    const EACH: usize = 40;
    let up = Receiver::start("127.0.0.1:0".parse().unwrap(), Answer::Batch(8));
    let (mut r, addr) = relay(
        &[up.addr],
        &[
            "--upstream-window",
            "8",
            "--spool",
            "memory",
            "--queue",
            "1000",
        ],
    );
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    let (_, devs) = devices(addr, DEVICES, EACH, open_gate());
    for d in devs {
        d.join().expect("device");
    }
    let total = DEVICES * EACH;
    wait_for("every message upstream", WITHIN, || up.got().len() >= total);
    let max_pending = up.max_pending.load(Ordering::SeqCst);
    let got = up.kill();
    assert_eq!(got.len(), total, "each once (nothing was in doubt)");
    assert_each_device_in_order(&[&got], DEVICES, EACH, "every message, in order");
    assert_eq!(
        max_pending, 8,
        "the receiver held a full window of 8 unanswered"
    );
}

#[test]
fn an_ack_out_of_order_is_named_and_what_was_in_flight_is_resent_and_acked_once() {
    const EACH: usize = 20;
    let up = Receiver::start("127.0.0.1:0".parse().unwrap(), Answer::SwapOnce);
    let (mut r, addr) = relay(&[up.addr], &["--upstream-window", "4", "--spool", "memory"]);
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    let (_, devs) = devices(addr, 2, EACH, open_gate());
    let l = r.expect_line(|l| field(l, "event") == Some("reply_out_of_order"), WITHIN);
    assert!(
        field(&l, "expected").is_some() && field(&l, "id").is_some(),
        "{l}"
    );
    let l = r.expect_line(|l| field(l, "state") == Some("lost"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("ReplyOutOfOrder"), "{l}");
    for d in devs {
        d.join().expect("device");
    }
    // Every message is acknowledged by the relay exactly once.
    let acks = |r: &Proc| {
        let mut acks: HashMap<String, usize> = HashMap::new();
        for l in r
            .seen()
            .iter()
            .filter(|l| field(l, "event") == Some("acked"))
        {
            *acks
                .entry(field(l, "id").unwrap_or("").to_string())
                .or_default() += 1;
        }
        acks
    };
    while acks(&r).len() < 2 * EACH {
        r.expect_line(|l| field(l, "event") == Some("acked"), WITHIN);
    }
    let acks = acks(&r);
    let got = up.kill();
    let per_dev = first_arrivals(&[&got]);
    for d in 0..2 {
        assert_eq!(
            per_dev.get(&format!("D{d}")).map(Vec::len),
            Some(EACH),
            "device {d}"
        );
    }
    assert!(acks.values().all(|&n| n == 1), "acked once each: {acks:?}");
    assert!(
        !r.seen().iter().any(|l| field(l, "event") == Some("failed")),
        "nothing failed"
    );
}

/// Kills `p` (SIGKILL, by its own pid) and reads its lines to the end.
fn kill_and_drain(p: &mut Proc) {
    let status = std::process::Command::new("kill")
        .args(["-9", &p.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    p.wait_exit(WITHIN);
}

/// The MSH-10s a `mooring listen --session` printed, in order.
fn session_ids(p: &Proc) -> Vec<String> {
    p.seen()
        .iter()
        .filter(|l| field(l, "event") == Some("session_message"))
        .filter_map(|l| field(l, "id").map(str::to_string))
        .collect()
}

/// `mooring listen --protocol mooring --session` on `port` (0: any).
fn session_upstream(port: u16) -> (Proc, SocketAddr) {
    let bind = format!("127.0.0.1:{port}");
    Proc::listen_cmd(mooring(&[
        "listen",
        "--bind",
        &bind,
        "--protocol",
        "mooring",
        "--session",
    ]))
}

#[test]
fn a_mooring_relay_fails_over_to_the_backup_session_and_returns_to_the_primary() {
    const DEVICES: usize = 3;
    const EACH: usize = 60;
    const GATE: usize = 50;
    let (mut primary, p_addr) = session_upstream(0);
    let (mut backup, b_addr) = session_upstream(0);
    let (mut r, addr) = relay(
        &[p_addr, b_addr],
        &[
            "--protocol",
            "mooring",
            "--failover-after",
            "2",
            "--ack-after",
            "upstream",
        ],
    );
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    let gate = Arc::new(AtomicBool::new(false));
    let (acked, devs) = devices(addr, DEVICES, EACH, (GATE, gate.clone()));
    // Mid-stream: the primary is killed.
    for _ in 0..DEVICES * EACH / 3 {
        primary.expect_line(|l| field(l, "event") == Some("session_message"), WITHIN);
    }
    kill_and_drain(&mut primary);
    let p1 = session_ids(&primary);
    let l = r.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("failover"), "{l}");
    assert_eq!(field(&l, "addr"), Some(b_addr.to_string().as_str()), "{l}");
    for _ in 0..10 {
        backup.expect_line(|l| field(l, "event") == Some("session_message"), WITHIN);
    }
    // The primary comes back on its port: the relay returns to it.
    let (mut primary, again) = session_upstream(p_addr.port());
    assert_eq!(again, p_addr);
    let l = r.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("primary_back"), "{l}");
    assert_eq!(field(&l, "active"), Some("0"), "{l}");
    gate.store(true, Ordering::SeqCst);
    for d in devs {
        d.join().expect("device");
    }
    assert_eq!(acked.load(Ordering::SeqCst), DEVICES * EACH);
    // --ack-after upstream: every AA was the session's acknowledgement.
    kill_and_drain(&mut backup);
    kill_and_drain(&mut primary);
    let (b, p2) = (session_ids(&backup), session_ids(&primary));
    assert!(
        !b.is_empty() && !p2.is_empty(),
        "backup {b:?}, primary again {p2:?}"
    );
    assert_each_device_in_order(
        &[&p1, &b, &p2],
        DEVICES,
        EACH,
        "every message, in order, across primary, backup, primary",
    );
}
