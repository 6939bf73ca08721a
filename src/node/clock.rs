//! The node's clock: the system's, called directly (it is read twice per
//! `poll`, and a call through `dyn Clock` cost about 50 instructions per
//! message on rr1) and memoised to the millisecond, or one given with
//! [`super::Node::with_clock`].

use crate::time::{Clock, Instant, MilliMemo, SystemClock};

pub(super) enum NodeClock {
    System(SystemClock, MilliMemo),
    Given(Box<dyn Clock>),
}

impl NodeClock {
    /// The system's monotonic clock.
    pub(super) fn system() -> Self {
        NodeClock::System(SystemClock::new(), MilliMemo::default())
    }

    /// The current time, for a caller without `&mut` (the same reading as
    /// [`NodeClock::read`]).
    #[inline]
    pub(super) fn now(&self) -> Instant {
        match self {
            NodeClock::System(c, _) => c.now(),
            NodeClock::Given(c) => c.now(),
        }
    }

    /// The current time, for the node's own reads (`Node::tick`): within the
    /// millisecond last read, a comparison instead of a subtraction (about 40
    /// instructions less per read).
    #[inline]
    pub(super) fn read(&mut self) -> Instant {
        match self {
            NodeClock::System(c, memo) => c.now_memo(memo),
            NodeClock::Given(c) => c.now(),
        }
    }
}
