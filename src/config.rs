//! Configuration with documented defaults, validated before anything binds.
//!
//! Defaults come from a survey of HL7 engines and messaging systems (see the
//! README's "Defaults" table): connect timeout 5 s, response timeout 10 s,
//! max frame 1 MiB, max connections 10, idle timeout off, stale recovery off
//! (120 s when turned on).

use core::fmt;
use core::str::FromStr;
use core::time::Duration;
use std::net::IpAddr;

use crate::error::ConfigError;
use crate::frame::Framing;
use crate::liveness::{LivenessConfig, Protocol};
use crate::session::{Backoff, SessionConfig};

/// Default maximum payload size of one frame: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
/// Default stale-connection timeout when stale recovery is turned on: 120 s.
pub const DEFAULT_STALE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default write timeout: queued bytes that make no progress for 10 s close the
/// link with `WriteTimeout`.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest working buffer: holds any control frame and a short HL7 ACK.
pub const MIN_BUFFER: usize = 64;

/// Node-wide sizes and timers. Every buffer is allocated from these when the node
/// is built; nothing grows afterwards.
///
/// Memory: `max_links x (slot record + 2 x buffer_size)` is reserved up front, but
/// a link holds a buffer only while it has bytes in flight, and pages never
/// touched are not resident; `large_buffers x (max_frame + 4)` covers frames
/// larger than `buffer_size`, and `read_burst` more serves large reads.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Link slots: accepted plus outbound links at once. Default 16.
    pub max_links: usize,
    /// Framing of every link of this node. Default [`Framing::Mllp`].
    pub framing: Framing,
    /// Largest payload accepted or sent; larger closes the link with
    /// `FrameTooLarge`. Default 1 MiB.
    pub max_frame: usize,
    /// Size of the working buffers links borrow for receive and transmit. Frames up
    /// to this size (typical HL7, every control frame) never touch the large pool.
    /// Default 16 KiB.
    pub buffer_size: usize,
    /// Large buffers (each `max_frame` + framing) shared by links receiving or
    /// sending a frame bigger than `buffer_size`. When none is free, such a link
    /// stops reading (TCP backpressure) or `send` returns `TxFull`. Default 2.
    pub large_buffers: usize,
    /// One node-wide buffer for larger reads: a link whose reads keep filling its
    /// working buffer (a stream, a pipelined burst) reads up to this much at once
    /// while no other link has it, so fewer reads per message without a larger
    /// buffer for every link. Serves frames up to an eighth of its size (larger
    /// ones read into a large buffer). Used only when larger than `buffer_size`;
    /// 0 turns it off. Default 64 KiB.
    pub read_burst: usize,
    /// A link whose queued bytes make no progress for this long closes with
    /// `WriteTimeout`. Default 10 s. Until then a server link whose peer does
    /// not read its replies is read no further (see [`crate::Node`], "Reply
    /// backpressure").
    pub write_timeout: Duration,
    /// MLLP release 2: a receiver answers every frame with a commit ACK (`0x06`);
    /// a sender takes the ACK/NAK as the reply. Default off.
    pub mllp_commit_ack: bool,
    /// Reliable sessions this node can hold at once (server: connected and
    /// disconnected ones within their resume window; client: one per
    /// `open_session`). Each reserves its replay ring (`SessionConfig::max_bytes`)
    /// when first used. Default 0: no sessions.
    pub max_sessions: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            max_links: 16,
            framing: Framing::Mllp,
            max_frame: DEFAULT_MAX_FRAME,
            buffer_size: 16 * 1024,
            large_buffers: 2,
            read_burst: 64 * 1024,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            mllp_commit_ack: false,
            max_sessions: 0,
        }
    }
}

impl NodeConfig {
    /// Checks sizes and timers; names the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero(self.max_links, "max_links")?;
        nonzero(self.max_frame, "max_frame")?;
        nonzero_time(self.write_timeout, "write_timeout")?;
        if self.buffer_size < MIN_BUFFER {
            return Err(ConfigError::BufferTooSmall {
                field: "buffer_size",
                min: MIN_BUFFER,
            });
        }
        if u32::try_from(self.max_frame.saturating_add(8)).is_err()
            || u32::try_from(self.buffer_size).is_err()
        {
            return Err(ConfigError::TooLarge { field: "max_frame" });
        }
        if u32::try_from(self.read_burst).is_err() {
            return Err(ConfigError::TooLarge {
                field: "read_burst",
            });
        }
        if u32::try_from(self.max_links).is_err() {
            return Err(ConfigError::TooLarge { field: "max_links" });
        }
        Ok(())
    }
}

/// Client connection policy (seed 000's "Keep Connection Open" on the sender).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientPolicy {
    /// Reuse one link for every request (default). Before each request the client
    /// looks for a close the server already sent, and reconnects.
    #[default]
    KeepOpen,
    /// Connect, send, wait for the reply, close: one link per message.
    ClosePerMessage,
}

/// Server connection policy (seed 000's "Keep Connection Open" on the receiver).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerPolicy {
    /// Keep each link open for any number of messages (default).
    #[default]
    KeepOpen,
    /// Close each link once the reply to its first message is written; anything the
    /// peer sends after that message is not processed.
    CloseAfterReply,
}

/// Per-listener policy.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Links this listener serves at once; a connection beyond is closed at once
    /// (`TooManyConnections`). Default 10.
    pub max_connections: usize,
    /// Close a link that received no byte for this long (`IdleTimeout`). Default off.
    pub idle_timeout: Option<Duration>,
    /// Stale connection recovery (needs `max_connections = 1`): a newcomer replaces the
    /// current link if that link has been idle at least this long (`StaleReplaced`);
    /// otherwise the newcomer is refused. Default off; [`DEFAULT_STALE_TIMEOUT`] is the
    /// usual value. Combine with `allow` so only known peers can replace the link.
    pub stale_recovery: Option<Duration>,
    /// Peers allowed to connect. Empty (the default) allows every peer.
    pub allow: AllowList,
    /// Links one peer address may hold on this listener at once; a connection
    /// beyond is closed at once (`TooManyConnectionsFromPeer`), so one address
    /// cannot take every slot. IPv4-mapped IPv6 peers count as their IPv4
    /// address. Costs a table of `2 x max_connections` (rounded up to a power
    /// of two) cells of 24 bytes, allocated when the listener is bound.
    /// Default `None` (off).
    pub max_connections_per_ip: Option<usize>,
    /// Keep-open or close-after-reply. Default keep-open.
    pub policy: ServerPolicy,
    /// Protocol, heartbeat, keep-alive message, OS keepalive. Default: raw, all off.
    pub liveness: LivenessConfig,
    /// Reliable sessions for mooring clients (needs `Protocol::Mooring` and node
    /// `max_sessions`). Default off.
    pub session: Option<SessionConfig>,
    /// Sessions one IP address may hold in the node's table (connected or
    /// waiting for a resume). At the limit, its new session replaces its own
    /// session disconnected longest, or is refused (`TooManySessionsFromPeer`)
    /// when all are connected. Default off (`None`). Whatever this is, a new
    /// session in a full table replaces the session disconnected longest (see
    /// `SessionEnd::Evicted`).
    pub max_sessions_per_ip: Option<usize>,
    /// TLS on every link of this listener (feature `tls`): certificate chain
    /// and key, client authentication (`none` | `optional` | `required`
    /// against CA certificates), an allow-list of peer identities, the
    /// handshake timeout (default 10 s). Read and checked once, when the
    /// listener is bound ([`crate::SetupError::Tls`] names what is wrong).
    /// Default `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsServerConfig>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            max_connections: 10,
            idle_timeout: None,
            stale_recovery: None,
            allow: AllowList::default(),
            max_connections_per_ip: None,
            policy: ServerPolicy::KeepOpen,
            liveness: LivenessConfig::default(),
            session: None,
            max_sessions_per_ip: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ListenConfig {
    /// Checks the listener's policy against itself and the node's slots.
    pub fn validate(&self, node: &NodeConfig) -> Result<(), ConfigError> {
        nonzero(self.max_connections, "max_connections")?;
        if let Some(n) = self.max_connections_per_ip {
            nonzero(n, "max_connections_per_ip")?;
        }
        self.liveness.validate()?;
        validate_session(self.session.as_ref(), &self.liveness, node)?;
        if let Some(n) = self.max_sessions_per_ip {
            nonzero(n, "max_sessions_per_ip")?;
        }
        if let Some(t) = self.idle_timeout {
            nonzero_time(t, "idle_timeout")?;
        }
        if let Some(t) = self.stale_recovery {
            nonzero_time(t, "stale_recovery")?;
            if self.max_connections != 1 {
                return Err(ConfigError::StaleRecoveryNeedsSingleConnection {
                    max_connections: self.max_connections,
                });
            }
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            nonzero_time(t.handshake_timeout, "tls.handshake_timeout")?;
        }
        if self.max_connections > node.max_links {
            return Err(ConfigError::MoreConnectionsThanSlots {
                max_connections: self.max_connections,
                max_links: node.max_links,
            });
        }
        Ok(())
    }
}

/// Per-outbound-link settings.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    /// Give up connecting after this long (`ConnectTimeout`). Default 5 s.
    pub connect_timeout: Duration,
    /// Close the link when no byte was received for this long. Default off.
    pub idle_timeout: Option<Duration>,
    /// Protocol, heartbeat, keep-alive message, OS keepalive. Default: raw, all off.
    pub liveness: LivenessConfig,
    /// Reliable session settings for [`crate::Node::open_session`]. Default off.
    pub session: Option<SessionConfig>,
    /// Reconnection strategy of a session's client, and of a raw link with
    /// `redial`. Default 1 s doubling to 30 s, full jitter, unlimited attempts.
    pub backoff: Backoff,
    /// A raw link (no `session`) that is lost dials the same address again by
    /// itself, waiting by `backoff` (its `min` must not be zero), and keeps
    /// its [`crate::LinkId`]: see
    /// [`crate::Event::Redialing`]. A local close stops it. Default `false`
    /// (a lost link stays closed). Sessions resume by themselves regardless.
    pub redial: bool,
    /// TLS on this link (feature `tls`): CA certificates to verify the server
    /// against, the server name (default: the host, i.e. the IP address, of
    /// the address connected to), an optional client certificate and key, the
    /// handshake timeout (default 10 s). Read and checked when the node
    /// first connects with these settings; later connects (session redials,
    /// reconnects) with equal settings reuse the checked form.
    /// Default `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsClientConfig>,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: None,
            liveness: LivenessConfig::default(),
            session: None,
            backoff: Backoff::default(),
            redial: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ConnectConfig {
    /// Checks the timers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero_time(self.connect_timeout, "connect_timeout")?;
        if self.redial && self.session.is_none() {
            // Every wait would be zero: a dial that fails at once would be
            // retried at once, forever.
            nonzero_time(self.backoff.min, "backoff.min")?;
        }
        self.liveness.validate()?;
        if let Some(t) = self.idle_timeout {
            nonzero_time(t, "idle_timeout")?;
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            nonzero_time(t.handshake_timeout, "tls.handshake_timeout")?;
        }
        Ok(())
    }
}

/// Sessions ride on the mooring protocol and need node slots.
pub(crate) fn validate_session(
    session: Option<&SessionConfig>,
    liveness: &LivenessConfig,
    node: &NodeConfig,
) -> Result<(), ConfigError> {
    let Some(s) = session else { return Ok(()) };
    if liveness.protocol != Protocol::Mooring {
        return Err(ConfigError::NeedsMooringProtocol { field: "session" });
    }
    if node.max_sessions == 0 {
        return Err(ConfigError::NoSessionSlots);
    }
    nonzero(s.max_depth, "session.max_depth")?;
    nonzero(s.max_bytes, "session.max_bytes")?;
    nonzero_time(s.reconnect_timeout, "session.reconnect_timeout")?;
    Ok(())
}

fn nonzero(v: usize, field: &'static str) -> Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::ZeroSize { field })
    } else {
        Ok(())
    }
}

pub(crate) fn nonzero_time(v: Duration, field: &'static str) -> Result<(), ConfigError> {
    if v.is_zero() {
        Err(ConfigError::ZeroTimeout { field })
    } else {
        Ok(())
    }
}

/// Capacity of an [`AllowList`].
pub const ALLOW_LIST_CAPACITY: usize = 32;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A network; `prefix` is clamped to the address family's width.
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Cidr {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// True when `ip` is inside this network (IPv4-mapped IPv6 peers match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8, width: u32) -> bool {
    let host_bits = width - u32::from(prefix);
    if host_bits >= width {
        return true;
    }
    (net >> host_bits) == (ip >> host_bits)
}

/// Error parsing an IP or CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CidrParseError;

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected an IP address or CIDR (e.g. 10.0.0.0/8)")
    }
}

impl std::error::Error for CidrParseError {}

impl FromStr for Cidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| CidrParseError)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or(CidrParseError)?,
            None => max,
        };
        Ok(Cidr::new(addr, prefix))
    }
}

/// Peers allowed to connect: up to [`ALLOW_LIST_CAPACITY`] networks. Empty allows all.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    nets: heapless::Vec<Cidr, ALLOW_LIST_CAPACITY>,
}

impl AllowList {
    /// Adds a network; fails when the list is full.
    pub fn push(&mut self, net: Cidr) -> Result<(), ConfigError> {
        self.nets.push(net).map_err(|_| ConfigError::AllowListFull)
    }

    /// True when the list is empty (everyone allowed).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// True when `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.nets.is_empty() || self.nets.iter().any(|n| n.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_recovery_with_several_connections_is_rejected() {
        let l = ListenConfig {
            max_connections: 2,
            stale_recovery: Some(DEFAULT_STALE_TIMEOUT),
            ..Default::default()
        };
        assert_eq!(
            l.validate(&NodeConfig::default()),
            Err(ConfigError::StaleRecoveryNeedsSingleConnection { max_connections: 2 })
        );
    }

    #[test]
    fn zero_timeouts_are_named() {
        let c = ConnectConfig {
            connect_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroTimeout {
                field: "connect_timeout"
            })
        );
        let redial = ConnectConfig {
            redial: true,
            backoff: crate::session::Backoff::IMMEDIATE,
            ..Default::default()
        };
        assert_eq!(
            redial.validate(),
            Err(ConfigError::ZeroTimeout {
                field: "backoff.min"
            })
        );
    }

    #[test]
    fn cidr_matches_its_network_only() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn empty_allow_list_allows_everyone() {
        let mut a = AllowList::default();
        assert!(a.allows("198.51.100.7".parse().unwrap()));
        a.push("127.0.0.1".parse().unwrap()).unwrap();
        assert!(!a.allows("198.51.100.7".parse().unwrap()));
    }
}
