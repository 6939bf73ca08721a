//! Reply backpressure: when the node stops delivering a server link's frames
//! because the replies to them would find no room, and when it resumes (the
//! rule is in the module docs of [`crate::node`]). The read pause itself is the
//! one used for buffer waits (`Link::pause_reads`); this file decides when.

use super::{Node, PENDING_WRITABLE};
use crate::buffer::Tier;
use crate::time::Instant;

impl Node {
    /// True when the server link `i` is held: its transmit queue is above the
    /// mark (after writing what the socket takes), or a refused send awaits its
    /// `Writable`. Outbound links are never held: what they read (replies) needs
    /// no room, and holding both ends of a link would deadlock them.
    #[inline]
    pub(super) fn holds_back(&mut self, i: u32, now: Instant) -> bool {
        let s = &self.slots[i as usize];
        if s.listener.is_none() {
            return false;
        }
        // The common case, checked per delivered frame: not held, the queue
        // within the mark, nothing waiting, still open. The answer below is
        // then no, and nothing changes: give it cheaply.
        if !s.held
            && !s.want_writable
            && s.pending & PENDING_WRITABLE == 0
            && s.tx.len() <= self.bufs.block_size(Tier::Small) / 2
            && s.link.is_open()
        {
            return false;
        }
        self.update_hold(i, now)
    }

    /// [`Node::holds_back`] in full: holds or releases the link, and says which.
    fn update_hold(&mut self, i: u32, now: Instant) -> bool {
        let s = &self.slots[i as usize];
        let hold = if s.want_writable || s.pending & PENDING_WRITABLE != 0 {
            true
        } else {
            let limit = self.held_limit(i);
            if s.tx.len() > limit {
                self.write_out(i, now);
            }
            let s = &self.slots[i as usize];
            if !s.link.is_open() {
                return true; // closed by that write: nothing more to deliver
            }
            s.tx.len() > limit
        };
        self.set_held(i, hold, now);
        hold
    }

    /// Holds or releases the link. While held its idle and frame timers stop:
    /// not reading it is this side's doing (its own stuck replies are bounded
    /// by the write timer).
    pub(super) fn set_held(&mut self, i: u32, held: bool, now: Instant) {
        let s = &mut self.slots[i as usize];
        if s.held == held {
            return;
        }
        s.held = held;
        if held {
            s.link.pause_reads(now);
        } else if !s.in_waiting && s.link.resume_reads(now) {
            self.resched(i);
        }
    }

    /// Queued bytes above which a server link is held: half a working buffer,
    /// and once held, a quarter (so it does not flap around one mark).
    pub(super) fn held_limit(&self, i: u32) -> usize {
        let small = self.bufs.block_size(Tier::Small);
        if self.slots[i as usize].held {
            small / 4
        } else {
            small / 2
        }
    }

    /// Room for `want` more received bytes. A server link takes a large block
    /// only while another stays free for a reply: held links, each pinning one
    /// for a partial request while waiting for one to reply with, could
    /// otherwise hold them all, and none would move.
    pub(super) fn reserve_rx(&mut self, i: u32, want: usize) -> bool {
        let s = &mut self.slots[i as usize];
        if s.listener.is_some()
            && self.bufs.needs_large(&s.rx, want)
            && !self.bufs.large_left_for_receive()
        {
            return false;
        }
        self.bufs.reserve(&mut s.rx, want)
    }
}
