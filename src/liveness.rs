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
//! # Which traffic refreshes which deadline
//!
//! | deadline          | refreshed by                | on expiry                           |
//! |-------------------|-----------------------------|-------------------------------------|
//! | heartbeat send    | any frame sent (after `interval`; accepting side 1.5 x) | queue PING    |
//! | heartbeat dead    | any byte received           | `HeartbeatTimeout`                  |
//! | keep-alive send   | any byte received           | queue the keep-alive payload        |
//! | keep-alive reply  | any frame received          | `KeepAliveTimeout`                  |
//! | handshake         | HELLO (server) / WELCOME (client) received | `HandshakeTimeout`   |
//!
//! Send and dead deadlines are lazy: traffic only records the time, and an
//! early wake-up moves the deadline, so the per-message path costs no timer work.

use core::time::Duration;

use crate::error::{CloseReason, ConfigError};
use crate::frame_deadline::FrameTimeout;
use crate::time::Instant;
use crate::wire::{self, Greeting, Msg, WireReason, PROTOCOL_VERSION};

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

/// Keep-alive message for raw third-party peers (seed 003's advice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAliveMessage {
    /// The application payload to send (framed like any message).
    pub payload: &'static [u8],
    /// Send it after this long without receiving anything (and at most this often).
    pub every: Duration,
    /// If set, some inbound frame must arrive within this long after it.
    pub timeout: Option<Duration>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// [`crate::frame_deadline`]). Default on: 30 s + 1 s per 500 bytes, at
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
        if let Some(k) = self.keepalive {
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
            .and_then(|k| k.timeout.map(|t| k.every + t + TIMER_TICK));
        let os = self
            .tcp_keepalive
            .map(|k| k.idle + k.interval * k.count + TIMER_TICK);
        let ka_unacked = match (self.keepalive, self.tcp_user_timeout) {
            (Some(k), Some(u)) => Some(k.every + u + TCP_RETRANSMIT_SLACK + TIMER_TICK),
            _ => None,
        };
        [hb, ka, os, ka_unacked].into_iter().flatten().min()
    }
}

/// Control output a link wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// HELLO (client, new session).
    Hello,
    /// WELCOME (server).
    Welcome,
    /// PING.
    Ping,
    /// PONG.
    Pong,
    /// The keep-alive payload (raw, framed like a message).
    KeepAlive,
    /// CLOSE with a reason, then close the link.
    Close(CloseReason),
}

/// What an inbound frame meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Application data: deliver `frame[offset..]`.
    Deliver {
        /// Where the application payload starts in the frame.
        offset: usize,
        /// The DATA's sequence number (mooring protocol; `None` raw).
        seq: Option<u64>,
    },
    /// The handshake completed: the link is established; the peer's greeting
    /// (session id, token, last received sequence).
    Established(Greeting),
    /// A cumulative ACK for the session layer.
    Ack(u64),
    /// A conflated sequence number for the session layer.
    Skip(u64),
    /// A control message, handled.
    Handled,
}

const OUT_HELLO: u8 = 1;
const OUT_WELCOME: u8 = 2;
const OUT_PING: u8 = 4;
const OUT_PONG: u8 = 8;
const OUT_KEEPALIVE: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Handshake = 0,
    HeartbeatSend = 1,
    HeartbeatDead = 2,
    KeepAliveSend = 3,
    KeepAliveReply = 4,
}

const TIMERS: [Timer; 5] = [
    Timer::Handshake,
    Timer::HeartbeatSend,
    Timer::HeartbeatDead,
    Timer::KeepAliveSend,
    Timer::KeepAliveReply,
];

/// One link's liveness state.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    cfg: LivenessConfig,
    server: bool,
    established: bool,
    timers: [Option<Instant>; 5],
    last_rx: Instant,
    last_tx: Instant,
    last_keepalive: Instant,
    /// A request awaits its reply: that request is the probe, no keep-alive.
    busy: bool,
    greeting: Greeting,
    out: u8,
    close: Option<CloseReason>,
}

impl Liveness {
    /// Liveness for a link that just opened at `now`; `server` for accepted links.
    pub fn new(cfg: LivenessConfig, server: bool, now: Instant) -> Self {
        let mut l = Liveness {
            cfg,
            server,
            established: cfg.protocol == Protocol::Raw,
            timers: [None; 5],
            last_rx: now,
            last_tx: now,
            last_keepalive: now,
            busy: false,
            greeting: Greeting::new_session(),
            out: 0,
            close: None,
        };
        if cfg.protocol == Protocol::Mooring {
            l.set(Timer::Handshake, Some(now + cfg.handshake_timeout));
            if !server {
                l.out |= OUT_HELLO;
            }
        }
        l.arm(now);
        l
    }

    fn set(&mut self, t: Timer, at: Option<Instant>) {
        self.timers[t as usize] = at;
    }

    fn arm(&mut self, now: Instant) {
        if let Some(h) = self.cfg.heartbeat {
            self.set(Timer::HeartbeatSend, Some(now + h.interval));
            self.set(Timer::HeartbeatDead, Some(now + h.timeout));
        }
        if let Some(k) = self.cfg.keepalive {
            self.set(Timer::KeepAliveSend, Some(now + k.every));
        }
    }

    /// True once the handshake (if any) completed.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The protocol in use.
    pub fn protocol(&self) -> Protocol {
        self.cfg.protocol
    }

    /// Bytes arrived.
    pub fn handle_input(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// A frame was queued for sending (application or control).
    pub fn handle_sent(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// A whole inbound frame. Raw: always delivered. Mooring: interpreted.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Result<Inbound, CloseReason> {
        // Any inbound frame answers a keep-alive message.
        self.set(Timer::KeepAliveReply, None);
        if self.cfg.protocol == Protocol::Raw {
            return Ok(Inbound::Deliver {
                offset: 0,
                seq: None,
            });
        }
        let msg = wire::decode(frame).map_err(|_| CloseReason::BadFrame)?;
        match msg {
            Msg::Hello(g) if self.server && !self.established => self.greeted(now, g, OUT_WELCOME),
            Msg::Welcome(g) if !self.server && !self.established => self.greeted(now, g, 0),
            Msg::Data { seq, .. } if self.established => Ok(Inbound::Deliver {
                offset: wire::DATA_HEADER,
                seq: Some(seq),
            }),
            Msg::Ping => {
                self.out |= OUT_PONG;
                Ok(Inbound::Handled)
            }
            Msg::Ack(seq) if self.established => Ok(Inbound::Ack(seq)),
            Msg::Skip(seq) if self.established => Ok(Inbound::Skip(seq)),
            Msg::Pong => Ok(Inbound::Handled),
            // The peer ended the link, whatever reason it gives: its reason is
            // a claim, kept apart by the link (`Link::peer_reason`).
            Msg::Close(_) => Err(CloseReason::PeerClosed),
            // HELLO twice, WELCOME to a server, DATA before the handshake.
            _ => Err(CloseReason::BadFrame),
        }
    }

    fn greeted(&mut self, now: Instant, g: Greeting, reply: u8) -> Result<Inbound, CloseReason> {
        if g.version != PROTOCOL_VERSION {
            log::warn!(
                "peer speaks mooring protocol version {}, this is {PROTOCOL_VERSION}",
                g.version
            );
            self.close = Some(CloseReason::VersionMismatch);
            return Err(CloseReason::VersionMismatch);
        }
        self.established = true;
        self.out |= reply;
        self.set(Timer::Handshake, None);
        let _ = now;
        Ok(Inbound::Established(g))
    }

    /// The greeting this side sends in HELLO or WELCOME (set by the driver from
    /// the session; a new-session greeting by default).
    pub fn set_greeting(&mut self, g: Greeting) {
        self.greeting = g;
    }

    /// When the next PING is due (see the module docs for the asymmetry).
    fn ping_due(&self, interval: Duration) -> Instant {
        if self.server {
            self.last_tx + interval + interval / 2
        } else {
            self.last_tx + interval
        }
    }

    /// Whether a request awaits its reply. While it does, no keep-alive message is
    /// sent: the request probes the peer already, and a reply to a keep-alive could
    /// otherwise be taken for the request's.
    pub fn set_busy(&mut self, busy: bool) {
        self.busy = busy;
    }

    /// True when [`Liveness::poll_transmit`] has something.
    pub fn wants_transmit(&self) -> bool {
        self.out != 0
    }

    /// The next control message to send, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Control> {
        for (bit, c) in [
            (OUT_HELLO, Control::Hello),
            (OUT_WELCOME, Control::Welcome),
            (OUT_PONG, Control::Pong),
            (OUT_PING, Control::Ping),
            (OUT_KEEPALIVE, Control::KeepAlive),
        ] {
            if self.out & bit != 0 {
                self.out &= !bit;
                return Some(c);
            }
        }
        None
    }

    /// Time passed: queue probes, or return the reason the link is dead.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        for t in TIMERS {
            let Some(at) = self.timers[t as usize] else {
                continue;
            };
            if at > now {
                continue;
            }
            self.set(t, None);
            match t {
                Timer::Handshake => return Some(CloseReason::HandshakeTimeout),
                Timer::KeepAliveReply => return Some(CloseReason::KeepAliveTimeout),
                Timer::HeartbeatDead => {
                    let Some(h) = self.cfg.heartbeat else {
                        continue;
                    };
                    let due = self.last_rx + h.timeout;
                    if due > now {
                        self.set(t, Some(due));
                        continue;
                    }
                    return Some(CloseReason::HeartbeatTimeout);
                }
                Timer::HeartbeatSend => {
                    let Some(h) = self.cfg.heartbeat else {
                        continue;
                    };
                    let due = self.ping_due(h.interval);
                    if due > now {
                        self.set(t, Some(due));
                        continue;
                    }
                    if self.established {
                        self.out |= OUT_PING;
                    }
                    self.set(t, Some(now + h.interval));
                }
                Timer::KeepAliveSend => {
                    let Some(k) = self.cfg.keepalive else {
                        continue;
                    };
                    let due = self.last_rx.max(self.last_keepalive) + k.every;
                    if due > now {
                        self.set(t, Some(due));
                        continue;
                    }
                    if self.established && !self.busy {
                        self.last_keepalive = now;
                        self.out |= OUT_KEEPALIVE;
                        if let Some(rt) = k.timeout {
                            if self.timers[Timer::KeepAliveReply as usize].is_none() {
                                self.set(Timer::KeepAliveReply, Some(now + rt));
                            }
                        }
                    }
                    self.set(t, Some(now + k.every));
                }
            }
        }
        None
    }

    /// The earliest deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Writes the control message `c` as a frame payload into `out`.
    pub fn encode_control(&self, c: Control, out: &mut [u8]) -> Option<usize> {
        let msg = match c {
            Control::Hello => Msg::Hello(self.greeting),
            Control::Welcome => Msg::Welcome(self.greeting),
            Control::Ping => Msg::Ping,
            Control::Pong => Msg::Pong,
            Control::Close(r) => Msg::Close(WireReason::Known(r)),
            Control::KeepAlive => {
                let p = self.cfg.keepalive?.payload;
                let dst = out.get_mut(..p.len())?;
                dst.copy_from_slice(p);
                return Some(p.len());
            }
        };
        wire::encode(&msg, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn mooring(hb: Option<(u64, u64)>) -> LivenessConfig {
        LivenessConfig {
            protocol: Protocol::Mooring,
            heartbeat: hb.map(|(i, d)| Heartbeat {
                interval: ms(i),
                timeout: ms(d),
            }),
            handshake_timeout: ms(500),
            ..Default::default()
        }
    }

    fn frame(m: Msg<'_>) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        let n = wire::encode(&m, &mut b).unwrap();
        b.truncate(n);
        b
    }

    fn established_pair(cfg: LivenessConfig) -> (Liveness, Liveness) {
        let mut c = Liveness::new(cfg, false, t(0));
        let mut s = Liveness::new(cfg, true, t(0));
        assert_eq!(c.poll_transmit(), Some(Control::Hello));
        let hello = frame(Msg::Hello(Greeting::new_session()));
        assert!(matches!(
            s.handle_frame(t(1), &hello),
            Ok(Inbound::Established(_))
        ));
        assert_eq!(s.poll_transmit(), Some(Control::Welcome));
        let welcome = frame(Msg::Welcome(Greeting::new_session()));
        assert!(matches!(
            c.handle_frame(t(2), &welcome),
            Ok(Inbound::Established(_))
        ));
        (c, s)
    }

    #[test]
    fn client_says_hello_and_server_welcomes_it() {
        let (c, s) = established_pair(mooring(None));
        assert!(c.is_established() && s.is_established());
        assert_eq!(c.poll_timeout(), None, "handshake timer stopped");
    }

    #[test]
    fn server_closes_a_peer_that_never_says_hello() {
        let mut s = Liveness::new(mooring(None), true, t(0));
        assert_eq!(s.poll_timeout(), Some(t(500)));
        assert_eq!(s.handle_timeout(t(499)), None);
        assert_eq!(
            s.handle_timeout(t(500)),
            Some(CloseReason::HandshakeTimeout)
        );
    }

    #[test]
    fn version_mismatch_closes_with_its_own_reason() {
        let mut s = Liveness::new(mooring(None), true, t(0));
        let mut g = Greeting::new_session();
        g.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            s.handle_frame(t(1), &frame(Msg::Hello(g))),
            Err(CloseReason::VersionMismatch)
        );
    }

    #[test]
    fn a_close_message_is_the_peers_close_whatever_reason_it_claims() {
        let (_, mut s) = established_pair(mooring(None));
        let claim = frame(Msg::Close(WireReason::Known(CloseReason::StaleReplaced)));
        assert_eq!(s.handle_frame(t(1), &claim), Err(CloseReason::PeerClosed));
        let (_, mut s) = established_pair(mooring(None));
        let unknown = frame(Msg::Close(WireReason::Unknown(200)));
        assert_eq!(s.handle_frame(t(1), &unknown), Err(CloseReason::PeerClosed));
    }

    #[test]
    fn data_before_the_handshake_is_a_bad_frame() {
        let mut s = Liveness::new(mooring(None), true, t(0));
        let d = frame(Msg::Data {
            seq: 1,
            payload: b"x",
        });
        assert_eq!(s.handle_frame(t(1), &d), Err(CloseReason::BadFrame));
    }

    #[test]
    fn data_is_delivered_past_its_header() {
        let (_, mut s) = established_pair(mooring(None));
        let d = frame(Msg::Data {
            seq: 1,
            payload: b"abc",
        });
        assert_eq!(
            s.handle_frame(t(3), &d),
            Ok(Inbound::Deliver {
                offset: wire::DATA_HEADER,
                seq: Some(1)
            })
        );
    }

    #[test]
    fn silence_on_the_send_side_sends_a_ping_and_ping_gets_pong() {
        let (mut c, mut s) = established_pair(mooring(Some((100, 300))));
        c.handle_sent(t(2));
        assert_eq!(c.handle_timeout(t(100)), None);
        assert_eq!(c.poll_transmit(), None, "sent at t=2, so not yet");
        assert_eq!(c.handle_timeout(t(102)), None);
        assert_eq!(c.poll_transmit(), Some(Control::Ping));
        assert_eq!(
            s.handle_frame(t(103), &frame(Msg::Ping)),
            Ok(Inbound::Handled)
        );
        assert_eq!(s.poll_transmit(), Some(Control::Pong));
    }

    #[test]
    fn accepting_side_pings_a_client_that_streams_one_way() {
        let (_, mut s) = established_pair(mooring(Some((100, 300))));
        // Client data arrives every 10 ms; the server sends nothing back.
        let mut pinged_at = None;
        for now in (10..=300).step_by(10) {
            s.handle_input(t(now));
            assert_eq!(s.handle_timeout(t(now)), None);
            if s.poll_transmit() == Some(Control::Ping) {
                pinged_at = Some(now);
                break;
            }
        }
        assert_eq!(pinged_at, Some(150), "1.5 x interval after its last send");
    }

    #[test]
    fn accepting_side_does_not_ping_while_answering_pings() {
        let (_, mut s) = established_pair(mooring(Some((100, 300))));
        for k in 1..=20 {
            let now = t(k * 100);
            s.handle_input(now);
            assert_eq!(s.handle_frame(now, &frame(Msg::Ping)), Ok(Inbound::Handled));
            assert_eq!(s.poll_transmit(), Some(Control::Pong));
            s.handle_sent(now);
            assert_eq!(s.handle_timeout(now), None);
            assert_eq!(
                s.poll_transmit(),
                None,
                "no PING of its own at t={}",
                k * 100
            );
        }
    }

    #[test]
    fn outbound_frames_defer_the_heartbeat() {
        let (mut c, _) = established_pair(mooring(Some((100, 300))));
        c.handle_sent(t(90));
        assert_eq!(c.handle_timeout(t(100)), None);
        assert_eq!(c.poll_transmit(), None);
        assert_eq!(c.poll_timeout(), Some(t(190)));
    }

    #[test]
    fn no_inbound_bytes_for_the_timeout_is_a_heartbeat_timeout() {
        let (mut c, _) = established_pair(mooring(Some((100, 300))));
        c.handle_input(t(50));
        let mut now = 50;
        // Run the clock in 10 ms ticks: the verdict comes exactly at last_rx + timeout.
        loop {
            now += 10;
            if let Some(r) = c.handle_timeout(t(now)) {
                assert_eq!(r, CloseReason::HeartbeatTimeout);
                break;
            }
            let _ = c.poll_transmit();
        }
        assert_eq!(now, 350);
    }

    #[test]
    fn inbound_bytes_exactly_at_the_deadline_keep_the_link() {
        let (mut c, _) = established_pair(mooring(Some((100, 300))));
        c.handle_input(t(300));
        assert_eq!(c.handle_timeout(t(300)), None);
        assert_eq!(c.handle_timeout(t(599)), None);
        assert_eq!(
            c.handle_timeout(t(600)),
            Some(CloseReason::HeartbeatTimeout)
        );
    }

    #[test]
    fn keepalive_message_goes_out_on_idle_links_and_needs_a_reply() {
        let cfg = LivenessConfig {
            keepalive: Some(KeepAliveMessage {
                payload: b"MSH|^~\\&|KA",
                every: ms(100),
                timeout: Some(ms(50)),
            }),
            ..Default::default()
        };
        let mut l = Liveness::new(cfg, false, t(0));
        assert_eq!(l.handle_timeout(t(100)), None);
        assert_eq!(l.poll_transmit(), Some(Control::KeepAlive));
        let mut out = [0u8; 32];
        let n = l.encode_control(Control::KeepAlive, &mut out).unwrap();
        assert_eq!(&out[..n], b"MSH|^~\\&|KA");
        l.handle_sent(t(100));
        assert_eq!(
            l.handle_timeout(t(150)),
            Some(CloseReason::KeepAliveTimeout)
        );
    }

    #[test]
    fn any_inbound_frame_answers_the_keepalive() {
        let cfg = LivenessConfig {
            keepalive: Some(KeepAliveMessage {
                payload: b"KA",
                every: ms(100),
                timeout: Some(ms(50)),
            }),
            ..Default::default()
        };
        let mut l = Liveness::new(cfg, false, t(0));
        assert_eq!(l.handle_timeout(t(100)), None);
        l.handle_sent(t(100));
        assert_eq!(
            l.handle_frame(t(120), b"ACK"),
            Ok(Inbound::Deliver {
                offset: 0,
                seq: None
            })
        );
        assert_eq!(l.handle_timeout(t(150)), None);
    }

    #[test]
    fn detection_bound_takes_the_fastest_idle_mechanism() {
        let mut c = LivenessConfig::default();
        assert_eq!(c.detection_bound(), None);
        c.tcp_keepalive = Some(TcpKeepalive::default());
        assert_eq!(
            c.detection_bound(),
            Some(Duration::from_secs(75) + TIMER_TICK)
        );
        c.protocol = Protocol::Mooring;
        c.heartbeat = Some(Heartbeat::default());
        assert_eq!(
            c.detection_bound(),
            Some(Duration::from_secs(75) + TIMER_TICK)
        );
        c.heartbeat = Some(Heartbeat {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        });
        assert_eq!(
            c.detection_bound(),
            Some(Duration::from_secs(30) + TIMER_TICK)
        );
    }

    #[test]
    fn keepalive_with_tcp_user_timeout_is_a_bound_even_without_a_reply_timeout() {
        let c = LivenessConfig {
            keepalive: Some(KeepAliveMessage {
                payload: b"KA",
                every: Duration::from_secs(10),
                timeout: None,
            }),
            tcp_user_timeout: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        assert_eq!(
            c.detection_bound(),
            Some(Duration::from_secs(30) + TCP_RETRANSMIT_SLACK + TIMER_TICK)
        );
    }

    #[test]
    fn no_keepalive_goes_out_while_a_reply_is_awaited() {
        let cfg = LivenessConfig {
            keepalive: Some(KeepAliveMessage {
                payload: b"KA",
                every: ms(100),
                timeout: Some(ms(50)),
            }),
            ..Default::default()
        };
        let mut l = Liveness::new(cfg, false, t(0));
        l.set_busy(true);
        assert_eq!(l.handle_timeout(t(100)), None);
        assert_eq!(l.poll_transmit(), None);
        assert_eq!(
            l.handle_timeout(t(150)),
            None,
            "no reply timer without a keep-alive"
        );
        l.set_busy(false);
        assert_eq!(l.handle_timeout(t(200)), None);
        assert_eq!(l.poll_transmit(), Some(Control::KeepAlive));
    }

    #[test]
    fn heartbeat_needs_the_mooring_protocol() {
        let c = LivenessConfig {
            heartbeat: Some(Heartbeat::default()),
            ..Default::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::NeedsMooringProtocol { field: "heartbeat" })
        );
    }

    #[test]
    fn many_links_expiring_in_one_tick_each_report_once() {
        let cfg = mooring(Some((100, 300)));
        let mut links: Vec<Liveness> = (0..1000).map(|_| established_pair(cfg).0).collect();
        let dead = links
            .iter_mut()
            .map(|l| l.handle_timeout(t(302)))
            .filter(|r| *r == Some(CloseReason::HeartbeatTimeout))
            .count();
        assert_eq!(dead, 1000);
    }
}
