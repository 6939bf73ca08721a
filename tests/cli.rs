//! The `mooring` binary as operators run it: exit statuses, error lines, and the
//! `key=value` event lines of `listen`, `send` and `demo`, over loopback.
//!
//! Every wait is for an expected line or exit, with a deadline; every process a
//! test starts is killed (by its own handle) when the test ends, pass or fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Process helpers shared with the interop tests.
mod support;
// The raw MLLP peer the library tests use.
mod common;

use common::Peer;
use support::{
    assert_sample_replies, assert_usage_errors, expect_sample_received, field, mooring, run, Proc,
    Run, TempFile, SAMPLE, WITHIN,
};

/// `mooring send ADDR tests/data/sample.hl7 --response-timeout 5s <extra>` to
/// completion.
fn send_sample(addr: SocketAddr, extra: &[&str]) -> Run {
    let mut args = vec!["--response-timeout", "5s"];
    args.extend_from_slice(extra);
    send_sample_with(addr, &args)
}

/// `mooring send ADDR tests/data/sample.hl7 <extra>` to completion.
fn send_sample_with(addr: SocketAddr, extra: &[&str]) -> Run {
    let a = addr.to_string();
    let mut cmd = mooring(&["send", &a, SAMPLE]);
    cmd.args(extra);
    run(cmd, None)
}

#[test]
fn an_unknown_flag_exits_2_with_one_line_naming_it() {
    for args in [
        &["listen", "--bogus"][..],
        &["send", "--bogus", "127.0.0.1:1"],
        &["--bogus"],
    ] {
        let r = run(mooring(args), None);
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("--bogus"), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn an_unknown_subcommand_exits_2() {
    let r = run(mooring(&["frobnicate"]), None);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("frobnicate"), "{}", r.stderr);
}

#[test]
fn a_bad_duration_exits_2_naming_the_flag_and_value() {
    let r = run(mooring(&["listen", "--idle-timeout", "5x"]), None);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        r.stderr.trim_end(),
        "error: --idle-timeout: bad duration \"5x\" (use 500ms, 10s, 5m)"
    );
    let r = run(
        mooring(&["send", "127.0.0.1:1", "--response-timeout", "10"]),
        None,
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stderr.contains("--response-timeout"), "{}", r.stderr);
}

#[test]
fn a_config_that_cannot_work_exits_2_with_one_line() {
    let r = run(
        mooring(&[
            "listen",
            "--bind",
            "127.0.0.1:0",
            "--max-conns",
            "2",
            "--stale-recovery",
            "1s",
        ]),
        None,
    );
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("stale recovery"), "{}", r.stderr);
}

#[test]
fn a_bind_failure_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let r = run(mooring(&["listen", "--bind", &addr]), None);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(&addr), "{}", r.stderr);
}

#[test]
fn help_prints_usage_to_stdout_and_exits_0() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["listen", "--help"],
        &["send", "-h"],
    ] {
        let r = run(mooring(args), None);
        assert_eq!(r.status.code(), Some(0), "{args:?}");
        assert!(r.stdout.contains("Usage"), "{args:?}");
        assert!(r.stderr.is_empty());
    }
}

#[test]
fn send_gets_an_ack_for_each_message_and_listen_reports_them() {
    let (mut listen, addr) = Proc::listen(&[]);
    let r = send_sample(addr, &[]);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    assert_eq!(
        lines[0],
        "event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off \
         tcp_user_timeout=off detection_bound=none"
    );
    assert_sample_replies(&lines[1..4]);
    for (i, l) in lines[1..4].iter().enumerate() {
        assert_eq!(field(l, "n"), Some((i + 1).to_string().as_str()), "{l}");
        assert!(field(l, "bytes").is_some_and(|b| b.parse::<usize>().is_ok_and(|b| b > 0)));
        assert!(field(l, "ms").is_some_and(|m| m.parse::<u64>().is_ok()));
    }
    assert_eq!(
        lines[4],
        "event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=0"
    );

    let peer = expect_sample_received(&mut listen);
    let closed = listen.expect_line(|l| l.starts_with("event=closed "), WITHIN);
    assert_eq!(field(&closed, "peer"), Some(peer.as_str()));
    assert_eq!(field(&closed, "reason"), Some("PeerClosed"));
}

#[test]
fn send_reads_stdin_and_close_each_connects_per_message() {
    let (mut listen, addr) = Proc::listen(&["--quiet"]);
    let text = std::fs::read(SAMPLE).expect("sample");
    let a = addr.to_string();
    let r = run(mooring(&["send", &a, "-", "--close-each"]), Some(&text));
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.lines()
            .iter()
            .filter(|l| field(l, "ack") == Some("AA"))
            .count(),
        3
    );
    // --quiet drops message lines but not the others: three links, no messages.
    for _ in 0..3 {
        let l = listen.expect_line(
            |l| l.starts_with("event=connected ") || l.starts_with("event=message "),
            WITHIN,
        );
        assert!(l.starts_with("event=connected "), "{l}");
    }
}

#[test]
fn echo_over_len32_sends_each_payload_back() {
    let (mut listen, addr) = Proc::listen(&["--framing", "len32", "--reply", "echo"]);
    let r = send_sample(addr, &["--framing", "len32"]);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let replies: Vec<&str> = r
        .lines()
        .into_iter()
        .filter(|l| field(l, "event") == Some("reply"))
        .collect();
    assert_eq!(replies.len(), 3, "{}", r.stdout);
    for (n, reply) in replies.iter().enumerate() {
        // An echo has no MSA, hence no ack key; its size is the message's.
        assert_eq!(field(reply, "ack"), None, "{reply}");
        let m = listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
        assert_eq!(field(&m, "id"), Some(format!("MSG{:05}", n + 1).as_str()));
        assert_eq!(field(&m, "bytes"), field(reply, "bytes"), "{m} vs {reply}");
    }
}

#[test]
fn send_to_a_closed_port_fails_with_connection_refused() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let r = send_sample(port, &["--connect-timeout", "2s"]);
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
    let lines = r.lines();
    assert!(lines[0].starts_with("event=liveness "), "{}", r.stdout);
    assert_eq!(
        lines[1], "event=error n=1 id=MSG00001 error=ConnectionRefused",
        "{}",
        r.stdout
    );
    assert_eq!(
        lines.last().copied(),
        Some("event=summary sent=3 replied=0 failed=3 resends=0 unexpected=0 rejected=0")
    );
}

#[test]
fn a_failed_message_is_retried_with_a_retry_line() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let a = port.to_string();
    let text = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|ONLY1|P|2.5\nPID|1\n";
    let r = run(mooring(&["send", &a, "--retries", "2"]), Some(text));
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(
        r.lines()[1..],
        [
            "event=retry n=1 attempt=1 error=ConnectionRefused",
            "event=retry n=1 attempt=2 error=ConnectionRefused",
            "event=error n=1 id=ONLY1 error=ConnectionRefused",
            "event=summary sent=1 replied=0 failed=1 resends=0 unexpected=0 rejected=0",
        ]
    );
}

#[test]
fn a_silent_peer_is_closed_with_idle_timeout() {
    let (mut listen, addr) = Proc::listen(&["--idle-timeout", "200ms"]);
    // Taken before connecting: the server's idle clock starts after this.
    let connected = Instant::now();
    let (_silent, me) = connect(addr);
    listen.expect_line(|l| l == format!("event=connected peer={me}"), WITHIN);
    listen.expect_line(
        |l| l == format!("event=closed peer={me} reason=IdleTimeout"),
        WITHIN,
    );
    // The node's clock counts whole milliseconds, so its 200 ms can end up to
    // 1 ms before 200 ms of wall time have passed since the connect.
    let idle = connected.elapsed();
    assert!(idle >= Duration::from_millis(199), "closed after {idle:?}");
}

#[test]
fn a_peer_trickling_a_frame_is_never_idle_but_is_closed_with_frame_timeout() {
    let (mut listen, addr) = Proc::listen(&[
        "--idle-timeout",
        "200ms",
        "--frame-timeout",
        "300ms",
        "--frame-min-rate",
        "0",
    ]);
    let started = Instant::now();
    let (me, trickle) = support::trickle_a_frame(addr);
    listen.expect_line(
        |l| l == format!("event=closed peer={me} reason=FrameTimeout"),
        WITHIN,
    );
    // The node's clock counts whole milliseconds, so its 300 ms can end up to
    // 1 ms before 300 ms of wall time have passed since the first byte.
    assert!(started.elapsed() >= Duration::from_millis(299));
    trickle.join().expect("trickle thread");
}

#[test]
fn max_conns_1_rejects_a_second_peer() {
    let (mut listen, addr) = Proc::listen(&["--max-conns", "1"]);
    let (_first, first_addr) = connect(addr);
    listen.expect_line(
        |l| l == format!("event=connected peer={first_addr}"),
        WITHIN,
    );
    let (_second, second_addr) = connect(addr);
    listen.expect_line(
        |l| l == format!("event=rejected peer={second_addr} reason=TooManyConnections"),
        WITHIN,
    );
}

#[test]
fn a_peer_outside_the_allow_list_is_rejected() {
    let (mut listen, addr) = Proc::listen(&["--allow", "10.0.0.0/8"]);
    let (_peer, me) = connect(addr);
    listen.expect_line(
        |l| l == format!("event=rejected peer={me} reason=NotAllowed"),
        WITHIN,
    );
}

/// A new link to `addr`, and its local address as the listener prints it.
fn connect(addr: SocketAddr) -> (TcpStream, String) {
    let s = TcpStream::connect(addr).expect("connect");
    let me = s.local_addr().expect("addr").to_string();
    (s, me)
}

/// Sends one MLLP frame on a new link to `addr` and reads one frame back.
fn mllp_exchange(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut p = Peer::connect(addr);
    p.send_mllp(payload);
    p.read_mllp(WITHIN).expect("a whole reply")
}

#[test]
fn a_payload_that_is_not_hl7_gets_an_ar_ack_and_no_id() {
    let (mut listen, addr) = Proc::listen(&[]);
    let reply = mllp_exchange(addr, b"hello");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("MSA|AR"), "{text:?}");
    let m = listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
    assert_eq!(field(&m, "bytes"), Some("5"));
    assert_eq!(field(&m, "id"), None, "{m}");
}

#[test]
fn an_id_with_spaces_or_equals_cannot_break_the_line() {
    let (mut listen, addr) = Proc::listen(&[]);
    let reply = mllp_exchange(
        addr,
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X Y=Z|P|2.5\rPID|1\r",
    );
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|X Y=Z"));
    let m = listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
    assert!(m.ends_with(" id=X_Y_Z"), "{m}");
}

#[test]
fn close_after_reply_with_no_reply_closes_after_the_message() {
    let (mut listen, addr) = Proc::listen(&["--close-after-reply", "--reply", "none"]);
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"\x0bMSH|^~\\&|A|B|C|D|20260101||ADT^A01|M1|P|2.5\r\x1c\r")
        .expect("write");
    let me = s.local_addr().expect("addr").to_string();
    listen.expect_line(
        |l| l.starts_with("event=message ") && l.contains("id=M1"),
        WITHIN,
    );
    listen.expect_line(
        |l| l.starts_with(&format!("event=closed peer={me} ")),
        WITHIN,
    );
    // And the peer sees the close (EOF), without any reply byte.
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut buf = [0u8; 64];
    assert_eq!(s.read(&mut buf).expect("read"), 0);
}

#[test]
fn demo_exits_0_and_ends_with_a_clean_summary() {
    let r = run(mooring(&["demo"]), None);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    // The TLS scenario needs the certificate generator (feature `demo-tls`).
    let (want, names): (_, &[&str]) = if cfg!(feature = "demo-tls") {
        (
            "event=summary scenarios=7 ok=7 failed=0",
            &[
                "pairings",
                "idle",
                "stale",
                "bad-input",
                "liveness",
                "sessions",
                "tls",
            ],
        )
    } else {
        (
            "event=summary scenarios=6 ok=6 failed=0",
            &[
                "pairings",
                "idle",
                "stale",
                "bad-input",
                "liveness",
                "sessions",
            ],
        )
    };
    assert_eq!(r.lines().last().copied(), Some(want));
    for name in names {
        let want = format!("scenario={name} result=ok");
        assert!(r.lines().contains(&want.as_str()), "{want}\n{}", r.stdout);
    }
    // The session scenario: two cuts mid-stream, each resumed, nothing lost or
    // repeated.
    assert!(
        r.lines().contains(
            &"scenario=sessions event=done sent=200 delivered=200 duplicates=0 cuts=2 resumes=2"
        ),
        "{}",
        r.stdout
    );
    let cuts: Vec<&str> = r
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("scenario=sessions event=cut at="))
        .collect();
    assert_eq!(cuts.len(), 2, "{}", r.stdout);
    let resumed = r
        .lines()
        .iter()
        .filter(|l| l.starts_with("scenario=sessions event=resumed replaying="))
        .count();
    assert_eq!(resumed, 2, "{}", r.stdout);
}

#[test]
fn listen_and_send_print_their_liveness_and_detection_bound() {
    let (mut listen, addr) = Proc::listen(&[
        "--protocol",
        "mooring",
        "--heartbeat",
        "1s",
        "--tcp-keepalive",
        "45s,10s,3",
    ]);
    // Right after event=listening.
    let l = listen.expect_line(|_| true, WITHIN);
    assert_eq!(
        l,
        "event=liveness protocol=mooring heartbeat=1000ms heartbeat_timeout=3000ms \
         keepalive=off tcp_keepalive=45000ms,10000ms,3 tcp_user_timeout=off \
         detection_bound=3050ms"
    );
    let ka = TempFile::new(
        "ka-line.hl7",
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|KA1|P|2.5\n",
    );
    let r = send_sample_with(
        addr,
        &[
            "--keepalive-message",
            ka.path(),
            "--keepalive-every",
            "30s",
            "--keepalive-timeout",
            "5s",
            "--tcp-user-timeout",
            "20s",
        ],
    );
    assert_eq!(
        r.lines()[0],
        "event=liveness protocol=raw heartbeat=off keepalive=30000ms keepalive_timeout=5000ms \
         tcp_keepalive=off tcp_user_timeout=20000ms detection_bound=35050ms"
    );
}

#[test]
fn bad_liveness_flags_exit_2_with_one_line_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["listen", "--protocol", "tcp"], "--protocol"),
        (
            &["listen", "--heartbeat", "1s"],
            "--heartbeat: needs --protocol mooring",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--heartbeat",
                "2s",
                "--heartbeat-timeout",
                "1s",
            ],
            "--heartbeat-timeout",
        ),
        (
            &["listen", "--protocol", "mooring", "--heartbeat", "0s"],
            "--heartbeat",
        ),
        (
            &["send", "127.0.0.1:1", "--heartbeat-timeout", "3s"],
            "--heartbeat-timeout",
        ),
        (
            &["send", "127.0.0.1:1", "--tcp-keepalive", "45s,10s"],
            "--tcp-keepalive",
        ),
        (
            &["send", "127.0.0.1:1", "--tcp-keepalive", "45s,10s,0"],
            "--tcp-keepalive",
        ),
        (
            &["send", "127.0.0.1:1", "--tcp-user-timeout", "90"],
            "--tcp-user-timeout",
        ),
        (
            &["send", "127.0.0.1:1", "--keepalive-every", "1s"],
            "--keepalive-every",
        ),
        (
            &[
                "send",
                "127.0.0.1:1",
                "--keepalive-message",
                "/nonexistent/ka.hl7",
                "--keepalive-every",
                "1s",
            ],
            "--keepalive-message",
        ),
        (
            &["listen", "--handshake-timeout", "1s"],
            "--handshake-timeout",
        ),
        (&["send", "127.0.0.1:1", "--hold", "forever"], "--hold"),
    ];
    assert_usage_errors(cases);
}

#[test]
fn a_mooring_listener_closes_a_peer_that_never_says_hello() {
    let (mut listen, addr) =
        Proc::listen(&["--protocol", "mooring", "--handshake-timeout", "300ms"]);
    let started = Instant::now();
    let (_silent, me) = connect(addr);
    listen.expect_line(
        |l| l == format!("event=closed peer={me} reason=HandshakeTimeout"),
        WITHIN,
    );
    // The node's clock counts whole milliseconds, so its 300 ms can end up to
    // 1 ms before 300 ms of wall time have passed since the connect.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(299),
        "closed after {waited:?}"
    );
}

#[test]
fn send_hold_keeps_a_heartbeating_link_past_the_peer_timeout() {
    // The listener's heartbeat timeout is 600 ms; the client idles for 1.5 s.
    let (mut listen, addr) = Proc::listen(&["--protocol", "mooring", "--heartbeat", "200ms"]);
    let r = send_sample_with(
        addr,
        &[
            "--protocol",
            "mooring",
            "--heartbeat",
            "200ms",
            "--hold",
            "1500ms",
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("event=closed"),
        "link closed during the hold: {}",
        r.stdout
    );
    assert!(r.stdout.contains("replied=3 failed=0"), "{}", r.stdout);
    // The only close the listener reports is the client's own at the end.
    let closed = listen.expect_line(|l| l.starts_with("event=closed "), WITHIN);
    assert_eq!(field(&closed, "reason"), Some("PeerClosed"), "{closed}");
}

#[test]
fn send_hold_reports_a_close_during_the_hold_and_still_exits_0() {
    let (_listen, addr) = Proc::listen(&["--idle-timeout", "300ms"]);
    let started = Instant::now();
    let r = send_sample_with(addr, &["--hold", "20s"]);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(
        lines[lines.len() - 2],
        "event=closed reason=PeerClosed",
        "{}",
        r.stdout
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the close ended the hold"
    );
}

#[test]
fn send_keepalive_message_goes_out_on_an_idle_link() {
    let (mut listen, addr) = Proc::listen(&[]);
    // LF line ends: normalised to CR like any message the CLI sends.
    let ka = TempFile::new(
        "ka.hl7",
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|KA1|P|2.5\nPID|1\n",
    );
    let r = send_sample_with(
        addr,
        &[
            "--keepalive-message",
            ka.path(),
            "--keepalive-every",
            "200ms",
            "--keepalive-timeout",
            "1s",
            "--hold",
            "700ms",
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("event=closed"), "{}", r.stdout);
    let m = listen.expect_line(
        |l| l.starts_with("event=message ") && field(l, "id") == Some("KA1"),
        WITHIN,
    );
    // MSH + CR + PID|1 + CR.
    let want = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|KA1|P|2.5\rPID|1\r".len();
    assert_eq!(field(&m, "bytes"), Some(want.to_string().as_str()), "{m}");
}

#[test]
fn session_flags_are_checked_and_a_mistake_exits_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["listen", "--session"],
            "--session: needs --protocol mooring",
        ),
        (
            &["send", "127.0.0.1:1", "--session"],
            "--session: needs --protocol mooring",
        ),
        (
            &["listen", "--protocol", "mooring", "--resume-window", "10s"],
            "--resume-window: needs --session",
        ),
        (&["listen", "--queue", "10"], "--queue: needs --session"),
        (
            &["send", "127.0.0.1:1", "--reconnect-min", "1s"],
            "--reconnect-min: needs --session",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--queue",
                "0",
            ],
            "--queue",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--resume-window",
                "0s",
            ],
            "--resume-window",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--resume-window",
                "10",
            ],
            "--resume-window",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--reconnect-max",
                "1s",
            ],
            "unknown flag --reconnect-max",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--close-after-reply",
            ],
            "--close-after-reply",
        ),
        (
            &[
                "send",
                "127.0.0.1:1",
                "--protocol",
                "mooring",
                "--session",
                "--reconnect-min",
                "2s",
                "--reconnect-max",
                "1s",
            ],
            "--reconnect-min",
        ),
        (
            &[
                "send",
                "127.0.0.1:1",
                "--protocol",
                "mooring",
                "--session",
                "--close-each",
            ],
            "--close-each",
        ),
        (&["send", "127.0.0.1:1", "--pace", "fast"], "--pace"),
    ];
    assert_usage_errors(cases);
}

#[test]
fn help_documents_the_session_flags_and_lines() {
    for (args, words) in [
        (
            &["listen", "--help"][..],
            &[
                "--session",
                "--resume-window",
                "--queue",
                "event=session_message",
                "note=established",
                "note=ended",
            ][..],
        ),
        (
            &["send", "--help"],
            &[
                "--session",
                "--resume-window",
                "--queue",
                "--reconnect-min",
                "--reconnect-max",
                "--pace",
                "note=reconnecting",
                "note=ended",
            ],
        ),
    ] {
        let r = run(mooring(args), None);
        assert_eq!(r.status.code(), Some(0));
        for w in words {
            assert!(r.stdout.contains(w), "{args:?} lacks {w}");
        }
    }
}

#[test]
fn listen_and_send_exchange_every_message_through_a_session() {
    let (mut listen, addr) = Proc::listen(&["--protocol", "mooring", "--session"]);
    let r = send_sample_with(
        addr,
        &[
            "--protocol",
            "mooring",
            "--session",
            "--response-timeout",
            "5s",
            "--pace",
            "10ms",
            "--hold",
            "100ms",
        ],
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(lines.len(), 7, "{}", r.stdout);
    assert!(lines[0].starts_with("event=liveness protocol=mooring "));
    assert!(
        lines[1].starts_with("event=session session=1 note=established resumed=false "),
        "{}",
        r.stdout
    );
    assert_sample_replies(&lines[2..5]);
    for (i, l) in lines[2..5].iter().enumerate() {
        assert_eq!(field(l, "n"), Some((i + 1).to_string().as_str()), "{l}");
    }
    assert_eq!(
        lines[5],
        "event=session session=1 note=ended how=Closed undelivered=0"
    );
    assert_eq!(
        lines[6],
        "event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=0"
    );

    listen.expect_line(|l| l.starts_with("event=connected "), WITHIN);
    listen.expect_line(
        |l| l == "event=session session=1 note=established resumed=false replaying=0",
        WITHIN,
    );
    for n in 1..=3 {
        let m = listen.expect_line(|l| l.starts_with("event=session_message "), WITHIN);
        assert_eq!(field(&m, "session"), Some("1"), "{m}");
        assert_eq!(field(&m, "id"), Some(format!("MSG{n:05}").as_str()), "{m}");
        assert!(field(&m, "bytes").is_some_and(|b| b.parse::<usize>().is_ok_and(|b| b > 0)));
    }
}

#[test]
fn send_session_to_a_closed_port_reconnects_then_gives_up_at_the_response_timeout() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let started = Instant::now();
    let r = send_sample_with(
        port,
        &[
            "--protocol",
            "mooring",
            "--session",
            "--response-timeout",
            "500ms",
            "--reconnect-min",
            "50ms",
            "--reconnect-max",
            "100ms",
        ],
    );
    assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(started.elapsed() < Duration::from_secs(10));
    let lines = r.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("event=session session=1 note=reconnecting attempt=1 ")),
        "{}",
        r.stdout
    );
    assert!(
        lines.contains(&"event=closed reason=ConnectionRefused"),
        "{}",
        r.stdout
    );
    for n in 1..=3 {
        let want = format!("event=error n={n} id=MSG{n:05} error=ResponseTimeout");
        assert!(lines.contains(&want.as_str()), "{want}\n{}", r.stdout);
    }
    assert_eq!(
        lines.last().copied(),
        Some("event=summary sent=3 replied=0 failed=3 resends=0 unexpected=0 rejected=0")
    );
}

#[test]
fn a_peers_close_message_is_its_claim_not_the_close_reason() {
    use mooring::internals::wire::{Greeting, Msg, WireReason};
    use mooring::CloseReason;
    let (mut listen, addr) = Proc::listen(&["--protocol", "mooring"]);
    let (mut peer, me) = connect(addr);
    peer.write_all(&common::wire_mllp(&Msg::Hello(Greeting::new_session())))
        .expect("hello");
    listen.expect_line(|l| l == format!("event=connected peer={me}"), WITHIN);
    // The peer says it was replaced as stale: a claim, printed as such.
    let close = Msg::Close(WireReason::Known(CloseReason::StaleReplaced));
    peer.write_all(&common::wire_mllp(&close)).expect("close");
    listen.expect_line(
        |l| l == format!("event=closed peer={me} reason=PeerClosed peer_reason=StaleReplaced"),
        WITHIN,
    );
}

#[test]
fn send_hold_prints_the_reason_a_mooring_peer_gave_as_its_claim() {
    let (_listen, addr) = Proc::listen(&["--protocol", "mooring", "--idle-timeout", "300ms"]);
    let r = send_sample_with(addr, &["--protocol", "mooring", "--hold", "20s"]);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let lines = r.lines();
    assert_eq!(
        lines[lines.len() - 2],
        "event=closed reason=PeerClosed peer_reason=IdleTimeout",
        "{}",
        r.stdout
    );
}
