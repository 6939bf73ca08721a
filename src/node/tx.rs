//! The transmit path: queueing frames on a link, writing them out, and what a
//! write frees (backpressure, waiting links, close after reply).

use super::*;

/// Queued bytes at which a link writes at once rather than at the next poll.
pub(super) const FLUSH_AT: usize = 32 * 1024;

impl Node {
    /// Queues a frame on the link. It is written at the next [`Node::poll`] (or
    /// [`Node::flush`]). `Err(TxFull)` is backpressure: wait for [`Event::Writable`];
    /// on a link accepted by a listener no frame of that link comes before it
    /// (see "Reply backpressure" in the module docs).
    ///
    /// `Err(Unframeable)`: the payload holds a byte the framing cannot carry
    /// (MLLP: `0x0B` or `0x1C`, see README "Framing rules").
    pub fn send(&mut self, id: LinkId, payload: &[u8]) -> Result<(), SendError> {
        self.queue(id, Body::Bytes(payload), None)
    }

    /// [`Node::send`] of an ACK from [`crate::hl7::build_ack_for_message`]. A
    /// plain one ([`crate::hl7::Ack::is_plain`]) holds no byte a built-in
    /// framing cannot carry, so it is queued without the scan for them.
    pub fn send_ack(&mut self, id: LinkId, ack: crate::hl7::Ack<'_>) -> Result<(), SendError> {
        let i = self.slot_of(id).ok_or(SendError::NotOpen)?;
        let body = Body::Bytes(ack.as_bytes());
        if self.queue_small(i, body, ack.is_plain()) {
            return Ok(());
        }
        self.queue_on(i, body, None)
    }

    /// Like [`Node::send`], and starts the link's response timer: no whole frame back
    /// within `response_timeout` closes the link with `ResponseTimeout`.
    pub fn send_request(
        &mut self,
        id: LinkId,
        payload: &[u8],
        response_timeout: Duration,
    ) -> Result<(), SendError> {
        self.queue(id, Body::Bytes(payload), Some(response_timeout))
    }

    /// The last frame on this link was not the awaited reply: keep the response
    /// timer running until `deadline` (used by the client's HL7 correlation).
    pub(crate) fn keep_awaiting_reply(&mut self, id: LinkId, deadline: Instant) {
        if let Some(i) = self.slot_of(id) {
            self.slots[i as usize].link.keep_awaiting_reply(deadline);
            self.resched(i);
        }
    }

    /// Sends the payload of the last [`Event::Message`] on `id`, copied once,
    /// straight from the receive buffer into the link's transmit buffer: `id` the
    /// message's own link echoes it, another link forwards it (a relay). A frame
    /// of 8 KiB or more with nothing queued ahead of it on a raw link is written
    /// from the receive buffer itself, and only what the socket does not take
    /// is copied. Valid until the next call that pulls events; `NotOpen` after
    /// that or when the message's link has closed.
    pub fn forward(&mut self, id: LinkId) -> Result<(), SendError> {
        let d = self.delivered.ok_or(SendError::NoMessage)?;
        let src = &self.slots[d.slot as usize];
        if !(src.used && src.gen == d.gen && src.rx.block == Some(d.block)) {
            return Err(SendError::NoMessage);
        }
        self.queue(id, Body::Delivered(d), None)
    }

    /// Queues `body` on the link `id` (see [`Node::send`]): the common case
    /// inline ([`Node::queue_small`]), the rest in [`Node::queue_on`].
    #[inline(always)]
    pub(super) fn queue(
        &mut self,
        id: LinkId,
        body: Body<'_>,
        reply: Option<Duration>,
    ) -> Result<(), SendError> {
        let i = self.slot_of(id).ok_or(SendError::NotOpen)?;
        if reply.is_none() && self.queue_small(i, body, false) {
            return Ok(());
        }
        self.queue_on(i, body, reply)
    }

    /// The common case of [`Node::queue_on`], per message and so inline: a
    /// frame of a built-in framing with no protocol header, whose bytes fit
    /// the free tail of the link's transmit block (or a fresh working block)
    /// and leave the queue under [`FLUSH_AT`]. It does what the general path
    /// does then (frame it, count it, schedule the write) without its steps:
    /// no dynamic codec call, no parts, no checks that cannot fire. Anything
    /// else (an error to report, a header, a frame to write at once or
    /// straight from its source ([`direct::DIRECT_AT`]), a block to compact or
    /// grow, a response timer) returns false with nothing changed but a
    /// working block taken, which the general path would take too.
    /// `carried`: the caller knows a built-in framing carries the bytes.
    #[inline(always)]
    fn queue_small(&mut self, i: u32, body: Body<'_>, carried: bool) -> bool {
        let Some(framing) = self.framing else {
            return false;
        };
        let len = body.len();
        if len > self.cfg.max_frame {
            return false;
        }
        if let Body::Bytes(b) = body {
            debug_assert!(!carried || framing.can_carry(b), "{b:?}");
            if !carried && !framing.can_carry(b) {
                return false;
            }
        }
        let need = len + framing.overhead();
        let s = &mut self.slots[i as usize];
        if !s.link.may_send()
            || s.link.next_data_header().is_some()
            || s.tx.len() + need >= FLUSH_AT
            || (need >= direct::DIRECT_AT && s.tx.is_empty())
        {
            return false;
        }
        // Room at the tail, as `write_frame`'s `reserve` finds it without
        // moving anything; or no block yet (`would_outgrow_working_block` is
        // then false), and `reserve` takes one.
        let room = match s.tx.block {
            Some(_) => self.bufs.capacity(&s.tx) - s.tx.end as usize >= need,
            None => self.bufs.reserve(&mut s.tx, need),
        };
        if !room {
            return false;
        }
        let n = match body {
            Body::Bytes(b) => framing.encode_into(b, self.bufs.spare(&s.tx)),
            Body::Delivered(d) => self
                .bufs
                .src_and_spare(d.block, d.start..d.end, &s.tx)
                .and_then(|(src, spare)| framing.encode_into(src, spare)),
        };
        let Some(n) = n else {
            return false;
        };
        s.tx.end += n as u32;
        let now = self.now;
        s.link.handle_queued(now, None);
        self.queue_flush(i);
        self.resched(i);
        true
    }

    /// [`Node::queue`] on the slot `i` of an open link, every case.
    fn queue_on(
        &mut self,
        i: u32,
        body: Body<'_>,
        reply: Option<Duration>,
    ) -> Result<(), SendError> {
        if body.len() > self.cfg.max_frame {
            return Err(SendError::FrameTooLarge);
        }
        // A delivered message came through this same codec, so it fits it.
        if let Body::Bytes(b) = body {
            if !self.codec.can_carry(b) {
                return Err(SendError::Unframeable);
            }
        }
        let link = &self.slots[i as usize].link;
        if !link.may_send() {
            return Err(SendError::NotOpen);
        }
        let header = link.next_data_header();
        let head: &[u8] = header.as_ref().map_or(&[], |h| &h[..]);
        let direct = self.write_large_now(i, head, body);
        if direct.is_none() {
            self.encode_into_tx(i, head, body)?;
        }
        // Timers started here count from the last poll (the app sends while
        // handling that poll's events).
        let now = self.now;
        self.slots[i as usize].link.handle_queued(now, reply);
        match direct {
            // After handle_queued: a close-after-reply link closes once its
            // reply is out, and that may be now.
            Some(n) if self.slots[i as usize].link.is_open() => {
                self.after_write(i, n, now);
            }
            Some(_) => {} // closed while writing
            None => self.resched(i),
        }
        Ok(())
    }

    /// Lists the link for the next flush (once per frame queued: inline).
    #[inline(always)]
    pub(super) fn queue_flush(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if !s.in_flush {
            s.in_flush = true;
            self.flush.push_back(i);
        }
    }

    pub(super) fn encode_into_tx(
        &mut self,
        i: u32,
        head: &[u8],
        body: Body<'_>,
    ) -> Result<(), SendError> {
        let need = head.len() + body.len() + self.codec.overhead();
        if self.would_outgrow_working_block(i, need) {
            // A full working block is a good write: send it rather than copy the
            // queue into a large block, which frames bigger than `buffer_size`
            // need and other links may be waiting for.
            self.write_out_before_queueing(i)?;
        }
        let s = &mut self.slots[i as usize];
        if !write_frame(s, &mut self.bufs, self.codec.as_ref(), head, body) {
            // Full: write what is queued now and try once more before pushing back.
            self.write_out_before_queueing(i)?;
            let s = &mut self.slots[i as usize];
            if !write_frame(s, &mut self.bufs, self.codec.as_ref(), head, body) {
                // This refusal supersedes a Writable raised by that write: the
                // caller hears Writable only once room comes back after it.
                s.pending &= !PENDING_WRITABLE;
                self.note_tx_full(i);
                return Err(SendError::TxFull);
            }
        }
        if self.slots[i as usize].tx.len() >= FLUSH_AT {
            // Enough for a full write: send it now so large frames pipeline
            // instead of waiting for the next poll.
            let now = self.now;
            self.write_out(i, now);
        }
        self.queue_flush(i);
        Ok(())
    }

    /// Writes the link's queue to make room for a frame; `NotOpen` when that
    /// closed the link (a write error, or a close-after-reply link whose reply
    /// went out), so nothing is queued on a closed link.
    pub(super) fn write_out_before_queueing(&mut self, i: u32) -> Result<(), SendError> {
        let now = self.now;
        self.write_out(i, now);
        if self.slots[i as usize].link.is_open() {
            Ok(())
        } else {
            Err(SendError::NotOpen)
        }
    }

    /// True when `need` more bytes fit the link's working transmit block only by
    /// moving its queue into a large one, though the frame alone would fit (and
    /// writing the queue now would not close the link under its caller).
    pub(super) fn would_outgrow_working_block(&self, i: u32, need: usize) -> bool {
        let s = &self.slots[i as usize];
        let small = self.bufs.block_size(Tier::Small);
        matches!(s.tx.block, Some(b) if b.tier == Tier::Small)
            && s.tx.len() + need > small
            && need <= small
            && !s.link.closes_once_written()
    }

    /// Backpressure: the link is told (or its session pumped) when room comes back.
    pub(super) fn note_tx_full(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        s.want_writable = true;
        if s.tx.is_empty() && !s.in_waiting {
            // Only a large block would do and none is free: wait for one, but no
            // longer than a blocked write may. (With bytes queued, room comes
            // back as the queue drains, and a stuck queue has its timer.)
            s.in_waiting = true;
            s.link.handle_no_room(self.now);
            self.waiting.push_back(i);
            self.stats.large_buffer_waits += 1;
            self.resched(i);
        }
    }

    /// Writes every queued frame now, without waiting.
    pub fn flush(&mut self) {
        let now = self.now;
        // In the order the links queued their first frame (the order they
        // were served in): the link read first is answered first. Last in,
        // first out made the first served wait for every other link's write,
        // and its peer's next frames then came last: the latency tail
        // (links64, strace: 46 reads, then 46 writes in reverse order).
        while let Some(i) = self.flush.pop_front() {
            self.slots[i as usize].in_flush = false;
            self.write_out(i, now);
        }
    }

    pub(super) fn write_out(&mut self, i: u32, now: Instant) {
        #[cfg(feature = "tls")]
        if self.slots[i as usize].tls.is_some() {
            return self.write_out_tls(i, now);
        }
        loop {
            let s = &mut self.slots[i as usize];
            let Some(sock) = s.sock.as_mut() else { return };
            if s.tx.is_empty() || !s.link.is_open() {
                return;
            }
            match sock.write(self.bufs.data(&s.tx)) {
                Ok(0) => {
                    self.close_slot(i, CloseReason::Io);
                    return;
                }
                Ok(n) => {
                    if self.bufs.consume_keeping(&mut s.tx, n) {
                        self.keep_warm(i);
                    }
                    if !self.after_write(i, n, now) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => {
                    s.link.handle_write_blocked(now);
                    self.resched(i);
                    return;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("write to {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return;
                }
            }
        }
    }

    /// `n` bytes of the link's frames went out (and left its queue): timers,
    /// backpressure and policy. False when the link closed.
    pub(super) fn after_write(&mut self, i: u32, n: usize, now: Instant) -> bool {
        let empty = self.slots[i as usize].tx.is_empty();
        self.after_write_with(i, n, empty, now)
    }

    /// [`Node::after_write`] with the queue's emptiness given: a TLS link's
    /// queue is empty only once its ciphertext is written too.
    pub(super) fn after_write_with(&mut self, i: u32, n: usize, empty: bool, now: Instant) -> bool {
        let s = &mut self.slots[i as usize];
        let done = s.link.handle_written(now, n, empty);
        // Room came back. (An emptied buffer gave its block back and has
        // capacity 0: that is room too.)
        if s.want_writable && (empty || self.bufs.capacity(&s.tx) > s.tx.len()) {
            s.want_writable = false;
            s.pending |= PENDING_WRITABLE;
            self.mark_ready(i);
        }
        if self.slots[i as usize].held && self.slots[i as usize].tx.len() <= self.held_limit(i) {
            // Drained: its frames flow again.
            self.set_held(i, false, now);
            self.mark_ready(i);
        }
        if empty {
            self.wake_waiting();
        }
        self.resched(i);
        if let Some(reason) = done {
            self.close_slot(i, reason);
            return false;
        }
        true
    }

    /// A large block may have come free: let the links waiting for one retry.
    /// Called after every write that empties a queue and every consumed frame
    /// that frees a block: the common case (no link waiting) is one inline check.
    #[inline]
    pub(super) fn wake_waiting(&mut self) {
        if !self.waiting.is_empty() && self.bufs.large_available() {
            self.wake_all_waiting();
        }
    }

    fn wake_all_waiting(&mut self) {
        while let Some(i) = self.waiting.pop_front() {
            let s = &mut self.slots[i as usize];
            s.in_waiting = false;
            if !s.used {
                continue;
            }
            // (A held link resumes when released: see `set_held`.)
            if !s.held && s.link.resume_reads(self.now) {
                self.resched(i);
            }
            let s = &mut self.slots[i as usize];
            if s.want_writable {
                s.want_writable = false;
                s.pending |= PENDING_WRITABLE;
                if s.tx.is_empty() {
                    s.link.handle_room();
                    self.resched(i);
                }
            }
            self.mark_ready(i);
        }
    }
}

/// What a frame carries after its protocol header: bytes the caller holds, or
/// the last delivered frame (still in its receive block).
#[derive(Clone, Copy)]
pub(super) enum Body<'a> {
    Bytes(&'a [u8]),
    Delivered(Delivered),
}

impl Body<'_> {
    #[inline]
    pub(super) fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Delivered(d) => d.end - d.start,
        }
    }
}

/// Frames `head` + `body` into the slot's transmit buffer; false (nothing
/// written) when there is no room.
pub(super) fn write_frame(
    s: &mut Slot,
    bufs: &mut Buffers,
    codec: &dyn Codec,
    head: &[u8],
    body: Body<'_>,
) -> bool {
    let need = head.len() + body.len() + codec.overhead();
    if !bufs.reserve(&mut s.tx, need) {
        return false;
    }
    let n = match body {
        Body::Bytes(b) => codec.encode_parts(&[head, b], bufs.spare(&s.tx)),
        Body::Delivered(d) => bufs
            .src_and_spare(d.block, d.start..d.end, &s.tx)
            .and_then(|(src, spare)| codec.encode_parts(&[head, src], spare)),
    };
    match n {
        Some(n) => {
            s.tx.end += n as u32;
            true
        }
        None => false,
    }
}
