//! Every failure has a name: close reasons for links, small error enums for calls.

use core::fmt;

/// Why a link closed. Every close carries one; the CLI prints it as `reason=<Name>`.
///
/// The names are a stable interface: scripts match on them.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side (EOF).
    PeerClosed,
    /// The peer reset the connection, or the socket reported an error.
    Reset,
    /// No byte was received for `idle_timeout`.
    IdleTimeout,
    /// A newer connection replaced this one after it had been idle for `stale_timeout`.
    StaleReplaced,
    /// A frame larger than `max_frame` was announced or received.
    FrameTooLarge,
    /// The byte stream broke the framing rules.
    BadFrame,
    /// The listener was at `max_connections` (or the node had no free slot).
    TooManyConnections,
    /// The peer's address is not on the allow-list.
    NotAllowed,
    /// No reply arrived within the response timeout.
    ResponseTimeout,
    /// The connection was not established within `connect_timeout`.
    ConnectTimeout,
    /// The peer refused the connection.
    ConnectionRefused,
    /// Queued bytes could not be written within `write_timeout`.
    WriteTimeout,
    /// Server policy close-after-reply: the reply was written.
    ClosedAfterReply,
    /// Client policy close-per-message: the reply was received.
    ClosedPerMessage,
    /// The application closed the link.
    LocalClose,
    /// A socket error other than a reset (see the log for the OS error).
    Io,
    /// Heartbeat: no byte received for the heartbeat timeout.
    HeartbeatTimeout,
    /// Mooring protocol: no handshake within `handshake_timeout`.
    HandshakeTimeout,
    /// Keep-alive message: no frame came back within its timeout.
    KeepAliveTimeout,
    /// Mooring protocol: the peer speaks another protocol version.
    VersionMismatch,
    /// The TCP stack gave up on the link: OS keepalive probes went unanswered, or
    /// written data stayed unacknowledged past `TCP_USER_TIMEOUT`.
    TcpTimeout,
    /// The server no longer has the session this link tried to resume.
    SessionExpired,
    /// The session could not be made whole (see `SessionEnd::Lost`).
    SessionLost,
    /// A resume presented the wrong token for its session (logged and counted).
    BadToken,
    /// The application closed the session; the peer's session ends as closed too.
    SessionClosed,
    /// A frame was not complete within its `frame_timeout` (a slow or stalled
    /// peer; the deadline grows with the data received).
    FrameTimeout,
    /// The peer's address already held `max_connections_per_ip` links on the listener.
    TooManyConnectionsFromPeer,
    /// A session's replay queue had no room for a reply to a new message: the
    /// link closes with the message unread, so the peer resumes (acknowledging
    /// what it has) and sends it again; nothing is lost.
    SessionQueueFull,
    /// A new session from an address that already holds `max_sessions_per_ip`
    /// sessions, none of them disconnected.
    TooManySessionsFromPeer,
}

impl CloseReason {
    /// The reason's stable name, as printed by the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "PeerClosed",
            CloseReason::Reset => "Reset",
            CloseReason::IdleTimeout => "IdleTimeout",
            CloseReason::StaleReplaced => "StaleReplaced",
            CloseReason::FrameTooLarge => "FrameTooLarge",
            CloseReason::BadFrame => "BadFrame",
            CloseReason::TooManyConnections => "TooManyConnections",
            CloseReason::NotAllowed => "NotAllowed",
            CloseReason::ResponseTimeout => "ResponseTimeout",
            CloseReason::ConnectTimeout => "ConnectTimeout",
            CloseReason::ConnectionRefused => "ConnectionRefused",
            CloseReason::WriteTimeout => "WriteTimeout",
            CloseReason::ClosedAfterReply => "ClosedAfterReply",
            CloseReason::ClosedPerMessage => "ClosedPerMessage",
            CloseReason::LocalClose => "LocalClose",
            CloseReason::Io => "Io",
            CloseReason::HeartbeatTimeout => "HeartbeatTimeout",
            CloseReason::HandshakeTimeout => "HandshakeTimeout",
            CloseReason::KeepAliveTimeout => "KeepAliveTimeout",
            CloseReason::VersionMismatch => "VersionMismatch",
            CloseReason::TcpTimeout => "TcpTimeout",
            CloseReason::SessionExpired => "SessionExpired",
            CloseReason::SessionLost => "SessionLost",
            CloseReason::BadToken => "BadToken",
            CloseReason::SessionClosed => "SessionClosed",
            CloseReason::FrameTimeout => "FrameTimeout",
            CloseReason::TooManyConnectionsFromPeer => "TooManyConnectionsFromPeer",
            CloseReason::SessionQueueFull => "SessionQueueFull",
            CloseReason::TooManySessionsFromPeer => "TooManySessionsFromPeer",
        }
    }

    /// True when the peer or the network ended the link, rather than a local policy.
    pub const fn is_peer_side(self) -> bool {
        matches!(
            self,
            CloseReason::PeerClosed
                | CloseReason::Reset
                | CloseReason::Io
                | CloseReason::TcpTimeout
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration that cannot work, found before anything binds.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Stale recovery needs `max_connections = 1` (seed: Rhapsody "Stale Connection Recovery").
    StaleRecoveryNeedsSingleConnection {
        /// The configured `max_connections`.
        max_connections: usize,
    },
    /// A timeout that must be positive is zero.
    ZeroTimeout {
        /// The field's name.
        field: &'static str,
    },
    /// A size or count that must be positive is zero.
    ZeroSize {
        /// The field's name.
        field: &'static str,
    },
    /// `max_connections` exceeds the node's `max_links` slots.
    MoreConnectionsThanSlots {
        /// The listener's `max_connections`.
        max_connections: usize,
        /// The node's `max_links`.
        max_links: usize,
    },
    /// The per-link buffer cannot hold even a control frame.
    BufferTooSmall {
        /// The field's name.
        field: &'static str,
        /// The smallest workable value.
        min: usize,
    },
    /// A size is too large to be addressed (frames are limited to `u32::MAX` bytes).
    TooLarge {
        /// The field's name.
        field: &'static str,
    },
    /// The allow-list holds more entries than its fixed capacity.
    AllowListFull,
    /// A setting that only works with `Protocol::Mooring` on both ends.
    NeedsMooringProtocol {
        /// The field's name.
        field: &'static str,
    },
    /// The heartbeat timeout must be longer than its interval, or every link dies.
    HeartbeatTimeoutNotAfterInterval,
    /// Sessions are configured but the node has no session slots (`max_sessions`).
    NoSessionSlots,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::StaleRecoveryNeedsSingleConnection { max_connections } => write!(
                f,
                "stale recovery needs max_connections = 1 (it is {max_connections}); with several connections use idle_timeout"
            ),
            ConfigError::ZeroTimeout { field } => write!(f, "{field} must be greater than zero"),
            ConfigError::ZeroSize { field } => write!(f, "{field} must be greater than zero"),
            ConfigError::MoreConnectionsThanSlots {
                max_connections,
                max_links,
            } => write!(
                f,
                "max_connections ({max_connections}) exceeds the node's max_links ({max_links})"
            ),
            ConfigError::BufferTooSmall { field, min } => {
                write!(f, "{field} must be at least {min} bytes")
            }
            ConfigError::TooLarge { field } => write!(f, "{field} is too large"),
            ConfigError::AllowListFull => write!(f, "too many allow-list entries"),
            ConfigError::NeedsMooringProtocol { field } => {
                write!(f, "{field} needs the mooring protocol on both ends (--protocol mooring)")
            }
            ConfigError::HeartbeatTimeoutNotAfterInterval => {
                f.write_str("heartbeat timeout must be longer than the heartbeat interval")
            }
            ConfigError::NoSessionSlots => {
                f.write_str("sessions need NodeConfig::max_sessions > 0")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why [`crate::Node::send`] refused a frame. Nothing was queued.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The link's transmit buffer is full: wait for [`crate::Event::Writable`].
    TxFull,
    /// The frame is larger than `max_frame`.
    FrameTooLarge,
    /// The link is closed or the id is stale.
    NotOpen,
    /// `forward`: no received message to forward (none yet, or it was consumed
    /// by a later call, or its link closed).
    NoMessage,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::TxFull => "transmit buffer full (backpressure): wait for Writable",
            SendError::FrameTooLarge => "frame larger than max_frame",
            SendError::NotOpen => "link is not open",
            SendError::NoMessage => "no received message to forward",
        })
    }
}

impl std::error::Error for SendError {}

/// Why [`crate::Client::request`] returned no reply.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No complete reply within the response timeout (the link is closed so a late reply
    /// can never be taken for the next request's).
    ResponseTimeout,
    /// The link closed before a complete reply arrived ("the server did not respond with a
    /// complete message").
    IncompleteResponse {
        /// Bytes of the reply that had arrived.
        received: usize,
        /// How the link closed.
        reason: CloseReason,
    },
    /// The server refused the connection.
    ConnectionRefused,
    /// The connection was not established within the connect timeout.
    ConnectTimeout,
    /// The request could not be written within the write timeout.
    WriteTimeout,
    /// The request is larger than `max_frame` (or the transmit buffer).
    FrameTooLarge,
    /// The peer answered with an MLLP release 2 NAK.
    Nak,
    /// The link closed for another reason before the request was answered.
    Closed(CloseReason),
    /// A socket call failed.
    Io(std::io::ErrorKind),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RequestError::ResponseTimeout => f.write_str("no reply within the response timeout"),
            RequestError::IncompleteResponse { received, reason } => write!(
                f,
                "the server did not respond with a complete message ({received} bytes, {reason})"
            ),
            RequestError::ConnectionRefused => f.write_str("connection refused"),
            RequestError::ConnectTimeout => f.write_str("connect timeout"),
            RequestError::WriteTimeout => f.write_str("write timeout"),
            RequestError::FrameTooLarge => f.write_str("request larger than max_frame"),
            RequestError::Nak => f.write_str("peer sent an MLLP NAK"),
            RequestError::Closed(r) => write!(f, "link closed: {r}"),
            RequestError::Io(k) => write!(f, "i/o error: {k}"),
        }
    }
}

impl RequestError {
    /// The stable name printed by the CLI (`error=<Name>`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            RequestError::ResponseTimeout => "ResponseTimeout",
            RequestError::IncompleteResponse { .. } => "IncompleteResponse",
            RequestError::ConnectionRefused => "ConnectionRefused",
            RequestError::ConnectTimeout => "ConnectTimeout",
            RequestError::WriteTimeout => "WriteTimeout",
            RequestError::FrameTooLarge => "FrameTooLarge",
            RequestError::Nak => "Nak",
            RequestError::Closed(_) => "Closed",
            RequestError::Io(_) => "Io",
        }
    }
}

impl std::error::Error for RequestError {}
