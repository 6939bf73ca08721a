//! `--metrics ADDR` end to end on loopback: `mooring listen` and `mooring
//! relay` scraped while traffic runs, the counters moving with it; requests
//! other than `GET /metrics` refused and closed; the connection and time
//! bounds; and (ignored, run by .ci/run) `promtool check metrics` on real
//! scrapes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
mod support;

use common::{hl7_msg, Peer};
use support::{field, free_port, listen_cmd, mooring, relay_cmd, Proc, WITHIN};

/// Starts `mooring listen --bind 127.0.0.1:0 --metrics 127.0.0.1:0 <extra>`
/// and returns it with its service and metrics addresses.
fn start(extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = listen_cmd(&["--metrics", "127.0.0.1:0"]);
    cmd.args(extra);
    start_cmd(cmd)
}

/// [`start`] for a command already built (a `listen` or `relay` with
/// `--metrics 127.0.0.1:0`).
fn start_cmd(cmd: Command) -> (Proc, SocketAddr, SocketAddr) {
    let (mut p, addr) = Proc::listen_cmd(cmd);
    let line = p.expect_line(|l| field(l, "event") == Some("metrics"), WITHIN);
    let metrics: SocketAddr = field(&line, "addr")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no addr: {line}"));
    assert_eq!(metrics.ip().to_string(), "127.0.0.1");
    assert_ne!(metrics.port(), 0, "the real port, not 0");
    (p, addr, metrics)
}

/// Sends `request` and reads the whole answer until the server closes.
fn exchange(metrics: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(metrics).expect("connect");
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("read until the server closes");
    String::from_utf8(out).expect("ASCII answer")
}

/// `GET /metrics`: the status code and the body.
fn scrape(metrics: SocketAddr) -> (u16, String) {
    let answer = exchange(
        metrics,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n",
    );
    status_and_body(&answer)
}

fn status_and_body(answer: &str) -> (u16, String) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(len, body.len(), "the body is whole: {answer}");
    (status, body.to_string())
}

/// The value of one series (`name` or `name{labels}`) in an exposition.
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (s == series).then(|| v.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

/// Each series in `want` has its value in `body`.
fn assert_values(body: &str, want: &[(&str, f64)]) {
    for &(series, v) in want {
        assert_eq!(value(body, series), v, "{series}");
    }
}

fn payload_bytes(ids: &[&str]) -> usize {
    ids.iter().map(|id| hl7_msg(id).len()).sum()
}

#[test]
fn listen_counters_move_with_traffic_and_a_close_is_counted_by_reason() {
    let (mut listen, addr, metrics) = start(&["--idle-timeout", "500ms"]);
    let (status, before) = scrape(metrics);
    assert_eq!(status, 200);
    assert_values(
        &before,
        &[
            ("mooring_frames_received_total", 0.0),
            ("mooring_acks_sent_total{code=\"AA\"}", 0.0),
            ("mooring_links_open", 0.0),
        ],
    );
    let idle = "mooring_links_closed_total{reason=\"IdleTimeout\"}";
    assert_eq!(value(&before, idle), 0.0);

    // Scraped while the link is open, between messages.
    let ids = ["M1", "M2", "M3"];
    let mut peer = Peer::connect(addr);
    for id in ids {
        let ack = peer.request(&hl7_msg(id));
        assert_eq!(mooring::hl7::ack_code(&ack), Some(&b"AA"[..]), "{id}");
    }
    let (_, during) = scrape(metrics);
    assert_values(
        &during,
        &[
            ("mooring_frames_received_total", 3.0),
            ("mooring_frames_sent_total", 3.0),
            ("mooring_acks_sent_total{code=\"AA\"}", 3.0),
            ("mooring_connections_accepted_total", 1.0),
            ("mooring_links_open", 1.0),
        ],
    );
    // MLLP adds 3 bytes to each payload.
    assert_eq!(
        value(&during, "mooring_received_bytes_total"),
        (payload_bytes(&ids) + 3 * ids.len()) as f64
    );
    assert!(value(&during, "mooring_sent_bytes_total") > 0.0);

    // The peer goes silent: closed for IdleTimeout, and counted so.
    let me = peer.local_addr();
    listen.expect_line(
        |l| l == format!("event=closed peer={me} reason=IdleTimeout"),
        WITHIN,
    );
    let (_, after) = scrape(metrics);
    assert_eq!(value(&after, idle), 1.0);
    assert_eq!(value(&after, "mooring_links_open"), 0.0);
    assert_eq!(
        value(&after, "mooring_frames_received_total"),
        3.0,
        "a closed link's traffic stays counted"
    );
    assert_eq!(
        value(&after, "mooring_metrics_scrapes_total"),
        2.0,
        "before this one"
    );
}

#[test]
fn requests_other_than_get_metrics_are_refused_and_closed() {
    let (_listen, _, metrics) = start(&[]);
    let cases: [(&[u8], u16); 5] = [
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics/x HTTP/1.0\r\n\r\n", 404),
        (b"hello there\r\n", 400),
        (b"\x0bMSH|^~\\&|A\x1c\r", 400),
    ];
    for (req, want) in cases {
        let (status, _) = status_and_body(&exchange(metrics, req));
        assert_eq!(status, want, "{req:?}");
    }
    // Headers longer than the server reads (2048 bytes).
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(3000, b'a');
    let (status, _) = status_and_body(&exchange(metrics, &big));
    assert_eq!(status, 431);
    let (status, body) = scrape(metrics);
    assert_eq!(status, 200);
    assert_eq!(value(&body, "mooring_metrics_refused_total"), 6.0, "{body}");
}

#[test]
fn scrape_connections_are_bounded_in_number_and_time() {
    let (_listen, _, metrics) = start(&[]);
    // Four silent connections take every slot...
    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(metrics).expect("connect"))
        .collect();
    // ... so a fifth is closed at once, unanswered.
    let mut fifth = TcpStream::connect(metrics).expect("connect");
    fifth.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut got = Vec::new();
    fifth.read_to_end(&mut got).expect("closed");
    assert!(got.is_empty(), "no answer: {got:?}");
    assert!(opened.elapsed() < Duration::from_secs(3), "at once");
    // The silent ones are closed after the request time (5 s; the loop looks
    // at least once a second).
    for s in &mut silent {
        s.set_read_timeout(Some(WITHIN)).expect("timeout");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("closed");
        assert!(got.is_empty(), "no answer: {got:?}");
    }
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(4900) && took < Duration::from_secs(9),
        "closed after {took:?}"
    );
    // Their slots are free again.
    let (status, body) = scrape(metrics);
    assert_eq!(status, 200);
    assert_eq!(value(&body, "mooring_metrics_refused_total"), 5.0);
}

/// `mooring relay` with fast reconnects and metrics, to `127.0.0.1:port`.
fn relay_to(port: u16, extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let mut args = vec!["--metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    start_cmd(relay_cmd(SocketAddr::from(([127, 0, 0, 1], port)), &args))
}

#[test]
fn a_relay_scrape_shows_its_queue_while_the_upstream_is_down() {
    let port = free_port();
    let (mut relay, addr, metrics) = relay_to(port, &["--spool", "memory"]);
    relay.expect_line(|l| field(l, "state") == Some("reconnecting"), WITHIN);
    let ids = ["Q1", "Q2", "Q3"];
    let mut dev = Peer::connect(addr);
    for id in ids {
        let ack = dev.request(&hl7_msg(id));
        assert_eq!(
            mooring::hl7::ack_code(&ack),
            Some(&b"AA"[..]),
            "{id}: queued"
        );
    }
    let (status, down) = scrape(metrics);
    assert_eq!(status, 200);
    assert_eq!(value(&down, "mooring_relay_queue_messages"), 3.0);
    assert_eq!(
        value(&down, "mooring_relay_queue_bytes"),
        payload_bytes(&ids) as f64
    );
    assert!(value(&down, "mooring_relay_queue_oldest_age_seconds") >= 0.0);
    assert_eq!(value(&down, "mooring_relay_queued_total"), 3.0);
    assert_eq!(value(&down, "mooring_upstream_up"), 0.0);
    assert!(value(&down, "mooring_upstream_reconnects_total") >= 1.0);

    // The upstream comes: the queue drains, its ACKs are counted.
    let bind = format!("127.0.0.1:{port}");
    let (_up, _) = Proc::listen_cmd(mooring(&["listen", "--bind", &bind]));
    relay.expect_line(
        |l| field(l, "event") == Some("acked") && field(l, "id") == Some("Q3"),
        WITHIN,
    );
    let (_, up) = scrape(metrics);
    assert_values(
        &up,
        &[
            ("mooring_relay_queue_messages", 0.0),
            ("mooring_relay_queue_bytes", 0.0),
            ("mooring_upstream_up", 1.0),
            ("mooring_upstream_connects_total", 1.0),
            ("mooring_upstream_acks_total{code=\"AA\"}", 3.0),
        ],
    );
}

#[test]
fn a_relay_scrape_counts_its_upstream_switches_by_reason() {
    // The primary is down at start: one failed attempt moves the relay to
    // the backup; once the primary listens, the relay returns to it.
    let primary = free_port();
    let (_backup, b_addr) = Proc::listen_cmd(mooring(&["listen", "--bind", "127.0.0.1:0"]));
    let b = b_addr.to_string();
    let (mut relay, _, metrics) = relay_to(primary, &["--upstream", &b, "--failover-after", "1"]);
    let l = relay.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("failover"), "{l}");
    let switches = |body: &str, reason: &str| {
        value(
            body,
            &format!("mooring_upstream_switches_total{{reason=\"{reason}\"}}"),
        )
    };
    let (status, away) = scrape(metrics);
    assert_eq!(status, 200);
    assert_eq!(
        (switches(&away, "failover"), switches(&away, "primary_back")),
        (1.0, 0.0)
    );

    let bind = format!("127.0.0.1:{primary}");
    let (_primary, _) = Proc::listen_cmd(mooring(&["listen", "--bind", &bind]));
    let l = relay.expect_line(|l| field(l, "state") == Some("switched"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("primary_back"), "{l}");
    let (_, back) = scrape(metrics);
    assert_eq!(
        (switches(&back, "failover"), switches(&back, "primary_back")),
        (1.0, 1.0)
    );
}

/// Runs `promtool check metrics` on `body`: its verdict and output.
fn promtool(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) on PATH");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs promtool (Debian package prometheus); run by .ci/run"]
fn promtool_accepts_the_scrapes_of_listen_and_relay() {
    let (_listen, addr, metrics) = start(&["--heartbeat", "2s", "--protocol", "mooring"]);
    let (_, body) = scrape(metrics);
    let (ok, out) = promtool(&body);
    assert!(ok, "listen: {out}\n{body}");
    println!("promtool check metrics (listen): ok {out}");

    let (mut relay, dev_addr, rmetrics) = relay_to(addr.port(), &["--spool", "memory"]);
    relay.expect_line(
        |l| field(l, "state") == Some("reconnecting") || field(l, "state") == Some("connected"),
        WITHIN,
    );
    let _ = dev_addr;
    let (_, body) = scrape(rmetrics);
    let (ok, out) = promtool(&body);
    assert!(ok, "relay: {out}\n{body}");
    println!("promtool check metrics (relay): ok {out}");
}
