//! The relay's in-memory queue in numbers, for metrics.

use std::time::Duration;

use super::Relay;
use crate::time::Instant;

/// The upstream queue's numbers at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayQueueStats {
    /// Messages held (queued or awaiting the upstream's reply).
    pub messages: usize,
    /// Their payload bytes.
    pub bytes: usize,
    /// How long the oldest has been held (zero when none is).
    pub oldest_age: Duration,
}

impl Relay {
    /// The queue's numbers at `now` (a walk over the queue: call it for
    /// stats, not per message).
    pub fn queue_stats(&self, now: Instant) -> RelayQueueStats {
        RelayQueueStats {
            messages: self.queue.len(),
            bytes: self.queue.bytes(),
            oldest_age: self
                .queue
                .oldest_received()
                .map_or(Duration::ZERO, |t| now.saturating_since(t)),
        }
    }
}
