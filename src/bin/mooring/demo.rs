//! `mooring demo`: the problems of the seeds, shown and checked on loopback in one
//! process, in a few seconds.
//!
//! Each scenario runs a listener ([`Responder`], exactly what `mooring listen`
//! runs) on a thread of its own, because a [`Client`] request blocks while it
//! polls its own node; the clients (a mooring [`Client`] or a raw `TcpStream`
//! playing a misbehaving peer) run on the main thread. The server thread reports
//! what it sees over a channel, and every check waits for the event it expects
//! with a deadline: nothing sleeps to "let things settle". The only waits on the
//! clock are where time passing is the point (idle eviction, stale recovery,
//! liveness).
//!
//! Lines start with `scenario=<name>`; the last one is
//! `event=summary scenarios=6 ok=N failed=M`, and the exit status is 0 only if
//! every scenario behaved as expected.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooring::session::{Backoff, SessionConfig, SessionError};
use mooring::wire::{self, Greeting, Msg, WireReason};
use mooring::{
    hl7, Client, ClientConfig, ClientPolicy, CloseReason, ConnectConfig, Event, Heartbeat,
    LivenessConfig, Node, NodeConfig, Protocol, SessionNote,
};

use crate::args::{ListenOpts, ReplyMode};
use crate::line::{escape, Line};
use crate::listen::{Responder, Seen};

/// Five realistic messages (admit, update, lab results, discharge, radiology
/// result), MSH-10 `MSG00001`..`MSG00005`, segments ended by CR as on the wire.
const MESSAGES: [&str; 5] = [
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260114083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|20260114083000\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F|||123 MAIN ST^^SPRINGFIELD^IL^62701||(217)555-0134\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED||||ADM|||||V1001|||||||||||||||||||||||||20260114083000\r",
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260114091500||ADT^A08^ADT_A01|MSG00002|P|2.5.1\r\
EVN|A08|20260114091500\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F|||125 MAIN ST^^SPRINGFIELD^IL^62701||(217)555-0199\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED\r",
    "MSH|^~\\&|LAB|GOODHEALTH|EHR|GOODHEALTH|20260114103000||ORU^R01^ORU_R01|MSG00003|P|2.5.1\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
OBR|1|ORD5551|LAB7781|80048^BASIC METABOLIC PANEL^CPT|||20260114094500\r\
OBX|1|NM|2345-7^GLUCOSE^LN||98|mg/dL|70-99|N|||F\r\
OBX|2|NM|2951-2^SODIUM^LN||140|mmol/L|136-145|N|||F\r\
OBX|3|NM|2823-3^POTASSIUM^LN||4.1|mmol/L|3.5-5.1|N|||F\r",
    "MSH|^~\\&|REGADT|GOODHEALTH|RHAPSODY|GOODHEALTH|20260116140000||ADT^A03^ADT_A03|MSG00004|P|2.5.1\r\
EVN|A03|20260116140000\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
PV1|1|I|4WEST^402^1^GOODHEALTH||||1234^ATTEND^AARON^A^^^MD|||MED||||ADM|||||V1001|||||||||||||||||01||||||||20260114083000|20260116140000\r",
    "MSH|^~\\&|RIS|GOODHEALTH|EHR|GOODHEALTH|20260115120000||ORU^R01^ORU_R01|MSG00005|P|2.5.1\r\
PID|1||MRN100234^^^GOODHEALTH^MR||EVERYWOMAN^EVE^E||19720315|F\r\
OBR|1|ORD5560|RAD2210|71046^XR CHEST 2 VIEWS^CPT|||20260115113000\r\
OBX|1|TX|71046^XR CHEST 2 VIEWS^CPT||No acute cardiopulmonary abnormality.||||||F\r",
];

/// How long any expected event may take. Loopback answers in microseconds; this
/// bounds the demo when something is broken instead of hanging.
const EXPECT_WITHIN: Duration = Duration::from_secs(2);

/// A scenario's failure, explained.
type Outcome = Result<(), String>;

/// A named scenario.
type Scenario = (&'static str, fn() -> Outcome);

/// What the server thread saw, owned so it can cross the channel.
#[derive(Clone, Debug)]
struct Report {
    /// The `event=` name: connected, message, commit_ack, closed, rejected,
    /// session_message, session; and `cut` (a link the thread cut).
    kind: &'static str,
    /// The peer.
    peer: SocketAddr,
    /// For closed and rejected.
    reason: Option<CloseReason>,
    /// For messages: MSH-10, escaped.
    id: Option<String>,
    /// For session notes.
    note: Option<SessionNote>,
    /// For cuts: session messages received so far.
    at: usize,
}

impl Report {
    /// An owned copy of what the responder saw.
    fn from(s: &Seen<'_>) -> Report {
        let none = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut note = None;
        let (kind, peer, reason, id) = match *s {
            Seen::Connected { peer } => ("connected", peer, None, None),
            Seen::Message { peer, id, .. } => ("message", peer, None, id.map(escape)),
            Seen::CommitAck { peer, .. } => ("commit_ack", peer, None, None),
            Seen::Closed { peer, reason, .. } => ("closed", peer, Some(reason), None),
            Seen::Rejected { peer, reason } => ("rejected", peer, Some(reason), None),
            Seen::SessionMessage { id, .. } => ("session_message", none, None, id.map(escape)),
            Seen::Session { note: n, .. } => {
                note = Some(n);
                ("session", none, None, None)
            }
        };
        Report {
            kind,
            peer,
            reason,
            id,
            note,
            at: 0,
        }
    }
}

/// A listener on a thread of its own, reporting what it sees.
struct ServerThread {
    /// Where it listens.
    addr: SocketAddr,
    /// What it saw, in order.
    seen: mpsc::Receiver<Report>,
    /// Set on drop: the thread ends its loop.
    stop: Arc<AtomicBool>,
    /// Joined on drop.
    handle: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds on the main thread (so a failure is reported here), then serves on a
    /// thread. Server-side lines are printed with `side=server`, except messages
    /// (the client prints one line per reply).
    fn start(scenario: &'static str, o: ListenOpts) -> Result<ServerThread, String> {
        ServerThread::start_cutting(scenario, o, &[])
    }

    /// [`ServerThread::start`] that also cuts the link it last accepted (a
    /// server-side close) each time the session messages it received reach the
    /// next of `cuts`, printing `event=cut at=<received so far>` and reporting
    /// a `cut`.
    fn start_cutting(
        scenario: &'static str,
        o: ListenOpts,
        cuts: &'static [usize],
    ) -> Result<ServerThread, String> {
        let mut responder = Responder::bind(&o).map_err(|e| format!("bind: {e}"))?;
        let addr = responder.local_addr();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut received = 0;
            let mut next_cut = cuts.iter().copied().peekable();
            while !stopped.load(Ordering::Relaxed) {
                // Short turns so `stop` is noticed quickly; deadlines still wake it.
                let res = responder.turn(Duration::from_millis(20), |seen| {
                    if matches!(seen, Seen::SessionMessage { .. }) {
                        received += 1;
                    } else if !matches!(seen, Seen::Message { .. }) {
                        seen.append_to(Line::new("scenario", scenario).kv("side", "server"))
                            .print();
                    }
                    let _ = tx.send(Report::from(seen));
                });
                if let Err(e) = res {
                    log::error!("demo server poll failed: {e}");
                    return;
                }
                if next_cut.next_if(|&c| received >= c).is_some() && responder.close_last_link() {
                    Line::new("scenario", scenario)
                        .kv("event", "cut")
                        .kv("at", received)
                        .print();
                    let _ = tx.send(Report {
                        kind: "cut",
                        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                        reason: None,
                        id: None,
                        note: None,
                        at: received,
                    });
                }
            }
        });
        Ok(ServerThread {
            addr,
            seen: rx,
            stop,
            handle: Some(handle),
        })
    }

    /// Waits until the server reports an event matching `want`, skipping others.
    fn expect(&self, what: &str, want: impl Fn(&Report) -> bool) -> Result<Report, String> {
        let deadline = Instant::now() + EXPECT_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(s) if want(&s) => return Ok(s),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "server did not report {what} within {EXPECT_WITHIN:?}"
                    ))
                }
            }
        }
    }

    /// Collects every event until `until`; fails on one matching `forbidden`.
    /// For the scenarios about time passing.
    fn quiet_until(&self, until: Instant, forbidden: impl Fn(&Report) -> bool) -> Outcome {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.seen.recv_timeout(left) {
                Ok(s) if forbidden(&s) => return Err(format!("unexpected early event {s:?}")),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("server thread ended".into())
                }
            }
        }
    }

    /// Every event reported so far, without waiting.
    fn drain(&self) -> Vec<Report> {
        self.seen.try_iter().collect()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A mooring client for the demo: HL7 correlation on, short timeouts.
fn client(addr: SocketAddr, policy: ClientPolicy) -> Result<Client, String> {
    client_with(addr, policy, LivenessConfig::default())
}

/// [`client`] with liveness settings.
fn client_with(
    addr: SocketAddr,
    policy: ClientPolicy,
    liveness: LivenessConfig,
) -> Result<Client, String> {
    let cfg = ClientConfig {
        connect: ConnectConfig {
            connect_timeout: EXPECT_WITHIN,
            idle_timeout: None,
            liveness,
            ..ConnectConfig::default()
        },
        policy,
        response_timeout: EXPECT_WITHIN,
        correlate_hl7: true,
        ..ClientConfig::default()
    };
    Client::new(addr, cfg).map_err(|e| format!("client: {e}"))
}

/// Sends message `n` (1-based), prints the reply line, checks it is `AA` for it.
fn request(client: &mut Client, line: impl Fn() -> Line, n: usize) -> Outcome {
    let msg = MESSAGES[n - 1].as_bytes();
    let id = hl7::control_id(msg);
    let started = Instant::now();
    match client.request(msg) {
        Ok(reply) => {
            let ack = hl7::ack_code(reply);
            line()
                .kv("event", "reply")
                .kv("n", n)
                .wire("id", id)
                .wire("ack", ack)
                .kv("ms", started.elapsed().as_millis())
                .print();
            if ack != Some(b"AA") || hl7::acked_control_id(reply) != id {
                return Err(format!("message {n}: reply is not an AA for it"));
            }
            Ok(())
        }
        Err(e) => {
            line()
                .kv("event", "error")
                .kv("n", n)
                .wire("id", id)
                .kv("error", e.as_str())
                .print();
            Err(format!("message {n}: {e}"))
        }
    }
}

/// Opts for a demo listener on a free loopback port.
fn loopback() -> ListenOpts {
    ListenOpts {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ListenOpts::default()
    }
}

/// Seed 000: the four pairings of client and server "keep connection open".
/// Every pairing must deliver each message exactly once and get its ACK,
/// including the one HL7 Soup says not to use (keep-open client, close-after-reply
/// server): the client notices the close, or resends once when its write crossed it.
fn pairings() -> Outcome {
    const NAME: &str = "pairings";
    let cases = [
        (ClientPolicy::KeepOpen, false, 1),
        (ClientPolicy::KeepOpen, true, MESSAGES.len()),
        (ClientPolicy::ClosePerMessage, false, MESSAGES.len()),
        (ClientPolicy::ClosePerMessage, true, MESSAGES.len()),
    ];
    for (policy, close_after_reply, want_connects) in cases {
        let cname = match policy {
            ClientPolicy::KeepOpen => "keep-open",
            ClientPolicy::ClosePerMessage => "close-each",
        };
        let sname = if close_after_reply {
            "close-after-reply"
        } else {
            "keep-open"
        };
        let server = ServerThread::start(
            NAME,
            ListenOpts {
                close_after_reply,
                ..loopback()
            },
        )?;
        let mut c = client(server.addr, policy)?;
        let line = || {
            Line::new("scenario", NAME)
                .kv("client", cname)
                .kv("server", sname)
        };
        for n in 1..=MESSAGES.len() {
            request(&mut c, line, n)?;
        }
        let stats = c.stats();
        drop(c);
        // The server saw each message exactly once, in order (a resend only ever
        // repeats a message the server did not process).
        let mut ids = Vec::new();
        let want_ids: Vec<String> = (1..=MESSAGES.len()).map(|n| format!("MSG{n:05}")).collect();
        let deadline = Instant::now() + EXPECT_WITHIN;
        while ids.len() < want_ids.len() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(s) = server.seen.recv_timeout(left) {
                if s.kind == "message" {
                    ids.push(s.id.unwrap_or_default());
                }
            }
        }
        ids.extend(
            server
                .drain()
                .into_iter()
                .filter(|s| s.kind == "message")
                .map(|s| s.id.unwrap_or_default()),
        );
        line()
            .kv("event", "done")
            .kv("replies", stats.replies)
            .kv("connects", stats.connects)
            .kv("resends", stats.resends)
            .kv("server_messages", ids.len())
            .print();
        if ids != want_ids {
            return Err(format!("{cname}/{sname}: server saw {ids:?}"));
        }
        if stats.replies != MESSAGES.len() as u64 || stats.connects != want_connects as u64 {
            return Err(format!(
                "{cname}/{sname}: {} replies, {} connects (want {want_connects})",
                stats.replies, stats.connects
            ));
        }
    }
    Ok(())
}

/// Seed 001, many connections: a peer that goes quiet is closed with
/// `IdleTimeout`, not before; the client then reconnects transparently.
fn idle() -> Outcome {
    const NAME: &str = "idle";
    const IDLE: Duration = Duration::from_millis(300);
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            idle_timeout: Some(IDLE),
            ..loopback()
        },
    )?;
    let mut c = client(server.addr, ClientPolicy::KeepOpen)?;
    let line = || Line::new("scenario", NAME);
    request(&mut c, line, 1)?;
    let quiet_since = Instant::now();
    let connected = server.expect("connected", |s| s.kind == "connected")?;
    // Time passing is the point here: nothing may close the link before IDLE.
    server.quiet_until(quiet_since + IDLE - Duration::from_millis(50), |s| {
        s.kind == "closed"
    })?;
    let closed = server.expect("closed", |s| s.kind == "closed")?;
    let after = quiet_since.elapsed();
    line()
        .kv("event", "evicted")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .print();
    if closed.reason != Some(CloseReason::IdleTimeout) || closed.peer != connected.peer {
        return Err(format!(
            "want IdleTimeout for {}, got {closed:?}",
            connected.peer
        ));
    }
    // The client finds the link closed before writing and reconnects.
    request(&mut c, line, 2)?;
    let stats = c.stats();
    line()
        .kv("event", "done")
        .kv("connects", stats.connects)
        .kv("resends", stats.resends)
        .print();
    if stats.connects != 2 {
        return Err(format!("want 2 connects, got {}", stats.connects));
    }
    Ok(())
}

/// Seed 001, one connection: a silently dropped peer holds the only slot; a
/// second peer is refused while the first is fresh, and replaces it once it has
/// been idle for the stale timeout.
fn stale() -> Outcome {
    const NAME: &str = "stale";
    const STALE: Duration = Duration::from_millis(300);
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            max_conns: 1,
            stale_recovery: Some(STALE),
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);
    // The silent peer: connects, then never sends (as if its network went away).
    let mut silent = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    server.expect("the silent peer's connect", |s| {
        s.kind == "connected" && s.peer == silent_addr
    })?;
    // Taken once the server reports the accept, so the link's idle time (counted
    // from the accept) is at least the time elapsed since this instant.
    let silent_since = Instant::now();
    // A second peer right away: the slot is taken and not stale yet.
    let early = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let early_addr = early.local_addr().map_err(|e| e.to_string())?;
    let rejected = server.expect("the early peer's rejection", |s| s.peer == early_addr)?;
    if rejected.kind != "rejected" || rejected.reason != Some(CloseReason::TooManyConnections) {
        return Err(format!(
            "early peer: want TooManyConnections, got {rejected:?}"
        ));
    }
    drop(early);
    // Wait out the stale timeout (the point of the scenario), watching for surprises.
    server.quiet_until(silent_since + STALE + Duration::from_millis(20), |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    // A third peer, a real client, replaces the stale link and is served.
    let mut c = client(server.addr, ClientPolicy::KeepOpen)?;
    request(&mut c, line, 1)?;
    let closed = server.expect("the stale link's close", |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    line()
        .kv("event", "replaced")
        .kv("peer", silent_addr)
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("idle_ms", silent_since.elapsed().as_millis())
        .print();
    if closed.reason != Some(CloseReason::StaleReplaced) {
        return Err(format!("want StaleReplaced, got {closed:?}"));
    }
    // The silent peer's socket really was closed: it reads EOF (or a reset).
    let _ = silent.set_read_timeout(Some(EXPECT_WITHIN));
    let mut b = [0u8; 16];
    match silent.read(&mut b) {
        Ok(0) => {}
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut => {}
        other => return Err(format!("stale peer's socket still open: {other:?}")),
    }
    Ok(())
}

/// Bad input closes only the offending link, with its reason: an oversized frame
/// (`FrameTooLarge`) and a broken MLLP frame (`BadFrame`), while a good client
/// keeps its link and its replies.
fn bad_input() -> Outcome {
    const NAME: &str = "bad-input";
    const MAX_FRAME: usize = 4096;
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            max_frame: MAX_FRAME,
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);
    let mut good = client(server.addr, ClientPolicy::KeepOpen)?;
    request(&mut good, line, 1)?;

    let cases: [(&str, Vec<u8>, CloseReason); 2] = [
        (
            "oversized",
            oversized_frame(MAX_FRAME),
            CloseReason::FrameTooLarge,
        ),
        ("malformed", malformed_frame(), CloseReason::BadFrame),
    ];
    for (n, (what, bytes, want)) in cases.into_iter().enumerate() {
        let mut bad = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
        let addr = bad.local_addr().map_err(|e| e.to_string())?;
        // The server may close before reading it all; that is the expected outcome.
        if let Err(e) = bad.write_all(&bytes) {
            log::debug!("{what} peer: write ended early: {e}");
        }
        let closed = server.expect("the bad peer's close", |s| {
            s.kind == "closed" && s.peer == addr
        })?;
        line()
            .kv("event", "closed")
            .kv("peer_kind", what)
            .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
            .print();
        if closed.reason != Some(want) {
            return Err(format!("{what} peer: want {want}, got {closed:?}"));
        }
        // The good client is still served, on its same link.
        request(&mut good, line, n + 2)?;
    }
    for n in 4..=MESSAGES.len() {
        request(&mut good, line, n)?;
    }
    let stats = good.stats();
    line()
        .kv("event", "done")
        .kv("good_replies", stats.replies)
        .kv("good_connects", stats.connects)
        .print();
    if stats.connects != 1 {
        return Err(format!(
            "good client reconnected ({} connects)",
            stats.connects
        ));
    }
    Ok(())
}

/// An MLLP frame announcing more than `max` bytes: start block and `2 * max`
/// bytes, no end block.
fn oversized_frame(max: usize) -> Vec<u8> {
    let mut v = vec![0x0B];
    v.resize(1 + 2 * max, b'A');
    v
}

/// A frame whose end block is not followed by CR, which MLLP requires.
fn malformed_frame() -> Vec<u8> {
    let mut v = vec![0x0B];
    v.extend_from_slice(MESSAGES[0].as_bytes());
    v.extend_from_slice(b"\x1cX");
    v
}

/// Seeds 002-004: dead and silent peers are noticed within the bound. A
/// mooring-protocol server with heartbeat 200ms/600ms closes (a) a raw peer that
/// never says HELLO (`HandshakeTimeout`, 300 ms) and (b) a peer that completes the
/// handshake and then answers no PING (`HeartbeatTimeout`, within the detection
/// bound); (c) a heartbeating mooring client keeps its idle link across 1 s, far
/// past the server's heartbeat timeout, and is answered on it.
fn liveness() -> Outcome {
    const NAME: &str = "liveness";
    const HANDSHAKE: Duration = Duration::from_millis(300);
    let live = LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat: Some(Heartbeat {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(600),
        }),
        handshake_timeout: HANDSHAKE,
        ..LivenessConfig::default()
    };
    let bound = live
        .detection_bound()
        .ok_or("no detection bound with a heartbeat")?;
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            liveness: live,
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);

    // (a) Connects and says nothing: the slot is released after the handshake timeout.
    let silent = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let connected_at = Instant::now();
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    let closed = server.expect("the silent peer's close", |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    let after = connected_at.elapsed();
    line()
        .kv("event", "closed")
        .kv("peer_kind", "no-hello")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .print();
    if closed.reason != Some(CloseReason::HandshakeTimeout) {
        return Err(format!(
            "no-hello peer: want HandshakeTimeout, got {closed:?}"
        ));
    }
    // Taken after connect() returned, so the server's timer started before it.
    if after + Duration::from_millis(5) < HANDSHAKE {
        return Err(format!("no-hello peer closed early, after {after:?}"));
    }
    drop(silent);

    // (b) Says HELLO, gets WELCOME, then goes silent: never answers PING.
    let mut mute = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let mute_addr = mute.local_addr().map_err(|e| e.to_string())?;
    let mut buf = [0u8; wire::MAX_CONTROL];
    let n =
        wire::encode(&Msg::Hello(Greeting::new_session()), &mut buf).ok_or("HELLO does not fit")?;
    let mut hello = vec![0x0B];
    hello.extend_from_slice(&buf[..n]);
    hello.extend_from_slice(b"\x1c\r");
    mute.write_all(&hello)
        .map_err(|e| format!("write HELLO: {e}"))?;
    // The server's last inbound byte is the HELLO: silence starts now at the latest.
    let silent_since = Instant::now();
    server.expect("the mute peer's handshake", |s| {
        s.kind == "connected" && s.peer == mute_addr
    })?;
    let closed = server.expect("the mute peer's close", |s| {
        s.kind == "closed" && s.peer == mute_addr
    })?;
    let after = silent_since.elapsed();
    // What the mute peer was sent: WELCOME, PINGs it never answered, the CLOSE.
    let got = read_frames(&mut mute)?;
    let pings = got.iter().filter(|m| **m == Sent::Ping).count();
    line()
        .kv("event", "closed")
        .kv("peer_kind", "no-pong")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .kv("bound_ms", bound.as_millis())
        .kv("pings_unanswered", pings)
        .print();
    if closed.reason != Some(CloseReason::HeartbeatTimeout) {
        return Err(format!(
            "no-pong peer: want HeartbeatTimeout, got {closed:?}"
        ));
    }
    if after > bound {
        return Err(format!(
            "no-pong peer noticed after {after:?}, beyond the bound {bound:?}"
        ));
    }
    if got.first() != Some(&Sent::Welcome)
        || pings == 0
        || got.last() != Some(&Sent::Close(CloseReason::HeartbeatTimeout))
    {
        return Err(format!(
            "no-pong peer was sent {got:?} (want WELCOME, PINGs, CLOSE)"
        ));
    }

    // (c) A heartbeating client stays connected across idleness, then is served.
    let mut c = client_with(server.addr, ClientPolicy::KeepOpen, live)?;
    request(&mut c, line, 1)?;
    const IDLE: Duration = Duration::from_secs(1);
    if let Some(r) = c.maintain(IDLE) {
        return Err(format!("heartbeating client's link closed while idle: {r}"));
    }
    request(&mut c, line, 2)?;
    let stats = c.stats();
    let server_closes = server
        .drain()
        .into_iter()
        .filter(|s| s.kind == "closed")
        .count();
    line()
        .kv("event", "done")
        .kv("idle_ms", IDLE.as_millis())
        .kv("connects", stats.connects)
        .kv("server_closes", server_closes)
        .print();
    if stats.connects != 1 || server_closes != 0 {
        return Err(format!(
            "heartbeating client: {} connects, {server_closes} closes (want 1 and 0)",
            stats.connects
        ));
    }
    Ok(())
}

/// A protocol message the mute peer of [`liveness`] was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// WELCOME.
    Welcome,
    /// PING.
    Ping,
    /// CLOSE with its reason.
    Close(CloseReason),
    /// Anything else.
    Other,
}

/// Reads MLLP frames of protocol messages until the peer closes (bounded by
/// [`EXPECT_WITHIN`]).
fn read_frames(s: &mut TcpStream) -> Result<Vec<Sent>, String> {
    s.set_read_timeout(Some(EXPECT_WITHIN))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A reset after the CLOSE is an end too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("reading the server's frames: {e}")),
        }
    }
    Ok(bytes
        .split(|&b| b == 0x0B)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let payload = f.strip_suffix(b"\x1c\r").unwrap_or(f);
            match wire::decode(payload) {
                Ok(Msg::Welcome(_)) => Sent::Welcome,
                Ok(Msg::Ping) => Sent::Ping,
                Ok(Msg::Close(WireReason::Known(r))) => Sent::Close(r),
                _ => Sent::Other,
            }
        })
        .collect())
}

/// Seed 002 (reliable reconnection): a client streams [`SESSION_MESSAGES`]
/// messages through a reliable session while the server cuts the session's
/// link twice mid-stream (a server-side close, at 60 and 130 messages
/// received). The client reconnects, both sides resume the session and replay
/// what the other missed; the server must see every message exactly once and
/// in order, and the client every reply (an AA for its message), likewise.
/// The replay queues are small (16, connected or not) so the stream is still
/// flowing at each cut.
fn sessions() -> Outcome {
    const NAME: &str = "sessions";
    const CUTS: &[usize] = &[60, 130];
    let live = LivenessConfig {
        protocol: Protocol::Mooring,
        handshake_timeout: EXPECT_WITHIN,
        ..LivenessConfig::default()
    };
    let scfg = SessionConfig {
        max_depth: 16,
        max_depth_disconnected: 16,
        max_bytes: 64 * 1024,
        ack_every: 8,
        ..SessionConfig::default()
    };
    let server = ServerThread::start_cutting(
        NAME,
        ListenOpts {
            liveness: live,
            session: Some(scfg),
            reply: ReplyMode::Hl7Ack,
            ..loopback()
        },
        CUTS,
    )?;
    let line = || Line::new("scenario", NAME);
    let mut node = Node::new(NodeConfig {
        max_links: 2,
        max_sessions: 1,
        ..NodeConfig::default()
    })
    .map_err(|e| format!("client node: {e}"))?;
    let connect = ConnectConfig {
        connect_timeout: EXPECT_WITHIN,
        liveness: live,
        session: Some(scfg),
        backoff: Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_attempts: None,
        },
        ..ConnectConfig::default()
    };
    let id = node
        .open_session(server.addr, &connect)
        .map_err(|e| format!("open_session: {e}"))?;
    let ids: Vec<String> = (1..=SESSION_MESSAGES).map(|n| format!("S{n:05}")).collect();
    let messages: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "MSH|^~\\&|DEMO|A|DEMO|B|20260114083000||ADT^A08|{id}|P|2.5.1\rPID|1||MRN{}\r",
                i + 1
            )
        })
        .collect();
    let started = Instant::now();
    let deadline = started + EXPECT_WITHIN;
    let (mut next, mut replies, mut resumes) = (0, Vec::new(), 0);
    while replies.len() < SESSION_MESSAGES {
        // As many as the session's queue takes; the rest once it is acknowledged.
        while next < SESSION_MESSAGES {
            match node.session_send(id, messages[next].as_bytes()) {
                Ok(_) => next += 1,
                Err(SessionError::QueueFull) => break,
                Err(e) => return Err(format!("session_send: {e:?}")),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{} of {SESSION_MESSAGES} replies within {EXPECT_WITHIN:?}",
                replies.len()
            ));
        }
        node.poll(Some(left)).map_err(|e| format!("poll: {e}"))?;
        while let Some(ev) = node.next_event() {
            match ev {
                Event::SessionMessage { payload, .. } => {
                    let acked = hl7::acked_control_id(payload).map(escape);
                    if hl7::ack_code(payload) != Some(b"AA") {
                        return Err(format!("reply {} is not an AA", replies.len() + 1));
                    }
                    replies.push(acked.unwrap_or_default());
                }
                Event::Session {
                    note:
                        SessionNote::Established {
                            resumed: true,
                            replaying,
                        },
                    ..
                } => {
                    resumes += 1;
                    line()
                        .kv("event", "resumed")
                        .kv("replaying", replaying)
                        .print();
                }
                Event::Session {
                    note: SessionNote::Ended(how),
                    ..
                } => return Err(format!("the client's session ended: {how:?}")),
                _ => {}
            }
        }
    }
    node.close_session(id);
    // What the server delivered, in order (every reply came, so every message
    // was delivered before).
    let mut got = Vec::new();
    let mut cuts = 0;
    let mut server_resumes = 0;
    for r in server.drain() {
        match r.kind {
            "session_message" => got.push(r.id.unwrap_or_default()),
            "cut" if r.at < SESSION_MESSAGES => cuts += 1,
            "cut" => return Err(format!("a cut came after the stream, at {}", r.at)),
            "session" => {
                if let Some(SessionNote::Established { resumed: true, .. }) = r.note {
                    server_resumes += 1;
                }
            }
            _ => {}
        }
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    let duplicates = got.len() - unique.len();
    line()
        .kv("event", "done")
        .kv("sent", next)
        .kv("delivered", got.len())
        .kv("duplicates", duplicates)
        .kv("cuts", cuts)
        .kv("resumes", resumes)
        .print();
    log::debug!("sessions scenario took {:?}", started.elapsed());
    if got != ids {
        return Err(format!(
            "server delivered {} messages, not each of {SESSION_MESSAGES} once in order",
            got.len()
        ));
    }
    if replies != ids {
        return Err("the client's replies are not one per message, in order".into());
    }
    if cuts != CUTS.len() || resumes != CUTS.len() || server_resumes != CUTS.len() {
        return Err(format!(
            "{cuts} cuts, {resumes} client resumes, {server_resumes} server resumes \
             (want {} each)",
            CUTS.len()
        ));
    }
    Ok(())
}

/// Messages the `sessions` scenario streams.
const SESSION_MESSAGES: usize = 200;

/// Runs every scenario and prints the summary.
pub fn run() -> ExitCode {
    let scenarios: [Scenario; 6] = [
        ("pairings", pairings),
        ("idle", idle),
        ("stale", stale),
        ("bad-input", bad_input),
        ("liveness", liveness),
        ("sessions", sessions),
    ];
    let started = Instant::now();
    let mut ok = 0;
    for (name, scenario) in scenarios {
        let result = scenario();
        let l = Line::new("scenario", name);
        match result {
            Ok(()) => {
                ok += 1;
                l.kv("result", "ok").print();
            }
            Err(why) => {
                log::error!("scenario {name}: {why}");
                l.kv("result", "failed")
                    .kv("why", escape(why.as_bytes()))
                    .print();
            }
        }
    }
    let failed = scenarios.len() - ok;
    Line::new("event", "summary")
        .kv("scenarios", scenarios.len())
        .kv("ok", ok)
        .kv("failed", failed)
        .print();
    log::debug!("demo took {:?}", started.elapsed());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
