//! The node's clock: the system's, called directly (it is read twice per
//! `poll`, and a call through `dyn Clock` cost about 50 instructions per
//! message on rr1), or one given with [`super::Node::with_clock`].

use crate::time::{Clock, Instant, SystemClock};

pub(super) enum NodeClock {
    System(SystemClock),
    Given(Box<dyn Clock>),
}

impl NodeClock {
    #[inline]
    pub(super) fn now(&self) -> Instant {
        match self {
            NodeClock::System(c) => c.now(),
            NodeClock::Given(c) => c.now(),
        }
    }
}
