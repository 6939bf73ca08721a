//! Every failure has a name: close reasons for links, small error enums for calls.

use core::fmt;

/// Defines [`CloseReason`] from one table: each variant with its doc, its name
/// (the identifier) and its code. Everything that names or numbers a reason (the
/// CLI's `reason=`, the wire's CLOSE message, the C API's `mooring_close_reason`
/// and its names) reads this table, so a reason is typed once.
macro_rules! close_reasons {
    (
        $(#[$meta:meta])*
        pub enum CloseReason {
            $( $(#[doc = $doc:literal])* $name:ident = $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        pub enum CloseReason {
            $( $(#[doc = $doc])* $name = $code, )+
        }

        impl CloseReason {
            /// Every reason, in code order (codes 1, 2, ...).
            pub const ALL: &'static [CloseReason] = &[$(CloseReason::$name),+];

            /// The reason's stable name, as printed by the CLI.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(CloseReason::$name => stringify!($name),)+
                }
            }

            /// [`CloseReason::as_str`] NUL-terminated, for the C API.
            pub(crate) const fn c_name(self) -> &'static core::ffi::CStr {
                match self {
                    $(CloseReason::$name => {
                        const NAME: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
                            concat!(stringify!($name), "\0").as_bytes(),
                        ) {
                            Ok(name) => name,
                            // Evaluated at compile time: an identifier holds no NUL.
                            Err(_) => panic!("a close reason name holds a NUL"),
                        };
                        NAME
                    })+
                }
            }

            /// The reason's stable code: the wire's CLOSE message carries it, and it is
            /// the C API's `mooring_close_reason` value. Never 0 (C's "no reason").
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The reason with this code, or `None` for 0 and for codes this version
            /// does not know (a newer peer's).
            pub const fn from_code(code: u8) -> Option<CloseReason> {
                match code {
                    $($code => Some(CloseReason::$name),)+
                    _ => None,
                }
            }
        }
    };
}

close_reasons! {
    /// Why a link closed. Every close carries one; the CLI prints it as `reason=<Name>`.
    ///
    /// The names and codes are a stable interface: scripts match on the names, the
    /// wire and the C API carry the codes. Append new reasons at the end with the
    /// next code; never rename or renumber one.
    #[non_exhaustive]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[repr(u8)]
    pub enum CloseReason {
        /// The peer closed its side (EOF).
        PeerClosed = 1,
        /// The peer reset the connection, or the socket reported an error.
        Reset = 2,
        /// No byte was received for `idle_timeout`.
        IdleTimeout = 3,
        /// A newer connection replaced this one after it had been idle for `stale_timeout`.
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
        /// The connection was not established within `connect_timeout`.
        ConnectTimeout = 10,
        /// The peer refused the connection.
        ConnectionRefused = 11,
        /// Queued bytes could not be written within `write_timeout`.
        WriteTimeout = 12,
        /// Server policy close-after-reply: the reply was written.
        ClosedAfterReply = 13,
        /// Client policy close-per-message: the reply was received.
        ClosedPerMessage = 14,
        /// The application closed the link.
        LocalClose = 15,
        /// A socket error other than a reset (see the log for the OS error).
        Io = 16,
        /// Heartbeat: no byte received for the heartbeat timeout.
        HeartbeatTimeout = 17,
        /// Mooring protocol: no handshake within `handshake_timeout`.
        HandshakeTimeout = 18,
        /// Keep-alive message: no frame came back within its timeout.
        KeepAliveTimeout = 19,
        /// Mooring protocol: the peer speaks another protocol version.
        VersionMismatch = 20,
        /// The TCP stack gave up on the link: OS keepalive probes went unanswered, or
        /// written data stayed unacknowledged past `TCP_USER_TIMEOUT`.
        TcpTimeout = 21,
        /// The server no longer has the session this link tried to resume.
        SessionExpired = 22,
        /// The session could not be made whole (see `SessionEnd::Lost`).
        SessionLost = 23,
        /// A resume presented the wrong token for its session (logged and counted).
        BadToken = 24,
        /// The application closed the session; the peer's session ends as closed too.
        SessionClosed = 25,
        /// A frame was not complete within its `frame_timeout` (a slow or stalled
        /// peer; the deadline grows with the data received).
        FrameTimeout = 26,
        /// The peer's address already held `max_connections_per_ip` links on the listener.
        TooManyConnectionsFromPeer = 27,
        /// A session's replay queue had no room for a reply to a new message: the
        /// link closes with the message unread, so the peer resumes (acknowledging
        /// what it has) and sends it again; nothing is lost.
        SessionQueueFull = 28,
        /// A new session from an address that already holds `max_sessions_per_ip`
        /// sessions, none of them disconnected.
        TooManySessionsFromPeer = 29,
        /// Client: the server speaks the mooring protocol but keeps no sessions
        /// (its WELCOME names session 0; e.g. `mooring listen` without
        /// `--session`): a session cannot be opened there.
        NoSessions = 30,
        /// TLS: a certificate was malformed, badly signed or unusable (ours, as the
        /// peer's alert says, or the peer's).
        TlsBadCertificate = 31,
        /// TLS: a certificate does not chain to a configured CA.
        TlsUnknownCa = 32,
        /// TLS: a certificate is expired or not valid yet.
        TlsExpired = 33,
        /// TLS: the server's certificate is not valid for the name the client verifies.
        TlsNameMismatch = 34,
        /// TLS: no protocol version (or cipher suite) both ends accept.
        TlsProtocolVersion = 35,
        /// TLS: client authentication is required and the client sent no certificate.
        TlsNoCertificate = 36,
        /// TLS: the handshake succeeded but the peer's identity is not on the
        /// listener's allow-list of peer identities.
        TlsPeerNotAllowed = 37,
        /// TLS: the handshake did not finish within its timeout.
        TlsHandshakeTimeout = 38,
        /// TLS: the peer ended the stream without `close_notify` during the
        /// handshake, inside a record or inside a frame (a possible truncation attack).
        TlsTruncated = 39,
        /// TLS: any other TLS protocol error (bad record, decryption failure,
        /// unexpected message, an alert not named above).
        TlsProtocol = 40,
    }
}

impl CloseReason {
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
    /// The payload holds a byte the node's framing cannot carry (MLLP: `0x0B`
    /// or `0x1C`); sent, it would break the peer's stream.
    Unframeable,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::TxFull => "transmit buffer full (backpressure): wait for Writable",
            SendError::FrameTooLarge => "frame larger than max_frame",
            SendError::NotOpen => "link is not open",
            SendError::NoMessage => "no received message to forward",
            SendError::Unframeable => "payload holds a byte the framing cannot carry",
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
    /// The request holds a byte the framing cannot carry (MLLP: `0x0B` or
    /// `0x1C`); nothing was sent.
    Unframeable,
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
            RequestError::Unframeable => {
                f.write_str("request holds a byte the framing cannot carry")
            }
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
            RequestError::Unframeable => "Unframeable",
        }
    }
}

impl std::error::Error for RequestError {}

// `SessionError` lives with the session; its text lives here with the other
// errors' (so that `?` works on it in applications).
impl fmt::Display for crate::session::SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::session::SessionError;
        f.write_str(match self {
            SessionError::QueueFull => "session queue full (backpressure: retry later)",
            SessionError::TooLarge => "message larger than the session's replay ring",
            SessionError::Ended => "the session has ended",
            SessionError::Unframeable => "payload holds a byte the framing cannot carry",
        })
    }
}

impl std::error::Error for crate::session::SessionError {}
