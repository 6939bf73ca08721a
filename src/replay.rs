//! A bounded queue of variable-size messages in one fixed byte ring, oldest
//! first: what a sender keeps until its peer confirms delivery. Used by the
//! session layer (replay after resume) and the delivery ledger (resend to raw
//! peers). Allocated once; nothing grows.

use std::collections::VecDeque;

use crate::fallible::{self, AllocError};

/// Why a message was not queued. Nothing was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// At the depth limit or out of ring space.
    Full,
    /// Larger than the whole ring.
    TooLarge,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplayError::Full => "replay queue full (backpressure: retry later)",
            ReplayError::TooLarge => "message larger than the replay ring",
        })
    }
}

impl std::error::Error for ReplayError {}

#[derive(Clone, Copy, Debug)]
struct Entry {
    start: usize,
    len: usize,
    /// Flips each time placement wraps to the ring's start: the ring is wrapped
    /// exactly when head and tail differ. (Inferring it from offsets breaks when a
    /// zero-length record sits at the head's offset.)
    lap: bool,
}

/// Variable-size records in one fixed byte ring, oldest first.
#[derive(Debug)]
pub(crate) struct ReplayQueue {
    ring: Box<[u8]>,
    entries: VecDeque<Entry>,
    max_entries: usize,
}

impl ReplayQueue {
    /// A ring of `max_bytes` holding at most `max_entries` records.
    pub(crate) fn new(max_bytes: usize, max_entries: usize) -> Self {
        ReplayQueue {
            ring: vec![0u8; max_bytes].into_boxed_slice(),
            entries: VecDeque::with_capacity(max_entries),
            max_entries,
        }
    }

    /// [`ReplayQueue::new`], or an error naming the allocation the host could
    /// not make (the ring's pages stay untouched until written).
    pub(crate) fn try_new(max_bytes: usize, max_entries: usize) -> Result<Self, AllocError> {
        Ok(ReplayQueue {
            ring: fallible::zeroed_bytes(max_bytes, "session replay ring")?,
            entries: fallible::deque_with_capacity(max_entries, "session replay index")?,
            max_entries,
        })
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Payload bytes held (a walk over the records: for stats).
    pub(crate) fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// Drops every record (the memory stays).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Where (offset, lap) a record of `len` bytes would go, if it fits.
    fn place(&self, len: usize) -> Option<(usize, bool)> {
        let cap = self.ring.len();
        let (Some(head), Some(tail)) = (self.entries.front(), self.entries.back()) else {
            return (len <= cap).then_some((0, false));
        };
        let end = tail.start + tail.len;
        if head.lap == tail.lap {
            // Not wrapped: room after the tail, else from the start up to the head.
            if len <= cap - end {
                Some((end, tail.lap))
            } else if len <= head.start {
                Some((0, !tail.lap))
            } else {
                None
            }
        } else if end + len <= head.start {
            Some((end, tail.lap))
        } else {
            None
        }
    }

    /// Where a record of `len` bytes would go now, under `depth` records.
    fn room(&self, len: usize, depth: usize) -> Result<(usize, bool), ReplayError> {
        if len > self.ring.len() {
            return Err(ReplayError::TooLarge);
        }
        if self.entries.len() >= depth.min(self.max_entries) {
            return Err(ReplayError::Full);
        }
        self.place(len).ok_or(ReplayError::Full)
    }

    /// True when [`ReplayQueue::push`] of `len` bytes would succeed now.
    pub(crate) fn fits(&self, len: usize, depth: usize) -> bool {
        self.room(len, depth).is_ok()
    }

    /// Appends a copy of `payload`, if fewer than `depth` records are held and
    /// the ring has room.
    pub(crate) fn push(&mut self, payload: &[u8], depth: usize) -> Result<(), ReplayError> {
        self.push_with(payload.len(), depth, |rec| rec.copy_from_slice(payload))
    }

    /// Appends a record of `len` bytes written by `fill` (for records built
    /// from parts, without a copy in between), under the limits of `push`.
    pub(crate) fn push_with(
        &mut self,
        len: usize,
        depth: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ReplayError> {
        let (start, lap) = self.room(len, depth)?;
        fill(&mut self.ring[start..start + len]);
        self.entries.push_back(Entry { start, len, lap });
        Ok(())
    }

    /// Drops the oldest record.
    pub(crate) fn pop_front(&mut self) {
        self.entries.pop_front();
    }

    /// The `i`-th oldest record.
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        let e = self.entries.get(i)?;
        self.ring.get(e.start..e.start + e.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;

    #[test]
    fn records_come_back_in_order_through_many_wraps() {
        // Against a model: a VecDeque of owned records under the same limits.
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let cap = 16 + rng.below(200);
            let mut q = ReplayQueue::new(cap, 32);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for step in 0..2000u32 {
                if rng.below(3) > 0 {
                    let len = rng.below(cap / 3 + 1);
                    let rec: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
                    match q.push(&rec, 32) {
                        Ok(()) => model.push_back(rec),
                        Err(ReplayError::Full) => {
                            // A ring refuses at most what would not fit contiguously:
                            // never while it holds less than half its bytes.
                            let held: usize = model.iter().map(Vec::len).sum();
                            assert!(
                                model.len() == 32 || held + 2 * len > cap / 2,
                                "seed {seed}: refused {len} with {held} of {cap} held"
                            );
                        }
                        Err(ReplayError::TooLarge) => panic!("seed {seed}: {len} <= {cap}"),
                    }
                } else if !model.is_empty() {
                    q.pop_front();
                    model.pop_front();
                }
                assert_eq!(q.len(), model.len(), "seed {seed}");
                for (i, m) in model.iter().enumerate() {
                    assert_eq!(q.get(i), Some(&m[..]), "seed {seed} step {step}");
                }
            }
        }
    }

    #[test]
    fn a_zero_length_record_at_the_heads_offset_does_not_hide_the_wrap() {
        let mut q = ReplayQueue::new(10, 8);
        q.push(&[1; 6], 8).unwrap(); // [0,6)
        q.push(&[2; 4], 8).unwrap(); // [6,10)
        q.pop_front(); // head at 6
        q.push(&[3; 6], 8).unwrap(); // wraps: [0,6)
        q.push(&[], 8).unwrap(); // zero-length at 6 == head's offset
        assert_eq!(
            q.push(&[4; 1], 8),
            Err(ReplayError::Full),
            "no room: must not overwrite the head"
        );
        assert_eq!(q.get(0), Some(&[2u8; 4][..]));
        assert_eq!(q.get(1), Some(&[3u8; 6][..]));
    }

    #[test]
    fn an_empty_queue_takes_a_record_as_large_as_the_ring() {
        let mut q = ReplayQueue::new(8, 4);
        assert_eq!(q.push(&[1; 9], 4), Err(ReplayError::TooLarge));
        assert_eq!(q.push(&[1; 8], 4), Ok(()));
        assert_eq!(q.push(&[2; 1], 4), Err(ReplayError::Full));
        q.pop_front();
        assert_eq!(q.push(&[2; 8], 4), Ok(()));
    }
}
