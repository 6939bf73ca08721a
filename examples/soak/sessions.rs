//! Session traffic with cuts: a library [`Node`] in this process opens
//! reliable sessions to `mooring listen --session` through a small TCP proxy
//! that cuts every link it carries at a random moment. Each session sends
//! numbered HL7 messages; the server answers each with an ACK through the
//! session, and every reply must come exactly once and in order, across cuts.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooring::hl7;
use mooring::internals::rng::XorShift64;
use mooring::session::{Backoff, SessionConfig, SessionError};
use mooring::{
    ConnectConfig, Event, LivenessConfig, Node, NodeConfig, Protocol, SessionId, SessionNote,
};

use crate::raw_peers::hl7_message;
use crate::Run;

/// A link through the proxy lives between these before it is cut.
const CUT_AFTER_MIN: Duration = Duration::from_millis(500);
const CUT_AFTER_MAX: Duration = Duration::from_secs(5);
/// How often the proxy looks for a newcomer or a link due to be cut.
const PROXY_TICK: Duration = Duration::from_millis(10);
/// Bound on each pump's blocking read (so it notices the end of the run).
const PUMP_READ: Duration = Duration::from_millis(200);
/// After the run, how long the sessions get to bring every reply home.
const DRAIN_WITHIN: Duration = Duration::from_secs(20);

/// A TCP proxy that cuts every link at a random moment.
pub struct CutProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Set to end the proxy.
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

/// One proxied link: both sockets (for the cut) and when to cut it.
struct Pair {
    client: TcpStream,
    server: TcpStream,
    cut_at: Instant,
    done: Arc<AtomicBool>,
}

impl CutProxy {
    /// Listens on 127.0.0.1 (port 0) and forwards to `upstream`, cutting links
    /// while `run` goes (then the sessions drain through links left whole).
    pub fn start(upstream: SocketAddr, seed: u64, run: &Run) -> std::io::Result<CutProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (run, s) = (run.clone(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || proxy(listener, upstream, seed, &run, &s));
        Ok(CutProxy {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the proxy; returns the number of cuts.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The proxy loop: accepts, pumps each link on two threads, cuts when due.
fn proxy(l: TcpListener, up: SocketAddr, seed: u64, run: &Run, stop: &AtomicBool) -> u64 {
    let mut rng = XorShift64::new(seed);
    let mut pairs: Vec<Pair> = Vec::new();
    let mut cuts = 0;
    let span = (CUT_AFTER_MAX - CUT_AFTER_MIN).as_millis() as u64;
    while !stop.load(Ordering::Relaxed) {
        if let Ok((client, _)) = l.accept() {
            let cut_at = Instant::now() + CUT_AFTER_MIN + Duration::from_millis(rng.below(span));
            if let Some(p) = open_pair(client, up, cut_at) {
                pairs.push(p);
            }
        }
        let (now, cutting) = (Instant::now(), run.going());
        for p in &mut pairs {
            if cutting && now >= p.cut_at && !p.done.load(Ordering::Relaxed) {
                cut(p);
                cuts += 1;
            }
        }
        pairs.retain(|p| !p.done.load(Ordering::Relaxed));
        std::thread::sleep(PROXY_TICK);
    }
    for p in &pairs {
        cut(p);
    }
    cuts
}

/// Drops a link: both sockets shut, both pumps end.
fn cut(p: &Pair) {
    let _ = p.client.shutdown(Shutdown::Both);
    let _ = p.server.shutdown(Shutdown::Both);
    p.done.store(true, Ordering::Relaxed);
}

/// Connects upstream and starts the two pumps.
fn open_pair(client: TcpStream, up: SocketAddr, cut_at: Instant) -> Option<Pair> {
    client.set_nonblocking(false).ok()?;
    let server = TcpStream::connect_timeout(&up, Duration::from_secs(2)).ok()?;
    for s in [&client, &server] {
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(PUMP_READ)).ok()?;
    }
    let done = Arc::new(AtomicBool::new(false));
    for (from, to) in [(&client, &server), (&server, &client)] {
        let (from, to) = (from.try_clone().ok()?, to.try_clone().ok()?);
        let done = Arc::clone(&done);
        std::thread::spawn(move || pump(from, to, &done));
    }
    Some(Pair {
        client,
        server,
        cut_at,
        done,
    })
}

/// Copies `from` to `to` until either closes or the link is cut; then closes
/// both (a half-close is a close here).
fn pump(mut from: TcpStream, mut to: TcpStream, done: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    while !done.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    done.store(true, Ordering::Relaxed);
}

/// What the sessions saw.
#[derive(Default)]
pub struct SessionReport {
    /// Messages sent.
    pub sent: u64,
    /// Replies that came once, in order, each an AA for its message.
    pub replied: u64,
    /// Messages whose reply never came (a gap, or still missing after the drain).
    pub lost: u64,
    /// Replies for a message already answered.
    pub duplicates: u64,
    /// Replies that were not an AA for their message.
    pub bad: u64,
    /// Resumes after a lost link (client side).
    pub resumes: u64,
    /// Sessions that ended before the run did, with how.
    pub ended: Vec<String>,
    /// Setup or poll errors.
    pub errors: Vec<String>,
}

/// One session's numbering.
struct Stream {
    id: SessionId,
    /// Index in the MSH-10s (`S<index>-<n>`).
    index: usize,
    /// Messages sent (numbered from 1).
    sent: u64,
    /// The next reply expected.
    next_reply: u64,
    ended: bool,
}

/// Runs `count` sessions to `via` (the proxy) until the run ends, then waits
/// for every reply (up to [`DRAIN_WITHIN`]).
pub fn run_sessions(via: SocketAddr, count: usize, run: &Run, pace: Duration) -> SessionReport {
    let mut rep = SessionReport::default();
    let scfg = SessionConfig::default();
    let connect = ConnectConfig {
        connect_timeout: Duration::from_secs(2),
        liveness: LivenessConfig {
            protocol: Protocol::Mooring,
            handshake_timeout: Duration::from_secs(5),
            ..LivenessConfig::default()
        },
        session: Some(scfg),
        // Reconnect soon after a cut, so the stream keeps flowing.
        backoff: Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(500),
            max_attempts: None,
        },
        ..ConnectConfig::default()
    };
    let node = Node::new(NodeConfig {
        max_links: count * 2 + 2,
        max_sessions: count,
        ..NodeConfig::default()
    });
    let mut node = match node {
        Ok(n) => n,
        Err(e) => {
            rep.errors.push(format!("node: {e}"));
            return rep;
        }
    };
    let mut streams = Vec::new();
    for index in 0..count {
        match node.open_session(via, &connect) {
            Ok(id) => streams.push(Stream {
                id,
                index,
                sent: 0,
                next_reply: 1,
                ended: false,
            }),
            Err(e) => rep.errors.push(format!("open_session: {e}")),
        }
    }
    let started = Instant::now();
    let mut drain_until = None;
    loop {
        let sending = run.going();
        if !sending && drain_until.is_none() {
            drain_until = Some(Instant::now() + DRAIN_WITHIN);
        }
        let all_home = streams.iter().all(|s| s.ended || s.next_reply > s.sent);
        if drain_until.is_some_and(|d| all_home || Instant::now() >= d) {
            break;
        }
        if sending {
            // Messages due by now at one per `pace`, as far as the queue takes.
            let due = (started.elapsed().as_micros() / pace.as_micros().max(1)) as u64;
            for s in streams.iter_mut().filter(|s| !s.ended) {
                while s.sent < due {
                    let msg = hl7_message(&format!("S{}-{}", s.index, s.sent + 1));
                    match node.session_send(s.id, &msg) {
                        Ok(_) => s.sent += 1,
                        Err(SessionError::QueueFull) => break,
                        Err(e) => {
                            rep.errors.push(format!("session_send: {e:?}"));
                            s.ended = true;
                            break;
                        }
                    }
                }
            }
        }
        if let Err(e) = node.poll(Some(pace.min(Duration::from_millis(20)))) {
            rep.errors.push(format!("poll: {e}"));
            break;
        }
        while let Some(ev) = node.next_event() {
            match ev {
                Event::SessionMessage { session, payload } => {
                    if let Some(s) = streams.iter_mut().find(|s| s.id == session) {
                        check_reply(s, payload, &mut rep);
                    }
                }
                Event::Session { session, note } => match note {
                    SessionNote::Established { resumed: true, .. } => rep.resumes += 1,
                    SessionNote::Ended(how) => {
                        if let Some(s) = streams.iter_mut().find(|s| s.id == session) {
                            s.ended = true;
                            rep.ended.push(format!("S{}:{how:?}", s.index));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    for s in &streams {
        rep.sent += s.sent;
        // Whatever did not come home by the end of the drain is lost.
        rep.lost += s.sent.saturating_sub(s.next_reply - 1);
        if !s.ended {
            node.close_session(s.id);
        }
    }
    // Let the CLOSEs go out (bounded; nothing waits on them).
    let _ = node.poll(Some(Duration::from_millis(50)));
    rep
}

/// Checks one reply against the next one expected.
fn check_reply(s: &mut Stream, payload: &[u8], rep: &mut SessionReport) {
    let prefix = format!("S{}-", s.index);
    let n = hl7::acked_control_id(payload)
        .and_then(|id| std::str::from_utf8(id).ok())
        .and_then(|id| id.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(n) = n else {
        rep.bad += 1;
        return;
    };
    if n < s.next_reply {
        rep.duplicates += 1;
        return;
    }
    // A reply past the next one expected: those in between never come.
    rep.lost += n - s.next_reply;
    if hl7::ack_code(payload) == Some(b"AA") {
        rep.replied += 1;
    } else {
        rep.bad += 1;
    }
    s.next_reply = n + 1;
}
