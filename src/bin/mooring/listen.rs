//! `mooring listen`: one [`Node`] with one listener that answers every message
//! (HL7 ACK, echo or nothing) and reports every event as a line.
//!
//! The serving part, [`Responder`], is shared with `mooring demo`, so the demo
//! exercises exactly what operators run.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mooring::hl7;
use mooring::metrics::{AckCounts, MetricsServer, Snapshot};
use mooring::session::{Overflow, SessionConfig, SessionError};
use mooring::{
    CloseReason, Event, LinkId, ListenConfig, ListenerId, Node, NodeConfig, SendError,
    ServerPolicy, SessionId, SessionNote, SetupError,
};

use crate::args::{ListenOpts, ReplyMode, ServiceOpts};
use crate::line::Line;
use crate::service::Service;

/// Room for an ACK beyond `max_frame`: an ACK copies fields of the MSH it answers,
/// so it can be a little longer than a tiny message, never much longer than a big one.
const ACK_HEADROOM: usize = 512;

/// Spare link slots beyond `--max-conns`, at most. A link that closed stays in its
/// slot until its `Closed` event is pulled, and a stale link being replaced is
/// still in its slot while the newcomer is admitted; without spares those
/// newcomers would be refused although the listener has room.
const MAX_SPARE_SLOTS: usize = 64;

/// Something the responder saw, for the caller to report.
#[derive(Debug)]
pub enum Seen<'a> {
    /// A connection was accepted.
    Connected {
        /// Who.
        peer: SocketAddr,
    },
    /// A message arrived (and was answered as configured).
    Message {
        /// From whom.
        peer: SocketAddr,
        /// Payload size.
        bytes: usize,
        /// MSH-10 when the payload is HL7.
        id: Option<&'a [u8]>,
    },
    /// An MLLP release 2 commit ACK or NAK arrived.
    CommitAck {
        /// From whom.
        peer: SocketAddr,
        /// ACK (true) or NAK.
        accepted: bool,
    },
    /// A link closed.
    Closed {
        /// Whose.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// The reason the peer's CLOSE message claimed (`peer_reason=`).
        peer_reason: Option<CloseReason>,
        /// A TLS failure's text (`detail=`): the alert or certificate problem.
        detail: Option<&'a str>,
    },
    /// A link's TLS handshake completed.
    #[cfg(feature = "tls")]
    Tls {
        /// Whose.
        peer: SocketAddr,
        /// Version, suite and the peer's identity.
        handshake: &'a mooring::tls::Handshake,
    },
    /// A connection was refused by policy.
    Rejected {
        /// Who tried.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// A message of a reliable session arrived (in order, exactly once) and was
    /// answered through the session.
    SessionMessage {
        /// The session's number in this process (from 1).
        session: u64,
        /// Payload size.
        bytes: usize,
        /// MSH-10 when the payload is HL7.
        id: Option<&'a [u8]>,
    },
    /// Something happened to a reliable session.
    Session {
        /// The session's number in this process (from 1).
        session: u64,
        /// What.
        note: SessionNote,
    },
}

impl Seen<'_> {
    /// Appends this event's `event=...` keys to `line` (the format of `listen`).
    pub fn append_to(&self, line: Line) -> Line {
        match *self {
            Seen::Connected { peer } => line.kv("event", "connected").kv("peer", peer),
            Seen::Message { peer, bytes, id } => line
                .kv("event", "message")
                .kv("peer", peer)
                .kv("bytes", bytes)
                .wire("id", id),
            Seen::CommitAck { peer, accepted } => line
                .kv("event", "commit_ack")
                .kv("peer", peer)
                .kv("accepted", accepted),
            Seen::Closed {
                peer,
                reason,
                peer_reason,
                detail,
            } => line
                .kv("event", "closed")
                .kv("peer", peer)
                .kv("reason", reason)
                .kv_opt("peer_reason", peer_reason)
                .wire("detail", detail.map(str::as_bytes)),
            #[cfg(feature = "tls")]
            Seen::Tls { peer, handshake } => crate::line::tls(line, peer, handshake),
            Seen::Rejected { peer, reason } => line
                .kv("event", "rejected")
                .kv("peer", peer)
                .kv("reason", reason),
            Seen::SessionMessage { session, bytes, id } => line
                .kv("event", "session_message")
                .kv("session", session)
                .kv("bytes", bytes)
                .wire("id", id),
            Seen::Session { session, ref note } => {
                crate::line::session_note(line.kv("event", "session").kv("session", session), note)
            }
        }
    }
}

/// A node with one listener that answers each message as configured.
pub struct Responder {
    node: Node,
    listener: ListenerId,
    reply: ReplyMode,
    close_after_reply: bool,
    /// Reply buffer, allocated once: every reply is built here, then queued.
    buf: Vec<u8>,
    /// Peer of each link slot: `Event::Message` carries only the link.
    peers: Vec<SocketAddr>,
    /// The link most recently connected (the demo cuts it).
    last_link: Option<LinkId>,
    /// Number of each live session, for the lines.
    numbers: HashMap<SessionId, u64>,
    /// Last session number given.
    last_number: u64,
    /// Per link slot: a reply refused with `TxFull` (only a large reply can be:
    /// see `Node`'s reply backpressure), sent again on the link's `Writable`. The
    /// node delivers nothing more from that link until then, so one per link
    /// suffices. The bytes' capacity is kept for the slot's next stall.
    stalled: Vec<(Option<LinkId>, Vec<u8>)>,
    /// MSH-7 of the ACKs, formatted once per second.
    stamp: hl7::TimestampCache,
    /// Message events are not reported (`--quiet`): nothing is computed for them.
    quiet_messages: bool,
    /// ACKs built, by code (`--reply hl7-ack`), for the metrics.
    acks: AckCounts,
    /// Per link slot: the text of a TLS failure, for the `Closed` that follows.
    tls_detail: Vec<Option<String>>,
}

impl Responder {
    /// Builds the node and binds the listener; nothing is accepted until
    /// [`Responder::turn`].
    pub fn bind(o: &ListenOpts) -> Result<Responder, SetupError> {
        let spare = o.max_conns.clamp(1, MAX_SPARE_SLOTS);
        let node_cfg = NodeConfig {
            max_links: o.max_conns.saturating_add(spare),
            framing: o.framing,
            max_frame: o.max_frame,
            mllp_commit_ack: o.mllp_commit_ack,
            write_timeout: o.write_timeout,
            // Connected sessions plus as many disconnected within their window.
            max_sessions: if o.session.is_some() {
                o.max_conns.saturating_mul(2)
            } else {
                0
            },
            ..NodeConfig::default()
        };
        let listen_cfg = ListenConfig {
            max_connections: o.max_conns,
            idle_timeout: o.idle_timeout,
            stale_recovery: o.stale_recovery,
            allow: o.allow.clone(),
            max_connections_per_ip: o.max_conns_per_ip,
            policy: if o.close_after_reply {
                ServerPolicy::CloseAfterReply
            } else {
                ServerPolicy::KeepOpen
            },
            liveness: o.liveness.clone(),
            // The node takes a session's message only with room in its replay
            // queue for a reply as large; a reply larger still (an ACK quoting a
            // huge MSH-10) ends the session as `QueueFull`: never stored aside.
            session: o.session.map(|s| SessionConfig {
                overflow: Overflow::CloseSession,
                reserve_reply: true,
                ..s
            }),
            max_sessions_per_ip: o.max_sessions_per_ip,
            #[cfg(feature = "tls")]
            tls: o.tls.clone(),
        };
        // Validate before allocating the reply buffer from `max_frame`.
        node_cfg.validate()?;
        listen_cfg.validate(&node_cfg)?;
        let mut node = Node::new(node_cfg)?;
        let listener = node.listen(o.bind, listen_cfg)?;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(Responder {
            peers: vec![unspecified; node.config().max_links],
            stalled: vec![(None, Vec::new()); node.config().max_links],
            tls_detail: vec![None; node.config().max_links],
            buf: vec![0; o.max_frame.saturating_add(ACK_HEADROOM)],
            node,
            listener,
            reply: o.reply,
            close_after_reply: o.close_after_reply,
            last_link: None,
            numbers: HashMap::new(),
            last_number: 0,
            stamp: hl7::TimestampCache::new(),
            quiet_messages: false,
            acks: AckCounts::default(),
        })
    }

    /// Stops reporting `Seen::Message` and `Seen::SessionMessage` (`--quiet`),
    /// so that nothing is computed for lines nobody prints.
    pub fn quiet_messages(&mut self) {
        self.quiet_messages = true;
    }

    /// Closes the link most recently connected, if it is still open (the demo's
    /// cut of a session's link). True when it closed one.
    pub fn close_last_link(&mut self) -> bool {
        match self.last_link.take() {
            Some(link) if self.node.is_open(link) => {
                self.node.close(link);
                true
            }
            _ => false,
        }
    }

    /// Queues a reply on its session. A full replay queue has ended the session
    /// (`QueueFull`, reported as its `ended` event); a reply that can never fit
    /// (over `max_frame`) ends it too, rather than going missing.
    fn session_reply(&mut self, session: SessionId, len: usize) {
        match self.node.session_send(session, &self.buf[..len]) {
            Ok(_) | Err(SessionError::Ended) => {}
            Err(SessionError::QueueFull) => {
                log::warn!("session reply refused: replay queue full, the session ends");
            }
            Err(SessionError::TooLarge) => {
                log::warn!("session reply larger than --max-frame: closing the session");
                self.node.close_session(session);
            }
            Err(SessionError::Unframeable) => {
                log::warn!(
                    "session reply holds a byte the framing cannot carry: closing the session"
                );
                self.node.close_session(session);
            }
            // A refusal added later: the reply cannot go, so neither may the session.
            Err(e) => {
                log::warn!("session reply refused ({e:?}): closing the session");
                self.node.close_session(session);
            }
        }
    }

    /// Sends the reply in `buf[..len]` on `link`; one refused for room is kept
    /// for the link's `Writable`, never dropped.
    fn reply(&mut self, link: LinkId, peer: SocketAddr, len: usize) {
        let sent = self.node.send(link, &self.buf[..len]);
        sent_or_stalled(sent, &mut self.stalled, link, peer, &self.buf[..len]);
    }

    /// Echoes the message just delivered on `link`, copied once from the receive
    /// buffer to the transmit buffer; one refused for room is kept like any reply.
    fn echo(&mut self, link: LinkId, peer: SocketAddr) {
        match self.node.forward(link) {
            Ok(()) => {}
            Err(SendError::TxFull) => {
                let slot = self.stalled.get_mut(link.slot() as usize);
                if let (Some((id, bytes)), Some(msg)) = (slot, self.node.last_message()) {
                    *id = Some(link);
                    bytes.clear();
                    bytes.extend_from_slice(msg);
                }
            }
            Err(e) => log::warn!("reply to {peer} not sent: {e}"),
        }
    }

    /// `link` has room again: sends its stalled reply, if any (kept again if
    /// refused again).
    fn resend_stalled(&mut self, link: LinkId) {
        let Some((id, bytes)) = self.stalled.get_mut(link.slot() as usize) else {
            return;
        };
        if *id != Some(link) {
            return;
        }
        match self.node.send(link, bytes) {
            Err(SendError::TxFull) => {}
            res => {
                if let Err(e) = res {
                    log::warn!("reply on link {} not sent: {e}", link.slot());
                }
                *id = None;
                bytes.clear();
            }
        }
    }

    /// The node (for the service's signals and shutdown).
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Answers what is ready on the metrics server `m` (after a
    /// [`Responder::turn`]): the node's counters, the ACKs built (with
    /// `--reply hl7-ack`) and `detection_bound`.
    pub fn serve_metrics(&mut self, m: &mut MetricsServer, detection_bound: Option<Duration>) {
        let acks = (self.reply == ReplyMode::Hl7Ack).then_some(self.acks);
        m.serve(&mut self.node, &mut |node, server, buf| {
            Snapshot {
                detection_bound,
                acks_sent: acks,
                server: Some(server),
                ..Snapshot::of_node(node.stats())
            }
            .write(buf)
        });
    }

    /// Starts the metrics server on the node (`--metrics`).
    pub fn bind_metrics(&mut self, addr: SocketAddr) -> io::Result<MetricsServer> {
        crate::metrics::bind(&mut self.node, addr)
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.node
            .local_addr(self.listener)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Waits up to `timeout` for activity, then handles and reports every event.
    pub fn turn(&mut self, timeout: Duration, mut report: impl FnMut(&Seen<'_>)) -> io::Result<()> {
        self.node.poll(Some(timeout))?;
        // One clock read per batch of events, formatted at most once a second.
        let stamp = match self.reply {
            ReplyMode::Hl7Ack => *self.stamp.get(unix_secs()),
            _ => [b'0'; 14],
        };
        let (reply, quiet) = (self.reply, self.quiet_messages);
        loop {
            // Split the borrows: the event borrows the node, the reply goes to `buf`.
            let Responder {
                node,
                buf,
                peers,
                acks,
                tls_detail,
                ..
            } = self;
            let Some(ev) = node.next_event() else {
                return Ok(());
            };
            // What to do once the event (and its borrow of the node) is gone.
            let mut answer = None;
            let mut session_answer = None;
            let mut writable = None;
            match ev {
                Event::Connected { link, peer, .. } => {
                    if let Some(p) = peers.get_mut(link.slot() as usize) {
                        *p = peer;
                    }
                    self.last_link = Some(link);
                    report(&Seen::Connected { peer });
                }
                Event::SessionMessage { session, payload } => {
                    let n = number_of(&mut self.numbers, &mut self.last_number, session);
                    let msh = parse_for(reply, payload);
                    let len = build_reply(reply, payload, msh.as_ref(), &stamp, buf, acks)
                        .map(|answer| answer.built_len());
                    if !quiet {
                        report(&Seen::SessionMessage {
                            session: n,
                            bytes: payload.len(),
                            id: control_id(reply, payload, msh.as_ref()),
                        });
                    }
                    session_answer = len.map(|len| (session, len));
                }
                Event::Session { session, note } => {
                    let n = number_of(&mut self.numbers, &mut self.last_number, session);
                    report(&Seen::Session { session: n, note });
                    if let SessionNote::Ended(_) = note {
                        self.numbers.remove(&session);
                    }
                }
                Event::Message { link, payload } => {
                    let peer = peer_at(peers, link.slot());
                    let msh = parse_for(reply, payload);
                    let len = match reply {
                        // Sent once the event is gone, from the receive buffer.
                        ReplyMode::Echo => Some(Answer::Forward),
                        _ => build_reply(reply, payload, msh.as_ref(), &stamp, buf, acks),
                    };
                    if !quiet {
                        report(&Seen::Message {
                            peer,
                            bytes: payload.len(),
                            id: control_id(reply, payload, msh.as_ref()),
                        });
                    }
                    answer = Some((link, peer, len));
                }
                Event::CommitAck { link, accepted } => report(&Seen::CommitAck {
                    peer: peer_at(peers, link.slot()),
                    accepted,
                }),
                Event::Closed {
                    link,
                    peer,
                    reason,
                    peer_reason,
                    ..
                } => {
                    if let Some((id, _)) = self.stalled.get_mut(link.slot() as usize) {
                        if *id == Some(link) {
                            *id = None; // its peer sees the close, not a silent gap
                        }
                    }
                    let detail = tls_detail
                        .get_mut(link.slot() as usize)
                        .and_then(Option::take);
                    report(&Seen::Closed {
                        peer,
                        reason,
                        peer_reason,
                        detail: detail.as_deref(),
                    })
                }
                #[cfg(feature = "tls")]
                Event::TlsEstablished {
                    peer, handshake, ..
                } => report(&Seen::Tls { peer, handshake }),
                // Its text goes on the `Closed` line that follows.
                #[cfg(feature = "tls")]
                Event::TlsFailed { link, error, .. } => {
                    if let Some(d) = tls_detail.get_mut(link.slot() as usize) {
                        *d = Some(error.detail.clone());
                    }
                }
                Event::Rejected { peer, reason, .. } => report(&Seen::Rejected { peer, reason }),
                // A stalled reply goes out (a session's replies wait in its
                // replay queue).
                Event::Writable { link } => writable = Some(link),
                _ => {}
            }
            // First, as an ACK borrows the reply buffer (one event: one of these).
            if let Some((link, peer, len)) = answer {
                match len {
                    Some(Answer::Built(n)) => self.reply(link, peer, n),
                    Some(Answer::Ack(ack)) => {
                        let sent = self.node.send_ack(link, ack);
                        sent_or_stalled(sent, &mut self.stalled, link, peer, ack.as_bytes());
                    }
                    Some(Answer::Forward) => self.echo(link, peer),
                    // Close-after-reply with no reply: the message is the whole exchange.
                    None if self.close_after_reply => self.node.close(link),
                    None => {}
                }
            }
            if let Some((session, len)) = session_answer {
                self.session_reply(session, len);
            }
            if let Some(link) = writable {
                self.resend_stalled(link);
            }
        }
    }
}

/// The number of `session` in `numbers`, given (after `last`) at first sight.
fn number_of(numbers: &mut HashMap<SessionId, u64>, last: &mut u64, session: SessionId) -> u64 {
    let next = *last + 1;
    let n = *numbers.entry(session).or_insert(next);
    if n == next {
        *last = next;
    }
    n
}

/// The peer recorded for a link slot (the unspecified address if none: a slot
/// always has one once `Connected` was seen).
fn peer_at(peers: &[SocketAddr], slot: u32) -> SocketAddr {
    peers
        .get(slot as usize)
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// How a message is answered once its event is gone.
enum Answer<'b> {
    /// The first `n` bytes of the reply buffer.
    Built(usize),
    /// An ACK in the reply buffer ([`Node::send_ack`]: no scan when plain).
    Ack(hl7::Ack<'b>),
    /// The message itself ([`Node::forward`]: no copy into the reply buffer).
    Forward,
}

impl Answer<'_> {
    /// The length of a reply in the reply buffer (0 for `Forward`).
    fn built_len(&self) -> usize {
        match self {
            Answer::Built(n) => *n,
            Answer::Ack(ack) => ack.as_bytes().len(),
            Answer::Forward => 0,
        }
    }
}

/// What a reply's send came to: a reply refused for room is kept (`bytes`) in
/// `stalled` for the link's `Writable`, never dropped; another refusal is
/// logged.
fn sent_or_stalled(
    sent: Result<(), SendError>,
    stalled: &mut [(Option<LinkId>, Vec<u8>)],
    link: LinkId,
    peer: SocketAddr,
    bytes: &[u8],
) {
    match sent {
        Ok(()) => {}
        Err(SendError::TxFull) => {
            if let Some((id, kept)) = stalled.get_mut(link.slot() as usize) {
                *id = Some(link);
                kept.clear();
                kept.extend_from_slice(bytes);
            }
        }
        Err(e) => log::warn!("reply to {peer} not sent: {e}"),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The MSH of `payload` when the reply needs it (`hl7-ack`), parsed once for
/// the ACK and the event line.
fn parse_for(mode: ReplyMode, payload: &[u8]) -> Option<hl7::Msh<'_>> {
    match mode {
        ReplyMode::Hl7Ack => hl7::Msh::parse(payload),
        _ => None,
    }
}

/// MSH-10 for the event line: from the MSH already parsed for the ACK, else
/// parsed now (only when the line is printed).
fn control_id<'a>(
    mode: ReplyMode,
    payload: &'a [u8],
    msh: Option<&hl7::Msh<'a>>,
) -> Option<&'a [u8]> {
    match mode {
        ReplyMode::Hl7Ack => msh.and_then(hl7::Msh::control_id),
        _ => hl7::control_id(payload),
    }
}

/// Writes the reply to `payload` into `buf`; `None` for no reply. `msh` is
/// [`parse_for`] of it; `stamp` the ACK's MSH-7; an ACK built is counted in
/// `acks`.
fn build_reply<'b>(
    mode: ReplyMode,
    payload: &[u8],
    msh: Option<&hl7::Msh<'_>>,
    stamp: &[u8],
    buf: &'b mut [u8],
    acks: &mut AckCounts,
) -> Option<Answer<'b>> {
    match mode {
        ReplyMode::None => None,
        ReplyMode::Echo => {
            let dst = buf.get_mut(..payload.len())?;
            dst.copy_from_slice(payload);
            Some(Answer::Built(payload.len()))
        }
        ReplyMode::Hl7Ack => {
            let (code, ack) = hl7::build_ack_for_message(msh, stamp, buf);
            match ack {
                Some(_) => acks.count(code),
                None => log::warn!("ACK larger than the reply buffer: not sent"),
            }
            ack.map(Answer::Ack)
        }
    }
}

/// Runs `mooring listen` until SIGTERM or SIGINT (then a graceful shutdown:
/// the replies due are written, every link closes, `event=stopped`).
pub fn run(o: &ListenOpts, svc: &ServiceOpts) -> ExitCode {
    let mut responder = match Responder::bind(o) {
        Ok(r) => r,
        Err(SetupError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: --bind {}: {e}", o.bind);
            return ExitCode::from(1);
        }
    };
    let mut service = match Service::new(responder.node_mut(), svc) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot catch signals: {e}");
            return ExitCode::from(1);
        }
    };
    Line::new("event", "listening")
        .kv("addr", responder.local_addr())
        .print();
    crate::line::liveness(&o.liveness).print();
    let mut metrics = match o.metrics {
        Some(addr) => match responder.bind_metrics(addr) {
            Ok(m) => Some(m),
            Err(e) => return crate::metrics::bind_failed(addr, &e),
        },
        None => None,
    };
    let bound = o.liveness.detection_bound();
    service.ready();
    let quiet = o.quiet;
    if quiet {
        responder.quiet_messages();
    }
    let report = |seen: &Seen<'_>| {
        if quiet && matches!(seen, Seen::Message { .. } | Seen::SessionMessage { .. }) {
            return;
        }
        seen.append_to(Line::empty()).print();
    };
    loop {
        // Bounded wait: deadlines wake the node earlier; the bound only caps how
        // long the loop sleeps between watchdog and shutdown checks.
        let wait = service.max_wait(Duration::from_secs(1));
        if let Err(e) = responder.turn(wait, report) {
            eprintln!("error: poll failed: {e}");
            return ExitCode::from(1);
        }
        if let Some(m) = metrics.as_mut() {
            responder.serve_metrics(m, bound);
        }
        if service.after_turn(responder.node_mut()).is_some() {
            responder.node_mut().begin_shutdown();
        }
        let node = responder.node_mut();
        if service.is_stopping() && (node.is_drained() || service.expired()) {
            let drained = node.is_drained();
            node.close_all();
            // The last closes' lines.
            if let Err(e) = responder.turn(Duration::ZERO, report) {
                log::warn!("poll at shutdown: {e}");
            }
            service.stopped_line(drained).print();
            return ExitCode::SUCCESS;
        }
    }
}
