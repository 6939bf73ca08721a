//! The upstream side of the relay: one raw link (dialled and redialled with
//! backoff, one message in flight or a window of them (`window.rs`), replies
//! matched by MSA-2) or one mooring session (reopened with backoff when it
//! ends), both fed from the queue, to the active upstream (`failover.rs`).

use std::io;

use super::{LostReason, Relay, RelayEvent};
use crate::hl7::{self, AckCode};
use crate::ledger::{InDoubt, MsgId};
use crate::node::SessionNote;
use crate::session::{Backoff, Redial, SessionEnd, SessionError};
use crate::time::{earliest, Instant};
use crate::{CloseReason, LinkId, Node, SessionId, SetupError};

/// The raw upstream link.
pub(super) enum RawLink {
    /// Waiting to dial (when its [`Redial`] is due).
    Down,
    /// Connect in progress.
    Connecting(LinkId),
    /// Open.
    Up(LinkId),
}

/// A message written and awaiting its reply (raw: the oldest awaited; the
/// ones after it wait in the relay's window).
pub(super) struct InFlight {
    pub(super) seq: MsgId,
    pub(super) deadline: Instant,
}

pub(super) enum Upstream {
    Raw {
        link: RawLink,
        /// When to dial while down, and the attempt's number (never gives up).
        redial: Redial,
        in_flight: Option<InFlight>,
        /// Why we closed the link ourselves (reported instead of LocalClose).
        closing: Option<CloseReason>,
    },
    Session {
        id: Option<SessionId>,
        /// Messages handed to the current session and not yet credited.
        in_session: u64,
        connected: bool,
        /// Why the last connect failed (for the reconnecting event).
        last_reason: Option<CloseReason>,
        /// When to open the next session after one ended, and the attempt's
        /// number: sessions ended in a row without one established (never
        /// gives up; nothing scheduled: open one when there is none).
        reopen: Redial,
    },
}

impl Upstream {
    /// Nothing open yet; a raw link dials at `now`; both wait by `backoff`.
    pub(super) fn new(mooring: bool, backoff: Backoff, now: Instant) -> Self {
        let mut redial = Redial::new(backoff);
        if mooring {
            Upstream::Session {
                id: None,
                in_session: 0,
                connected: false,
                last_reason: None,
                reopen: redial,
            }
        } else {
            redial.restart(now);
            Upstream::Raw {
                link: RawLink::Down,
                redial,
                in_flight: None,
                closing: None,
            }
        }
    }

    /// The earliest timer: a redial, a reply deadline, a session reopening.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Upstream::Session { reopen, .. } => reopen.poll_timeout(),
            Upstream::Raw {
                link,
                redial,
                in_flight,
                ..
            } => {
                let redial = match link {
                    RawLink::Down => redial.poll_timeout(),
                    _ => None,
                };
                earliest(redial, in_flight.as_ref().map(|f| f.deadline))
            }
        }
    }
}

fn ack_code_of(reply: &[u8]) -> AckCode {
    match hl7::ack_code(reply) {
        Some(b"AE") | Some(b"CE") => AckCode::Error,
        Some(b"AR") | Some(b"CR") => AckCode::Reject,
        _ => AckCode::Accept,
    }
}

/// Messages of ours a session that ended had not confirmed delivered.
fn undelivered(how: SessionEnd) -> u64 {
    match how {
        SessionEnd::Lost { undelivered }
        | SessionEnd::Expired { undelivered }
        | SessionEnd::QueueFull { undelivered }
        | SessionEnd::Evicted { undelivered } => undelivered,
        SessionEnd::Closed => 0,
    }
}

fn lost(reason: LostReason, d: &InDoubt) -> RelayEvent<'static> {
    RelayEvent::UpstreamLost {
        reason,
        in_doubt: d.ids,
        resent: d.resent,
        failed: d.failed,
    }
}

impl Relay {
    pub(super) fn on_upstream_connected(&mut self, link: LinkId, out: &mut dyn FnMut(RelayEvent)) {
        if self.probe_connected(link, out) {
            return;
        }
        if let Upstream::Raw {
            link: state,
            redial,
            ..
        } = &mut self.up
        {
            if matches!(state, RawLink::Connecting(l) if *l == link) {
                *state = RawLink::Up(link);
                redial.reset();
                self.failover.link_up();
                out(RelayEvent::UpstreamConnected { session: None });
            }
        }
    }

    /// A frame from a link that is not a device's.
    pub(super) fn on_upstream_frame(
        &mut self,
        link: LinkId,
        payload: &[u8],
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if matches!(&self.up, Upstream::Raw { link: RawLink::Up(l), .. } if *l == link) {
            self.on_upstream_reply(payload, out);
        } else {
            log::debug!("frame from a stale upstream link dropped");
        }
    }

    /// A frame from the raw upstream.
    fn on_upstream_reply(&mut self, payload: &[u8], out: &mut dyn FnMut(RelayEvent)) {
        let Upstream::Raw { in_flight, .. } = &mut self.up else {
            return;
        };
        let awaited = in_flight.as_ref().map(|f| f.seq);
        let acked = hl7::acked_control_id(payload);
        let keepalive = acked.is_some() && acked == self.keepalive_id.as_deref();
        if let Some(seq) = awaited {
            let matches = match (self.queue.entry(seq).map(|e| e.id.as_slice()), acked) {
                (Some(sent), Some(got)) => sent == got,
                _ => true,
            };
            if keepalive && !matches {
                log::debug!("upstream answered the keep-alive message");
                return;
            }
            if matches {
                if let Some(e) = self.queue.entry(seq) {
                    e.code = ack_code_of(payload);
                }
                if let Upstream::Raw { in_flight, .. } = &mut self.up {
                    *in_flight = self.window.pop_front();
                }
                self.failover.acked();
                if self.queue.handle_reply().is_none() {
                    log::warn!("upstream reply with nothing awaited in the ledger");
                }
                return;
            }
        } else if keepalive {
            log::debug!("upstream answered the keep-alive message");
            return;
        }
        if let (Some(seq), Some(got)) = (awaited, acked) {
            if self.reply_out_of_order(seq, got, out) {
                return;
            }
        }
        out(RelayEvent::UnexpectedReply {
            id: acked,
            ack: hl7::ack_code(payload),
        });
    }

    /// Raw: schedules the next connect attempt; `failed`: the last attempt
    /// failed (counted for the failover: after a switch the next upstream is
    /// dialled at once).
    fn schedule_redial(
        &mut self,
        now: Instant,
        reason: Option<CloseReason>,
        failed: bool,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if self.count_attempt(failed, now, out) {
            if let Upstream::Raw { link, redial, .. } = &mut self.up {
                redial.restart(now);
                *link = RawLink::Down;
            }
            return;
        }
        let random = self.rng.next_u64();
        let Upstream::Raw { link, redial, .. } = &mut self.up else {
            return;
        };
        let (attempt, delay) = redial.schedule_or_max(now, random);
        *link = RawLink::Down;
        out(RelayEvent::UpstreamReconnecting {
            reason,
            attempt,
            delay,
        });
    }

    pub(super) fn on_upstream_closed(
        &mut self,
        link: LinkId,
        reason: CloseReason,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if self.probe_closed(link, now) {
            return;
        }
        match &mut self.up {
            Upstream::Raw {
                link: state,
                in_flight,
                closing,
                ..
            } => match *state {
                RawLink::Connecting(l) if l == link => {
                    self.schedule_redial(now, Some(reason), true, out)
                }
                RawLink::Up(l) if l == link => {
                    *in_flight = None;
                    self.window.clear();
                    let reason = closing.take().unwrap_or(reason);
                    let reason = if self.window.take_out_of_order() {
                        LostReason::ReplyOutOfOrder
                    } else {
                        LostReason::Link(reason)
                    };
                    let d = self.queue.handle_link_lost();
                    out(lost(reason, &d));
                    let failed = self.failover.link_lost_failed(d.ids.is_some());
                    self.schedule_redial(now, None, failed, out);
                }
                _ => {}
            },
            Upstream::Session {
                connected,
                last_reason,
                id,
                in_session,
                ..
            } => {
                if *connected {
                    *connected = false;
                    out(RelayEvent::UpstreamLinkLost {
                        reason,
                        unacked: id.map(|_| *in_session),
                    });
                } else {
                    *last_reason = Some(reason);
                }
            }
        }
    }

    pub(super) fn on_session_note(
        &mut self,
        session: SessionId,
        note: SessionNote,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        let probe = match note {
            SessionNote::Established { .. } => Some(true),
            SessionNote::Ended(_) => Some(false),
            SessionNote::Reconnecting { .. } => None,
        };
        if self.probe_session_note(session, probe, out) {
            return;
        }
        let random = self.rng.next_u64();
        let now = self.now;
        let Upstream::Session {
            id,
            in_session,
            connected,
            last_reason,
            reopen,
        } = &mut self.up
        else {
            return;
        };
        if *id != Some(session) {
            return;
        }
        match note {
            SessionNote::Established { resumed, replaying } => {
                *connected = true;
                reopen.reset();
                self.failover.acked();
                out(RelayEvent::UpstreamConnected {
                    session: Some((resumed, replaying)),
                });
            }
            SessionNote::Reconnecting { attempt, delay } => {
                out(RelayEvent::UpstreamReconnecting {
                    reason: last_reason.take(),
                    attempt,
                    delay,
                });
                // Each failed reconnect counts; the switch needs the node.
                if self.count_attempt(true, now, out) {
                    self.failover.switch_due = true;
                }
            }
            SessionNote::Ended(how) => {
                // What the session acknowledged before it ended is delivered.
                let acked = in_session.saturating_sub(undelivered(how));
                for _ in 0..acked {
                    let _ = self.queue.handle_reply();
                }
                *in_session = 0;
                *connected = false;
                *id = None;
                // A new session follows, after a backoff delay: an upstream that
                // ends every session at once is not hammered.
                let (attempt, delay) = reopen.schedule_or_max(now, random);
                let d = self.queue.handle_link_lost();
                // The link closed NoSessions just before (see the node): say so.
                let no_sessions = *last_reason == Some(CloseReason::NoSessions);
                let reason = if no_sessions {
                    LostReason::NoSessions
                } else {
                    LostReason::Session(how)
                };
                out(lost(reason, &d));
                out(RelayEvent::UpstreamReconnecting {
                    reason: if no_sessions {
                        last_reason.take()
                    } else {
                        None
                    },
                    attempt,
                    delay,
                });
            }
        }
    }

    /// Credits what the session acknowledged since last time.
    pub(super) fn credit_session(&mut self, node: &Node) {
        let Upstream::Session {
            id: Some(sid),
            in_session,
            ..
        } = &mut self.up
        else {
            return;
        };
        let Some(unacked) = node.session_unacked(*sid) else {
            return;
        };
        while *in_session > unacked {
            *in_session -= 1;
            if self.queue.handle_reply().is_none() {
                log::warn!("session acknowledged more than the ledger awaited");
            }
        }
    }

    /// Dials, times out, writes: whatever is due upstream.
    pub(super) fn drive_upstream(
        &mut self,
        node: &mut Node,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        self.drive_probe(node, now, out);
        if self.cfg.mooring() {
            self.switch_session(node, out);
        } else {
            self.return_raw(node, out);
        }
        let upstream = self.failover.active_addr();
        match &mut self.up {
            Upstream::Raw {
                link,
                redial,
                in_flight,
                closing,
            } => {
                if matches!(link, RawLink::Down) && redial.handle_timeout(now) {
                    out(RelayEvent::UpstreamConnecting {
                        attempt: redial.attempt(),
                    });
                    match node.connect(upstream, &self.connect) {
                        Ok(l) => *link = RawLink::Connecting(l),
                        Err(e) => {
                            log::warn!("connect to {upstream}: {e}");
                            let reason = match e {
                                SetupError::Io(e)
                                    if e.kind() == io::ErrorKind::ConnectionRefused =>
                                {
                                    CloseReason::ConnectionRefused
                                }
                                _ => CloseReason::Io,
                            };
                            self.schedule_redial(now, Some(reason), true, out);
                            return;
                        }
                    }
                }
                if let (RawLink::Up(l), Some(f)) = (&*link, in_flight.as_ref()) {
                    if f.deadline <= now {
                        log::warn!("no reply from {upstream} for message {}", f.seq);
                        *closing = Some(CloseReason::ResponseTimeout);
                        *in_flight = None;
                        self.window.clear();
                        node.close(*l);
                        return;
                    }
                }
                let RawLink::Up(l) = *link else { return };
                if closing.is_some() {
                    return; // what it had is in doubt once its close is reported
                }
                self.transmit_raw(node, l, now, out);
            }
            Upstream::Session { id, reopen, .. } => {
                let sid = match *id {
                    Some(s) => s,
                    None if reopen.poll_timeout().is_some_and(|t| t > now) => return,
                    None => {
                        // Due, or none scheduled (the first session, or one
                        // after a switch): open one now.
                        reopen.handle_timeout(now);
                        // The attempt the last reconnecting line announced.
                        out(RelayEvent::UpstreamConnecting {
                            attempt: reopen.attempt(),
                        });
                        let spool = self.spool.as_mut();
                        match super::resume::open_session(spool, node, upstream, &self.connect) {
                            Ok(s) => {
                                *id = Some(s);
                                s
                            }
                            Err(e) => {
                                log::error!("cannot open a session to {upstream}: {e}");
                                return;
                            }
                        }
                    }
                };
                if self.failover.holding() {
                    return; // the primary answered: the backup drains first
                }
                while let Some((seq, _)) = self.queue.poll_transmit() {
                    let spool_seq = self.queue.entry(seq).map_or(0, |e| e.spool_seq);
                    if !self.may_send_on(node, sid, spool_seq) {
                        break; // relay/resume.rs
                    }
                    let Some((_, payload)) = self.queue.poll_transmit() else {
                        break;
                    };
                    match node.session_send(sid, payload) {
                        Ok(_) => {
                            if let Upstream::Session { in_session, .. } = &mut self.up {
                                *in_session += 1;
                            }
                            self.forwarded(seq, out);
                        }
                        Err(SessionError::QueueFull) => break,
                        Err(e) => {
                            log::warn!("session send: {e}");
                            break;
                        }
                    }
                }
            }
        }
    }

    /// `seq` was written upstream.
    pub(super) fn forwarded(&mut self, seq: MsgId, out: &mut dyn FnMut(RelayEvent)) {
        if let Some(e) = self.queue.handle_written(seq) {
            out(RelayEvent::Forwarded {
                id: &e.id,
                seq,
                attempt: e.writes,
            });
        }
    }
}
