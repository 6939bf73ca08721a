//! Shared helpers for the behaviour tests: a mooring server driven in its own
//! thread that records every event, raw `std::net` peers that speak MLLP or
//! len32 by hand, and bounded waits. Loopback only.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooring::internals::wire::{self, Msg};
use mooring::session::SessionConfig;
use mooring::{
    hl7, CloseReason, ConnectConfig, Event, Framing, LinkId, LinkStats, ListenConfig, ListenerId,
    LivenessConfig, ManualClock, Node, NodeConfig, NodeStats, Protocol, SessionId,
};

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// A second loopback address (all of 127.0.0.0/8 is routed to `lo` on Linux).
pub const LOCALHOST_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

pub fn any_port() -> SocketAddr {
    SocketAddr::new(LOCALHOST, 0)
}

/// An HL7 v2 message whose MSH-10 (control id) is `id`.
pub fn hl7_msg(id: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20261122120000||ADT^A01|{id}|P|2.5\rPID|1||{id}^^^HOSP||DOE^JOHN\r"
    )
    .into_bytes()
}

/// An HL7 ACK (MSA|AA) for a message with control id `id`.
pub fn hl7_ack_for(id: &str) -> Vec<u8> {
    let msg = hl7_msg(id);
    let mut out = [0u8; 512];
    let n =
        hl7::build_ack(&msg, hl7::AckCode::Accept, b"20261122120001", &mut out).expect("ack fits");
    out[..n].to_vec()
}

/// MSA-2 of an ACK, as a string.
pub fn acked_id(ack: &[u8]) -> String {
    String::from_utf8_lossy(hl7::acked_control_id(ack).expect("reply has MSA-2")).into_owned()
}

/// MSH-10 of a message, as a string.
pub fn control_id(msg: &[u8]) -> String {
    String::from_utf8_lossy(hl7::control_id(msg).expect("message has MSH-10")).into_owned()
}

#[path = "../mllp/mod.rs"]
mod mllp_wire;
pub use mllp_wire::mllp;
pub use mllp_wire::take_mllp;

/// Mooring protocol message `m` in an MLLP frame, as a raw peer writes it.
pub fn wire_mllp(m: &Msg<'_>) -> Vec<u8> {
    let mut b = [0u8; wire::MAX_CONTROL];
    let n = wire::encode(m, &mut b).expect("fits");
    mllp(&b[..n])
}

pub fn len32(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Polls `cond` until it holds or `within` passes; false on timeout.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Events, owned
// ---------------------------------------------------------------------------

/// An [`Event`] copied out of the node, with the time it was pulled.
#[derive(Clone, Debug)]
pub enum Rec {
    Connected {
        link: LinkId,
        peer: SocketAddr,
    },
    Message {
        link: LinkId,
        payload: Vec<u8>,
    },
    CommitAck {
        link: LinkId,
        accepted: bool,
    },
    Writable {
        link: LinkId,
    },
    Closed {
        link: LinkId,
        peer: SocketAddr,
        reason: CloseReason,
        stats: LinkStats,
    },
    Rejected {
        peer: SocketAddr,
        reason: CloseReason,
    },
}

impl Rec {
    pub fn from_event(ev: &Event<'_>) -> Rec {
        match *ev {
            Event::Connected { link, peer, .. } => Rec::Connected { link, peer },
            Event::Message { link, payload } => Rec::Message {
                link,
                payload: payload.to_vec(),
            },
            Event::CommitAck { link, accepted } => Rec::CommitAck { link, accepted },
            Event::Writable { link } => Rec::Writable { link },
            Event::Closed {
                link,
                peer,
                reason,
                stats,
                ..
            } => Rec::Closed {
                link,
                peer,
                reason,
                stats,
            },
            Event::Rejected { peer, reason, .. } => Rec::Rejected { peer, reason },
            // This harness runs no reliable sessions.
            ref other => panic!("unexpected event in a session-less harness: {other:?}"),
        }
    }

    pub fn link(&self) -> Option<LinkId> {
        match *self {
            Rec::Connected { link, .. }
            | Rec::Message { link, .. }
            | Rec::CommitAck { link, .. }
            | Rec::Writable { link }
            | Rec::Closed { link, .. } => Some(link),
            Rec::Rejected { .. } => None,
        }
    }

    pub fn is_closed_from(&self, from: SocketAddr) -> Option<CloseReason> {
        match *self {
            Rec::Closed { peer, reason, .. } if peer == from => Some(reason),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// A mooring server in a thread
// ---------------------------------------------------------------------------

/// What the harness server answers to each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// An HL7 ACK (MSA|AA|<MSH-10>).
    Ack,
    /// The payload itself.
    Echo,
    /// The payload twice, as two frames: a reply of more than one frame.
    EchoTwice,
    /// Nothing.
    Nothing,
}

/// A [`Node`] with one listener, driven in its own thread. Every event is
/// recorded; the test waits for the ones it expects with [`Harness::wait_for`].
/// A node built from `node`, listening on 127.0.0.1 (any port) with `listen`.
pub fn listening_node(node: NodeConfig, listen: ListenConfig) -> (Node, ListenerId) {
    let mut node = Node::new(node).unwrap();
    let l = node.listen("127.0.0.1:0".parse().unwrap(), listen).unwrap();
    (node, l)
}

/// A node (4 link slots, 2 sessions, `framing`) that is both ends of one
/// reliable session of `session` over loopback; returns the client's session.
pub fn session_loopback(framing: Framing, session: SessionConfig) -> (Node, SessionId) {
    let liveness = LivenessConfig {
        protocol: Protocol::Mooring,
        ..LivenessConfig::default()
    };
    let (mut node, l) = listening_node(
        NodeConfig {
            framing,
            max_links: 4,
            max_sessions: 2,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 2,
            liveness: liveness.clone(),
            session: Some(session),
            ..ListenConfig::default()
        },
    );
    let addr = node.local_addr(l).unwrap();
    let connect = ConnectConfig {
        liveness,
        session: Some(session),
        ..ConnectConfig::default()
    };
    let client = node.open_session(addr, &connect).unwrap();
    (node, client)
}

pub struct Harness {
    pub addr: SocketAddr,
    rx: Receiver<(Instant, Rec)>,
    /// Every event received so far, with a flag: already returned by `wait_for`.
    seen: Vec<(Instant, Rec, bool)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<NodeStats>>,
}

impl Harness {
    pub fn start(node: NodeConfig, listen: ListenConfig, reply: Reply) -> Harness {
        Harness::serve(Node::new(node).expect("node builds"), listen, reply)
    }

    /// Like [`Harness::acking`], on a clock the test moves: timeouts pass when
    /// the test advances `clock`, not while it sleeps.
    pub fn acking_on(clock: &ManualClock, listen: ListenConfig) -> Harness {
        let node = Node::with_clock(NodeConfig::default(), Box::new(clock.clone()));
        Harness::serve(node.expect("node builds"), listen, Reply::Ack)
    }

    fn serve(mut n: Node, listen: ListenConfig, reply: Reply) -> Harness {
        let l = n.listen(any_port(), listen).expect("listener binds");
        let addr = n.local_addr(l).expect("bound");
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut node = n;
            let mut ack = vec![0u8; 1024];
            while !stop2.load(Ordering::Relaxed) {
                node.poll(Some(Duration::from_millis(5))).expect("poll");
                loop {
                    let mut answer: Option<(LinkId, Vec<u8>)> = None;
                    let mut times = 1;
                    let Some(ev) = node.next_event() else { break };
                    let rec = Rec::from_event(&ev);
                    if let Event::Message { link, payload } = ev {
                        match reply {
                            Reply::Ack => {
                                let n = hl7::build_ack(
                                    payload,
                                    hl7::AckCode::Accept,
                                    b"20261122120001",
                                    &mut ack,
                                )
                                .expect("ack fits");
                                answer = Some((link, ack[..n].to_vec()));
                            }
                            Reply::Echo => answer = Some((link, payload.to_vec())),
                            Reply::EchoTwice => {
                                answer = Some((link, payload.to_vec()));
                                times = 2;
                            }
                            Reply::Nothing => {}
                        }
                    }
                    let _ = tx.send((Instant::now(), rec));
                    if let Some((link, bytes)) = answer {
                        for _ in 0..times {
                            // A refused reply surfaces as a missing reply in the test.
                            let _ = node.send(link, &bytes);
                        }
                    }
                }
            }
            node.stats()
        });
        Harness {
            addr,
            rx,
            seen: Vec::new(),
            stop,
            thread: Some(thread),
        }
    }

    /// Default sizes, the given listener policy, HL7 ACK replies.
    pub fn acking(listen: ListenConfig) -> Harness {
        Harness::start(NodeConfig::default(), listen, Reply::Ack)
    }

    fn pull(&mut self, wait: Duration) -> bool {
        match self.rx.recv_timeout(wait) {
            Ok((t, r)) => {
                self.seen.push((t, r, false));
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) if self.thread.is_none() => false,
            Err(RecvTimeoutError::Disconnected) => panic!("harness server thread died"),
        }
    }

    /// Waits for the close of the link from `peer` (`what` names it if it
    /// never comes) and returns its reason.
    pub fn close_reason(&mut self, what: &str, peer: SocketAddr) -> CloseReason {
        let (_, r) = self.wait_for(what, PATIENCE, |e| e.is_closed_from(peer).is_some());
        r.is_closed_from(peer).expect("matched a close")
    }

    /// The first event not yet taken that matches `pred`, waiting up to `within`.
    /// Panics naming `what` (and listing what was seen) on timeout.
    pub fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        mut pred: impl FnMut(&Rec) -> bool,
    ) -> (Instant, Rec) {
        let deadline = Instant::now() + within;
        let mut checked = 0;
        loop {
            while checked < self.seen.len() {
                let (t, r, taken) = &mut self.seen[checked];
                checked += 1;
                if !*taken && pred(r) {
                    *taken = true;
                    return (*t, r.clone());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}; events seen: {:#?}",
                    self.seen.iter().map(|s| &s.1).collect::<Vec<_>>()
                );
            }
            self.pull(deadline - now);
        }
    }

    /// Collects events for `during` (for tests that show something does NOT happen).
    pub fn settle(&mut self, during: Duration) {
        let deadline = Instant::now() + during;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            self.pull(deadline - now);
        }
    }

    /// Every event received so far (taken or not), draining what is queued.
    pub fn events(&mut self) -> Vec<Rec> {
        while self.pull(Duration::ZERO) {}
        self.seen.iter().map(|s| s.1.clone()).collect()
    }

    /// Stops the server thread; returns every event and the node's counters.
    pub fn stop(mut self) -> (Vec<Rec>, NodeStats) {
        self.stop.store(true, Ordering::Relaxed);
        let stats = self
            .thread
            .take()
            .expect("running")
            .join()
            .expect("server thread panicked");
        let evs = self.events();
        (evs, stats)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------

/// A hand-driven TCP peer with read timeouts, reading MLLP or len32 frames.
pub struct Peer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A read's deadline, and whether a read was tried before it (see `Peer::fill`).
struct Wait {
    deadline: Instant,
    tried: bool,
}

impl Wait {
    fn new(within: Duration) -> Wait {
        Wait {
            deadline: Instant::now() + within,
            tried: false,
        }
    }
}

/// How a raw peer's read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// EOF or reset: the other side closed.
    Closed,
    /// Nothing within the deadline.
    TimedOut,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Peer {
        Peer::wrap(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects from the given local address (e.g. 127.0.0.2).
    pub fn connect_from(src: IpAddr, addr: SocketAddr) -> Peer {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&SocketAddr::new(src, 0).into())
            .expect("bind source");
        s.connect(&addr.into()).expect("connect");
        Peer::wrap(s.into())
    }

    pub fn wrap(stream: TcpStream) -> Peer {
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(PATIENCE))
            .expect("write timeout");
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("write");
    }

    /// Writes `bytes`; an error (the other side is gone) is the caller's.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send_mllp(&mut self, payload: &[u8]) {
        self.send(&mllp(payload));
    }

    /// Reads more bytes into the buffer; `Err` on close or timeout. The first
    /// call for a `wait` always reads once, even past its deadline: parsing
    /// what is buffered (slow in debug builds on a loaded host) must not use
    /// up a short wait and leave bytes unread that have arrived.
    fn fill(&mut self, wait: &mut Wait) -> Result<(), ReadEnd> {
        let now = Instant::now();
        if wait.tried && now >= wait.deadline {
            return Err(ReadEnd::TimedOut);
        }
        wait.tried = true;
        let left = wait.deadline.saturating_duration_since(now);
        self.stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ReadEnd::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(ReadEnd::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(_) => Err(ReadEnd::Closed),
        }
    }

    /// The next MLLP frame's payload (stray bytes before it are dropped).
    pub fn read_mllp(&mut self, within: Duration) -> Result<Vec<u8>, ReadEnd> {
        let mut wait = Wait::new(within);
        loop {
            if let Some(payload) = take_mllp(&mut self.buf) {
                return Ok(payload);
            }
            self.fill(&mut wait)?;
        }
    }

    /// The next len32 frame's payload.
    pub fn read_len32(&mut self, within: Duration) -> Result<Vec<u8>, ReadEnd> {
        let mut wait = Wait::new(within);
        loop {
            if self.buf.len() >= 4 {
                let n = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() >= 4 + n {
                    let payload = self.buf[4..4 + n].to_vec();
                    self.buf.drain(..4 + n);
                    return Ok(payload);
                }
            }
            self.fill(&mut wait)?;
        }
    }

    /// Raw bytes: waits until at least `n` are buffered, returns them all.
    pub fn read_bytes(&mut self, n: usize, within: Duration) -> Result<Vec<u8>, ReadEnd> {
        let mut wait = Wait::new(within);
        while self.buf.len() < n {
            self.fill(&mut wait)?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Waits for the other side to close (EOF or reset); bytes before that are
    /// returned. Fails the test if the link stays open for `within`.
    pub fn expect_closed(&mut self, within: Duration) -> Vec<u8> {
        let mut wait = Wait::new(within);
        loop {
            match self.fill(&mut wait) {
                Ok(()) => {}
                Err(ReadEnd::Closed) => return std::mem::take(&mut self.buf),
                Err(ReadEnd::TimedOut) => panic!(
                    "link from {} still open after {within:?}",
                    self.local_addr()
                ),
            }
        }
    }

    /// True if the link is still open after `within` (no EOF, no reset).
    pub fn stays_open(&mut self, within: Duration) -> bool {
        let mut wait = Wait::new(within);
        loop {
            match self.fill(&mut wait) {
                Ok(()) => {}
                Err(ReadEnd::Closed) => return false,
                Err(ReadEnd::TimedOut) => return true,
            }
        }
    }

    /// Sends an HL7 message and returns the MLLP reply.
    pub fn request(&mut self, msg: &[u8]) -> Vec<u8> {
        self.send_mllp(msg);
        self.read_mllp(PATIENCE).expect("reply")
    }
}
