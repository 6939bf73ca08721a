//! The C API: a [`Node`] behind an opaque handle, for C programs that embed mooring.
//!
//! The header `src/mooring.h` is generated from this file by cbindgen (pinned
//! version, settings in `src/cbindgen.toml`); CI regenerates it and fails when the
//! checked-in copy differs. Conventions follow rustls-ffi:
//!
//! - Opaque handle [`mooring_node`], created by [`mooring_node_new`] and freed by
//!   [`mooring_node_free`]; everything else is plain `#[repr(C)]` data copied in
//!   or out. Functions are named `<type>_<method>`; output parameters come last.
//! - Every function returns a [`mooring_result`] (or a documented sentinel) and
//!   never lets a panic cross the boundary: each body runs inside
//!   `catch_unwind`. A node whose call panicked is poisoned: every later call on
//!   it except [`mooring_node_free`] returns `MOORING_RESULT_POISONED`.
//! - NULL pointers, lengths that cannot be a Rust slice, invalid UTF-8, unknown
//!   enum values, unknown or stale links and listeners are error codes. No
//!   partial success: a call that fails has changed nothing and written no output
//!   except where its documentation says so.
//! - The text of the last failure on the calling thread is kept for
//!   [`mooring_last_error`].
//!
//! Threads: a node is not thread-safe. Use each node from one thread at a time
//! (it may move between threads between calls).

use core::ffi::{c_char, c_int, CStr};
use core::fmt::{self, Write as _};
use core::ptr;
use core::time::Duration;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::config::{AllowList, ConnectConfig, ListenConfig, NodeConfig, ServerPolicy};
use crate::error::CloseReason;
use crate::frame::Framing;
use crate::frame_deadline::FrameTimeout;
use crate::link::LinkStats;
use crate::liveness::{Heartbeat, LivenessConfig, Protocol, TcpKeepalive};
use crate::node::{
    Event, LinkId, ListenerId, Node, NodeStats, SessionNote, SetupError, MAX_LISTENERS,
};
use crate::session::{Backoff, SessionConfig, SessionEnd, SessionError};

/// Size of every address text buffer in this API (`"[v6%scope]:port"` fits with its NUL).
pub const MOORING_ADDR_MAX: usize = 64;

/// The `listener` of an event that has none (outbound links, non-connect events).
pub const MOORING_NO_LISTENER: u32 = u32::MAX;

/// What every call returns. Codes are stable; `mooring_result_name` names them.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_result {
    /// Success.
    Ok = 0,
    /// `mooring_node_next_event`: no event until the next `mooring_node_poll`. Not an error.
    NoEvent = 1,
    /// A required pointer argument was NULL.
    NullParameter = 2,
    /// An argument is out of range (a length, a timeout, an enum value).
    InvalidArgument = 3,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 4,
    /// An address is not `ip:port` (IPv6 as `[addr]:port`; no host names).
    InvalidAddress = 5,
    /// The configuration cannot work; `mooring_last_error` names the field.
    InvalidConfig = 6,
    /// The link or listener is unknown to this node, or stale (its slot was reused).
    UnknownLink = 7,
    /// No free link slot, or no room for another listener.
    NoSlot = 8,
    /// The operating system refused (bind, connect, poll); see `mooring_last_error`.
    Io = 9,
    /// Backpressure: the link's transmit buffer is full; wait for `MOORING_EVENT_KIND_WRITABLE`.
    /// On an accepted link no further message of that link arrives before it:
    /// keep the refused reply and send it then (replies up to `buffer_size / 2`
    /// bytes always have room; see the README's "Reply backpressure").
    TxFull = 10,
    /// The frame is larger than `max_frame`.
    FrameTooLarge = 11,
    /// The link is closed (its `MOORING_EVENT_KIND_CLOSED` event is or was delivered).
    NotOpen = 12,
    /// The output buffer is too small; nothing was written but an empty string.
    BufferTooSmall = 13,
    /// An earlier call on this node panicked; only `mooring_node_free` is allowed.
    Poisoned = 14,
    /// mooring panicked inside this call (a bug); the node is now poisoned.
    Panic = 15,
    /// The session's queue is full: backpressure, try again after events.
    QueueFull = 16,
    /// The session has ended (or the handle is stale).
    SessionEnded = 17,
    /// Memory sized from the configuration (`max_links`, buffers, ...) could not
    /// be allocated; `mooring_last_error` names what and how many bytes.
    OutOfMemory = 18,
}

/// The framing of every link of a node (`mooring_config.framing`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_framing {
    /// HL7 MLLP: `0x0B payload 0x1C 0x0D` (default).
    Mllp = 0,
    /// 4-byte big-endian length, then the payload.
    Len32 = 1,
}

/// Link protocol (`mooring_config.protocol`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_protocol {
    /// Application payloads as they are: any HL7 engine or peer (default).
    Raw = 0,
    /// The mooring session protocol (both ends mooring): handshake, heartbeats.
    Mooring = 1,
}

/// What a `mooring_event` reports.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_event_kind {
    /// A link is open: accepted on `listener`, or an outbound connect completed. `peer` set.
    Connected = 1,
    /// A frame arrived: `data`/`len` (see `mooring_event` for how long they stay valid).
    Message = 2,
    /// MLLP release 2 commit acknowledgement: `accepted` is 1 for ACK, 0 for NAK.
    CommitAck = 3,
    /// `mooring_node_send` returned `MOORING_RESULT_TX_FULL` earlier; there is room again.
    Writable = 4,
    /// The link closed with `reason`; `stats` holds its final counters. The link is now stale.
    Closed = 5,
    /// A connection was refused by policy before it got a link: `listener`, `peer`, `reason`.
    Rejected = 6,
    /// A message of a reliable session: `session`, `data`/`len` (in order, exactly once).
    SessionMessage = 7,
    /// A link carries the session: `session`, `resumed` (1 after a lost link),
    /// `count` (messages sent again because the peer lacked them).
    SessionEstablished = 8,
    /// Client: the session's link was lost; attempt `attempt` starts after `delay_ms`.
    SessionReconnecting = 9,
    /// The session ended: `session_end` says how, `count` how many of its messages
    /// may not have been delivered. The session handle is now stale.
    SessionEnded = 10,
}

/// How a session ended (`mooring_event.session_end`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_session_end {
    /// Not a SESSION_ENDED event.
    None = 0,
    /// The session could not be made whole.
    Lost = 1,
    /// The server no longer had it (the client stayed away past the resume window).
    Expired = 2,
    /// Its queue overflowed (close-on-full policy).
    QueueFull = 3,
    /// An application closed it.
    Closed = 4,
    /// Server: a new session took its slot while its client was away.
    Evicted = 5,
}

/// A reliable session of a node. `{0, 0}` is never valid; after its SESSION_ENDED
/// event the value is stale (`MOORING_RESULT_SESSION_ENDED`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct mooring_session {
    /// Table index, below the node's session slots.
    pub index: u32,
    /// Generation of that table entry (starts at 1).
    pub gen: u32,
}

/// Why a link closed (`mooring_event.reason`). `mooring_close_reason_name` gives
/// the stable name the CLI prints (`reason=PeerClosed`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_close_reason {
    /// No reason (events other than CLOSED and REJECTED).
    None = 0,
    /// The peer closed its side (EOF).
    PeerClosed = 1,
    /// The peer reset the connection, or the socket reported an error.
    Reset = 2,
    /// No byte was received for `idle_timeout_ms`.
    IdleTimeout = 3,
    /// A newer connection replaced this idle one (stale recovery).
    StaleReplaced = 4,
    /// A frame larger than `max_frame` was announced or received.
    FrameTooLarge = 5,
    /// The byte stream broke the framing rules.
    BadFrame = 6,
    /// The listener was at `max_connections` (or the node had no free slot).
    TooManyConnections = 7,
    /// The peer's address is not on the allow-list.
    NotAllowed = 8,
    /// No reply arrived within the response timeout.
    ResponseTimeout = 9,
    /// The connection was not established within `connect_timeout_ms`.
    ConnectTimeout = 10,
    /// The peer refused the connection.
    ConnectionRefused = 11,
    /// Queued bytes could not be written within `write_timeout_ms`.
    WriteTimeout = 12,
    /// Close-after-reply: the reply was written.
    ClosedAfterReply = 13,
    /// Client close-per-message: the reply was received.
    ClosedPerMessage = 14,
    /// The application closed the link (`mooring_node_close`).
    LocalClose = 15,
    /// A socket error other than a reset.
    Io = 16,
    /// Heartbeat: nothing received for `heartbeat_timeout_ms`.
    HeartbeatTimeout = 17,
    /// Mooring protocol: no handshake within `handshake_timeout_ms`.
    HandshakeTimeout = 18,
    /// Keep-alive message: no frame came back within its timeout.
    KeepAliveTimeout = 19,
    /// Mooring protocol: the peer speaks another protocol version.
    VersionMismatch = 20,
    /// The TCP stack gave up (keepalive probes unanswered, or `TCP_USER_TIMEOUT`).
    TcpTimeout = 21,
    /// The server no longer has the session this link tried to resume.
    SessionExpired = 22,
    /// The session could not be made whole (messages were lost).
    SessionLost = 23,
    /// A resume presented the wrong token for its session.
    BadToken = 24,
    /// The application closed the session; the peer's ends as closed too.
    SessionClosed = 25,
    /// A frame was not complete within `frame_timeout_ms` (plus the time its
    /// received bytes bought at `frame_min_rate`): a slow or stalled peer.
    FrameTimeout = 26,
    /// The peer's address already held `max_connections_per_ip` links.
    TooManyConnectionsFromPeer = 27,
    /// A session's replay queue had no room for a reply: the link closes, the
    /// peer resumes and sends the message again.
    SessionQueueFull = 28,
    /// A new session from an address at `max_sessions_per_ip`, none of them
    /// disconnected.
    TooManySessionsFromPeer = 29,
}

/// Everything a node needs, with defaults from `mooring_config_default`.
///
/// Durations are milliseconds; where "0 = off" is stated, 0 turns the feature
/// off, elsewhere 0 is invalid. Boolean fields take 0 or 1. The listen and
/// connect settings apply to every listener and outbound link of the node.
///
/// Memory: `max_links x 2 x buffer_size` bytes of working buffers plus
/// `large_buffers x (max_frame + 8)` plus `read_burst` are reserved at
/// `mooring_node_new`; pages a link never touches stay virtual.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mooring_config {
    /// A `mooring_framing` value. Default `MOORING_FRAMING_MLLP`.
    pub framing: u32,
    /// Link slots (accepted plus outbound links at once). Default 16.
    pub max_links: u32,
    /// Largest payload accepted or sent, in bytes. Default 1 MiB.
    pub max_frame: u32,
    /// Working buffer per link and direction, in bytes (at least 64). Default 16 KiB.
    pub buffer_size: u32,
    /// Shared buffers of `max_frame` for frames larger than `buffer_size`. Default 2.
    pub large_buffers: u32,
    /// One node-wide buffer for larger reads by a link whose reads keep filling
    /// its working buffer, in bytes; used only when larger than `buffer_size`;
    /// 0 = off. Default 64 KiB.
    pub read_burst: u32,
    /// A link whose queued bytes make no progress this long closes. Default 10000.
    pub write_timeout_ms: u32,
    /// 1: MLLP release 2 commit ACK/NAK. Default 0.
    pub mllp_commit_ack: u32,
    /// Listen: links each listener serves at once (at most `max_links`). Default 10.
    pub max_connections: u32,
    /// Listen and connect: close a link that received nothing this long; 0 = off (default).
    pub idle_timeout_ms: u32,
    /// Listen: stale connection recovery (needs `max_connections` = 1); 0 = off (default).
    pub stale_recovery_ms: u32,
    /// Listen: 1 closes each accepted link once the reply to its first message is written.
    /// Default 0 (keep open).
    pub close_after_reply: u32,
    /// Listen: comma-separated IPs or CIDRs allowed to connect (`"10.0.0.0/8,127.0.0.1"`);
    /// NULL or `""` allows everyone (default). Read during `mooring_node_new` only.
    pub allow: *const c_char,
    /// Connect: give up connecting after this long. Default 5000.
    pub connect_timeout_ms: u32,
    /// Listen and connect: a `mooring_protocol` value. Default `MOORING_PROTOCOL_RAW`.
    pub protocol: u32,
    /// Mooring protocol: send PING after this long without sending; 0 = off (default).
    pub heartbeat_interval_ms: u32,
    /// Mooring protocol: dead after this long without receiving (> interval); 0 = off.
    pub heartbeat_timeout_ms: u32,
    /// Mooring protocol: the handshake must complete within this. Default 10000.
    pub handshake_timeout_ms: u32,
    /// OS keepalive: idle time before the first probe; 0 = off (default).
    pub tcp_keepalive_idle_ms: u32,
    /// OS keepalive: time between probes (used when `tcp_keepalive_idle_ms` is set). Default 10000.
    pub tcp_keepalive_interval_ms: u32,
    /// OS keepalive: unanswered probes before the link is dropped. Default 3.
    pub tcp_keepalive_count: u32,
    /// `TCP_USER_TIMEOUT` (Linux): unacknowledged data limit; 0 = off (default).
    pub tcp_user_timeout_ms: u32,
    /// 1: reliable sessions on listeners (needs `protocol` = mooring) and for
    /// `mooring_node_open_session`. Default 0.
    pub session: u32,
    /// Session slots; 0 = twice `max_connections` (default). Each reserves its
    /// replay ring (8 MiB) when first used.
    pub max_sessions: u32,
    /// Unacknowledged messages a session keeps while connected (10 x while
    /// disconnected). Default 1000.
    pub session_queue: u32,
    /// How long a server keeps a disconnected session. Default 60000.
    pub resume_window_ms: u32,
    /// Session clients: first reconnect waits up to this (full jitter). Default 1000.
    pub reconnect_min_ms: u32,
    /// Session clients: the reconnect wait doubles up to this. Default 30000.
    pub reconnect_max_ms: u32,
    /// Listen and connect: a frame whose first byte arrived must be complete
    /// within this (slow peers), else the link closes with `FrameTimeout`;
    /// 0 = off. Default 30000.
    pub frame_timeout_ms: u32,
    /// Each received byte of that frame adds 1/`frame_min_rate` s to its
    /// deadline (bytes per second; 0 = no extension). Default 500.
    pub frame_min_rate: u32,
    /// No frame's deadline goes beyond this from its first byte (or
    /// `frame_timeout_ms`, if longer). Default 600000.
    pub frame_max_ms: u32,
    /// Listen: links one peer address may hold at once; more are rejected
    /// (`TOO_MANY_CONNECTIONS_FROM_PEER`). 0 = off (default).
    pub max_connections_per_ip: u32,
    /// Sessions one IP address may hold on a listener's node; at the limit its
    /// new session replaces its own session disconnected longest, or is refused
    /// (`TooManySessionsFromPeer`). 0 = no limit (default).
    pub max_sessions_per_ip: u32,
}

/// A link of a node. `{0, 0}` is never a valid link. Once the link's CLOSED
/// event is delivered the value is stale: calls with it return
/// `MOORING_RESULT_NOT_OPEN` or `MOORING_RESULT_UNKNOWN_LINK`, never another link.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct mooring_link {
    /// Slot index, below `max_links`; reused after the link closes.
    pub slot: u32,
    /// Generation of the slot (starts at 1); tells a reused slot from the old link.
    pub gen: u32,
}

/// Counters of one link.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mooring_link_stats {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Frames received (including discarded ones).
    pub frames_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Noise bytes skipped between frames (MLLP: stray CR/LF/NUL).
    pub skipped_bytes: u64,
    /// Frames received but not processed (close-after-reply: after the first message).
    pub discarded_frames: u64,
    /// Bytes received toward the reply currently awaited.
    pub partial_reply_bytes: u64,
}

/// Node-wide counters.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mooring_node_stats {
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
    /// Times a link had to wait for a large buffer (backpressure).
    pub large_buffer_waits: u64,
    /// Reads into the node's burst buffer (`read_burst`).
    pub burst_reads: u64,
    /// Link slots in use now (open, connecting, or closed and not yet reported).
    pub links_in_use: u64,
    /// `accept` calls that failed (e.g. out of descriptors); the listener is
    /// retried every 100 ms and whenever a link closes.
    pub accept_errors: u64,
    /// Retries of listeners whose `accept` had failed.
    pub accept_retries: u64,
    /// Connections refused: their address held `max_connections_per_ip` links.
    pub rejected_from_peer: u64,
}

/// One event, filled by `mooring_node_next_event`. Fields that do not apply to
/// `kind` are zero, NULL or `""`.
///
/// `data` points into the node's receive buffer; the node owns it. It stays
/// valid until the next `mooring_node_next_event`, `mooring_node_poll`,
/// `mooring_node_close` or `mooring_node_free` on this node; until then it may
/// be passed to `mooring_node_send` (an echo is fine). Copy it to keep it longer.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mooring_event {
    /// What happened.
    pub kind: mooring_event_kind,
    /// The link (all kinds but REJECTED).
    pub link: mooring_link,
    /// CONNECTED on an accepted link, REJECTED: the listener; else `MOORING_NO_LISTENER`.
    pub listener: u32,
    /// CLOSED, REJECTED: a `mooring_close_reason` value.
    pub reason: u32,
    /// COMMIT_ACK: 1 for ACK, 0 for NAK.
    pub accepted: u32,
    /// CONNECTED, CLOSED, REJECTED: the peer as NUL-terminated `ip:port`.
    pub peer: [c_char; MOORING_ADDR_MAX],
    /// MESSAGE: the payload (borrowed, see above).
    pub data: *const u8,
    /// MESSAGE: the payload's length in bytes.
    pub len: usize,
    /// CLOSED: the link's final counters.
    pub stats: mooring_link_stats,
    /// SESSION_*: the session.
    pub session: mooring_session,
    /// SESSION_ESTABLISHED: 1 when an existing session was resumed.
    pub resumed: u32,
    /// SESSION_RECONNECTING: the attempt number, from 1.
    pub attempt: u32,
    /// SESSION_RECONNECTING: the wait before it, in ms.
    pub delay_ms: u32,
    /// SESSION_ENDED: a `mooring_session_end` value.
    pub session_end: u32,
    /// SESSION_ESTABLISHED: messages replayed; SESSION_ENDED: messages in doubt.
    pub count: u64,
    /// CLOSED (mooring protocol): the `mooring_close_reason` the peer gave in
    /// its CLOSE message, else `MOORING_CLOSE_REASON_NONE`. The peer's claim,
    /// unverified: `reason` is then `MOORING_CLOSE_REASON_PEER_CLOSED`.
    pub peer_reason: u32,
}

/// A node: one poll, its listeners and links. Opaque; create with
/// `mooring_node_new`, free with `mooring_node_free`.
#[allow(non_camel_case_types)]
pub struct mooring_node {
    node: Node,
    listen: ListenConfig,
    connect: ConnectConfig,
    /// Per slot: the generation handed to C and the node's id it stands for.
    links: Vec<LinkEntry>,
    /// Listener index (as C sees it) to the node's id.
    listeners: heapless::Vec<ListenerId, MAX_LISTENERS>,
    /// Copy of a payload that aliases the node's receive buffer (echo).
    scratch: Vec<u8>,
    poisoned: bool,
}

#[derive(Clone, Copy, Default)]
struct LinkEntry {
    gen: u32,
    id: Option<LinkId>,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `msg` as the calling thread's last error and returns `code`.
fn fail(code: mooring_result, msg: impl fmt::Display) -> mooring_result {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
            let _ = write!(e, "{msg}");
        }
    });
    code
}

/// Empties the calling thread's last error: every call that can fail does this
/// first, so the text always belongs to the most recent such call (see
/// `mooring_last_error`). Keeps the string's memory.
fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
        }
    });
}

/// [`boundary`] for an entry point that can fail: the last error is cleared
/// first, and set again only if `body` fails.
fn fallible<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    clear_last_error();
    boundary(on_panic, body)
}

/// Runs `body`, turning a panic into `on_panic` (with the last error set).
fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            fail(
                mooring_result::Panic,
                "mooring panicked (a bug); the call failed",
            );
            on_panic
        }
    }
}

/// Runs `f` on the node behind `node`: NULL and poison checks, panic boundary,
/// poison on panic.
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`, used by no other
/// call at the same time.
unsafe fn with_node(
    node: *mut mooring_node,
    f: impl FnOnce(&mut mooring_node) -> Result<(), mooring_result>,
) -> mooring_result {
    clear_last_error();
    if node.is_null() {
        return fail(mooring_result::NullParameter, "node is NULL");
    }
    let res = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: non-NULL, and live and unshared by the caller's contract.
        let h = unsafe { &mut *node };
        if h.poisoned {
            return Err(fail(
                mooring_result::Poisoned,
                "an earlier call on this node panicked; only mooring_node_free is allowed",
            ));
        }
        f(h)
    }));
    match res {
        Ok(Ok(())) => mooring_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => {
            // SAFETY: as above; the borrow inside the closure ended with the unwind.
            unsafe { (*node).poisoned = true };
            fail(
                mooring_result::Panic,
                "mooring panicked (a bug); this node is poisoned",
            )
        }
    }
}

/// Read-only variant of [`with_node`] for calls returning a plain value.
///
/// # Safety
/// As [`with_node`].
unsafe fn read_node<T>(
    node: *const mooring_node,
    none: T,
    f: impl FnOnce(&mooring_node) -> T,
) -> T {
    clear_last_error();
    if node.is_null() {
        fail(mooring_result::NullParameter, "node is NULL");
        return none;
    }
    // SAFETY: non-NULL, and live by the caller's contract.
    let h = unsafe { &*node };
    if h.poisoned {
        fail(mooring_result::Poisoned, "node is poisoned");
        return none;
    }
    match catch_unwind(AssertUnwindSafe(|| f(h))) {
        Ok(v) => v,
        Err(_) => {
            fail(mooring_result::Panic, "mooring panicked (a bug)");
            none
        }
    }
}

/// A NUL-terminated C string argument as `&str`.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(s: *const c_char, what: &str) -> Result<&'a str, mooring_result> {
    if s.is_null() {
        return Err(fail(
            mooring_result::NullParameter,
            format_args!("{what} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| {
        fail(
            mooring_result::InvalidUtf8,
            format_args!("{what} is not valid UTF-8"),
        )
    })
}

/// The `len` bytes at `data` (NULL allowed when `len` is 0), checked.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that outlive the use.
unsafe fn c_bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], mooring_result> {
    if data.is_null() && len > 0 {
        return Err(fail(mooring_result::NullParameter, "data is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(fail(mooring_result::InvalidArgument, "len is too large"));
    }
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `len` readable bytes at non-NULL `data` by contract.
    Ok(unsafe { core::slice::from_raw_parts(data, len) })
}

fn parse_addr(s: &str) -> Result<SocketAddr, mooring_result> {
    s.trim().parse().map_err(|_| {
        fail(
            mooring_result::InvalidAddress,
            format_args!("not an ip:port address: {s:?}"),
        )
    })
}

/// Writes `args` and a NUL into `buf`; false (and nothing useful written) if it does not fit.
fn write_c(buf: &mut [c_char], args: fmt::Arguments<'_>) -> bool {
    struct W<'b> {
        buf: &'b mut [c_char],
        len: usize,
    }
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            // Keep one byte for the NUL.
            let room = self.buf.len().saturating_sub(self.len + 1);
            if s.len() > room {
                return Err(fmt::Error);
            }
            for (d, &b) in self.buf[self.len..].iter_mut().zip(s.as_bytes()) {
                *d = b as c_char;
            }
            self.len += s.len();
            Ok(())
        }
    }
    if buf.is_empty() {
        return false;
    }
    let mut w = W { buf, len: 0 };
    let ok = w.write_fmt(args).is_ok();
    let end = if ok { w.len } else { 0 };
    w.buf[end] = 0;
    ok
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn opt_ms(d: Option<Duration>) -> u32 {
    d.map_or(0, ms)
}

fn from_ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn off_if_zero(v: u32) -> Option<Duration> {
    (v != 0).then(|| from_ms(v))
}

fn flag(v: u32, field: &str) -> Result<bool, mooring_result> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("{field} must be 0 or 1 (it is {v})"),
        )),
    }
}

fn invalid_config(e: impl fmt::Display) -> mooring_result {
    fail(mooring_result::InvalidConfig, format_args!("config: {e}"))
}

fn setup_error(e: SetupError) -> mooring_result {
    let code = match e {
        SetupError::Config(_) => mooring_result::InvalidConfig,
        SetupError::Io(_) => mooring_result::Io,
        SetupError::NoSlot => mooring_result::NoSlot,
        SetupError::OutOfMemory { .. } => mooring_result::OutOfMemory,
    };
    fail(code, e)
}

fn defaults() -> mooring_config {
    let n = NodeConfig::default();
    let l = ListenConfig::default();
    let c = ConnectConfig::default();
    let k = TcpKeepalive::default();
    let s = SessionConfig::default();
    let b = Backoff::default();
    let f = FrameTimeout::default();
    mooring_config {
        framing: mooring_framing::Mllp as u32,
        max_links: u32::try_from(n.max_links).unwrap_or(u32::MAX),
        max_frame: u32::try_from(n.max_frame).unwrap_or(u32::MAX),
        buffer_size: u32::try_from(n.buffer_size).unwrap_or(u32::MAX),
        large_buffers: u32::try_from(n.large_buffers).unwrap_or(u32::MAX),
        read_burst: u32::try_from(n.read_burst).unwrap_or(u32::MAX),
        write_timeout_ms: ms(n.write_timeout),
        mllp_commit_ack: u32::from(n.mllp_commit_ack),
        max_connections: u32::try_from(l.max_connections).unwrap_or(u32::MAX),
        idle_timeout_ms: opt_ms(l.idle_timeout),
        stale_recovery_ms: opt_ms(l.stale_recovery),
        close_after_reply: u32::from(l.policy == ServerPolicy::CloseAfterReply),
        allow: ptr::null(),
        connect_timeout_ms: ms(c.connect_timeout),
        protocol: mooring_protocol::Raw as u32,
        heartbeat_interval_ms: 0,
        heartbeat_timeout_ms: 0,
        handshake_timeout_ms: ms(l.liveness.handshake_timeout),
        tcp_keepalive_idle_ms: 0,
        tcp_keepalive_interval_ms: ms(k.interval),
        tcp_keepalive_count: k.count,
        tcp_user_timeout_ms: 0,
        session: 0,
        max_sessions: 0,
        session_queue: u32::try_from(s.max_depth).unwrap_or(u32::MAX),
        resume_window_ms: ms(s.reconnect_timeout),
        reconnect_min_ms: ms(b.min),
        reconnect_max_ms: ms(b.max),
        frame_timeout_ms: ms(f.timeout),
        frame_min_rate: f.min_rate,
        frame_max_ms: ms(f.max),
        max_connections_per_ip: 0,
        max_sessions_per_ip: 0,
    }
}

/// The Rust configurations a C config stands for, checked.
fn convert(
    c: &mooring_config,
) -> Result<(NodeConfig, ListenConfig, ConnectConfig), mooring_result> {
    let framing = match c.framing {
        0 => Framing::Mllp,
        1 => Framing::Len32,
        v => {
            return Err(fail(
                mooring_result::InvalidConfig,
                format_args!("framing: unknown value {v}"),
            ))
        }
    };
    let protocol = match c.protocol {
        0 => Protocol::Raw,
        1 => Protocol::Mooring,
        v => {
            return Err(fail(
                mooring_result::InvalidConfig,
                format_args!("protocol: unknown value {v}"),
            ))
        }
    };
    let sessions = flag(c.session, "session")?;
    let session = sessions.then(|| SessionConfig {
        max_depth: c.session_queue as usize,
        max_depth_disconnected: (c.session_queue as usize).saturating_mul(10),
        reconnect_timeout: from_ms(c.resume_window_ms),
        ..SessionConfig::default()
    });
    let max_sessions = match (sessions, c.max_sessions) {
        (false, _) => 0,
        (true, 0) => 2 * c.max_connections as usize,
        (true, n) => n as usize,
    };
    let node = NodeConfig {
        max_links: c.max_links as usize,
        max_sessions,
        framing,
        max_frame: c.max_frame as usize,
        buffer_size: c.buffer_size as usize,
        large_buffers: c.large_buffers as usize,
        read_burst: c.read_burst as usize,
        write_timeout: from_ms(c.write_timeout_ms),
        mllp_commit_ack: flag(c.mllp_commit_ack, "mllp_commit_ack")?,
    };
    node.validate().map_err(invalid_config)?;
    let heartbeat =
        (c.heartbeat_interval_ms != 0 || c.heartbeat_timeout_ms != 0).then(|| Heartbeat {
            interval: from_ms(c.heartbeat_interval_ms),
            timeout: from_ms(c.heartbeat_timeout_ms),
        });
    let liveness = LivenessConfig {
        protocol,
        heartbeat,
        tcp_keepalive: (c.tcp_keepalive_idle_ms != 0).then(|| TcpKeepalive {
            idle: from_ms(c.tcp_keepalive_idle_ms),
            interval: from_ms(c.tcp_keepalive_interval_ms),
            count: c.tcp_keepalive_count,
        }),
        tcp_user_timeout: off_if_zero(c.tcp_user_timeout_ms),
        handshake_timeout: from_ms(c.handshake_timeout_ms),
        frame_timeout: off_if_zero(c.frame_timeout_ms).map(|timeout| FrameTimeout {
            timeout,
            min_rate: c.frame_min_rate,
            max: from_ms(c.frame_max_ms),
        }),
        // The keep-alive message needs a 'static payload: not exposed to C yet.
        ..LivenessConfig::default()
    };
    let mut allow = AllowList::default();
    if !c.allow.is_null() {
        // SAFETY: a non-NULL `allow` is a NUL-terminated string (the config's contract).
        let text = unsafe { c_str(c.allow, "allow") }?;
        for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            let net = item.parse().map_err(|e| {
                fail(
                    mooring_result::InvalidConfig,
                    format_args!("allow: {item:?}: {e}"),
                )
            })?;
            allow.push(net).map_err(invalid_config)?;
        }
    }
    let listen = ListenConfig {
        max_connections: c.max_connections as usize,
        idle_timeout: off_if_zero(c.idle_timeout_ms),
        stale_recovery: off_if_zero(c.stale_recovery_ms),
        allow,
        max_connections_per_ip: (c.max_connections_per_ip != 0)
            .then_some(c.max_connections_per_ip as usize),
        policy: if flag(c.close_after_reply, "close_after_reply")? {
            ServerPolicy::CloseAfterReply
        } else {
            ServerPolicy::KeepOpen
        },
        liveness,
        session,
        max_sessions_per_ip: (c.max_sessions_per_ip != 0).then_some(c.max_sessions_per_ip as usize),
    };
    let connect = ConnectConfig {
        connect_timeout: from_ms(c.connect_timeout_ms),
        idle_timeout: off_if_zero(c.idle_timeout_ms),
        liveness,
        session,
        backoff: Backoff {
            min: from_ms(c.reconnect_min_ms),
            max: from_ms(c.reconnect_max_ms),
            max_attempts: None,
        },
    };
    if sessions && (c.reconnect_min_ms == 0 || c.reconnect_min_ms > c.reconnect_max_ms) {
        return Err(fail(
            mooring_result::InvalidConfig,
            "reconnect_min_ms must be > 0 and <= reconnect_max_ms",
        ));
    }
    connect.validate().map_err(invalid_config)?;
    Ok((node, listen, connect))
}

/// The C link for a node's link id, remembered so C's value resolves back to it.
fn c_link(links: &mut [LinkEntry], id: LinkId) -> mooring_link {
    let Some(e) = links.get_mut(id.slot() as usize) else {
        return mooring_link::default();
    };
    if e.id != Some(id) {
        e.gen = e.gen.wrapping_add(1).max(1);
        e.id = Some(id);
    }
    mooring_link {
        slot: id.slot(),
        gen: e.gen,
    }
}

fn resolve(links: &[LinkEntry], l: mooring_link) -> Result<LinkId, mooring_result> {
    links
        .get(l.slot as usize)
        .filter(|e| e.gen == l.gen)
        .and_then(|e| e.id)
        .ok_or_else(|| {
            fail(
                mooring_result::UnknownLink,
                format_args!("link {}.{} is unknown or stale", l.slot, l.gen),
            )
        })
}

fn listener_index(listeners: &[ListenerId], id: ListenerId) -> u32 {
    listeners
        .iter()
        .position(|&l| l == id)
        .map_or(MOORING_NO_LISTENER, |i| i as u32)
}

fn c_link_stats(s: LinkStats) -> mooring_link_stats {
    mooring_link_stats {
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        frames_in: s.frames_in,
        frames_out: s.frames_out,
        skipped_bytes: s.skipped_bytes,
        discarded_frames: s.discarded_frames,
        partial_reply_bytes: s.partial_reply_bytes,
    }
}

fn reason_code(r: CloseReason) -> mooring_close_reason {
    use mooring_close_reason as C;
    match r {
        CloseReason::PeerClosed => C::PeerClosed,
        CloseReason::Reset => C::Reset,
        CloseReason::IdleTimeout => C::IdleTimeout,
        CloseReason::StaleReplaced => C::StaleReplaced,
        CloseReason::FrameTooLarge => C::FrameTooLarge,
        CloseReason::BadFrame => C::BadFrame,
        CloseReason::TooManyConnections => C::TooManyConnections,
        CloseReason::NotAllowed => C::NotAllowed,
        CloseReason::ResponseTimeout => C::ResponseTimeout,
        CloseReason::ConnectTimeout => C::ConnectTimeout,
        CloseReason::ConnectionRefused => C::ConnectionRefused,
        CloseReason::WriteTimeout => C::WriteTimeout,
        CloseReason::ClosedAfterReply => C::ClosedAfterReply,
        CloseReason::ClosedPerMessage => C::ClosedPerMessage,
        CloseReason::LocalClose => C::LocalClose,
        CloseReason::Io => C::Io,
        CloseReason::HeartbeatTimeout => C::HeartbeatTimeout,
        CloseReason::HandshakeTimeout => C::HandshakeTimeout,
        CloseReason::KeepAliveTimeout => C::KeepAliveTimeout,
        CloseReason::VersionMismatch => C::VersionMismatch,
        CloseReason::TcpTimeout => C::TcpTimeout,
        CloseReason::SessionExpired => C::SessionExpired,
        CloseReason::SessionLost => C::SessionLost,
        CloseReason::BadToken => C::BadToken,
        CloseReason::SessionClosed => C::SessionClosed,
        CloseReason::FrameTimeout => C::FrameTimeout,
        CloseReason::TooManyConnectionsFromPeer => C::TooManyConnectionsFromPeer,
        CloseReason::SessionQueueFull => C::SessionQueueFull,
        CloseReason::TooManySessionsFromPeer => C::TooManySessionsFromPeer,
    }
}

fn reason_name(code: u32) -> &'static CStr {
    match code {
        0 => c"None",
        1 => c"PeerClosed",
        2 => c"Reset",
        3 => c"IdleTimeout",
        4 => c"StaleReplaced",
        5 => c"FrameTooLarge",
        6 => c"BadFrame",
        7 => c"TooManyConnections",
        8 => c"NotAllowed",
        9 => c"ResponseTimeout",
        10 => c"ConnectTimeout",
        11 => c"ConnectionRefused",
        12 => c"WriteTimeout",
        13 => c"ClosedAfterReply",
        14 => c"ClosedPerMessage",
        15 => c"LocalClose",
        16 => c"Io",
        17 => c"HeartbeatTimeout",
        18 => c"HandshakeTimeout",
        19 => c"KeepAliveTimeout",
        20 => c"VersionMismatch",
        21 => c"TcpTimeout",
        22 => c"SessionExpired",
        23 => c"SessionLost",
        24 => c"BadToken",
        25 => c"SessionClosed",
        26 => c"FrameTimeout",
        27 => c"TooManyConnectionsFromPeer",
        28 => c"SessionQueueFull",
        29 => c"TooManySessionsFromPeer",
        _ => c"Unknown",
    }
}

fn result_name(code: u32) -> &'static CStr {
    match code {
        0 => c"MOORING_RESULT_OK",
        1 => c"MOORING_RESULT_NO_EVENT",
        2 => c"MOORING_RESULT_NULL_PARAMETER",
        3 => c"MOORING_RESULT_INVALID_ARGUMENT",
        4 => c"MOORING_RESULT_INVALID_UTF8",
        5 => c"MOORING_RESULT_INVALID_ADDRESS",
        6 => c"MOORING_RESULT_INVALID_CONFIG",
        7 => c"MOORING_RESULT_UNKNOWN_LINK",
        8 => c"MOORING_RESULT_NO_SLOT",
        9 => c"MOORING_RESULT_IO",
        10 => c"MOORING_RESULT_TX_FULL",
        11 => c"MOORING_RESULT_FRAME_TOO_LARGE",
        12 => c"MOORING_RESULT_NOT_OPEN",
        13 => c"MOORING_RESULT_BUFFER_TOO_SMALL",
        14 => c"MOORING_RESULT_POISONED",
        15 => c"MOORING_RESULT_PANIC",
        16 => c"MOORING_RESULT_QUEUE_FULL",
        17 => c"MOORING_RESULT_SESSION_ENDED",
        18 => c"MOORING_RESULT_OUT_OF_MEMORY",
        _ => c"MOORING_RESULT_UNKNOWN",
    }
}

/// The library version, e.g. `"0.1.0"`: a static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    V.as_ptr()
}

/// The constant's name of a `mooring_result` code (`"MOORING_RESULT_TX_FULL"`), or
/// `"MOORING_RESULT_UNKNOWN"`. A static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_result_name(result: u32) -> *const c_char {
    boundary(c"MOORING_RESULT_UNKNOWN".as_ptr(), || {
        result_name(result).as_ptr()
    })
}

/// The stable name of a `mooring_close_reason` code (`"PeerClosed"`), as the CLI prints
/// it, or `"Unknown"`. A static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_close_reason_name(reason: u32) -> *const c_char {
    boundary(c"Unknown".as_ptr(), || reason_name(reason).as_ptr())
}

/// Copies the calling thread's last error text into `buf` as a NUL-terminated
/// string, truncated to fit `len` bytes.
///
/// The text belongs to the most recent call on this thread that can fail:
/// every function returning a `mooring_result`, `mooring_node_fd` and
/// `mooring_node_next_deadline_ms`. Each of them clears it when called and
/// sets it only when it fails, so the text describes that call's failure and
/// is empty after a call that succeeded (or returned `MOORING_RESULT_NO_EVENT`).
/// It stays valid until the next such call on this thread. Calls that cannot
/// fail (`mooring_version`, `mooring_result_name`, `mooring_close_reason_name`,
/// `mooring_node_free`, this one) leave it as it is.
///
/// Returns the full length of the text without the NUL (like `snprintf`), so a
/// result `>= len` means it was truncated. `buf` may be NULL when `len` is 0.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_last_error(buf: *mut c_char, len: usize) -> usize {
    boundary(0, || {
        LAST_ERROR
            .try_with(|e| {
                let Ok(e) = e.try_borrow() else { return 0 };
                let text = e.as_bytes();
                if !buf.is_null() && len > 0 {
                    let n = text.len().min(len - 1);
                    // SAFETY: `buf` holds `len` bytes by contract and `n < len`.
                    unsafe {
                        ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                        *buf.add(n) = 0;
                    }
                }
                text.len()
            })
            .unwrap_or(0)
    })
}

/// Fills `*out` with the defaults: MLLP, 16 links, 1 MiB frames, 16 KiB buffers,
/// 2 large buffers, write timeout 10 s; listen: 10 connections, keep open, idle
/// timeout and stale recovery off, everyone allowed; connect timeout 5 s; raw
/// protocol, heartbeats, OS keepalive and `TCP_USER_TIMEOUT` off.
///
/// # Safety
/// `out` is NULL or points to a writable `mooring_config`.
#[no_mangle]
pub unsafe extern "C" fn mooring_config_default(out: *mut mooring_config) -> mooring_result {
    fallible(mooring_result::Panic, || {
        if out.is_null() {
            return fail(mooring_result::NullParameter, "out is NULL");
        }
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(defaults()) };
        mooring_result::Ok
    })
}

/// Builds a node from `config` (read during the call only: the caller keeps
/// ownership of it and of `config->allow`). On success `*out` is a node the
/// caller owns and must pass to `mooring_node_free`; on failure `*out` is NULL
/// and `mooring_last_error` tells why. The listen settings are checked against
/// the node at `mooring_node_listen`.
///
/// # Safety
/// `config` is NULL or points to a readable `mooring_config` whose `allow` is NULL
/// or a NUL-terminated string; `out` is NULL or points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_new(
    config: *const mooring_config,
    out: *mut *mut mooring_node,
) -> mooring_result {
    fallible(mooring_result::Panic, || {
        if out.is_null() {
            return fail(mooring_result::NullParameter, "out is NULL");
        }
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(ptr::null_mut()) };
        if config.is_null() {
            return fail(mooring_result::NullParameter, "config is NULL");
        }
        // SAFETY: non-NULL and readable by contract; every bit pattern is a valid config.
        let c = unsafe { config.read() };
        let (cfg, listen, connect) = match convert(&c) {
            Ok(v) => v,
            Err(code) => return code,
        };
        let slots = cfg.max_links;
        let buffer_size = cfg.buffer_size;
        let node = match Node::new(cfg) {
            Ok(n) => n,
            Err(e) => return setup_error(e),
        };
        // Sized from the config like the node's own tables: fallible too.
        let tables = crate::fallible::vec_filled(slots, LinkEntry::default(), "C link table")
            .and_then(|links| {
                crate::fallible::vec_with_capacity(buffer_size, "C echo buffer")
                    .map(|scratch| (links, scratch))
            });
        let (links, scratch) = match tables {
            Ok(t) => t,
            Err(e) => return setup_error(e.into()),
        };
        let h = Box::new(mooring_node {
            node,
            listen,
            connect,
            links,
            listeners: heapless::Vec::new(),
            scratch,
            poisoned: false,
        });
        // SAFETY: as above.
        unsafe { out.write(Box::into_raw(h)) };
        mooring_result::Ok
    })
}

/// Frees a node: closes its listeners and links (without events) and releases
/// all its memory. NULL is a no-op. The pointer, and every event `data` pointer
/// from it, are invalid afterwards. Allowed on a poisoned node.
///
/// # Safety
/// `node` is NULL or a pointer from `mooring_node_new` not yet freed, used by no
/// other call at the same time.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_free(node: *mut mooring_node) {
    if node.is_null() {
        return;
    }
    boundary((), || {
        // SAFETY: from Box::into_raw in mooring_node_new and not yet freed, by contract.
        drop(unsafe { Box::from_raw(node) });
    });
}

/// Binds a listener on `addr` (`"127.0.0.1:2575"`, `"[::]:2575"`, port 0 for any)
/// with the node's listen settings; `*listener_out` receives its index (0, 1, ...).
///
/// # Safety
/// `node` as for every node call (NULL or live, not used concurrently); `addr`
/// NULL or NUL-terminated; `listener_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_listen(
    node: *mut mooring_node,
    addr: *const c_char,
    listener_out: *mut u32,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if listener_out.is_null() {
            return Err(fail(mooring_result::NullParameter, "listener_out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        if h.listeners.is_full() {
            return Err(fail(mooring_result::NoSlot, "no room for another listener"));
        }
        let id = h.node.listen(addr, h.listen.clone()).map_err(setup_error)?;
        let idx = h.listeners.len() as u32;
        h.listeners
            .push(id)
            .map_err(|_| fail(mooring_result::NoSlot, "no room for another listener"))?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { listener_out.write(idx) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Writes the listener's bound address (the real port when bound to port 0) into
/// `buf` as NUL-terminated `ip:port`. `MOORING_ADDR_MAX` bytes always suffice;
/// with fewer, `MOORING_RESULT_BUFFER_TOO_SMALL` and `buf` holds `""`.
///
/// # Safety
/// `node` as for every node call; `buf` NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_local_addr(
    node: *mut mooring_node,
    listener: u32,
    buf: *mut c_char,
    len: usize,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if buf.is_null() {
            return Err(fail(mooring_result::NullParameter, "buf is NULL"));
        }
        if len > isize::MAX as usize {
            return Err(fail(mooring_result::InvalidArgument, "len is too large"));
        }
        let addr = h
            .listeners
            .get(listener as usize)
            .and_then(|&l| h.node.local_addr(l))
            .ok_or_else(|| {
                fail(
                    mooring_result::UnknownLink,
                    format_args!("no listener {listener}"),
                )
            })?;
        // SAFETY: `len` writable bytes by contract (checked to be a valid slice length).
        let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
        if write_c(out, format_args!("{addr}")) {
            Ok(())
        } else {
            Err(fail(
                mooring_result::BufferTooSmall,
                format_args!("{len} bytes cannot hold {addr} and its NUL"),
            ))
        }
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Starts an outbound connect to `addr` (`"ip:port"`) with the node's connect
/// settings; `*link_out` receives the link at once. A CONNECTED event follows,
/// or CLOSED (`ConnectionRefused`, `ConnectTimeout`).
///
/// # Safety
/// `node` as for every node call; `addr` NULL or NUL-terminated; `link_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_connect(
    node: *mut mooring_node,
    addr: *const c_char,
    link_out: *mut mooring_link,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if link_out.is_null() {
            return Err(fail(mooring_result::NullParameter, "link_out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        let id = h.node.connect(addr, &h.connect).map_err(setup_error)?;
        let link = c_link(&mut h.links, id);
        // SAFETY: non-NULL and writable by contract.
        unsafe { link_out.write(link) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Writes queued frames, then waits until a socket is ready, a deadline passes,
/// or `timeout_ms` elapses (0: do not wait; -1: no limit but the node's own
/// deadlines), and handles what happened. Then drain `mooring_node_next_event`
/// until `MOORING_RESULT_NO_EVENT`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_poll(
    node: *mut mooring_node,
    timeout_ms: i64,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        let timeout = match timeout_ms {
            -1 => None,
            t => Some(Duration::from_millis(u64::try_from(t).map_err(|_| {
                fail(
                    mooring_result::InvalidArgument,
                    format_args!("timeout_ms must be -1 or >= 0 (it is {t})"),
                )
            })?)),
        };
        h.node
            .poll(timeout)
            .map_err(|e| fail(mooring_result::Io, format_args!("poll: {e}")))
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Takes the next event into `*out`: `MOORING_RESULT_OK` with an event, or
/// `MOORING_RESULT_NO_EVENT` (and `*out` untouched) when there is none until the
/// next `mooring_node_poll`. Reading from sockets happens here. Invalidates the
/// `data` of the previous event.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_next_event(
    node: *mut mooring_node,
    out: *mut mooring_event,
) -> mooring_result {
    let mut got = false;
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let mut ev = mooring_event {
            kind: mooring_event_kind::Connected,
            link: mooring_link::default(),
            listener: MOORING_NO_LISTENER,
            reason: mooring_close_reason::None as u32,
            accepted: 0,
            peer: [0; MOORING_ADDR_MAX],
            data: ptr::null(),
            len: 0,
            stats: mooring_link_stats::default(),
            session: mooring_session::default(),
            resumed: 0,
            attempt: 0,
            delay_ms: 0,
            session_end: mooring_session_end::None as u32,
            count: 0,
            peer_reason: mooring_close_reason::None as u32,
        };
        let links = &mut h.links;
        let listeners = &h.listeners[..];
        let Some(e) = h.node.next_event() else {
            return Ok(());
        };
        match e {
            Event::Connected {
                link,
                peer,
                listener,
            } => {
                ev.link = c_link(links, link);
                ev.listener =
                    listener.map_or(MOORING_NO_LISTENER, |l| listener_index(listeners, l));
                write_c(&mut ev.peer, format_args!("{peer}"));
            }
            Event::Message { link, payload } => {
                ev.kind = mooring_event_kind::Message;
                ev.link = c_link(links, link);
                ev.data = payload.as_ptr();
                ev.len = payload.len();
            }
            Event::CommitAck { link, accepted } => {
                ev.kind = mooring_event_kind::CommitAck;
                ev.link = c_link(links, link);
                ev.accepted = u32::from(accepted);
            }
            Event::Writable { link } => {
                ev.kind = mooring_event_kind::Writable;
                ev.link = c_link(links, link);
            }
            Event::Closed {
                link,
                peer,
                reason,
                stats,
                peer_reason,
            } => {
                ev.kind = mooring_event_kind::Closed;
                ev.link = c_link(links, link);
                ev.reason = reason_code(reason) as u32;
                ev.peer_reason = peer_reason
                    .map_or(mooring_close_reason::None as u32, |r| reason_code(r) as u32);
                ev.stats = c_link_stats(stats);
                write_c(&mut ev.peer, format_args!("{peer}"));
            }
            Event::Rejected {
                listener,
                peer,
                reason,
            } => {
                ev.kind = mooring_event_kind::Rejected;
                ev.listener = listener_index(listeners, listener);
                ev.reason = reason_code(reason) as u32;
                write_c(&mut ev.peer, format_args!("{peer}"));
            }
            Event::SessionMessage { session, payload } => {
                ev.kind = mooring_event_kind::SessionMessage;
                ev.session = c_session(session);
                ev.data = payload.as_ptr();
                ev.len = payload.len();
            }
            Event::Session { session, note } => {
                ev.session = c_session(session);
                match note {
                    SessionNote::Established { resumed, replaying } => {
                        ev.kind = mooring_event_kind::SessionEstablished;
                        ev.resumed = u32::from(resumed);
                        ev.count = replaying;
                    }
                    SessionNote::Reconnecting { attempt, delay } => {
                        ev.kind = mooring_event_kind::SessionReconnecting;
                        ev.attempt = attempt;
                        ev.delay_ms = ms(delay);
                    }
                    SessionNote::Ended(how) => {
                        ev.kind = mooring_event_kind::SessionEnded;
                        let (end, count) = match how {
                            SessionEnd::Lost { undelivered } => {
                                (mooring_session_end::Lost, undelivered)
                            }
                            SessionEnd::Expired { undelivered } => {
                                (mooring_session_end::Expired, undelivered)
                            }
                            SessionEnd::QueueFull { undelivered } => {
                                (mooring_session_end::QueueFull, undelivered)
                            }
                            SessionEnd::Closed => (mooring_session_end::Closed, 0),
                            SessionEnd::Evicted { undelivered } => {
                                (mooring_session_end::Evicted, undelivered)
                            }
                        };
                        ev.session_end = end as u32;
                        ev.count = count;
                    }
                }
            }
        }
        got = true;
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(ev) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    let r = unsafe { with_node(node, f) };
    match r {
        mooring_result::Ok if !got => mooring_result::NoEvent,
        r => r,
    }
}

/// Queues `len` bytes at `data` as one frame on `link`; it is written at the next
/// `mooring_node_poll`. The bytes are copied before the call returns: the caller
/// keeps ownership of `data`. `data` may be NULL when `len` is 0, and may be a
/// MESSAGE event's `data` (echo). `MOORING_RESULT_TX_FULL` is backpressure: wait
/// for a WRITABLE event.
///
/// # Safety
/// `node` as for every node call; `data` NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_send(
    node: *mut mooring_node,
    link: mooring_link,
    data: *const u8,
    len: usize,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        // SAFETY: the caller's contract for `data`/`len`.
        let payload = unsafe { c_bytes(data, len) }?;
        let id = resolve(&h.links, link)?;
        // A payload inside the node's own receive buffer (an echo, or part of a
        // message) cannot be borrowed by `send`: the whole last message goes by
        // `forward` (one copy); a part of it is copied out first.
        let (whole, aliases) = h.node.last_message().map_or((false, false), |m| {
            let (a, b) = (m.as_ptr() as usize, m.as_ptr() as usize + m.len());
            let (p, q) = (data as usize, data as usize + len);
            (p == a && len == m.len(), p < b && a < q)
        });
        let forwarded = if whole && len > 0 {
            h.node.forward(id)
        } else {
            Err(crate::SendError::NoMessage)
        };
        let res = if forwarded != Err(crate::SendError::NoMessage) {
            forwarded
        } else if aliases {
            h.scratch.clear();
            h.scratch.extend_from_slice(payload);
            h.node.send(id, &h.scratch)
        } else {
            h.node.send(id, payload)
        };
        res.map_err(|e| {
            let code = match e {
                crate::SendError::TxFull => mooring_result::TxFull,
                crate::SendError::FrameTooLarge => mooring_result::FrameTooLarge,
                _ => mooring_result::NotOpen,
            };
            fail(code, e)
        })
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Closes `link` now (after one last attempt to write what is queued); a CLOSED
/// event with reason `LocalClose` follows. Closing a link that is already closed
/// does nothing and returns `MOORING_RESULT_OK`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_close(
    node: *mut mooring_node,
    link: mooring_link,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        let id = resolve(&h.links, link)?;
        h.node.close(id);
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

fn c_session(id: crate::SessionId) -> mooring_session {
    mooring_session {
        index: id.idx,
        gen: id.gen,
    }
}

fn session_id(s: mooring_session) -> crate::SessionId {
    crate::SessionId {
        idx: s.index,
        gen: s.gen,
    }
}

/// Opens a reliable session to `addr` (`"ip:port"`) with the node's connect
/// settings (`session` = 1 and `protocol` = mooring in its config). The node
/// connects, resumes after lost links (`reconnect_min_ms`..`reconnect_max_ms`,
/// full jitter, forever) and reports SESSION_* events; messages sent meanwhile
/// queue up to `session_queue`.
///
/// # Safety
/// `node` as for every node call; `addr` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_open_session(
    node: *mut mooring_node,
    addr: *const c_char,
    out: *mut mooring_session,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        let id = h.node.open_session(addr, &h.connect).map_err(setup_error)?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(c_session(id)) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Queues `len` bytes at `data` as the next message of `session` (copied before
/// the call returns); it goes out now or after the next resume. `*seq_out` (if
/// not NULL) receives its sequence number. `MOORING_RESULT_QUEUE_FULL` is
/// backpressure; `MOORING_RESULT_SESSION_ENDED` means the handle is stale.
///
/// # Safety
/// `node` as for every node call; `data` NULL or `len` readable bytes; `seq_out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_session_send(
    node: *mut mooring_node,
    session: mooring_session,
    data: *const u8,
    len: usize,
    seq_out: *mut u64,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        // SAFETY: the caller's contract for `data`/`len`.
        let payload = unsafe { c_bytes(data, len) }?;
        // A payload taken from an event aliases the node's receive buffer.
        h.scratch.clear();
        h.scratch.extend_from_slice(payload);
        let seq = h
            .node
            .session_send(session_id(session), &h.scratch)
            .map_err(|e| {
                let code = match e {
                    SessionError::QueueFull => mooring_result::QueueFull,
                    SessionError::TooLarge => mooring_result::FrameTooLarge,
                    SessionError::Ended => mooring_result::SessionEnded,
                };
                fail(code, format_args!("{e:?}"))
            })?;
        if !seq_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Ends `session`: its peer is told, and a SESSION_ENDED event (`Closed`)
/// follows. A stale handle does nothing and returns `MOORING_RESULT_OK`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_close_session(
    node: *mut mooring_node,
    session: mooring_session,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        h.node.close_session(session_id(session));
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Copies the node-wide counters into `*out`.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_get_stats(
    node: *mut mooring_node,
    out: *mut mooring_node_stats,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let NodeStats {
            accepted,
            rejected_too_many,
            rejected_not_allowed,
            stale_replaced,
            unreported_rejections,
            large_buffer_waits,
            burst_reads,
            accept_errors,
            accept_retries,
            rejected_from_peer,
            // Sessions are not configurable through the C API yet (no
            // open_session); their counters stay 0 for C callers.
            bad_tokens: _,
            unreported_session_events: _,
            session_queue_full: _,
            sessions_evicted: _,
        } = h.node.stats();
        let s = mooring_node_stats {
            accepted,
            rejected_too_many,
            rejected_not_allowed,
            stale_replaced,
            unreported_rejections,
            large_buffer_waits,
            burst_reads,
            links_in_use: h.node.links_in_use() as u64,
            accept_errors,
            accept_retries,
            rejected_from_peer,
        };
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(s) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Copies an open link's counters into `*out`. A closed link's final counters
/// come with its CLOSED event; here it is `MOORING_RESULT_NOT_OPEN`.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_get_link_stats(
    node: *mut mooring_node,
    link: mooring_link,
    out: *mut mooring_link_stats,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let id = resolve(&h.links, link)?;
        let s = h
            .node
            .link_stats(id)
            .ok_or_else(|| fail(mooring_result::NotOpen, "link is closed"))?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(c_link_stats(s)) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// The node's pollable file descriptor, for the caller's own `poll()`/`select()`/
/// `epoll` loop: readable when `mooring_node_poll` has socket work. It does not
/// signal deadlines: wait at most `mooring_node_next_deadline_ms`. The node owns
/// it: do not close or read it. -1 when `node` is NULL or poisoned.
///
/// A loop that sleeps on it must only sleep after a `mooring_node_poll(node, 0)`
/// and a drain of `mooring_node_next_event` that produced no event (events, and
/// the sends they cause, leave work the descriptor does not signal):
///
/// ```c
/// for (;;) {
///     mooring_node_poll(node, 0);
///     int n = 0;
///     while (mooring_node_next_event(node, &ev) == MOORING_RESULT_OK) { n++; ... }
///     if (n == 0) poll(&pfd, 1, (int)mooring_node_next_deadline_ms(node));
/// }
/// ```
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`.
#[cfg(unix)]
#[no_mangle]
pub unsafe extern "C" fn mooring_node_fd(node: *const mooring_node) -> c_int {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller's contract is read_node's.
    unsafe { read_node(node, -1, |h| h.node.as_raw_fd()) }
}

/// Milliseconds until the node's earliest deadline (0 when due), rounded up so a
/// wait that long never wakes early; -1 when no deadline is set (or `node` is
/// NULL or poisoned). Pass it (capped at `INT_MAX`) as `poll()`'s timeout.
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_next_deadline_ms(node: *const mooring_node) -> i64 {
    // SAFETY: the caller's contract is read_node's.
    unsafe {
        read_node(node, -1, |h| match h.node.next_deadline() {
            None => -1,
            Some(at) => {
                let left = at.saturating_since(h.node.now());
                i64::try_from(crate::time::ceil_millis(left)).unwrap_or(i64::MAX)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: 256 writable bytes.
        let n = unsafe { mooring_last_error(buf.as_mut_ptr(), buf.len()) };
        // SAFETY: NUL-terminated by mooring_last_error.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(n, s.to_bytes().len());
        s.to_string_lossy().into_owned()
    }

    fn new_node(cfg: &mooring_config) -> *mut mooring_node {
        let mut node = ptr::null_mut();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { mooring_node_new(cfg, &mut node) },
            mooring_result::Ok
        );
        node
    }

    fn default_config() -> mooring_config {
        let mut c = core::mem::MaybeUninit::uninit();
        // SAFETY: writable.
        assert_eq!(
            unsafe { mooring_config_default(c.as_mut_ptr()) },
            mooring_result::Ok
        );
        // SAFETY: filled.
        unsafe { c.assume_init() }
    }

    #[test]
    fn every_close_reason_has_its_stable_name() {
        use CloseReason::*;
        let all = [
            PeerClosed,
            Reset,
            IdleTimeout,
            StaleReplaced,
            FrameTooLarge,
            BadFrame,
            TooManyConnections,
            NotAllowed,
            ResponseTimeout,
            ConnectTimeout,
            ConnectionRefused,
            WriteTimeout,
            ClosedAfterReply,
            ClosedPerMessage,
            LocalClose,
            Io,
            HeartbeatTimeout,
            HandshakeTimeout,
            KeepAliveTimeout,
            VersionMismatch,
            TcpTimeout,
            SessionExpired,
            SessionLost,
            BadToken,
            SessionClosed,
            FrameTimeout,
            TooManyConnectionsFromPeer,
            SessionQueueFull,
            TooManySessionsFromPeer,
        ];
        for r in all {
            let code = reason_code(r) as u32;
            // SAFETY: static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(mooring_close_reason_name(code)) };
            assert_eq!(name.to_str().unwrap(), r.as_str());
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(mooring_close_reason_name(999)) };
        assert_eq!(unknown.to_str().unwrap(), "Unknown");
    }

    #[test]
    fn result_names_match_the_header_constants() {
        // SAFETY: static strings.
        let name = |c: mooring_result| unsafe { CStr::from_ptr(mooring_result_name(c as u32)) };
        assert_eq!(
            name(mooring_result::Ok).to_str().unwrap(),
            "MOORING_RESULT_OK"
        );
        assert_eq!(
            name(mooring_result::TxFull).to_str().unwrap(),
            "MOORING_RESULT_TX_FULL"
        );
        assert_eq!(
            name(mooring_result::Panic).to_str().unwrap(),
            "MOORING_RESULT_PANIC"
        );
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(mooring_result_name(77)) };
        assert_eq!(unknown.to_str().unwrap(), "MOORING_RESULT_UNKNOWN");
    }

    #[test]
    fn default_config_builds_a_node_and_matches_the_rust_defaults() {
        let c = default_config();
        let (n, l, k) = convert(&c).unwrap();
        assert_eq!(n.max_links, NodeConfig::default().max_links);
        assert_eq!(n.max_frame, NodeConfig::default().max_frame);
        assert_eq!(l.max_connections, ListenConfig::default().max_connections);
        assert_eq!(l.liveness, LivenessConfig::default());
        assert_eq!(k.connect_timeout, ConnectConfig::default().connect_timeout);
        let node = new_node(&c);
        // SAFETY: from mooring_node_new.
        unsafe { mooring_node_free(node) };
    }

    #[test]
    fn frame_timeout_fields_reach_listen_and_connect_and_zero_turns_it_off() {
        let mut c = default_config();
        (c.frame_timeout_ms, c.frame_min_rate, c.frame_max_ms) = (300, 0, 1_000);
        let (_, l, k) = convert(&c).unwrap();
        let want = Some(FrameTimeout {
            timeout: Duration::from_millis(300),
            min_rate: 0,
            max: Duration::from_secs(1),
        });
        assert_eq!(
            (l.liveness.frame_timeout, k.liveness.frame_timeout),
            (want, want)
        );
        c.frame_timeout_ms = 0;
        assert_eq!(convert(&c).unwrap().1.liveness.frame_timeout, None);
    }

    #[test]
    fn the_last_error_is_cleared_by_a_call_that_succeeds() {
        // SAFETY: NULL is refused with a code; the rest are valid pointers.
        unsafe {
            let mut node = ptr::null_mut();
            assert_eq!(
                mooring_node_new(ptr::null(), &mut node),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "config is NULL");
            let mut c = core::mem::MaybeUninit::uninit();
            assert_eq!(mooring_config_default(c.as_mut_ptr()), mooring_result::Ok);
            assert_eq!(last_error(), "", "stale text after a success");
            assert_eq!(mooring_last_error(ptr::null_mut(), 0), 0);

            let node = new_node(&c.assume_init());
            assert_eq!(last_error(), "");
            let stale = mooring_link { slot: 0, gen: 7 };
            assert_ne!(mooring_node_close(node, stale), mooring_result::Ok);
            assert_ne!(last_error(), "");
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Ok);
            assert_eq!(last_error(), "", "stale text after a node call succeeded");
            assert_eq!(mooring_node_fd(ptr::null()), -1);
            assert_eq!(last_error(), "node is NULL");
            assert!(mooring_node_fd(node) >= 0);
            assert_eq!(last_error(), "");
            mooring_node_free(node);
        }
    }

    #[test]
    fn null_pointers_are_error_codes() {
        let c = default_config();
        let mut node = ptr::null_mut();
        // SAFETY: NULL is allowed everywhere and must be refused with a code.
        unsafe {
            assert_eq!(
                mooring_config_default(ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_new(ptr::null(), &mut node),
                mooring_result::NullParameter
            );
            assert!(node.is_null());
            assert_eq!(
                mooring_node_new(&c, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_poll(ptr::null_mut(), 0),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "node is NULL");
            let mut ev = core::mem::MaybeUninit::<mooring_event>::uninit();
            assert_eq!(
                mooring_node_next_event(ptr::null_mut(), ev.as_mut_ptr()),
                mooring_result::NullParameter
            );
            assert_eq!(mooring_node_fd(ptr::null()), -1);
            assert_eq!(mooring_node_next_deadline_ms(ptr::null()), -1);
            mooring_node_free(ptr::null_mut());

            let node = new_node(&c);
            let mut l = 0u32;
            assert_eq!(
                mooring_node_listen(node, ptr::null(), &mut l),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_listen(node, c"127.0.0.1:0".as_ptr(), ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_next_event(node, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_send(node, mooring_link::default(), ptr::null(), 3),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_get_stats(node, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_local_addr(node, 0, ptr::null_mut(), 10),
                mooring_result::NullParameter
            );
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_max_links_the_host_cannot_provide_is_an_out_of_memory_code_not_an_abort() {
        let mut c = default_config();
        c.max_links = u32::MAX;
        c.max_connections = 10;
        let mut node = ptr::null_mut();
        // SAFETY: valid pointers.
        let r = unsafe { mooring_node_new(&c, &mut node) };
        assert_eq!(r, mooring_result::OutOfMemory);
        assert!(node.is_null());
        assert!(last_error().contains("out of memory"), "{}", last_error());
        // The process is fine: a sane config still builds.
        c.max_links = 16;
        // SAFETY: as above.
        unsafe { mooring_node_free(new_node(&c)) };
    }

    #[test]
    fn bad_arguments_are_named_error_codes() {
        let mut c = default_config();
        // SAFETY: valid pointers and NUL-terminated strings throughout.
        unsafe {
            c.framing = 7;
            let mut node = ptr::null_mut();
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            assert_eq!(last_error(), "framing: unknown value 7");
            c.framing = 0;
            c.buffer_size = 8;
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            assert!(last_error().contains("buffer_size"), "{}", last_error());
            c.buffer_size = 4096;
            c.allow = c"10.0.0.0/8,nonsense".as_ptr();
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            c.allow = c"10.0.0.0/8, 127.0.0.1".as_ptr();
            let node = new_node(&c);

            let mut l = 0u32;
            let bad_utf8 = [0xffu8 as c_char, 0];
            assert_eq!(
                mooring_node_listen(node, bad_utf8.as_ptr(), &mut l),
                mooring_result::InvalidUtf8
            );
            assert_eq!(
                mooring_node_listen(node, c"localhost:80".as_ptr(), &mut l),
                mooring_result::InvalidAddress
            );
            assert_eq!(mooring_node_poll(node, -2), mooring_result::InvalidArgument);
            assert_eq!(
                mooring_node_send(node, mooring_link { slot: 0, gen: 1 }, b"x".as_ptr(), 1),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_send(node, mooring_link { slot: 99, gen: 1 }, b"x".as_ptr(), 1),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_close(node, mooring_link::default()),
                mooring_result::UnknownLink
            );

            assert_eq!(
                mooring_node_listen(node, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            assert_eq!(l, 0);
            let mut small = [0 as c_char; 5];
            assert_eq!(
                mooring_node_local_addr(node, 0, small.as_mut_ptr(), small.len()),
                mooring_result::BufferTooSmall
            );
            assert_eq!(small[0], 0);
            let mut buf = [0 as c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_node_local_addr(node, 1, buf.as_mut_ptr(), buf.len()),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_local_addr(node, 0, buf.as_mut_ptr(), buf.len()),
                mooring_result::Ok
            );
            let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
            assert!(
                text.starts_with("127.0.0.1:") && !text.ends_with(":0"),
                "{text}"
            );

            let mut ev = core::mem::MaybeUninit::<mooring_event>::uninit();
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Ok);
            assert_eq!(
                mooring_node_next_event(node, ev.as_mut_ptr()),
                mooring_result::NoEvent
            );
            assert_eq!(mooring_node_next_deadline_ms(node), -1);
            assert!(mooring_node_fd(node) >= 0);
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_panic_poisons_the_node_and_later_calls_say_so() {
        let node = new_node(&default_config());
        // SAFETY: a live node.
        unsafe {
            let r = with_node(node, |_| panic!("injected"));
            assert_eq!(r, mooring_result::Panic);
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Poisoned);
            assert_eq!(mooring_node_fd(node), -1);
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_session_through_the_c_api_carries_messages_in_order_and_ends_on_both_sides() {
        let mut c = default_config();
        c.protocol = mooring_protocol::Mooring as u32;
        c.session = 1;
        let server = new_node(&c);
        let client = new_node(&c);
        // SAFETY: live nodes, valid pointers, NUL-terminated strings.
        unsafe {
            let mut l = 0u32;
            assert_eq!(
                mooring_node_listen(server, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            let mut addr = [0 as c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_node_local_addr(server, l, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
            let mut s = mooring_session::default();
            assert_eq!(
                mooring_node_open_session(client, addr.as_ptr(), &mut s),
                mooring_result::Ok
            );
            // Queued before the link is even up: sessions hold them.
            for (i, m) in [&b"m1"[..], b"m2", b"m3"].iter().enumerate() {
                let mut seq = 0u64;
                assert_eq!(
                    mooring_node_session_send(client, s, m.as_ptr(), m.len(), &mut seq),
                    mooring_result::Ok
                );
                assert_eq!(seq, i as u64 + 1);
            }
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut echoed = Vec::new();
            let mut ended = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while ended.len() < 2 && std::time::Instant::now() < deadline {
                for (n, name) in [(client, "client"), (server, "server")] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        match (name, ev.kind) {
                            ("server", mooring_event_kind::SessionMessage) => assert_eq!(
                                mooring_node_session_send(
                                    server,
                                    ev.session,
                                    ev.data,
                                    ev.len,
                                    ptr::null_mut()
                                ),
                                mooring_result::Ok
                            ),
                            ("client", mooring_event_kind::SessionMessage) => {
                                echoed.push(core::slice::from_raw_parts(ev.data, ev.len).to_vec());
                                if echoed.len() == 3 {
                                    assert_eq!(
                                        mooring_node_close_session(client, s),
                                        mooring_result::Ok
                                    );
                                }
                            }
                            (_, mooring_event_kind::SessionEnded) => {
                                ended.push((name, ev.session_end));
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(echoed, vec![b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
            assert!(ended.contains(&("client", mooring_session_end::Closed as u32)));
            assert!(ended.contains(&("server", mooring_session_end::Closed as u32)));
            assert_eq!(
                mooring_node_session_send(client, s, b"x".as_ptr(), 1, ptr::null_mut()),
                mooring_result::SessionEnded
            );
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }

    #[test]
    fn a_peers_close_message_is_reported_as_its_claim_beside_peer_closed() {
        let mut c = default_config();
        c.protocol = mooring_protocol::Mooring as u32;
        let server = new_node(&c);
        let client = new_node(&c);
        // SAFETY: live nodes, valid pointers, NUL-terminated strings.
        unsafe {
            let mut l = 0u32;
            assert_eq!(
                mooring_node_listen(server, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            let mut addr = [0 as c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_node_local_addr(server, l, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
            let mut link = mooring_link::default();
            assert_eq!(
                mooring_node_connect(client, addr.as_ptr(), &mut link),
                mooring_result::Ok
            );
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut server_closed = None;
            let mut closing = false;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while server_closed.is_none() && std::time::Instant::now() < deadline {
                for n in [client, server] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        match ev.kind {
                            // The handshake is done: the client closes, saying why.
                            mooring_event_kind::Connected if n == client && !closing => {
                                closing = true;
                                assert_eq!(mooring_node_close(client, link), mooring_result::Ok);
                            }
                            mooring_event_kind::Closed if n == client => {
                                assert_eq!(ev.reason, mooring_close_reason::LocalClose as u32);
                                assert_eq!(ev.peer_reason, mooring_close_reason::None as u32);
                            }
                            mooring_event_kind::Closed => {
                                server_closed = Some((ev.reason, ev.peer_reason));
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(
                server_closed,
                Some((
                    mooring_close_reason::PeerClosed as u32,
                    mooring_close_reason::LocalClose as u32
                ))
            );
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }

    #[test]
    fn a_link_round_trip_through_the_c_api_echoes_and_reports_the_close() {
        let c = default_config();
        let server = new_node(&c);
        let client = new_node(&c);
        // SAFETY: live nodes, valid pointers, NUL-terminated strings.
        unsafe {
            let mut l = 0u32;
            assert_eq!(
                mooring_node_listen(server, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            let mut addr = [0 as c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_node_local_addr(server, l, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
            let mut link = mooring_link::default();
            assert_eq!(
                mooring_node_connect(client, addr.as_ptr(), &mut link),
                mooring_result::Ok
            );
            assert_eq!(link.gen, 1);

            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut events = Vec::new();
            let mut echoed = None;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while echoed.is_none() && std::time::Instant::now() < deadline {
                for (n, name) in [(client, "client"), (server, "server")] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        events.push((name, ev.kind));
                        match (name, ev.kind) {
                            ("client", mooring_event_kind::Connected) => {
                                assert_eq!(ev.listener, MOORING_NO_LISTENER);
                                assert_eq!(
                                    mooring_node_send(client, link, b"hello".as_ptr(), 5),
                                    mooring_result::Ok
                                );
                            }
                            ("server", mooring_event_kind::Connected) => assert_eq!(ev.listener, 0),
                            ("server", mooring_event_kind::Message) => {
                                // Echo straight from the event's buffer.
                                assert_eq!(
                                    mooring_node_send(server, ev.link, ev.data, ev.len),
                                    mooring_result::Ok
                                );
                            }
                            ("client", mooring_event_kind::Message) => {
                                echoed =
                                    Some(core::slice::from_raw_parts(ev.data, ev.len).to_vec());
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(echoed.as_deref(), Some(&b"hello"[..]), "events: {events:?}");
            let mut s = mooring_link_stats::default();
            assert_eq!(
                mooring_node_get_link_stats(client, link, &mut s),
                mooring_result::Ok
            );
            assert_eq!(s.frames_out, 1);
            assert_eq!(mooring_node_close(client, link), mooring_result::Ok);
            assert_eq!(mooring_node_next_event(client, &mut ev), mooring_result::Ok);
            assert_eq!(ev.kind, mooring_event_kind::Closed);
            assert_eq!(ev.reason, mooring_close_reason::LocalClose as u32);
            assert_eq!(ev.link, link);
            assert_eq!(ev.stats.frames_in, 1);
            assert_eq!(
                mooring_node_send(client, link, b"x".as_ptr(), 1),
                mooring_result::NotOpen
            );
            assert_eq!(
                mooring_node_get_link_stats(client, link, &mut s),
                mooring_result::NotOpen
            );
            let mut ns = mooring_node_stats::default();
            assert_eq!(mooring_node_get_stats(server, &mut ns), mooring_result::Ok);
            assert_eq!(ns.accepted, 1);
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }
}
