//! What the node reports ([`Event`], [`NodeStats`]) and the step that turns
//! a ready link's bytes into its next event, one link at a time, in turn.

use super::*;
use crate::session::SessionEnds;

/// What happened, pulled with [`Node::next_event`]. New kinds may be added:
/// match with a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A link is open: accepted on `listener`, or an outbound connect completed.
    Connected {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// The listener that accepted it (`None` for outbound links).
        listener: Option<ListenerId>,
    },
    /// A frame arrived. `payload` borrows the receive buffer until the next call.
    Message {
        /// The link.
        link: LinkId,
        /// The frame's payload.
        payload: &'a [u8],
    },
    /// MLLP release 2 commit acknowledgement (only with `mllp_commit_ack`).
    CommitAck {
        /// The link.
        link: LinkId,
        /// True for ACK, false for NAK.
        accepted: bool,
    },
    /// `send` returned `TxFull` earlier; there is room again.
    Writable {
        /// The link.
        link: LinkId,
    },
    /// The link closed; its id is now stale.
    Closed {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// Its final counters.
        stats: LinkStats,
        /// Mooring protocol: the reason the peer gave in its CLOSE message, if
        /// any. The peer's claim, unverified: `reason` is then `PeerClosed`.
        peer_reason: Option<CloseReason>,
    },
    /// A link opened with [`crate::ConnectConfig::redial`] lost its connection
    /// and dials again by itself, keeping its id (reported instead of
    /// [`Event::Closed`]; see [`Node::connect`]). The link is not open until
    /// its next [`Event::Connected`]. Frames queued on the lost connection are
    /// not resent. Not pulled before the next attempt fails, it is replaced by
    /// that attempt's (`unsent_bytes` add up).
    Redialing {
        /// The link (its id stays valid).
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// Why the connection (or the last connect attempt) ended.
        reason: CloseReason,
        /// The lost connection's final counters.
        stats: LinkStats,
        /// The attempt that comes next, from 1 (back to 1 after a connect
        /// completes).
        attempt: u32,
        /// The wait before it ([`crate::ConnectConfig::backoff`], jittered).
        after: Duration,
        /// Bytes queued on the lost connection and never written: not sent.
        unsent_bytes: u64,
    },
    /// A message of a reliable session, in order and exactly once. `payload`
    /// borrows the receive buffer until the next call.
    SessionMessage {
        /// The session.
        session: SessionId,
        /// The application payload.
        payload: &'a [u8],
    },
    /// Something happened to a reliable session.
    Session {
        /// The session.
        session: SessionId,
        /// What happened.
        note: SessionNote,
    },
    /// A connection was refused by policy before it got a link.
    Rejected {
        /// The listener.
        listener: ListenerId,
        /// Who tried.
        peer: SocketAddr,
        /// `TooManyConnections`, `NotAllowed` or `TooManyConnectionsFromPeer`.
        reason: CloseReason,
    },
    /// TLS: the link's handshake completed (and its peer passed the
    /// listener's allow-list of identities). Frames sent before it waited for
    /// it. `handshake` borrows the link until the next call.
    #[cfg(feature = "tls")]
    TlsEstablished {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// The version, cipher suite and peer identity negotiated.
        handshake: &'a crate::tls::Handshake,
    },
    /// TLS: the link failed for a TLS reason; the link's [`Event::Closed`]
    /// follows, with the matching `Tls...` reason. `error` carries rustls's
    /// text (an alert received or sent, a certificate problem) and borrows the
    /// node until the next call.
    #[cfg(feature = "tls")]
    TlsFailed {
        /// The link.
        link: LinkId,
        /// The peer's address.
        peer: SocketAddr,
        /// The named reason and rustls's text.
        error: &'a crate::tls::TlsError,
    },
}

/// Entries of [`NodeStats::closes`]: one per close reason code, sized from the
/// `close_reasons!` table (entry 0, no reason, stays 0).
pub const CLOSE_CODES: usize = CloseReason::ALL.len() + 1;

/// Node-wide counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused: listener full or no free slot.
    pub rejected_too_many: u64,
    /// Connections refused: not on the allow-list.
    pub rejected_not_allowed: u64,
    /// Links replaced by stale recovery.
    pub stale_replaced: u64,
    /// Rejections not reported as events because the report queue was full.
    pub unreported_rejections: u64,
    /// Session resumes refused for a wrong token.
    pub bad_tokens: u64,
    /// Session events not reported because the report queue was full.
    pub unreported_session_events: u64,
    /// Times a link had to wait for a large buffer (backpressure).
    pub large_buffer_waits: u64,
    /// Reads into the node's burst buffer (`NodeConfig::read_burst`).
    pub burst_reads: u64,
    /// `accept` calls that failed (out of descriptors or memory, ...); the
    /// listener is retried (see [`ACCEPT_RETRY`]).
    pub accept_errors: u64,
    /// Retries of listeners whose `accept` had failed.
    pub accept_retries: u64,
    /// Connections refused: their address held `max_connections_per_ip` links.
    pub rejected_from_peer: u64,
    /// Session links closed with `SessionQueueFull` (a DATA refused for want of
    /// room for its reply).
    pub session_queue_full: u64,
    /// Disconnected sessions evicted to make room for a new one.
    pub sessions_evicted: u64,
    /// Links closed, by reason: entry `reason.code()` (see
    /// [`NodeStats::closes_for`]). Refused connections are not links: they
    /// are counted in the `rejected_*` fields.
    pub closes: [u64; CLOSE_CODES],
    /// Frames received on every link, open or closed (application messages
    /// and replies; with the mooring protocol also its control frames).
    pub frames_in: u64,
    /// Frames queued for sending on every link, open or closed.
    pub frames_out: u64,
    /// Bytes received on every link, open or closed.
    pub bytes_in: u64,
    /// Bytes written on every link, open or closed.
    pub bytes_out: u64,
    /// Links open or connecting now.
    pub links_open: u64,
    /// Sessions live now (not ended).
    pub sessions_live: u64,
    /// Sessions established on a link for the first time.
    pub sessions_started: u64,
    /// Sessions resumed on a new link after a lost one.
    pub sessions_resumed: u64,
    /// Sessions ended, by how (see [`crate::session::SessionEnd`]).
    pub sessions_ended: SessionEnds,
}

impl Default for NodeStats {
    // By hand: `closes` grows with the reason table, past what derived
    // `Default` of arrays covers.
    fn default() -> Self {
        NodeStats {
            accepted: 0,
            rejected_too_many: 0,
            rejected_not_allowed: 0,
            stale_replaced: 0,
            unreported_rejections: 0,
            bad_tokens: 0,
            unreported_session_events: 0,
            large_buffer_waits: 0,
            burst_reads: 0,
            accept_errors: 0,
            accept_retries: 0,
            rejected_from_peer: 0,
            session_queue_full: 0,
            sessions_evicted: 0,
            closes: [0; CLOSE_CODES],
            frames_in: 0,
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            links_open: 0,
            sessions_live: 0,
            sessions_started: 0,
            sessions_resumed: 0,
            sessions_ended: SessionEnds::default(),
        }
    }
}

impl NodeStats {
    /// Links closed for `reason`.
    pub fn closes_for(&self, reason: CloseReason) -> u64 {
        self.closes
            .get(reason.code() as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Counts a link that closed for `reason` with its final counters (once
    /// per link, off the per-message path: a link's own counters carry the
    /// traffic while it is open).
    pub(super) fn count_close(&mut self, reason: CloseReason, link: &LinkStats) {
        if let Some(c) = self.closes.get_mut(reason.code() as usize) {
            *c += 1;
        }
        self.add_traffic(link);
    }

    /// Adds a link's traffic to the node-wide totals.
    pub(super) fn add_traffic(&mut self, link: &LinkStats) {
        self.frames_in += link.frames_in;
        self.frames_out += link.frames_out;
        self.bytes_in += link.bytes_in;
        self.bytes_out += link.bytes_out;
    }
}

pub(super) struct Rejection {
    pub(super) listener: u32,
    pub(super) peer: SocketAddr,
    pub(super) reason: CloseReason,
}

/// A closed link's report, queued so its slot is free at once (a stale link's
/// replacement must not wait for the application to drain events).
pub(super) struct ClosedReport {
    pub(super) link: LinkId,
    pub(super) peer: SocketAddr,
    pub(super) reason: CloseReason,
    pub(super) stats: LinkStats,
    pub(super) peer_reason: Option<CloseReason>,
    /// TLS: the failure that closed it, reported first (`Event::TlsFailed`).
    #[cfg(feature = "tls")]
    pub(super) tls: Option<crate::tls::TlsError>,
}

/// The frame most recently returned as an event: consumed on the next call.
#[derive(Clone, Copy)]
pub(super) struct Delivered {
    pub(super) slot: u32,
    pub(super) gen: u32,
    pub(super) block: Block,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) consumed: usize,
}

pub(super) enum Step {
    Connected,
    Message(Delivered),
    SessionMessage(u32, Delivered),
    CommitAck(bool),
    Writable,
    Closed(CloseReason),
    Idle,
    #[cfg(feature = "tls")]
    TlsEstablished,
}

impl Node {
    /// Node-wide counters: a snapshot that adds up the open links' own
    /// counters (a walk over the slots: for stats, not per message).
    pub fn stats(&self) -> NodeStats {
        let t = self.sessions.stats();
        let mut st = NodeStats {
            bad_tokens: t.bad_tokens,
            sessions_evicted: t.evicted,
            session_queue_full: t.queue_full,
            unreported_session_events: t.unreported,
            sessions_live: t.live,
            sessions_started: t.started,
            sessions_resumed: t.resumed,
            sessions_ended: t.ended,
            ..self.stats
        };
        // A closed link still in its slot was counted when it closed.
        for s in self.slots.iter().filter(|s| s.used) {
            if !matches!(s.link.state(), crate::LinkState::Closed(_)) {
                st.links_open += 1;
                st.add_traffic(&s.link.stats());
            }
        }
        st
    }

    /// Frees the last delivered frame's bytes (once per event pulled: inline).
    #[inline(always)]
    pub(super) fn consume_delivered(&mut self) {
        if let Some(d) = self.delivered.take() {
            let s = &mut self.slots[d.slot as usize];
            if s.used && s.gen == d.gen && s.rx.block == Some(d.block) {
                self.bufs.consume(&mut s.rx, d.consumed);
                s.scan = 0;
                if s.rx.block.is_none() {
                    self.wake_waiting();
                }
            }
        }
    }

    /// The payload of the last [`Event::Message`] returned, still valid until the
    /// next call that takes `&mut self`.
    pub fn last_message(&self) -> Option<&[u8]> {
        self.delivered
            .map(|d| &self.bufs.block(d.block)[d.start..d.end])
    }

    /// The next event, or `None` when there is nothing more until the next
    /// [`Node::poll`]. Reading from sockets happens here, one link at a time, in
    /// turn.
    pub fn next_event(&mut self) -> Option<Event<'_>> {
        self.consume_delivered();
        // Reports first (one check for all of them); then the common case,
        // inline: the link whose turn it is has a frame the fast path takes
        // (`plain.rs`).
        if self.has_reports() {
            return self.next_report();
        }
        if let Some(&i) = self.ready.front() {
            if let Some(d) = self.plain_frame(i) {
                return Some(self.deliver(d));
            }
        }
        self.next_link_event()
    }

    /// The next report queued off the per-frame path (a rejection, a closed
    /// link, a redial or session note), or when none is left after all, the
    /// links' next event.
    #[inline(never)]
    fn next_report(&mut self) -> Option<Event<'_>> {
        if let Some(r) = self.rejected.pop_front() {
            return Some(Event::Rejected {
                listener: ListenerId(r.listener),
                peer: r.peer,
                reason: r.reason,
            });
        }
        #[cfg(feature = "tls")]
        if let Some(c) = self.closed.front_mut() {
            if let Some(e) = c.tls.take() {
                let (link, peer) = (c.link, c.peer);
                let error = self.tls.failed.insert(e);
                return Some(Event::TlsFailed { link, peer, error });
            }
        }
        if let Some(c) = self.closed.pop_front() {
            return Some(Event::Closed {
                link: c.link,
                peer: c.peer,
                reason: c.reason,
                stats: c.stats,
                peer_reason: c.peer_reason,
            });
        }
        if self.redials.has_notes() {
            if let Some(ev) = self.next_redial_note() {
                return Some(ev);
            }
        }
        if let Some(ev) = self.next_session_note() {
            return Some(ev);
        }
        self.next_link_event()
    }

    /// The links in turn, each stepped until it has something to report.
    #[inline(never)]
    fn next_link_event(&mut self) -> Option<Event<'_>> {
        loop {
            let &i = self.ready.front()?;
            let step = self.step(i);
            let s = &mut self.slots[i as usize];
            let id = s.id(i);
            match step {
                Step::Idle => {
                    s.in_ready = false;
                    self.ready.pop_front();
                    // Its step may have queued a report (a close, a redial):
                    // it goes out now, in this round of events, not after the
                    // next poll, whose timers could supersede it first.
                    if self.has_reports() {
                        return self.next_report();
                    }
                }
                Step::Connected => {
                    return Some(Event::Connected {
                        link: id,
                        peer: s.peer,
                        listener: s.listener.map(ListenerId),
                    })
                }
                Step::Message(d) => return Some(self.deliver(d)),
                Step::SessionMessage(idx, d) => {
                    self.take_turn();
                    self.delivered = Some(d);
                    let session = self.session_id_of(idx);
                    let payload = &self.bufs.block(d.block)[d.start..d.end];
                    return Some(Event::SessionMessage { session, payload });
                }
                Step::CommitAck(accepted) => return Some(Event::CommitAck { link: id, accepted }),
                Step::Writable => return Some(Event::Writable { link: id }),
                #[cfg(feature = "tls")]
                Step::TlsEstablished => {
                    if s.tls.as_ref().is_some_and(|t| t.link.handshake().is_some()) {
                        let handshake = self.slots[i as usize].tls.as_ref()?.link.handshake()?;
                        let peer = self.slots[i as usize].peer;
                        return Some(Event::TlsEstablished {
                            link: id,
                            peer,
                            handshake,
                        });
                    }
                }
                Step::Closed(reason) => {
                    let ev = Event::Closed {
                        link: id,
                        peer: s.peer,
                        reason,
                        stats: s.link.stats(),
                        peer_reason: s.link.peer_reason(),
                    };
                    s.used = false;
                    s.in_ready = false;
                    self.ready.pop_front();
                    self.free.push(i);
                    return Some(ev);
                }
            }
        }
    }

    /// True when a report waits ahead of the links' frames: a rejection, a
    /// closed link, a redial or session note. Once per event: inline.
    #[inline(always)]
    fn has_reports(&self) -> bool {
        !self.rejected.is_empty()
            || !self.closed.is_empty()
            || self.redials.has_notes()
            || self.sessions.has_notes()
    }

    /// The frame `d` of the link at the front of the ready queue, as the
    /// event that hands it out (once per message: inline).
    #[inline(always)]
    fn deliver(&mut self, d: Delivered) -> Event<'_> {
        self.take_turn();
        self.delivered = Some(d);
        let link = LinkId {
            slot: d.slot,
            gen: d.gen,
        };
        let payload = &self.bufs.block(d.block)[d.start..d.end];
        Event::Message { link, payload }
    }

    /// Round robin: after a frame, the next ready link gets a turn before this
    /// one's next frame (nothing to do when it is the only one). Once per
    /// message: inline.
    #[inline(always)]
    pub(super) fn take_turn(&mut self) {
        if self.ready.len() > 1 {
            if let Some(i) = self.ready.pop_front() {
                self.ready.push_back(i);
            }
        }
    }

    /// Advances one link until it has something to report.
    pub(super) fn step(&mut self, i: u32) -> Step {
        let now = self.now;
        loop {
            let s = &mut self.slots[i as usize];
            if !s.used {
                return Step::Idle; // closed and reported while queued for a turn
            }
            if s.pending & (PENDING_CONNECTED | PENDING_TLS) != 0 {
                if s.pending & PENDING_CONNECTED != 0 {
                    s.pending &= !PENDING_CONNECTED;
                    return Step::Connected;
                }
                s.pending &= !PENDING_TLS;
                #[cfg(feature = "tls")]
                return Step::TlsEstablished;
            }
            if s.link.may_read() {
                if self.holds_back(i, now) {
                    self.pause_rx(i);
                } else {
                    match self.decode(i, now) {
                        Some(step) => return step,
                        None => {
                            if self.fill(i, now) {
                                continue;
                            }
                        }
                    }
                }
            }
            let s = &mut self.slots[i as usize];
            if !s.used {
                return Step::Idle; // closed just now: its report is queued
            }
            if s.pending & PENDING_WRITABLE != 0 {
                s.pending &= !PENDING_WRITABLE;
                if let Some(idx) = s.session {
                    self.pump_session(idx); // the session, not the app, was waiting
                    continue;
                }
                return Step::Writable;
            }
            if let crate::LinkState::Closed(r) = s.link.state() {
                if self.redials.is_waiting(i) {
                    return Step::Idle; // reported as `Redialing`, not closed
                }
                return Step::Closed(r);
            }
            return Step::Idle;
        }
    }
}
