//! The header's plain data: constants, `#[repr(C)]` structs and `#[repr(u32)]`
//! enums. The C caller owns every value of these types; the calls copy them in
//! or out.

use core::ffi::c_char;

/// Size of every address text buffer in this API (`"[v6%scope]:port"` fits with its NUL).
pub const MOORING_ADDR_MAX: usize = 64;

/// Entries of `mooring_node_stats.closes`: room for close reason codes 0 to 63.
pub const MOORING_CLOSE_CODES_MAX: usize = 64;

// Every reason of the table has its entry.
const _: () = assert!(crate::node::CLOSE_CODES <= MOORING_CLOSE_CODES_MAX);

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
    /// An argument is out of range (a length, a timeout, an enum value), or a
    /// payload holds a byte the framing cannot carry (MLLP: `0x0B`, `0x1C`).
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

/// Which clients a TLS listener accepts (`mooring_config.tls_client_auth`).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mooring_tls_client_auth {
    /// No client certificate is asked for (default).
    None = 0,
    /// A client certificate is asked for; a client without one is served, one
    /// whose certificate `tls_client_ca` does not vouch for is refused.
    Optional = 1,
    /// Every client must present a certificate `tls_client_ca` vouches for.
    Required = 2,
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
    /// TLS: the link's handshake completed (CONNECTED came first): `peer`,
    /// `tls_version` (`TLSv1_2`, `TLSv1_3`), `tls_suite` (IANA name) and
    /// `tls_peer_identity` (NULL when the peer presented no certificate).
    TlsEstablished = 11,
    /// TLS: the link failed for a TLS reason: `peer`, `reason` (the
    /// `MOORING_CLOSE_REASON_TLS_*` it closes with) and `tls_detail`
    /// (rustls's text). The link's CLOSED event, with the same reason, follows.
    TlsFailed = 12,
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
    /// The server keeps no sessions (its WELCOME names session 0): start it
    /// with sessions on.
    NoSessions = 30,
    /// TLS: a certificate was malformed, badly signed or unusable.
    TlsBadCertificate = 31,
    /// TLS: a certificate does not chain to a configured CA.
    TlsUnknownCa = 32,
    /// TLS: a certificate is expired or not valid yet.
    TlsExpired = 33,
    /// TLS: the server's certificate is not valid for the verified name.
    TlsNameMismatch = 34,
    /// TLS: no protocol version (or cipher suite) both ends accept.
    TlsProtocolVersion = 35,
    /// TLS: client authentication is required and the client sent none.
    TlsNoCertificate = 36,
    /// TLS: the peer's identity is not on the allow-list of peer identities.
    TlsPeerNotAllowed = 37,
    /// TLS: the handshake did not finish within its timeout.
    TlsHandshakeTimeout = 38,
    /// TLS: the stream ended without close_notify mid-handshake, mid-record
    /// or mid-frame (possible truncation attack).
    TlsTruncated = 39,
    /// TLS: any other TLS protocol error.
    TlsProtocol = 40,
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
    /// Listen, TLS (TLS 1.2/1.3; a build without the `tls` feature refuses
    /// every TLS field with `MOORING_RESULT_INVALID_CONFIG`): the certificate
    /// chain, leaf first, as the path of a PEM file or as PEM text itself
    /// (a string starting with `-----BEGIN`). NULL or `""`: listeners serve
    /// plain TCP (default). Needs `tls_key`. Every TLS file is read and
    /// checked during `mooring_node_new`; a problem is
    /// `MOORING_RESULT_INVALID_CONFIG` with the field, the file and why in
    /// `mooring_last_error`.
    pub tls_cert: *const c_char,
    /// Listen, TLS: the private key of `tls_cert` (path or PEM text; PKCS#8,
    /// PKCS#1 or SEC1). Default NULL.
    pub tls_key: *const c_char,
    /// Listen, TLS: a `mooring_tls_client_auth` value. Default
    /// `MOORING_TLS_CLIENT_AUTH_NONE`.
    pub tls_client_auth: u32,
    /// Listen, TLS: CA certificates client certificates must chain to (path
    /// or PEM text); needed with client authentication. Default NULL.
    pub tls_client_ca: *const c_char,
    /// Listen, TLS: comma-separated peer identities allowed after the
    /// handshake (a DNS, IP or URI SAN, or the subject CN of the client's
    /// certificate); others close with `TLS_PEER_NOT_ALLOWED`. Needs client
    /// authentication. NULL or `""`: any client the CAs vouch for (default).
    pub tls_allow_peers: *const c_char,
    /// Connect, TLS: CA certificates the server's certificate must chain to
    /// (path or PEM text; no built-in roots). Not NULL: every connect and
    /// session of the node uses TLS. NULL or `""`: plain TCP (default).
    pub tls_ca: *const c_char,
    /// Connect, TLS: the name the server's certificate must carry. NULL or
    /// `""`: the IP address connected to (default).
    pub tls_server_name: *const c_char,
    /// Connect, TLS: a client certificate chain (path or PEM text), for
    /// servers that authenticate clients; needs `tls_client_key`. Default NULL.
    pub tls_client_cert: *const c_char,
    /// Connect, TLS: the private key of `tls_client_cert`. Default NULL.
    pub tls_client_key: *const c_char,
    /// TLS, both sides: the handshake must complete within this, else the
    /// link closes with `TLS_HANDSHAKE_TIMEOUT`. Default 10000.
    pub tls_handshake_timeout_ms: u32,
    /// Session clients: reconnect attempts before the session gives up and
    /// ends (SESSION_ENDED, `session_end` LOST; the Rust `Backoff::max_attempts`).
    /// 0: never give up (default).
    pub reconnect_max_attempts: u32,
    /// Sessions, request/reply (the Rust `SessionConfig::reserve_reply`): 1
    /// takes a message only while the replay queue has room for a reply as
    /// large as it; otherwise the message is held unread and the link closed
    /// `SESSION_QUEUE_FULL`, so the peer resumes. For the side that answers
    /// each message. Default 0 (off).
    pub session_reserve_reply: u32,
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
#[derive(Clone, Copy, Debug)]
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
    /// Links closed, by reason: `closes[code]` for each `mooring_close_reason`
    /// code (entry 0, no reason, stays 0; room for every code below
    /// `MOORING_CLOSE_CODES_MAX`).
    pub closes: [u64; MOORING_CLOSE_CODES_MAX],
    /// Frames received on every link, open or closed.
    pub frames_in: u64,
    /// Frames queued for sending on every link, open or closed.
    pub frames_out: u64,
    /// Bytes received on every link, open or closed.
    pub bytes_in: u64,
    /// Bytes written on every link, open or closed.
    pub bytes_out: u64,
    /// Links open or connecting now.
    pub links_open: u64,
    /// Reliable sessions live now.
    pub sessions_live: u64,
    /// Sessions established for the first time.
    pub sessions_started: u64,
    /// Sessions resumed on a new link.
    pub sessions_resumed: u64,
    /// Sessions ended, by how: `sessions_ended[end]` for each
    /// `mooring_session_end` value (entry 0, NONE, stays 0).
    pub sessions_ended: [u64; 6],
    /// Session resumes refused for a wrong token (their links closed
    /// `MOORING_CLOSE_REASON_BAD_TOKEN`).
    pub bad_tokens: u64,
    /// Session links closed `MOORING_CLOSE_REASON_SESSION_QUEUE_FULL` (a
    /// message refused for want of room for its reply).
    pub session_queue_full: u64,
    /// Disconnected sessions evicted to make room for a new one.
    pub sessions_evicted: u64,
    /// Session events not reported because the event queue was full.
    pub unreported_session_events: u64,
}

impl Default for mooring_node_stats {
    // By hand: derived `Default` stops at arrays of 32.
    fn default() -> Self {
        mooring_node_stats {
            accepted: 0,
            rejected_too_many: 0,
            rejected_not_allowed: 0,
            stale_replaced: 0,
            unreported_rejections: 0,
            large_buffer_waits: 0,
            burst_reads: 0,
            links_in_use: 0,
            accept_errors: 0,
            accept_retries: 0,
            rejected_from_peer: 0,
            closes: [0; MOORING_CLOSE_CODES_MAX],
            frames_in: 0,
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            links_open: 0,
            sessions_live: 0,
            sessions_started: 0,
            sessions_resumed: 0,
            sessions_ended: [0; 6],
            bad_tokens: 0,
            session_queue_full: 0,
            sessions_evicted: 0,
            unreported_session_events: 0,
        }
    }
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
    /// TLS_ESTABLISHED: the protocol version, `TLSv1_2` or `TLSv1_3`
    /// (`tls_version_len` bytes, not NUL-terminated; valid as `data` is).
    pub tls_version: *const c_char,
    /// TLS_ESTABLISHED: bytes at `tls_version`.
    pub tls_version_len: usize,
    /// TLS_ESTABLISHED: the cipher suite's IANA name, e.g.
    /// `TLS13_AES_256_GCM_SHA384` (`tls_suite_len` bytes, valid as `data` is).
    pub tls_suite: *const c_char,
    /// TLS_ESTABLISHED: bytes at `tls_suite`.
    pub tls_suite_len: usize,
    /// TLS_ESTABLISHED: the identity the peer's certificate proved (its first
    /// DNS name, else URI, else IP address, else subject CN; at most 1024
    /// bytes), or NULL when it presented none (`tls_peer_identity_len` bytes,
    /// valid as `data` is).
    pub tls_peer_identity: *const c_char,
    /// TLS_ESTABLISHED: bytes at `tls_peer_identity` (0 when NULL).
    pub tls_peer_identity_len: usize,
    /// TLS_FAILED: rustls's text (an alert received or sent, a certificate
    /// problem), `tls_detail_len` bytes, valid as `data` is.
    pub tls_detail: *const c_char,
    /// TLS_FAILED: bytes at `tls_detail`.
    pub tls_detail_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CloseReason;

    /// The reasons both enums spell out, once. The two matches made from it are
    /// exhaustive: a variant added to `CloseReason` or to `mooring_close_reason`
    /// but not to the other (and here) fails to compile.
    macro_rules! same_reasons {
        ($($name:ident),+ $(,)?) => {
            fn to_c(r: CloseReason) -> mooring_close_reason {
                match r {
                    $(CloseReason::$name => mooring_close_reason::$name,)+
                }
            }

            fn to_rust(c: mooring_close_reason) -> Option<CloseReason> {
                match c {
                    mooring_close_reason::None => None,
                    $(mooring_close_reason::$name => Some(CloseReason::$name),)+
                }
            }

            const C_ALL: &[mooring_close_reason] =
                &[mooring_close_reason::None, $(mooring_close_reason::$name),+];
        };
    }

    same_reasons!(
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
        NoSessions,
        TlsBadCertificate,
        TlsUnknownCa,
        TlsExpired,
        TlsNameMismatch,
        TlsProtocolVersion,
        TlsNoCertificate,
        TlsPeerNotAllowed,
        TlsHandshakeTimeout,
        TlsTruncated,
        TlsProtocol,
    );

    #[test]
    fn the_c_close_reasons_are_the_rust_ones_by_name_and_code() {
        assert_eq!(C_ALL.len(), CloseReason::ALL.len() + 1);
        for &r in CloseReason::ALL {
            let c = to_c(r);
            assert_eq!(c as u32, u32::from(r.code()), "{r}");
            assert_eq!(format!("{c:?}"), r.as_str());
            assert_eq!(to_rust(c), Some(r));
        }
        for &c in C_ALL {
            let by_code = u8::try_from(c as u32).ok().and_then(CloseReason::from_code);
            assert_eq!(to_rust(c), by_code, "{c:?} = {}", c as u32);
        }
        assert_eq!(mooring_close_reason::None as u32, 0);
    }
}
