//! The receive path: reading a link's socket into its receive buffer (which
//! block to read into: the burst-block heuristics), and decoding frames out
//! of it for the link's core.

use super::*;

impl Node {
    /// Decodes the next frame in the link's receive buffer. `None`: needs more bytes.
    pub(super) fn decode(&mut self, i: u32, now: Instant) -> Option<Step> {
        loop {
            if self.slots[i as usize]
                .session
                .is_some_and(|idx| self.session_refusing(idx))
            {
                return None; // a refused DATA holds the link: nothing is read
            }
            let s = &mut self.slots[i as usize];
            let data = self.bufs.data(&s.rx);
            if data.is_empty() {
                return None;
            }
            let res = match self.framing {
                Some(f) => f.decode(data, &mut s.scan, self.cfg.max_frame),
                None => self.codec.decode(data, &mut s.scan, self.cfg.max_frame),
            };
            match res {
                Ok(Decoded::Frame {
                    payload,
                    consumed,
                    skipped,
                }) => {
                    let block = s.rx.block?;
                    if s.session.is_none() && s.link.is_plain_open() {
                        let (d, sync) = s.take_plain_frame(i, block, payload, consumed, skipped);
                        if sync {
                            self.sync(i, now);
                        }
                        return Some(Step::Message(d));
                    }
                    s.link.handle_skipped(skipped);
                    s.last_frame = u32::try_from(consumed).unwrap_or(u32::MAX);
                    let base = s.rx.start as usize;
                    // The codec found the frame in `data` (no second look-up of the block).
                    let frame = data.get(payload.clone()).unwrap_or_default();
                    let action = s.link.handle_frame(now, frame);

                    if let FrameAction::Established(g) = action {
                        self.bufs.consume(&mut s.rx, consumed);
                        s.scan = 0;
                        // Bind first: the WELCOME carries the session's greeting.
                        if !self.bind_session(i, g, now) {
                            return None;
                        }
                        self.sync(i, now);
                        if let Some(idx) = self.slots[i as usize].session {
                            self.pump_session(idx);
                        }
                        return Some(Step::Connected);
                    }
                    self.sync(i, now);
                    let s = &mut self.slots[i as usize];
                    let (offset, data_seq) = match action {
                        FrameAction::Deliver { offset, seq } => (offset, seq),
                        FrameAction::Skip
                        | FrameAction::Established(_)
                        | FrameAction::Ack(_)
                        | FrameAction::SessionSkip(_) => {
                            self.bufs.consume(&mut s.rx, consumed);
                            s.scan = 0;
                            match (action, s.session) {
                                (FrameAction::Ack(seq), Some(idx)) => self.session_ack(idx, seq),
                                (FrameAction::SessionSkip(seq), Some(idx)) => {
                                    self.session_skip(idx, seq, now)
                                }
                                _ => {}
                            }
                            continue;
                        }
                        FrameAction::Close(reason) => {
                            log::info!("closing link to {}: {reason}", s.peer);
                            self.close_slot(i, reason);
                            return None;
                        }
                    };
                    let d = Delivered {
                        slot: i,
                        gen: s.gen,
                        block,
                        start: base + payload.start + offset,
                        end: base + payload.end,
                        consumed,
                    };
                    if let Some(idx) = s.session {
                        match self.session_data(idx, data_seq, d.end - d.start, now) {
                            crate::session::Received::Deliver => {
                                return Some(Step::SessionMessage(idx, d))
                            }
                            crate::session::Received::Duplicate
                            | crate::session::Received::Skipped => {
                                let s = &mut self.slots[i as usize];
                                self.bufs.consume(&mut s.rx, consumed);
                                s.scan = 0;
                                continue;
                            }
                            crate::session::Received::Lost | crate::session::Received::Refused => {
                                return None
                            }
                        }
                    }
                    if self.cfg.mllp_commit_ack {
                        let p = &self.bufs.block(block)[d.start..d.end];
                        if let Some(accepted) = s.link.handle_delivery(p) {
                            self.bufs.consume(&mut s.rx, consumed);
                            s.scan = 0;
                            return Some(Step::CommitAck(accepted));
                        }
                        self.sync(i, now); // the commit ACK the link queued
                    }
                    return Some(Step::Message(d));
                }
                Ok(Decoded::Incomplete { skipped, needed }) => {
                    if skipped > 0 {
                        s.link.handle_skipped(skipped);
                        self.bufs.consume(&mut s.rx, skipped);
                        s.scan = 0;
                        continue;
                    }
                    // What is left is the start of a frame: its deadline runs.
                    let earlier = s.link.handle_partial_frame(now, s.rx.len());
                    if let Some(total) = needed {
                        // Length known from the header: move to a big enough block now.
                        let more = total.saturating_sub(s.rx.len());
                        if !self.reserve_rx(i, more) {
                            self.wait_for_large(i);
                        }
                    }
                    if earlier {
                        self.resched(i);
                    }
                    return None;
                }
                Err(e) => {
                    let reason = s.link.handle_decode_error(e);
                    warn_limited!(
                        self.warnings[Warning::BadFrame as usize],
                        now,
                        "closing link to {}: {reason}",
                        s.peer
                    );
                    self.close_slot(i, reason);
                    return None;
                }
            }
        }
    }

    pub(super) fn wait_for_large(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        // Not the peer's doing: its idle and frame timers stop meanwhile.
        s.link.pause_reads(self.now);
        if !s.in_waiting {
            s.in_waiting = true;
            self.waiting.push_back(i);
            self.stats.large_buffer_waits += 1;
        }
    }

    /// The link stops reading for now: a short tail moves out, so the burst block
    /// can serve the next link that reads; a long one stays (moving a large
    /// partial frame out and back costs more than the reads the block saves).
    #[inline]
    pub(super) fn pause_rx(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if s.rx.len() <= self.bufs.block_size(Tier::Small) / 4 {
            self.bufs.park(&mut s.rx);
        }
    }

    /// Reads once into the link's receive buffer. True when bytes arrived.
    pub(super) fn fill(&mut self, i: u32, now: Instant) -> bool {
        let held = self.slots[i as usize]
            .session
            .is_some_and(|idx| self.session_refusing(idx));
        let s = &mut self.slots[i as usize];
        if !s.readable || s.in_waiting || !s.link.may_read() || held {
            self.pause_rx(i);
            return false;
        }
        // Frames that fit the burst block many times over read into it; larger
        // ones read into a large block (below). Each read leaves a partial frame
        // to move to the front, and in a large block that happens far less often
        // (callgrind, 16 KiB frames through a 64 KiB burst block: 27,000
        // instructions per message against 21,600).
        let last = s.last_frame as usize;
        if s.hot && last <= self.bufs.block_size(Tier::Burst) / 8 && self.bufs.take_burst(&mut s.rx)
        {
            return self.read_once(i, now);
        }
        let cap = self.bufs.capacity(&s.rx);
        let large_frames = last > self.bufs.block_size(Tier::Small);
        if cap == 0 && large_frames && self.bufs.large_available() {
            // This link's last frame was large: read straight into a large block
            // rather than fill a working block and copy it over. (Falls back to
            // a working block when the large pool has none free.)
            let small = self.bufs.block_size(Tier::Small);
            if self.reserve_rx(i, small + 1) {
                return self.read_once(i, now);
            }
        }
        if cap == 0 || self.slots[i as usize].rx.end as usize == cap {
            // Room for one more byte: compacts first, and grows into a large block
            // only when the frame at the front fills the working one.
            if !self.reserve_rx(i, 1) {
                let s = &mut self.slots[i as usize];
                if self.bufs.capacity(&s.rx) >= self.bufs.block_size(Tier::Large) {
                    // A full large block without a frame: the decoder must have
                    // flagged it; close rather than spin.
                    self.close_slot(i, CloseReason::FrameTooLarge);
                } else {
                    self.wait_for_large(i);
                }
                return false;
            }
        }
        self.read_once(i, now)
    }

    /// One read into the free tail of the link's receive block.
    pub(super) fn read_once(&mut self, i: u32, now: Instant) -> bool {
        #[cfg(feature = "tls")]
        if self.slots[i as usize].tls.is_some() {
            return self.read_tls(i, now);
        }
        loop {
            let s = &mut self.slots[i as usize];
            let Some(sock) = s.sock.as_mut() else {
                return false;
            };
            let small = self.bufs.block_size(Tier::Small);
            let spare = self.bufs.spare(&s.rx);
            let room = whole_frames(spare.len(), s.rx.len(), s.last_frame as usize, small);
            match sock.read(&mut spare[..room]) {
                Ok(0) => {
                    s.readable = false;
                    self.close_slot(i, CloseReason::PeerClosed);
                    return false;
                }
                Ok(n) => {
                    // A read shorter than the room offered emptied the socket; any
                    // later byte raises a new edge, so skip the WouldBlock read.
                    // Not after a FIN was reported: its edge is spent, read to EOF.
                    let short = n < room;
                    s.round_bytes = s.round_bytes.saturating_add(n as u32);
                    if short {
                        end_round(s, self.bufs.block_size(Tier::Small));
                    } else {
                        s.hot = true;
                    }
                    if short && !s.read_closed {
                        s.readable = false;
                    }
                    if s.rx.block.is_some_and(|b| b.tier == Tier::Burst) {
                        self.stats.burst_reads += 1;
                    }
                    s.rx.end += n as u32;
                    s.link.handle_input(now, n);
                    return true;
                }
                Err(e) if would_block(&e) => {
                    s.readable = false;
                    end_round(s, self.bufs.block_size(Tier::Small));
                    if s.rx.is_empty() {
                        self.bufs.release(&mut s.rx);
                    }
                    return false;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    s.readable = false;
                    log::debug!("read from {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return false;
                }
            }
        }
    }
}

/// How much of `spare` free bytes one read offers, with `pending` bytes of a
/// frame already in the block and `last` the size of the link's last frame.
/// Frames larger than a working block (`small`) are read up to the end of the
/// last whole frame that fits, taking the next ones to be as large: a read
/// then ends where a frame does, the block empties once its frames are
/// consumed, and no partial frame of up to `last` bytes is moved to the
/// block's front before each refill (big128k len32: 18,700 of 19,700
/// user-space instructions per message). Anything else: all of `spare`.
#[inline]
pub(super) fn whole_frames(spare: usize, pending: usize, last: usize, small: usize) -> usize {
    if last <= small || pending >= last {
        return spare;
    }
    let first = last - pending;
    match spare.checked_sub(first) {
        Some(more) => first + more / last * last,
        None => spare,
    }
}

/// The socket was found empty: the link stays hot for the next round when this
/// one brought more than a working block (`small`) holds.
pub(super) fn end_round(s: &mut Slot, small: usize) {
    s.hot = s.round_bytes as usize > small;
    s.round_bytes = 0;
}

#[cfg(test)]
mod tests {
    use super::whole_frames;

    #[test]
    fn large_frames_are_read_up_to_a_frame_boundary_and_small_ones_fill_the_room() {
        let small = 16;
        // Frames of a working block or less: all the room.
        assert_eq!(whole_frames(1000, 3, 16, small), 1000);
        // 100-byte frames: whole frames, then the rest of a started one.
        assert_eq!(whole_frames(1000, 0, 100, small), 1000);
        assert_eq!(whole_frames(1050, 0, 100, small), 1000);
        assert_eq!(whole_frames(1050, 30, 100, small), 70 + 900);
        // Room for less than the started frame: all of it (the block is then
        // too small anyway, and grows or compacts as before).
        assert_eq!(whole_frames(50, 30, 100, small), 50);
        // A frame larger than the last one: no guess.
        assert_eq!(whole_frames(1050, 120, 100, small), 1050);
    }
}
