//! Liveness, pure: handshake, heartbeat and keep-alive message timers of one link.
//!
//! Links through routers, NAT, load balancers and firewalls die silently, and a
//! TCP stack can take hours to notice. These mechanisms notice within a bound the
//! user sets ([`LivenessConfig::detection_bound`]):
//!
//! - **Heartbeat** (mooring peers, `Protocol::Mooring`): the connecting side sends
//!   PING after `interval` without sending (any outbound frame counts as
//!   activity); the peer answers PONG. The accepting side pings after 1.5 x
//!   `interval` without sending: with equal intervals both timers would otherwise
//!   fire in the same tick and every idle link would carry two PINGs and two
//!   PONGs per interval. Its PONGs keep it from pinging a heartbeating client; a
//!   client without heartbeats, or one streaming one-way, still hears a PING at
//!   least every 1.5 x `interval` (seed 004's broker keep-alive). No inbound byte
//!   for `timeout` means `HeartbeatTimeout`, on either side.
//! - **Keep-alive message** (raw third-party peers): a configured application
//!   payload sent when nothing has arrived for `every` (at most once per
//!   `every`); with `timeout`, some inbound frame must follow within it, else
//!   `KeepAliveTimeout`. It keys on inbound silence, not on our own sends, so an
//!   application that keeps writing into a dead link cannot postpone the probe.
//! - **Handshake** (mooring peers): a server closes a peer that completes no
//!   HELLO within `handshake_timeout` (`HandshakeTimeout`), which protects its
//!   slots from silent or slow peers; a version mismatch closes both ends with
//!   `VersionMismatch`.
//! - OS keepalive and `TCP_USER_TIMEOUT` are socket options the driver sets
//!   ([`TcpKeepalive`], `tcp_user_timeout`); they count in the bound too.
//!
//! The deadlines these mechanisms keep live in the link's one timer table
//! (`Timer::Handshake`, `HeartbeatSend`, `HeartbeatDead`, `KeepAliveSend`,
//! `KeepAliveReply`); the table of which traffic refreshes which is in
//! `crate::link`. This file holds the settings and the link's liveness steps.

use core::time::Duration;

use super::timers::Timer;
use super::{FrameAction, Link, OUT_HELLO, OUT_KEEPALIVE, OUT_PING, OUT_PONG, OUT_WELCOME};
use crate::error::{CloseReason, ConfigError};
use crate::frame_deadline::FrameTimeout;
use crate::time::Instant;
use crate::wire::{self, Greeting, Msg, WireReason, PROTOCOL_VERSION};

pub use super::keepalive::{KeepAliveMessage, KeepAlivePayload};

/// Whether links speak the mooring session protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Application payloads as they are: works with any HL7 engine (default).
    #[default]
    Raw,
    /// The mooring protocol (HELLO/WELCOME, PING/PONG, CLOSE, DATA): both ends mooring.
    Mooring,
}

/// Protocol heartbeat settings (mooring peers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Send PING after this long without sending anything. Default 30 s.
    pub interval: Duration,
    /// Dead after this long without receiving anything. Default 90 s (3 intervals).
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(90),
        }
    }
}

/// OS keepalive (`SO_KEEPALIVE`) settings. Defaults: 45 s idle, 10 s interval, 3 probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the OS drops the link.
    pub count: u32,
}

impl Default for TcpKeepalive {
    fn default() -> Self {
        TcpKeepalive {
            idle: Duration::from_secs(45),
            interval: Duration::from_secs(10),
            count: 3,
        }
    }
}

/// Default `TCP_USER_TIMEOUT` when turned on: 90 s.
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(90);

/// How late after `TCP_USER_TIMEOUT` the kernel may report it: it checks at its
/// next retransmission, which on Linux can trail by up to about a second.
pub const TCP_RETRANSMIT_SLACK: Duration = Duration::from_secs(1);

/// Largest keep-alive message payload.
pub const MAX_KEEPALIVE: usize = 1024;

/// The granularity the detection bound allows for timer and wake-up latency.
pub const TIMER_TICK: Duration = Duration::from_millis(50);

/// Liveness settings of a listener's or an outbound link's links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// Raw (default) or the mooring protocol.
    pub protocol: Protocol,
    /// Protocol heartbeat (needs `Protocol::Mooring`). Default off.
    pub heartbeat: Option<Heartbeat>,
    /// Keep-alive message (any protocol). Default off.
    pub keepalive: Option<KeepAliveMessage>,
    /// OS keepalive. Default off.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `TCP_USER_TIMEOUT`: how long written data may stay unacknowledged (Linux).
    /// Default off ([`DEFAULT_TCP_USER_TIMEOUT`] when on).
    pub tcp_user_timeout: Option<Duration>,
    /// Mooring protocol: the handshake must complete within this. Default 10 s.
    pub handshake_timeout: Duration,
    /// Slow peers: a frame whose first byte arrived must be complete within
    /// this, extended by the data received (`FrameTimeout`; the rule is in
    /// `crate::frame_deadline`). Default on: 30 s + 1 s per 500 bytes, at
    /// most 10 min. `None` turns it off.
    pub frame_timeout: Option<FrameTimeout>,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            protocol: Protocol::Raw,
            heartbeat: None,
            keepalive: None,
            tcp_keepalive: None,
            tcp_user_timeout: None,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Some(FrameTimeout::default()),
        }
    }
}

impl LivenessConfig {
    /// Checks the combination; names the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::config::nonzero_time;
        nonzero_time(self.handshake_timeout, "handshake_timeout")?;
        if let Some(h) = self.heartbeat {
            if self.protocol != Protocol::Mooring {
                return Err(ConfigError::NeedsMooringProtocol { field: "heartbeat" });
            }
            nonzero_time(h.interval, "heartbeat.interval")?;
            nonzero_time(h.timeout, "heartbeat.timeout")?;
            if h.timeout <= h.interval {
                return Err(ConfigError::HeartbeatTimeoutNotAfterInterval);
            }
        }
        if let Some(k) = &self.keepalive {
            nonzero_time(k.every, "keepalive.every")?;
            if let Some(t) = k.timeout {
                nonzero_time(t, "keepalive.timeout")?;
            }
            if k.payload.is_empty() {
                return Err(ConfigError::ZeroSize {
                    field: "keepalive.payload",
                });
            }
            if k.payload.len() > MAX_KEEPALIVE {
                return Err(ConfigError::TooLarge {
                    field: "keepalive.payload",
                });
            }
        }
        if let Some(k) = self.tcp_keepalive {
            nonzero_time(k.idle, "tcp_keepalive.idle")?;
            nonzero_time(k.interval, "tcp_keepalive.interval")?;
            if k.count == 0 {
                return Err(ConfigError::ZeroSize {
                    field: "tcp_keepalive.count",
                });
            }
        }
        if let Some(t) = self.tcp_user_timeout {
            nonzero_time(t, "tcp_user_timeout")?;
        }
        if let Some(f) = self.frame_timeout {
            nonzero_time(f.timeout, "frame_timeout")?;
        }
        Ok(())
    }

    /// Worst-case time to notice a dead peer (a silently dropped link, as a dead NAT
    /// entry makes it) with the mechanisms that are on, or `None` when nothing
    /// bounds it (the OS default is hours).
    ///
    /// Per mechanism, measured from the moment the peer went silent:
    /// - heartbeat: `timeout` (no inbound byte for that long) + one tick;
    /// - keep-alive message with a reply timeout: `every + timeout` + one tick (the
    ///   message goes out after `every` of inbound silence; its reply must follow);
    /// - OS keepalive: `idle + interval x count` (probes start after `idle` of silence);
    /// - `TCP_USER_TIMEOUT`: bounds links with unacknowledged written data only, so
    ///   it does not bound an idle link on its own; with a keep-alive message (even
    ///   without a reply timeout) the message is such data: `every + user timeout`
    ///   + [`TCP_RETRANSMIT_SLACK`] + one tick.
    ///
    /// The result is the smallest bound among the mechanisms that cover an idle link.
    /// Compare it with the idle limits of the middleboxes on the path (cloud load
    /// balancers drop idle flows silently after 240 to 360 s).
    pub fn detection_bound(&self) -> Option<Duration> {
        let hb = self.heartbeat.map(|h| h.timeout + TIMER_TICK);
        let ka = self
            .keepalive
            .as_ref()
            .and_then(|k| k.timeout.map(|t| k.every + t + TIMER_TICK));
        let os = self
            .tcp_keepalive
            .map(|k| k.idle + k.interval * k.count + TIMER_TICK);
        let ka_unacked = match (&self.keepalive, self.tcp_user_timeout) {
            (Some(k), Some(u)) => Some(k.every + u + TCP_RETRANSMIT_SLACK + TIMER_TICK),
            _ => None,
        };
        [hb, ka, os, ka_unacked].into_iter().flatten().min()
    }
}

/// The link's liveness steps: the handshake, heartbeat and keep-alive message
/// mechanisms above, on the link's own timer table and `last_rx`.
impl Link {
    /// The link opened at `now`: start the handshake (mooring) and the probes.
    pub(super) fn start_liveness(&mut self, now: Instant) {
        let cfg = &self.cfg.liveness;
        self.established = cfg.protocol == Protocol::Raw;
        self.last_tx = now;
        self.last_keepalive = now;
        if cfg.protocol == Protocol::Mooring {
            self.timers[Timer::Handshake as usize] = Some(now + cfg.handshake_timeout);
            if !self.server {
                self.out |= OUT_HELLO;
            }
        }
        if let Some(h) = cfg.heartbeat {
            self.timers[Timer::HeartbeatSend as usize] = Some(now + h.interval);
            self.timers[Timer::HeartbeatDead as usize] = Some(now + h.timeout);
        }
        if let Some(k) = &cfg.keepalive {
            self.timers[Timer::KeepAliveSend as usize] = Some(now + k.every);
        }
    }

    /// A whole mooring-protocol frame, decoded once: `Ok((offset, seq))` for
    /// DATA to deliver, else what the frame meant.
    pub(super) fn handle_protocol_frame(
        &mut self,
        frame: &[u8],
    ) -> Result<(usize, u64), FrameAction> {
        let Ok(msg) = wire::decode(frame) else {
            return Err(FrameAction::Close(CloseReason::BadFrame));
        };
        let established = self.established;
        match msg {
            Msg::Hello(g) if self.server && !established => self.greeted(g, OUT_WELCOME),
            Msg::Welcome(g) if !self.server && !established => self.greeted(g, 0),
            Msg::Data { seq, .. } if established => Ok((wire::DATA_HEADER, seq)),
            Msg::Ping => {
                self.out |= OUT_PONG;
                Err(FrameAction::Skip)
            }
            Msg::Ack(seq) if established => Err(FrameAction::Ack(seq)),
            Msg::Skip(seq) if established => Err(FrameAction::SessionSkip(seq)),
            Msg::Pong => Err(FrameAction::Skip),
            // The peer ended the link, whatever reason it gives: its reason is
            // a claim, kept apart (`Link::peer_reason`).
            Msg::Close(claim) => {
                self.closed_by_peer = true;
                self.peer_reason = match claim {
                    WireReason::Known(c) => Some(c),
                    WireReason::Unknown(_) => None,
                };
                Err(FrameAction::Close(CloseReason::PeerClosed))
            }
            // HELLO twice, WELCOME to a server, DATA before the handshake.
            _ => Err(FrameAction::Close(CloseReason::BadFrame)),
        }
    }

    fn greeted(&mut self, g: Greeting, reply: u8) -> Result<(usize, u64), FrameAction> {
        if g.version != PROTOCOL_VERSION {
            log::warn!(
                "peer speaks mooring protocol version {}, this is {PROTOCOL_VERSION}",
                g.version
            );
            return Err(FrameAction::Close(CloseReason::VersionMismatch));
        }
        self.established = true;
        self.out |= reply;
        self.timers[Timer::Handshake as usize] = None;
        Err(FrameAction::Established(g))
    }

    /// When the next PING is due (see the module docs for the asymmetry).
    fn ping_due(&self, interval: Duration) -> Instant {
        if self.server {
            self.last_tx + interval + interval / 2
        } else {
            self.last_tx + interval
        }
    }

    /// Liveness timer `t` is due at `now`: `Err(reason)` closes the link,
    /// `Ok(next)` is its next deadline (queued a probe, or moved lazily).
    pub(super) fn expire_liveness(
        &mut self,
        t: Timer,
        now: Instant,
    ) -> Result<Option<Instant>, CloseReason> {
        match t {
            Timer::Handshake => Err(CloseReason::HandshakeTimeout),
            Timer::KeepAliveReply => Err(CloseReason::KeepAliveTimeout),
            Timer::HeartbeatDead => {
                let Some(h) = self.cfg.liveness.heartbeat else {
                    return Ok(None);
                };
                let due = self.last_rx + h.timeout;
                if due > now {
                    return Ok(Some(due));
                }
                Err(CloseReason::HeartbeatTimeout)
            }
            Timer::HeartbeatSend => {
                let Some(h) = self.cfg.liveness.heartbeat else {
                    return Ok(None);
                };
                let due = self.ping_due(h.interval);
                if due > now {
                    return Ok(Some(due));
                }
                if self.established {
                    self.out |= OUT_PING;
                }
                Ok(Some(now + h.interval))
            }
            Timer::KeepAliveSend => {
                let Some(k) = &self.cfg.liveness.keepalive else {
                    return Ok(None);
                };
                let (every, reply) = (k.every, k.timeout);
                let due = self.last_rx.max(self.last_keepalive) + every;
                if due > now {
                    return Ok(Some(due));
                }
                // While a request awaits its reply, that request probes the
                // peer already, and a reply to a keep-alive could otherwise be
                // taken for the request's.
                if self.established && !self.awaiting_reply {
                    self.last_keepalive = now;
                    self.out |= OUT_KEEPALIVE;
                    if let Some(rt) = reply {
                        let slot = &mut self.timers[Timer::KeepAliveReply as usize];
                        if slot.is_none() {
                            *slot = Some(now + rt);
                        }
                    }
                }
                Ok(Some(now + every))
            }
            // The link's own timers are not liveness's.
            Timer::Connect
            | Timer::Idle
            | Timer::Response
            | Timer::Write
            | Timer::Frame
            | Timer::TlsHandshake => Ok(None),
        }
    }
}
