//! A request/response client over one outbound link, with the connection
//! policies of seed 000 and transparent reconnection.

use core::time::Duration;
use std::net::SocketAddr;

// Beside `ServerPolicy`, where a user looks for connection policies.
pub use crate::config::ClientPolicy;
use crate::config::{ConnectConfig, NodeConfig};
use crate::error::{CloseReason, RequestError, SendError};
use crate::ledger::{Deliveries, Loss, MsgId};
use crate::node::{Event, LinkId, Node, SetupError};
use crate::session::Backoff;

/// Client settings with documented defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Node sizes; the client needs 2 slots. Default: [`NodeConfig`] defaults with
    /// `max_links = 2`.
    pub node: NodeConfig,
    /// Connect timeout (default 5 s) and idle timeout (default off).
    pub connect: ConnectConfig,
    /// Keep-open (default) or close-per-message.
    pub policy: ClientPolicy,
    /// How long to wait for a reply. Default 10 s.
    pub response_timeout: Duration,
    /// HL7 correlation: a reply whose MSA-2 differs from the request's MSH-10 is
    /// not taken as its reply but counted as unexpected (a late ACK for an earlier
    /// message must never be credited to the next one). Non-HL7 traffic always
    /// matches. Default off in the library, on in the CLI.
    pub correlate_hl7: bool,
    /// At-least-once: when no complete reply arrives (the link dropped, the reply
    /// broke off, or the response timeout passed), send the request again on a
    /// new link, up to this many times. HL7 receivers deduplicate by MSH-10, which
    /// makes a resend of a request that was in fact processed harmless. A failed
    /// connect is returned at once (the caller decides when to try again).
    /// Default 0: at most the one transparent resend of the keep-open race.
    pub retries: u32,
    /// The wait before each of those retries (the library's one backoff:
    /// attempt `n` waits a random time up to `min x 2^n`, capped at `max`), and
    /// with its `max_attempts` a second limit on them. Each attempt still has
    /// the whole response timeout. Default [`Backoff::IMMEDIATE`]: no wait.
    pub retry_backoff: Backoff,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            node: NodeConfig {
                max_links: 2,
                ..NodeConfig::default()
            },
            connect: ConnectConfig::default(),
            policy: ClientPolicy::KeepOpen,
            response_timeout: Duration::from_secs(10),
            correlate_hl7: false,
            retries: 0,
            retry_backoff: Backoff::IMMEDIATE,
        }
    }
}

/// Counters of a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Connections established.
    pub connects: u64,
    /// Requests resent once because a reused link closed before any reply byte.
    pub resends: u64,
    /// Replies that did not match the request (HL7 correlation) and were dropped.
    pub unexpected_replies: u64,
    /// Requests answered.
    pub replies: u64,
    /// Frames received on an idle link with a keep-alive message configured
    /// (replies to the keep-alive; not counted as unexpected).
    pub keepalive_replies: u64,
    /// Requests sent again under `retries` (at-least-once).
    pub retries: u64,
}

enum Outcome {
    Reply,
    CommitAck,
    Nak,
    Closed { reason: CloseReason, received: u64 },
}

/// A client that sends a request and waits for its reply.
///
/// With [`ClientPolicy::KeepOpen`], when a reused link turns out closed after the
/// request was written and before any byte of the reply arrived (a
/// close-after-reply server whose close crossed our write), the request is sent
/// again on a new link, once. A reply that had started arriving is never resent:
/// that is [`RequestError::IncompleteResponse`].
pub struct Client {
    node: Node,
    addr: SocketAddr,
    cfg: ClientConfig,
    link: Option<LinkId>,
    answered_on_link: u64,
    last_close: Option<CloseReason>,
    last_peer_reason: Option<CloseReason>,
    stats: ClientStats,
    /// A server can send unexpected frames at will: one warning per interval.
    unexpected_warning: crate::ratelimit::RateLimit,
    /// The at-least-once engine (the relay's), window one: the request in
    /// flight, its attempts, whether it is answered or failed.
    request: Deliveries,
    /// The last TLS handshake and failure, for callers that report them.
    #[cfg(feature = "tls")]
    tls: TlsNotes,
}

/// The last TLS handshake and TLS failure of a client's links, kept until
/// taken (one of each: a client has one link at a time).
#[cfg(feature = "tls")]
#[derive(Debug, Default)]
struct TlsNotes {
    handshake: Option<(SocketAddr, crate::tls::Handshake)>,
    error: Option<crate::tls::TlsError>,
}

#[cfg(feature = "tls")]
impl TlsNotes {
    /// Keeps what a TLS event says (other events: nothing).
    fn note(&mut self, ev: &Event<'_>) {
        match ev {
            Event::TlsEstablished {
                peer, handshake, ..
            } => self.handshake = Some((*peer, (*handshake).clone())),
            Event::TlsFailed { error, .. } => self.error = Some((*error).clone()),
            _ => {}
        }
    }
}

/// Dropping a client closes its link gracefully ([`Client::close_link`]):
/// a mooring link says CLOSE, a TLS link sends `close_notify`, so that the
/// server sees a clean end rather than a truncated stream. One non-blocking
/// write, as for any local close: dropping never waits on the peer.
impl Drop for Client {
    fn drop(&mut self) {
        self.close_link();
    }
}

impl Client {
    /// A client for the server at `addr`. Connects lazily, on the first request.
    pub fn new(addr: SocketAddr, cfg: ClientConfig) -> Result<Client, SetupError> {
        crate::config::nonzero_time(cfg.response_timeout, "response_timeout")?;
        cfg.connect.validate()?;
        Ok(Client {
            node: Node::new(cfg.node.clone())?,
            addr,
            link: None,
            answered_on_link: 0,
            last_close: None,
            last_peer_reason: None,
            stats: ClientStats::default(),
            unexpected_warning: crate::ratelimit::RateLimit::default(),
            request: Deliveries::new(1, 1, cfg.retries),
            cfg,
            #[cfg(feature = "tls")]
            tls: TlsNotes::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// TLS: the server's address and what the last handshake negotiated, once
    /// per handshake (`None` until the next one completes).
    #[cfg(feature = "tls")]
    pub fn take_tls_handshake(&mut self) -> Option<(SocketAddr, crate::tls::Handshake)> {
        self.tls.handshake.take()
    }

    /// TLS: why the last link failed for a TLS reason (its close reason is the
    /// matching `Tls...`), with rustls's text; once per failure.
    #[cfg(feature = "tls")]
    pub fn take_tls_error(&mut self) -> Option<crate::tls::TlsError> {
        self.tls.error.take()
    }

    /// The underlying node (for stats, or to poll it while idle).
    pub fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    /// True while a link is open.
    pub fn is_connected(&self) -> bool {
        self.link.is_some_and(|l| self.node.is_open(l))
    }

    /// Sends `msg` and waits up to the configured response timeout for its reply.
    pub fn request(&mut self, msg: &[u8]) -> Result<&[u8], RequestError> {
        self.request_within(msg, self.cfg.response_timeout)
    }

    /// Sends `msg` and waits up to `timeout` for its reply. The reply borrows the
    /// client's receive buffer until the next call.
    pub fn request_within(&mut self, msg: &[u8], timeout: Duration) -> Result<&[u8], RequestError> {
        if timeout.is_zero() {
            return Err(RequestError::ResponseTimeout);
        }
        if msg.len() > self.cfg.node.max_frame {
            return Err(RequestError::FrameTooLarge);
        }
        // One request at a time: whatever an earlier call left (it returned
        // early) is forgotten.
        self.request.clear();
        let Ok(id) = self.request.push() else {
            // Unreachable: emptied above, room for one.
            return Err(RequestError::Closed(CloseReason::Io));
        };
        loop {
            let link = self.ensure_link()?;
            let reused = self.answered_on_link > 0;
            match self.node.send_request(link, msg, timeout) {
                Ok(()) => self.request.handle_written(id),
                Err(SendError::FrameTooLarge | SendError::TxFull) => {
                    return Err(RequestError::FrameTooLarge)
                }
                Err(SendError::Unframeable) => return Err(RequestError::Unframeable),
                // (send_request never reports NoMessage; it is forward's.)
                Err(SendError::NotOpen | SendError::NoMessage) => {
                    self.link = None;
                    continue;
                }
            }
            let outcome = self.await_reply(link, msg, timeout)?;
            if !matches!(outcome, Outcome::Closed { .. }) {
                // Answered (a NAK too): the request leaves the engine.
                self.request.handle_reply();
            }
            match outcome {
                Outcome::Reply => {
                    self.stats.replies += 1;
                    self.answered_on_link += 1;
                    if self.cfg.policy == ClientPolicy::ClosePerMessage {
                        // Close without draining: the reply stays readable until the
                        // next call; the Closed event is drained by the next request.
                        if let Some(l) = self.link.take() {
                            self.node.close(l);
                        }
                        self.answered_on_link = 0;
                    }
                    return self
                        .node
                        .last_message()
                        .ok_or(RequestError::Closed(CloseReason::Io));
                }
                Outcome::CommitAck => {
                    self.stats.replies += 1;
                    self.answered_on_link += 1;
                    return Ok(crate::frame::MLLP_ACK);
                }
                Outcome::Nak => {
                    self.answered_on_link += 1;
                    return Err(RequestError::Nak);
                }
                Outcome::Closed { reason, received } => {
                    self.link = None;
                    if self.request_lost(id, reason, received, reused) {
                        continue;
                    }
                    return Err(match reason {
                        CloseReason::ResponseTimeout => RequestError::ResponseTimeout,
                        CloseReason::WriteTimeout => RequestError::WriteTimeout,
                        CloseReason::FrameTooLarge => RequestError::FrameTooLarge,
                        r if r.is_peer_side() => RequestError::IncompleteResponse {
                            received: received as usize,
                            reason: r,
                        },
                        r => RequestError::Closed(r),
                    });
                }
            }
        }
    }

    /// The request's link closed with `reason` before its reply
    /// (`received` bytes of one had come; `reused`: the link had answered
    /// earlier requests). The engine decides whether it is sent again; a
    /// retry first waits its backoff. True: send it again.
    fn request_lost(
        &mut self,
        id: MsgId,
        reason: CloseReason,
        received: u64,
        reused: bool,
    ) -> bool {
        // A reused link the peer closed before any reply byte: its close
        // crossed our write, and the request was not read.
        let crossed = received == 0 && reused && reason.is_peer_side();
        // At-least-once: otherwise, a request the peer may have processed is
        // in doubt; anything else a resend cannot fix.
        let in_doubt = reason.is_peer_side()
            || matches!(
                reason,
                CloseReason::ResponseTimeout | CloseReason::WriteTimeout
            );
        let loss = if crossed {
            Loss::Unread
        } else if in_doubt {
            Loss::InDoubt
        } else {
            Loss::Fatal
        };
        let d = self.request.handle_loss(loss);
        if d.unread > 0 {
            log::debug!("reused link closed before any reply byte ({reason}); resending once");
            self.stats.resends += 1;
            return true;
        }
        if d.resent == 0 {
            return false;
        }
        // The retry number, from 0: the attempts used before this one.
        let retried = self.request.attempts(id).unwrap_or(1).saturating_sub(1);
        let jitter = self.node.jitter();
        let Some(wait) = self.cfg.retry_backoff.delay(retried, jitter) else {
            // The backoff's own attempt limit: the request fails.
            self.request.fail_oldest();
            return false;
        };
        self.pause(wait);
        self.stats.retries += 1;
        log::debug!(
            "no reply ({reason}); retry {} of {}",
            retried + 1,
            self.cfg.retries
        );
        true
    }

    /// Keeps the idle link alive for `duration`: answers and sends heartbeats and
    /// keep-alive messages, and notices a close. A client that does not call this
    /// (or `request`) between requests answers no PING, so a peer with heartbeats
    /// on will close it after its heartbeat timeout. Returns the close reason if
    /// the link closed meanwhile; the next request then reconnects.
    pub fn maintain(&mut self, duration: Duration) -> Option<CloseReason> {
        let start = self.node.now();
        loop {
            let link = self.link?;
            let left = duration.saturating_sub(self.node.now() - start);
            if self.node.poll(Some(left)).is_err() {
                return None;
            }
            while let Some(ev) = self.node.next_event() {
                #[cfg(feature = "tls")]
                self.tls.note(&ev);
                match ev {
                    Event::Closed {
                        link: l,
                        reason,
                        peer_reason,
                        ..
                    } if l == link => {
                        self.link = None;
                        self.answered_on_link = 0;
                        self.note_close(reason, peer_reason);
                        return Some(reason);
                    }
                    Event::Message { link: l, .. } if l == link => self.idle_message(),
                    _ => {}
                }
            }
            if left.is_zero() {
                return None;
            }
        }
    }

    /// A frame arrived while no request was waiting: a keep-alive's reply when a
    /// keep-alive message is configured, otherwise unexpected.
    fn idle_message(&mut self) {
        if self.cfg.connect.liveness.keepalive.is_some() {
            self.stats.keepalive_replies += 1;
        } else {
            self.stats.unexpected_replies += 1;
            let now = self.node.now();
            crate::ratelimit::warn_limited!(
                self.unexpected_warning,
                now,
                "unexpected message on an idle client link"
            );
        }
    }

    /// Why the client's last link closed (a resend or reconnect follows some).
    pub fn last_close(&self) -> Option<CloseReason> {
        self.last_close
    }

    /// Mooring protocol: the reason the peer's CLOSE message gave when the last
    /// link closed, if it sent one (its claim; [`Client::last_close`] is then
    /// `PeerClosed`).
    pub fn last_peer_reason(&self) -> Option<CloseReason> {
        self.last_peer_reason
    }

    fn note_close(&mut self, reason: CloseReason, peer_reason: Option<CloseReason>) {
        self.last_close = Some(reason);
        self.last_peer_reason = peer_reason;
    }

    /// Closes the link (a keep-open client reconnects on the next request).
    pub fn close_link(&mut self) {
        if let Some(l) = self.link.take() {
            self.node.close(l);
        }
        self.answered_on_link = 0;
        self.drain_other_events();
    }

    /// Processes what is pending without waiting: notices a close the server sent.
    /// Waits `delay` before a retry, serving the node meanwhile.
    fn pause(&mut self, delay: Duration) {
        let start = self.node.now();
        loop {
            let left = delay.saturating_sub(self.node.now() - start);
            if left.is_zero() || self.node.poll(Some(left)).is_err() {
                return;
            }
            self.drain_other_events();
        }
    }

    fn drain_other_events(&mut self) {
        let _ = self.node.poll(Some(Duration::ZERO));
        while let Some(ev) = self.node.next_event() {
            #[cfg(feature = "tls")]
            self.tls.note(&ev);
            match ev {
                Event::Closed {
                    link,
                    reason,
                    peer_reason,
                    ..
                } if Some(link) == self.link => {
                    log::debug!("link closed while idle: {reason}");
                    self.link = None;
                    self.note_close(reason, peer_reason);
                }
                Event::Message { link, .. } if Some(link) == self.link => self.idle_message(),
                _ => {}
            }
        }
    }

    fn ensure_link(&mut self) -> Result<LinkId, RequestError> {
        // A close the server sent since the last request shows up here, before we
        // write into a dead link.
        self.drain_other_events();
        if let Some(l) = self.link {
            if self.node.is_open(l) {
                return Ok(l);
            }
            self.link = None;
        }
        self.answered_on_link = 0;
        let link = match self.node.connect(self.addr, &self.cfg.connect) {
            Ok(l) => l,
            Err(SetupError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(RequestError::ConnectionRefused)
            }
            Err(SetupError::Io(e)) => return Err(RequestError::Io(e.kind())),
            Err(_) => return Err(RequestError::Closed(CloseReason::Io)),
        };
        // Bounded: the link's connect timer closes it at the latest.
        loop {
            self.node
                .poll(Some(self.cfg.connect.connect_timeout))
                .map_err(|e| RequestError::Io(e.kind()))?;
            while let Some(ev) = self.node.next_event() {
                #[cfg(feature = "tls")]
                self.tls.note(&ev);
                match ev {
                    Event::Connected { link: l, .. } if l == link => {
                        self.link = Some(link);
                        self.stats.connects += 1;
                        return Ok(link);
                    }
                    Event::Closed {
                        link: l,
                        reason,
                        peer_reason,
                        ..
                    } if l == link => {
                        self.note_close(reason, peer_reason);
                        return Err(match reason {
                            CloseReason::ConnectionRefused => RequestError::ConnectionRefused,
                            CloseReason::ConnectTimeout => RequestError::ConnectTimeout,
                            r => RequestError::Closed(r),
                        });
                    }
                    _ => {}
                }
            }
        }
    }

    fn await_reply(
        &mut self,
        link: LinkId,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<Outcome, RequestError> {
        // The link's response timer bounds this loop; the extra margin only guards
        // against a clock that misbehaves.
        let deadline = self.node.now() + timeout;
        let give_up = deadline + self.cfg.node.write_timeout + Duration::from_secs(1);
        loop {
            if self.node.now() > give_up {
                self.close_link();
                return Err(RequestError::ResponseTimeout);
            }
            self.node
                .poll(Some(timeout))
                .map_err(|e| RequestError::Io(e.kind()))?;
            let now = self.node.now();
            while let Some(ev) = self.node.next_event() {
                #[cfg(feature = "tls")]
                self.tls.note(&ev);
                match ev {
                    Event::Message { link: l, payload } if l == link => {
                        if self.cfg.correlate_hl7 && !crate::hl7::reply_matches(msg, payload) {
                            self.stats.unexpected_replies += 1;
                            // A peer that repeats old ACKs sends many: one line per
                            // interval, with the count of the ones held back.
                            // The text is built only for a line that is written.
                            crate::ratelimit::warn_limited!(
                                self.unexpected_warning,
                                now,
                                "unexpected reply (its MSA-2 is {}, not this request's MSH-10)",
                                crate::hl7::acked_control_id(payload)
                                    .map_or("none".into(), String::from_utf8_lossy)
                            );
                            // The frame stopped the link's response timer: the request's
                            // own deadline still holds.
                            self.node.keep_awaiting_reply(link, deadline);
                            continue;
                        }
                        return Ok(Outcome::Reply);
                    }
                    Event::CommitAck { link: l, accepted } if l == link => {
                        return Ok(if accepted {
                            Outcome::CommitAck
                        } else {
                            Outcome::Nak
                        });
                    }
                    Event::Closed {
                        link: l,
                        reason,
                        stats,
                        peer_reason,
                        ..
                    } if l == link => {
                        self.note_close(reason, peer_reason);
                        return Ok(Outcome::Closed {
                            reason,
                            received: stats.partial_reply_bytes,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}
