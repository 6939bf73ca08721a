//! Deterministic simulation of liveness through the pure layers: two `Link`s
//! joined by a simulated network (latency, random read splits, a partition that
//! silently drops everything, as a dead NAT entry does) on a virtual clock.
//!
//! Over many seeds: a live link never closes; after the partition, each end that
//! runs a detector closes with the right reason no later than the configured
//! detection bound and no earlier than the silence it is configured to tolerate.
//! A failing seed is printed and replays alone with `SIM_SEED=<n>`.

mod sim;

use std::collections::VecDeque;
use std::time::Duration;

// The crate's PRNG: a seed replays a run exactly.
use mooring::internals::rng::XorShift64 as Rng;

use mooring::frame::{Codec, Decoded, Mllp};
use mooring::internals::link::{FrameAction, Link, LinkConfig, CONTROL_SCRATCH};
use mooring::{CloseReason, Heartbeat, Instant, KeepAliveMessage, LivenessConfig, Protocol};

/// One end: a link, the bytes it has received but not decoded, what it delivered.
struct End {
    link: Link,
    rx: Vec<u8>,
    scan: usize,
    closed: Option<(CloseReason, u64)>,
    delivered: Vec<Vec<u8>>,
    /// A raw application that answers every message (a third-party HL7 engine).
    replies: bool,
}

/// Bytes in flight in one direction: (arrival time, bytes).
type Pipe = VecDeque<(u64, Vec<u8>)>;

struct Sim {
    rng: Rng,
    now: u64,
    ends: [End; 2],
    pipes: [Pipe; 2], // pipes[i] carries bytes *to* end i
    latency_max: u64,
    cut_at: u64,
    /// Every application message sent, in order.
    sent: Vec<Vec<u8>>,
    /// How many of `sent` went out early enough that they must arrive.
    must_arrive: usize,
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

impl Sim {
    fn partitioned(&self) -> bool {
        self.now >= self.cut_at
    }

    fn transmit(&mut self, from: usize, payload: &[u8]) {
        let mut frame = vec![0u8; payload.len() + Mllp.overhead()];
        let n = Mllp.encode(payload, &mut frame).expect("sized");
        frame.truncate(n);
        if self.partitioned() {
            return; // blackholed: no RST, no FIN
        }
        let at = self.now + 1 + self.rng.below(self.latency_max);
        // Keep TCP's order: never arrive before earlier bytes.
        let at = self.pipes[1 - from].back().map_or(at, |b| at.max(b.0));
        self.pipes[1 - from].push_back((at, frame));
    }

    fn pump_output(&mut self, i: usize) {
        let mut buf = [0u8; CONTROL_SCRATCH];
        while let Some((c, n)) = self.ends[i].link.poll_transmit(&mut buf) {
            self.transmit(i, &buf[..n]);
            self.ends[i].link.handle_transmitted(t(self.now), c);
        }
    }

    fn send_data(&mut self, i: usize, payload: &[u8]) {
        if !self.ends[i].link.may_send() {
            return;
        }
        let mut msg = Vec::new();
        if let Some(h) = self.ends[i].link.next_data_header() {
            msg.extend_from_slice(&h);
        }
        msg.extend_from_slice(payload);
        self.transmit(i, &msg);
        self.ends[i].link.handle_queued(t(self.now), None);
    }

    fn close(&mut self, i: usize, r: CloseReason) {
        let e = &mut self.ends[i];
        if e.closed.is_none() {
            e.link.close(r);
            e.closed = Some((r, self.now));
        }
    }

    /// Delivers due bytes to end `i` in random splits and handles every frame.
    fn receive(&mut self, i: usize) {
        while self.pipes[i].front().is_some_and(|b| b.0 <= self.now) {
            let (_, bytes) = self.pipes[i].pop_front().expect("checked");
            if self.partitioned() {
                continue; // in flight when the partition started: lost
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let k = 1 + self.rng.below(rest.len() as u64) as usize;
                let (chunk, tail) = rest.split_at(k);
                rest = tail;
                if self.ends[i].closed.is_some() {
                    return;
                }
                self.ends[i].rx.extend_from_slice(chunk);
                self.ends[i].link.handle_input(t(self.now), chunk.len());
                self.decode(i);
            }
        }
    }

    fn decode(&mut self, i: usize) {
        loop {
            let e = &mut self.ends[i];
            let d = Mllp
                .decode(&e.rx, &mut e.scan, 1 << 16)
                .expect("well-formed stream");
            let Decoded::Frame {
                payload, consumed, ..
            } = d
            else {
                return;
            };
            let frame = e.rx[payload.clone()].to_vec();
            e.rx.drain(..consumed);
            e.scan = 0;
            match e.link.handle_frame(t(self.now), &frame) {
                FrameAction::Deliver { offset, .. } => {
                    let body = frame[offset..].to_vec();
                    e.delivered.push(body);
                    if e.replies {
                        self.send_data(i, b"MSH|^~\\&|ACK");
                    }
                }
                FrameAction::Close(r) => self.close(i, r),
                FrameAction::Established(_)
                | FrameAction::Ack(_)
                | FrameAction::SessionSkip(_)
                | FrameAction::Skip => {}
            }
            self.pump_output(i);
        }
    }

    fn next_event_time(&self, next_send: u64) -> u64 {
        let mut n = next_send;
        for p in &self.pipes {
            if let Some(b) = p.front() {
                n = n.min(b.0);
            }
        }
        for e in &self.ends {
            if e.closed.is_none() {
                if let Some(d) = e.link.poll_timeout() {
                    n = n.min(d.as_millis());
                }
            }
        }
        n.max(self.now)
    }
}

fn link_cfg(liveness: LivenessConfig) -> LinkConfig {
    LinkConfig {
        idle_timeout: None,
        write_timeout: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(5),
        close_after_reply: false,
        mllp_commit_ack: false,
        liveness,
    }
}

/// Runs one seed; returns the two ends' close outcomes and the partition time.
fn run(seed: u64, client: LivenessConfig, server: LivenessConfig, server_replies: bool) -> Sim {
    let mut rng = Rng::new(seed);
    let latency_max = 1 + rng.below(200);
    let cut_at = 2_000 + rng.below(20_000);
    let mut c = Link::outbound(link_cfg(client), t(0));
    c.handle_connected(t(0));
    let s = Link::accepted(link_cfg(server), t(0));
    let end = |link, replies| End {
        link,
        rx: Vec::new(),
        scan: 0,
        closed: None,
        delivered: Vec::new(),
        replies,
    };
    let mut sim = Sim {
        rng,
        now: 0,
        ends: [end(c, false), end(s, server_replies)],
        pipes: [VecDeque::new(), VecDeque::new()],
        latency_max,
        cut_at,
        sent: Vec::new(),
        must_arrive: 0,
    };
    sim.pump_output(0);
    sim.pump_output(1);
    let mut next_send = sim.rng.below(3_000);
    let horizon = cut_at + 60_000;
    let mut seq = 0u32;
    while sim.now < horizon && sim.ends.iter().any(|e| e.closed.is_none()) {
        sim.now = sim.next_event_time(next_send).min(horizon);
        for i in 0..2 {
            sim.receive(i);
        }
        for i in 0..2 {
            if sim.ends[i].closed.is_some() {
                continue;
            }
            if let Some(r) = sim.ends[i].link.handle_timeout(t(sim.now)) {
                sim.close(i, r);
            } else {
                sim.pump_output(i);
            }
        }
        if sim.now >= next_send {
            // The client application sends now and then, with long silences.
            seq += 1;
            let msg = format!("MSH|^~\\&|DEV|||||ORU^R01|M{seq}|P|2.5");
            if sim.ends[0].closed.is_none() && sim.ends[0].link.may_send() {
                sim.sent.push(msg.clone().into_bytes());
                if sim.now + latency_max < sim.cut_at {
                    sim.must_arrive = sim.sent.len();
                }
                sim.send_data(0, msg.as_bytes());
            }
            next_send = sim.now + 1 + sim.rng.below(8_000);
        }
        // Settle: anything the handlers queued at this instant goes out now.
        for i in 0..2 {
            sim.pump_output(i);
        }
    }
    sim
}

/// `who` closed at `at`: after the cut at `cut` (never a live link), and at
/// most `bound` after it.
fn assert_noticed_within(seed: u64, who: &str, at: u64, cut: u64, bound: u64) {
    assert!(
        at >= cut,
        "seed {seed}: {who} closed a live link at {at} (cut {cut})"
    );
    assert!(
        at <= cut + bound,
        "seed {seed}: {who} took {} ms > bound {bound}",
        at - cut
    );
}

/// What arrived is what was sent, in order, with nothing skipped or repeated, and
/// includes everything sent well before the partition.
fn assert_in_order(seed: u64, delivered: &[Vec<u8>], sim: &Sim) {
    assert!(
        delivered.len() <= sim.sent.len(),
        "seed {seed}: more arrived than was sent"
    );
    assert_eq!(
        delivered,
        &sim.sent[..delivered.len()],
        "seed {seed}: order"
    );
    assert!(
        delivered.len() >= sim.must_arrive,
        "seed {seed}: {} of {} messages sent before the cut arrived",
        delivered.len(),
        sim.must_arrive
    );
}

#[test]
fn heartbeat_detects_a_blackholed_link_on_both_ends_within_the_bound() {
    let hb = Heartbeat {
        interval: Duration::from_millis(1_000),
        timeout: Duration::from_millis(3_000),
    };
    let cfg = LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat: Some(hb),
        ..Default::default()
    };
    let bound = cfg.detection_bound().expect("heartbeat is on").as_millis() as u64;
    let timeout = hb.timeout.as_millis() as u64;
    let interval = hb.interval.as_millis() as u64;
    for seed in sim::seeds(1_000) {
        let sim = run(seed, cfg.clone(), cfg.clone(), false);
        for (i, e) in sim.ends.iter().enumerate() {
            let (reason, at) = e
                .closed
                .unwrap_or_else(|| panic!("seed {seed}: end {i} never noticed the partition"));
            assert_eq!(
                reason,
                CloseReason::HeartbeatTimeout,
                "seed {seed}: end {i}"
            );
            assert_noticed_within(seed, &format!("end {i}"), at, sim.cut_at, bound);
            // A live peer is heard at least every 1.5 x interval (the accepting
            // side's ping period) + latency: the verdict cannot come sooner than
            // the tolerated silence after that.
            let earliest =
                (sim.cut_at + timeout).saturating_sub(interval * 3 / 2 + sim.latency_max);
            assert!(
                at >= earliest,
                "seed {seed}: end {i} closed after only {} ms of silence",
                at - sim.cut_at
            );
        }
        assert_in_order(seed, &sim.ends[1].delivered, &sim);
    }
}

#[test]
fn keepalive_message_detects_a_blackholed_raw_peer_within_the_bound() {
    let client = LivenessConfig {
        keepalive: Some(KeepAliveMessage {
            payload: b"MSH|^~\\&|KEEPALIVE|||||NMD^N02|KA|P|2.5".into(),
            every: Duration::from_millis(1_500),
            timeout: Some(Duration::from_millis(1_000)),
        }),
        ..Default::default()
    };
    let bound = client
        .detection_bound()
        .expect("keep-alive with reply timeout")
        .as_millis() as u64;
    for seed in sim::seeds(1_000) {
        // The server is a plain third-party engine: raw, no liveness, answers messages.
        let sim = run(seed, client.clone(), LivenessConfig::default(), true);
        let (reason, at) = sim.ends[0]
            .closed
            .unwrap_or_else(|| panic!("seed {seed}: client never noticed the partition"));
        assert_eq!(reason, CloseReason::KeepAliveTimeout, "seed {seed}");
        assert_noticed_within(seed, "the client", at, sim.cut_at, bound);
        assert!(
            sim.ends[1].closed.is_none(),
            "seed {seed}: a raw server has no detector of its own"
        );
        let app: Vec<_> = sim.ends[1]
            .delivered
            .iter()
            .filter(|m| !m.windows(9).any(|w| w == b"KEEPALIVE"))
            .cloned()
            .collect();
        assert_in_order(seed, &app, &sim);
    }
}
