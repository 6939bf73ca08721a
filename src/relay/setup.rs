//! Starting a relay: its [`Node`] sized for the device listener and the
//! upstream, the listener bound, the [`Relay`] on it (spool opened and
//! recovered). One place for the CLI (`mooring relay`) and the C API
//! (`mooring_relay_new`), so both build the same relay from the same settings.

use std::net::SocketAddr;
use std::time::Duration;

use super::{AckAfter, Relay, RelayConfig, RelayError};
use crate::{
    ConfigError, Framing, ListenConfig, ListenerId, LivenessConfig, Node, NodeConfig, SetupError,
};

/// Spare link slots beyond the device limit (at most this many): closed links
/// wait in their slots until their events are pulled.
const MAX_SPARE_SLOTS: usize = 64;

/// The default of [`RelayConfig::ack_after`] for a relay that keeps its queue
/// in a spool (`spool_chosen`: a directory, or an in-memory queue the operator
/// asked for by name) or not: `Queued` only where an AA cannot be lost by a
/// crash of the relay, or where the operator chose the in-memory queue; else
/// `Upstream`.
pub fn default_ack_after(spool_chosen: bool) -> AckAfter {
    if spool_chosen {
        AckAfter::Queued
    } else {
        AckAfter::Upstream
    }
}

/// The device side of a relay: where and how devices connect.
#[derive(Clone, Debug)]
pub struct DeviceSide {
    /// The listener's address (port 0: any). No default.
    pub listen: SocketAddr,
    /// The framing of device links (the upstream link uses it too).
    /// Default MLLP.
    pub framing: Framing,
    /// The largest message taken from a device or the upstream. Default as
    /// [`NodeConfig::max_frame`].
    pub max_frame: usize,
    /// Devices connected at once. Default 10.
    pub max_connections: usize,
    /// Devices one address may connect at once (`None`: no limit, default).
    pub max_connections_per_ip: Option<usize>,
    /// A link whose queued bytes make no progress this long closes. Default
    /// as [`NodeConfig::write_timeout`].
    pub write_timeout: Duration,
    /// TLS on every device link (feature `tls`; `None`: plain TCP, default).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsServerConfig>,
}

impl DeviceSide {
    /// The defaults, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        let n = NodeConfig::default();
        DeviceSide {
            listen,
            framing: n.framing,
            max_frame: n.max_frame,
            max_connections: ListenConfig::default().max_connections,
            max_connections_per_ip: None,
            write_timeout: n.write_timeout,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The node for `relay`: the devices, spare slots, and the upstream.
    pub fn node_config(&self, relay: &RelayConfig) -> NodeConfig {
        let spare = self.max_connections.clamp(1, MAX_SPARE_SLOTS);
        NodeConfig {
            max_links: self.max_connections.saturating_add(spare).saturating_add(2),
            framing: self.framing,
            max_frame: self.max_frame,
            max_sessions: relay.node_sessions(),
            write_timeout: self.write_timeout,
            ..NodeConfig::default()
        }
    }

    /// The device listener: raw links, with the relay's OS-level liveness
    /// settings (TCP keepalive, `TCP_USER_TIMEOUT`) and frame timeout.
    pub fn listen_config(&self, relay: &RelayConfig) -> ListenConfig {
        let l = &relay.liveness;
        ListenConfig {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            liveness: LivenessConfig {
                tcp_keepalive: l.tcp_keepalive,
                tcp_user_timeout: l.tcp_user_timeout,
                frame_timeout: l.frame_timeout,
                ..LivenessConfig::default()
            },
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            ..ListenConfig::default()
        }
    }

    /// Checks every configuration [`DeviceSide::start`] builds, before anything
    /// is allocated or bound.
    pub fn validate(&self, relay: &RelayConfig) -> Result<(), ConfigError> {
        let node = self.node_config(relay);
        node.validate()?;
        self.listen_config(relay).validate(&node)?;
        relay.connect_config().validate()
    }

    /// Builds the node, binds the device listener and opens the relay.
    pub fn start(&self, relay: RelayConfig) -> Result<Started, StartError> {
        self.validate(&relay).map_err(StartError::Config)?;
        let mut node = Node::new(self.node_config(&relay)).map_err(StartError::Node)?;
        let listener = node
            .listen(self.listen, self.listen_config(&relay))
            .map_err(|e| match e {
                SetupError::Config(e) => StartError::Config(e),
                e => StartError::Listen(e),
            })?;
        let relay = Relay::new(relay, &node).map_err(|e| match e {
            RelayError::Config(e) => StartError::Config(e),
            e => StartError::Relay(e),
        })?;
        Ok(Started {
            node,
            listener,
            relay,
        })
    }
}

/// A started relay: its node, the device listener and the engine.
pub struct Started {
    /// The node (devices and upstream).
    pub node: Node,
    /// The device listener.
    pub listener: ListenerId,
    /// The engine.
    pub relay: Relay,
}

/// Why [`DeviceSide::start`] failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum StartError {
    /// The settings cannot work together.
    Config(ConfigError),
    /// The node could not be built (memory, the OS's poll).
    Node(SetupError),
    /// The device listener could not be bound.
    Listen(SetupError),
    /// The relay could not open its spool.
    Relay(RelayError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Node(e) => e.fmt(f),
            StartError::Listen(e) => write!(f, "listen: {e}"),
            StartError::Relay(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}
