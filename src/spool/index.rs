//! The in-memory index of undelivered messages: a ring of fixed capacity, in
//! sequence order, sized once at open.
//!
//! A message marked delivered keeps its slot until the mark is durable: a
//! crash before then brings it back, and recovery must find room for it.

use super::{SegmentId, Seq, SpoolError};

/// Where an undelivered message lives. Copy it out of
/// [`Journal::undelivered`](super::Journal::undelivered) and pass it to
/// [`Journal::read`](super::Journal::read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The message's sequence number (its id in the spool).
    pub seq: Seq,
    pub(crate) segment: SegmentId,
    pub(crate) offset: u32,
}

pub(crate) struct Index {
    ring: Vec<Entry>,
    head: usize,
    /// Entries held, delivered ones included.
    len: usize,
    /// The first `delivered` entries are marked delivered, not yet durably.
    delivered: usize,
}

impl Index {
    /// An index for `capacity` entries, allocated now or refused.
    pub(crate) fn with_capacity(capacity: usize) -> Result<Self, SpoolError> {
        let mut ring = Vec::new();
        ring.try_reserve_exact(capacity)
            .map_err(|_| SpoolError::Config("index_entries: cannot allocate the index"))?;
        let empty = Entry {
            seq: 0,
            segment: 0,
            offset: 0,
        };
        ring.resize(capacity, empty);
        Ok(Index {
            ring,
            head: 0,
            len: 0,
            delivered: 0,
        })
    }

    /// Undelivered entries.
    pub(crate) fn len(&self) -> usize {
        self.len - self.delivered
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.ring.len()
    }

    fn slot(&self, i: usize) -> usize {
        (self.head + i) % self.ring.len()
    }

    /// Appends an entry; the caller keeps sequence numbers increasing.
    pub(crate) fn push(&mut self, entry: Entry) -> Result<(), SpoolError> {
        if self.is_full() {
            return Err(SpoolError::IndexFull);
        }
        let at = self.slot(self.len);
        self.ring[at] = entry;
        self.len += 1;
        Ok(())
    }

    /// Puts the entries in sequence order (recovery pushes them segment by
    /// segment; a crash can leave a segment's records out of that order).
    pub(crate) fn sort(&mut self) {
        self.ring.rotate_left(self.head);
        self.head = 0;
        self.ring[..self.len].sort_unstable_by_key(|e| e.seq);
    }

    /// Marks every entry up to and including `seq` delivered.
    pub(crate) fn deliver_through(&mut self, seq: Seq) {
        while self.delivered < self.len && self.ring[self.slot(self.delivered)].seq <= seq {
            self.delivered += 1;
        }
    }

    /// Frees the slots of delivered entries up to and including `seq` (their
    /// mark is durable now).
    pub(crate) fn release_through(&mut self, seq: Seq) {
        while self.delivered > 0 && self.ring[self.head].seq <= seq {
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
            self.delivered -= 1;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        (self.delivered..self.len).map(move |i| self.ring[self.slot(i)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: Seq) -> Entry {
        Entry {
            seq,
            segment: 0,
            offset: 0,
        }
    }

    #[test]
    fn a_ring_keeps_order_and_refuses_past_capacity() {
        let mut ix = Index::with_capacity(3).unwrap();
        for s in 1..=3 {
            ix.push(e(s)).unwrap();
        }
        assert_eq!(ix.push(e(4)), Err(SpoolError::IndexFull));
        ix.deliver_through(2);
        assert_eq!(ix.len(), 1);
        assert_eq!(
            ix.push(e(4)),
            Err(SpoolError::IndexFull),
            "delivered, not durable"
        );
        ix.release_through(1);
        assert_eq!(ix.push(e(4)), Ok(()));
        assert_eq!(ix.iter().map(|x| x.seq).collect::<Vec<_>>(), [3, 4]);
        ix.release_through(2);
        ix.push(e(5)).unwrap();
        assert_eq!(ix.iter().map(|x| x.seq).collect::<Vec<_>>(), [3, 4, 5]);
        ix.deliver_through(10);
        ix.release_through(10);
        for s in [9, 7, 8] {
            ix.push(e(s)).unwrap();
        }
        ix.sort();
        assert_eq!(ix.iter().map(|x| x.seq).collect::<Vec<_>>(), [7, 8, 9]);
        ix.deliver_through(9);
        ix.release_through(9);
        assert_eq!(ix.len(), 0);
    }
}
