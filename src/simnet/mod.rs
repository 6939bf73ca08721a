//! A simulated network for whole nodes on virtual time (test support, no
//! stability promise; reached as `mooring::internals::simnet`).
//!
//! A [`SimNet`] joins nodes built with `Node::with_sim`: their listeners and
//! connects go through it instead of the OS, and their `poll` takes readiness
//! from it. Time is the shared [`ManualClock`]'s: the test moves it, to
//! [`SimNet::next_change`] or a node's next deadline.
//!
//! What it models, as TCP does:
//!
//! - Addresses are virtual (`127.0.0.1:port`); a listener's port 0 gets one.
//! - A dial's SYN arrives after the link's latency; the listener then holds
//!   it for `accept` (its backlog bounded), and the dialer sees it connected a
//!   latency later. A SYN that meets no listener, a full backlog, or a
//!   partition is refused (the dialer sees `ConnectionRefused`).
//! - Each direction of a link is a byte pipe of `pipe_bytes` (full: the
//!   writer meets `WouldBlock`, as with a full TCP window). Each write is one
//!   segment with a delivery time: the link's latency plus jitter, never
//!   before the segment written ahead of it (one stream never reorders).
//!   Links have their own latencies, so frames of different links overtake
//!   each other (a dead link's CLOSE after the new link's HELLO, a stale SYN
//!   after a newer one): [`SimStats::overtakes`] counts it.
//! - Dropping an end sends FIN after what it wrote; the peer reads EOF.
//! - [`SimNet::cut`] kills a link like an RST: each direction keeps a random
//!   prefix of what is in flight (cut at any byte, partial frames included),
//!   then both ends see `ConnectionReset`; writes fail at once.
//! - [`SimNet::partition`] cuts every link and refuses SYNs arriving until it
//!   ends.
//!
//! Readiness is edge-triggered, as the node expects of mio: a readable edge
//! when bytes newer than the last edge arrive (or EOF / reset becomes
//! visible), a writable edge when room returns after `WouldBlock`, one edge
//! when a connect completes or is refused, one per SYN a listener queues.
//!
//! Every table is sized at [`SimNet::new`]: links (`max_links` records, a
//! record is free again once both ends are gone), pipes and segment queues
//! (bounded), listeners ([`MAX_SIM_LISTENERS`]), backlogs ([`BACKLOG`]).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::rng::XorShift64;
use crate::time::{Clock, Instant, ManualClock};

mod end;
mod pipe;
#[cfg(test)]
mod tests;

use pipe::Pipe;

/// Listeners one net holds.
pub const MAX_SIM_LISTENERS: usize = 8;
/// Connections a listener holds before `accept` (more SYNs are refused).
pub const BACKLOG: usize = 16;

/// The net's sizes and randomness.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Link records (connecting, open, or closing on one side).
    pub max_links: usize,
    /// Bytes in flight per direction of a link.
    pub pipe_bytes: usize,
    /// Writes in flight per direction of a link.
    pub pipe_segments: usize,
    /// Each link's one-way latency is drawn from `min..=max` milliseconds.
    pub latency_ms: (u64, u64),
    /// Each write adds up to this many milliseconds to its link's latency.
    pub jitter_ms: u64,
    /// Seeds the net's randomness (latencies, jitter, cut positions).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            max_links: 16,
            pipe_bytes: 64 * 1024,
            pipe_segments: 256,
            latency_ms: (1, 20),
            jitter_ms: 5,
            seed: 1,
        }
    }
}

/// What the net counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Dials started.
    pub dials: u64,
    /// SYNs refused (partition, no listener, full backlog) or dials without a
    /// free link record.
    pub refused: u64,
    /// Links cut (RST-like).
    pub cuts: u64,
    /// A segment or SYN was due before something written earlier on another
    /// link: cross-link reordering.
    pub overtakes: u64,
    /// Bytes read by ends.
    pub delivered: u64,
    /// Bytes lost in cuts.
    pub lost: u64,
}

/// Readiness of one registered end or listener, for the node's poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimReady {
    /// The node's token for it.
    pub token: usize,
    /// Bytes, EOF, reset, or (listener) a connection to accept.
    pub readable: bool,
    /// EOF or reset visible.
    pub read_closed: bool,
    /// Room after `WouldBlock`, or a connect completed or refused.
    pub writable: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// SYN in flight, arriving at `syn_at`.
    Connecting { syn_at: u64 },
    /// Accepted into a backlog (or by a node); the dialer sees it connected
    /// from `connected_at`.
    Open { connected_at: u64 },
    /// Refused; the dialer sees it from `at`.
    Refused { at: u64 },
}

/// One end's registration: which node, which token (none: not registered).
#[derive(Clone, Copy, Default)]
struct EndReg {
    owner: u32,
    token: Option<usize>,
    /// Still held by a node (or a backlog).
    alive: bool,
    /// Connect outcome told (dialer only).
    told_connect: bool,
}

struct LinkRec {
    used: bool,
    gen: u32,
    state: State,
    cut: bool,
    /// One-way latency, ms.
    latency: u64,
    /// `[dialer, acceptor]` addresses.
    addr: [SocketAddr; 2],
    /// The listener the SYN is for (index) while connecting.
    listener: usize,
    /// `pipes[e]` carries what end `e` writes (0: dialer, 1: acceptor).
    pipes: [Pipe; 2],
    ends: [EndReg; 2],
}

struct ListenRec {
    used: bool,
    gen: u32,
    addr: SocketAddr,
    owner: u32,
    token: Option<usize>,
    backlog: heapless::Deque<(u32, u32), BACKLOG>,
    /// A SYN queued since the last edge.
    edge: bool,
}

struct Net {
    cfg: SimConfig,
    rng: XorShift64,
    links: Vec<LinkRec>,
    listeners: heapless::Vec<ListenRec, MAX_SIM_LISTENERS>,
    partition: (u64, u64),
    next_port: u16,
    /// The earliest SYN in flight is due then (`u64::MAX`: none).
    next_syn: u64,
    listen_gen: u32,
    owners: u32,
    stats: SimStats,
}

/// The simulated network; clones share it. See the module docs.
#[derive(Clone)]
pub struct SimNet {
    net: Arc<Mutex<Net>>,
    clock: ManualClock,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimNet")
    }
}

/// One end of a simulated link, owned by a node's link slot. Dropping it
/// closes it (FIN).
#[derive(Debug)]
pub struct SimEnd {
    net: SimNet,
    link: u32,
    gen: u32,
    side: usize,
}

/// A simulated listener, owned by a node. Dropping it stops it (queued
/// connections are closed).
#[derive(Debug)]
pub struct SimListener {
    net: SimNet,
    idx: usize,
    gen: u32,
}

fn refused() -> io::Error {
    io::ErrorKind::ConnectionRefused.into()
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl SimNet {
    /// A net on `clock`, every table sized from `cfg`.
    pub fn new(cfg: SimConfig, clock: ManualClock) -> SimNet {
        let unspecified = SocketAddr::from(([127, 0, 0, 1], 0));
        let links = (0..cfg.max_links)
            .map(|_| LinkRec {
                used: false,
                gen: 0,
                state: State::Refused { at: 0 },
                cut: false,
                latency: 1,
                addr: [unspecified; 2],
                listener: 0,
                pipes: [
                    Pipe::new(cfg.pipe_bytes, cfg.pipe_segments),
                    Pipe::new(cfg.pipe_bytes, cfg.pipe_segments),
                ],
                ends: [EndReg::default(); 2],
            })
            .collect();
        SimNet {
            net: Arc::new(Mutex::new(Net {
                rng: XorShift64::new(cfg.seed),
                cfg,
                links,
                listeners: heapless::Vec::new(),
                partition: (0, 0),
                next_port: 40_000,
                next_syn: u64::MAX,
                listen_gen: 0,
                owners: 0,
                stats: SimStats::default(),
            })),
            clock,
        }
    }

    /// The net's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    fn lock(&self) -> (MutexGuard<'_, Net>, u64) {
        let now = self.clock.now().as_millis();
        // A panic elsewhere poisons nothing the net relies on.
        let mut g = self.net.lock().unwrap_or_else(|p| p.into_inner());
        g.advance(now);
        (g, now)
    }

    /// A new owner id for a node joining the net.
    pub fn attach(&self) -> u32 {
        let (mut n, _) = self.lock();
        n.owners += 1;
        n.owners
    }

    /// What the net counted.
    pub fn stats(&self) -> SimStats {
        self.lock().0.stats
    }

    /// Links in use (any state).
    pub fn links_in_use(&self) -> usize {
        self.lock().0.links.iter().filter(|l| l.used).count()
    }

    /// True when no byte, FIN, SYN or connect outcome is still on its way.
    pub fn is_idle(&self) -> bool {
        self.next_change().is_none()
    }

    /// The next time something in flight arrives (after now), if any.
    pub fn next_change(&self) -> Option<Instant> {
        let (n, now) = self.lock();
        let mut next: Option<u64> = None;
        let mut at = |t: u64| {
            if t > now {
                next = Some(next.map_or(t, |n: u64| n.min(t)));
            }
        };
        for l in n.links.iter().filter(|l| l.used) {
            match l.state {
                State::Connecting { syn_at } => at(syn_at),
                State::Open { connected_at } => at(connected_at),
                State::Refused { at: t } => at(t),
            }
            for p in &l.pipes {
                p.segs.iter().for_each(|s| at(s.0));
                if let Some(t) = p.closed_at() {
                    at(t);
                }
            }
        }
        next.map(Instant::from_millis)
    }

    /// Cuts every link (see the module docs); returns how many.
    pub fn cut_all(&self) -> usize {
        let (mut n, now) = self.lock();
        let mut count = 0;
        for i in 0..n.links.len() {
            if n.links[i].used && !n.links[i].cut {
                n.cut(i, now);
                count += 1;
            }
        }
        count
    }

    /// Every live link's latency grows by `extra` (a route change, a stall):
    /// what is written from now on is that much later. Each link stays in
    /// order; newer links overtake it.
    pub fn slow_all(&self, extra: std::time::Duration) {
        let (mut n, _) = self.lock();
        let extra = u64::try_from(extra.as_millis()).unwrap_or(u64::MAX);
        for l in n.links.iter_mut().filter(|l| l.used && !l.cut) {
            l.latency = l.latency.saturating_add(extra);
        }
    }

    /// Cuts every link and refuses SYNs arriving until `until`.
    pub fn partition(&self, until: Instant) {
        self.cut_all();
        let (mut n, now) = self.lock();
        n.partition = (now, until.as_millis());
    }

    /// Binds a listener for node `owner` (port 0: a free virtual port).
    pub fn listen(&self, owner: u32, addr: SocketAddr) -> io::Result<SimListener> {
        let (mut n, _) = self.lock();
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(n.port());
        }
        if n.listeners.iter().any(|l| l.used && l.addr == addr) {
            return Err(io::ErrorKind::AddrInUse.into());
        }
        n.listen_gen = n.listen_gen.wrapping_add(1);
        let gen = n.listen_gen;
        let rec = ListenRec {
            used: true,
            gen,
            addr,
            owner,
            token: None,
            backlog: heapless::Deque::new(),
            edge: false,
        };
        let idx = match n.listeners.iter().position(|l| !l.used) {
            Some(i) => {
                n.listeners[i] = rec;
                i
            }
            None => {
                let i = n.listeners.len();
                n.listeners
                    .push(rec)
                    .map_err(|_| io::Error::from(io::ErrorKind::AddrNotAvailable))?;
                i
            }
        };
        Ok(SimListener {
            net: self.clone(),
            idx,
            gen,
        })
    }

    /// Starts a connect from node `owner` to `addr`: the SYN is on its way.
    pub fn dial(&self, owner: u32, addr: SocketAddr) -> io::Result<SimEnd> {
        let (mut n, now) = self.lock();
        n.stats.dials += 1;
        let Some(i) = n.links.iter().position(|l| !l.used) else {
            n.stats.refused += 1;
            return Err(io::ErrorKind::AddrNotAvailable.into());
        };
        let (lo, hi) = n.cfg.latency_ms;
        let latency = lo.max(1) + n.rng.below(hi.saturating_sub(lo) + 1);
        let from = SocketAddr::from(([127, 0, 0, 1], n.port()));
        let listener = n
            .listeners
            .iter()
            .position(|l| l.used && l.addr == addr)
            .unwrap_or(usize::MAX);
        let syn_at = now + latency;
        n.next_syn = n.next_syn.min(syn_at);
        n.note_overtakes(i, syn_at);
        let l = &mut n.links[i];
        l.used = true;
        l.gen = l.gen.wrapping_add(1);
        l.state = State::Connecting { syn_at };
        l.cut = false;
        l.latency = latency;
        l.addr = [from, addr];
        l.listener = listener;
        l.pipes.iter_mut().for_each(Pipe::clear);
        l.ends = [
            EndReg {
                owner,
                token: None,
                alive: true,
                told_connect: false,
            },
            EndReg::default(),
        ];
        let gen = l.gen;
        Ok(SimEnd {
            net: self.clone(),
            link: i as u32,
            gen,
            side: 0,
        })
    }

    /// The next readiness edge for node `owner`'s registered ends and listeners.
    pub fn next_ready(&self, owner: u32) -> Option<SimReady> {
        let (mut n, now) = self.lock();
        for l in n.listeners.iter_mut() {
            if l.used && l.owner == owner && l.edge {
                if let Some(token) = l.token {
                    l.edge = false;
                    return Some(SimReady {
                        token,
                        readable: true,
                        ..SimReady::default()
                    });
                }
            }
        }
        for l in n.links.iter_mut().filter(|l| l.used) {
            for side in 0..2 {
                let e = l.ends[side];
                let Some(token) = e.token.filter(|_| e.alive && e.owner == owner) else {
                    continue;
                };
                let mut r = SimReady {
                    token,
                    ..SimReady::default()
                };
                if side == 0 && !e.told_connect {
                    match l.state {
                        State::Open { connected_at } if connected_at <= now => {}
                        State::Refused { at } if at <= now => {}
                        _ => continue,
                    }
                    l.ends[0].told_connect = true;
                    r.writable = true;
                    r.readable = true;
                    return Some(r);
                }
                if matches!(l.state, State::Refused { .. }) {
                    continue;
                }
                let inbound = &mut l.pipes[1 - side];
                let upto = inbound.readable_upto(now);
                if upto > inbound.told_upto {
                    inbound.told_upto = upto;
                    r.readable = true;
                }
                let all_read = upto == inbound.written;
                if all_read && !inbound.told_closed && inbound.closed_at().is_some_and(|t| t <= now)
                {
                    inbound.told_closed = true;
                    r.readable = true;
                    r.read_closed = true;
                }
                let out = &mut l.pipes[side];
                if out.want_write && (out.buf.len() < out.buf.capacity() || l.cut) {
                    out.want_write = false;
                    r.writable = true;
                }
                if r.readable || r.writable {
                    return Some(r);
                }
            }
        }
        None
    }
}

impl Net {
    fn port(&mut self) -> u16 {
        self.next_port = self.next_port.checked_add(1).unwrap_or(40_000);
        self.next_port
    }

    fn partitioned(&self, t: u64) -> bool {
        self.partition.0 <= t && t < self.partition.1
    }

    /// Counts a cross-link overtake: something due at `due` on link `i` while
    /// another link still has bytes or a SYN due later.
    fn note_overtakes(&mut self, i: usize, due: u64) {
        let later = self.links.iter().enumerate().any(|(j, l)| {
            j != i
                && l.used
                && (matches!(l.state, State::Connecting { syn_at } if syn_at > due)
                    || l.pipes
                        .iter()
                        .any(|p| p.last_due().is_some_and(|d| d > due)))
        });
        if later {
            self.stats.overtakes += 1;
        }
    }

    /// SYNs due by `now`, in the order they arrive.
    fn advance(&mut self, now: u64) {
        if self.next_syn > now {
            return;
        }
        loop {
            let due = self
                .links
                .iter()
                .enumerate()
                .filter_map(|(i, l)| match l.state {
                    State::Connecting { syn_at } if l.used && syn_at <= now => Some((syn_at, i)),
                    _ => None,
                })
                .min();
            let Some((syn_at, i)) = due else { break };
            self.arrive(i, syn_at);
        }
        self.next_syn = self
            .links
            .iter()
            .filter_map(|l| match l.state {
                State::Connecting { syn_at } if l.used => Some(syn_at),
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Link `i`'s SYN arrives at `t`: queued at its listener, or refused.
    fn arrive(&mut self, i: usize, t: u64) {
        let li = self.links[i].listener;
        let gen = self.links[i].gen;
        let partitioned = self.partitioned(t);
        let l = &mut self.links[i];
        let lat = l.latency;
        let queued = !partitioned
            && self
                .listeners
                .get_mut(li)
                .filter(|lis| lis.used)
                .is_some_and(|lis| {
                    let ok = lis.backlog.push_back((i as u32, gen)).is_ok();
                    lis.edge |= ok;
                    ok
                });
        if queued {
            l.state = State::Open {
                connected_at: t + lat,
            };
            l.ends[1].alive = true;
        } else {
            l.state = State::Refused { at: t + lat };
            self.stats.refused += 1;
            self.release_if_gone(i);
        }
    }

    /// RST: each direction keeps a random prefix of what is in flight.
    fn cut(&mut self, i: usize, now: u64) {
        self.stats.cuts += 1;
        if let State::Connecting { .. } = self.links[i].state {
            self.links[i].state = State::Refused { at: now };
            self.release_if_gone(i);
            return;
        }
        for d in 0..2 {
            let in_flight = {
                let p = &self.links[i].pipes[d];
                p.written - p.read
            };
            let keep_more = self.rng.below(in_flight + 1);
            let p = &mut self.links[i].pipes[d];
            let keep = p.read + keep_more;
            self.stats.lost += p.written - keep;
            p.buf.truncate(keep_more as usize);
            while p.segs.back().is_some_and(|s| s.1 > keep) {
                let (due, _) = p.segs.pop_back().unwrap_or_default();
                let prev = p.segs.back().map_or(p.read, |s| s.1);
                if prev < keep {
                    p.segs.push_back((due, keep));
                    break;
                }
            }
            p.written = keep;
            p.told_upto = p.told_upto.min(keep);
            p.reset_at = Some(p.last_due().unwrap_or(now).max(now));
            p.told_closed = false;
        }
        self.links[i].cut = true;
    }

    /// Frees link `i`'s record once no end holds it.
    fn release_if_gone(&mut self, i: usize) {
        let l = &mut self.links[i];
        // A SYN still in flight may yet make an acceptor end.
        let syn_in_flight = matches!(l.state, State::Connecting { .. });
        if !l.ends[0].alive && !l.ends[1].alive && !syn_in_flight {
            l.used = false;
            l.ends = [EndReg::default(); 2];
        }
    }

    fn end(&mut self, e: &SimEnd) -> Option<&mut LinkRec> {
        self.links
            .get_mut(e.link as usize)
            .filter(|l| l.used && l.gen == e.gen)
    }
}
