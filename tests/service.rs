//! Running as a service (issue 16): `--config FILE`, graceful shutdown on
//! SIGTERM/SIGINT, systemd notify. Every test drives the real binary on
//! loopback; signals are sent by PID with `kill`.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
mod support;

use common::{acked_id, hl7_msg, Peer, ReadEnd};
use support::{field, mooring, run, Proc, WITHIN};

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("mooring-service-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    /// Writes `text` to `name` in the directory; its path.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write config");
        p.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `sig` (e.g. "TERM") to the process.
fn signal(p: &Proc, sig: &str) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} failed");
}

/// An address nothing listens on (yet).
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::free_port()))
}

// ---------------------------------------------------------------------------
// --config FILE
// ---------------------------------------------------------------------------

#[test]
fn a_config_file_sets_flags_and_the_command_line_overrides_them() {
    let dir = Scratch::new("override");
    let conf = dir.file(
        "listen.conf",
        "# a listener for the test\n\
         \n\
         bind = 127.0.0.1:1          # overridden below\n\
         reply = echo\n\
         max-conns = 3\n",
    );
    let (_p, addr) = Proc::listen_cmd(mooring(&[
        "listen",
        "--config",
        &conf,
        "--bind",
        "127.0.0.1:0",
    ]));
    assert_ne!(addr.port(), 1, "the command line's --bind wins");
    let mut peer = Peer::connect(addr);
    let msg = hl7_msg("CFG1");
    assert_eq!(
        peer.request(&msg),
        msg,
        "reply = echo from the file applies"
    );
}

#[test]
fn repeatable_flags_repeat_the_line_and_the_command_line_replaces_them_all() {
    let dir = Scratch::new("repeat");
    let conf = dir.file(
        "allow.conf",
        "allow = 10.0.0.0/8\nallow = 127.0.0.1\nreply = hl7-ack\n",
    );
    // Both lines count: 127.0.0.1 (the second) is allowed.
    let (_p, addr) = Proc::listen_cmd(mooring(&[
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--config",
        &conf,
    ]));
    let mut peer = Peer::connect(addr);
    assert_eq!(acked_id(&peer.request(&hl7_msg("REP1"))), "REP1");
    // `--allow` on the command line replaces every `allow` line of the file.
    let (mut p, addr) = Proc::listen_cmd(mooring(&[
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--config",
        &conf,
        "--allow",
        "10.0.0.0/8",
    ]));
    let mut peer = Peer::connect(addr);
    peer.expect_closed(WITHIN);
    p.expect_line(|l| l.contains("event=rejected"), WITHIN);
}

#[test]
fn an_unknown_key_exits_2_naming_the_file_and_line() {
    let dir = Scratch::new("unknown");
    let conf = dir.file(
        "bad.conf",
        "# comment\nlisten = 127.0.0.1:0\n\nbogus-flag = 1\n",
    );
    let r = run(
        mooring(&["relay", "--config", &conf, "--upstream", "127.0.0.1:9"]),
        None,
    );
    assert_eq!(r.status.code(), Some(2), "stderr: {}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("error: {conf}:4: unknown flag --bogus-flag")),
        "stderr: {}",
        r.stderr
    );
}

#[test]
fn a_bad_value_exits_2_naming_the_file_and_line() {
    let dir = Scratch::new("badvalue");
    for (text, line, says) in [
        (
            "bind = 127.0.0.1:0\nidle-timeout = 5x\n",
            2,
            "--idle-timeout: bad duration",
        ),
        ("reply = loud\n", 1, "--reply: bad value"),
        ("quiet = maybe\n", 1, "--quiet: takes no value"),
        (
            "shutdown-timeout = soon\n",
            1,
            "--shutdown-timeout: bad duration",
        ),
        ("max-conns\n", 1, "--max-conns: missing value"),
    ] {
        let conf = dir.file("bad.conf", text);
        let r = run(mooring(&["listen", "--config", &conf]), None);
        assert_eq!(r.status.code(), Some(2), "{text}: {}", r.stderr);
        let want = format!("error: {conf}:{line}: {says}");
        assert!(r.stderr.starts_with(&want), "{text}: {}", r.stderr);
    }
    // A relay's liveness flag is checked after the others, and still named by its line.
    let conf = dir.file(
        "relay.conf",
        "listen = 127.0.0.1:0\nupstream = 127.0.0.1:9\nheartbeat = 5x\n",
    );
    let r = run(mooring(&["relay", "--config", &conf]), None);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("error: {conf}:3: --heartbeat: bad duration")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_conflict_between_flags_is_named_by_the_line_of_the_flag_refused() {
    let dir = Scratch::new("conflict");
    let relay = "listen = 127.0.0.1:0\nupstream = 127.0.0.1:9\n";
    for (sub, text, line, says) in [
        (
            "listen",
            "bind = 127.0.0.1:0\nheartbeat = 5s\n",
            2,
            "--heartbeat: needs --protocol mooring",
        ),
        (
            "listen",
            "protocol = mooring\n\nmax-sessions-per-ip = 3\n",
            3,
            "--max-sessions-per-ip: needs --session",
        ),
        (
            "relay",
            &format!("{relay}# a comment\nheartbeat = 5s\n"),
            4,
            "--heartbeat: needs --protocol mooring",
        ),
        (
            "relay",
            &format!("{relay}fsync = off\n"),
            3,
            "relay: --spool-size and --fsync need --spool DIR",
        ),
    ] {
        let conf = dir.file("c.conf", text);
        let r = run(mooring(&[sub, "--config", &conf]), None);
        assert_eq!(r.status.code(), Some(2), "{text}: {}", r.stderr);
        let want = format!("error: {conf}:{line}: {says}");
        assert!(r.stderr.starts_with(&want), "{text}: {}", r.stderr);
    }
    // A flag refused on the command line has no line to name.
    let conf = dir.file("c.conf", "bind = 127.0.0.1:0\n");
    let r = run(
        mooring(&["listen", "--config", &conf, "--heartbeat", "5s"]),
        None,
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: --heartbeat: needs --protocol mooring"),
        "{}",
        r.stderr
    );
}

#[test]
fn switches_in_a_config_file_take_true_or_false() {
    let dir = Scratch::new("switches");
    let off = "verbose = false\nhelp = false\ncheck-config = true\n";
    for (sub, text) in [
        (
            "listen",
            format!("bind = 127.0.0.1:0\nquiet = false\n{off}"),
        ),
        (
            "relay",
            format!("listen = 127.0.0.1:0\nupstream = 127.0.0.1:9\n{off}"),
        ),
        ("send", format!("verbose = true\n{off}")),
    ] {
        let conf = dir.file("s.conf", &text);
        let mut args = vec![sub, "--config", &conf];
        if sub == "send" {
            args.push("127.0.0.1:9");
        }
        let r = run(mooring(&args), None);
        assert_eq!(r.status.code(), Some(0), "{sub} {text}: {}", r.stderr);
        assert_eq!(r.stdout, "config=ok\n", "{sub}: help = false shows no help");
    }
    let conf = dir.file("s.conf", "bind = 127.0.0.1:0\nverbose = sometimes\n");
    let r = run(mooring(&["listen", "--config", &conf]), None);
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "error: {conf}:2: --verbose: takes no value (or true/false)"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn the_example_relay_config_parses() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/systemd/relay.conf");
    let r = run(
        mooring(&["relay", "--config", conf, "--check-config"]),
        None,
    );
    assert_eq!(r.status.code(), Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "config=ok\n");
}

// ---------------------------------------------------------------------------
// SIGTERM / SIGINT
// ---------------------------------------------------------------------------

#[test]
fn listen_stops_on_sigterm_and_answers_every_message_it_took() {
    let (mut p, addr) = Proc::listen(&["--shutdown-timeout", "5s"]);
    let mut peer = Peer::connect(addr);
    // A peer that keeps sending while the listener stops: whatever the
    // listener reports as taken must be answered before its link closes.
    let sender = peer.stream.try_clone().expect("clone");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut s = sender;
        for i in 0..5_000 {
            if st.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let frame = common::mllp(&hl7_msg(&format!("T{i:05}")));
            if std::io::Write::write_all(&mut s, &frame).is_err() {
                break;
            }
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    p.expect_line(
        |l| l.contains("event=message") && l.contains("id=T00010"),
        WITHIN,
    );
    let sent_at = Instant::now();
    signal(&p, "TERM");
    // Every reply up to the close.
    let mut acked = Vec::new();
    loop {
        match peer.read_mllp(WITHIN) {
            Ok(ack) => acked.push(acked_id(&ack)),
            Err(ReadEnd::Closed) => break,
            Err(ReadEnd::TimedOut) => panic!("link still open {WITHIN:?} after SIGTERM"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let status = p.wait_exit(WITHIN);
    let took = sent_at.elapsed();
    writer.join().expect("writer");
    assert_eq!(status.code(), Some(0), "exit 0 on SIGTERM");
    assert!(took < Duration::from_secs(5), "stopped in {took:?}");
    let stopped = p.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&stopped, "event"), Some("stopped"), "{stopped}");
    assert_eq!(field(&stopped, "reason"), Some("signal"));
    assert_eq!(field(&stopped, "signal"), Some("SIGTERM"));
    assert_eq!(field(&stopped, "drained"), Some("true"));
    let taken: Vec<String> = p
        .seen()
        .iter()
        .filter(|l| field(l, "event") == Some("message"))
        .filter_map(|l| field(l, "id").map(str::to_string))
        .collect();
    assert!(!taken.is_empty());
    assert_eq!(acked, taken, "every message taken was answered, in order");
}

#[test]
fn sigint_stops_listen_too() {
    let (mut p, _addr) = Proc::listen(&[]);
    p.expect_line(|l| l.starts_with("event=liveness"), WITHIN);
    signal(&p, "INT");
    let status = p.wait_exit(WITHIN);
    assert_eq!(status.code(), Some(0));
    let last = p.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&last, "signal"), Some("SIGINT"), "{last}");
}

/// Starts `mooring relay` forwarding to `upstream` with `extra`; its device address.
fn relay(upstream: SocketAddr, extra: &[&str]) -> (Proc, SocketAddr) {
    Proc::listen_cmd(support::relay_cmd(upstream, extra))
}

/// A raw upstream that ACKs every message on one link at a time and sends the
/// MSH-10s it got on the channel.
fn upstream_at(addr: SocketAddr) -> mpsc::Receiver<String> {
    let l = TcpListener::bind(addr).expect("bind the upstream's port again");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok((s, _)) = l.accept() {
            let mut p = Peer::wrap(s);
            while let Ok(m) = p.read_mllp(Duration::from_secs(30)) {
                let id = common::control_id(&m);
                p.send_mllp(&common::hl7_ack_for(&id));
                if tx.send(id).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn a_relay_with_a_spool_stops_on_sigterm_and_its_successor_delivers_all_it_acknowledged() {
    let dir = Scratch::new("relay-spool");
    let spool = dir.path("spool");
    let up = free_addr();
    let args = ["--spool", &spool, "--fsync", "interval=10s"];
    let (mut p, addr) = relay(up, &args);
    let mut device = Peer::connect(addr);
    let ids: Vec<String> = (0..5).map(|i| format!("SP{i}")).collect();
    for id in &ids {
        let ack = device.request(&hl7_msg(id));
        assert_eq!(acked_id(&ack), *id);
        assert!(
            String::from_utf8_lossy(&ack).contains("MSA|AA|"),
            "acknowledged"
        );
    }
    signal(&p, "TERM");
    let status = p.wait_exit(WITHIN);
    assert_eq!(status.code(), Some(0));
    let stopped = p.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&stopped, "event"), Some("stopped"), "{stopped}");
    assert_eq!(field(&stopped, "drained"), Some("true"), "{stopped}");
    assert_eq!(field(&stopped, "queued"), Some("5"), "{stopped}");
    assert_eq!(field(&stopped, "spooled"), Some("true"), "{stopped}");
    device.expect_closed(WITHIN);
    // The successor, with the upstream up: everything, in order.
    let got = upstream_at(up);
    let (_p2, _addr2) = relay(up, &args);
    let mut delivered = Vec::new();
    while delivered.len() < ids.len() {
        match got.recv_timeout(WITHIN) {
            Ok(id) => delivered.push(id),
            Err(_) => panic!("upstream got only {delivered:?}"),
        }
    }
    assert_eq!(delivered, ids);
}

#[test]
fn a_relay_that_cannot_drain_stops_at_the_shutdown_timeout() {
    // No spool and the upstream down: the acknowledged message can only be
    // lost, and the relay says so, after trying for --shutdown-timeout.
    let (mut p, addr) = relay(
        free_addr(),
        &["--spool", "memory", "--shutdown-timeout", "1s"],
    );
    let mut device = Peer::connect(addr);
    assert_eq!(acked_id(&device.request(&hl7_msg("MEM1"))), "MEM1");
    let t0 = Instant::now();
    signal(&p, "TERM");
    let status = p.wait_exit(WITHIN);
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_millis(900),
        "waited for the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "bounded by it: {took:?}");
    let stopped = p.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&stopped, "drained"), Some("false"), "{stopped}");
    assert_eq!(field(&stopped, "queued"), Some("1"), "{stopped}");
    assert_eq!(field(&stopped, "spooled"), Some("false"), "{stopped}");
}

// ---------------------------------------------------------------------------
// systemd notify
// ---------------------------------------------------------------------------

#[test]
fn systemd_hears_ready_the_watchdog_at_half_its_timeout_and_stopping() {
    let dir = Scratch::new("notify");
    let sock_path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    let mut cmd = mooring(&["listen", "--bind", "127.0.0.1:0"]);
    // WATCHDOG=1 every 300 ms.
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "600000");
    let (mut p, _addr) = Proc::listen_cmd(cmd);
    let recv = |within: Duration| -> Option<(String, Instant)> {
        sock.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).ok()?;
        Some((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            Instant::now(),
        ))
    };
    let (first, _) = recv(WITHIN).expect("a notification");
    assert_eq!(first, "READY=1");
    let mut pets = Vec::new();
    while pets.len() < 3 {
        let (m, at) = recv(WITHIN).expect("WATCHDOG=1");
        assert_eq!(m, "WATCHDOG=1");
        pets.push(at);
    }
    for w in pets.windows(2) {
        let gap = w[1] - w[0];
        // 300 ms apart; a loaded machine may be late, never much early.
        assert!(
            gap >= Duration::from_millis(250),
            "petted too early: {gap:?}"
        );
        assert!(
            gap < Duration::from_millis(1500),
            "petted too late: {gap:?}"
        );
    }
    signal(&p, "TERM");
    let mut rest = Vec::new();
    while let Some((m, _)) = recv(WITHIN) {
        let stopping = m == "STOPPING=1";
        rest.push(m);
        if stopping {
            break;
        }
    }
    assert_eq!(
        rest.last().map(String::as_str),
        Some("STOPPING=1"),
        "{rest:?}"
    );
    assert_eq!(p.wait_exit(WITHIN).code(), Some(0));
}

#[test]
fn send_stops_on_sigterm_after_the_reply_in_flight_and_summarizes() {
    let (_listener, addr) = Proc::listen(&[]);
    let dir = Scratch::new("send");
    let text: String = (0..50)
        .map(|i| String::from_utf8(hl7_msg(&format!("S{i:02}"))).expect("utf8") + "\n")
        .collect();
    let file = dir.file("msgs.hl7", &text.replace('\r', "\n"));
    let addr = addr.to_string();
    let mut p = Proc::spawn(mooring(&["send", &addr, &file, "--pace", "100ms"]));
    p.expect_line(|l| l.starts_with("event=reply n=2 "), WITHIN);
    signal(&p, "TERM");
    let status = p.wait_exit(WITHIN);
    assert_eq!(status.code(), Some(1), "not everything was sent");
    let seen = p.seen();
    let stopped = seen
        .iter()
        .find(|l| l.starts_with("event=stopped"))
        .unwrap_or_else(|| panic!("no event=stopped in {seen:?}"));
    assert_eq!(field(stopped, "signal"), Some("SIGTERM"));
    let summary = seen.last().cloned().unwrap_or_default();
    assert_eq!(field(&summary, "event"), Some("summary"), "{summary}");
    let sent: usize = field(&summary, "sent")
        .and_then(|v| v.parse().ok())
        .expect("sent");
    let unsent: usize = field(stopped, "unsent")
        .and_then(|v| v.parse().ok())
        .expect("unsent");
    assert_eq!(sent + unsent, 50);
    assert!(unsent > 0 && sent >= 2, "{stopped} / {summary}");
    // Every message sent got its reply: the one in flight was finished.
    assert_eq!(field(&summary, "replied"), Some(sent.to_string().as_str()));
    assert_eq!(field(&summary, "failed"), Some("0"));
}

#[test]
fn sessions_served_by_listen_end_closed_on_sigterm() {
    let (mut listen, addr) = Proc::listen(&["--protocol", "mooring", "--session"]);
    let addr = addr.to_string();
    let mut send = Proc::spawn(mooring(&[
        "send",
        &addr,
        support::SAMPLE,
        "--protocol",
        "mooring",
        "--session",
        "--hold",
        "60s",
    ]));
    send.expect_line(|l| l.starts_with("event=reply n=3 "), WITHIN);
    signal(&listen, "TERM");
    // The client hears the session end (CLOSE with SessionClosed), not a lost link.
    send.expect_line(
        |l| l.starts_with("event=session session=1 note=ended how=Closed"),
        WITHIN,
    );
    assert_eq!(
        send.wait_exit(WITHIN).code(),
        Some(0),
        "every message was answered"
    );
    assert_eq!(listen.wait_exit(WITHIN).code(), Some(0));
    let stopped = listen.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&stopped, "event"), Some("stopped"), "{stopped}");
}

#[test]
fn a_relay_stopped_under_load_delivers_after_restart_every_message_a_device_got_aa_for() {
    let dir = Scratch::new("relay-load");
    let spool = dir.path("spool");
    let up = free_addr();
    let args = ["--spool", &spool, "--fsync", "batch"];
    let (mut p, addr) = relay(up, &args);
    let mut device = Peer::connect(addr);
    // The device pipelines while the relay stops.
    let sender = device.stream.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let mut s = sender;
        for i in 0..2_000 {
            let frame = common::mllp(&hl7_msg(&format!("L{i:04}")));
            if std::io::Write::write_all(&mut s, &frame).is_err() {
                break;
            }
        }
    });
    p.expect_line(
        |l| l.contains("event=queued") && l.contains("id=L0020"),
        WITHIN,
    );
    signal(&p, "TERM");
    let mut aa = Vec::new();
    loop {
        match device.read_mllp(WITHIN) {
            Ok(ack) => {
                if String::from_utf8_lossy(&ack).contains("MSA|AA|") {
                    aa.push(acked_id(&ack));
                }
            }
            Err(ReadEnd::Closed) => break,
            Err(ReadEnd::TimedOut) => panic!("device link still open {WITHIN:?} after SIGTERM"),
        }
    }
    writer.join().expect("writer");
    assert_eq!(p.wait_exit(WITHIN).code(), Some(0));
    let stopped = p.seen().last().cloned().unwrap_or_default();
    assert_eq!(field(&stopped, "event"), Some("stopped"), "{stopped}");
    assert!(aa.len() >= 21, "AAs before the stop: {}", aa.len());
    // The successor forwards every acknowledged message.
    let got = upstream_at(up);
    let (_p2, _addr2) = relay(up, &args);
    let mut delivered = Vec::new();
    while delivered.len() < aa.len() {
        match got.recv_timeout(WITHIN) {
            Ok(id) => delivered.push(id),
            Err(_) => panic!(
                "upstream got {} of {} acknowledged",
                delivered.len(),
                aa.len()
            ),
        }
    }
    // The spool holds exactly what was acknowledged: nothing more comes.
    assert!(
        got.recv_timeout(Duration::from_millis(500)).is_err(),
        "more than was acknowledged"
    );
    // In the order the device sent them. (The relay's AAs of one group commit
    // go out newest first, so `aa` is not in that order: compare as sets.)
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "forwarded in order"
    );
    let mut want = aa.clone();
    want.sort();
    assert!(
        delivered == want,
        "every AA'd message is delivered, nothing else"
    );
}
