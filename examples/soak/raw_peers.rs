//! The raw MLLP peers of the soak, each a thread with blocking std sockets and
//! timeouts on every read and write, each loop bounded by the run:
//! well-behaved clients (request/reply, every reply checked), reconnecting
//! clients, garbage senders, slow peers (a frame trickled 1 byte/s) and peers
//! that pipeline requests and never read.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mooring::hl7;
use mooring::internals::rng::XorShift64;

use crate::stats::Histogram;
use crate::Run;

/// Bound on a connect over loopback.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A reply must come within this (loopback answers in microseconds; this only
/// matters when something is wrong).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame a reader buffers (ACKs are small).
const MAX_REPLY: usize = 64 * 1024;
/// Pause between a reconnecting client's connections.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Pause between a garbage sender's connections.
const GARBAGE_PAUSE: Duration = Duration::from_millis(100);
/// How long a garbage sender waits for the server to close after its junk.
const GARBAGE_LINGER: Duration = Duration::from_secs(2);
/// How long a silent peer waits to be closed (`--idle-timeout` should do it).
const SILENT_LINGER: Duration = Duration::from_secs(15);
/// Oversized frame: over the default `--max-frame` (1 MiB).
const OVERSIZE: usize = (1 << 20) + (64 << 10);
/// A slow peer sends one byte per this.
const TRICKLE_EVERY: Duration = Duration::from_secs(1);
/// Requests a never-reading peer writes per batch, and the pause between batches.
const PIPELINE_BATCH: usize = 32;
const PIPELINE_PAUSE: Duration = Duration::from_millis(10);

/// An HL7 v2 message with MSH-10 = `id`.
pub fn hl7_message(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|SOAK|EDGE|MOORING|SRV|20261201000000||ADT^A01|{id}|P|2.5\rPID|1||{id}\r")
        .into_bytes()
}

// MLLP by hand, shared with the tests' peers.
#[path = "../../tests/mllp/mod.rs"]
mod mllp_wire;
use mllp_wire::{mllp, take_mllp};

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(REPLY_TIMEOUT))?;
    s.set_write_timeout(Some(REPLY_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn is_timeout(k: ErrorKind) -> bool {
    matches!(k, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads MLLP frames from a stream, one at a time.
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    fn new() -> FrameReader {
        FrameReader {
            buf: Vec::with_capacity(4096),
        }
    }

    /// The next frame's payload, or why none came.
    fn next(&mut self, s: &mut TcpStream) -> Result<Vec<u8>, &'static str> {
        loop {
            if let Some(payload) = take_mllp(&mut self.buf) {
                return Ok(payload);
            }
            if self.buf.len() > MAX_REPLY {
                return Err("reply_too_big");
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => return Err("closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(e.kind()) => return Err("reply_timeout"),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err("reset"),
            }
        }
    }
}

/// Sends one request and waits for its ACK: the latency, or why it was lost.
fn exchange(s: &mut TcpStream, r: &mut FrameReader, id: &str) -> Result<Duration, &'static str> {
    let frame = mllp(&hl7_message(id));
    let t0 = Instant::now();
    s.write_all(&frame).map_err(|_| "write_failed")?;
    let reply = r.next(s)?;
    let took = t0.elapsed();
    if hl7::acked_control_id(&reply) != Some(id.as_bytes()) {
        return Err("wrong_msa2");
    }
    if hl7::ack_code(&reply) != Some(b"AA") {
        return Err("not_aa");
    }
    Ok(took)
}

/// Large blocks of a server node (`NodeConfig::large_buffers`, default 2).
const LARGE_BLOCKS: usize = 2;
/// Payload of a priming message: nearly the default `--max-frame` (1 MiB).
const PRIME_PAYLOAD: usize = (1 << 20) - 1024;

/// Makes the server's large blocks resident before the warm-up is measured:
/// their pages are touched only when a frame that large first arrives, which
/// in the random traffic happens at a random time. One nearly 1 MiB HL7
/// message per block, each held unfinished until every block is taken, then
/// finished and answered. Fails (the soak goes on) if the server's
/// `--max-frame` is smaller.
pub fn prime_large_blocks(addr: SocketAddr) -> Result<(), String> {
    let mut links = Vec::new();
    for i in 0..LARGE_BLOCKS {
        let id = format!("PRIME{i}");
        let mut msg = hl7_message(&id);
        msg.extend_from_slice(b"NTE|1||");
        msg.resize(PRIME_PAYLOAD, b'P');
        let mut s = connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.write_all(&[0x0B])
            .and_then(|()| s.write_all(&msg))
            .map_err(|e| format!("write: {e}"))?;
        links.push((s, id));
    }
    for (s, id) in &mut links {
        s.write_all(&[0x1C, 0x0D])
            .map_err(|e| format!("write: {e}"))?;
        let reply = FrameReader::new().next(s)?;
        if hl7::acked_control_id(&reply) != Some(id.as_bytes()) {
            return Err(format!("{id}: not answered"));
        }
    }
    Ok(())
}

/// What request/reply clients (well-behaved or reconnecting) saw.
pub struct ClientReport {
    /// Connections opened.
    pub connections: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered by their own AA.
    pub acked: u64,
    /// Why the others were lost, with counts.
    pub causes: BTreeMap<&'static str, u64>,
    /// Local ports of the links that lost a reply (the server's log names
    /// their close reason).
    pub lost_ports: Vec<u16>,
    /// Latency of every answered request.
    pub latency: Histogram,
}

impl Default for ClientReport {
    fn default() -> ClientReport {
        ClientReport {
            connections: 0,
            sent: 0,
            acked: 0,
            causes: BTreeMap::new(),
            lost_ports: Vec::new(),
            latency: Histogram::new(),
        }
    }
}

impl ClientReport {
    /// Requests not answered by their own AA.
    pub fn lost(&self) -> u64 {
        self.sent - self.acked
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &ClientReport) {
        self.connections += other.connections;
        self.sent += other.sent;
        self.acked += other.acked;
        for (k, v) in &other.causes {
            *self.causes.entry(k).or_insert(0) += v;
        }
        self.lost_ports.extend_from_slice(&other.lost_ports);
        self.latency.merge(&other.latency);
    }

    /// One request on `s`: counted, timed, its loss named.
    fn request(&mut self, s: &mut TcpStream, r: &mut FrameReader, id: &str) -> bool {
        self.sent += 1;
        match exchange(s, r, id) {
            Ok(took) => {
                self.acked += 1;
                self.latency.record(took);
                true
            }
            Err(cause) => {
                *self.causes.entry(cause).or_insert(0) += 1;
                if let Ok(a) = s.local_addr() {
                    self.lost_ports.push(a.port());
                }
                false
            }
        }
    }

    fn connect(&mut self, addr: SocketAddr) -> Option<TcpStream> {
        match connect(addr) {
            Ok(s) => {
                self.connections += 1;
                Some(s)
            }
            Err(_) => {
                *self.causes.entry("connect_failed").or_insert(0) += 1;
                None
            }
        }
    }
}

/// A well-behaved client: one link kept open, one request at a time, `pace`
/// between requests; a link that fails is replaced.
pub fn well_behaved(n: usize, addr: SocketAddr, run: &Run, pace: Duration) -> ClientReport {
    let mut rep = ClientReport::default();
    let mut link: Option<(TcpStream, FrameReader)> = None;
    let mut seq = 0u64;
    while run.going() {
        let Some((s, r)) = link.as_mut() else {
            link = rep.connect(addr).map(|s| (s, FrameReader::new()));
            if link.is_none() {
                run.pause(RECONNECT_PAUSE);
            }
            continue;
        };
        seq += 1;
        if !rep.request(s, r, &format!("W{n}-{seq}")) {
            link = None;
        }
        run.pause(pace);
    }
    rep
}

/// A reconnecting client: connect, 1 to 3 requests, close, again.
pub fn reconnecting(n: usize, addr: SocketAddr, run: &Run, seed: u64) -> ClientReport {
    let mut rep = ClientReport::default();
    let mut rng = XorShift64::new(seed);
    let mut seq = 0u64;
    while run.going() {
        if let Some(mut s) = rep.connect(addr) {
            let mut r = FrameReader::new();
            for _ in 0..=rng.below(3) {
                seq += 1;
                if !rep.request(&mut s, &mut r, &format!("R{n}-{seq}")) {
                    break;
                }
            }
        }
        run.pause(RECONNECT_PAUSE);
    }
    rep
}

/// The kinds of junk a garbage sender sends, one per connection.
#[derive(Clone, Copy, Debug)]
enum Junk {
    /// 4 KiB of random bytes (stray bytes, then a frame broken some way).
    RandomBytes,
    /// Framing errors: a start block inside a frame, an end block without CR.
    BadFrames,
    /// Well-framed payloads that are not HL7 (answered AR).
    NotHl7,
    /// A frame over the default `--max-frame`.
    Oversized,
    /// Connects and says nothing.
    Silent,
}

impl Junk {
    const ALL: [Junk; 5] = [
        Junk::RandomBytes,
        Junk::BadFrames,
        Junk::NotHl7,
        Junk::Oversized,
        Junk::Silent,
    ];

    fn name(self) -> &'static str {
        match self {
            Junk::RandomBytes => "random",
            Junk::BadFrames => "bad_frames",
            Junk::NotHl7 => "not_hl7",
            Junk::Oversized => "oversized",
            Junk::Silent => "silent",
        }
    }

    fn bytes(self, rng: &mut XorShift64) -> Vec<u8> {
        match self {
            Junk::RandomBytes => (0..4096).map(|_| rng.next_u64() as u8).collect(),
            Junk::BadFrames => {
                let mut v = b"\r\n\0\r\n".to_vec();
                if rng.below(2) == 0 {
                    v.extend_from_slice(b"\x0BMSH|^~\\&|JUNK\x0Bsecond start");
                } else {
                    v.extend_from_slice(b"\x0BMSH|^~\\&|JUNK|end\x1C\x0A");
                }
                v
            }
            Junk::NotHl7 => {
                let mut v = Vec::new();
                for _ in 0..=rng.below(4) {
                    v.extend_from_slice(&mllp(b"not hl7 at all"));
                }
                v
            }
            Junk::Oversized => {
                let mut v = vec![b'A'; OVERSIZE + 1];
                v[0] = 0x0B;
                v
            }
            Junk::Silent => Vec::new(),
        }
    }
}

/// What garbage senders did.
#[derive(Default)]
pub struct GarbageReport {
    /// Connections per kind of junk.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Connections the server closed (the others: we hung up after the linger).
    pub closed_by_server: u64,
    /// Connect failures.
    pub connect_failed: u64,
}

impl GarbageReport {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &GarbageReport) {
        for (k, v) in &other.by_kind {
            *self.by_kind.entry(k).or_insert(0) += v;
        }
        self.closed_by_server += other.closed_by_server;
        self.connect_failed += other.connect_failed;
    }
}

/// A garbage sender: a new connection per round, junk of a random kind (the
/// first round of each sender is oversized, so the large buffers are touched
/// during warm-up), then waits for the server to close it.
pub fn garbage(addr: SocketAddr, run: &Run, seed: u64) -> GarbageReport {
    let mut rep = GarbageReport::default();
    let mut rng = XorShift64::new(seed);
    let mut first = true;
    while run.going() {
        let kind = if first {
            Junk::Oversized
        } else {
            // Silent peers are held the longest: pick them less often.
            match rng.below(13) {
                0 => Junk::Silent,
                k => Junk::ALL[(k % 4) as usize],
            }
        };
        first = false;
        let Ok(mut s) = connect(addr) else {
            rep.connect_failed += 1;
            run.pause(GARBAGE_PAUSE);
            continue;
        };
        *rep.by_kind.entry(kind.name()).or_insert(0) += 1;
        let junk = kind.bytes(&mut rng);
        // A write error means the server closed already (as it should for
        // some junk); the drain below sees the close either way.
        let _ = s.write_all(&junk);
        let linger = match kind {
            Junk::Silent => SILENT_LINGER,
            _ => GARBAGE_LINGER,
        };
        if closed_within(&mut s, linger, run) {
            rep.closed_by_server += 1;
        }
        run.pause(GARBAGE_PAUSE);
    }
    rep
}

/// Reads (and discards) until the peer closes, `within` passes or the run
/// ends; true when the peer closed.
fn closed_within(s: &mut TcpStream, within: Duration, run: &Run) -> bool {
    let until = Instant::now() + within;
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    while Instant::now() < until && run.going() {
        match s.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if is_timeout(e.kind()) || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}

/// What slow peers did.
#[derive(Default)]
pub struct SlowReport {
    /// Connections opened.
    pub connections: u64,
    /// Bytes trickled.
    pub bytes: u64,
    /// Connections the server closed.
    pub closed_by_server: u64,
    /// Longest time one connection was held open.
    pub longest_hold: Duration,
}

impl SlowReport {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &SlowReport) {
        self.connections += other.connections;
        self.bytes += other.bytes;
        self.closed_by_server += other.closed_by_server;
        self.longest_hold = self.longest_hold.max(other.longest_hold);
    }
}

/// A slow peer: opens a frame and trickles one byte per second, never ending
/// it; when the server closes the link, opens another.
pub fn slow(addr: SocketAddr, run: &Run) -> SlowReport {
    let mut rep = SlowReport::default();
    while run.going() {
        let Ok(mut s) = connect(addr) else {
            run.pause(RECONNECT_PAUSE);
            continue;
        };
        rep.connections += 1;
        let opened = Instant::now();
        // The read timeout paces the trickle and notices the server's close.
        let _ = s.set_read_timeout(Some(TRICKLE_EVERY));
        let mut closed = s.write_all(b"\x0BMSH|^~\\&|SLOW|").is_err();
        let mut sink = [0u8; 256];
        while !closed && run.going() {
            match s.read(&mut sink) {
                Ok(0) => closed = true,
                Ok(_) => {}
                Err(e) if is_timeout(e.kind()) => match s.write_all(b"X") {
                    Ok(()) => rep.bytes += 1,
                    Err(_) => closed = true,
                },
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => closed = true,
            }
        }
        rep.longest_hold = rep.longest_hold.max(opened.elapsed());
        if closed {
            rep.closed_by_server += 1;
            run.pause(RECONNECT_PAUSE);
        }
    }
    rep
}

/// What never-reading peers did.
#[derive(Default)]
pub struct PipelineReport {
    /// Connections opened.
    pub connections: u64,
    /// Requests written in full.
    pub written: u64,
    /// Writes that timed out: the server (rightly) stopped reading.
    pub stalls: u64,
    /// Connections the server closed.
    pub closed_by_server: u64,
}

impl PipelineReport {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &PipelineReport) {
        self.connections += other.connections;
        self.written += other.written;
        self.stalls += other.stalls;
        self.closed_by_server += other.closed_by_server;
    }
}

/// A peer that pipelines requests and never reads a reply.
pub fn never_reading(n: usize, addr: SocketAddr, run: &Run) -> PipelineReport {
    let mut rep = PipelineReport::default();
    let batch: Vec<u8> = (0..PIPELINE_BATCH)
        .flat_map(|i| mllp(&hl7_message(&format!("N{n}-{i}"))))
        .collect();
    while run.going() {
        let Ok(mut s) = connect(addr) else {
            run.pause(RECONNECT_PAUSE);
            continue;
        };
        rep.connections += 1;
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        // Position in the batch: a write cut short by its timeout resumes
        // where it stopped, so the stream stays well framed.
        let mut pos = 0;
        let mut closed = false;
        while !closed && run.going() {
            match s.write(&batch[pos..]) {
                Ok(0) => closed = true,
                Ok(k) => {
                    pos += k;
                    if pos == batch.len() {
                        pos = 0;
                        rep.written += PIPELINE_BATCH as u64;
                        run.pause(PIPELINE_PAUSE);
                    }
                }
                Err(e) if is_timeout(e.kind()) => rep.stalls += 1,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => closed = true,
            }
        }
        if closed {
            rep.closed_by_server += 1;
            run.pause(RECONNECT_PAUSE);
        }
    }
    rep
}
