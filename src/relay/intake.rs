//! The device side of the relay: who is connected, what each message becomes
//! (refused, duplicate, queued, queue full) and every ACK a device gets, now or
//! deferred until the upstream answered.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{AckAfter, Escaped, Refusal, Relay, RelayEvent};
use crate::hl7::{self, AckCode};
use crate::ledger::Delivery;
use crate::time::{earliest, Instant};
use crate::{CloseReason, LinkId, Node, SendError};

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// The MSH segment of `msg` (up to its first line end).
pub(super) fn msh_segment(msg: &[u8]) -> &[u8] {
    let end = msg
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(msg.len());
    &msg[..end]
}

/// Writes an ACK for `msg` (a message or its MSH segment) into `buf`.
pub(super) fn build_ack(msg: &[u8], code: AckCode, buf: &mut [u8]) -> Option<usize> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut ts = [0u8; 14];
    let ts = hl7::timestamp_utc(secs, &mut ts);
    let n = hl7::build_ack(msg, code, ts, buf);
    if n.is_none() {
        log::warn!("ACK larger than the reply buffer: not sent");
    }
    n
}

/// Sends a device its ACK. One refused for room (the device sends but does not
/// read its ACKs; the node holds its link meanwhile) closes the device's link
/// rather than drop the ACK unseen: the device learns the link ended and
/// resends what it holds no ACK for.
pub(super) fn send_ack(node: &mut Node, link: LinkId, ack: &[u8], peer: SocketAddr) {
    match node.send(link, ack) {
        Ok(()) => {}
        Err(SendError::TxFull) => {
            log::warn!("ACK to {peer} not queued (the device is not reading): closing its link");
            node.close(link);
        }
        Err(e) => log::warn!("ACK to {peer} not sent: {e}"),
    }
}

impl Relay {
    pub(super) fn is_device(&self, link: LinkId) -> bool {
        matches!(self.devices.get(link.slot() as usize), Some(Some((l, _))) if *l == link)
    }

    pub(super) fn device_peer(&self, link: LinkId) -> SocketAddr {
        match self.devices.get(link.slot() as usize) {
            Some(Some((l, p))) if *l == link => *p,
            _ => unspecified(),
        }
    }

    pub(super) fn on_device_connected(
        &mut self,
        link: LinkId,
        peer: SocketAddr,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if let Some(d) = self.devices.get_mut(link.slot() as usize) {
            *d = Some((link, peer));
        }
        out(RelayEvent::DeviceConnected { peer });
    }

    pub(super) fn on_device_closed(
        &mut self,
        link: LinkId,
        peer: SocketAddr,
        reason: CloseReason,
        peer_reason: Option<CloseReason>,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if let Some(d) = self.devices.get_mut(link.slot() as usize) {
            *d = None;
        }
        out(RelayEvent::DeviceClosed {
            peer,
            reason,
            peer_reason,
        });
    }

    /// When a device whose message arrived at `now` gets MSA|AR at the latest.
    /// One millisecond more than the response timeout: the clock counts whole
    /// milliseconds, and the device must never hear before the full timeout.
    fn reply_by(&self, now: Instant) -> Instant {
        now + self.cfg.response_timeout + Duration::from_millis(1)
    }

    /// A device's message. Returns the ACK to send now (its length in `ack_buf`).
    pub(super) fn on_device_message(
        &mut self,
        link: LinkId,
        payload: &[u8],
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) -> Option<(LinkId, usize)> {
        let peer = self.device_peer(link);
        let key = hl7::message_key(payload);
        out(RelayEvent::DeviceMessage {
            peer,
            bytes: payload.len(),
            id: key.map(|[.., id]| id),
        });
        let Some(key) = key else {
            let reason = if hl7::is_hl7(payload) {
                Refusal::NoControlId
            } else {
                Refusal::NotHl7
            };
            out(RelayEvent::Refused {
                peer,
                bytes: payload.len(),
                reason,
            });
            return build_ack(payload, AckCode::Reject, &mut self.ack_buf).map(|n| (link, n));
        };
        let [.., id] = key;
        // A resend of a message still waiting for the upstream (or, with a
        // spool, not yet on disk): the ACK it waits for goes to this link.
        let upstream_mode = self.cfg.ack_after == AckAfter::Upstream;
        if upstream_mode || self.spool.is_some() {
            let reply_by = self.reply_by(now);
            let durable = self.spool.as_ref().map_or(0, |d| d.acked_through);
            // Same MSH-10 first (cheap), then the same sender.
            let resent = |e: &&mut super::queue::Entry| {
                (upstream_mode || e.spool_seq > durable)
                    && e.id == id
                    && hl7::message_key(&e.msh) == Some(key)
            };
            // Messages not yet on disk are the newest: with the spool alone,
            // the search stops at the first durable one (a backlog of
            // thousands is not scanned per message).
            let taken_over = self
                .queue
                .entries_mut()
                .rev()
                .take_while(|e| upstream_mode || e.spool_seq > durable)
                .find(resent)
                .map(|e| {
                    e.link = Some(link);
                    e.peer = peer;
                    e.reply_by = reply_by;
                });
            if taken_over.is_some() {
                self.queue.wake_at(reply_by);
                out(RelayEvent::Duplicate {
                    peer,
                    id,
                    pending: true,
                });
                return None;
            }
        }
        if !self.dedup.first_time(&key) {
            out(RelayEvent::Duplicate {
                peer,
                id,
                pending: false,
            });
            return build_ack(payload, AckCode::Accept, &mut self.ack_buf).map(|n| (link, n));
        }
        // With a spool every device waits: for the upstream, or for the commit.
        let waiting = (upstream_mode || self.spool.is_some()).then(|| (link, self.reply_by(now)));
        let appended = if self.queue.is_full() {
            Ok(0) // refused below as QueueFull, nothing written
        } else {
            self.spool_append(link, payload, now, out)
        };
        let spool_seq = match appended {
            Ok(s) => s,
            Err(cause) => {
                // Not durable: never AA; a resend is a new message.
                self.dedup.forget(&key);
                out(RelayEvent::SpoolRefused { peer, id, cause });
                return build_ack(payload, AckCode::Reject, &mut self.ack_buf).map(|n| (link, n));
            }
        };
        let pushed = self.queue.push(
            payload,
            msh_segment(payload),
            id,
            peer,
            waiting,
            now,
            spool_seq,
        );
        let Some(seq) = pushed else {
            // Not kept: a resend is a new message.
            self.dedup.forget(&key);
            out(RelayEvent::QueueFull {
                peer,
                id,
                queued: self.queue.len(),
            });
            return build_ack(payload, AckCode::Reject, &mut self.ack_buf).map(|n| (link, n));
        };
        out(RelayEvent::Queued { peer, id, seq });
        match self.cfg.ack_after {
            // With a spool: AA after the commit (`Relay::commit`).
            AckAfter::Queued if self.spool.is_some() => None,
            AckAfter::Queued => {
                build_ack(payload, AckCode::Accept, &mut self.ack_buf).map(|n| (link, n))
            }
            AckAfter::Upstream => None,
        }
    }

    /// Answers MSA|AR to each device whose message the upstream has not
    /// acknowledged within the response timeout ([`AckAfter::Upstream`]). The
    /// message stays queued; a later upstream ACK is only reported.
    pub(super) fn answer_overdue(
        &mut self,
        node: &mut Node,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if self.queue.next_reply_by().is_none_or(|t| t > now) {
            return;
        }
        let mut next = None;
        for e in self.queue.entries_mut() {
            let Some(link) = e.link else { continue };
            if e.reply_by > now {
                next = earliest(next, Some(e.reply_by));
                continue;
            }
            e.link = None;
            out(RelayEvent::ReplyTimeout {
                peer: e.peer,
                id: &e.id,
                seq: e.seq,
                ack: AckCode::Reject,
            });
            if let Some(n) = build_ack(&e.msh, AckCode::Reject, &mut self.ack_buf) {
                send_ack(node, link, &self.ack_buf[..n], e.peer);
            }
        }
        self.queue.set_next_reply_by(next);
    }

    /// Reports outcomes and sends the deferred ACKs.
    pub(super) fn outcomes(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        let now = node.now();
        while let Some((seq, how, e)) = self.queue.poll_outcome() {
            let Some(e) = e else {
                log::error!("outcome for unknown message {seq}");
                continue;
            };
            // Settled (acknowledged, or failed and reported): off the spool.
            self.spool_mark(e.spool_seq, now);
            if e.seq != seq {
                log::error!("outcome for {seq} but {} was oldest", e.seq);
            }
            let upstream_mode = self.cfg.ack_after == AckAfter::Upstream;
            let code = match how {
                Delivery::Acknowledged => {
                    out(RelayEvent::Acked {
                        id: &e.id,
                        seq,
                        elapsed: now.saturating_since(e.received),
                        ack: (!self.cfg.mooring()).then_some(e.code),
                    });
                    e.code
                }
                _ => {
                    out(RelayEvent::Failed {
                        id: &e.id,
                        seq,
                        attempts: e.writes,
                        acked_to_device: !upstream_mode && e.link.is_none(),
                    });
                    let id = Escaped(&e.id);
                    if upstream_mode {
                        log::warn!(
                            "message {id} failed after {} attempts: device answered AR",
                            e.writes
                        );
                    } else {
                        log::error!(
                            "message {id} LOST: failed after {} attempts, the device already had AA",
                            e.writes
                        );
                    }
                    // Not delivered: a resend is a new message.
                    if let Some(key) = hl7::message_key(&e.msh) {
                        self.dedup.forget(&key);
                    }
                    AckCode::Reject
                }
            };
            // A device still waiting (for the upstream, or for a spool commit
            // that failed while the upstream took the message) hears now.
            if let Some(link) = e.link {
                if let Some(n) = build_ack(&e.msh, code, &mut self.ack_buf) {
                    send_ack(node, link, &self.ack_buf[..n], e.peer);
                }
            }
            self.queue.recycle(e);
        }
    }
}
