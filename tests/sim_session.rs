//! Deterministic simulation of reliable sessions through the real session
//! tables: a client's `SessionTable` (redialing with backoff) and a server's
//! (tokens, resume, expiry), the same glue order the node follows, joined by a
//! simulated network.
//!
//! The network delays bytes, cuts links at random byte positions (the rest of
//! what was in flight is lost, a partial frame included), and partitions for
//! random times (dials fail meanwhile), some longer than the server's
//! `reconnect_timeout`. Both applications send at random times. Every message
//! is framed (MLLP) and encoded by the tables' own `Transmit::encode` and the
//! wire format; a link the server's table closes carries a CLOSE with its
//! reason, as the node sends it. Over 10,000 seeds, for each direction:
//!
//! - what the receiving application got is exactly a prefix of what the sender's
//!   application sent: in order, nothing twice, nothing skipped;
//! - if the session survived, the prefix is everything;
//! - if the session ended (`Lost`/`Expired`), both applications were told, and
//!   the count each sender reported covers every message of its that is missing
//!   at the peer: no loss is silent.
//!
//! A failure prints its seed; `SIM_SEED=<n> cargo test --test sim_session`
//! replays it alone. Buffers are reused from seed to seed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

// The crate's PRNG: a seed replays a run exactly.
use mooring::internals::rng::XorShift64 as Rng;

use mooring::frame::{Codec, Decoded, Mllp};
use mooring::internals::session::{Entropy, Received, SessionTable};
use mooring::internals::wire::{self, Greeting, Msg, WireReason, TOKEN_LEN};
use mooring::session::{Backoff, SessionConfig, SessionEnd, SessionId, SessionNote};
use mooring::{CloseReason, Instant};

const CLIENT: usize = 0;
const SERVER: usize = 1;
const RECONNECT_TIMEOUT: u64 = 5_000;
/// The server's table: one session and room for a second (a new HELLO while
/// the first waits would take it; the client never sends one).
const SERVER_SLOTS: u32 = 2;

/// A table over simulated links (numbered), client sessions with no target
/// but the one server.
type Table = SessionTable<u64, ()>;

/// The simulation's randomness, also the tables' entropy (tokens, jitter).
struct Dice(Rng);

impl Entropy for Dice {
    fn token(&mut self) -> [u8; TOKEN_LEN] {
        let mut t = [0u8; TOKEN_LEN];
        t.iter_mut().for_each(|b| *b = self.0.next_u64() as u8);
        t
    }

    fn jitter(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// Bytes in flight towards one side, and what it received but not decoded.
#[derive(Default)]
struct Dir {
    /// Framed bytes in flight; `frames` says when each frame's end arrives.
    bytes: Vec<u8>,
    frames: VecDeque<(u64, usize)>,
    /// Bytes of `bytes` delivered so far.
    off: usize,
    rx: Vec<u8>,
    scan: usize,
}

impl Dir {
    fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
        self.off = 0;
        self.rx.clear();
        self.scan = 0;
    }
}

/// The one TCP link of the simulation (at most one exists).
#[derive(Clone, Copy)]
struct Link {
    id: u64,
    /// The server's table bound it to this session.
    server_idx: Option<u32>,
    /// The client got its WELCOME.
    welcomed: bool,
    /// The server's table closed it (a CLOSE is on its way): the server reads
    /// nothing more from it.
    server_closed: bool,
}

#[derive(Default)]
struct App {
    sent: Vec<u64>,
    got: Vec<u64>,
    ended: Option<SessionEnd>,
}

/// The network and the applications; reused from seed to seed.
struct Net {
    dice: Dice,
    now: u64,
    latency_max: u64,
    link: Option<Link>,
    next_link: u64,
    to: [Dir; 2],
    partition_until: u64,
    apps: [App; 2],
    /// The session the server's application follows (the first one).
    server_id: Option<SessionId>,
    /// How the server's table reported that session's end.
    server_ended: Option<SessionEnd>,
    faults: u64,
    scratch: Vec<u8>,
    /// Where `send` frames a message (zeroed once).
    frame: Vec<u8>,
}

struct Sim {
    net: Net,
    client: Table,
    client_id: Option<SessionId>,
    server: Table,
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

const SERVER_ADDR: &str = "127.0.0.1:1";

impl Net {
    /// Frames `parts` as one message from `from`, arriving after a random delay.
    fn send(&mut self, from: usize, parts: &[&[u8]]) {
        if self.link.is_none() {
            return;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + Mllp.overhead();
        let at = self.now + 1 + self.dice.0.below(self.latency_max);
        let n = Mllp
            .encode_parts(parts, &mut self.frame[..len])
            .expect("sized");
        let d = &mut self.to[1 - from];
        d.bytes.extend_from_slice(&self.frame[..n]);
        let at = d.frames.back().map_or(at, |b| at.max(b.0));
        d.frames.push_back((at, d.bytes.len()));
    }

    fn send_msg(&mut self, from: usize, msg: &Msg<'_>) {
        let mut b = [0u8; wire::MAX_CONTROL];
        let n = wire::encode(msg, &mut b).expect("fits");
        self.send(from, &[&b[..n]]);
    }

    /// Writes what session `idx` of `table` wants to send, if `side` may send
    /// on the current link (the handshake done).
    fn pump(&mut self, table: &mut Table, side: usize, idx: u32) {
        let Some(link) = self.link else { return };
        let ready = table.link(idx) == Some(link.id)
            && if side == CLIENT {
                link.welcomed
            } else {
                link.server_idx == Some(idx) && !link.server_closed
            };
        if !ready {
            return;
        }
        let mut scratch = [0u8; wire::MAX_CONTROL];
        while let Some(tx) = table.poll_transmit(idx) {
            let sent = tx.sent();
            let (head, payload) = tx.encode(&mut scratch);
            self.send(side, &[head, payload]);
            table.handle_transmitted(idx, sent);
        }
    }

    /// The link is gone: buffers dropped.
    fn drop_link(&mut self) {
        self.link = None;
        self.to.iter_mut().for_each(Dir::clear);
    }
}

impl Sim {
    fn dial(&mut self) {
        let now = t(self.net.now);
        if self.net.now < self.net.partition_until || self.net.link.is_some() {
            self.client.handle_dial_failed(0, now, &mut self.net.dice);
            return;
        }
        self.net.next_link += 1;
        let id = self.net.next_link;
        self.net.link = Some(Link {
            id,
            server_idx: None,
            welcomed: false,
            server_closed: false,
        });
        self.client.handle_dialed(0, id);
        let hello = Msg::Hello(self.client.greeting(0));
        self.net.send_msg(CLIENT, &hello);
    }

    /// The link dies: what was in flight is cut at a random byte and lost.
    fn cut(&mut self) {
        let Some(link) = self.net.link else { return };
        self.net.faults += 1;
        // Some prefix of the in-flight bytes still arrives (cut mid-frame).
        for side in [CLIENT, SERVER] {
            let d = &mut self.net.to[side];
            let left = d.bytes.len() - d.off;
            let keep = self.net.dice.0.below(left as u64 + 1) as usize;
            d.rx.extend_from_slice(&d.bytes[d.off..d.off + keep]);
            d.bytes.clear();
            d.frames.clear();
            d.off = 0;
            self.decode(side);
        }
        self.net.drop_link();
        self.link_lost(link.id, CloseReason::Reset);
    }

    /// Link `id` is gone: each table that still had it learns why.
    fn link_lost(&mut self, id: u64, reason: CloseReason) {
        let now = t(self.net.now);
        if self.client.link(0) == Some(id) {
            self.client
                .handle_link_lost(0, reason, now, &mut self.net.dice);
        }
        for idx in 0..SERVER_SLOTS {
            if self.server.link(idx) == Some(id) {
                self.server
                    .handle_link_lost(idx, reason, now, &mut self.net.dice);
            }
        }
        self.settle();
    }

    /// Delivers the frames due at `side`.
    fn deliver(&mut self, side: usize) {
        loop {
            let d = &mut self.net.to[side];
            match d.frames.front() {
                Some(&(at, end)) if at <= self.net.now => {
                    d.frames.pop_front();
                    d.rx.extend_from_slice(&d.bytes[d.off..end]);
                    d.off = end;
                    if d.frames.is_empty() {
                        d.bytes.clear();
                        d.off = 0;
                    }
                }
                _ => break,
            }
            self.decode(side);
        }
    }

    fn decode(&mut self, side: usize) {
        while self.net.link.is_some() {
            let d = &mut self.net.to[side];
            let Ok(Decoded::Frame {
                payload, consumed, ..
            }) = Mllp.decode(&d.rx, &mut d.scan, 1 << 20)
            else {
                return;
            };
            let mut frame = std::mem::take(&mut self.net.scratch);
            frame.clear();
            frame.extend_from_slice(&d.rx[payload]);
            d.rx.drain(..consumed);
            d.scan = 0;
            let msg = wire::decode(&frame).expect("well-formed");
            self.handle(side, msg);
            self.net.scratch = frame;
        }
    }

    fn handle(&mut self, side: usize, msg: Msg<'_>) {
        let now = t(self.net.now);
        let Some(link) = self.net.link else { return };
        if side == SERVER && link.server_closed {
            return; // the server closed this link: nothing more is read
        }
        let idx = if side == CLIENT {
            Some(0)
        } else {
            link.server_idx
        };
        let table = if side == CLIENT {
            &mut self.client
        } else {
            &mut self.server
        };
        match (msg, idx) {
            (Msg::Hello(g), None) => self.hello(link, g),
            (Msg::Welcome(g), Some(idx)) => {
                if table.handle_welcome(idx, link.id, g, now) {
                    if let Some(l) = self.net.link.as_mut() {
                        l.welcomed = true;
                    }
                }
            }
            (Msg::Data { seq, payload }, Some(idx)) => {
                if table.handle_data(idx, now, Some(seq), payload.len()) == Received::Deliver {
                    self.net.apps[side].got.push(seq);
                }
            }
            (Msg::Skip(seq), Some(idx)) => {
                let _ = table.handle_skip(idx, now, seq);
            }
            (Msg::Ack(seq), Some(idx)) => table.handle_ack(idx, seq),
            (Msg::Close(why), _) => {
                let reason = match why {
                    WireReason::Known(r) => r,
                    WireReason::Unknown(_) => CloseReason::PeerClosed,
                };
                self.net.drop_link();
                self.link_lost(link.id, reason);
                return;
            }
            (other, idx) => panic!("unexpected {other:?} at side {side} (session {idx:?})"),
        }
        self.settle();
    }

    /// The server's side of the handshake: the table resumes, starts or
    /// refuses the session; a bound link answers with the WELCOME.
    fn hello(&mut self, link: Link, g: Greeting) {
        let now = t(self.net.now);
        let from: SocketAddr = SERVER_ADDR.parse().expect("an address");
        let cfg = self.client.session(0).expect("open").config();
        let bound = self
            .server
            .handle_hello(link.id, from, cfg, None, g, now, &mut self.net.dice);
        if let (Some(idx), Some(l)) = (bound, self.net.link.as_mut()) {
            l.server_idx = Some(idx);
            self.net.server_id.get_or_insert(self.server.id(idx));
            let welcome = Msg::Welcome(self.server.greeting(idx));
            self.net.send_msg(SERVER, &welcome);
        }
    }

    /// The glue after each table call: close the links the tables let go of
    /// (the server's with a CLOSE frame, as the node sends it), write output,
    /// report notes.
    fn settle(&mut self) {
        while let Some((id, reason)) = self.server.poll_close() {
            if self
                .net
                .link
                .is_some_and(|l| l.id == id && !l.server_closed)
            {
                self.net
                    .send_msg(SERVER, &Msg::Close(WireReason::Known(reason)));
                if let Some(l) = self.net.link.as_mut() {
                    l.server_closed = true;
                }
            }
        }
        while let Some((id, _)) = self.client.poll_close() {
            if self.net.link.is_some_and(|l| l.id == id) {
                // The client's session ended: the scenario stops here.
                self.net.drop_link();
            }
        }
        self.net.pump(&mut self.client, CLIENT, 0);
        if let Some(idx) = self.net.link.and_then(|l| l.server_idx) {
            self.net.pump(&mut self.server, SERVER, idx);
        }
        while let Some((_, note)) = self.client.next_note() {
            if let SessionNote::Ended(how) = note {
                self.net.apps[CLIENT].ended.get_or_insert(how);
            }
        }
        while let Some((id, note)) = self.server.next_note() {
            if let SessionNote::Ended(how) = note {
                if Some(id) == self.net.server_id {
                    self.net.server_ended.get_or_insert(how);
                }
            }
        }
    }

    /// Runs every table deadline that is due.
    fn timers(&mut self) {
        let now = t(self.net.now);
        if self.client.poll_timeout(0).is_some_and(|d| d <= now)
            && self.client.handle_timeout(0, now, &mut self.net.dice)
        {
            self.settle();
            self.dial();
        }
        for idx in 0..SERVER_SLOTS {
            if self.server.poll_timeout(idx).is_some_and(|d| d <= now) {
                let _ = self.server.handle_timeout(idx, now, &mut self.net.dice);
            }
        }
        self.settle();
    }

    fn next_deadline(&self) -> Option<u64> {
        let server = (0..SERVER_SLOTS).filter_map(|i| self.server.poll_timeout(i));
        self.client
            .poll_timeout(0)
            .into_iter()
            .chain(server)
            .map(Instant::as_millis)
            .min()
    }

    fn app_send(&mut self, side: usize) {
        const MSG: &[u8] = b"MSH|^~\\&|SIM|||||ORU^R01|X|P|2.5";
        let sent = if side == CLIENT {
            let Some(id) = self.client_id else { return };
            self.client.send(id, MSG, None)
        } else {
            // This scenario follows one session: once the server reported it
            // ended, its application sends nothing on another.
            match self.net.server_id {
                Some(id) if self.net.server_ended.is_none() => self.server.send(id, MSG, None),
                _ => return,
            }
        };
        if let Ok((_, seq)) = sent {
            self.net.apps[side].sent.push(seq);
            self.settle();
        }
    }

    fn unacked(table: &Table, id: Option<SessionId>) -> Option<u64> {
        let idx = table.idx(id?)?;
        table.session(idx).map(|s| s.unacked())
    }
}

impl Sim {
    /// Ends what the last seed left in the tables, so their slots (and replay
    /// rings) serve the next one.
    fn clear_tables(&mut self) {
        for table in [&mut self.client, &mut self.server] {
            for idx in 0..table.capacity() as u32 {
                if table.idx(table.id(idx)).is_some() {
                    table.end(idx, SessionEnd::Closed);
                }
            }
            while table.poll_close().is_some() {}
            while table.next_note().is_some() {}
        }
    }
}

fn run(seed: u64, mut sim: Sim) -> Sim {
    sim.clear_tables();
    let net = &mut sim.net;
    net.dice = Dice(Rng::new(seed));
    net.now = 0;
    net.latency_max = 1 + net.dice.0.below(50);
    net.drop_link();
    net.next_link = 0;
    net.partition_until = 0;
    net.apps.iter_mut().for_each(|a| {
        a.sent.clear();
        a.got.clear();
        a.ended = None;
    });
    net.server_id = None;
    net.server_ended = None;
    net.faults = 0;
    let cfg = SessionConfig {
        max_depth: 64,
        max_depth_disconnected: 256,
        max_bytes: 64 * 1024,
        reconnect_timeout: Duration::from_millis(RECONNECT_TIMEOUT),
        ack_every: 1 + net.dice.0.below(16) as u32,
        ack_delay: Duration::from_millis(1 + net.dice.0.below(30)),
        ..SessionConfig::default()
    };
    let backoff = Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(800),
        max_attempts: None,
    };
    let idx = sim
        .client
        .open(cfg, (), backoff, t(0))
        .expect("memory")
        .expect("a free slot");
    sim.client_id = Some(sim.client.id(idx));
    sim.dial();
    let horizon = 20_000;
    let mut next_send = [0u64, 0u64];
    let mut next_fault = 200 + sim.net.dice.0.below(2_000);
    let mut steps_at_now = 0u32;
    // Run with faults until the horizon, then heal and let everything settle.
    while sim.net.now < horizon + 30_000 {
        let now = sim.net.now;
        let healing = now >= horizon;
        // Next instant anything happens.
        let mut next = now + 1_000;
        for d in &sim.net.to {
            if let Some(f) = d.frames.front() {
                next = next.min(f.0);
            }
        }
        if let Some(d) = sim.next_deadline() {
            next = next.min(d);
        }
        if !healing {
            next = next.min(next_send[0]).min(next_send[1]).min(next_fault);
        }
        // Every step moves time forward, so a stuck deadline fails fast instead of spinning.
        assert!(
            next > now || steps_at_now < 1_000,
            "seed {seed}: simulation stuck at {now}"
        );
        steps_at_now = if next > now { 0 } else { steps_at_now + 1 };
        sim.net.now = next.max(now);

        // Deliver due bytes.
        sim.deliver(CLIENT);
        sim.deliver(SERVER);
        // Timers: ACK delays, the server's session expiry, the client's redial.
        sim.timers();
        if sim.net.apps[CLIENT].ended.is_some() {
            break; // the client application was told; the scenario is over
        }
        // Faults.
        if !healing && sim.net.now >= next_fault {
            match sim.net.dice.0.below(4) {
                0 | 1 => sim.cut(),
                2 => {
                    // A partition: no link for a while, sometimes past the resume window.
                    let long = sim.net.dice.0.below(10) == 0;
                    let len = if long {
                        RECONNECT_TIMEOUT + 500 + sim.net.dice.0.below(3_000)
                    } else {
                        100 + sim.net.dice.0.below(2_000)
                    };
                    sim.net.partition_until = sim.net.now + len;
                    sim.cut();
                }
                _ => {} // a quiet spell
            }
            next_fault = sim.net.now + 50 + sim.net.dice.0.below(2_500);
        }
        // Applications.
        if !healing {
            for side in [CLIENT, SERVER] {
                if sim.net.now >= next_send[side] {
                    for _ in 0..1 + sim.net.dice.0.below(5) {
                        sim.app_send(side);
                    }
                    next_send[side] = sim.net.now + sim.net.dice.0.below(400);
                }
            }
        }
        let settled = healing
            && sim
                .net
                .link
                .is_some_and(|l| l.welcomed && sim.net.to.iter().all(|d| d.frames.is_empty()))
            && Sim::unacked(&sim.client, sim.client_id) == Some(0)
            && Sim::unacked(&sim.server, sim.net.server_id) == Some(0);
        if settled {
            break;
        }
    }
    sim
}

/// `got` is exactly the first `got.len()` of `sent`.
fn assert_prefix(seed: u64, what: &str, sent: &[u64], got: &[u64]) {
    assert!(
        got.len() <= sent.len() && got == &sent[..got.len()],
        "seed {seed}: {what}: got {} messages that are not a prefix of the {} sent",
        got.len(),
        sent.len()
    );
}

fn undelivered(end: Option<SessionEnd>) -> Option<u64> {
    match end? {
        SessionEnd::Lost { undelivered }
        | SessionEnd::Expired { undelivered }
        | SessionEnd::QueueFull { undelivered }
        | SessionEnd::Evicted { undelivered } => Some(undelivered),
        SessionEnd::Closed => Some(0),
    }
}

/// Runs seed `seed` and checks it; gives the simulation back for the next seed.
fn check(seed: u64, sim: Sim) -> (Sim, u64, bool) {
    let sim = run(seed, sim);
    let net = &sim.net;
    let [c, s] = &net.apps;
    assert_prefix(seed, "client to server", &c.sent, &s.got);
    assert_prefix(seed, "server to client", &s.sent, &c.got);
    let client_end = c.ended;
    let server_end = net.server_ended;
    let ended = match (client_end, server_end) {
        (None, None) => {
            assert_eq!(
                s.got.len(),
                c.sent.len(),
                "seed {seed}: client messages all delivered"
            );
            assert_eq!(
                c.got.len(),
                s.sent.len(),
                "seed {seed}: server messages all delivered"
            );
            false
        }
        _ => {
            // Both applications are told; no loss is silent.
            let c_count = undelivered(client_end).unwrap_or_else(|| {
                panic!("seed {seed}: server ended {server_end:?} but the client was never told")
            });
            let s_count = undelivered(server_end).unwrap_or_else(|| {
                panic!("seed {seed}: client ended {client_end:?} but the server was never told")
            });
            let c_missing = (c.sent.len() - s.got.len()) as u64;
            let s_missing = (s.sent.len() - c.got.len()) as u64;
            assert!(
                c_missing <= c_count,
                "seed {seed}: client lost {c_missing} but reported {c_count}"
            );
            assert!(
                s_missing <= s_count,
                "seed {seed}: server lost {s_missing} but reported {s_count}"
            );
            true
        }
    };
    let faults = net.faults;
    (sim, faults, ended)
}

#[test]
fn sessions_deliver_exactly_once_in_order_or_report_every_loss_over_ten_thousand_seeds() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..10_000).collect(),
    };
    let net = Net {
        dice: Dice(Rng::new(0)),
        now: 0,
        latency_max: 1,
        link: None,
        next_link: 0,
        to: Default::default(),
        partition_until: 0,
        apps: Default::default(),
        server_id: None,
        server_ended: None,
        faults: 0,
        scratch: Vec::new(),
        frame: vec![0; 256],
    };
    let mut sim = Sim {
        net,
        client: Table::new(1, 64).expect("memory"),
        client_id: None,
        server: Table::new(SERVER_SLOTS as usize, 64).expect("memory"),
    };
    let (mut faults, mut ended) = (0u64, 0u64);
    for &seed in &seeds {
        let (s, f, e) = check(seed, sim);
        sim = s;
        faults += f;
        ended += u64::from(e);
    }
    println!(
        "sim_session: {} seeds, {faults} link faults, {ended} sessions ended with a reported loss",
        seeds.len()
    );
    if seeds.len() > 1 {
        assert!(ended > 0, "the long partitions must exercise expiry");
        assert!(
            ended < seeds.len() as u64,
            "most sessions must survive their faults"
        );
    }
}
