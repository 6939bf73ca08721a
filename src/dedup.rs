//! A bounded duplicate window keyed by message id (HL7 MSH-10).
//!
//! At-least-once senders resend a message whose reply they never saw, and HL7
//! receivers are expected to deduplicate by MSH-10. A relay uses this window so
//! that a resent message is acknowledged again but forwarded once.
//!
//! The window remembers the last `window` distinct ids: a fixed open-addressing
//! table of 64-bit FNV-1a hashes (at most half full) and a ring of the same
//! hashes in arrival order, so the oldest is forgotten first. Both are sized at
//! build. Two different ids with the same 64-bit hash would be taken for one
//! (about 1 in 10^16 for a window of 10,000); that is the documented price of
//! not storing ids of unbounded length.

/// Remembers the last `window` distinct message ids.
#[derive(Debug)]
pub struct DedupWindow {
    table: Box<[u64]>,
    ring: Box<[u64]>,
    head: usize,
    len: usize,
}

const EMPTY: u64 = 0;

fn fnv1a(id: &[u8]) -> u64 {
    let h = id.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // 0 marks an empty table cell.
    if h == EMPTY {
        1
    } else {
        h
    }
}

impl DedupWindow {
    /// A window over the last `window` ids (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        let cells = (2 * window).next_power_of_two();
        DedupWindow {
            table: vec![EMPTY; cells].into_boxed_slice(),
            ring: vec![EMPTY; window].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// How many ids the window remembers at most.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// True (and the id is remembered) when `id` is not among the remembered
    /// ids; false for a duplicate.
    pub fn first_time(&mut self, id: &[u8]) -> bool {
        let h = fnv1a(id);
        if self.find(h).is_some() {
            return false;
        }
        if self.len == self.ring.len() {
            let oldest = self.ring[self.head];
            if let Some(i) = self.find(oldest) {
                self.remove_at(i);
            }
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
        }
        let tail = (self.head + self.len) % self.ring.len();
        self.ring[tail] = h;
        self.len += 1;
        let mask = self.table.len() - 1;
        let mut i = h as usize & mask;
        while self.table[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.table[i] = h;
        true
    }

    fn find(&self, h: u64) -> Option<usize> {
        let mask = self.table.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.table[i] {
                EMPTY => return None,
                x if x == h => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Linear-probing deletion by backward shift: later entries of the same probe
    /// run move into the hole, so lookups never stop early.
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.table.len() - 1;
        self.table[hole] = EMPTY;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let h = self.table[j];
            if h == EMPTY {
                return;
            }
            let home = h as usize & mask;
            // Move `h` back unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.table[hole] = h;
                self.table[j] = EMPTY;
                hole = j;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;
    use std::collections::VecDeque;

    #[test]
    fn a_resent_id_is_a_duplicate_and_a_new_one_is_not() {
        let mut w = DedupWindow::new(4);
        assert!(w.first_time(b"MSG00001"));
        assert!(w.first_time(b"MSG00002"));
        assert!(!w.first_time(b"MSG00001"));
        assert!(w.first_time(b"MSG00003"));
    }

    #[test]
    fn the_oldest_id_is_forgotten_first() {
        let mut w = DedupWindow::new(2);
        assert!(w.first_time(b"A"));
        assert!(w.first_time(b"B"));
        assert!(w.first_time(b"C")); // forgets A
        assert!(!w.first_time(b"B"));
        assert!(w.first_time(b"A"));
    }

    #[test]
    fn window_matches_a_model_under_random_ids() {
        for seed in 0..100 {
            let mut rng = Rng::new(seed);
            let window = 1 + rng.below(64);
            let mut w = DedupWindow::new(window);
            let mut model: VecDeque<u64> = VecDeque::new();
            for _ in 0..5_000 {
                let id = rng.below(3 * window) as u64;
                let key = id.to_le_bytes();
                let expect = !model.contains(&id);
                assert_eq!(w.first_time(&key), expect, "seed {seed} id {id}");
                if expect {
                    if model.len() == window {
                        model.pop_front();
                    }
                    model.push_back(id);
                }
            }
        }
    }
}
