//! The relay's upstream queue: the at-least-once [`Ledger`] (payload bytes and
//! delivery states) beside one [`Entry`] per message (what the lines and the
//! deferred device ACK need). With a spool, each entry also carries its
//! sequence number in the spool (`relay/spool.rs`), which the relay marks
//! delivered as outcomes come.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::hl7::AckCode;
use crate::ledger::{Delivery, InDoubt, Ledger, LedgerConfig, MsgId};
use crate::time::{earliest, Instant};
use crate::LinkId;

/// A message accepted from a device and not yet acknowledged or failed.
pub(super) struct Entry {
    /// Its ledger id (`seq=` in the lines).
    pub(super) seq: MsgId,
    /// The device link waiting for its ACK (`AckAfter::Upstream`).
    pub(super) link: Option<LinkId>,
    /// When that device gets MSA|AR if the upstream has not acknowledged.
    pub(super) reply_by: Instant,
    pub(super) peer: SocketAddr,
    /// MSH-10.
    pub(super) id: Vec<u8>,
    /// The MSH segment: all `build_ack` needs to answer it later.
    pub(super) msh: Vec<u8>,
    pub(super) received: Instant,
    /// Times written upstream.
    pub(super) writes: u32,
    /// The upstream's MSA-1 (raw), for the device's deferred ACK.
    pub(super) code: AckCode,
    /// Its sequence number in the spool (0: no spool).
    pub(super) spool_seq: u64,
}

/// Messages for the upstream, oldest first, bounded at start.
pub(super) struct Queue {
    ledger: Ledger,
    /// One entry per ledger message, same order.
    pending: VecDeque<Entry>,
    /// Recycled entries: after warm-up no message allocates.
    spare: Vec<Entry>,
    /// At most this many messages.
    limit: usize,
    /// The earliest `reply_by` of an entry whose device waits.
    next_reply_by: Option<Instant>,
}

impl Queue {
    pub(super) fn new(cfg: LedgerConfig) -> Self {
        Queue {
            limit: cfg.capacity,
            pending: VecDeque::with_capacity(cfg.capacity),
            spare: Vec::with_capacity(cfg.capacity),
            ledger: Ledger::new(cfg),
            next_reply_by: None,
        }
    }

    /// Messages held.
    pub(super) fn len(&self) -> usize {
        self.ledger.len()
    }

    /// Payload bytes held (a walk: for stats).
    pub(super) fn bytes(&self) -> usize {
        self.ledger.bytes()
    }

    /// When the oldest message held arrived.
    pub(super) fn oldest_received(&self) -> Option<Instant> {
        self.pending.front().map(|e| e.received)
    }

    /// No room for another message (entries; bytes are checked by `push`).
    pub(super) fn is_full(&self) -> bool {
        self.ledger.len() >= self.limit
    }

    /// Keeps `payload`; `None` when full (entries or bytes): nothing was kept.
    /// `msh` and `id` are the payload's MSH segment and MSH-10; `spool_seq` its
    /// number in the spool (0: none).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        payload: &[u8],
        msh: &[u8],
        id: &[u8],
        peer: SocketAddr,
        waiting: Option<(LinkId, Instant)>,
        now: Instant,
        spool_seq: u64,
    ) -> Option<MsgId> {
        if self.is_full() {
            return None;
        }
        let seq = self.ledger.push(payload).ok()?;
        let mut e = self.spare.pop().unwrap_or_else(|| Entry {
            seq: 0,
            link: None,
            reply_by: now,
            peer,
            id: Vec::new(),
            msh: Vec::new(),
            received: now,
            writes: 0,
            code: AckCode::Accept,
            spool_seq: 0,
        });
        e.seq = seq;
        e.peer = peer;
        e.id.clear();
        e.id.extend_from_slice(id);
        e.msh.clear();
        e.msh.extend_from_slice(msh);
        e.received = now;
        e.writes = 0;
        e.code = AckCode::Accept;
        e.spool_seq = spool_seq;
        e.link = waiting.map(|(l, _)| l);
        e.reply_by = waiting.map_or(now, |(_, t)| t);
        if e.link.is_some() {
            self.wake_at(e.reply_by);
        }
        self.pending.push_back(e);
        Some(seq)
    }

    /// The entry of `seq`, if it is still held.
    pub(super) fn entry(&mut self, seq: MsgId) -> Option<&mut Entry> {
        let base = self.pending.front()?.seq;
        let i = seq.checked_sub(base)?;
        self.pending.get_mut(usize::try_from(i).ok()?)
    }

    /// Every entry held, oldest first.
    pub(super) fn entries_mut(&mut self) -> std::collections::vec_deque::IterMut<'_, Entry> {
        self.pending.iter_mut()
    }

    /// The earliest device deadline (`reply_by`) to wake for.
    pub(super) fn next_reply_by(&self) -> Option<Instant> {
        self.next_reply_by
    }

    /// Makes sure the relay wakes by `t`.
    pub(super) fn wake_at(&mut self, t: Instant) {
        self.next_reply_by = earliest(self.next_reply_by, Some(t));
    }

    /// Replaces the wake-up time (after a scan of every entry).
    pub(super) fn set_next_reply_by(&mut self, t: Option<Instant>) {
        self.next_reply_by = t;
    }

    /// The next message to write upstream.
    pub(super) fn poll_transmit(&self) -> Option<(MsgId, &[u8])> {
        self.ledger.poll_transmit()
    }

    /// `seq` was written upstream: counts the write and returns its entry.
    pub(super) fn handle_written(&mut self, seq: MsgId) -> Option<&Entry> {
        self.ledger.handle_written(seq);
        let e = self.entry(seq)?;
        e.writes = e.writes.saturating_add(1);
        Some(e)
    }

    /// The upstream acknowledged the oldest message awaited.
    pub(super) fn handle_reply(&mut self) -> Option<MsgId> {
        self.ledger.handle_reply()
    }

    /// The upstream link (or session) was lost with messages in flight.
    pub(super) fn handle_link_lost(&mut self) -> InDoubt {
        self.ledger.handle_link_lost()
    }

    /// The next settled message, oldest first, and how it ended. Hand the
    /// entry back with [`Queue::recycle`].
    pub(super) fn poll_outcome(&mut self) -> Option<(MsgId, Delivery, Option<Entry>)> {
        let (seq, how) = self.ledger.poll_outcome()?;
        Some((seq, how, self.pending.pop_front()))
    }

    /// Keeps an entry's buffers for the next message.
    pub(super) fn recycle(&mut self, e: Entry) {
        self.spare.push(e);
    }
}
