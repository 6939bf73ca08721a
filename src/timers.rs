//! One deadline per link slot in an indexed binary min-heap.
//!
//! The node's next wake-up is the heap's top, and changing a link's deadline
//! costs O(log n), so a wake-up costs the same with 10 or 10,000 links (no scan
//! of all links per tick). Each link reports the earliest of its own timers
//! (`Link::poll_timeout`); activity-driven timers (idle) are lazy inside the
//! link, so most messages do not touch the heap at all.

use crate::fallible::{self, AllocError};
use crate::time::Instant;

const NONE: u32 = u32::MAX;

/// Min-heap of `(deadline, slot)` with a position index per slot.
pub(crate) struct DeadlineHeap {
    heap: Vec<(Instant, u32)>,
    pos: Vec<u32>,
}

impl DeadlineHeap {
    /// A heap for `slots` slots; never allocates after this.
    pub(crate) fn new(slots: usize) -> Result<Self, AllocError> {
        Ok(DeadlineHeap {
            heap: fallible::vec_with_capacity(slots, "deadline heap")?,
            pos: fallible::vec_filled(slots, NONE, "deadline heap")?,
        })
    }

    /// The earliest deadline.
    #[inline]
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.first().map(|e| e.0)
    }

    /// The slot's deadline, if it has one.
    #[cfg(test)]
    pub(crate) fn get(&self, slot: u32) -> Option<Instant> {
        match self.pos[slot as usize] {
            NONE => None,
            p => Some(self.heap[p as usize].0),
        }
    }

    /// Sets (or with `None`, removes) the slot's deadline. Once per message
    /// and link, mostly to what it was: that check is inline.
    #[inline]
    pub(crate) fn set(&mut self, slot: u32, at: Option<Instant>) {
        let p = self.pos[slot as usize];
        let unchanged = match p {
            NONE => at.is_none(),
            p => at == Some(self.heap[p as usize].0),
        };
        if !unchanged {
            self.change(slot, p, at);
        }
    }

    fn change(&mut self, slot: u32, p: u32, at: Option<Instant>) {
        match (p, at) {
            (NONE, None) => {}
            (NONE, Some(t)) => {
                let i = self.heap.len();
                self.heap.push((t, slot));
                self.pos[slot as usize] = i as u32;
                self.up(i);
            }
            (p, Some(t)) => {
                let p = p as usize;
                let old = self.heap[p].0;
                if old == t {
                    return;
                }
                self.heap[p].0 = t;
                if t < old {
                    self.up(p);
                } else {
                    self.down(p);
                }
            }
            (p, None) => self.remove_at(p as usize),
        }
    }

    /// Removes and returns a slot whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u32> {
        let &(t, slot) = self.heap.first()?;
        if t > now {
            return None;
        }
        self.remove_at(0);
        Some(slot)
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        let (_, slot) = self.heap.pop().expect("non-empty: i is a valid index");
        self.pos[slot as usize] = NONE;
        if i < self.heap.len() {
            self.up(i);
            self.down(i);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1 as usize] = a as u32;
        self.pos[self.heap[b].1 as usize] = b as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].0 >= self.heap[parent].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.heap.len() && self.heap[l].0 < self.heap[m].0 {
                m = l;
            }
            if r < self.heap.len() && self.heap[r].0 < self.heap[m].0 {
                m = r;
            }
            if m == i {
                break;
            }
            self.swap(i, m);
            i = m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;

    #[test]
    fn heap_pops_in_deadline_order_under_random_updates() {
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let n = 1 + rng.below(64);
            let mut h = DeadlineHeap::new(n).unwrap();
            let mut model: Vec<Option<u64>> = vec![None; n];
            for _ in 0..rng.below(400) {
                let s = rng.below(n);
                let v = if rng.below(4) == 0 {
                    None
                } else {
                    Some(rng.below(1000) as u64)
                };
                h.set(s as u32, v.map(Instant::from_millis));
                model[s] = v;
                assert_eq!(h.get(s as u32).map(|t| t.as_millis()), v, "seed {seed}");
            }
            let now = Instant::from_millis(rng.below(1000) as u64);
            let mut last = 0;
            while let Some(s) = h.pop_due(now) {
                let t = model[s as usize]
                    .take()
                    .expect("popped slot had a deadline");
                assert!(t >= last && t <= now.as_millis(), "seed {seed}");
                last = t;
            }
            assert!(
                model.iter().flatten().all(|&t| t > now.as_millis()),
                "seed {seed}"
            );
            assert_eq!(
                h.next().map(|t| t.as_millis()),
                model.iter().flatten().min().copied()
            );
        }
    }

    #[test]
    fn many_deadlines_expiring_in_one_tick_all_pop() {
        let mut h = DeadlineHeap::new(10_000).unwrap();
        for s in 0..10_000u32 {
            h.set(s, Some(Instant::from_millis(500)));
        }
        let mut n = 0;
        while h.pop_due(Instant::from_millis(500)).is_some() {
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert_eq!(h.next(), None);
    }
}
