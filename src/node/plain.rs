//! The per-frame fast path of [`Node::next_event`]: the next frame of a plain
//! link ([`Link::is_plain_open`]: raw protocol, no close-after-reply, no MLLP
//! commit ACKs), carrying no session, with nothing to report first and
//! nothing holding it back, is delivered without the general step's checks.
//! Anything else, or no whole frame buffered yet, takes the general path
//! ([`Node::step`]), which does the same for such a frame: the fast path only
//! leaves out the checks that cannot fire for it.

use core::ops::Range;

use super::*;

impl Node {
    /// The next frame of link `i` (at the front of the ready queue), when the
    /// fast path applies and a whole frame is buffered; `None`: ask
    /// [`Node::step`]. Once per message: inline.
    #[inline(always)]
    pub(super) fn plain_frame(&mut self, i: u32) -> Option<Delivered> {
        let mark = self.bufs.block_size(Tier::Small) / 2;
        let s = self.slots.get_mut(i as usize)?;
        // Nothing buffered (the link is to be read: one message in flight
        // finds this every time) first, the cheapest way out.
        let block = s.rx.block?;
        // Not closed, nothing pending (connected, TLS, writable), no session,
        // and `may_read` (a plain link may whenever it is open).
        if !s.used || s.pending != 0 || s.session.is_some() || !s.link.is_plain_open() {
            return None;
        }
        // `holds_back`'s common case: a server link not held, its queue
        // within the mark, no refused send waiting.
        if s.listener.is_some() && (s.held || s.want_writable || s.tx.len() > mark) {
            return None;
        }
        let data = self.bufs.data(&s.rx);
        // Each arm takes its frame apart itself, so the built-in framing's
        // result stays in registers: one shared decode for this path and
        // `decode`'s measured 285 user-space instructions per message on
        // stream len32 against 271. Anything but a whole frame (more bytes to
        // read, noise to skip, a bad frame) is the general path's.
        let (payload, consumed, skipped) = match self.framing {
            Some(f) => match f.decode(data, &mut s.scan, self.cfg.max_frame) {
                Ok(Decoded::Frame {
                    payload,
                    consumed,
                    skipped,
                }) => (payload, consumed, skipped),
                _ => return None,
            },
            None => match self.codec.decode(data, &mut s.scan, self.cfg.max_frame) {
                Ok(Decoded::Frame {
                    payload,
                    consumed,
                    skipped,
                }) => (payload, consumed, skipped),
                _ => return None,
            },
        };
        let (d, sync) = s.take_plain_frame(i, block, payload, consumed, skipped);
        if sync {
            self.sync(i, self.now);
        }
        Some(d)
    }
}

impl Slot {
    /// A whole frame decoded from the receive buffer of this slot (`i`), a
    /// plain link with no session: `payload` of `consumed` bytes at the front
    /// of `block`, behind `skipped` noise bytes. Does for it what the general
    /// path does for any frame (the link's core, `last_frame`) by the plain
    /// link's shorter way, and says whether the node must then `sync` the
    /// link: only for control output to queue or a deadline that moved (an
    /// unchanged one needs no heap update). The frame is delivered next. Both
    /// paths' once per message: inline.
    #[inline(always)]
    pub(super) fn take_plain_frame(
        &mut self,
        i: u32,
        block: Block,
        payload: Range<usize>,
        consumed: usize,
        skipped: usize,
    ) -> (Delivered, bool) {
        let moved = self.link.handle_plain_frame(skipped);
        self.last_frame = u32::try_from(consumed).unwrap_or(u32::MAX);
        let base = self.rx.start as usize;
        let d = Delivered {
            slot: i,
            gen: self.gen,
            block,
            start: base + payload.start,
            end: base + payload.end,
            consumed,
        };
        (d, moved || self.link.wants_transmit())
    }
}
