//! Deterministic simulation of reliable sessions through two whole, real
//! nodes: a client [`Node`] that opens a session (and redials with backoff)
//! and a server [`Node`] that listens with sessions (tokens, resume, expiry),
//! joined by the crate's simulated network (`mooring::internals::simnet`) on
//! one virtual clock. Everything between the application and the wire is the
//! node's own: framing, handshake, the session table's calls, CLOSE frames,
//! timers, backpressure. The test only plays the applications and the network.
//!
//! The network delays bytes (each link its own latency, each write some
//! jitter), cuts links at random byte positions (RST-like: a random prefix of
//! what was in flight arrives, a partial frame included, then both ends see a
//! reset), partitions for random times (dials are refused meanwhile; every
//! link is cut), some longer than the server's `reconnect_timeout`, and
//! stalls links (their latency grows; the heartbeat finds them dead and the
//! client redials), and so reorders at frame boundaries where TCP allows it:
//! between links (a dead link's last frames and CLOSE, or a stale dial,
//! after a newer link's), never within one. Both applications send at random times. Over 10,000 seeds, for each
//! direction:
//!
//! - what the receiving application got is exactly a prefix of what the sender's
//!   application sent: in order, nothing twice, nothing skipped;
//! - if the session survived, the prefix is everything;
//! - if the session ended (`Lost`/`Expired`/...), both applications were told,
//!   and the count each sender reported covers every message of its that is
//!   missing at the peer: no loss is silent.
//!
//! A failure prints its seed; `SIM_SEED=<n> cargo test --test sim_node`
//! replays it alone (the nodes' session tokens and jitter come from the seed
//! too); `SIM_SEEDS=<n>` runs the first n. The seeds run as four tests of a
//! quarter each, in parallel.

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mooring::internals::rng::XorShift64 as Rng;
use mooring::internals::simnet::{SimConfig, SimNet};
use mooring::session::{Backoff, SessionConfig, SessionEnd, SessionId, SessionNote};
use mooring::{
    Clock as _, ConnectConfig, Event, Heartbeat, Instant, ListenConfig, LivenessConfig,
    ManualClock, Node, NodeConfig, Protocol,
};

const CLIENT: usize = 0;
const SERVER: usize = 1;
const RECONNECT_TIMEOUT: u64 = 5_000;
/// Virtual time with faults, then time to heal and settle (ms).
const HORIZON: u64 = 20_000;
const HEAL: u64 = 30_000;
/// Rounds of polling at one instant before the test calls it stuck.
const ROUNDS_PER_INSTANT: u32 = 1_000;

#[derive(Default)]
struct App {
    sent: Vec<u64>,
    got: Vec<u64>,
    ended: Option<SessionEnd>,
}

struct Sim {
    seed: u64,
    clock: ManualClock,
    net: SimNet,
    nodes: [Node; 2],
    dice: Rng,
    apps: [App; 2],
    client_id: SessionId,
    /// The client's session is carried by a link (last note `Established`).
    client_up: bool,
    /// The session the server's application follows (the first one).
    server_id: Option<SessionId>,
    server_ended: Option<SessionEnd>,
    next_msg: [u64; 2],
    faults: u64,
}

fn mooring() -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        handshake_timeout: Duration::from_secs(2),
        // A stalled link is found dead and replaced while its bytes are
        // still on their way: the new link overtakes it.
        heartbeat: Some(Heartbeat {
            interval: Duration::from_millis(1_000),
            timeout: Duration::from_millis(3_000),
        }),
        ..LivenessConfig::default()
    }
}

/// Small nodes: a few links, one working size, one large buffer.
fn node_cfg() -> NodeConfig {
    NodeConfig {
        max_links: 4,
        max_sessions: 2,
        buffer_size: 4 * 1024,
        max_frame: 4 * 1024,
        large_buffers: 1,
        read_burst: 0,
        ..NodeConfig::default()
    }
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7_000))
}

/// Prints the seed of a run that panicked anywhere (in the node too).
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "sim_node: failed at seed {0}; replay: SIM_SEED={0} cargo test --test sim_node",
                self.0
            );
        }
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut dice = Rng::new(seed);
        let clock = ManualClock::new(Instant::from_millis(1_000));
        let net = SimNet::new(
            SimConfig {
                max_links: 8,
                pipe_bytes: 16 * 1024,
                pipe_segments: 64,
                latency_ms: (1, 1 + dice.below(50)),
                jitter_ms: dice.below(10),
                seed: dice.next_u64(),
                // Node-to-node reordering comes from the links' own latencies.
            },
            clock.clone(),
        );
        let session = SessionConfig {
            max_depth: 64,
            max_depth_disconnected: 256,
            max_bytes: 64 * 1024,
            reconnect_timeout: Duration::from_millis(RECONNECT_TIMEOUT),
            ack_every: 1 + dice.below(16) as u32,
            ack_delay: Duration::from_millis(1 + dice.below(30)),
            ..SessionConfig::default()
        };
        let mut server = Node::with_sim(node_cfg(), &net, dice.next_u64()).expect("server");
        server
            .listen(
                server_addr(),
                ListenConfig {
                    max_connections: 4,
                    liveness: mooring(),
                    session: Some(session),
                    ..ListenConfig::default()
                },
            )
            .expect("listens");
        let mut client = Node::with_sim(node_cfg(), &net, dice.next_u64()).expect("client");
        let connect = ConnectConfig {
            connect_timeout: Duration::from_millis(1_000),
            liveness: mooring(),
            session: Some(session),
            backoff: Backoff {
                min: Duration::from_millis(50),
                max: Duration::from_millis(800),
                max_attempts: None,
            },
            ..ConnectConfig::default()
        };
        let client_id = client.open_session(server_addr(), &connect).expect("opens");
        Sim {
            seed,
            clock,
            net,
            nodes: [client, server],
            dice,
            apps: Default::default(),
            client_id,
            client_up: false,
            server_id: None,
            server_ended: None,
            next_msg: [0, 0],
            faults: 0,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().as_millis()
    }

    /// Polls both nodes and takes their events until neither has anything
    /// more at this instant.
    fn run_instant(&mut self) {
        for _ in 0..ROUNDS_PER_INSTANT {
            let mut events = 0;
            for side in [CLIENT, SERVER] {
                self.nodes[side].poll(Some(Duration::ZERO)).expect("poll");
                while self.take_event(side) {
                    events += 1;
                }
            }
            if events == 0 {
                return;
            }
        }
        panic!("seed {}: stuck at {} ms", self.seed, self.now());
    }

    /// Takes one event of `side`'s node; false when there was none.
    fn take_event(&mut self, side: usize) -> bool {
        let Some(ev) = self.nodes[side].next_event() else {
            return false;
        };
        match ev {
            Event::SessionMessage { payload, .. } => {
                let n = std::str::from_utf8(&payload[4..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .expect("a message of the test");
                self.apps[side].got.push(n);
            }
            Event::Session { session, note } => match (side, note) {
                (CLIENT, SessionNote::Established { .. }) => self.client_up = true,
                (CLIENT, SessionNote::Reconnecting { .. }) => self.client_up = false,
                (CLIENT, SessionNote::Ended(how)) => {
                    self.client_up = false;
                    self.apps[CLIENT].ended.get_or_insert(how);
                }
                (SERVER, SessionNote::Established { .. }) => {
                    self.server_id.get_or_insert(session);
                }
                (SERVER, SessionNote::Ended(how)) if Some(session) == self.server_id => {
                    self.server_ended.get_or_insert(how);
                }
                _ => {}
            },
            _ => {}
        }
        true
    }

    fn app_send(&mut self, side: usize) {
        let id = match side {
            CLIENT => self.client_id,
            // This scenario follows one session: once the server reported it
            // ended, its application sends nothing on another.
            _ => match self.server_id {
                Some(id) if self.server_ended.is_none() => id,
                _ => return,
            },
        };
        let n = self.next_msg[side];
        let mut buf = [0u8; 32];
        let len = {
            use std::io::Write as _;
            let mut w = &mut buf[..];
            write!(w, "MSG|{n}").expect("fits");
            32 - w.len()
        };
        if self.nodes[side].session_send(id, &buf[..len]).is_ok() {
            self.apps[side].sent.push(n);
            self.next_msg[side] += 1;
        }
    }

    fn fault(&mut self) {
        match self.dice.below(5) {
            0 | 1 => {
                self.faults += self.net.cut_all() as u64;
            }
            2 => {
                // A partition: no link for a while, sometimes past the resume window.
                let long = self.dice.below(10) == 0;
                let len = if long {
                    RECONNECT_TIMEOUT + 500 + self.dice.below(3_000)
                } else {
                    100 + self.dice.below(2_000)
                };
                self.faults += 1;
                self.net.partition(Instant::from_millis(self.now() + len));
            }
            3 => {
                // A stall: the links in use get slow, some past the heartbeat.
                self.faults += 1;
                let extra = 200 + self.dice.below(5_000);
                self.net.slow_all(Duration::from_millis(extra));
            }
            _ => {} // a quiet spell
        }
    }

    fn settled(&self) -> bool {
        let unacked = |side: usize, id: Option<SessionId>| {
            id.and_then(|id| self.nodes[side].session_unacked(id))
        };
        // (Heartbeats keep bytes in flight: the net is never idle for long.)
        self.client_up
            && unacked(CLIENT, Some(self.client_id)) == Some(0)
            && unacked(SERVER, self.server_id) == Some(0)
    }

    fn run(&mut self) {
        let start = self.now();
        let (horizon, end) = (start + HORIZON, start + HORIZON + HEAL);
        let mut next_send = [start, start];
        let mut next_fault = start + 200 + self.dice.below(2_000);
        self.run_instant();
        while self.now() < end {
            let now = self.now();
            let healing = now >= horizon;
            // The next instant anything happens.
            let mut next = now + 1_000;
            let deadlines = self.nodes.iter().filter_map(|n| n.next_deadline());
            for t in deadlines.chain(self.net.next_change()) {
                next = next.min(t.as_millis());
            }
            if !healing {
                next = next.min(next_send[0]).min(next_send[1]).min(next_fault);
            }
            let next = next.max(now + 1);
            self.clock.advance(Duration::from_millis(next - now));
            // The applications and the network act at this instant, then the
            // nodes handle it all.
            let now = next;
            if !healing && now >= next_fault {
                self.fault();
                next_fault = now + 50 + self.dice.below(2_500);
            }
            if !healing {
                for side in [CLIENT, SERVER] {
                    if now >= next_send[side] {
                        for _ in 0..1 + self.dice.below(3) {
                            self.app_send(side);
                        }
                        next_send[side] = now + self.dice.below(500);
                    }
                }
            }
            self.run_instant();
            if self.apps[CLIENT].ended.is_some() {
                break; // the client application was told; the scenario is over
            }
            if healing && self.settled() {
                break;
            }
        }
    }
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

/// Runs seed `seed` and checks it: (link faults, the session ended, overtakes).
fn check(seed: u64) -> (u64, bool, u64) {
    let _guard = SeedGuard(seed);
    let mut sim = Sim::new(seed);
    sim.run();
    let [c, s] = &sim.apps;
    assert_prefix(seed, "client to server", &c.sent, &s.got);
    assert_prefix(seed, "server to client", &s.sent, &c.got);
    let (client_end, server_end) = (c.ended, sim.server_ended);
    let ended = match (client_end, server_end) {
        (None, None) => {
            assert!(
                sim.settled(),
                "seed {seed}: the session never settled: client up {}, unacked {:?} / {:?}",
                sim.client_up,
                sim.nodes[CLIENT].session_unacked(sim.client_id),
                sim.server_id
                    .map(|id| sim.nodes[SERVER].session_unacked(id))
            );
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
    (sim.faults, ended, sim.net.stats().overtakes)
}

/// The seeds run as four tests, one quarter each, so that `cargo test` runs
/// them on every core; `SIM_SEED=<n>` replays one seed (in the first quarter).
fn run_quarter(quarter: u64) {
    let count = std::env::var("SIM_SEEDS").map_or(10_000, |n| n.parse().expect("a number"));
    let seeds = sim::seeds_of_part(count, quarter, 4);
    let (mut faults, mut ended, mut overtakes) = (0u64, 0u64, 0u64);
    for &seed in &seeds {
        let (f, e, o) = check(seed);
        faults += f;
        ended += u64::from(e);
        overtakes += o;
    }
    println!(
        "sim_node: {} seeds, {faults} link faults, {ended} sessions ended with a reported loss, {overtakes} cross-link overtakes",
        seeds.len()
    );
    if seeds.len() > 1 {
        assert!(ended > 0, "the long partitions must exercise expiry");
        assert!(
            ended < seeds.len() as u64,
            "most sessions must survive their faults"
        );
        assert!(overtakes > 0, "links must overtake each other");
    }
}

#[test]
fn whole_nodes_deliver_sessions_exactly_once_in_order_or_report_every_loss_seeds_0_to_2499() {
    run_quarter(0);
}

#[test]
fn whole_nodes_deliver_sessions_exactly_once_in_order_or_report_every_loss_seeds_2500_to_4999() {
    run_quarter(1);
}

#[test]
fn whole_nodes_deliver_sessions_exactly_once_in_order_or_report_every_loss_seeds_5000_to_7499() {
    run_quarter(2);
}

#[test]
fn whole_nodes_deliver_sessions_exactly_once_in_order_or_report_every_loss_seeds_7500_to_9999() {
    run_quarter(3);
}
