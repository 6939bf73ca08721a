//! The relay engine: local devices (third-party HL7 senders over raw MLLP or
//! len32) connect to a [`Node`]'s listener; every new message is queued and
//! forwarded, in order, over ONE keep-open upstream link that is re-established
//! with backoff whenever it drops. `mooring relay` is this engine plus flag
//! parsing and printing.
//!
//! A [`Relay`] owns no socket and reads no clock: it takes the node's events
//! ([`Relay::handle_event`]) with the time they were pulled, issues its sends
//! through the node ([`Relay::settle`], [`Relay::drive`]) and reports what
//! happened as [`RelayEvent`]s. [`Relay::turn`] is one loop turn of all three.
//!
//! Per device message (keyed by its sender and MSH-10: MSH-3, MSH-4, MSH-10, see
//! [`hl7::message_key`]; MSH-10 alone is unique only per sender):
//!
//! 1. A message whose key the relay saw before (a `DedupWindow` of the last
//!    [`RelayConfig::dedup_window`] keys) is acknowledged again (AA) and not
//!    forwarded again: [`RelayEvent::Duplicate`]. With [`AckAfter::Upstream`], a
//!    resend of a message that is still waiting for the upstream's
//!    acknowledgement takes over its pending ACK (the ACK goes to the newest
//!    link) and is not forwarded again either.
//! 2. A new message goes into the upstream queue, a `Ledger` of
//!    [`RelayConfig::queue`] messages. If the queue is full (or the message is
//!    larger than the queue's byte ring) the device gets MSA|AR at once:
//!    [`RelayEvent::QueueFull`]. It never gets AA for a message that was not
//!    kept.
//! 3. [`AckAfter::Queued`] (default): the device gets AA as soon as the message
//!    is in the queue. [`AckAfter::Upstream`]: only once the upstream
//!    acknowledged it (raw: the upstream's HL7 ACK whose MSA-2 is the message's
//!    MSH-10, and the device gets the upstream's MSA-1 code; mooring: the
//!    upstream's session acknowledged delivery to its application, and the
//!    device gets AA). A device still waiting when the response timeout has
//!    passed since its message arrived (the upstream is down or slow) gets
//!    MSA|AR then: [`RelayEvent::ReplyTimeout`]. The message stays queued and
//!    goes upstream when it can; its resend is a duplicate (AA once delivered).
//!
//! Upstream, raw ([`Protocol::Raw`]): one message in flight (MLLP is
//! request/response). A reply is credited only if its MSA-2 matches the
//! message's MSH-10; anything else is [`RelayEvent::UnexpectedReply`]. No
//! matching reply within the response timeout closes the link: the message is
//! then in doubt and resent after the reconnect, up to
//! [`RelayConfig::retries`] times, after which it fails
//! ([`RelayEvent::Failed`]).
//!
//! Raw with [`RelayConfig::upstream_window`] above 1: that many messages in
//! flight, their replies credited in order (see `window.rs`).
//!
//! Failover ([`RelayConfig::backup_upstreams`]): the upstream link (or
//! session) goes to the first upstream that answers, moves on after
//! [`RelayConfig::failover_after`] failed attempts, and returns to the primary
//! between messages once a probe finds it answering (see `failover.rs`).
//!
//! Upstream, mooring ([`Protocol::Mooring`]): a reliable session
//! ([`Node::open_session`]); the session resumes lost links by itself with
//! nothing lost or repeated. The ledger still holds every message until the
//! session acknowledged it, so if the session itself ends (the upstream
//! restarted and lost it: Expired, or Lost) the messages it had not
//! acknowledged are in doubt and resent on a new session, up to the retries.
//!
//! Memory is fixed at start: the ledger's ring, the duplicate window, the
//! device table, the ACK buffer. Pending-message records (MSH-10 and MSH
//! segment, for the events and the deferred ACK) are recycled, so after
//! warm-up no message allocates.

mod event;
mod failover;
mod intake;
mod queue;
mod resume;
mod setup;
mod shutdown;
mod spool;
mod stats;
mod upstream;
mod window;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::dedup::DedupWindow;
use crate::hl7;
use crate::ledger::LedgerConfig;
use crate::rng::XorShift64;
use crate::session::{Backoff, SessionConfig};
use crate::spool::SpoolError;
use crate::time::{earliest, Instant};
use crate::{ConfigError, ConnectConfig, Event, LinkId, LivenessConfig, Node, Protocol};

pub use event::{Escaped, LostReason, Refusal, RelayEvent, SwitchReason};
pub use setup::{default_ack_after, DeviceSide, StartError, Started};
pub use shutdown::ShutdownSummary;
pub use spool::{
    Pressure, RelaySpoolStats, SpoolSettings, MARKS_WITHIN as SPOOL_MARKS_WITHIN,
    RETRY as SPOOL_RETRY,
};
pub use stats::RelayQueueStats;

use failover::Failover;
use queue::Queue;
use spool::Durable;
use upstream::Upstream;
use window::Window;

/// Room for an ACK beyond an MSH segment (swapped fields, MSA, timestamp).
const ACK_HEADROOM: usize = 512;

/// When the device gets its ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckAfter {
    /// Once the message is in the queue. Without a spool AA means "kept by
    /// the relay" in memory: lost if the process dies. With
    /// [`RelayConfig::spool`] it means "on disk": the AA is sent after the
    /// commit (`fdatasync` with [`Fsync::Batch`]) that covers the message.
    ///
    /// [`Fsync::Batch`]: crate::spool::Fsync::Batch
    Queued,
    /// Once the upstream acknowledged it.
    Upstream,
}

/// How a [`Relay`] forwards. Build with [`RelayConfig::new`] and change fields.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where messages go: the primary upstream. No default.
    pub upstream: SocketAddr,
    /// Upstreams to fail over to, in order, after [`RelayConfig::upstream`]:
    /// the relay forwards to the first reachable one, moves to the next after
    /// [`RelayConfig::failover_after`] failed attempts, and returns to the
    /// primary once it answers again. Default none.
    pub backup_upstreams: Vec<SocketAddr>,
    /// Failed attempts on the active upstream (a connect that fails, or a
    /// link or session lost with messages in doubt before the upstream
    /// acknowledged any) before the relay moves to the next. Default 3 (0
    /// counts as 1).
    pub failover_after: u32,
    /// Raw upstream: messages written before their ACKs arrive, for receivers
    /// that process pipelined messages in order (ACKs are matched in order,
    /// by MSA-2 = MSH-10). Default 1 (MLLP request/response); 0 counts as 1,
    /// and more than [`RelayConfig::queue`] as the queue. A mooring upstream
    /// always forwards a window of the whole queue (the session acknowledges
    /// cumulatively).
    pub upstream_window: usize,
    /// Messages held for the upstream; a device message arriving when it is
    /// full gets MSA|AR. Default 1000.
    pub queue: usize,
    /// When a device gets its ACK. Default [`AckAfter::Queued`].
    pub ack_after: AckAfter,
    /// Resends of a message in doubt before it fails. Default 3.
    pub retries: u32,
    /// Raw: the upstream's ACK must come within this, else the link is closed
    /// and the message is in doubt. [`AckAfter::Upstream`]: a device waiting
    /// this long for its ACK gets MSA|AR. Default 10 s.
    pub response_timeout: Duration,
    /// Reconnect delays (raw link redial, new sessions). Default 1 s doubling
    /// to 30 s, full jitter, unlimited attempts. The relay never gives up its
    /// upstream: past `max_attempts` each redial (or new session, or probe of
    /// the primary) waits `max`.
    pub backoff: Backoff,
    /// Each connect attempt. Default 5 s.
    pub connect_timeout: Duration,
    /// Messages remembered to spot resends (same MSH-3, MSH-4, MSH-10).
    /// Default 10,000.
    pub dedup_window: usize,
    /// The upstream link's liveness, [`LivenessConfig::protocol`] included
    /// (raw or a mooring session). Default: raw, all off.
    pub liveness: LivenessConfig,
    /// Seeds the backoff jitter. Default 0 (the CLI mixes the time and its
    /// process id).
    pub seed: u64,
    /// The durable spool: every accepted message is written to disk, committed
    /// once per loop turn, and recovered (then forwarded first) on start.
    /// Default `None`: the queue is in memory only.
    pub spool: Option<SpoolSettings>,
    /// TLS on the upstream link (feature `tls`): CA certificates, server
    /// name, client certificate (see [`crate::tls::TlsClientConfig`]). The
    /// devices' side is the listener's [`crate::ListenConfig::tls`].
    /// Default `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::TlsClientConfig>,
}

/// Why a [`Relay`] could not be built.
#[non_exhaustive]
#[derive(Debug)]
pub enum RelayError {
    /// The configuration is inconsistent.
    Config(ConfigError),
    /// The spool could not be opened or recovered (locked by another relay,
    /// files of another layout, no space to preallocate, an I/O error).
    Spool(SpoolError),
}

impl From<ConfigError> for RelayError {
    fn from(e: ConfigError) -> Self {
        RelayError::Config(e)
    }
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Config(e) => e.fmt(f),
            RelayError::Spool(e) => write!(f, "spool: {e}"),
        }
    }
}

impl std::error::Error for RelayError {}

impl RelayConfig {
    /// The defaults, forwarding to `upstream`.
    pub fn new(upstream: SocketAddr) -> Self {
        RelayConfig {
            upstream,
            backup_upstreams: Vec::new(),
            failover_after: 3,
            upstream_window: 1,
            queue: 1000,
            ack_after: AckAfter::Queued,
            retries: 3,
            response_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            dedup_window: 10_000,
            liveness: LivenessConfig::default(),
            seed: 0,
            spool: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    fn mooring(&self) -> bool {
        self.liveness.protocol == Protocol::Mooring
    }

    fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig {
            capacity: self.queue,
            window: if self.mooring() {
                self.queue
            } else {
                self.upstream_window.clamp(1, self.queue.max(1))
            },
            retries: self.retries,
            ..LedgerConfig::default()
        }
    }

    /// How the relay connects upstream (a session sized to the queue with
    /// [`Protocol::Mooring`]). Validate it before building the node.
    pub fn connect_config(&self) -> ConnectConfig {
        let session = self.mooring().then(|| SessionConfig {
            max_depth: self.queue,
            max_depth_disconnected: self.queue,
            max_bytes: self.ledger_config().max_bytes,
            ..SessionConfig::default()
        });
        ConnectConfig {
            connect_timeout: self.connect_timeout,
            liveness: self.liveness.clone(),
            session,
            backoff: self.backoff,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            ..ConnectConfig::default()
        }
    }

    /// Sessions the node needs for this relay (`NodeConfig::max_sessions`):
    /// one more with backups, to probe the primary.
    pub fn node_sessions(&self) -> usize {
        match (self.mooring(), self.backup_upstreams.is_empty()) {
            (false, _) => 0,
            (true, true) => 2,
            (true, false) => 3,
        }
    }

    /// Every upstream in order of preference: the primary, then the backups.
    pub fn upstreams(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.upstream).chain(self.backup_upstreams.iter().copied())
    }
}

/// The relay engine on one [`Node`] (see the module documentation).
pub struct Relay {
    cfg: RelayConfig,
    connect: ConnectConfig,
    queue: Queue,
    dedup: DedupWindow,
    /// Device links by slot, with their address.
    devices: Vec<Option<(LinkId, SocketAddr)>>,
    ack_buf: Vec<u8>,
    /// An ACK in `ack_buf` to send to a device at the next [`Relay::settle`].
    ack_due: Option<(LinkId, usize)>,
    up: Upstream,
    rng: XorShift64,
    /// MSH-10 of the keep-alive message: its replies are not unexpected.
    keepalive_id: Option<Vec<u8>>,
    /// The time the current event was pulled.
    now: Instant,
    /// The durable spool, when configured.
    spool: Option<Durable>,
    /// Which upstream is active, and the probe of the primary.
    failover: Failover,
    /// Raw: messages written after the one in flight, awaiting their ACKs.
    window: Window,
}

impl Relay {
    /// A relay on `node` (sized from its `max_links` and `max_frame`), its
    /// spool opened and recovered when configured. Nothing is sent until the
    /// first [`Relay::drive`].
    pub fn new(cfg: RelayConfig, node: &Node) -> Result<Relay, RelayError> {
        let connect = cfg.connect_config();
        connect.validate()?;
        let now = node.now();
        let max_frame = node.config().max_frame;
        let spool = match &cfg.spool {
            Some(s) => {
                let mut d = Durable::open(s, max_frame).map_err(RelayError::Spool)?;
                d.session.on = cfg.mooring();
                Some(d)
            }
            None => None,
        };
        Ok(Relay {
            spool,
            failover: Failover::new(&cfg),
            window: Window::new(cfg.upstream_window.min(cfg.queue)),
            queue: Queue::new(cfg.ledger_config()),
            dedup: DedupWindow::new(cfg.dedup_window),
            devices: vec![None; node.config().max_links],
            ack_buf: vec![0; max_frame.saturating_add(ACK_HEADROOM)],
            ack_due: None,
            up: Upstream::new(cfg.mooring(), cfg.backoff, now),
            rng: XorShift64::new(cfg.seed),
            keepalive_id: cfg
                .liveness
                .keepalive
                .as_ref()
                .and_then(|k| hl7::control_id(&k.payload).map(<[u8]>::to_vec)),
            connect,
            cfg,
            now,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.cfg
    }

    /// The upstream messages go to now (the primary, or a backup after a
    /// failover).
    pub fn active_upstream(&self) -> SocketAddr {
        self.failover.active_addr()
    }

    /// Messages queued for the upstream (not yet acknowledged or failed).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The spool's numbers at `now` (`None`: no spool). Reads the oldest
    /// undelivered record back from disk for its arrival time: call it for
    /// stats, not per message. Ages of messages recovered from an earlier run
    /// count from this run's clock start.
    pub fn spool_stats(&mut self, now: Instant) -> Option<RelaySpoolStats> {
        self.spool.as_mut().map(|d| d.stats(now))
    }

    /// What the spool's recovery found at start (`None`: no spool).
    pub fn spool_recovery(&self) -> Option<crate::spool::RecoveryReport> {
        self.spool.as_ref().map(|d| d.report)
    }

    /// Takes one node event, pulled at `now`. Follow each with
    /// [`Relay::settle`] (the event borrows the node).
    pub fn handle_event(&mut self, ev: Event<'_>, now: Instant, out: &mut dyn FnMut(RelayEvent)) {
        self.now = now;
        match ev {
            Event::Connected {
                link,
                peer,
                listener: Some(_),
            } => self.on_device_connected(link, peer, out),
            Event::Connected {
                link,
                listener: None,
                ..
            } => self.on_upstream_connected(link, out),
            Event::Message { link, payload } => {
                if self.is_device(link) {
                    self.ack_due = self.on_device_message(link, payload, now, out);
                } else {
                    self.on_upstream_frame(link, payload, out);
                }
            }
            Event::Closed {
                link,
                peer,
                reason,
                peer_reason,
                ..
            } => {
                if self.is_device(link) {
                    self.on_device_closed(link, peer, reason, peer_reason, out);
                } else {
                    self.on_upstream_closed(link, reason, now, out);
                }
            }
            Event::Rejected { peer, reason, .. } => out(RelayEvent::Rejected { peer, reason }),
            Event::SessionMessage { payload, .. } => out(RelayEvent::UpstreamReply {
                id: hl7::acked_control_id(payload),
                ack: hl7::ack_code(payload),
            }),
            Event::Session { session, note } => {
                self.resume_note(session, note);
                self.on_session_note(session, note, out);
            }
            #[cfg(feature = "tls")]
            Event::TlsEstablished {
                link,
                peer,
                handshake,
            } => out(RelayEvent::Tls {
                peer,
                upstream: !self.is_device(link),
                handshake,
            }),
            #[cfg(feature = "tls")]
            Event::TlsFailed { link, peer, error } => out(RelayEvent::TlsFailed {
                peer,
                upstream: !self.is_device(link),
                error,
            }),
            _ => {}
        }
    }

    /// Sends the ACK the last event called for, credits what the session
    /// acknowledged, reports outcomes and sends the deferred ACKs. Call after
    /// each event (outcomes may follow any event: they are reported in the
    /// order they happened) and once after the last.
    pub fn settle(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        if let Some((link, n)) = self.ack_due.take() {
            let peer = self.device_peer(link);
            intake::send_ack(node, link, &self.ack_buf[..n], peer);
        }
        self.credit_session(node);
        self.close_out_of_order(node);
        self.outcomes(node, out);
        self.record_session(node, node.now(), out);
    }

    /// Does whatever is due at the node's time: commits the spool (sending the
    /// AAs it makes due), loads recovered messages, answers overdue devices,
    /// dials, times out the upstream, writes queued messages.
    pub fn drive(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        let now = node.now();
        self.commit(node, out);
        self.load_backlog(now, out);
        self.answer_overdue(node, now, out);
        self.drive_upstream(node, now, out);
    }

    /// The earliest time [`Relay::drive`] has something to do (`None`: only
    /// node events).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let spool = self.spool.as_ref().and_then(Durable::deadline);
        earliest(
            earliest(self.queue.next_reply_by(), self.up.deadline()),
            earliest(spool, self.failover.deadline()),
        )
    }

    /// One loop turn: [`Relay::drive`], the node's poll (up to `max_wait`, less
    /// when a deadline is near), then every event with [`Relay::settle`], then
    /// one spool commit for everything accepted in the turn (group commit).
    pub fn turn(
        &mut self,
        node: &mut Node,
        max_wait: Duration,
        out: &mut dyn FnMut(RelayEvent),
    ) -> io::Result<()> {
        self.drive(node, out);
        let wait = match self.poll_timeout() {
            Some(t) => t.saturating_since(node.now()).min(max_wait),
            None => max_wait,
        };
        node.poll(Some(wait))?;
        loop {
            let now = node.now();
            let Some(ev) = node.next_event() else { break };
            self.handle_event(ev, now, out);
            self.settle(node, out);
        }
        self.settle(node, out);
        // Group commit: everything accepted in this turn, one sync, then the AAs.
        self.commit(node, out);
        Ok(())
    }
}

#[cfg(test)]
mod forward_tests;
#[cfg(test)]
mod tests;
