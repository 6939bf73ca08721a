//! The mio driver: the only place with sockets, `Poll` and the clock.
//!
//! A [`Node`] owns one `mio::Poll`, any number of listeners (up to
//! [`MAX_LISTENERS`]) and outbound links, all sharing `max_links` slots sized at
//! build. Policy decisions live in [`crate::link`]; this file moves bytes.
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
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod accept;
mod backpressure;
mod per_ip;
mod sessions;

pub use accept::{ACCEPT_RETRY, ACCEPT_WARN_EVERY};

pub use sessions::{SessionId, SessionNote};

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

/// Identifies a link; stale ids (of a closed link whose slot was reused) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId {
    slot: u32,
    gen: u32,
}

impl LinkId {
    /// The slot index (stable while the link lives; reused after it closes).
    pub fn slot(self) -> u32 {
        self.slot
    }
}

/// Identifies a listener of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u32);

/// What happened, pulled with [`Node::next_event`]. New kinds may be added:
/// match with a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A link is open: accepted on `listener`, or an outbound connect completed.
    Connected {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// The listener that accepted it (`None` for outbound links).
        listener: Option<ListenerId>,
    },
    /// A frame arrived. `payload` borrows the receive buffer until the next call.
    Message {
        /// The link.
        link: LinkId,
        /// The frame's payload.
        payload: &'a [u8],
    },
    /// MLLP release 2 commit acknowledgement (only with `mllp_commit_ack`).
    CommitAck {
        /// The link.
        link: LinkId,
        /// True for ACK, false for NAK.
        accepted: bool,
    },
    /// `send` returned `TxFull` earlier; there is room again.
    Writable {
        /// The link.
        link: LinkId,
    },
    /// The link closed; its id is now stale.
    Closed {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// Its final counters.
        stats: LinkStats,
        /// Mooring protocol: the reason the peer gave in its CLOSE message, if
        /// any. The peer's claim, unverified: `reason` is then `PeerClosed`.
        peer_reason: Option<CloseReason>,
    },
    /// A message of a reliable session, in order and exactly once. `payload`
    /// borrows the receive buffer until the next call.
    SessionMessage {
        /// The session.
        session: SessionId,
        /// The application payload.
        payload: &'a [u8],
    },
    /// Something happened to a reliable session.
    Session {
        /// The session.
        session: SessionId,
        /// What happened.
        note: SessionNote,
    },
    /// A connection was refused by policy before it got a link.
    Rejected {
        /// The listener.
        listener: ListenerId,
        /// Who tried.
        peer: SocketAddr,
        /// `TooManyConnections`, `NotAllowed` or `TooManyConnectionsFromPeer`.
        reason: CloseReason,
    },
}

/// Node-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused: listener full or no free slot.
    pub rejected_too_many: u64,
    /// Connections refused: not on the allow-list.
    pub rejected_not_allowed: u64,
    /// Links replaced by stale recovery.
    pub stale_replaced: u64,
    /// Rejections not reported as events because the report queue was full.
    pub unreported_rejections: u64,
    /// Session resumes refused for a wrong token.
    pub bad_tokens: u64,
    /// Session events not reported because the report queue was full.
    pub unreported_session_events: u64,
    /// Times a link had to wait for a large buffer (backpressure).
    pub large_buffer_waits: u64,
    /// Reads into the node's burst buffer (`NodeConfig::read_burst`).
    pub burst_reads: u64,
    /// `accept` calls that failed (out of descriptors or memory, ...); the
    /// listener is retried (see [`ACCEPT_RETRY`]).
    pub accept_errors: u64,
    /// Retries of listeners whose `accept` had failed.
    pub accept_retries: u64,
    /// Connections refused: their address held `max_connections_per_ip` links.
    pub rejected_from_peer: u64,
    /// Session links closed with `SessionQueueFull` (a DATA refused for want of
    /// room for its reply).
    pub session_queue_full: u64,
    /// Disconnected sessions evicted to make room for a new one.
    pub sessions_evicted: u64,
}

/// Errors building a node or adding a listener or link.
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
        }
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
    SessionEvents = 2,
    NoSessionSlot = 3,
    BadToken = 4,
}

impl Warning {
    const COUNT: usize = 5;
}

/// Queued bytes at which a link writes at once rather than at the next poll.
const FLUSH_AT: usize = 32 * 1024;

const PENDING_CONNECTED: u8 = 1;
const PENDING_WRITABLE: u8 = 2;

struct Slot {
    gen: u32,
    used: bool,
    sock: Option<TcpStream>,
    peer: SocketAddr,
    listener: Option<u32>,
    link: Link,
    rx: Buf,
    tx: Buf,
    scan: usize,
    /// Readiness seen and not yet drained to `WouldBlock`.
    readable: bool,
    /// The peer's FIN (or an error) was reported: read until EOF, no shortcut.
    read_closed: bool,
    pending: u8,
    in_ready: bool,
    in_flush: bool,
    /// Listed in `Node::resched`: its deadline changed since the heap was updated.
    in_resched: bool,
    in_waiting: bool,
    want_writable: bool,
    /// Server link whose inbound frames wait for its transmit queue to drain
    /// (see [`Node::holds_back`]).
    held: bool,
    /// The session this link carries, if any.
    session: Option<u32>,
    /// Size of its last frame, framing included: one of at most an eighth of the
    /// burst block lets the next read use it; one that did not fit a working
    /// block sends the next read into a large block.
    last_frame: u32,
    /// More arrives at once than a working block holds (a read filled the room
    /// offered, or the last round of reads brought more than a working block):
    /// its next read may use the burst block.
    hot: bool,
    /// Bytes read since the socket was last found empty.
    round_bytes: u32,
}

struct Listener {
    sock: TcpListener,
    cfg: ListenConfig,
    addr: SocketAddr,
    active: usize,
    /// With `max_connections = 1`: the slot serving it (for stale recovery).
    current: Option<u32>,
    /// Links per peer address, with `max_connections_per_ip`.
    per_ip: Option<per_ip::PeerCounts>,
}

struct Rejection {
    listener: u32,
    peer: SocketAddr,
    reason: CloseReason,
}

/// A closed link's report, queued so its slot is free at once (a stale link's
/// replacement must not wait for the application to drain events).
struct ClosedReport {
    link: LinkId,
    peer: SocketAddr,
    reason: CloseReason,
    stats: LinkStats,
    peer_reason: Option<CloseReason>,
}

/// The frame most recently returned as an event: consumed on the next call.
#[derive(Clone, Copy)]
struct Delivered {
    slot: u32,
    gen: u32,
    block: Block,
    start: usize,
    end: usize,
    consumed: usize,
}

enum Step {
    Connected,
    Message(Delivered),
    SessionMessage(u32, Delivered),
    CommitAck(bool),
    Writable,
    Closed(CloseReason),
    Idle,
}

/// One `mio::Poll`, its listeners and links. See the module docs.
pub struct Node {
    poll: Poll,
    events: Option<Events>,
    clock: Clock,
    /// The clock as of the last `poll` (millisecond resolution): per-message work
    /// uses it instead of reading the clock each time.
    now: Instant,
    cfg: NodeConfig,
    codec: Box<dyn Codec>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    listeners: heapless::Vec<Listener, MAX_LISTENERS>,
    bufs: Buffers,
    timers: DeadlineHeap,
    ready: VecDeque<u32>,
    flush: Vec<u32>,
    /// Links whose deadline may have changed; the heap catches up in
    /// `settle_deadlines`, once per batch rather than once per frame.
    resched: Vec<u32>,
    waiting: VecDeque<u32>,
    rejected: heapless::Deque<Rejection, REJECTION_QUEUE>,
    /// Listeners whose `accept` failed, waiting to retry.
    accept: accept::AcceptRetry,
    /// Closed links not yet reported; bounded by `closed_cap` (when full, a closed
    /// link keeps its slot until reported, so accepts stop: backpressure).
    closed: VecDeque<ClosedReport>,
    closed_cap: usize,
    delivered: Option<Delivered>,
    stats: NodeStats,
    sessions: Vec<sessions::SessionSlot>,
    session_notes: VecDeque<(SessionId, SessionNote)>,
    /// The OS random source, for session tokens (opened when sessions are on).
    urandom: Option<std::fs::File>,
    rng: Option<crate::rng::XorShift64>,
    next_session_id: u64,
    /// One limiter per repeatable warning.
    warnings: [RateLimit; Warning::COUNT],
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
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
        let codec: Box<dyn Codec> = match cfg.framing {
            crate::Framing::Mllp => Box::new(crate::frame::Mllp),
            crate::Framing::Len32 => Box::new(crate::frame::Len32),
        };
        Node::with_codec(cfg, codec)
    }

    /// A node with a custom [`Codec`] (`cfg.framing` is then ignored).
    pub fn with_codec(cfg: NodeConfig, codec: Box<dyn Codec>) -> Result<Node, SetupError> {
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
                want_writable: false,
                held: false,
                session: None,
                last_frame: 0,
                hot: false,
                round_bytes: 0,
            });
        }
        let mut free = fallible::vec_with_capacity(n, "free slot list")?;
        free.extend((0..n as u32).rev());
        let timer_slots = n
            .checked_add(cfg.max_sessions)
            .ok_or(AllocError::too_large("deadline heap"))?;
        let mut sessions = fallible::vec_with_capacity(cfg.max_sessions, "session table")?;
        sessions.extend((0..cfg.max_sessions).map(|_| sessions::SessionSlot::empty()));
        let notes = cfg
            .max_sessions
            .checked_mul(8)
            .ok_or(AllocError::too_large("session events"))?;
        Ok(Node {
            poll: Poll::new()?,
            events: Some(Events::with_capacity(256)),
            clock: Clock::new(),
            now: Instant::ZERO,
            bufs,
            codec,
            slots,
            free,
            listeners: heapless::Vec::new(),
            timers: DeadlineHeap::new(timer_slots)?,
            ready: fallible::deque_with_capacity(n, "ready queue")?,
            flush: fallible::vec_with_capacity(n, "flush list")?,
            resched: fallible::vec_with_capacity(n, "reschedule list")?,
            waiting: fallible::deque_with_capacity(n, "large-buffer wait queue")?,
            rejected: heapless::Deque::new(),
            accept: accept::AcceptRetry::new(),
            closed: fallible::deque_with_capacity(
                twice("closed-link reports")?,
                "closed-link reports",
            )?,
            closed_cap: 2 * n,
            delivered: None,
            stats: NodeStats::default(),
            sessions,
            session_notes: fallible::deque_with_capacity(notes, "session events")?,
            urandom: if cfg.max_sessions > 0 {
                std::fs::File::open("/dev/urandom").ok()
            } else {
                None
            },
            rng: None,
            next_session_id: 0,
            warnings: [RateLimit::default(); Warning::COUNT],
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

    /// Reads the clock into `self.now`.
    fn tick(&mut self) -> Instant {
        self.now = self.clock.now();
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
        let mut sock = TcpListener::bind(addr)?;
        let idx = self.listeners.len();
        self.poll
            .registry()
            .register(&mut sock, Token(LISTENER_BASE + idx), Interest::READABLE)?;
        let addr = sock.local_addr()?;
        let l = Listener {
            sock,
            cfg,
            addr,
            active: 0,
            current: None,
            per_ip,
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
    /// (`ConnectionRefused`, `ConnectTimeout`) follows.
    pub fn connect(&mut self, addr: SocketAddr, cfg: &ConnectConfig) -> Result<LinkId, SetupError> {
        cfg.validate()?;
        let Some(&slot) = self.free.last() else {
            return Err(SetupError::NoSlot);
        };
        let mut sock = TcpStream::connect(addr)?;
        crate::sockopt::apply(&sock, &cfg.liveness)?;
        self.poll.registry().register(
            &mut sock,
            Token(slot as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.free.pop();
        let now = self.tick();
        let lc = link_config(
            &self.cfg,
            cfg.idle_timeout,
            &cfg.liveness,
            cfg.connect_timeout,
        );
        let link = Link::outbound(lc, now);
        let id = self.occupy(slot, sock, addr, None, link);
        self.resched(slot);
        Ok(id)
    }

    fn occupy(
        &mut self,
        slot: u32,
        sock: TcpStream,
        peer: SocketAddr,
        listener: Option<u32>,
        link: Link,
    ) -> LinkId {
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        s.used = true;
        s.sock = Some(sock);
        s.peer = peer;
        s.listener = listener;
        s.link = link;
        s.rx = Buf::default();
        s.tx = Buf::default();
        s.scan = 0;
        s.readable = false;
        s.read_closed = false;
        s.pending = 0;
        s.want_writable = false;
        s.held = false;
        s.session = None;
        s.last_frame = 0;
        s.hot = false;
        s.round_bytes = 0;
        LinkId { slot, gen: s.gen }
    }

    fn slot_of(&self, id: LinkId) -> Option<u32> {
        let s = self.slots.get(id.slot as usize)?;
        (s.used && s.gen == id.gen).then_some(id.slot)
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

    /// Node-wide counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
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

    /// The earliest deadline of any link. Never later than the true one; it can
    /// be earlier (then [`Node::poll`] finds nothing due and waits again) when
    /// called between polls, after traffic moved a link's deadline later.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Links with a change not yet in the heap: their own deadline now. The
        // heap's entry for them can only be stale-early, so the minimum of both
        // is never late.
        let unsettled = self
            .resched
            .iter()
            .filter_map(|&i| self.slots[i as usize].link.poll_timeout())
            .min();
        let links = crate::time::earliest(self.timers.next(), unsettled);
        // A listener retrying `accept` (see `ACCEPT_RETRY`).
        crate::time::earliest(links, self.accept.next())
    }

    /// Queues a frame on the link. It is written at the next [`Node::poll`] (or
    /// [`Node::flush`]). `Err(TxFull)` is backpressure: wait for [`Event::Writable`];
    /// on a link accepted by a listener no frame of that link comes before it
    /// (see "Reply backpressure" in the module docs).
    pub fn send(&mut self, id: LinkId, payload: &[u8]) -> Result<(), SendError> {
        self.queue(id, Body::Bytes(payload), None)
    }

    /// Like [`Node::send`], and starts the link's response timer: no whole frame back
    /// within `response_timeout` closes the link with `ResponseTimeout`.
    pub fn send_request(
        &mut self,
        id: LinkId,
        payload: &[u8],
        response_timeout: Duration,
    ) -> Result<(), SendError> {
        self.queue(id, Body::Bytes(payload), Some(response_timeout))
    }

    /// The last frame on this link was not the awaited reply: keep the response
    /// timer running until `deadline` (used by the client's HL7 correlation).
    pub(crate) fn keep_awaiting_reply(&mut self, id: LinkId, deadline: Instant) {
        if let Some(i) = self.slot_of(id) {
            self.slots[i as usize].link.keep_awaiting_reply(deadline);
            self.resched(i);
        }
    }

    /// Sends the payload of the last [`Event::Message`] on `id`, copied once,
    /// straight from the receive buffer into the link's transmit buffer: `id` the
    /// message's own link echoes it, another link forwards it (a relay). Valid
    /// until the next call that pulls events; `NotOpen` after that or when the
    /// message's link has closed.
    pub fn forward(&mut self, id: LinkId) -> Result<(), SendError> {
        let d = self.delivered.ok_or(SendError::NoMessage)?;
        let src = &self.slots[d.slot as usize];
        if !(src.used && src.gen == d.gen && src.rx.block == Some(d.block)) {
            return Err(SendError::NoMessage);
        }
        self.queue(id, Body::Delivered(d), None)
    }

    fn queue(
        &mut self,
        id: LinkId,
        body: Body<'_>,
        reply: Option<Duration>,
    ) -> Result<(), SendError> {
        let i = self.slot_of(id).ok_or(SendError::NotOpen)?;
        if body.len() > self.cfg.max_frame {
            return Err(SendError::FrameTooLarge);
        }
        let link = &self.slots[i as usize].link;
        if !link.may_send() {
            return Err(SendError::NotOpen);
        }
        let header = link.next_data_header();
        let head: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
        let direct = self.write_large_now(i, head, body);
        if direct.is_none() {
            self.encode_into_tx(i, head, body)?;
        }
        // Timers started here count from the last poll (the app sends while
        // handling that poll's events).
        let now = self.now;
        self.slots[i as usize].link.handle_queued(now, reply);
        match direct {
            // After handle_queued: a close-after-reply link closes once its
            // reply is out, and that may be now.
            Some(n) if self.slots[i as usize].link.is_open() => {
                self.after_write(i, n, now);
            }
            Some(_) => {} // closed while writing
            None => self.resched(i),
        }
        Ok(())
    }

    /// A frame of [`FLUSH_AT`] bytes or more would be written as soon as it was
    /// queued; when nothing is queued ahead of it, it is written straight from
    /// where its payload lies (one vectored write) instead of being copied into
    /// a transmit block first, and only what the socket does not take is copied.
    /// (Smaller frames are copied: several then go out in one write.)
    /// `Some(bytes written)` when it went this way; `None`: queue it as usual.
    fn write_large_now(&mut self, i: u32, head: &[u8], body: Body<'_>) -> Option<usize> {
        let need = head.len() + body.len() + self.codec.overhead();
        let s = &mut self.slots[i as usize];
        if need < FLUSH_AT || !s.tx.is_empty() || !s.link.is_open() {
            return None;
        }
        let env = self.codec.envelope(head.len() + body.len())?;
        // Room for the remainder first, so a frame is never half sent and then
        // refused.
        if !self.bufs.reserve(&mut s.tx, need) {
            return None;
        }
        let sock = s.sock.as_mut()?;
        let payload = match body {
            Body::Bytes(b) => b,
            Body::Delivered(d) => &self.bufs.block(d.block)[d.start..d.end],
        };
        let parts = [
            IoSlice::new(env.prefix()),
            IoSlice::new(head),
            IoSlice::new(payload),
            IoSlice::new(env.suffix()),
        ];
        // Would block, or failed: queue it; write_out meets the error again.
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = sock.write_vectored(&parts).ok().filter(|&n| n > 0)?;
        if n < total {
            // The socket took part: the rest goes into the reserved block.
            if !write_frame(s, &mut self.bufs, self.codec.as_ref(), head, body) {
                log::error!("link to {}: no room for a reserved frame", s.peer);
                self.close_slot(i, CloseReason::Io);
                return Some(0);
            }
            self.bufs.consume(&mut s.tx, n);
            self.queue_flush(i);
        } else {
            self.bufs.release(&mut s.tx);
        }
        Some(n)
    }

    fn queue_flush(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if !s.in_flush {
            s.in_flush = true;
            self.flush.push(i);
        }
    }

    fn encode_into_tx(&mut self, i: u32, head: &[u8], body: Body<'_>) -> Result<(), SendError> {
        let need = head.len() + body.len() + self.codec.overhead();
        if self.would_outgrow_working_block(i, need) {
            // A full working block is a good write: send it rather than copy the
            // queue into a large block, which frames bigger than `buffer_size`
            // need and other links may be waiting for.
            self.write_out_before_queueing(i)?;
        }
        let s = &mut self.slots[i as usize];
        if !write_frame(s, &mut self.bufs, self.codec.as_ref(), head, body) {
            // Full: write what is queued now and try once more before pushing back.
            self.write_out_before_queueing(i)?;
            let s = &mut self.slots[i as usize];
            if !write_frame(s, &mut self.bufs, self.codec.as_ref(), head, body) {
                // This refusal supersedes a Writable raised by that write: the
                // caller hears Writable only once room comes back after it.
                s.pending &= !PENDING_WRITABLE;
                self.note_tx_full(i);
                return Err(SendError::TxFull);
            }
        }
        if self.slots[i as usize].tx.len() >= FLUSH_AT {
            // Enough for a full write: send it now so large frames pipeline
            // instead of waiting for the next poll.
            let now = self.now;
            self.write_out(i, now);
        }
        self.queue_flush(i);
        Ok(())
    }

    /// Writes the link's queue to make room for a frame; `NotOpen` when that
    /// closed the link (a write error, or a close-after-reply link whose reply
    /// went out), so nothing is queued on a closed link.
    fn write_out_before_queueing(&mut self, i: u32) -> Result<(), SendError> {
        let now = self.now;
        self.write_out(i, now);
        if self.slots[i as usize].link.is_open() {
            Ok(())
        } else {
            Err(SendError::NotOpen)
        }
    }

    /// True when `need` more bytes fit the link's working transmit block only by
    /// moving its queue into a large one, though the frame alone would fit (and
    /// writing the queue now would not close the link under its caller).
    fn would_outgrow_working_block(&self, i: u32, need: usize) -> bool {
        let s = &self.slots[i as usize];
        let small = self.bufs.block_size(Tier::Small);
        matches!(s.tx.block, Some(b) if b.tier == Tier::Small)
            && s.tx.len() + need > small
            && need <= small
            && !s.link.closes_once_written()
    }

    /// Backpressure: the link is told (or its session pumped) when room comes back.
    fn note_tx_full(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        s.want_writable = true;
        if s.tx.is_empty() && !s.in_waiting {
            // Only a large block would do and none is free: wait for one, but no
            // longer than a blocked write may. (With bytes queued, room comes
            // back as the queue drains, and a stuck queue has its timer.)
            s.in_waiting = true;
            s.link.handle_no_room(self.now);
            self.waiting.push_back(i);
            self.stats.large_buffer_waits += 1;
            self.resched(i);
        }
    }

    /// Closes the link now (after one last attempt to write what is queued).
    pub fn close(&mut self, id: LinkId) {
        if let Some(i) = self.slot_of(id) {
            if self.slots[i as usize].link.is_open() {
                let now = self.tick();
                self.write_out(i, now);
            }
            self.close_slot(i, CloseReason::LocalClose);
        }
    }

    /// Writes every queued frame now, without waiting.
    pub fn flush(&mut self) {
        let now = self.now;
        while let Some(i) = self.flush.pop() {
            self.slots[i as usize].in_flush = false;
            self.write_out(i, now);
        }
    }

    /// Writes queued frames, then waits until a socket is ready, a deadline passes,
    /// or `timeout` (`None`: no limit but the deadlines) elapses, and handles what
    /// happened. Events are then pulled with [`Node::next_event`].
    pub fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.consume_delivered();
        let now = self.tick();
        self.flush();
        self.settle_deadlines();
        self.expire(now);
        self.settle_deadlines();
        self.retry_accepts(now);
        let mut wait = timeout;
        if !self.ready.is_empty()
            || !self.rejected.is_empty()
            || !self.closed.is_empty()
            || !self.session_notes.is_empty()
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
        let res = match self.poll.poll(&mut events, wait) {
            Err(e) if interrupted(&e) => Ok(()),
            r => r,
        };
        let now = self.tick();
        for ev in events.iter() {
            let t = ev.token().0;
            if t >= LISTENER_BASE {
                self.accept_all((t - LISTENER_BASE) as u32, now);
                continue;
            }
            let i = t as u32;
            let Some(s) = self.slots.get_mut(t) else {
                continue; // Sporadic events happen, we can safely ignore them.
            };
            if !s.used || s.sock.is_none() {
                continue;
            }
            if matches!(s.link.state(), crate::LinkState::Connecting) {
                self.finish_connect(i, now);
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                s.readable = true;
                s.read_closed |= ev.is_read_closed() || ev.is_error();
                self.mark_ready(i);
            }
            if ev.is_writable() && !self.slots[t].tx.is_empty() {
                self.write_out(i, now);
            }
        }
        self.events = Some(events);
        self.settle_deadlines();
        self.expire(now);
        self.retry_accepts(now);
        res
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
                let _ = sock.set_nodelay(true);
                s.link.handle_connected(now);
                if s.link.is_established() {
                    s.pending |= PENDING_CONNECTED; // raw; mooring: after WELCOME
                }
                s.readable = true;
                self.mark_ready(i);
                self.sync(i, now);
                if !self.slots[i as usize].tx.is_empty() {
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

    /// Queues the link's control output (HELLO, WELCOME, PING, PONG, keep-alive,
    /// commit ACK), then reschedules its deadline.
    fn sync(&mut self, i: u32, now: Instant) {
        if self.slots[i as usize].link.wants_transmit() {
            let mut buf = [0u8; CONTROL_SCRATCH];
            while let Some((c, n)) = self.slots[i as usize].link.poll_transmit(&mut buf) {
                match self.encode_into_tx(i, &[], Body::Bytes(&buf[..n])) {
                    Ok(()) => self.slots[i as usize].link.handle_transmitted(now, c),
                    Err(e) if c == Control::CommitAck => warn_limited!(
                        self.warnings[Warning::CommitAck as usize],
                        now,
                        "commit ACK not queued: {e}"
                    ),
                    Err(e) => log::debug!("{c:?} not queued: {e}"),
                }
            }
        }
        self.resched(i);
    }

    /// The link's deadline may have changed: note it for `settle_deadlines`. A
    /// burst of frames on a link then costs one heap update, not one per frame.
    fn resched(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if !s.in_resched {
            s.in_resched = true;
            self.resched.push(i);
        }
    }

    /// Brings the deadline heap up to date; before anything reads it.
    fn settle_deadlines(&mut self) {
        while let Some(i) = self.resched.pop() {
            let s = &mut self.slots[i as usize];
            s.in_resched = false;
            // A closed slot's link has no timers left: this removes its entry.
            let at = s.link.poll_timeout();
            self.timers.set(i, at);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(i) = self.timers.pop_due(now) {
            if i as usize >= self.slots.len() {
                self.session_timeout(i, now);
                continue;
            }
            let s = &mut self.slots[i as usize];
            if !s.used {
                continue;
            }
            match s.link.handle_timeout(now) {
                Some(reason) => {
                    log::debug!("link to {} expired: {reason}", s.peer);
                    self.close_slot(i, reason);
                }
                None => self.sync(i, now),
            }
        }
    }

    fn write_out(&mut self, i: u32, now: Instant) {
        loop {
            let s = &mut self.slots[i as usize];
            let Some(sock) = s.sock.as_mut() else { return };
            if s.tx.is_empty() || !s.link.is_open() {
                return;
            }
            match sock.write(self.bufs.data(&s.tx)) {
                Ok(0) => {
                    self.close_slot(i, CloseReason::Io);
                    return;
                }
                Ok(n) => {
                    self.bufs.consume(&mut s.tx, n);
                    if !self.after_write(i, n, now) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => {
                    s.link.handle_write_blocked(now);
                    self.resched(i);
                    return;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("write to {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return;
                }
            }
        }
    }

    /// `n` bytes of the link's frames went out (and left its queue): timers,
    /// backpressure and policy. False when the link closed.
    fn after_write(&mut self, i: u32, n: usize, now: Instant) -> bool {
        let s = &mut self.slots[i as usize];
        let empty = s.tx.is_empty();
        let done = s.link.handle_written(now, n, empty);
        // Room came back. (An emptied buffer gave its block back and has
        // capacity 0: that is room too.)
        if s.want_writable && (empty || self.bufs.capacity(&s.tx) > s.tx.len()) {
            s.want_writable = false;
            s.pending |= PENDING_WRITABLE;
            self.mark_ready(i);
        }
        if self.slots[i as usize].held && self.slots[i as usize].tx.len() <= self.held_limit(i) {
            // Drained: its frames flow again.
            self.set_held(i, false, now);
            self.mark_ready(i);
        }
        if empty {
            self.wake_waiting();
        }
        self.resched(i);
        if let Some(reason) = done {
            self.close_slot(i, reason);
            return false;
        }
        true
    }

    /// A large block may have come free: let the links waiting for one retry.
    fn wake_waiting(&mut self) {
        if !self.bufs.large_available() {
            return;
        }
        while let Some(i) = self.waiting.pop_front() {
            let s = &mut self.slots[i as usize];
            s.in_waiting = false;
            if !s.used {
                continue;
            }
            // (A held link resumes when released: see `set_held`.)
            if !s.held && s.link.resume_reads(self.now) {
                self.resched(i);
            }
            let s = &mut self.slots[i as usize];
            if s.want_writable {
                s.want_writable = false;
                s.pending |= PENDING_WRITABLE;
                if s.tx.is_empty() {
                    s.link.handle_room();
                    self.resched(i);
                }
            }
            self.mark_ready(i);
        }
    }

    fn close_slot(&mut self, i: u32, reason: CloseReason) {
        let s = &mut self.slots[i as usize];
        if !s.used
            || !matches!(
                s.link.state(),
                crate::LinkState::Open | crate::LinkState::Connecting
            )
        {
            return;
        }
        log::debug!("link to {} closed: {reason}", s.peer);
        let mut b = [0u8; FAREWELL_SCRATCH];
        if let Some(n) = s.link.farewell(reason, &mut b) {
            self.farewell(i, &b[..n]);
        }
        let s = &mut self.slots[i as usize];
        s.link.close(reason);
        if let Some(mut sock) = s.sock.take() {
            let _ = self.poll.registry().deregister(&mut sock);
        }
        self.bufs.release(&mut s.tx);
        self.bufs.release(&mut s.rx);
        s.pending &= !PENDING_WRITABLE;
        // The socket is closed: a listener out of descriptors may accept again.
        self.accept.descriptor_freed();
        if let Some(l) = s.listener {
            if let Some(lis) = self.listeners.get_mut(l as usize) {
                lis.active = lis.active.saturating_sub(1);
                if let Some(t) = lis.per_ip.as_mut() {
                    t.remove(s.peer.ip());
                }
                if lis.current == Some(i) {
                    lis.current = None;
                }
            }
        }
        self.timers.set(i, None);
        if let Some(idx) = self.slots[i as usize].session.take() {
            let now = self.now;
            // What the peer said about the session (e.g. SessionExpired) decides
            // what becomes of it.
            let claim = self.slots[i as usize].link.peer_reason().unwrap_or(reason);
            self.session_link_lost(idx, claim, now);
        }
        let s = &mut self.slots[i as usize];
        if self.closed.len() < self.closed_cap {
            self.closed.push_back(ClosedReport {
                link: LinkId {
                    slot: i,
                    gen: s.gen,
                },
                peer: s.peer,
                reason,
                stats: s.link.stats(),
                peer_reason: s.link.peer_reason(),
            });
            s.used = false;
            s.pending = 0;
            self.free.push(i);
        } else {
            self.mark_ready(i); // reported through the slot, which stays taken until then
        }
        self.wake_waiting();
    }

    /// Mooring protocol: tells the peer why, with one best-effort write of CLOSE
    /// (after whatever is still queued); the peer logs it as its `peer_reason`.
    fn farewell(&mut self, i: u32, close: &[u8]) {
        if self.encode_into_tx(i, &[], Body::Bytes(close)).is_ok() {
            let s = &mut self.slots[i as usize];
            if let Some(sock) = s.sock.as_mut() {
                let _ = sock.write(self.bufs.data(&s.tx));
            }
        }
    }

    fn consume_delivered(&mut self) {
        if let Some(d) = self.delivered.take() {
            let s = &mut self.slots[d.slot as usize];
            if s.used && s.gen == d.gen && s.rx.block == Some(d.block) {
                self.bufs.consume(&mut s.rx, d.consumed);
                s.scan = 0;
                if s.rx.block.is_none() {
                    self.wake_waiting();
                }
            }
        }
    }

    /// The payload of the last [`Event::Message`] returned, still valid until the
    /// next call that takes `&mut self`.
    pub fn last_message(&self) -> Option<&[u8]> {
        self.delivered
            .map(|d| &self.bufs.block(d.block)[d.start..d.end])
    }

    /// The next event, or `None` when there is nothing more until the next
    /// [`Node::poll`]. Reading from sockets happens here, one link at a time, in
    /// turn.
    pub fn next_event(&mut self) -> Option<Event<'_>> {
        self.consume_delivered();
        if let Some(r) = self.rejected.pop_front() {
            return Some(Event::Rejected {
                listener: ListenerId(r.listener),
                peer: r.peer,
                reason: r.reason,
            });
        }
        if let Some(c) = self.closed.pop_front() {
            return Some(Event::Closed {
                link: c.link,
                peer: c.peer,
                reason: c.reason,
                stats: c.stats,
                peer_reason: c.peer_reason,
            });
        }
        if let Some(ev) = self.next_session_note() {
            return Some(ev);
        }
        loop {
            let &i = self.ready.front()?;
            let step = self.step(i);
            let s = &mut self.slots[i as usize];
            let id = LinkId {
                slot: i,
                gen: s.gen,
            };
            match step {
                Step::Idle => {
                    s.in_ready = false;
                    self.ready.pop_front();
                }
                Step::Connected => {
                    return Some(Event::Connected {
                        link: id,
                        peer: s.peer,
                        listener: s.listener.map(ListenerId),
                    })
                }
                Step::Message(d) => {
                    self.take_turn();
                    self.delivered = Some(d);
                    let payload = &self.bufs.block(d.block)[d.start..d.end];
                    return Some(Event::Message { link: id, payload });
                }
                Step::SessionMessage(idx, d) => {
                    self.take_turn();
                    self.delivered = Some(d);
                    let session = self.session_id_of(idx);
                    let payload = &self.bufs.block(d.block)[d.start..d.end];
                    return Some(Event::SessionMessage { session, payload });
                }
                Step::CommitAck(accepted) => return Some(Event::CommitAck { link: id, accepted }),
                Step::Writable => return Some(Event::Writable { link: id }),
                Step::Closed(reason) => {
                    let ev = Event::Closed {
                        link: id,
                        peer: s.peer,
                        reason,
                        stats: s.link.stats(),
                        peer_reason: s.link.peer_reason(),
                    };
                    s.used = false;
                    s.in_ready = false;
                    self.ready.pop_front();
                    self.free.push(i);
                    return Some(ev);
                }
            }
        }
    }

    /// Round robin: after a frame, the next ready link gets a turn before this
    /// one's next frame (nothing to do when it is the only one).
    fn take_turn(&mut self) {
        if self.ready.len() > 1 {
            if let Some(i) = self.ready.pop_front() {
                self.ready.push_back(i);
            }
        }
    }

    /// Advances one link until it has something to report.
    fn step(&mut self, i: u32) -> Step {
        let now = self.now;
        loop {
            let s = &mut self.slots[i as usize];
            if !s.used {
                return Step::Idle; // closed and reported while queued for a turn
            }
            if s.pending & PENDING_CONNECTED != 0 {
                s.pending &= !PENDING_CONNECTED;
                return Step::Connected;
            }
            if s.link.may_read() {
                if self.holds_back(i, now) {
                    self.pause_rx(i);
                } else {
                    match self.decode(i, now) {
                        Some(step) => return step,
                        None => {
                            if self.fill(i, now) {
                                continue;
                            }
                        }
                    }
                }
            }
            let s = &mut self.slots[i as usize];
            if !s.used {
                return Step::Idle; // closed just now: its report is queued
            }
            if s.pending & PENDING_WRITABLE != 0 {
                s.pending &= !PENDING_WRITABLE;
                if let Some(idx) = s.session {
                    self.pump_session(idx); // the session, not the app, was waiting
                    continue;
                }
                return Step::Writable;
            }
            if let crate::LinkState::Closed(r) = s.link.state() {
                return Step::Closed(r);
            }
            return Step::Idle;
        }
    }

    /// Decodes the next frame in the link's receive buffer. `None`: needs more bytes.
    fn decode(&mut self, i: u32, now: Instant) -> Option<Step> {
        loop {
            if self.slots[i as usize]
                .session
                .is_some_and(|idx| self.session_refusing(idx))
            {
                return None; // a refused DATA holds the link: nothing is read
            }
            let s = &mut self.slots[i as usize];
            let data = self.bufs.data(&s.rx);
            if data.is_empty() {
                return None;
            }
            let res = self.codec.decode(data, &mut s.scan, self.cfg.max_frame);
            match res {
                Ok(Decoded::Frame {
                    payload,
                    consumed,
                    skipped,
                }) => {
                    s.link.handle_skipped(skipped);
                    s.last_frame = u32::try_from(consumed).unwrap_or(u32::MAX);
                    let block = s.rx.block?;
                    let base = s.rx.start as usize;
                    let frame = &self.bufs.block(block)[base + payload.start..base + payload.end];
                    let action = s.link.handle_frame(now, frame);

                    if let FrameAction::Established(g) = action {
                        self.bufs.consume(&mut s.rx, consumed);
                        s.scan = 0;
                        // Bind first: the WELCOME carries the session's greeting.
                        if !self.bind_session(i, g, now) {
                            return None;
                        }
                        self.sync(i, now);
                        if let Some(idx) = self.slots[i as usize].session {
                            self.pump_session(idx);
                        }
                        return Some(Step::Connected);
                    }
                    self.sync(i, now);
                    let s = &mut self.slots[i as usize];
                    let (offset, data_seq) = match action {
                        FrameAction::Deliver { offset, seq } => (offset, seq),
                        FrameAction::Skip
                        | FrameAction::Established(_)
                        | FrameAction::Ack(_)
                        | FrameAction::SessionSkip(_) => {
                            self.bufs.consume(&mut s.rx, consumed);
                            s.scan = 0;
                            match (action, s.session) {
                                (FrameAction::Ack(seq), Some(idx)) => self.session_ack(idx, seq),
                                (FrameAction::SessionSkip(seq), Some(idx)) => {
                                    self.session_skip(idx, seq, now)
                                }
                                _ => {}
                            }
                            continue;
                        }
                        FrameAction::Close(reason) => {
                            log::info!("closing link to {}: {reason}", s.peer);
                            self.close_slot(i, reason);
                            return None;
                        }
                    };
                    let d = Delivered {
                        slot: i,
                        gen: s.gen,
                        block,
                        start: base + payload.start + offset,
                        end: base + payload.end,
                        consumed,
                    };
                    if let Some(idx) = s.session {
                        match self.session_data(idx, data_seq, d.end - d.start, now) {
                            crate::session::Received::Deliver => {
                                return Some(Step::SessionMessage(idx, d))
                            }
                            crate::session::Received::Duplicate
                            | crate::session::Received::Skipped => {
                                let s = &mut self.slots[i as usize];
                                self.bufs.consume(&mut s.rx, consumed);
                                s.scan = 0;
                                continue;
                            }
                            crate::session::Received::Lost | crate::session::Received::Refused => {
                                return None
                            }
                        }
                    }
                    if self.cfg.mllp_commit_ack {
                        let p = &self.bufs.block(block)[d.start..d.end];
                        if let Some(accepted) = s.link.handle_delivery(p) {
                            self.bufs.consume(&mut s.rx, consumed);
                            s.scan = 0;
                            return Some(Step::CommitAck(accepted));
                        }
                        self.sync(i, now); // the commit ACK the link queued
                    }
                    return Some(Step::Message(d));
                }
                Ok(Decoded::Incomplete { skipped, needed }) => {
                    if skipped > 0 {
                        s.link.handle_skipped(skipped);
                        self.bufs.consume(&mut s.rx, skipped);
                        s.scan = 0;
                        continue;
                    }
                    // What is left is the start of a frame: its deadline runs.
                    let earlier = s.link.handle_partial_frame(now, s.rx.len());
                    if let Some(total) = needed {
                        // Length known from the header: move to a big enough block now.
                        let more = total.saturating_sub(s.rx.len());
                        if !self.reserve_rx(i, more) {
                            self.wait_for_large(i);
                        }
                    }
                    if earlier {
                        self.resched(i);
                    }
                    return None;
                }
                Err(e) => {
                    let reason = s.link.handle_decode_error(e);
                    warn_limited!(
                        self.warnings[Warning::BadFrame as usize],
                        now,
                        "closing link to {}: {reason}",
                        s.peer
                    );
                    self.close_slot(i, reason);
                    return None;
                }
            }
        }
    }

    fn wait_for_large(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        // Not the peer's doing: its idle and frame timers stop meanwhile.
        s.link.pause_reads(self.now);
        if !s.in_waiting {
            s.in_waiting = true;
            self.waiting.push_back(i);
            self.stats.large_buffer_waits += 1;
        }
    }

    /// The link stops reading for now: a short tail moves out, so the burst block
    /// can serve the next link that reads; a long one stays (moving a large
    /// partial frame out and back costs more than the reads the block saves).
    fn pause_rx(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if s.rx.len() <= self.bufs.block_size(Tier::Small) / 4 {
            self.bufs.park(&mut s.rx);
        }
    }

    /// Reads once into the link's receive buffer. True when bytes arrived.
    fn fill(&mut self, i: u32, now: Instant) -> bool {
        let held = self.slots[i as usize]
            .session
            .is_some_and(|idx| self.session_refusing(idx));
        let s = &mut self.slots[i as usize];
        if !s.readable || s.in_waiting || !s.link.may_read() || held {
            self.pause_rx(i);
            return false;
        }
        // Frames that fit the burst block many times over read into it; larger
        // ones read into a large block (below). Each read leaves a partial frame
        // to move to the front, and in a large block that happens far less often
        // (callgrind, 16 KiB frames through a 64 KiB burst block: 27,000
        // instructions per message against 21,600).
        let last = s.last_frame as usize;
        if s.hot && last <= self.bufs.block_size(Tier::Burst) / 8 && self.bufs.take_burst(&mut s.rx)
        {
            return self.read_once(i, now);
        }
        let cap = self.bufs.capacity(&s.rx);
        let large_frames = last > self.bufs.block_size(Tier::Small);
        if cap == 0 && large_frames && self.bufs.large_available() {
            // This link's last frame was large: read straight into a large block
            // rather than fill a working block and copy it over. (Falls back to
            // a working block when the large pool has none free.)
            let small = self.bufs.block_size(Tier::Small);
            if self.reserve_rx(i, small + 1) {
                return self.read_once(i, now);
            }
        }
        if cap == 0 || self.slots[i as usize].rx.end as usize == cap {
            // Room for one more byte: compacts first, and grows into a large block
            // only when the frame at the front fills the working one.
            if !self.reserve_rx(i, 1) {
                let s = &mut self.slots[i as usize];
                if self.bufs.capacity(&s.rx) >= self.bufs.block_size(Tier::Large) {
                    // A full large block without a frame: the decoder must have
                    // flagged it; close rather than spin.
                    self.close_slot(i, CloseReason::FrameTooLarge);
                } else {
                    self.wait_for_large(i);
                }
                return false;
            }
        }
        self.read_once(i, now)
    }

    /// One read into the free tail of the link's receive block.
    fn read_once(&mut self, i: u32, now: Instant) -> bool {
        loop {
            let s = &mut self.slots[i as usize];
            let Some(sock) = s.sock.as_mut() else {
                return false;
            };
            match sock.read(self.bufs.spare(&s.rx)) {
                Ok(0) => {
                    s.readable = false;
                    self.close_slot(i, CloseReason::PeerClosed);
                    return false;
                }
                Ok(n) => {
                    // A read shorter than the room offered emptied the socket; any
                    // later byte raises a new edge, so skip the WouldBlock read.
                    // Not after a FIN was reported: its edge is spent, read to EOF.
                    let short = n < self.bufs.capacity(&s.rx) - s.rx.end as usize;
                    s.round_bytes = s.round_bytes.saturating_add(n as u32);
                    if short {
                        end_round(s, self.bufs.block_size(Tier::Small));
                    } else {
                        s.hot = true;
                    }
                    if short && !s.read_closed {
                        s.readable = false;
                    }
                    if s.rx.block.is_some_and(|b| b.tier == Tier::Burst) {
                        self.stats.burst_reads += 1;
                    }
                    s.rx.end += n as u32;
                    s.link.handle_input(now, n);
                    return true;
                }
                Err(e) if would_block(&e) => {
                    s.readable = false;
                    end_round(s, self.bufs.block_size(Tier::Small));
                    if s.rx.is_empty() {
                        self.bufs.release(&mut s.rx);
                    }
                    return false;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    s.readable = false;
                    log::debug!("read from {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return false;
                }
            }
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

/// What a frame carries after its protocol header: bytes the caller holds, or
/// the last delivered frame (still in its receive block).
#[derive(Clone, Copy)]
enum Body<'a> {
    Bytes(&'a [u8]),
    Delivered(Delivered),
}

impl Body<'_> {
    fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Delivered(d) => d.end - d.start,
        }
    }
}

/// The socket was found empty: the link stays hot for the next round when this
/// one brought more than a working block (`small`) holds.
fn end_round(s: &mut Slot, small: usize) {
    s.hot = s.round_bytes as usize > small;
    s.round_bytes = 0;
}

/// Frames `head` + `body` into the slot's transmit buffer; false (nothing
/// written) when there is no room.
fn write_frame(
    s: &mut Slot,
    bufs: &mut Buffers,
    codec: &dyn Codec,
    head: &[u8],
    body: Body<'_>,
) -> bool {
    let need = head.len() + body.len() + codec.overhead();
    if !bufs.reserve(&mut s.tx, need) {
        return false;
    }
    let n = match body {
        Body::Bytes(b) => codec.encode_parts(&[head, b], bufs.spare(&s.tx)),
        Body::Delivered(d) => bufs
            .src_and_spare(d.block, d.start..d.end, &s.tx)
            .and_then(|(src, spare)| codec.encode_parts(&[head, src], spare)),
    };
    match n {
        Some(n) => {
            s.tx.end += n as u32;
            true
        }
        None => false,
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
