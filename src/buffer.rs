//! Fixed byte arenas carved into blocks, sized once when the node is built.
//!
//! Idle links must be cheap (10,000 links with a 1 MiB maximum frame cannot each
//! own 1 MiB), so a link owns no bytes while it has nothing in flight: it borrows
//! a working block (`buffer_size`) from the small pool when bytes arrive or are
//! queued, a large block (`max_frame` + framing) only while a frame bigger than
//! that is in flight, and gives each back as soon as it is empty (a few busy
//! links keep an emptied transmit working block: see `node/warm.rs`). The small pool
//! has two blocks per link slot, so a link always gets one; the large pool is
//! shared and may run dry, which is backpressure (stop reading, `TxFull`), never
//! growth. Free lists are LIFO, so the same few blocks stay hot and untouched
//! pages of the arena never become resident.
//!
//! One more block, the burst block (`read_burst`), is for reading only: a link
//! whose reads keep filling its working block (a stream, a pipelined burst)
//! borrows it for larger reads, so fewer reads per message without a larger
//! block for every link. It goes back as soon as the link's bytes are consumed
//! or the link pauses ([`Buffers::park`]).

use crate::fallible::{self, AllocError};

/// Which pool a block came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    Small,
    Large,
    Burst,
}

/// A borrowed block: its pool and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) tier: Tier,
    idx: u32,
}

struct Pool {
    mem: Box<[u8]>,
    block: usize,
    /// Free block indices; capacity reserved at build, never exceeded.
    free: Vec<u32>,
}

impl Pool {
    fn new(block: usize, count: usize, what: &'static str) -> Result<Self, AllocError> {
        // Zeroed memory is calloc: pages stay virtual until first touched.
        let bytes = block
            .checked_mul(count)
            .ok_or(AllocError::too_large(what))?;
        // Blocks are numbered with u32.
        let count32 = u32::try_from(count).map_err(|_| AllocError { what, bytes })?;
        let mem = fallible::zeroed_bytes(bytes, what)?;
        let mut free = fallible::vec_with_capacity(count, what)?;
        free.extend((0..count32).rev());
        Ok(Pool { mem, block, free })
    }

    fn range(&self, idx: u32) -> core::ops::Range<usize> {
        let start = idx as usize * self.block;
        start..start + self.block
    }
}

/// A link's bytes in one direction: `block[start..end]` holds data not yet consumed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Buf {
    pub(crate) block: Option<Block>,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Buf {
    pub(crate) fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// The node's pools, indexed by [`Tier`].
pub(crate) struct Buffers {
    pools: [Pool; 3],
}

impl Buffers {
    /// Pools of `(block size, count)` for small, large and burst blocks;
    /// `OutOfMemory` (naming the pool and its size) when the host cannot
    /// provide them.
    pub(crate) fn new(
        small: (usize, usize),
        large: (usize, usize),
        burst: usize,
    ) -> Result<Self, AllocError> {
        Ok(Buffers {
            pools: [
                Pool::new(small.0, small.1, "working buffers")?,
                Pool::new(large.0, large.1, "large buffers")?,
                Pool::new(burst, usize::from(burst > 0), "read burst buffer")?,
            ],
        })
    }

    fn pool(&self, t: Tier) -> &Pool {
        &self.pools[t as usize]
    }

    fn pool_mut(&mut self, t: Tier) -> &mut Pool {
        &mut self.pools[t as usize]
    }

    /// Two different pools at once (`a != b`), for copies between them.
    fn two_pools(&mut self, a: Tier, b: Tier) -> (&mut Pool, &mut Pool) {
        debug_assert_ne!(a, b);
        let (ia, ib) = (a as usize, b as usize);
        if ia < ib {
            let (lo, hi) = self.pools.split_at_mut(ib);
            (&mut lo[ia], &mut hi[0])
        } else {
            let (lo, hi) = self.pools.split_at_mut(ia);
            (&mut hi[0], &mut lo[ib])
        }
    }

    /// Moves the pending bytes of `b` into a fresh block of tier `to` (which
    /// must hold them), giving the old block back. False when none is free.
    fn move_to(&mut self, b: &mut Buf, to: Tier) -> bool {
        let Some(old) = b.block else { return false };
        let (s, e) = (b.start as usize, b.end as usize);
        let len = e - s;
        if old.tier == to || len > self.block_size(to) {
            return false;
        }
        let Some(new) = self.take(to) else {
            return false;
        };
        let (src, dst) = self.two_pools(old.tier, to);
        let r = dst.range(new.idx);
        dst.mem[r][..len].copy_from_slice(&src.mem[src.range(old.idx)][s..e]);
        self.give(old);
        *b = Buf {
            block: Some(new),
            start: 0,
            end: len as u32,
        };
        true
    }

    /// Moves `b` (empty, or a few bytes in a working block) into the burst
    /// block for a larger read. False (nothing changed) when the burst block
    /// is in use, absent, or would not be larger than what `b` has room for.
    pub(crate) fn take_burst(&mut self, b: &mut Buf) -> bool {
        let burst = self.block_size(Tier::Burst);
        if b.block.is_some_and(|blk| blk.tier != Tier::Small)
            || burst <= self.block_size(Tier::Small)
            || b.len() > burst / 2
            || self.pool(Tier::Burst).free.is_empty()
        {
            return false;
        }
        if b.block.is_none() {
            return match self.take(Tier::Burst) {
                Some(blk) => {
                    *b = Buf {
                        block: Some(blk),
                        start: 0,
                        end: 0,
                    };
                    true
                }
                None => false,
            };
        }
        self.move_to(b, Tier::Burst)
    }

    /// A link pausing with bytes in the burst block moves them to a working
    /// (or large) block, so the next link can have it. False when they stay
    /// (no block of the size needed is free: they move later).
    pub(crate) fn park(&mut self, b: &mut Buf) -> bool {
        if !b.block.is_some_and(|blk| blk.tier == Tier::Burst) {
            return true;
        }
        if b.is_empty() {
            self.release(b);
            return true;
        }
        let to = if b.len() <= self.block_size(Tier::Small) {
            Tier::Small
        } else {
            Tier::Large
        };
        self.move_to(b, to)
    }

    /// Size of a block of this tier.
    pub(crate) fn block_size(&self, t: Tier) -> usize {
        self.pool(t).block
    }

    /// Capacity of the block `b` holds (0 without one).
    pub(crate) fn capacity(&self, b: &Buf) -> usize {
        b.block.map_or(0, |blk| self.block_size(blk.tier))
    }

    /// True when a large block is free.
    pub(crate) fn large_available(&self) -> bool {
        !self.pool(Tier::Large).free.is_empty()
    }

    /// True when `reserve(b, want)` would have to take a large block.
    pub(crate) fn needs_large(&self, b: &Buf, want: usize) -> bool {
        let need = b.len() + want;
        match b.block {
            None => need > self.block_size(Tier::Small),
            Some(_) => need > self.capacity(b),
        }
    }

    /// True when a receive buffer may take a large block while a transmit
    /// buffer is kept one: with two or more, one always stays free.
    pub(crate) fn large_left_for_receive(&self) -> bool {
        let pool = self.pool(Tier::Large);
        let total = pool.mem.len() / pool.block.max(1);
        pool.free.len() >= 2 || (total < 2 && !pool.free.is_empty())
    }

    fn take(&mut self, t: Tier) -> Option<Block> {
        self.pool_mut(t)
            .free
            .pop()
            .map(|idx| Block { tier: t, idx })
    }

    fn give(&mut self, blk: Block) {
        let pool = self.pool_mut(blk.tier);
        debug_assert!(pool.free.len() < pool.free.capacity() || pool.free.capacity() == 0);
        pool.free.push(blk.idx);
    }

    /// The whole block `blk` (per message: inline).
    #[inline(always)]
    pub(crate) fn block(&self, blk: Block) -> &[u8] {
        let p = self.pool(blk.tier);
        &p.mem[p.range(blk.idx)]
    }

    fn block_mut(&mut self, blk: Block) -> &mut [u8] {
        let p = self.pool_mut(blk.tier);
        let r = p.range(blk.idx);
        &mut p.mem[r]
    }

    /// The unconsumed bytes of `b` (per message: inline).
    #[inline(always)]
    pub(crate) fn data(&self, b: &Buf) -> &[u8] {
        match b.block {
            Some(blk) => &self.block(blk)[b.start as usize..b.end as usize],
            None => &[],
        }
    }

    /// Gives `b`'s block back to its pool.
    pub(crate) fn release(&mut self, b: &mut Buf) {
        if let Some(blk) = b.block.take() {
            self.give(blk);
        }
        b.start = 0;
        b.end = 0;
    }

    /// Drops `n` consumed bytes from the front; returns the block when it empties.
    pub(crate) fn consume(&mut self, b: &mut Buf, n: usize) {
        b.start = (b.start as usize + n).min(b.end as usize) as u32;
        if b.is_empty() {
            self.release(b);
        }
    }

    /// [`Buffers::consume`] for a transmit buffer: an emptied working block
    /// stays with `b`, rewound to its front, and true says so (the caller
    /// bounds how many links keep one); any other emptied block goes back.
    #[inline]
    pub(crate) fn consume_keeping(&mut self, b: &mut Buf, n: usize) -> bool {
        b.start = (b.start as usize + n).min(b.end as usize) as u32;
        if !b.is_empty() {
            return false;
        }
        if b.block.is_some_and(|blk| blk.tier == Tier::Small) {
            b.start = 0;
            b.end = 0;
            return true;
        }
        self.release(b);
        false
    }

    /// Makes room for at least `want` free bytes at the tail of `b`, moving to a
    /// larger block if needed. Returns false (and changes nothing) when it cannot.
    pub(crate) fn reserve(&mut self, b: &mut Buf, want: usize) -> bool {
        let need = b.len() + want;
        if b.block.is_none() {
            let tier = if need <= self.block_size(Tier::Small) {
                Tier::Small
            } else {
                Tier::Large
            };
            if need > self.block_size(tier) {
                return false;
            }
            match self.take(tier) {
                Some(blk) => {
                    *b = Buf {
                        block: Some(blk),
                        start: 0,
                        end: 0,
                    };
                    return true;
                }
                None => return false,
            }
        }
        let cap = self.capacity(b);
        if cap - b.end as usize >= want {
            return true;
        }
        if need <= cap {
            self.compact(b);
            return true;
        }
        // Grow into a large block: copy the pending bytes over.
        if need > self.block_size(Tier::Large) {
            return false;
        }
        self.move_to(b, Tier::Large)
    }

    /// Moves the pending bytes of `b` to the front of its block.
    pub(crate) fn compact(&mut self, b: &mut Buf) {
        if let Some(blk) = b.block {
            if b.start > 0 {
                let (s, e) = (b.start as usize, b.end as usize);
                self.block_mut(blk).copy_within(s..e, 0);
                b.end -= b.start;
                b.start = 0;
            }
        }
    }

    /// Bytes `range` of block `src` and the free tail of `dst`'s block, at once:
    /// a frame goes from one link's receive block into a transmit block with one
    /// copy. `None` when `dst` has no block, or it is `src` itself. Once per
    /// echoed or forwarded frame: inline.
    #[inline(always)]
    pub(crate) fn src_and_spare(
        &mut self,
        src: Block,
        range: core::ops::Range<usize>,
        dst: &Buf,
    ) -> Option<(&[u8], &mut [u8])> {
        let d = dst.block?;
        if d == src || range.end > self.block_size(src.tier) {
            return None;
        }
        let end = dst.end as usize;
        if src.tier != d.tier {
            let (sp, dp) = self.two_pools(src.tier, d.tier);
            let s = &sp.mem[sp.range(src.idx)][range];
            let r = dp.range(d.idx);
            return Some((s, &mut dp.mem[r][end..]));
        }
        let pool = self.pool_mut(src.tier);
        let (rs, rd) = (pool.range(src.idx), pool.range(d.idx));
        // Two different blocks of one arena: split between them. Each side
        // starts at its block (`range` and `end` lie within a block, checked
        // above and kept by `Buf`), so only the slices' own checks remain.
        let (s, dst) = if rs.start < rd.start {
            let (lo, hi) = pool.mem.split_at_mut(rd.start);
            (lo.get(rs.start..)?, hi)
        } else {
            let (lo, hi) = pool.mem.split_at_mut(rs.start);
            (&*hi, lo.get_mut(rd.start..)?)
        };
        Some((s.get(range)?, dst.get_mut(end..rd.len())?))
    }

    /// The free tail of `b`'s block, for a read or an encode (inline: the
    /// per-message transmit path calls it).
    #[inline(always)]
    pub(crate) fn spare(&mut self, b: &Buf) -> &mut [u8] {
        match b.block {
            Some(blk) => {
                let end = b.end as usize;
                &mut self.block_mut(blk)[end..]
            }
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(bufs: &mut Buffers, b: &mut Buf, bytes: &[u8]) -> bool {
        if !bufs.reserve(b, bytes.len()) {
            return false;
        }
        bufs.spare(b)[..bytes.len()].copy_from_slice(bytes);
        b.end += bytes.len() as u32;
        true
    }

    #[test]
    fn a_link_holds_no_block_while_empty() {
        let mut bufs = Buffers::new((8, 2), (32, 1), 0).unwrap();
        let mut b = Buf::default();
        assert!(push(&mut bufs, &mut b, b"abc"));
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Small));
        bufs.consume(&mut b, 3);
        assert!(b.block.is_none());
        assert_eq!(bufs.pool(Tier::Small).free.len(), 2);
    }

    #[test]
    fn an_emptied_transmit_buffer_keeps_only_a_working_block() {
        let mut bufs = Buffers::new((8, 2), (32, 1), 0).unwrap();
        let mut b = Buf::default();
        assert!(push(&mut bufs, &mut b, b"abcdef"));
        assert!(!bufs.consume_keeping(&mut b, 2), "not empty yet");
        assert_eq!(bufs.data(&b), b"cdef");
        assert!(bufs.consume_keeping(&mut b, 4));
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Small));
        assert_eq!((b.start, b.end), (0, 0), "rewound: the whole block is room");
        assert_eq!(bufs.pool(Tier::Small).free.len(), 1);
        assert!(push(&mut bufs, &mut b, b"01234567"));
        assert_eq!(
            bufs.pool(Tier::Small).free.len(),
            1,
            "the kept block serves"
        );
        assert!(push(&mut bufs, &mut b, b"89"));
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Large));
        assert!(!bufs.consume_keeping(&mut b, 10), "a large block goes back");
        assert!(b.block.is_none());
        assert!(bufs.large_available());
    }

    #[test]
    fn growing_past_a_small_block_moves_to_a_large_one_keeping_bytes() {
        let mut bufs = Buffers::new((8, 2), (32, 1), 0).unwrap();
        let mut b = Buf::default();
        assert!(push(&mut bufs, &mut b, b"0123456"));
        bufs.consume(&mut b, 2);
        assert!(push(&mut bufs, &mut b, b"789abcdef"));
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Large));
        assert_eq!(bufs.data(&b), b"23456789abcdef");
        assert_eq!(bufs.pool(Tier::Small).free.len(), 2, "small block returned");
    }

    #[test]
    fn a_frame_copies_between_blocks_of_either_pool_in_either_order() {
        for (src_large, dst_large) in [(false, false), (false, true), (true, false)] {
            for order in 0..2 {
                let mut bufs = Buffers::new((16, 4), (64, 2), 0).unwrap();
                let mut a = Buf::default();
                let mut b = Buf::default();
                let fill = |bufs: &mut Buffers, x: &mut Buf, large: bool, byte: u8| {
                    let len = if large { 40 } else { 8 };
                    assert!(push(bufs, x, &vec![byte; len]));
                };
                // Take the blocks in both orders so the source sits below or above.
                if order == 0 {
                    fill(&mut bufs, &mut a, src_large, 1);
                    fill(&mut bufs, &mut b, dst_large, 2);
                } else {
                    fill(&mut bufs, &mut b, dst_large, 2);
                    fill(&mut bufs, &mut a, src_large, 1);
                }
                let src = a.block.unwrap();
                let (s, spare) = bufs.src_and_spare(src, 0..4, &b).unwrap();
                assert_eq!(s, &[1, 1, 1, 1]);
                let room = spare.len();
                spare[..4].copy_from_slice(&[9, 9, 9, 9]);
                b.end += 4;
                assert_eq!(room, bufs.capacity(&b) - (b.end as usize - 4));
                assert_eq!(&bufs.data(&b)[b.len() - 4..], &[9, 9, 9, 9]);
                assert_eq!(&bufs.data(&a)[..4], &[1, 1, 1, 1], "source untouched");
            }
        }
        let mut bufs = Buffers::new((16, 4), (64, 2), 0).unwrap();
        let mut a = Buf::default();
        assert!(push(&mut bufs, &mut a, b"xy"));
        assert!(
            bufs.src_and_spare(a.block.unwrap(), 0..2, &a).is_none(),
            "same block"
        );
    }

    #[test]
    fn an_empty_large_pool_refuses_without_changing_anything() {
        let mut bufs = Buffers::new((8, 2), (32, 1), 0).unwrap();
        let mut a = Buf::default();
        assert!(push(&mut bufs, &mut a, &[1; 20]));
        let mut b = Buf::default();
        assert!(push(&mut bufs, &mut b, b"1234"));
        assert!(!push(&mut bufs, &mut b, &[2; 10]));
        assert_eq!(bufs.data(&b), b"1234");
        assert!(
            !push(&mut bufs, &mut a, &[3; 20]),
            "over the large block size"
        );
    }

    #[test]
    fn a_burst_read_takes_the_tail_along_and_parks_it_back_in_a_working_block() {
        let mut bufs = Buffers::new((8, 2), (32, 1), 24).unwrap();
        let mut a = Buf::default();
        assert!(push(&mut bufs, &mut a, b"abcdefgh"));
        bufs.consume(&mut a, 5);
        assert!(bufs.take_burst(&mut a));
        assert_eq!(a.block.map(|x| x.tier), Some(Tier::Burst));
        assert_eq!(bufs.data(&a), b"fgh");
        assert_eq!(bufs.spare(&a).len(), 21, "a read may fill the burst block");
        let mut b = Buf::default();
        assert!(!bufs.take_burst(&mut b), "one link at a time");
        assert!(push(&mut bufs, &mut a, b"0123"));
        bufs.consume(&mut a, 4);
        assert!(bufs.park(&mut a));
        assert_eq!(a.block.map(|x| x.tier), Some(Tier::Small));
        assert_eq!(bufs.data(&a), b"123");
        assert!(bufs.take_burst(&mut b), "free again once parked");
        bufs.consume(&mut b, 0);
        assert!(b.block.is_none(), "an empty burst buffer goes back at once");
    }

    #[test]
    fn a_frame_outgrowing_the_burst_block_moves_to_a_large_one_and_a_big_tail_parks_there() {
        let mut bufs = Buffers::new((8, 2), (64, 1), 24).unwrap();
        let mut a = Buf::default();
        assert!(bufs.take_burst(&mut a));
        assert!(push(&mut bufs, &mut a, &[7; 20]));
        assert!(push(&mut bufs, &mut a, &[8; 10]));
        assert_eq!(a.block.map(|x| x.tier), Some(Tier::Large));
        assert_eq!(bufs.data(&a)[19..21], [7, 8]);
        let mut b = Buf::default();
        assert!(bufs.take_burst(&mut b));
        assert!(push(&mut bufs, &mut b, &[9; 12]));
        assert!(!bufs.park(&mut b), "12 bytes need the large block, in use");
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Burst));
        bufs.release(&mut a);
        assert!(bufs.park(&mut b));
        assert_eq!(b.block.map(|x| x.tier), Some(Tier::Large));
        assert_eq!(bufs.data(&b), &[9; 12]);
    }

    #[test]
    fn without_a_burst_block_or_with_one_no_larger_than_a_working_block_reads_stay_put() {
        for burst in [0, 8] {
            let mut bufs = Buffers::new((8, 2), (32, 1), burst).unwrap();
            let mut a = Buf::default();
            assert!(!bufs.take_burst(&mut a));
            assert!(a.block.is_none());
        }
    }
}
