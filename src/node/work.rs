//! The node's work lists: links waiting for a turn to read (`ready`), for a
//! write at the next poll (`flush`), for their deadline to reach the heap
//! (`resched`), and for a large block (`waiting`). One type serves all four:
//! each link is in a list at most once, so a list never holds more than
//! `max_links` entries and is allocated once, at build.

use std::collections::VecDeque;

use crate::fallible::{self, AllocError};

/// Link slots in a list, each at most once.
pub(super) struct WorkList {
    order: VecDeque<u32>,
    /// Per slot: in `order` now.
    member: Vec<bool>,
}

impl WorkList {
    /// A list for slots `0..n`, allocated now (`what` names it if that fails).
    pub(super) fn new(n: usize, what: &'static str) -> Result<Self, AllocError> {
        let order = fallible::deque_with_capacity(n, what)?;
        let mut member = fallible::vec_with_capacity(n, what)?;
        member.resize(n, false);
        Ok(WorkList { order, member })
    }

    /// Adds `i` at the back, unless it is listed already.
    pub(super) fn push(&mut self, i: u32) {
        let m = &mut self.member[i as usize];
        if !*m {
            *m = true;
            self.order.push_back(i);
        }
    }

    /// True while `i` is listed.
    pub(super) fn contains(&self, i: u32) -> bool {
        self.member[i as usize]
    }

    /// The first slot, left listed.
    pub(super) fn front(&self) -> Option<u32> {
        self.order.front().copied()
    }

    /// Takes the first slot (first in, first out).
    pub(super) fn pop_front(&mut self) -> Option<u32> {
        let i = self.order.pop_front()?;
        self.member[i as usize] = false;
        Some(i)
    }

    /// Takes the last slot (last in, first out: the order does not matter and
    /// the most recent is the warmest).
    pub(super) fn pop_back(&mut self) -> Option<u32> {
        let i = self.order.pop_back()?;
        self.member[i as usize] = false;
        Some(i)
    }

    /// Moves the first slot to the back (its turn is over; it stays listed).
    pub(super) fn rotate(&mut self) {
        if let Some(i) = self.order.pop_front() {
            self.order.push_back(i);
        }
    }

    /// Slots listed.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing is listed.
    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The listed slots, first to last.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.order.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_listed_once_and_leaves_when_taken() {
        let mut w = WorkList::new(4, "test").expect("small");
        w.push(2);
        w.push(1);
        w.push(2);
        assert_eq!(w.iter().collect::<Vec<_>>(), [2, 1]);
        assert!(w.contains(2));
        w.rotate();
        assert_eq!(w.front(), Some(1));
        assert_eq!(w.pop_front(), Some(1));
        assert!(!w.contains(1));
        assert_eq!(w.pop_back(), Some(2));
        assert!(w.is_empty() && !w.contains(2));
        w.push(2);
        assert_eq!(w.len(), 1);
    }
}
