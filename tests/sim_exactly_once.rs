//! Deterministic simulation: a relay's spool and its mooring session to the
//! upstream, crashing at random, resumed from the session state in the spool.
//!
//! Each seed runs random traffic through the pieces the relay is made of: a
//! spool [`Journal`] on a [`SimDisk`] (devices' messages appended, group
//! commits, the device's AA once its message is covered), a client
//! [`Session`] to the upstream fed with committed messages in spool order,
//! and the upstream's server [`Session`], whose application records every
//! message it is handed and answers each with a reply. Links drop at random;
//! the relay crashes at random (a power cut: unsynced writes lost, the last
//! torn; a process crash; a crash in the middle of a commit) and restarts from
//! the spool: the stored session state is restored and resumed, its
//! undelivered messages queued again in order. Most restarts come within the
//! upstream's resume window; some come after it, when the upstream has dropped
//! the session: the relay then opens a new one and counts the possible
//! duplicates.
//!
//! At the end of each seed (traffic drained), checked:
//!
//! - every message that got AA reached the upstream application;
//! - the first deliveries are in the original order;
//! - a seed whose restarts all came within the window delivered nothing twice
//!   (exactly once); otherwise the duplicates are at most the possible
//!   duplicates the relay reported.
//!
//! A failure prints its seed; `SIM_SEED=<n> cargo test --test sim_exactly_once`
//! replays it alone.

mod sim;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use mooring::internals::rng::XorShift64 as Rng;
use mooring::internals::session::{Received, Sent, Session, Transmit};
use mooring::internals::wire::TOKEN_LEN;
use mooring::session::{SessionConfig, StoredSession};
use mooring::spool::sim::SimDisk;
use mooring::spool::{Fsync, Journal, Seq, SessionState, SpoolConfig};
use mooring::Instant;

/// The upstream keeps a disconnected session this long.
const WINDOW: Duration = Duration::from_millis(1000);
/// Devices stop sending while this many messages are undelivered.
const CAP: usize = 48;

fn session_cfg() -> SessionConfig {
    SessionConfig {
        max_depth: 256,
        max_depth_disconnected: 256,
        max_bytes: 16 << 10,
        ack_every: 3,
        reconnect_timeout: WINDOW,
        ..SessionConfig::default()
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    aa: u64,
    crashes: u64,
    resumed: u64,
    beyond_window: u64,
    possible_duplicates: u64,
    duplicates: u64,
}

/// The upstream: its session and its application's record.
struct Upstream {
    session: Session,
    connected: bool,
    next_id: u64,
    /// Message ids in the order the application got them.
    app: Vec<u64>,
}

/// The relay's state that a crash loses.
struct Relay {
    journal: Journal<SimDisk>,
    client: Option<Session>,
    connected: bool,
    /// Spool numbers of the messages handed to the client session, from its
    /// oldest unacknowledged one.
    handed: VecDeque<Seq>,
    /// The newest spool number handed (sessions take messages in spool order).
    last_handed: Seq,
    /// The state given to the journal last, and the one a commit made durable.
    state: Option<SessionState>,
    durable: Option<SessionState>,
    /// Appended and not yet covered by a commit: (spool number, message id).
    uncommitted: Vec<(Seq, u64)>,
    acked_through: Seq,
    /// The last commit could not write the state (spool full).
    stuck: bool,
}

struct Sim {
    rng: Rng,
    seed: u64,
    now: Instant,
    disk: SimDisk,
    cfg: SpoolConfig,
    up: Upstream,
    relay: Relay,
    next_msg: u64,
    /// Message ids that got AA.
    aa: Vec<u64>,
    counts: Counts,
    buf: Vec<u8>,
}

fn tracing() -> bool {
    std::env::var_os("SIM_TRACE").is_some()
}

fn payload(id: u64) -> [u8; 8] {
    id.to_le_bytes()
}

impl Sim {
    fn fail(&self, what: &str) -> ! {
        panic!("seed {}: {what}", self.seed)
    }

    fn open_relay(&mut self) -> Relay {
        open_relay(&self.disk, self.cfg).unwrap_or_else(|e| self.fail(&format!("open: {e}")))
    }
}

fn open_relay(disk: &SimDisk, cfg: SpoolConfig) -> Result<Relay, mooring::spool::SpoolError> {
    let (journal, _) = Journal::open(disk.clone(), cfg)?;
    let acked_through = journal.commit_state().acked_through;
    Ok(Relay {
        state: journal.session(),
        durable: journal.session(),
        journal,
        client: None,
        connected: false,
        handed: VecDeque::new(),
        last_handed: 0,
        uncommitted: Vec::new(),
        acked_through,
        stuck: false,
    })
}

impl Sim {
    /// At start (and after a crash): resumes the stored session, or opens a
    /// new one; queues every undelivered message again, in order.
    fn start_session(&mut self) {
        let undelivered: Vec<_> = self.relay.journal.undelivered().collect();
        let stored = self.relay.durable.filter(SessionState::is_session);
        if tracing() {
            let u: Vec<_> = undelivered.iter().map(|e| e.seq).collect();
            eprintln!("restart: stored {stored:?} undelivered {u:?}");
        }
        let mut client = match stored {
            Some(s) => Session::restore_client(
                session_cfg(),
                StoredSession {
                    id: s.id,
                    token: s.token,
                    next: s.next,
                    received: s.received,
                },
                self.now,
            )
            .unwrap(),
            None => Session::client(session_cfg(), self.now),
        };
        self.relay.handed.clear();
        self.relay.last_handed = 0;
        if stored.is_some() {
            for e in undelivered {
                let m = self.relay.journal.read(e, &mut self.buf).unwrap();
                client.send(&self.buf[..m.len]).unwrap();
                self.relay.handed.push_back(e.seq);
                self.relay.last_handed = e.seq;
            }
        } else {
            // A new session: anything the last one may have sent, it may
            // get again (the mapping is gone). Nothing goes until its
            // identity is durable.
            self.count_possible_duplicates(undelivered.len() as u64);
        }
        self.relay.client = Some(client);
        if self.connect() && stored.is_some() {
            self.counts.resumed += 1;
        }
    }

    fn count_possible_duplicates(&mut self, n: u64) {
        self.counts.possible_duplicates += n;
    }

    /// A new link: HELLO, WELCOME. The upstream answers an unknown (expired)
    /// session with a new one. True when the session went on (not replaced).
    fn connect(&mut self) -> bool {
        let Some(c) = self.relay.client.as_mut() else {
            return false;
        };
        let hello = c.greeting();
        let known = hello.session != 0
            && hello.session == self.up.session.id()
            && self.up.session.ended().is_none()
            && self.up.session.token_matches(&hello.token);
        if !known {
            self.up.next_id += 1;
            let mut token = [0u8; TOKEN_LEN];
            token[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
            self.up.session = Session::server(session_cfg(), self.up.next_id, token, self.now);
        }
        self.up.session.handle_greeting(self.now, hello);
        if tracing() {
            eprintln!(
                "connect: hello {} last_received {} known {known} -> welcome {} last_received {}",
                hello.session,
                hello.last_received,
                self.up.session.id(),
                self.up.session.greeting().last_received
            );
        }
        c.handle_greeting(self.now, self.up.session.greeting());
        if c.ended().is_some() {
            // Beyond the window (Expired) or not resumable (Lost): a new
            // session, and everything undelivered may come twice.
            self.counts.beyond_window += 1;
            let n = self.relay.handed.len() as u64;
            self.count_possible_duplicates(n);
            self.relay.client = Some(Session::client(session_cfg(), self.now));
            self.relay.handed.clear();
            self.relay.last_handed = 0;
            self.connect();
            return false;
        }
        self.relay.connected = true;
        self.up.connected = true;
        self.record_state();
        true
    }

    fn link_lost(&mut self) {
        if let Some(c) = self.relay.client.as_mut() {
            c.handle_link_lost(self.now);
        }
        self.up.session.handle_link_lost(self.now);
        self.relay.connected = false;
        self.up.connected = false;
    }

    /// Gives the journal the session's state when it changed: acknowledged
    /// messages are delivered (their spool numbers), replies received.
    fn record_state(&mut self) {
        let r = &mut self.relay;
        let Some(c) = r.client.as_ref() else { return };
        let Some(stored) = c.stored() else { return };
        let acked = r.handed.len() as u64 - c.unacked();
        let mut delivered = r.journal.delivered();
        for _ in 0..acked {
            delivered = r.handed.pop_front().unwrap();
        }
        let state = SessionState {
            delivered,
            id: stored.id,
            token: stored.token,
            next: stored.next,
            received: stored.received,
        };
        if r.state != Some(state) {
            if tracing() {
                eprintln!(
                    "state: {} {} next {} received {}",
                    state.delivered, state.id, state.next, state.received
                );
            }
            if let Err(e) = r.journal.set_session(state) {
                self.fail(&format!("set_session: {e}"));
            }
            r.state = Some(state);
        }
    }

    fn append(&mut self) {
        if self.relay.journal.undelivered().count() >= CAP {
            return;
        }
        let id = self.next_msg;
        if let Ok(seq) = self.relay.journal.append(id % 5, self.now, &payload(id)) {
            self.next_msg += 1;
            self.relay.uncommitted.push((seq, id));
        }
    }

    /// Group commit: AAs for what it covers; a durable state raises the
    /// session's ACK limit (replies stored) and lets a new session send.
    fn commit(&mut self) -> bool {
        let r = &mut self.relay;
        let c = match r.journal.commit(self.now) {
            Ok(c) => c,
            Err(e) => {
                if tracing() {
                    eprintln!("commit: {e}");
                }
                return false;
            }
        };
        r.acked_through = c.acked_through;
        let (done, rest): (Vec<_>, Vec<_>) = r
            .uncommitted
            .drain(..)
            .partition(|&(seq, _)| seq <= c.acked_through);
        r.uncommitted = rest;
        for (seq, id) in done {
            if tracing() {
                eprintln!("AA: spool {seq} id {id}");
            }
            self.aa.push(id);
            self.counts.aa += 1;
        }
        // A state the full spool cannot take yet stays pending: a new
        // session sends anyway (a crash before it is written means at least
        // once, with the possible duplicates counted).
        r.stuck = r.journal.session_pending();
        if !r.stuck {
            r.durable = r.state;
        }
        if let (Some(c), Some(d)) = (r.client.as_mut(), r.durable) {
            if d.id == c.id() {
                c.set_ack_limit(Some(d.received));
            }
        }
        true
    }

    /// Hands committed messages to the session, in spool order, once its
    /// identity is durable.
    fn hand(&mut self) {
        let r = &mut self.relay;
        let Some(c) = r.client.as_mut() else { return };
        if (r.durable.map(|d| d.id) != Some(c.id()) && !r.stuck) || c.id() == 0 {
            return;
        }
        let next: Vec<_> = r
            .journal
            .undelivered()
            .filter(|e| e.seq > r.last_handed && e.seq <= r.acked_through)
            .take(1 + self.rng.below(4) as usize)
            .collect();
        for e in next {
            let m = r.journal.read(e, &mut self.buf).unwrap();
            c.send(&self.buf[..m.len]).unwrap();
            r.handed.push_back(e.seq);
            r.last_handed = e.seq;
            if tracing() {
                eprintln!("hand: spool {} id {:?}", e.seq, &self.buf[..m.len]);
            }
        }
    }

    /// Up to `n` frames each way.
    fn flow(&mut self, n: usize) {
        if !self.relay.connected {
            return;
        }
        let c = self.relay.client.as_mut().unwrap();
        let s = &mut self.up.session;
        for _ in 0..n {
            let Some(sent) = c.poll_transmit().map(|t| {
                let p = match t {
                    Transmit::Data { payload, .. } => Some(payload.to_vec()),
                    _ => None,
                };
                (t.sent(), p)
            }) else {
                break;
            };
            match sent {
                (Sent::Ack(seq), _) => s.handle_ack(seq),
                // A duplicate (seq already delivered) is dropped by the session.
                (Sent::Data(seq), Some(p)) if s.handle_data(self.now, seq) == Received::Deliver => {
                    let id = u64::from_le_bytes(p[..8].try_into().unwrap());
                    self.up.app.push(id);
                    if tracing() {
                        eprintln!("app: seq {seq} id {id}");
                    }
                    let _ = s.send(b"ACK");
                }
                _ => {}
            }
            c.handle_transmitted(sent.0);
        }
        for _ in 0..n {
            let Some(sent) = s.poll_transmit().map(|t| t.sent()) else {
                break;
            };
            match sent {
                Sent::Ack(seq) => c.handle_ack(seq),
                Sent::Data(seq) => {
                    let _ = c.handle_data(self.now, seq);
                }
                Sent::Skip(_) => {}
            }
            s.handle_transmitted(sent);
        }
        if c.ended().is_some() || s.ended().is_some() {
            let how = (c.ended(), s.ended());
            self.fail(&format!("a session ended while connected: {how:?}"));
        }
        self.record_state();
    }

    fn tick(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        for s in [self.relay.client.as_mut(), Some(&mut self.up.session)]
            .into_iter()
            .flatten()
        {
            s.handle_timeout(self.now);
        }
    }

    fn crash(&mut self) {
        self.counts.crashes += 1;
        let roll = self.rng.below(3);
        if tracing() {
            eprintln!("crash {roll}");
        }
        if roll == 0 {
            self.disk.crash(&mut self.rng);
        } else if roll == 1 {
            // In the middle of a commit.
            self.append();
            self.disk.crash_after(1 + self.rng.below(4));
            let _ = self.commit();
            if self.disk.has_crashed() {
                self.disk.crash(&mut self.rng);
            }
            self.disk.disarm_crash();
        }
        self.link_lost();
        self.relay.client = None;
        // Restart within the window, mostly.
        let away = if self.rng.below(8) == 0 {
            WINDOW.as_millis() as u64 + 1 + self.rng.below(500)
        } else {
            self.rng.below(WINDOW.as_millis() as u64 / 2)
        };
        self.tick(away);
        self.relay = self.open_relay();
        self.start_session();
    }

    fn step(&mut self) {
        match self.rng.below(20) {
            0..=5 => self.append(),
            6..=8 => {
                let _ = self.commit();
            }
            9..=10 => self.hand(),
            11..=15 => {
                let n = 1 + self.rng.below(6) as usize;
                self.flow(n);
            }
            16 => {
                let ms = 1 + self.rng.below(30);
                self.tick(ms);
            }
            17 => {
                self.link_lost();
                let _ = self.connect();
            }
            18 if self.rng.below(3) == 0 => self.crash(),
            _ => {}
        }
    }

    /// No more crashes: everything undelivered goes through.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            let _ = self.commit();
            self.hand();
            self.flow(64);
            self.tick(25);
            let idle = self.relay.journal.undelivered().next().is_none()
                && self.relay.uncommitted.is_empty();
            if idle {
                return;
            }
        }
        self.fail("did not drain");
    }

    fn check(&mut self) {
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        let mut last_first = None;
        for &id in &self.up.app {
            let n = seen.entry(id).or_default();
            *n += 1;
            if *n == 1 {
                if last_first.is_some_and(|l| l > id) {
                    self.fail(&format!("{id} first delivered after {last_first:?}"));
                }
                last_first = Some(id);
            }
        }
        for id in &self.aa {
            if !seen.contains_key(id) {
                self.fail(&format!(
                    "message {id} got AA and never reached the upstream"
                ));
            }
        }
        let dups: u64 = seen.values().map(|&n| u64::from(n - 1)).sum();
        self.counts.duplicates += dups;
        if self.counts.beyond_window == 0 && dups > 0 {
            self.fail(&format!(
                "{dups} duplicates with every restart within the window"
            ));
        }
        if dups > self.counts.possible_duplicates {
            self.fail(&format!(
                "{dups} duplicates, {} reported possible",
                self.counts.possible_duplicates
            ));
        }
    }
}

fn run(seed: u64) -> Counts {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let cfg = SpoolConfig {
        segment_bytes: 600 + rng.below(600) as u32,
        segments: 3 + rng.below(3) as u32,
        max_message_bytes: 16,
        batch_bytes: 1200,
        index_entries: 256,
        fsync: Fsync::Batch,
    };
    let disk = SimDisk::new();
    let mut sim = Sim {
        seed,
        now: Instant::from_millis(1),
        up: Upstream {
            session: Session::server(session_cfg(), 0, [0; TOKEN_LEN], Instant::ZERO),
            connected: false,
            next_id: 0,
            app: Vec::new(),
        },
        relay: open_relay(&disk, cfg).unwrap(),
        rng,
        disk,
        cfg,
        next_msg: 1,
        aa: Vec::new(),
        counts: Counts::default(),
        buf: vec![0; 16],
    };
    sim.up.session.end(mooring::session::SessionEnd::Closed);
    sim.start_session();
    let steps = 60 + sim.rng.below(160);
    for _ in 0..steps {
        sim.step();
    }
    sim.drain();
    sim.check();
    sim.counts
}

#[test]
fn aa_messages_reach_the_upstream_exactly_once_across_restarts_within_the_window() {
    let seeds = sim::seeds(10_000);
    let mut all = Counts::default();
    let mut exact_seeds = 0u64;
    for &seed in &seeds {
        let c = run(seed);
        exact_seeds += u64::from(c.beyond_window == 0);
        all.aa += c.aa;
        all.crashes += c.crashes;
        all.resumed += c.resumed;
        all.beyond_window += c.beyond_window;
        all.possible_duplicates += c.possible_duplicates;
        all.duplicates += c.duplicates;
    }
    println!(
        "sim_exactly_once: {} seeds ({exact_seeds} with every restart within the window: no duplicate), \
         {} AAs, {} crashes, {} sessions resumed after a restart, {} beyond the window: \
         {} duplicates of {} reported possible",
        seeds.len(),
        all.aa,
        all.crashes,
        all.resumed,
        all.beyond_window,
        all.duplicates,
        all.possible_duplicates
    );
    assert!(
        seeds.len() < 10_000 || (all.crashes > 3_000 && all.resumed > 2_000),
        "the simulation must exercise restarts"
    );
}
