//! The mio driver: the only place with sockets, `Poll` and the clock.
//!
//! A [`Node`] owns one `mio::Poll`, any number of listeners (up to
//! [`MAX_LISTENERS`]) and outbound links, all sharing `max_links` slots sized at
//! build. Policy decisions live in `crate::link`; this file moves bytes.
//!
//! Use: call [`Node::poll`] to wait for readiness or the next deadline, then drain
//! [`Node::next_event`] until it returns `None`. Events are pulled: a link's
//! socket is read only when the application asks for its next event, so an
//! application that stops pulling pushes back on its peers through TCP instead
//! of growing a queue. Replies queued with [`Node::send`] are written together at
//! the start of the next `poll` (several frames, one syscall).
//!
//! Reply backpressure: a link accepted by a listener answers what it reads, so
//! its next frame is delivered only while the reply has room: its transmit
//! queue holds at most `buffer_size / 2` bytes and no `send` refused with
//! `TxFull` awaits its [`Event::Writable`]. Otherwise the link is held (read no
//! further: its peer meets TCP backpressure) until the queue drains to
//! `buffer_size / 4`, or `write_timeout` without progress closes it with
//! `WriteTimeout`. A reply of up to `buffer_size / 2` bytes (framing included)
//! sent before the link's next event is pulled therefore always has room; a
//! larger one may meet `TxFull` (no large buffer free), and no frame of that
//! link overtakes it: keep it and send it on `Writable`. A peer that pipelines
//! requests and never reads costs one held link, not dropped replies or CPU.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};

mod accept;
mod backpressure;
mod clock;
mod deadlines;
mod direct;
mod events;
mod per_ip;
mod plain;
mod redial;
mod resume;
mod rx;
mod sessions;
mod shutdown;
mod slots;
mod sources;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod tx;
mod warm;

pub use accept::{ACCEPT_RETRY, ACCEPT_WARN_EVERY};

pub use events::{Event, NodeStats, CLOSE_CODES};
pub use sessions::{SessionId, SessionNote};
pub use slots::LinkId;
pub(crate) use sources::MAX_SOURCES;

use events::{ClosedReport, Delivered, Rejection, Step};
use slots::{Listener, Slot, PENDING_CONNECTED, PENDING_TLS, PENDING_WRITABLE};
use transport::{ListenSock, Stream};
use tx::{write_frame, Body};

use crate::buffer::{Block, Buf, Buffers, Tier};
use crate::config::{ConnectConfig, ListenConfig, NodeConfig};
use crate::error::{CloseReason, ConfigError, SendError};
use crate::fallible::{self, AllocError};
use crate::frame::{Codec, Decoded};
use crate::link::{
    Control, FrameAction, Link, LinkConfig, LinkStats, CONTROL_SCRATCH, FAREWELL_SCRATCH,
};
use crate::liveness::LivenessConfig;
use crate::ratelimit::{warn_limited, RateLimit};
use crate::time::{Clock, Instant};
use crate::timers::DeadlineHeap;

/// Listeners one node can own.
pub const MAX_LISTENERS: usize = 8;
/// Rejections (connections refused by policy) kept for reporting between polls;
/// beyond that they are counted in [`NodeStats::unreported_rejections`].
pub const REJECTION_QUEUE: usize = 64;

/// Identifies a listener of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u32);

/// Errors building a node or adding a listener or link.
#[non_exhaustive]
#[derive(Debug)]
pub enum SetupError {
    /// The configuration cannot work.
    Config(ConfigError),
    /// The OS refused (bind, connect, poll creation).
    Io(io::Error),
    /// No free link slot, or no room for another listener.
    NoSlot,
    /// Memory sized from the configuration could not be allocated.
    OutOfMemory {
        /// What it was for.
        what: &'static str,
        /// Bytes it wanted (`usize::MAX`: more than can be addressed).
        bytes: usize,
    },
    /// The TLS settings cannot be used (a file unreadable, a key that does not
    /// go with its certificate, ...): which input, and why.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsConfigError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Config(e) => write!(f, "config: {e}"),
            SetupError::Io(e) => write!(f, "{e}"),
            SetupError::NoSlot => f.write_str("no free link slot or listener slot"),
            SetupError::OutOfMemory { what, bytes } => std::fmt::Display::fmt(
                &AllocError {
                    what,
                    bytes: *bytes,
                },
                f,
            ),
            #[cfg(feature = "tls")]
            SetupError::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

#[cfg(feature = "tls")]
impl From<crate::tls::TlsConfigError> for SetupError {
    fn from(e: crate::tls::TlsConfigError) -> Self {
        SetupError::Tls(e)
    }
}

impl std::error::Error for SetupError {}

impl From<ConfigError> for SetupError {
    fn from(e: ConfigError) -> Self {
        SetupError::Config(e)
    }
}

impl From<AllocError> for SetupError {
    fn from(e: AllocError) -> Self {
        SetupError::OutOfMemory {
            what: e.what,
            bytes: e.bytes,
        }
    }
}

impl From<io::Error> for SetupError {
    fn from(e: io::Error) -> Self {
        SetupError::Io(e)
    }
}

/// Warnings a peer can repeat at will (one per connection or per message),
/// each limited to one line per interval ([`crate::ratelimit`]).
#[derive(Clone, Copy)]
enum Warning {
    BadFrame = 0,
    CommitAck = 1,
}

impl Warning {
    const COUNT: usize = 2;
}

/// One `mio::Poll`, its listeners and links. See the module docs.
pub struct Node {
    poll: Poll,
    events: Option<Events>,
    /// Where the time comes from: read once per `poll` (see [`Clock`]).
    clock: clock::NodeClock,
    /// The clock as of the last `poll` (millisecond resolution): per-message work
    /// uses it instead of reading the clock each time.
    now: Instant,
    cfg: NodeConfig,
    codec: Box<dyn Codec>,
    /// The built-in framing `codec` is, if it is one: the per-message path
    /// then decodes and frames without a dynamic call.
    framing: Option<crate::Framing>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    listeners: heapless::Vec<Listener, MAX_LISTENERS>,
    bufs: Buffers,
    timers: DeadlineHeap,
    ready: VecDeque<u32>,
    flush: VecDeque<u32>,
    /// Links whose deadline may have changed; the heap catches up in
    /// `settle_deadlines`, once per batch rather than once per frame.
    resched: Vec<u32>,
    waiting: VecDeque<u32>,
    /// The links that may keep their emptied transmit block (see `warm`).
    warm: warm::WarmTx,
    rejected: heapless::Deque<Rejection, REJECTION_QUEUE>,
    /// Listeners whose `accept` failed, waiting to retry.
    accept: accept::AcceptRetry,
    /// Closed links not yet reported; bounded by `closed_cap` (when full, a closed
    /// link keeps its slot until reported, so accepts stop: backpressure).
    closed: VecDeque<ClosedReport>,
    closed_cap: usize,
    delivered: Option<Delivered>,
    stats: NodeStats,
    /// The pure session table; the node moves its messages.
    sessions: sessions::Table,
    /// Session tokens and redial jitter.
    entropy: sessions::OsEntropy,
    /// Raw outbound links that redial by themselves (`redial.rs`).
    redials: redial::Redials,
    /// One limiter per repeatable warning.
    warnings: [RateLimit; Warning::COUNT],
    /// Keys of the application's own sources found ready (`sources.rs`).
    source_ready: u64,
    /// TLS: checked client settings, the failure being reported.
    #[cfg(feature = "tls")]
    tls: tls::NodeTls,
    /// [`Node::begin_shutdown`] was called.
    shutting_down: bool,
    /// A wake source was ready (see [`Node::take_wakeup`]).
    woken: bool,
    /// The simulated network the node runs on, if any (`transport.rs`).
    sim: Option<transport::SimHandle>,
}

/// What a socket's readiness says, from mio or the simulated network.
#[derive(Clone, Copy)]
struct Ready {
    readable: bool,
    read_closed: bool,
    writable: bool,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// True when the slot has bytes for its socket: queued frames, or (TLS) records.
fn has_output(s: &Slot) -> bool {
    #[cfg(feature = "tls")]
    if tls::has_tls_output(s) {
        return true;
    }
    !s.tx.is_empty()
}

fn reason_for(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => CloseReason::Reset,
        io::ErrorKind::ConnectionRefused => CloseReason::ConnectionRefused,
        io::ErrorKind::TimedOut => CloseReason::TcpTimeout,
        _ => CloseReason::Io,
    }
}

const LISTENER_BASE: usize = usize::MAX - MAX_LISTENERS;

impl Node {
    /// A node with the built-in framing of `cfg.framing`.
    pub fn new(cfg: NodeConfig) -> Result<Node, SetupError> {
        Node::with_framing(cfg, clock::NodeClock::system())
    }

    /// A node that reads the time from `clock` instead of the system's
    /// monotonic clock: a test gives it a [`crate::ManualClock`] and moves time
    /// itself, so idle, stale and other timeouts pass without waiting.
    pub fn with_clock(cfg: NodeConfig, clock: Box<dyn Clock>) -> Result<Node, SetupError> {
        Node::with_framing(cfg, clock::NodeClock::Given(clock))
    }

    /// A node with the built-in framing of `cfg.framing`, on `clock`.
    fn with_framing(cfg: NodeConfig, clock: clock::NodeClock) -> Result<Node, SetupError> {
        let codec: Box<dyn Codec> = match cfg.framing {
            crate::Framing::Mllp => Box::new(crate::frame::Mllp),
            crate::Framing::Len32 => Box::new(crate::frame::Len32),
        };
        let framing = Some(cfg.framing);
        Node::build(cfg, codec, framing, clock)
    }

    /// A node with a custom [`Codec`] (`cfg.framing` is then ignored).
    pub fn with_codec(cfg: NodeConfig, codec: Box<dyn Codec>) -> Result<Node, SetupError> {
        Node::build(cfg, codec, None, clock::NodeClock::system())
    }

    fn build(
        cfg: NodeConfig,
        codec: Box<dyn Codec>,
        framing: Option<crate::Framing>,
        clock: clock::NodeClock,
    ) -> Result<Node, SetupError> {
        cfg.validate()?;
        let n = cfg.max_links;
        let placeholder = Link::accepted(
            link_config(&cfg, None, &LivenessConfig::default(), Duration::ZERO),
            Instant::ZERO,
        );
        // Every table and arena below is sized here, once, and allocated
        // fallibly: a size the host cannot provide is `OutOfMemory`, not an
        // abort. Arenas first: they are calloc'd and stay virtual, so an absurd
        // size fails before anything is written.
        let twice = |what| n.checked_mul(2).ok_or(AllocError::too_large(what));
        let large = cfg.max_frame + codec.overhead();
        let bufs = Buffers::new(
            (cfg.buffer_size, twice("working buffers")?),
            (large, cfg.large_buffers),
            cfg.read_burst,
        )?;
        let mut slots = fallible::vec_with_capacity(n, "link slots")?;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        for _ in 0..n {
            slots.push(Slot {
                gen: 0,
                used: false,
                sock: None,
                peer: unspecified,
                listener: None,
                link: placeholder.clone(),
                rx: Buf::default(),
                tx: Buf::default(),
                scan: 0,
                readable: false,
                read_closed: false,
                pending: 0,
                in_ready: false,
                in_flush: false,
                in_resched: false,
                in_waiting: false,
                in_warm: false,
                want_writable: false,
                held: false,
                session: None,
                last_frame: 0,
                hot: false,
                round_bytes: 0,
                #[cfg(feature = "tls")]
                tls: None,
            });
        }
        let mut free = fallible::vec_with_capacity(n, "free slot list")?;
        free.extend((0..n as u32).rev());
        // Links, sessions, then the links' redial timers.
        let timer_slots = n
            .checked_add(cfg.max_sessions)
            .and_then(|t| t.checked_add(n))
            .ok_or(AllocError::too_large("deadline heap"))?;
        let notes = cfg
            .max_sessions
            .checked_mul(8)
            .ok_or(AllocError::too_large("session events"))?;
        Ok(Node {
            poll: Poll::new()?,
            events: Some(Events::with_capacity(256)),
            clock,
            now: Instant::ZERO,
            bufs,
            codec,
            framing,
            slots,
            free,
            listeners: heapless::Vec::new(),
            timers: DeadlineHeap::new(timer_slots)?,
            ready: fallible::deque_with_capacity(n, "ready queue")?,
            flush: fallible::deque_with_capacity(n, "flush list")?,
            resched: fallible::vec_with_capacity(n, "reschedule list")?,
            waiting: fallible::deque_with_capacity(n, "large-buffer wait queue")?,
            warm: warm::WarmTx::new(),
            rejected: heapless::Deque::new(),
            accept: accept::AcceptRetry::new(),
            closed: fallible::deque_with_capacity(
                twice("closed-link reports")?,
                "closed-link reports",
            )?,
            closed_cap: 2 * n,
            delivered: None,
            stats: NodeStats::default(),
            sessions: sessions::Table::new(cfg.max_sessions, notes)?,
            entropy: sessions::OsEntropy::new(cfg.max_sessions > 0),
            redials: redial::Redials::new(n)?,
            warnings: [RateLimit::default(); Warning::COUNT],
            source_ready: 0,
            #[cfg(feature = "tls")]
            tls: tls::NodeTls::default(),
            shutting_down: false,
            woken: false,
            sim: None,
            cfg,
        })
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The current time on the node's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Reads the clock into `self.now` (twice per poll: inline).
    #[inline(always)]
    fn tick(&mut self) -> Instant {
        self.now = self.clock.read();
        self.now
    }

    /// Binds a listener with its policy.
    pub fn listen(
        &mut self,
        addr: SocketAddr,
        cfg: ListenConfig,
    ) -> Result<ListenerId, SetupError> {
        cfg.validate(&self.cfg)?;
        if self.listeners.is_full() {
            return Err(SetupError::NoSlot);
        }
        let per_ip = match cfg.max_connections_per_ip {
            // One address per link at most.
            Some(_) => Some(per_ip::PeerCounts::new(cfg.max_connections)?),
            None => None,
        };
        #[cfg(feature = "tls")]
        let tls = match &cfg.tls {
            Some(t) => Some(t.build()?),
            None => None,
        };
        let idx = self.listeners.len();
        let (sock, addr) = self.bind(addr, idx)?;
        let l = Listener {
            sock,
            cfg,
            addr,
            active: 0,
            current: None,
            per_ip,
            #[cfg(feature = "tls")]
            tls,
        };
        if self.listeners.push(l).is_err() {
            return Err(SetupError::NoSlot);
        }
        Ok(ListenerId(idx as u32))
    }

    /// The address a listener is bound to (the real port when bound to port 0).
    pub fn local_addr(&self, l: ListenerId) -> Option<SocketAddr> {
        self.listeners.get(l.0 as usize).map(|l| l.addr)
    }

    /// Starts an outbound connect; [`Event::Connected`] or [`Event::Closed`]
    /// (`ConnectionRefused`, `ConnectTimeout`) follows. With
    /// [`ConnectConfig::redial`] (and no session) the link redials by itself
    /// when it is lost, keeping its id: see [`Event::Redialing`].
    pub fn connect(&mut self, addr: SocketAddr, cfg: &ConnectConfig) -> Result<LinkId, SetupError> {
        cfg.validate()?;
        let Some(&slot) = self.free.last() else {
            return Err(SetupError::NoSlot);
        };
        let id = self.open_outbound(slot, addr, cfg)?;
        self.free.pop();
        if cfg.redial && cfg.session.is_none() {
            self.start_redial(id, addr, cfg);
        }
        Ok(id)
    }

    /// Connects `slot` (taken from the free list by the caller) to `addr`.
    fn open_outbound(
        &mut self,
        slot: u32,
        addr: SocketAddr,
        cfg: &ConnectConfig,
    ) -> Result<LinkId, SetupError> {
        #[cfg(feature = "tls")]
        let tls = self.tls_for_connect(addr, cfg)?;
        let sock = self.dial_out(addr, &cfg.liveness, slot)?;
        let now = self.tick();
        let lc = link_config(
            &self.cfg,
            cfg.idle_timeout,
            &cfg.liveness,
            cfg.connect_timeout,
        );
        let link = Link::outbound(lc, now);
        let id = self.occupy(slot, sock, addr, None, link);
        #[cfg(feature = "tls")]
        {
            self.slots[slot as usize].tls = tls;
        }
        self.resched(slot);
        Ok(id)
    }

    /// True while the link is open (connected and not closed).
    pub fn is_open(&self, id: LinkId) -> bool {
        self.slot_of(id)
            .is_some_and(|i| self.slots[i as usize].link.is_open())
    }

    /// The link's peer address.
    pub fn peer(&self, id: LinkId) -> Option<SocketAddr> {
        self.slot_of(id).map(|i| self.slots[i as usize].peer)
    }

    /// The link's counters.
    pub fn link_stats(&self, id: LinkId) -> Option<LinkStats> {
        self.slot_of(id)
            .map(|i| self.slots[i as usize].link.stats())
    }

    /// Links in use (open, connecting, or closed but not yet reported).
    pub fn links_in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Bytes queued on the link and not yet written.
    pub fn tx_pending(&self, id: LinkId) -> usize {
        self.slot_of(id)
            .map_or(0, |i| self.slots[i as usize].tx.len())
    }

    /// Closes the link now (after one last attempt to write what is queued).
    pub fn close(&mut self, id: LinkId) {
        if let Some(i) = self.slot_of(id) {
            if self.stop_redial(i) {
                return; // it was waiting to redial: closed now
            }
            if self.slots[i as usize].link.is_open() {
                let now = self.tick();
                self.write_out(i, now);
            }
            self.close_slot(i, CloseReason::LocalClose);
        }
    }

    /// Writes queued frames, then waits until a socket is ready, a deadline passes,
    /// or `timeout` (`None`: no limit but the deadlines) elapses, and handles what
    /// happened. Events are then pulled with [`Node::next_event`].
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.consume_delivered();
        let now = self.tick();
        self.flush();
        if self.shutting_down {
            self.close_flushed_links();
        }
        self.settle_deadlines();
        self.expire(now);
        self.settle_deadlines();
        self.retry_accepts(now);
        let mut wait = timeout;
        if !self.ready.is_empty()
            || !self.rejected.is_empty()
            || !self.closed.is_empty()
            || self.sessions.has_notes()
            || self.redials.has_notes()
            || !self.flush.is_empty()
        {
            wait = Some(Duration::ZERO);
        } else if let Some(at) = crate::time::earliest(self.timers.next(), self.accept.next()) {
            let until = at - now;
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(256));
        let res = if self.is_simulated() {
            // The test moves time and the net has the readiness: no syscall.
            events.clear();
            Ok(())
        } else {
            match self.poll.poll(&mut events, wait) {
                Err(e) if interrupted(&e) => Ok(()),
                r => r,
            }
        };
        let now = self.tick();
        for ev in events.iter() {
            let ready = Ready {
                readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                read_closed: ev.is_read_closed() || ev.is_error(),
                writable: ev.is_writable(),
            };
            self.on_ready(ev.token().0, ready, now);
        }
        self.events = Some(events);
        if self.is_simulated() {
            self.poll_sim(now);
        }
        self.settle_deadlines();
        self.expire(now);
        self.retry_accepts(now);
        res
    }

    /// A socket or listener (token `t`) is ready.
    #[inline(always)]
    fn on_ready(&mut self, t: usize, ev: Ready, now: Instant) {
        if t >= LISTENER_BASE {
            self.accept_all((t - LISTENER_BASE) as u32, now);
            return;
        }
        if t >= sources::SOURCE_BASE && self.note_source(t) {
            return;
        }
        let i = t as u32;
        let Some(s) = self.slots.get_mut(t) else {
            // A wake source, or a sporadic event (those are safe to ignore).
            self.woken |= t == shutdown::WAKE_TOKEN.0;
            return;
        };
        if !s.used || s.sock.is_none() {
            return;
        }
        if matches!(s.link.state(), crate::LinkState::Connecting) {
            self.finish_connect(i, now);
            return;
        }
        if ev.readable {
            s.readable = true;
            s.read_closed |= ev.read_closed;
            self.mark_ready(i);
        }
        if ev.writable && has_output(&self.slots[t]) {
            self.write_out(i, now);
        }
    }

    fn finish_connect(&mut self, i: u32, now: Instant) {
        let s = &mut self.slots[i as usize];
        let Some(sock) = s.sock.as_ref() else { return };
        match sock.take_error() {
            Ok(Some(e)) | Err(e) => {
                let r = connect_reason(&e);
                log::debug!("connect to {} failed: {e}", s.peer);
                self.close_slot(i, r);
                return;
            }
            Ok(None) => {}
        }
        match sock.peer_addr() {
            Ok(_) => {
                sock.set_nodelay();
                s.link.handle_connected(now);
                self.redial_connected(i);
                let s = &mut self.slots[i as usize];
                if s.link.is_established() {
                    s.pending |= PENDING_CONNECTED; // raw; mooring: after WELCOME
                }
                s.readable = true;
                self.mark_ready(i);
                #[cfg(feature = "tls")]
                self.tls_opened(i, now);
                self.sync(i, now);
                if has_output(&self.slots[i as usize]) {
                    self.write_out(i, now);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {} // not yet: wait for the next event
            Err(e) => {
                let r = connect_reason(&e);
                self.close_slot(i, r);
            }
        }
    }

    fn mark_ready(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if !s.in_ready {
            s.in_ready = true;
            self.ready.push_back(i);
        }
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for Node {
    /// The poll's descriptor: readable when [`Node::poll`] has work. Deadlines are not
    /// signalled through it: wait at most until [`Node::next_deadline`].
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
    }
}

fn link_config(
    cfg: &NodeConfig,
    idle: Option<Duration>,
    liveness: &LivenessConfig,
    connect_timeout: Duration,
) -> LinkConfig {
    LinkConfig {
        idle_timeout: idle,
        write_timeout: cfg.write_timeout,
        connect_timeout,
        close_after_reply: false,
        mllp_commit_ack: cfg.mllp_commit_ack,
        liveness: liveness.clone(),
    }
}

/// The reason for a failed outbound connect.
fn connect_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::TimedOut => CloseReason::ConnectTimeout,
        _ => reason_for(e),
    }
}
