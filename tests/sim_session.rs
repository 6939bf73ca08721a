//! Deterministic simulation of reliable sessions through the pure layers.
//!
//! A client and a server `Session` are joined by a simulated network that
//! delays bytes, cuts links at random byte positions (the rest of what was in
//! flight is lost, a partial frame included), and partitions for random times,
//! some longer than the server's `reconnect_timeout`. Both applications send at
//! random times. Every message is framed (MLLP) and encoded with the real wire
//! format. Over 10,000 seeds, for each direction:
//!
//! - what the receiving application got is exactly a prefix of what the sender's
//!   application sent: in order, nothing twice, nothing skipped;
//! - if the session survived, the prefix is everything;
//! - if the session ended (`Lost`/`Expired`), both applications were told, and
//!   the count each sender reported covers every message of its that is missing
//!   at the peer: no loss is silent.
//!
//! A failure prints its seed; `SIM_SEED=<n> cargo test --test sim_session`
//! replays it alone.

use std::collections::VecDeque;
use std::time::Duration;

// The crate's PRNG: a seed replays a run exactly.
use mooring::rng::XorShift64 as Rng;

use mooring::frame::{Codec, Decoded, Mllp};
use mooring::session::{
    Backoff, Received, Session, SessionConfig, SessionEnd, SessionEvent, Transmit,
};
use mooring::wire::{self, Greeting, Msg};
use mooring::Instant;

const CLIENT: usize = 0;
const SERVER: usize = 1;
const RECONNECT_TIMEOUT: u64 = 5_000;

/// One TCP link of the simulation: bytes in flight towards each side, and what
/// each side has received but not decoded.
struct SimLink {
    to: [VecDeque<(u64, Vec<u8>)>; 2],
    rx: [Vec<u8>; 2],
    scan: [usize; 2],
    /// The server saw a valid HELLO and bound the link to its session.
    bound: bool,
    /// The client got its WELCOME.
    welcomed: bool,
}

struct App {
    sent: Vec<u64>,
    got: Vec<u64>,
    ended: Option<SessionEnd>,
}

struct Sim {
    rng: Rng,
    now: u64,
    cfg: SessionConfig,
    client: Session,
    /// The server's table holds at most one session here: (session, its id).
    server: Option<Session>,
    next_id: u64,
    link: Option<SimLink>,
    partition_until: u64,
    reconnect_at: u64,
    attempt: u32,
    apps: [App; 2],
    /// Sessions the server expired, with the count it reported.
    server_ended: Option<SessionEnd>,
    latency_max: u64,
    faults: u64,
}

/// A control message's bytes.
fn control(m: Msg<'_>) -> Vec<u8> {
    let mut b = [0u8; wire::MAX_CONTROL];
    let n = wire::encode(&m, &mut b).expect("fits");
    b[..n].to_vec()
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

impl Sim {
    fn send_bytes(&mut self, from: usize, payload_parts: &[&[u8]]) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let len: usize = payload_parts.iter().map(|p| p.len()).sum();
        let mut frame = vec![0u8; len + Mllp.overhead()];
        let n = Mllp.encode_parts(payload_parts, &mut frame).expect("sized");
        frame.truncate(n);
        let at = self.now + 1 + self.rng.below(self.latency_max);
        let q = &mut link.to[1 - from];
        let at = q.back().map_or(at, |b| at.max(b.0));
        q.push_back((at, frame));
    }

    fn session(&mut self, side: usize) -> Option<&mut Session> {
        if side == CLIENT {
            Some(&mut self.client)
        } else {
            self.server.as_mut()
        }
    }

    /// Writes everything the side's session wants to send on the current link.
    fn pump(&mut self, side: usize) {
        let linked =
            self.link
                .as_ref()
                .is_some_and(|l| if side == CLIENT { l.welcomed } else { l.bound });
        if !linked {
            return;
        }
        loop {
            let Some(s) = self.session(side) else { return };
            let (bytes, sent) = match s.poll_transmit() {
                None => return,
                Some(tx @ Transmit::Ack(seq)) => (control(Msg::Ack(seq)), tx.sent()),
                Some(tx @ Transmit::Skip(seq)) => (control(Msg::Skip(seq)), tx.sent()),
                Some(tx @ Transmit::Data { seq, payload }) => {
                    let mut v = wire::data_header(seq).to_vec();
                    v.extend_from_slice(payload);
                    (v, tx.sent())
                }
            };
            if let Some(s) = self.session(side) {
                s.handle_transmitted(sent);
            }
            self.send_bytes(side, &[&bytes]);
        }
    }

    fn connect(&mut self) {
        self.link = Some(SimLink {
            to: [VecDeque::new(), VecDeque::new()],
            rx: [Vec::new(), Vec::new()],
            scan: [0, 0],
            bound: false,
            welcomed: false,
        });
        let hello = control(Msg::Hello(self.client.greeting()));
        self.send_bytes(CLIENT, &[&hello]);
    }

    /// The link dies: what was in flight is cut at a random byte and lost.
    fn cut(&mut self) {
        if let Some(mut link) = self.link.take() {
            self.faults += 1;
            // Some prefix of the in-flight bytes still arrives (cut mid-frame).
            for side in [CLIENT, SERVER] {
                let mut bytes: Vec<u8> = link.to[side].drain(..).flat_map(|b| b.1).collect();
                let keep = self.rng.below(bytes.len() as u64 + 1) as usize;
                bytes.truncate(keep);
                link.rx[side].extend_from_slice(&bytes);
            }
            self.link = Some(link);
            for side in [CLIENT, SERVER] {
                self.decode(side);
            }
            self.link = None;
        }
        self.client.handle_link_lost(t(self.now));
        if let Some(s) = self.server.as_mut() {
            s.handle_link_lost(t(self.now));
        }
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&mut self) {
        let backoff = Backoff {
            min: Duration::from_millis(50),
            max: Duration::from_millis(800),
            max_attempts: None,
        };
        let r = self.rng.next_u64();
        let d = backoff.delay(self.attempt, r).expect("unlimited attempts");
        self.attempt += 1;
        self.reconnect_at = self.now + d.as_millis() as u64;
    }

    fn decode(&mut self, side: usize) {
        loop {
            let Some(link) = self.link.as_mut() else {
                return;
            };
            let rx = &mut link.rx[side];
            let Ok(Decoded::Frame {
                payload, consumed, ..
            }) = Mllp.decode(rx, &mut link.scan[side], 1 << 20)
            else {
                return;
            };
            let frame = rx[payload].to_vec();
            rx.drain(..consumed);
            link.scan[side] = 0;
            let msg = wire::decode(&frame).expect("well-formed");
            self.handle(side, msg);
        }
    }

    fn handle(&mut self, side: usize, msg: Msg<'_>) {
        let now = t(self.now);
        match msg {
            Msg::Hello(g) => self.server_hello(g),
            Msg::Welcome(g) => {
                self.client.handle_greeting(now, g);
                if let Some(l) = self.link.as_mut() {
                    l.welcomed = true;
                }
                self.attempt = 0;
                self.pump(CLIENT);
            }
            Msg::Data { seq, .. } => {
                let Some(s) = self.session(side) else { return };
                if s.handle_data(now, seq) == Received::Deliver {
                    self.apps[side].got.push(seq);
                }
                self.pump(side);
            }
            Msg::Ack(seq) => {
                if let Some(s) = self.session(side) {
                    s.handle_ack(seq);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The server's side of the handshake: resume a known session with the right
    /// token, otherwise start a new one (a client whose session expired learns it
    /// from the new id).
    fn server_hello(&mut self, g: Greeting) {
        let now = t(self.now);
        let known = self.server.as_ref().is_some_and(|s| {
            s.id() == g.session && s.token_matches(&g.token) && s.ended().is_none()
        });
        if !known {
            if self.server.as_ref().is_some_and(|s| s.ended().is_none()) && g.session != 0 {
                panic!("client presented an unknown live session");
            }
            self.next_id += 1;
            let mut token = [0u8; wire::TOKEN_LEN];
            token
                .iter_mut()
                .for_each(|b| *b = self.rng.next_u64() as u8);
            self.server = Some(Session::server(self.cfg, self.next_id, token, now));
        }
        let s = self.server.as_mut().expect("just ensured");
        s.handle_greeting(now, g);
        let welcome = control(Msg::Welcome(s.greeting()));
        self.send_bytes(SERVER, &[&welcome]);
        if let Some(l) = self.link.as_mut() {
            l.bound = true;
        }
        self.pump(SERVER);
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.client.poll_event() {
            if let SessionEvent::Ended(how) = ev {
                self.apps[CLIENT].ended.get_or_insert(how);
            }
        }
        if let Some(s) = self.server.as_mut() {
            while let Some(ev) = s.poll_event() {
                if let SessionEvent::Ended(how) = ev {
                    self.server_ended.get_or_insert(how);
                }
            }
        }
    }

    fn app_send(&mut self, side: usize) {
        if side == SERVER && self.server_ended.is_some() {
            // This scenario follows one session: once the server reported it
            // ended, its application sends nothing on a replacement session.
            return;
        }
        let Some(s) = self.session(side) else { return };
        if s.ended().is_some() {
            return;
        }
        if let Ok(seq) = s.send(b"MSH|^~\\&|SIM|||||ORU^R01|X|P|2.5") {
            self.apps[side].sent.push(seq);
            self.pump(side);
        }
    }
}

fn run(seed: u64) -> Sim {
    let mut rng = Rng::new(seed);
    let latency_max = 1 + rng.below(50);
    let cfg = SessionConfig {
        max_depth: 64,
        max_depth_disconnected: 256,
        max_bytes: 64 * 1024,
        reconnect_timeout: Duration::from_millis(RECONNECT_TIMEOUT),
        ack_every: 1 + rng.below(16) as u32,
        ack_delay: Duration::from_millis(1 + rng.below(30)),
        ..SessionConfig::default()
    };
    let app = || App {
        sent: Vec::new(),
        got: Vec::new(),
        ended: None,
    };
    let mut sim = Sim {
        rng,
        now: 0,
        cfg,
        client: Session::client(cfg, t(0)),
        server: None,
        next_id: 0,
        link: None,
        partition_until: 0,
        reconnect_at: 0,
        attempt: 0,
        apps: [app(), app()],
        server_ended: None,
        latency_max,
        faults: 0,
    };
    let horizon = 20_000;
    let mut next_send = [0u64, 0u64];
    let mut next_fault = 200 + sim.rng.below(2_000);
    let mut steps_at_now = 0u32;
    // Run with faults until the horizon, then heal and let everything settle.
    while sim.now < horizon + 30_000 {
        let healing = sim.now >= horizon;
        // Next instant anything happens.
        let mut next = sim.now + 1_000;
        if let Some(l) = &sim.link {
            for q in &l.to {
                if let Some(b) = q.front() {
                    next = next.min(b.0);
                }
            }
        } else {
            next = next.min(sim.reconnect_at.max(sim.partition_until));
        }
        for d in [
            sim.client.poll_timeout(),
            sim.server.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(d.as_millis());
        }
        if !healing {
            next = next.min(next_send[0]).min(next_send[1]).min(next_fault);
        }
        // Every step moves time forward, so a stuck deadline fails fast instead of spinning.
        assert!(
            next > sim.now || steps_at_now < 1_000,
            "seed {seed}: simulation stuck at {}",
            sim.now
        );
        steps_at_now = if next > sim.now { 0 } else { steps_at_now + 1 };
        sim.now = next.max(sim.now);

        // Deliver due bytes, in random splits.
        for side in [CLIENT, SERVER] {
            while let Some(l) = sim.link.as_mut() {
                if l.to[side].front().is_none_or(|b| b.0 > sim.now) {
                    break;
                }
                let (_, bytes) = l.to[side].pop_front().expect("checked");
                l.rx[side].extend_from_slice(&bytes);
                sim.decode(side);
            }
        }
        // Timers: ACK delays, the server's session expiry.
        sim.client.handle_timeout(t(sim.now));
        if let Some(s) = sim.server.as_mut() {
            s.handle_timeout(t(sim.now));
        }
        sim.pump(CLIENT);
        sim.pump(SERVER);
        sim.drain_events();
        if sim.apps[CLIENT].ended.is_some() {
            break; // the client application was told; the scenario is over
        }
        // Faults.
        if !healing && sim.now >= next_fault {
            match sim.rng.below(4) {
                0 | 1 => sim.cut(),
                2 => {
                    // A partition: no link for a while, sometimes past the resume window.
                    let long = sim.rng.below(10) == 0;
                    let len = if long {
                        RECONNECT_TIMEOUT + 500 + sim.rng.below(3_000)
                    } else {
                        100 + sim.rng.below(2_000)
                    };
                    sim.partition_until = sim.now + len;
                    sim.cut();
                }
                _ => {} // a quiet spell
            }
            next_fault = sim.now + 50 + sim.rng.below(2_500);
        }
        if sim.link.is_none() && sim.now >= sim.reconnect_at && sim.now >= sim.partition_until {
            sim.connect();
        }
        // Applications.
        if !healing {
            for side in [CLIENT, SERVER] {
                if sim.now >= next_send[side] {
                    for _ in 0..1 + sim.rng.below(5) {
                        sim.app_send(side);
                    }
                    next_send[side] = sim.now + sim.rng.below(400);
                }
            }
        }
        let settled = healing
            && sim
                .link
                .as_ref()
                .is_some_and(|l| l.welcomed && l.to.iter().all(|q| q.is_empty()))
            && sim.client.unacked() == 0
            && sim.server.as_ref().is_some_and(|s| s.unacked() == 0);
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

fn check(seed: u64) -> (u64, bool) {
    let sim = run(seed);
    let [c, s] = &sim.apps;
    assert_prefix(seed, "client to server", &c.sent, &s.got);
    assert_prefix(seed, "server to client", &s.sent, &c.got);
    let client_end = c.ended;
    let server_end = sim.server_ended;
    match (client_end, server_end) {
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
            (sim.faults, false)
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
            (sim.faults, true)
        }
    }
}

#[test]
fn sessions_deliver_exactly_once_in_order_or_report_every_loss_over_ten_thousand_seeds() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..10_000).collect(),
    };
    let (mut faults, mut ended) = (0u64, 0u64);
    for &seed in &seeds {
        let (f, e) = check(seed);
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
