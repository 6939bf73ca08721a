//! `mooring listen`: one [`Node`] with one listener that answers every message
//! (HL7 ACK, echo or nothing) and reports every event as a line.
//!
//! The serving part, [`Responder`], is shared with `mooring demo`, so the demo
//! exercises exactly what operators run.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mooring::hl7::{self, AckCode};
use mooring::{
    CloseReason, Event, ListenConfig, ListenerId, Node, NodeConfig, ServerPolicy, SetupError,
};

use crate::args::{ListenOpts, ReplyMode};
use crate::line::Line;

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
    },
    /// A connection was refused by policy.
    Rejected {
        /// Who tried.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
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
            Seen::Closed { peer, reason } => line
                .kv("event", "closed")
                .kv("peer", peer)
                .kv("reason", reason),
            Seen::Rejected { peer, reason } => line
                .kv("event", "rejected")
                .kv("peer", peer)
                .kv("reason", reason),
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
            ..NodeConfig::default()
        };
        let listen_cfg = ListenConfig {
            max_connections: o.max_conns,
            idle_timeout: o.idle_timeout,
            stale_recovery: o.stale_recovery,
            allow: o.allow.clone(),
            policy: if o.close_after_reply {
                ServerPolicy::CloseAfterReply
            } else {
                ServerPolicy::KeepOpen
            },
            liveness: o.liveness,
            ..ListenConfig::default()
        };
        // Validate before allocating the reply buffer from `max_frame`.
        node_cfg.validate()?;
        listen_cfg.validate(&node_cfg)?;
        let mut node = Node::new(node_cfg)?;
        let listener = node.listen(o.bind, listen_cfg)?;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(Responder {
            peers: vec![unspecified; node.config().max_links],
            buf: vec![0; o.max_frame.saturating_add(ACK_HEADROOM)],
            node,
            listener,
            reply: o.reply,
            close_after_reply: o.close_after_reply,
        })
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
        loop {
            // Split the borrows: the event borrows the node, the reply goes to `buf`.
            let Responder {
                node, buf, peers, ..
            } = self;
            let Some(ev) = node.next_event() else {
                return Ok(());
            };
            // What to do once the event (and its borrow of the node) is gone.
            let mut answer = None;
            match ev {
                Event::Connected { link, peer, .. } => {
                    if let Some(p) = peers.get_mut(link.slot() as usize) {
                        *p = peer;
                    }
                    report(&Seen::Connected { peer });
                }
                Event::Message { link, payload } => {
                    let peer = peer_at(peers, link.slot());
                    let len = build_reply(self.reply, payload, buf);
                    report(&Seen::Message {
                        peer,
                        bytes: payload.len(),
                        id: hl7::control_id(payload),
                    });
                    answer = Some((link, peer, len));
                }
                Event::CommitAck { link, accepted } => report(&Seen::CommitAck {
                    peer: peer_at(peers, link.slot()),
                    accepted,
                }),
                Event::Closed { peer, reason, .. } => report(&Seen::Closed { peer, reason }),
                Event::Rejected { peer, reason, .. } => report(&Seen::Rejected { peer, reason }),
                // Writable: replies are small; `listen` runs no reliable sessions (yet).
                _ => {}
            }
            if let Some((link, peer, len)) = answer {
                match len {
                    Some(n) => {
                        if let Err(e) = self.node.send(link, &self.buf[..n]) {
                            log::warn!("reply to {peer} not sent: {e}");
                        }
                    }
                    // Close-after-reply with no reply: the message is the whole exchange.
                    None if self.close_after_reply => self.node.close(link),
                    None => {}
                }
            }
        }
    }
}

/// The peer recorded for a link slot (the unspecified address if none: a slot
/// always has one once `Connected` was seen).
fn peer_at(peers: &[SocketAddr], slot: u32) -> SocketAddr {
    peers
        .get(slot as usize)
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Writes the reply to `payload` into `buf`; `None` for no reply.
fn build_reply(mode: ReplyMode, payload: &[u8], buf: &mut [u8]) -> Option<usize> {
    match mode {
        ReplyMode::None => None,
        ReplyMode::Echo => {
            let dst = buf.get_mut(..payload.len())?;
            dst.copy_from_slice(payload);
            Some(payload.len())
        }
        ReplyMode::Hl7Ack => {
            let code = if hl7::is_hl7(payload) {
                AckCode::Accept
            } else {
                AckCode::Reject
            };
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut ts = [0u8; 14];
            let ts = hl7::timestamp_utc(secs, &mut ts);
            let n = hl7::build_ack(payload, code, ts, buf);
            if n.is_none() {
                log::warn!("ACK larger than the reply buffer: not sent");
            }
            n
        }
    }
}

/// Runs `mooring listen` until killed.
pub fn run(o: &ListenOpts) -> ExitCode {
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
    Line::new("event", "listening")
        .kv("addr", responder.local_addr())
        .print();
    crate::line::liveness(&o.liveness).print();
    let quiet = o.quiet;
    loop {
        // Bounded wait: deadlines wake the node earlier; the bound only caps how
        // long a signal-free process sleeps between checks.
        let res = responder.turn(Duration::from_secs(1), |seen| {
            if quiet && matches!(seen, Seen::Message { .. }) {
                return;
            }
            seen.append_to(Line::empty()).print();
        });
        if let Err(e) = res {
            eprintln!("error: poll failed: {e}");
            return ExitCode::from(1);
        }
    }
}
