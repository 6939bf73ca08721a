//! `mooring relay` end to end on loopback: devices (an MLLP sender written
//! here) -> relay -> upstream (`mooring listen`, or an upstream written here
//! when the test must control its replies).
//!
//! Every wait is for an expected line, reply or connection, with a deadline;
//! every process a test starts is killed by its own handle when the test ends.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Process helpers shared with the other CLI tests.
mod support;
// The raw MLLP peer the library tests use.
mod common;

use common::ReadEnd;
use support::{field, free_port, mooring, relay_cmd, Proc, WITHIN};

/// An HL7 message with MSH-10 `id`.
fn msg(id: &str) -> Vec<u8> {
    msg_from("DEV", "WARD", id)
}

/// An HL7 message from sending application `app` at `facility` (MSH-3, MSH-4)
/// with MSH-10 `id`; its PID names the sender, so each sender's content differs.
fn msg_from(app: &str, facility: &str, id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|{app}|{facility}|EHR|HOSP|20260101120000||ADT^A01|{id}|P|2.5\rPID|1||{app}-123\r"
    )
    .into_bytes()
}

/// The ACK an upstream sends for message `id`.
fn ack_for(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|A{id}|P|2.5\rMSA|AA|{id}\r")
        .into_bytes()
}

/// MSA-1 and MSA-2 of an ACK.
fn msa(ack: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(ack);
    let seg = text
        .split(['\r', '\n'])
        .find(|s| s.starts_with("MSA|"))
        .unwrap_or_else(|| panic!("no MSA in {text:?}"));
    let mut f = seg.split('|').skip(1);
    (
        f.next().unwrap_or("").to_string(),
        f.next().unwrap_or("").to_string(),
    )
}

/// One end of an MLLP link: a device, or the test's own upstream.
struct Peer(common::Peer);

impl Peer {
    fn new(s: TcpStream) -> Peer {
        Peer(common::Peer::wrap(s))
    }

    fn connect(addr: SocketAddr) -> Peer {
        Peer::new(TcpStream::connect_timeout(&addr, WITHIN).expect("connect"))
    }

    fn send(&mut self, payload: &[u8]) {
        self.0.send_mllp(payload);
    }

    /// The next frame, if one arrives within `within`.
    fn try_frame(&mut self, within: Duration) -> Option<Vec<u8>> {
        match self.0.read_mllp(within) {
            Ok(frame) => Some(frame),
            Err(ReadEnd::TimedOut) => None,
            Err(ReadEnd::Closed) => panic!("peer closed the link"),
        }
    }

    fn frame(&mut self) -> Vec<u8> {
        self.try_frame(WITHIN)
            .unwrap_or_else(|| panic!("no frame within {WITHIN:?}"))
    }

    /// Sends message `id` and returns the ACK's MSA-1 (checking MSA-2 is `id`).
    fn request(&mut self, id: &str) -> String {
        self.request_msg(&msg(id), id)
    }

    /// Sends `payload` (MSH-10 `id`) and returns the ACK's MSA-1 (checking
    /// MSA-2 is `id`).
    fn request_msg(&mut self, payload: &[u8], id: &str) -> String {
        self.send(payload);
        let (code, acked) = msa(&self.frame());
        assert_eq!(acked, id, "the ACK names the message");
        code
    }
}

/// [`relay_cmd`] started, and the device address from its first line.
fn relay(upstream: SocketAddr, extra: &[&str]) -> (Proc, SocketAddr) {
    Proc::listen_cmd(relay_cmd(upstream, extra))
}

/// [`relay`] to an upstream played by the test: returns the relay, its device
/// address and the upstream's end of the relay's link, once connected.
fn relay_with_upstream(extra: &[&str]) -> (Proc, SocketAddr, Peer) {
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (mut r, addr) = relay(upstream.local_addr().unwrap(), extra);
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    // The connect completed, so the connection waits in the backlog.
    let up = Peer::new(upstream.accept().expect("accept").0);
    (r, addr, up)
}

/// `mooring listen` on a given port.
fn listen_on(port: u16, extra: &[&str]) -> Proc {
    let bind = format!("127.0.0.1:{port}");
    let mut args = vec!["listen", "--bind", &bind];
    args.extend_from_slice(extra);
    let (p, addr) = Proc::listen_cmd(mooring(&args));
    assert_eq!(addr.port(), port);
    p
}

fn is(event: &'static str) -> impl Fn(&str) -> bool {
    move |l: &str| field(l, "event") == Some(event)
}

fn is_id(event: &'static str, id: &'static str) -> impl Fn(&str) -> bool {
    move |l: &str| field(l, "event") == Some(event) && field(l, "id") == Some(id)
}

/// Waits for the upstream's next `event=<event>` line and returns its id.
fn next_id(up: &mut Proc, event: &'static str) -> String {
    let l = up.expect_line(is(event), WITHIN);
    field(&l, "id")
        .unwrap_or_else(|| panic!("no id: {l}"))
        .to_string()
}

#[test]
fn devices_messages_are_forwarded_in_order_and_acknowledged() {
    let (mut up, up_addr) = Proc::listen(&[]);
    let (mut r, addr) = relay(up_addr, &["--spool", "memory"]);
    r.expect_line(|l| l.starts_with("event=liveness protocol=raw"), WITHIN);
    let mut dev = Peer::connect(addr);
    for id in ["M1", "M2", "M3"] {
        assert_eq!(dev.request(id), "AA", "{id}");
    }
    for id in ["M1", "M2", "M3"] {
        assert_eq!(next_id(&mut up, "message"), id, "upstream order");
    }
    for id in ["M1", "M2", "M3"] {
        let l = r.expect_line(is_id("acked", id), WITHIN);
        assert_eq!(field(&l, "ack"), Some("AA"), "{l}");
    }
}

#[test]
fn a_device_trickling_a_frame_is_closed_with_frame_timeout() {
    let (_up, up_addr) = Proc::listen(&[]);
    let (mut r, addr) = relay(up_addr, &["--spool", "memory", "--frame-timeout", "300ms"]);
    let (me, trickle) = support::trickle_a_frame(addr);
    r.expect_line(
        |l| l == format!("event=closed peer={me} reason=FrameTimeout"),
        WITHIN,
    );
    trickle.join().expect("trickle thread");
}

#[test]
fn messages_queue_while_the_upstream_is_down_and_go_out_in_order_when_it_comes() {
    let port = free_port();
    let up_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut r, addr) = relay(up_addr, &["--spool", "memory"]);
    r.expect_line(
        |l| field(l, "state") == Some("reconnecting") && field(l, "delay_ms").is_some(),
        WITHIN,
    );
    let mut dev = Peer::connect(addr);
    for id in ["M1", "M2", "M3"] {
        assert_eq!(dev.request(id), "AA", "{id}: acked once queued");
    }
    let mut up = listen_on(port, &[]);
    for id in ["M1", "M2", "M3"] {
        assert_eq!(next_id(&mut up, "message"), id, "upstream order");
    }
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    r.expect_line(is_id("acked", "M3"), WITHIN);
}

#[test]
fn with_ack_after_upstream_the_device_hears_only_after_the_upstream_acked() {
    let (mut r, addr, mut up) = relay_with_upstream(&["--ack-after", "upstream"]);
    let mut dev = Peer::connect(addr);

    dev.send(&msg("M1"));
    let got = up.frame();
    assert_eq!(got, msg("M1"), "the upstream received it");
    // Upstream received, not acknowledged: the device must not have its ACK.
    assert_eq!(dev.try_frame(Duration::from_millis(300)), None);
    // A reply for another message is not credited.
    up.send(b"MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|AOTHER|P|2.5\rMSA|AA|OTHER\r");
    r.expect_line(is_id("unexpected_reply", "OTHER"), WITHIN);
    assert_eq!(dev.try_frame(Duration::from_millis(300)), None);
    up.send(b"MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|AM1|P|2.5\rMSA|AA|M1\r");
    let (code, id) = msa(&dev.frame());
    assert_eq!((code.as_str(), id.as_str()), ("AA", "M1"));
    r.expect_line(is_id("acked", "M1"), WITHIN);

    // The upstream's verdict reaches the device.
    dev.send(&msg("M2"));
    assert_eq!(up.frame(), msg("M2"));
    up.send(b"MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|AM2|P|2.5\rMSA|AE|M2\r");
    let (code, id) = msa(&dev.frame());
    assert_eq!((code.as_str(), id.as_str()), ("AE", "M2"));
}

#[test]
fn a_resent_message_is_acknowledged_again_and_forwarded_once() {
    let (mut up, up_addr) = Proc::listen(&[]);
    let (mut r, addr) = relay(up_addr, &["--spool", "memory"]);
    let mut dev = Peer::connect(addr);
    assert_eq!(dev.request("M1"), "AA");
    assert_eq!(dev.request("M1"), "AA", "the resend is acknowledged again");
    r.expect_line(is_id("duplicate", "M1"), WITHIN);
    assert_eq!(dev.request("M2"), "AA");
    assert_eq!(next_id(&mut up, "message"), "M1");
    assert_eq!(next_id(&mut up, "message"), "M2", "M1 went upstream once");
    let forwarded = r.expect_line(is_id("forwarded", "M2"), WITHIN);
    assert_eq!(field(&forwarded, "seq"), Some("2"));
    let m1 = r
        .seen()
        .iter()
        .filter(|l| is_id("forwarded", "M1")(l))
        .count();
    assert_eq!(m1, 1, "{:?}", r.seen());
}

#[test]
fn a_full_queue_answers_ar_and_the_message_can_be_sent_again_later() {
    let port = free_port();
    let (mut r, addr) = relay(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &["--spool", "memory", "--queue", "2"],
    );
    let mut dev = Peer::connect(addr);
    assert_eq!(dev.request("M1"), "AA");
    assert_eq!(dev.request("M2"), "AA");
    assert_eq!(dev.request("M3"), "AR", "not kept: never AA");
    r.expect_line(is_id("queue_full", "M3"), WITHIN);
    // Once the queue drains, the device's resend of M3 is a new message, not a
    // duplicate (it was never kept).
    let mut up = listen_on(port, &[]);
    assert_eq!(next_id(&mut up, "message"), "M1");
    assert_eq!(next_id(&mut up, "message"), "M2");
    r.expect_line(is_id("acked", "M2"), WITHIN);
    assert_eq!(dev.request("M3"), "AA");
    assert_eq!(next_id(&mut up, "message"), "M3");
}

#[test]
fn a_message_in_doubt_when_the_upstream_dies_is_resent_after_the_reconnect() {
    // The first upstream takes messages but never answers: M1 stays in doubt.
    let (mut up1, up_addr) = Proc::listen(&["--reply", "none"]);
    let (mut r, addr) = relay(up_addr, &["--spool", "memory", "--response-timeout", "60s"]);
    let mut dev = Peer::connect(addr);
    assert_eq!(dev.request("M1"), "AA");
    let mut ids = vec![next_id(&mut up1, "message")];
    assert_eq!(dev.request("M2"), "AA");
    assert_eq!(dev.request("M3"), "AA");
    r.expect_line(is_id("queued", "M3"), WITHIN);
    drop(up1); // killed mid-stream
    let lost = r.expect_line(|l| field(l, "state") == Some("lost"), WITHIN);
    assert_eq!(field(&lost, "in_doubt"), Some("1-1"), "{lost}");
    assert_eq!(field(&lost, "resent"), Some("1"), "{lost}");
    r.expect_line(|l| field(l, "state") == Some("reconnecting"), WITHIN);
    let mut up2 = listen_on(up_addr.port(), &[]);
    while ids.last().map(String::as_str) != Some("M3") {
        ids.push(next_id(&mut up2, "message"));
        assert!(ids.len() <= 6, "{ids:?}");
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "non-decreasing");
    for id in ["M1", "M2", "M3"] {
        assert!(ids.iter().any(|i| i == id), "{id} missing: {ids:?}");
    }
    assert_eq!(ids.iter().filter(|i| *i == "M1").count(), 2, "{ids:?}");
    let resent = r.expect_line(is_id("forwarded", "M1"), WITHIN);
    assert_eq!(field(&resent, "attempt"), Some("2"), "{resent}");
    r.expect_line(is_id("acked", "M3"), WITHIN);
}

#[test]
fn a_mooring_upstream_gets_everything_once_through_a_session() {
    let help = support::run(mooring(&["listen", "--help"]), None);
    assert!(
        help.stdout.contains("--session"),
        "this test needs `mooring listen --session`"
    );
    let (mut up, up_addr) = Proc::listen(&["--protocol", "mooring", "--session"]);
    let (mut r, addr) = relay(
        up_addr,
        &["--protocol", "mooring", "--ack-after", "upstream"],
    );
    let mut dev = Peer::connect(addr);
    for id in ["M1", "M2", "M3"] {
        assert_eq!(dev.request(id), "AA", "{id}: acked after the session's ACK");
    }
    for id in ["M1", "M2", "M3"] {
        assert_eq!(next_id(&mut up, "session_message"), id, "in order, once");
    }
    r.expect_line(
        |l| field(l, "state") == Some("connected") && field(l, "resumed") == Some("false"),
        WITHIN,
    );
    for id in ["M1", "M2", "M3"] {
        r.expect_line(is_id("acked", id), WITHIN);
    }
    // The upstream restarts and has forgotten the session: it ends (Expired) and
    // the relay carries on with a new one.
    let port = up_addr.port();
    drop(up);
    let mut up2 = listen_on(port, &["--protocol", "mooring", "--session"]);
    r.expect_line(
        |l| field(l, "state") == Some("lost") && field(l, "reason") == Some("SessionExpired"),
        WITHIN,
    );
    assert_eq!(dev.request("M4"), "AA");
    assert_eq!(next_id(&mut up2, "session_message"), "M4");
}

#[test]
fn a_message_out_of_retries_fails_loudly_and_the_waiting_device_gets_ar() {
    // An upstream that never answers: every write times out.
    let (mut up, up_addr) = Proc::listen(&["--reply", "none"]);
    let (mut r, addr) = relay(
        up_addr,
        &[
            "--ack-after",
            "upstream",
            "--retries",
            "0",
            "--response-timeout",
            "300ms",
        ],
    );
    let mut dev = Peer::connect(addr);
    assert_eq!(dev.request("M1"), "AR", "failed: never AA");
    assert_eq!(next_id(&mut up, "message"), "M1");
    let lost = r.expect_line(|l| field(l, "state") == Some("lost"), WITHIN);
    assert_eq!(field(&lost, "reason"), Some("ResponseTimeout"), "{lost}");
    assert_eq!(field(&lost, "in_doubt"), Some("1-1"), "{lost}");
    assert_eq!(field(&lost, "failed"), Some("1"), "{lost}");
    let failed = r.expect_line(is_id("failed", "M1"), WITHIN);
    assert_eq!(field(&failed, "attempts"), Some("1"), "{failed}");
    assert_eq!(field(&failed, "acked_to_device"), Some("false"), "{failed}");
    // Not kept, so a resend is forwarded again rather than taken for a duplicate.
    dev.send(&msg("M1"));
    let again = r.expect_line(is_id("forwarded", "M1"), WITHIN);
    assert_eq!(field(&again, "seq"), Some("2"), "{again}");
}

/// MSH-10 of an HL7 message, as text.
fn control_id(m: &[u8]) -> String {
    let text = String::from_utf8_lossy(m);
    text.split('|').nth(9).unwrap_or("").to_string()
}

/// Reads `n` frames as the upstream, answering each with an AA ACK.
fn serve_upstream(up: &mut Peer, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = up.frame();
        up.send(&ack_for(&control_id(&m)));
        got.push(m);
    }
    got
}

#[test]
fn devices_reusing_ids_each_get_every_message_upstream_once() {
    let (mut r, addr, mut up) = relay_with_upstream(&["--spool", "memory"]);
    // Three senders with independent counters: two differ in MSH-3, two only in
    // MSH-4.
    let senders = [("MONITOR", "ICU"), ("PUMP", "ICU"), ("MONITOR", "ER")];
    let mut devs: Vec<Peer> = senders.iter().map(|_| Peer::connect(addr)).collect();
    let mut sent = Vec::new();
    for i in 1..=5 {
        let id = format!("MSG{i:05}");
        for (dev, (app, fac)) in devs.iter_mut().zip(senders) {
            let m = msg_from(app, fac, &id);
            assert_eq!(dev.request_msg(&m, &id), "AA", "{app}/{fac} {id}");
            sent.push(m);
        }
    }
    r.expect_line(|l| is("queued")(l) && field(l, "seq") == Some("15"), WITHIN);
    let dups: Vec<&String> = r.seen().iter().filter(|l| is("duplicate")(l)).collect();
    assert!(
        dups.is_empty(),
        "other senders' messages taken for resends: {dups:?}"
    );
    let mut got = serve_upstream(&mut up, sent.len());
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every message upstream, once");

    // A real resend is still a duplicate, from a new connection too (the key
    // has nothing of the device's address): acknowledged, not forwarded.
    let mut again = Peer::connect(addr);
    let m = msg_from("PUMP", "ICU", "MSG00003");
    assert_eq!(again.request_msg(&m, "MSG00003"), "AA");
    r.expect_line(is_id("duplicate", "MSG00003"), WITHIN);
    let fresh = msg_from("PUMP", "ICU", "MSG00006");
    assert_eq!(again.request_msg(&fresh, "MSG00006"), "AA");
    assert_eq!(
        serve_upstream(&mut up, 1),
        vec![fresh],
        "the resend not forwarded"
    );
}

#[test]
fn a_message_waiting_for_the_upstream_is_not_confused_with_another_senders_same_id() {
    let (mut r, addr, mut up) = relay_with_upstream(&["--ack-after", "upstream"]);
    let (mut a, mut b) = (Peer::connect(addr), Peer::connect(addr));
    let (ma, mb) = (
        msg_from("MONITOR", "ICU", "X1"),
        msg_from("PUMP", "ICU", "X1"),
    );
    a.send(&ma);
    assert_eq!(up.frame(), ma, "A's message is upstream, its ACK awaited");
    b.send(&mb);
    // B's message is new (queued as seq 2), not a resend of A's.
    r.expect_line(
        |l| is_id("queued", "X1")(l) && field(l, "seq") == Some("2"),
        WITHIN,
    );
    up.send(&ack_for("X1"));
    assert_eq!(msa(&a.frame()), ("AA".to_string(), "X1".to_string()));
    assert_eq!(up.frame(), mb, "B's message follows");
    up.send(&ack_for("X1"));
    assert_eq!(msa(&b.frame()), ("AA".to_string(), "X1".to_string()));
}

#[test]
fn with_ack_after_upstream_and_the_upstream_down_the_device_gets_ar_after_the_response_timeout() {
    // Nothing listens on the upstream port: every connect is refused.
    let port = free_port();
    let timeout = Duration::from_millis(600);
    let (mut r, addr) = relay(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &["--ack-after", "upstream", "--response-timeout", "600ms"],
    );
    r.expect_line(|l| field(l, "reason") == Some("ConnectionRefused"), WITHIN);
    let mut dev = Peer::connect(addr);
    let sent = Instant::now();
    dev.send(&msg("M1"));
    let reply = dev.try_frame(timeout + Duration::from_secs(2));
    let waited = sent.elapsed();
    let reply = reply.unwrap_or_else(|| panic!("no reply within {waited:?}: {:?}", r.seen()));
    assert_eq!(msa(&reply), ("AR".to_string(), "M1".to_string()));
    assert!(waited >= timeout, "answered before the timeout: {waited:?}");
    let l = r.expect_line(is_id("reply_timeout", "M1"), WITHIN);
    assert_eq!(field(&l, "ack"), Some("AR"), "{l}");
    // The message is kept: once the upstream is there it goes out, once, and
    // the device's resend is recognised.
    let mut up = listen_on(port, &[]);
    assert_eq!(next_id(&mut up, "message"), "M1");
    r.expect_line(is_id("acked", "M1"), WITHIN);
    assert_eq!(dev.request("M1"), "AA", "the resend of a delivered message");
    r.expect_line(is_id("duplicate", "M1"), WITHIN);
}

#[test]
fn relay_max_frame_forwards_a_message_over_the_default_limit() {
    let (mut up, up_addr) = Proc::listen(&["--max-frame", "2000000"]);
    let (mut r, addr) = relay(
        up_addr,
        &[
            "--spool",
            "memory",
            "--max-frame",
            "2000000",
            "--queue",
            "4",
        ],
    );
    r.expect_line(|l| field(l, "state") == Some("connected"), WITHIN);
    // An embedded document: 1.5 MB in one OBX.
    let big = format!(
        "MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101120000||ORU^R01|BIG1|P|2.5\rOBX|1|ED|PDF||{}\r",
        "Q".repeat(1_500_000)
    )
    .into_bytes();
    let mut dev = Peer::connect(addr);
    assert_eq!(dev.request_msg(&big, "BIG1"), "AA");
    let m = up.expect_line(is("message"), WITHIN);
    assert_eq!(
        field(&m, "bytes"),
        Some(big.len().to_string().as_str()),
        "{m}"
    );
    r.expect_line(is_id("acked", "BIG1"), WITHIN);
}

#[test]
fn the_relay_rejects_a_message_without_msh_10_as_listen_does() {
    let (_up, up_addr) = Proc::listen(&[]);
    let (mut r, addr) = relay(up_addr, &[]);
    let mut dev = Peer::connect(addr);
    dev.send(b"MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101120000||ADT^A01||P|2.5\rPID|1\r");
    let reply = dev.frame();
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.ends_with("\rMSA|AR||MSH-10 (message control id) is missing\r"),
        "{text:?}"
    );
    let l = r.expect_line(is("refused"), WITHIN);
    assert_eq!(field(&l, "reason"), Some("NoControlId"), "{l}");
}

#[test]
fn an_upstream_repeating_old_acks_gives_one_line_then_a_count() {
    let (mut r, addr, mut up) = relay_with_upstream(&["--ack-after", "upstream"]);
    let mut dev = Peer::connect(addr);
    dev.send(&msg("M1"));
    assert_eq!(up.frame(), msg("M1"));
    // 50 ACKs of earlier messages, then the real one.
    let mut flood = Vec::new();
    for n in 0..50 {
        flood.extend_from_slice(&common::mllp(&ack_for(&format!("OLD{n}"))));
    }
    flood.extend_from_slice(&common::mllp(&ack_for("M1")));
    up.0.send(&flood);
    let (code, _) = msa(&dev.frame());
    assert_eq!(code, "AA");
    r.expect_line(is_id("acked", "M1"), WITHIN);
    let first: Vec<&String> = r
        .seen()
        .iter()
        .filter(|l| is("unexpected_reply")(l))
        .collect();
    assert_eq!(first.len(), 1, "the first only: {first:?}");
    assert_eq!(field(first[0], "id"), Some("OLD0"));
    // The interval (10 s) ends: one line counts them all.
    let summary = r.expect_line(is("unexpected_replies"), Duration::from_secs(10) + WITHIN);
    assert_eq!(summary, "event=unexpected_replies count=50 interval_s=10");
    let lines = r
        .seen()
        .iter()
        .filter(|l| is("unexpected_reply")(l))
        .count();
    assert_eq!(lines, 1, "no line per reply");
}

#[test]
fn a_mooring_upstream_without_sessions_is_named_and_retried_with_backoff() {
    let (_up, up_addr) = Proc::listen(&["--protocol", "mooring"]);
    let (mut r, _addr) = relay(up_addr, &["--protocol", "mooring"]);
    let c = r.expect_line(|l| field(l, "state") == Some("connecting"), WITHIN);
    assert_eq!(field(&c, "attempt"), Some("0"), "{c}");
    for n in 1..=2 {
        let lost = r.expect_line(|l| field(l, "state") == Some("lost"), WITHIN);
        assert_eq!(field(&lost, "reason"), Some("NoSessions"), "{lost}");
        assert_eq!(
            field(&lost, "hint"),
            Some("start_the_upstream_with_--session"),
            "{lost}"
        );
        let re = r.expect_line(|l| field(l, "state") == Some("reconnecting"), WITHIN);
        assert_eq!(field(&re, "reason"), Some("NoSessions"), "{re}");
        assert_eq!(field(&re, "attempt"), Some(n.to_string().as_str()), "{re}");
        assert!(field(&re, "delay_ms").is_some(), "{re}");
        // The connecting line names the same attempt.
        let c = r.expect_line(|l| field(l, "state") == Some("connecting"), WITHIN);
        assert_eq!(field(&c, "attempt"), Some(n.to_string().as_str()), "{c}");
    }
}
