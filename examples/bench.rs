//! Side-by-side echo benchmark (issue 6): mooring against what users would pick
//! instead, driven by one load client, on loopback.
//!
//! ```sh
//! cargo run --release --example bench --features bench-peers -- [options]
//!   --quick              short runs (a smoke test, well under a minute)
//!   --workload A,B       rr1, depth64, links64, stream, big16k, big128k, conn (default: all)
//!   --framing F          mllp, len32 or both (default both)
//!   --servers A,B        mooring, floor8k, floor64k, tokio, threads (default: all)
//!   --secs S             measured seconds per run (default 2)
//!   --reps N             runs per workload and server, interleaved (default 3)
//!   --size B             payload bytes of the small-message workloads (default 256)
//!   --conn-count N       connections per run of `conn` (default 1000)
//!   --idle N             instead: open N idle links to each server, report RSS per link
//!   --server-wrap CMD    run each server under CMD, e.g. "valgrind --tool=callgrind";
//!                        the mooring server prints how many messages it served on exit
//! ```
//!
//! Servers, each in its own child process (this example started again with
//! `--serve KIND`), pinned to CPU 0 while the client runs on CPU 1 when there
//! are two CPUs and `taskset` is installed:
//!
//! - `mooring`: a [`mooring::Server`] echoing every message (default sizes:
//!   16 KiB working buffers, 1 MiB maximum frame).
//! - `floor8k`, `floor64k`: hand-written single-threaded mio echo that does not
//!   parse frames at all, reading 8 KiB or 64 KiB at a time: socket work alone.
//! - `tokio`: tokio current_thread runtime, one task per connection,
//!   `FramedRead`/`FramedWrite` with tokio-util's `LengthDelimitedCodec` or a
//!   small MLLP codec, `forward`ing replies (flushes when the reader would block).
//! - `threads`: std threads, one per connection, `BufReader`/`BufWriter`,
//!   flushing when the reader's buffer is empty.
//!
//! The client (this process) is a single-threaded mio closed loop: N links, D
//! messages in flight on each. Every reply is checked (length, sequence number
//! and content), counts are checked after a drain, and latency goes into a
//! preallocated log-linear histogram. Server CPU (user+sys, /proc/PID/stat)
//! and RSS (/proc/PID/status) are read around the measured window. Children
//! are stopped through their `Child` handles; a child also exits when its
//! stdin (a pipe from this process) closes.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// Largest frame any server accepts (mooring's default `max_frame`).
const MAX_FRAME: usize = 1 << 20;
/// The reply of the `stream` workload's servers: one per `ack_every` messages.
const ACK: &[u8] = b"ACK";
/// Sequence number at the front of every payload, in hex (MLLP-safe).
const SEQ_DIGITS: usize = 16;

// ---------------------------------------------------------------------------
// Framing shared by the client and the servers that do not use a library codec.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Mllp,
    Len32,
}

impl Wire {
    fn parse(s: &str) -> Option<Wire> {
        match s {
            "mllp" => Some(Wire::Mllp),
            "len32" => Some(Wire::Len32),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Wire::Mllp => "mllp",
            Wire::Len32 => "len32",
        }
    }

    fn overhead(self) -> usize {
        match self {
            Wire::Mllp => 3,
            Wire::Len32 => 4,
        }
    }

    fn header(self, len: usize, out: &mut [u8]) -> usize {
        match self {
            Wire::Mllp => {
                out[0] = 0x0B;
                1
            }
            Wire::Len32 => {
                out[..4].copy_from_slice(&(len as u32).to_be_bytes());
                4
            }
        }
    }

    fn trailer(self, out: &mut [u8]) -> usize {
        match self {
            Wire::Mllp => {
                out[..2].copy_from_slice(&[0x1C, 0x0D]);
                2
            }
            Wire::Len32 => 0,
        }
    }

    /// The whole frame of `payload` into `out`; returns its length.
    fn encode(self, payload: &[u8], out: &mut [u8]) -> usize {
        let h = self.header(payload.len(), out);
        out[h..h + payload.len()].copy_from_slice(payload);
        h + payload.len() + self.trailer(&mut out[h + payload.len()..])
    }

    /// The payload of a frame of exactly `len` payload bytes at the front of
    /// `buf`: `Ok(None)` until all of it is there, `Err` when the bytes are not that frame.
    fn expect(self, buf: &[u8], len: usize) -> Result<Option<&[u8]>, String> {
        let total = len + self.overhead();
        match self {
            Wire::Mllp => {
                if let Some(&b) = buf.first() {
                    if b != 0x0B {
                        return Err(format!("MLLP start byte {b:#04x}"));
                    }
                }
                if buf.len() < total {
                    return Ok(None);
                }
                if buf[1 + len..total] != [0x1C, 0x0D] {
                    return Err(format!("no MLLP end block after {len} bytes"));
                }
                Ok(Some(&buf[1..1 + len]))
            }
            Wire::Len32 => {
                if buf.len() >= 4 {
                    let got = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if got != len {
                        return Err(format!("length prefix {got}, expected {len}"));
                    }
                }
                if buf.len() < total {
                    return Ok(None);
                }
                Ok(Some(&buf[4..total]))
            }
        }
    }
}

/// The test payload of message `seq`: its sequence number in hex, then a filler
/// byte that depends on it.
fn fill_payload(seq: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out[..SEQ_DIGITS].iter_mut().enumerate() {
        *b = HEX[((seq >> (60 - 4 * i)) & 0xF) as usize];
    }
    out[SEQ_DIGITS..].fill(filler(seq));
}

fn filler(seq: u64) -> u8 {
    b'a' + (seq % 26) as u8
}

fn check_payload(seq: u64, p: &[u8], size: usize) -> Result<(), String> {
    if p.len() != size {
        return Err(format!(
            "message {seq}: {} bytes back, sent {size}",
            p.len()
        ));
    }
    let mut want = [0u8; SEQ_DIGITS];
    let mut tmp = [0u8; SEQ_DIGITS + 1];
    fill_payload(seq, &mut tmp);
    want.copy_from_slice(&tmp[..SEQ_DIGITS]);
    if p[..SEQ_DIGITS] != want {
        return Err(format!(
            "expected message {seq}, got {:?}",
            String::from_utf8_lossy(&p[..SEQ_DIGITS])
        ));
    }
    let f = filler(seq);
    if !p[SEQ_DIGITS..].iter().all(|&b| b == f) {
        return Err(format!("message {seq}: payload corrupted"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Latency histogram: log-linear, 32 sub-buckets per power of two (~3%), fixed size.

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }

    fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }

    fn index(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros(); // >= SUB_BITS
        let sub = (ns >> (e - SUB_BITS)) as usize & (SUB - 1);
        (e - SUB_BITS + 1) as usize * SUB + sub
    }

    /// The middle of bucket `i`, in ns.
    fn value(i: usize) -> f64 {
        if i < SUB {
            return i as f64;
        }
        let e = (i / SUB) as u32 + SUB_BITS - 1;
        let sub = (i % SUB) as u64;
        let lo = (SUB as u64 + sub) << (e - SUB_BITS);
        lo as f64 + (1u64 << (e - SUB_BITS)) as f64 / 2.0
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    /// The `q` quantile in microseconds (NaN when empty).
    fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i) / 1000.0;
            }
        }
        f64::NAN
    }
}

// ---------------------------------------------------------------------------
// /proc readings of a child.

/// CPU of a process, read two ways: /proc/PID/stat (utime + stime, all threads
/// live or gone, 10 ms resolution) and the sum of /proc/PID/task/*/schedstat
/// (ns, live threads only).
#[derive(Clone, Copy, Default)]
struct Cpu {
    ticks: f64,
    /// The kernel's part of `ticks` (stime).
    sys_ticks: f64,
    live_ns: f64,
}

fn cpu(pid: u32) -> Cpu {
    let mut live_ns = 0.0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            live_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    let (user, sys) = cpu_split(pid);
    Cpu {
        ticks: user + sys,
        sys_ticks: sys,
        live_ns,
    }
}

/// CPU seconds between two readings: the precise figure unless a thread ended
/// in between (its time then shows only in the tick count).
fn cpu_delta(a: Cpu, b: Cpu) -> f64 {
    let coarse = b.ticks - a.ticks;
    let fine = (b.live_ns - a.live_ns) / 1e9;
    if fine >= 0.0 && (coarse - fine).abs() <= 0.025 {
        fine
    } else {
        coarse
    }
}

/// The kernel's share of the CPU between two readings (tick resolution).
fn sys_share(a: Cpu, b: Cpu) -> f64 {
    let total = b.ticks - a.ticks;
    if total > 0.0 {
        (b.sys_ticks - a.sys_ticks) / total
    } else {
        f64::NAN
    }
}

/// User and system CPU seconds of process `pid` (all its threads, live or gone).
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), here 11 and 12; USER_HZ is 100.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// A `kB` field of /proc/PID/status (VmRSS, Threads) as a number.
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Servers (child processes).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mooring,
    Floor8k,
    Floor64k,
    Tokio,
    Threads,
}

const KINDS: [Kind; 5] = [
    Kind::Mooring,
    Kind::Floor8k,
    Kind::Floor64k,
    Kind::Tokio,
    Kind::Threads,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mooring => "mooring",
            Kind::Floor8k => "floor8k",
            Kind::Floor64k => "floor64k",
            Kind::Tokio => "tokio",
            Kind::Threads => "threads",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == s)
    }

    fn is_floor(self) -> bool {
        matches!(self, Kind::Floor8k | Kind::Floor64k)
    }
}

/// What a server does with the messages it gets.
#[derive(Clone, Copy, Debug)]
struct Serve {
    kind: Kind,
    wire: Wire,
    /// 1: echo every message. N: reply `ACK` after every N messages.
    ack_every: u64,
    /// Wire size of one request frame (the floor counts bytes instead of parsing).
    unit: usize,
    /// Close each connection once its first reply is written (close-per-message).
    close_after_reply: bool,
    /// Connections served at once.
    max_links: usize,
}

impl Serve {
    fn to_args(self) -> Vec<String> {
        vec![
            "--serve".into(),
            self.kind.name().into(),
            self.wire.name().into(),
            self.ack_every.to_string(),
            self.unit.to_string(),
            u8::from(self.close_after_reply).to_string(),
            self.max_links.to_string(),
        ]
    }

    fn from_args(a: &[String]) -> Option<Serve> {
        Some(Serve {
            kind: Kind::parse(a.first()?)?,
            wire: Wire::parse(a.get(1)?)?,
            ack_every: a.get(2)?.parse().ok()?,
            unit: a.get(3)?.parse().ok()?,
            close_after_reply: a.get(4)? == "1",
            max_links: a.get(5)?.parse().ok()?,
        })
    }
}

/// Messages the mooring server received (see `--server-wrap`).
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn serve_main(args: &[String]) -> ExitCode {
    let Some(s) = Serve::from_args(args) else {
        eprintln!("bench: bad --serve arguments: {args:?}");
        return ExitCode::from(2);
    };
    // The parent holds our stdin: when it goes away, so do we.
    let kind = s.kind;
    std::thread::spawn(move || {
        let mut b = [0u8; 16];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut b) {
                Ok(0) | Err(_) => {
                    if kind == Kind::Mooring {
                        // For per-message figures from a profiler's totals.
                        let n = SERVED.load(std::sync::atomic::Ordering::Relaxed);
                        eprintln!("bench: mooring server served {n} messages");
                    }
                    std::process::exit(0)
                }
                Ok(_) => {}
            }
        }
    });
    let res = match s.kind {
        Kind::Mooring => serve_mooring(s),
        Kind::Floor8k => serve_floor(s, 8 * 1024),
        Kind::Floor64k => serve_floor(s, 64 * 1024),
        Kind::Tokio => peers::serve_tokio(s),
        Kind::Threads => serve_threads(s),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {} server: {e}", s.kind.name());
            ExitCode::from(1)
        }
    }
}

fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready {addr}");
    let _ = out.flush();
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// (a) mooring: the [`mooring::Server`] a user would write.
fn serve_mooring(s: Serve) -> io::Result<()> {
    use mooring::{Event, Framing, ListenConfig, NodeConfig, Server, ServerPolicy};
    let node = NodeConfig {
        max_links: s.max_links + 64,
        framing: match s.wire {
            Wire::Mllp => Framing::Mllp,
            Wire::Len32 => Framing::Len32,
        },
        ..NodeConfig::default()
    };
    let listen = ListenConfig {
        max_connections: s.max_links + 64,
        policy: if s.close_after_reply {
            ServerPolicy::CloseAfterReply
        } else {
            ServerPolicy::KeepOpen
        },
        ..ListenConfig::default()
    };
    let mut server = Server::bind(loopback(), node, listen).map_err(io::Error::other)?;
    let mut counts = vec![0u64; s.max_links + 64];
    announce(server.local_addr());
    loop {
        // No timeout, as every peer waits: an epoll_wait with one arms a kernel
        // timer each time the server sleeps (one A/B run, rr1 mllp: 28 vs 32
        // s/M msgs; no difference seen on len32).
        server.serve(None, |ev, reply| match *ev {
            Event::Connected { link, .. } => counts[link.slot() as usize] = 0,
            Event::Message { link, payload } => {
                SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if s.ack_every == 1 {
                    // One copy, receive block to transmit block (Reply::echo).
                    let _ = payload;
                    reply.echo();
                } else {
                    let c = &mut counts[link.slot() as usize];
                    *c += 1;
                    if c.is_multiple_of(s.ack_every) {
                        reply.set(ACK);
                    }
                }
            }
            _ => {}
        })?;
    }
}

/// (b) the floor: reads as much as its buffer holds and writes it straight back;
/// never parses a frame. In `ack_every` mode it counts bytes to know when to ack.
fn serve_floor(s: Serve, buf_size: usize) -> io::Result<()> {
    struct Conn {
        sock: TcpStream,
        buf: Vec<u8>,
        /// Bytes of `buf` still to be written back (echo mode).
        pend: (usize, usize),
        /// Acks still to be written (ack mode).
        out: Vec<u8>,
        received: u64,
        acked: u64,
        echoed: u64,
        readable: bool,
    }
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(loopback())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut ack_frame = vec![0u8; ACK.len() + s.wire.overhead()];
    s.wire.encode(ACK, &mut ack_frame);
    let ack_bytes = s.unit as u64 * s.ack_every;
    let mut events = Events::with_capacity(1024);
    announce(listener.local_addr()?);

    /// Writes what is pending; true when nothing is left.
    fn flush(c: &mut Conn) -> io::Result<bool> {
        while c.pend.0 < c.pend.1 {
            match c.sock.write(&c.buf[c.pend.0..c.pend.1]) {
                Ok(n) => {
                    c.pend.0 += n;
                    c.echoed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while !c.out.is_empty() {
            match c.sock.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Echo until the socket is drained or the peer stops reading. Err: close.
    fn drive(c: &mut Conn, s: &Serve, ack_frame: &[u8], ack_bytes: u64) -> io::Result<()> {
        loop {
            if !flush(c)? {
                return Ok(()); // wait for WRITABLE before reading more
            }
            if s.close_after_reply && c.echoed >= s.unit as u64 {
                return Err(io::ErrorKind::UnexpectedEof.into()); // done: close
            }
            if !c.readable {
                return Ok(());
            }
            match c.sock.read(&mut c.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    // A short read drained the socket; the next byte raises a new edge.
                    if n < c.buf.len() {
                        c.readable = false;
                    }
                    if s.ack_every == 1 {
                        c.pend = (0, n);
                    } else {
                        c.received += n as u64;
                        while c.acked < c.received / ack_bytes {
                            c.acked += 1;
                            c.out.extend_from_slice(ack_frame);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    loop {
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            sock.set_nodelay(true)?;
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut sock,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                sock,
                                buf: vec![0u8; buf_size],
                                pend: (0, 0),
                                out: Vec::new(),
                                received: 0,
                                acked: 0,
                                echoed: 0,
                                readable: true,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if drive(c, &s, &ack_frame, ack_bytes).is_err() {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(i);
            }
        }
    }
}

/// (d) std threads: one per connection, BufReader/BufWriter, flush when the
/// reader has nothing buffered (replies to a burst go out in one write).
fn serve_threads(s: Serve) -> io::Result<()> {
    let listener = StdListener::bind(loopback())?;
    announce(listener.local_addr()?);
    for sock in listener.incoming() {
        let sock = match sock {
            Ok(sock) => sock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        std::thread::spawn(move || {
            let _ = thread_conn(sock, s);
        });
    }
    Ok(())
}

fn thread_conn(sock: StdStream, s: Serve) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mut r = BufReader::new(sock.try_clone()?);
    let mut w = BufWriter::new(sock);
    let mut frame = Vec::new();
    let mut count = 0u64;
    loop {
        let payload: &[u8] = match s.wire {
            Wire::Len32 => {
                let mut h = [0u8; 4];
                r.read_exact(&mut h)?;
                let len = u32::from_be_bytes(h) as usize;
                if len > MAX_FRAME {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                frame.resize(len, 0);
                r.read_exact(&mut frame)?;
                &frame
            }
            Wire::Mllp => {
                frame.clear();
                (&mut r)
                    .take(MAX_FRAME as u64 + 2)
                    .read_until(0x1C, &mut frame)?;
                let mut cr = [0u8; 1];
                r.read_exact(&mut cr)?;
                if frame.len() < 2
                    || frame[0] != 0x0B
                    || frame.last() != Some(&0x1C)
                    || cr[0] != 0x0D
                {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                &frame[1..frame.len() - 1]
            }
        };
        count += 1;
        let reply = if s.ack_every == 1 {
            Some(payload)
        } else if count.is_multiple_of(s.ack_every) {
            Some(ACK)
        } else {
            None
        };
        if let Some(p) = reply {
            let mut h = [0u8; 4];
            let n = s.wire.header(p.len(), &mut h);
            w.write_all(&h[..n])?;
            w.write_all(p)?;
            let mut t = [0u8; 2];
            let n = s.wire.trailer(&mut t);
            w.write_all(&t[..n])?;
        }
        if s.close_after_reply {
            return w.flush();
        }
        if r.buffer().is_empty() {
            w.flush()?;
        }
    }
}

/// (c) tokio current_thread + tokio-util codecs.
mod peers {
    use super::{loopback, Serve, Wire, ACK, MAX_FRAME};
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use futures_util::{future, StreamExt, TryStreamExt};
    use std::io;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec};

    /// A small MLLP codec: `0x0B payload 0x1C 0x0D`, resuming its scan.
    #[derive(Default)]
    pub struct MllpCodec {
        scan: usize,
    }

    impl Decoder for MllpCodec {
        type Item = BytesMut;
        type Error = io::Error;

        fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
            if src.is_empty() {
                return Ok(None);
            }
            if src[0] != 0x0B {
                match src.iter().position(|&b| b == 0x0B) {
                    Some(i) => src.advance(i),
                    None => {
                        src.clear();
                        return Ok(None);
                    }
                }
                self.scan = 0;
            }
            let from = self.scan.max(1);
            match src[from..].iter().position(|&b| b == 0x1C) {
                Some(i) => {
                    let end = from + i;
                    if end + 1 >= src.len() {
                        self.scan = end;
                        return Ok(None);
                    }
                    if src[end + 1] != 0x0D {
                        return Err(io::ErrorKind::InvalidData.into());
                    }
                    let mut frame = src.split_to(end + 2);
                    self.scan = 0;
                    frame.advance(1);
                    frame.truncate(end - 1);
                    Ok(Some(frame))
                }
                None => {
                    if src.len() > MAX_FRAME + 3 {
                        return Err(io::ErrorKind::InvalidData.into());
                    }
                    self.scan = src.len();
                    Ok(None)
                }
            }
        }
    }

    impl Encoder<Bytes> for MllpCodec {
        type Error = io::Error;

        fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
            dst.reserve(item.len() + 3);
            dst.put_u8(0x0B);
            dst.put_slice(&item);
            dst.put_slice(&[0x1C, 0x0D]);
            Ok(())
        }
    }

    fn len32() -> LengthDelimitedCodec {
        LengthDelimitedCodec::builder()
            .max_frame_length(MAX_FRAME)
            .new_codec()
    }

    async fn conn<C>(r: OwnedReadHalf, w: OwnedWriteHalf, rc: C, wc: C, s: Serve) -> io::Result<()>
    where
        C: Decoder<Item = BytesMut, Error = io::Error> + Encoder<Bytes, Error = io::Error>,
    {
        let mut count = 0u64;
        let ack_every = s.ack_every;
        let replies = FramedRead::new(r, rc).try_filter_map(move |frame| {
            count += 1;
            let reply = if ack_every == 1 {
                Some(frame.freeze())
            } else if count.is_multiple_of(ack_every) {
                Some(Bytes::from_static(ACK))
            } else {
                None
            };
            future::ready(Ok(reply))
        });
        let writer = FramedWrite::new(w, wc);
        if s.close_after_reply {
            replies.take(1).forward(writer).await
        } else {
            replies.forward(writer).await
        }
    }

    pub fn serve_tokio(s: Serve) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(loopback()).await?;
            super::announce(listener.local_addr()?);
            loop {
                let (sock, _) = listener.accept().await?;
                sock.set_nodelay(true)?;
                let (r, w) = sock.into_split();
                tokio::spawn(async move {
                    let _ = match s.wire {
                        Wire::Len32 => conn(r, w, len32(), len32(), s).await,
                        Wire::Mllp => {
                            conn(r, w, MllpCodec::default(), MllpCodec::default(), s).await
                        }
                    };
                });
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Starting and stopping servers.

struct Running {
    serve: Serve,
    child: Child,
    addr: SocketAddr,
    /// Runs under `--server-wrap`: let it exit by itself (a profiler writes
    /// its output then).
    wrapped: bool,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Its stdin closing makes the server exit.
        drop(self.child.stdin.take());
        if !self.wrapped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn start(serve: Serve, pin: bool, wrap: Option<&str>) -> Result<Running, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut argv: Vec<String> = Vec::new();
    if pin {
        argv.extend(["taskset".into(), "-c".into(), "0".into()]);
    }
    argv.extend(wrap.unwrap_or("").split_whitespace().map(String::from));
    argv.push(exe.to_string_lossy().into_owned());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let mut child = cmd
        .args(serve.to_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {} server: {e}", serve.kind.name()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    let addr = line
        .strip_prefix("ready ")
        .and_then(|a| a.trim().parse().ok());
    match addr {
        Some(addr) => Ok(Running {
            serve,
            child,
            addr,
            wrapped: wrap.is_some(),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "{} server did not start (said {line:?})",
                serve.kind.name()
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// The load client.

#[derive(Clone, Copy, Debug)]
struct Workload {
    name: &'static str,
    about: &'static str,
    links: usize,
    /// Messages in flight per link.
    depth: usize,
    size: usize,
    ack_every: u64,
    /// Connection per message (count-bound) instead of a timed closed loop.
    per_message: bool,
}

fn workloads(size: usize) -> Vec<Workload> {
    let w = |name, about, links, depth, size, ack_every| Workload {
        name,
        about,
        links,
        depth,
        size,
        ack_every,
        per_message: false,
    };
    vec![
        w("rr1", "1 link, 1 in flight", 1, 1, size, 1),
        w("depth64", "1 link, 64 in flight", 1, 64, size, 1),
        w("links64", "64 links, 8 in flight each", 64, 8, size, 1),
        w(
            "stream",
            "1 link, one-way stream, 1 ack per 64 messages, 512 unacked",
            1,
            512,
            size,
            64,
        ),
        w(
            "big16k",
            "1 link, 16 KiB frames, 8 in flight",
            1,
            8,
            16 * 1024,
            1,
        ),
        w(
            "big128k",
            "1 link, 128 KiB frames (an HL7 message carrying a document), 8 in flight",
            1,
            8,
            128 * 1024,
            1,
        ),
        Workload {
            per_message: true,
            ..w(
                "conn",
                "connection per message (server closes after its reply), 1 at a time",
                1,
                1,
                size,
                1,
            )
        },
    ]
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    msgs: u64,
    secs: f64,
    cpu: f64,
    /// The kernel's share of `cpu`.
    sys: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    rss_kb: u64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    fn cpu_per_m(&self) -> f64 {
        self.cpu * 1e6 / self.msgs.max(1) as f64
    }
}

struct ClientConn {
    sock: TcpStream,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    tx: Vec<u8>,
    tx_start: usize,
    tx_end: usize,
    next_send: u64,
    next_recv: u64,
    in_flight: usize,
    /// Send times of the messages whose reply is awaited (the last of each ack unit).
    stamps: Vec<Instant>,
    stamp_head: usize,
    stamp_len: usize,
    readable: bool,
    writable: bool,
}

struct Load<'a> {
    w: Workload,
    wire: Wire,
    frame_len: usize,
    reply_payload: usize,
    reply_len: usize,
    sending: bool,
    measuring: bool,
    replied: u64,
    hist: &'a mut Histogram,
    scratch: Vec<u8>,
}

impl Load<'_> {
    /// Reads, checks replies, tops the window up and writes, until the socket is
    /// drained or blocked.
    fn drive(&mut self, c: &mut ClientConn, now: Instant) -> Result<(), String> {
        loop {
            if c.readable {
                if c.rx_end == c.rx.len() {
                    return Err("client receive buffer full".into());
                }
                match c.sock.read(&mut c.rx[c.rx_end..]) {
                    Ok(0) => return Err("server closed the link".into()),
                    Ok(n) => {
                        if n < c.rx.len() - c.rx_end {
                            c.readable = false;
                        }
                        c.rx_end += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
                self.take_replies(c, now)?;
            }
            if self.sending {
                self.top_up(c, now);
            }
            if c.writable && c.tx_start < c.tx_end {
                match c.sock.write(&c.tx[c.tx_start..c.tx_end]) {
                    Ok(n) => {
                        c.tx_start += n;
                        if c.tx_start == c.tx_end {
                            c.tx_start = 0;
                            c.tx_end = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if !c.readable {
                return Ok(());
            }
        }
    }

    fn take_replies(&mut self, c: &mut ClientConn, now: Instant) -> Result<(), String> {
        loop {
            let buf = &c.rx[c.rx_start..c.rx_end];
            let Some(p) = self.wire.expect(buf, self.reply_payload)? else {
                break;
            };
            if self.w.ack_every == 1 {
                check_payload(c.next_recv, p, self.w.size)?;
            } else if p != ACK {
                return Err(format!("expected an ACK, got {} bytes", p.len()));
            }
            if c.in_flight < self.w.ack_every as usize || c.stamp_len == 0 {
                return Err("a reply nobody asked for".into());
            }
            c.next_recv += self.w.ack_every;
            c.in_flight -= self.w.ack_every as usize;
            let sent = c.stamps[c.stamp_head];
            c.stamp_head = (c.stamp_head + 1) % c.stamps.len();
            c.stamp_len -= 1;
            c.rx_start += self.reply_len;
            if self.measuring {
                self.hist.record(now.saturating_duration_since(sent));
                self.replied += self.w.ack_every;
            }
        }
        if c.rx_start == c.rx_end {
            c.rx_start = 0;
            c.rx_end = 0;
        } else if c.rx_start > 0 && c.rx.len() - c.rx_end < self.reply_len {
            c.rx.copy_within(c.rx_start..c.rx_end, 0);
            c.rx_end -= c.rx_start;
            c.rx_start = 0;
        }
        Ok(())
    }

    fn top_up(&mut self, c: &mut ClientConn, now: Instant) {
        while c.in_flight < self.w.depth {
            if c.tx.len() - c.tx_end < self.frame_len {
                if c.tx_start == 0 {
                    return;
                }
                c.tx.copy_within(c.tx_start..c.tx_end, 0);
                c.tx_end -= c.tx_start;
                c.tx_start = 0;
                continue;
            }
            fill_payload(c.next_send, &mut self.scratch);
            let n = self.wire.encode(&self.scratch, &mut c.tx[c.tx_end..]);
            c.tx_end += n;
            c.in_flight += 1;
            c.next_send += 1;
            if c.next_send.is_multiple_of(self.w.ack_every) {
                let at = (c.stamp_head + c.stamp_len) % c.stamps.len();
                c.stamps[at] = now;
                c.stamp_len += 1;
            }
        }
    }
}

/// One timed closed-loop run against `srv`.
fn run_load(
    srv: &Running,
    w: Workload,
    warmup: Duration,
    secs: Duration,
    hist: &mut Histogram,
) -> Result<Sample, String> {
    let wire = srv.serve.wire;
    let frame_len = w.size + wire.overhead();
    let reply_payload = if w.ack_every == 1 { w.size } else { ACK.len() };
    let reply_len = reply_payload + wire.overhead();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(w.links);
    for i in 0..w.links {
        let s = StdStream::connect_timeout(&srv.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut sock = TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        let units = w.depth / w.ack_every as usize + 1;
        conns.push(ClientConn {
            sock,
            rx: vec![0u8; (2 * w.depth * reply_len).max(64 * 1024)],
            rx_start: 0,
            rx_end: 0,
            tx: vec![0u8; (w.depth * frame_len).max(64 * 1024)],
            tx_start: 0,
            tx_end: 0,
            next_send: 0,
            next_recv: 0,
            in_flight: 0,
            stamps: vec![Instant::now(); units],
            stamp_head: 0,
            stamp_len: 0,
            readable: false,
            writable: true,
        });
    }
    hist.clear();
    let mut load = Load {
        w,
        wire,
        frame_len,
        reply_payload,
        reply_len,
        sending: true,
        measuring: false,
        replied: 0,
        hist,
        scratch: vec![0u8; w.size],
    };
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    for c in conns.iter_mut() {
        load.drive(c, start)?;
    }
    let t_measure = start + warmup;
    let t_end = t_measure + secs;
    let mut t0 = start;
    let mut cpu0 = Cpu::default();
    let mut sample = None;
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        if !load.measuring && sample.is_none() && now >= t_measure {
            load.measuring = true;
            load.replied = 0;
            load.hist.clear();
            cpu0 = cpu(srv.pid());
            t0 = now;
        }
        if load.measuring && now >= t_end {
            let cpu1 = cpu(srv.pid());
            load.measuring = false;
            load.sending = false;
            sample = Some(Sample {
                msgs: load.replied,
                secs: now.duration_since(t0).as_secs_f64(),
                cpu: cpu_delta(cpu0, cpu1),
                sys: sys_share(cpu0, cpu1),
                p50: load.hist.quantile_us(0.5),
                p99: load.hist.quantile_us(0.99),
                p999: load.hist.quantile_us(0.999),
                rss_kb: status_field(srv.pid(), "VmRSS:"),
            });
            drain_until = Some(now + Duration::from_secs(5));
        }
        if let Some(limit) = drain_until {
            let outstanding: usize = conns.iter().map(|c| c.in_flight).sum();
            if outstanding == 0 {
                break;
            }
            if now >= limit {
                return Err(format!("{outstanding} replies never came back"));
            }
        }
        let next = if sample.is_none() {
            if load.measuring {
                t_end
            } else {
                t_measure
            }
        } else {
            now + Duration::from_millis(100)
        };
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait))
            .map_err(|e| format!("poll: {e}"))?;
        let now = Instant::now();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if ev.is_writable() {
                c.writable = true;
            }
            load.drive(c, now)?;
        }
    }
    let s = sample.ok_or("no sample")?;
    let sent: u64 = conns.iter().map(|c| c.next_send).sum();
    let got: u64 = conns.iter().map(|c| c.next_recv).sum();
    if sent != got {
        return Err(format!("sent {sent} messages, {got} acknowledged"));
    }
    if s.msgs == 0 {
        return Err("no message completed".into());
    }
    Ok(s)
}

/// Connection per message: connect, send, read the reply, see the server close.
fn run_per_message(
    srv: &Running,
    w: Workload,
    count: usize,
    hist: &mut Histogram,
) -> Result<Sample, String> {
    let wire = srv.serve.wire;
    let mut payload = vec![0u8; w.size];
    let mut frame = vec![0u8; w.size + wire.overhead()];
    let mut reply = vec![0u8; w.size + wire.overhead()];
    let warm = count / 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut t0 = Instant::now();
    let mut cpu0 = Cpu::default();
    for i in 0..warm + count {
        if i == warm {
            hist.clear();
            cpu0 = cpu(srv.pid());
            t0 = Instant::now();
        }
        if Instant::now() > deadline {
            return Err(format!("only {i} connections in 60 s"));
        }
        let t = Instant::now();
        let mut s = StdStream::connect_timeout(&srv.addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {i}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        fill_payload(i as u64, &mut payload);
        let n = wire.encode(&payload, &mut frame);
        s.write_all(&frame[..n])
            .map_err(|e| format!("write {i}: {e}"))?;
        s.read_exact(&mut reply)
            .map_err(|e| format!("read {i}: {e}"))?;
        let p = wire.expect(&reply, w.size)?.ok_or("short reply")?;
        check_payload(i as u64, p, w.size)?;
        hist.record(t.elapsed());
        let mut one = [0u8; 1];
        match s.read(&mut one) {
            Ok(0) => {}
            Ok(_) => return Err("bytes after the reply".into()),
            Err(e) => return Err(format!("server did not close: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu(srv.pid());
    Ok(Sample {
        msgs: count as u64,
        secs,
        cpu: cpu_delta(cpu0, cpu1),
        sys: sys_share(cpu0, cpu1),
        p50: hist.quantile_us(0.5),
        p99: hist.quantile_us(0.99),
        p999: hist.quantile_us(0.999),
        rss_kb: status_field(srv.pid(), "VmRSS:"),
    })
}

// ---------------------------------------------------------------------------
// Options, the run, the report.

struct Opts {
    quick: bool,
    workloads: Option<Vec<String>>,
    wires: Vec<Wire>,
    kinds: Vec<Kind>,
    secs: f64,
    reps: usize,
    size: usize,
    conn_count: usize,
    idle: Option<usize>,
    server_wrap: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        workloads: None,
        wires: vec![Wire::Mllp, Wire::Len32],
        kinds: KINDS.to_vec(),
        secs: 2.0,
        reps: 3,
        size: 256,
        conn_count: 1000,
        idle: None,
        server_wrap: None,
    };
    let mut secs = None;
    let mut reps = None;
    let mut conn_count = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--workload" => o.workloads = Some(val()?.split(',').map(String::from).collect()),
            "--framing" => {
                let v = val()?;
                o.wires = match v.as_str() {
                    "both" => vec![Wire::Mllp, Wire::Len32],
                    f => vec![Wire::parse(f).ok_or(format!("--framing {f}?"))?],
                }
            }
            "--servers" => {
                o.kinds = val()?
                    .split(',')
                    .map(|k| Kind::parse(k).ok_or(format!("--servers: unknown {k}")))
                    .collect::<Result<_, _>>()?
            }
            "--secs" => secs = Some(num(val()?)?),
            "--reps" => reps = Some(num(val()?)? as usize),
            "--size" => o.size = num(val()?)? as usize,
            "--conn-count" => conn_count = Some(num(val()?)? as usize),
            "--idle" => o.idle = Some(num(val()?)? as usize),
            "--server-wrap" => o.server_wrap = Some(val()?),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.quick {
        o.secs = 0.25;
        o.reps = 1;
        o.conn_count = 100;
    }
    o.secs = secs.unwrap_or(o.secs).max(0.05);
    o.reps = reps.unwrap_or(o.reps).max(1);
    o.conn_count = conn_count.unwrap_or(o.conn_count).clamp(10, 10_000);
    if o.size < SEQ_DIGITS + 1 {
        return Err(format!("--size must be at least {}", SEQ_DIGITS + 1));
    }
    Ok(o)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    kind: Kind,
    rate: f64,
    rate_min: f64,
    rate_max: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu: f64,
    cpu_min: f64,
    cpu_max: f64,
    rss_kb: u64,
}

fn summarize(kind: Kind, samples: &[Sample]) -> Row {
    let col = |f: &dyn Fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let rates = col(&Sample::rate);
    let cpus = col(&Sample::cpu_per_m);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Row {
        kind,
        rate: median(&mut rates.clone()),
        rate_min: min(&rates),
        rate_max: max(&rates),
        p50: median(&mut col(&|s| s.p50)),
        p99: median(&mut col(&|s| s.p99)),
        p999: median(&mut col(&|s| s.p999)),
        cpu: median(&mut cpus.clone()),
        cpu_min: min(&cpus),
        cpu_max: max(&cpus),
        rss_kb: samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_us(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

fn table(w: &Workload, wire: Wire, rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let floor_rate = rows
        .iter()
        .filter(|r| r.kind.is_floor())
        .map(|r| r.rate)
        .reduce(f64::max);
    let floor_cpu = rows
        .iter()
        .filter(|r| r.kind.is_floor())
        .map(|r| r.cpu)
        .reduce(f64::min);
    let tokio = rows.iter().find(|r| r.kind == Kind::Tokio);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### {} {} ({}, {} B payload)\n",
        w.name,
        wire.name(),
        w.about,
        w.size
    );
    let _ = writeln!(
        t,
        "| server | msgs/s (min-max) | x floor | x tokio | p50 us | p99 us | p999 us | CPU s/M msgs (min-max) | x floor | x tokio | RSS KiB |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let lat = w.ack_every == 1;
        let _ = writeln!(
            t,
            "| {} | {} ({}-{}) | {} | {} | {} | {} | {} | {:.2} ({:.2}-{:.2}) | {} | {} | {} |",
            r.kind.name(),
            fmt_rate(r.rate),
            fmt_rate(r.rate_min),
            fmt_rate(r.rate_max),
            ratio(r.rate, floor_rate),
            ratio(r.rate, tokio.map(|t| t.rate)),
            if lat { fmt_us(r.p50) } else { "-".into() },
            if lat { fmt_us(r.p99) } else { "-".into() },
            if lat { fmt_us(r.p999) } else { "-".into() },
            r.cpu,
            r.cpu_min,
            r.cpu_max,
            ratio(r.cpu, floor_cpu),
            ratio(r.cpu, tokio.map(|t| t.cpu)),
            r.rss_kb
        );
    }
    t
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |x| x.1.trim())
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{n} CPUs, {model}, Linux {}", kernel.trim())
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve_main(&args[1..]);
    }
    let o = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("usage: cargo run --release --example bench --features bench-peers -- [--quick] [--workload rr1,depth64,links64,stream,big16k,big128k,conn] [--framing mllp|len32|both] [--servers mooring,floor8k,floor64k,tokio,threads] [--secs S] [--reps N] [--size B] [--conn-count N] [--idle N] [--server-wrap CMD]");
            return ExitCode::from(2);
        }
    };
    let machine = machine();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cpus >= 2 && have_taskset();
    if pin {
        // The client on CPU 1, every server on CPU 0.
        let _ = Command::new("taskset")
            .args(["-cp", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
    println!("# mooring bench");
    println!();
    println!(
        "command: cargo run --release --example bench --features bench-peers -- {}",
        args.join(" ")
    );
    println!("machine: {machine}");
    println!(
        "pinning: {}",
        if pin {
            "servers on CPU 0, client on CPU 1 (taskset)"
        } else {
            "none (needs 2 CPUs and taskset)"
        }
    );
    let res = match o.idle {
        Some(n) => run_idle(&o, n, pin),
        None => run_all(&o, pin),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_all(o: &Opts, pin: bool) -> Result<(), String> {
    let all = workloads(o.size);
    let chosen: Vec<Workload> = match &o.workloads {
        None => all,
        Some(names) => {
            for n in names {
                if !all.iter().any(|w| w.name == n) {
                    return Err(format!("unknown workload {n}"));
                }
            }
            all.into_iter()
                .filter(|w| names.iter().any(|n| n == w.name))
                .collect()
        }
    };
    println!(
        "runs: {} reps of {} s each (after {} ms warm-up), servers interleaved; conn: {} connections per run",
        o.reps,
        o.secs,
        warmup(o).as_millis(),
        o.conn_count
    );
    println!("medians over the reps, spread as min-max; x floor: against the better of floor8k/floor64k; CPU = server user+sys");
    let mut hist = Histogram::new();
    let mut report = String::new();
    let mut failures = 0;
    for w in &chosen {
        for &wire in &o.wires {
            let servers: Vec<Running> = o
                .kinds
                .iter()
                .map(|&kind| {
                    start(
                        Serve {
                            kind,
                            wire,
                            ack_every: w.ack_every,
                            unit: w.size + wire.overhead(),
                            close_after_reply: w.per_message,
                            max_links: 256,
                        },
                        pin,
                        o.server_wrap.as_deref(),
                    )
                })
                .collect::<Result<_, _>>()?;
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
            for rep in 0..o.reps {
                for k in 0..servers.len() {
                    // Rotate the order each rep so no server always runs first.
                    let i = (k + rep) % servers.len();
                    let srv = &servers[i];
                    let res = if w.per_message {
                        run_per_message(srv, *w, o.conn_count, &mut hist)
                    } else {
                        run_load(
                            srv,
                            *w,
                            warmup(o),
                            Duration::from_secs_f64(o.secs),
                            &mut hist,
                        )
                    };
                    match res {
                        Ok(s) => {
                            eprintln!(
                                "  {:8} {:5} {:9} rep {}: {:>8} msgs/s  p50 {:>6} us  p99 {:>6} us  cpu {:.2} s/M  sys {:.0}%",
                                w.name,
                                wire.name(),
                                srv.serve.kind.name(),
                                rep + 1,
                                fmt_rate(s.rate()),
                                fmt_us(s.p50),
                                fmt_us(s.p99),
                                s.cpu_per_m(),
                                s.sys * 100.0
                            );
                            samples[i].push(s);
                        }
                        Err(e) => {
                            failures += 1;
                            eprintln!(
                                "  {} {} {} rep {}: FAILED: {e}",
                                w.name,
                                wire.name(),
                                srv.serve.kind.name(),
                                rep + 1
                            );
                        }
                    }
                }
            }
            let rows: Vec<Row> = servers
                .iter()
                .zip(&samples)
                .filter(|(_, s)| !s.is_empty())
                .map(|(srv, s)| summarize(srv.serve.kind, s))
                .collect();
            let t = table(w, wire, &rows);
            print!("{t}");
            let _ = io::stdout().flush();
            report.push_str(&t);
            drop(servers);
        }
    }
    if chosen.iter().any(|w| w.per_message) {
        println!("\nconn: the server closes first, so TIME_WAIT (60 s) lands on its side; one client address to one server port has 28,232 ephemeral ports (32768-60999), so a sustained rate above ~470 connections/s (~16,000 per 2 minutes per seed 000, with other traffic) runs out of 4-tuples on a real network. Compare with rr1 (keep-open).");
    }
    if failures > 0 {
        return Err(format!("{failures} runs failed (see above)"));
    }
    Ok(())
}

fn warmup(o: &Opts) -> Duration {
    Duration::from_secs_f64((o.secs / 5.0).clamp(0.05, 0.5))
}

/// `n` idle links to each server: what they cost in RSS.
fn run_idle(o: &Opts, n: usize, pin: bool) -> Result<(), String> {
    let wire = o.wires[0];
    println!("idle: {n} links to each server, one {}-byte {} message echoed on each, then 1 s idle; RSS from /proc/PID/status", o.size, wire.name());
    let mut rows = Vec::new();
    let mut payload = vec![0u8; o.size];
    let mut frame = vec![0u8; o.size + wire.overhead()];
    let mut reply = vec![0u8; o.size + wire.overhead()];
    for &kind in &o.kinds {
        let srv = start(
            Serve {
                kind,
                wire,
                ack_every: 1,
                unit: o.size + wire.overhead(),
                close_after_reply: false,
                max_links: n,
            },
            pin,
            o.server_wrap.as_deref(),
        )?;
        std::thread::sleep(Duration::from_millis(200));
        let before = status_field(srv.pid(), "VmRSS:");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut links = Vec::with_capacity(n);
        let mut err = None;
        for i in 0..n {
            if Instant::now() > deadline {
                err = Some(format!("only {i} links in 120 s"));
                break;
            }
            match StdStream::connect_timeout(&srv.addr, Duration::from_secs(5)) {
                Ok(s) => links.push(s),
                Err(e) => {
                    err = Some(format!("connect {i}: {e}"));
                    break;
                }
            }
        }
        for (i, s) in links.iter_mut().enumerate() {
            fill_payload(i as u64, &mut payload);
            let len = wire.encode(&payload, &mut frame);
            if let Err(e) = s.write_all(&frame[..len]) {
                err = Some(format!("write {i}: {e}"));
                break;
            }
        }
        let mut ok = 0;
        for (i, s) in links.iter_mut().enumerate() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let res = s
                .read_exact(&mut reply)
                .map_err(|e| format!("read {i}: {e}"))
                .and_then(|()| {
                    wire.expect(&reply, o.size)?
                        .ok_or("short".into())
                        .map(|p| p.to_vec())
                })
                .and_then(|p| check_payload(i as u64, &p, o.size));
            match res {
                Ok(()) => ok += 1,
                Err(e) => {
                    err.get_or_insert(e);
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let after = status_field(srv.pid(), "VmRSS:");
        let threads = status_field(srv.pid(), "Threads:");
        if let Some(e) = &err {
            eprintln!("  {}: {e}", kind.name());
        }
        rows.push((kind, ok, before, after, threads, err.is_some()));
        drop(links);
        drop(srv);
    }
    // Every server is this same executable: the smallest RSS before links is the bare process.
    let bare = rows.iter().map(|r| r.2).min().unwrap_or(0);
    println!();
    println!("| server | links | RSS before KiB | RSS after KiB | per link: after - before | per link: after - bare process | threads |");
    println!("|---|---|---|---|---|---|---|");
    for (kind, ok, before, after, threads, failed) in rows {
        let per = |base: u64| after.saturating_sub(base) as f64 * 1024.0 / ok.max(1) as f64;
        println!(
            "| {}{} | {ok} | {before} | {after} | {:.0} B | {:.0} B | {threads} |",
            kind.name(),
            if failed { " (FAILED)" } else { "" },
            per(before),
            per(bare)
        );
    }
    println!("\nbefore = listening, nothing connected (mooring's slot table for {n} links is built then); bare process = the smallest 'before' ({bare} KiB), so the last per-link column charges each server for what it set up in advance. threads includes one stdin watchdog thread per server process.");
    Ok(())
}
