//! Deadlines: the link cores' timers in the node's one deadline heap,
//! settled once per batch, and what expires.

use super::*;

impl Node {
    /// The earliest deadline of any link. Never later than the true one; it can
    /// be earlier (then [`Node::poll`] finds nothing due and waits again) when
    /// called between polls, after traffic moved a link's deadline later.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Links with a change not yet in the heap: their own deadline now. The
        // heap's entry for them can only be stale-early, so the minimum of both
        // is never late.
        let unsettled = self
            .resched
            .iter()
            .filter_map(|&i| self.slots[i as usize].link.poll_timeout())
            .min();
        let links = crate::time::earliest(self.timers.next(), unsettled);
        // A listener retrying `accept` (see `ACCEPT_RETRY`).
        crate::time::earliest(links, self.accept.next())
    }

    /// Queues the link's control output (HELLO, WELCOME, PING, PONG, keep-alive,
    /// commit ACK), then reschedules its deadline. Called per frame: the common
    /// case (no control output) is inline.
    #[inline(always)]
    pub(super) fn sync(&mut self, i: u32, now: Instant) {
        if self.slots[i as usize].link.wants_transmit() {
            self.queue_control(i, now);
        }
        self.resched(i);
    }

    fn queue_control(&mut self, i: u32, now: Instant) {
        let mut buf = [0u8; CONTROL_SCRATCH];
        while let Some((c, n)) = self.slots[i as usize].link.poll_transmit(&mut buf) {
            match self.encode_into_tx(i, &[], Body::Bytes(&buf[..n])) {
                Ok(()) => self.slots[i as usize].link.handle_transmitted(now, c),
                Err(e) if c == Control::CommitAck => warn_limited!(
                    self.warnings[Warning::CommitAck as usize],
                    now,
                    "commit ACK not queued: {e}"
                ),
                Err(e) => log::debug!("{c:?} not queued: {e}"),
            }
        }
    }

    /// The link's deadline may have changed: note it for `settle_deadlines`. A
    /// burst of frames on a link then costs one heap update, not one per frame.
    #[inline(always)]
    pub(super) fn resched(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if !s.in_resched {
            s.in_resched = true;
            self.resched.push(i);
        }
    }

    /// Brings the deadline heap up to date; before anything reads it. Called
    /// three times per poll, mostly with nothing to do: that check is inline.
    #[inline(always)]
    pub(super) fn settle_deadlines(&mut self) {
        if !self.resched.is_empty() {
            self.settle_rescheduled();
        }
    }

    fn settle_rescheduled(&mut self) {
        while let Some(i) = self.resched.pop() {
            let s = &mut self.slots[i as usize];
            s.in_resched = false;
            // A closed slot's link has no timers left: this removes its entry.
            let at = s.link.poll_timeout();
            self.timers.set(i, at);
        }
    }

    /// Handles the deadlines due at `now`. Called twice per poll, mostly with
    /// none due: that check is inline.
    #[inline(always)]
    pub(super) fn expire(&mut self, now: Instant) {
        if self.timers.next().is_some_and(|at| at <= now) {
            self.expire_due(now);
        }
    }

    fn expire_due(&mut self, now: Instant) {
        while let Some(i) = self.timers.pop_due(now) {
            if let Some(slot) = self.redial_slot_of_timer(i) {
                self.redial_timeout(slot, now);
                continue;
            }
            if i as usize >= self.slots.len() {
                self.session_timeout(i, now);
                continue;
            }
            let s = &mut self.slots[i as usize];
            if !s.used {
                continue;
            }
            match s.link.handle_timeout(now) {
                Some(reason) => {
                    log::debug!("link to {} expired: {reason}", s.peer);
                    self.close_slot(i, reason);
                }
                None => self.sync(i, now),
            }
        }
    }
}
