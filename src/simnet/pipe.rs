//! One direction of a simulated link: a bounded byte pipe whose segments
//! come due in order.

use std::collections::VecDeque;

/// One direction of a link.
pub(super) struct Pipe {
    /// Bytes written and not read (`read..written`).
    pub(super) buf: VecDeque<u8>,
    pub(super) written: u64,
    pub(super) read: u64,
    /// `(due, upto)`: bytes up to `upto` are readable from `due` (ms).
    pub(super) segs: VecDeque<(u64, u64)>,
    /// The writer closed: EOF after the bytes, visible from then.
    pub(super) fin_at: Option<u64>,
    /// Cut: `ConnectionReset` after the bytes kept, visible from then.
    pub(super) reset_at: Option<u64>,
    /// Readable bytes the reader was last told of; EOF/reset told.
    pub(super) told_upto: u64,
    pub(super) told_closed: bool,
    /// The writer met `WouldBlock` and waits for a writable edge.
    pub(super) want_write: bool,
}

impl Pipe {
    pub(super) fn new(bytes: usize, segs: usize) -> Pipe {
        Pipe {
            buf: VecDeque::with_capacity(bytes),
            written: 0,
            read: 0,
            segs: VecDeque::with_capacity(segs),
            fin_at: None,
            reset_at: None,
            told_upto: 0,
            told_closed: false,
            want_write: false,
        }
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.segs.clear();
        self.written = 0;
        self.read = 0;
        self.fin_at = None;
        self.reset_at = None;
        self.told_upto = 0;
        self.told_closed = false;
        self.want_write = false;
    }

    /// Bytes readable at `now` (their segment due).
    pub(super) fn readable_upto(&self, now: u64) -> u64 {
        self.segs
            .iter()
            .take_while(|s| s.0 <= now)
            .last()
            .map_or(self.read, |s| s.1)
    }

    /// EOF or reset visible at `now` (only once every byte before it is read).
    pub(super) fn closed_at(&self) -> Option<u64> {
        match (self.reset_at, self.fin_at) {
            (Some(r), _) => Some(r),
            (None, f) => f,
        }
    }

    pub(super) fn last_due(&self) -> Option<u64> {
        self.segs.back().map(|s| s.0)
    }
}
