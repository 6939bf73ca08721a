//! Raw upstream pipelining ([`RelayConfig::upstream_window`]): up to N
//! messages written before their ACKs arrive, for receivers that process
//! pipelined messages in order. The oldest awaited is the upstream's
//! `in_flight` (its deadline is the response timeout's); the ones written
//! after it wait here, in order. ACKs are matched in order: an ACK is
//! credited only to the oldest awaited, and only when its MSA-2 is that
//! message's MSH-10. An ACK naming a later message means the receiver does
//! not answer in order: [`RelayEvent::ReplyOutOfOrder`], the link is closed,
//! and every message in flight is in doubt and resent after the reconnect
//! (the ledger credits each message once, so the spool never marks one
//! twice). With a window of 1 nothing waits here and nothing changes.
//!
//! [`RelayConfig::upstream_window`]: super::RelayConfig::upstream_window

use std::collections::VecDeque;

use super::upstream::{InFlight, RawLink, Upstream};
use super::{Relay, RelayEvent};
use crate::time::Instant;
use crate::{CloseReason, LinkId, Node};

/// Messages written after the one in flight, oldest first.
pub(super) struct Window {
    behind: VecDeque<InFlight>,
    /// An out-of-order ACK came: close the link at the next settle.
    close_due: bool,
    /// The link is being closed for it (its loss names the cause).
    closing: bool,
}

impl Window {
    /// Room for a window of `window` messages (fixed at start).
    pub(super) fn new(window: usize) -> Self {
        Window {
            behind: VecDeque::with_capacity(window.saturating_sub(1)),
            close_due: false,
            closing: false,
        }
    }

    /// The link is gone: nothing is awaited on it any more.
    pub(super) fn clear(&mut self) {
        self.behind.clear();
        self.close_due = false;
    }

    /// A message written after the ones awaited.
    pub(super) fn push(&mut self, f: InFlight) {
        self.behind.push_back(f);
    }

    /// The next oldest awaited, once the oldest was acknowledged.
    pub(super) fn pop_front(&mut self) -> Option<InFlight> {
        self.behind.pop_front()
    }

    /// Whether the link that was lost was closed for an out-of-order ACK.
    pub(super) fn take_out_of_order(&mut self) -> bool {
        std::mem::take(&mut self.closing)
    }
}

impl Relay {
    /// Raw: writes queued messages on `link` while the window has room (the
    /// ledger's window is [`super::RelayConfig::upstream_window`]).
    pub(super) fn transmit_raw(
        &mut self,
        node: &mut Node,
        link: LinkId,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        let timeout = self.cfg.response_timeout;
        // The primary answered a probe: nothing new for the backup.
        while !self.failover.holding() {
            let Some((seq, payload)) = self.queue.poll_transmit() else {
                return;
            };
            if let Err(e) = node.send_request(link, payload, timeout) {
                log::debug!("upstream write deferred: {e}");
                return;
            }
            let f = InFlight {
                seq,
                deadline: now + timeout,
            };
            if let Upstream::Raw { in_flight, .. } = &mut self.up {
                match in_flight {
                    None => *in_flight = Some(f),
                    Some(_) => self.window.push(f),
                }
            }
            self.forwarded(seq, out);
        }
    }

    /// An ACK whose MSA-2 `got` is not the oldest awaited's: true (and the
    /// link is closed at the next settle) when it names a later message in
    /// flight. Anything else is the caller's unexpected reply.
    pub(super) fn reply_out_of_order(
        &mut self,
        awaited: u64,
        got: &[u8],
        out: &mut dyn FnMut(RelayEvent),
    ) -> bool {
        let mut later = false;
        for i in 0..self.window.behind.len() {
            let seq = self.window.behind[i].seq;
            if self.queue.entry(seq).is_some_and(|e| e.id == got) {
                later = true;
                break;
            }
        }
        if !later {
            return false;
        }
        self.window.close_due = true;
        let expected = self.queue.entry(awaited).map_or(&[][..], |e| &e.id[..]);
        out(RelayEvent::ReplyOutOfOrder { expected, id: got });
        true
    }

    /// Closes the raw link after an out-of-order ACK: what it had in flight
    /// is in doubt when its close is reported.
    pub(super) fn close_out_of_order(&mut self, node: &mut Node) {
        if !self.window.close_due {
            return;
        }
        self.window.clear();
        if let Upstream::Raw {
            link: RawLink::Up(l),
            in_flight,
            closing,
            ..
        } = &mut self.up
        {
            log::warn!("upstream ACKs out of order: closing the link, resending what it had");
            *in_flight = None;
            *closing = Some(CloseReason::LocalClose);
            self.window.closing = true;
            node.close(*l);
        }
    }
}
