//! Session settings, pure data with documented defaults.

use core::time::Duration;

#[cfg(doc)]
use super::{SessionEnd, SessionError};

/// How long a session holds a DATA it refused (its link unread) before the
/// driver cuts the link: time for the replies already written to reach the peer,
/// so its resume acknowledges them (see [`SessionConfig::reserve_reply`]).
pub const REFUSAL_HOLD: Duration = Duration::from_millis(200);

/// What `send` does when the replay queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// `send` returns [`SessionError::QueueFull`]; nothing is queued (default).
    #[default]
    Backpressure,
    /// The session closes with [`SessionEnd::QueueFull`] (Diffusion's behaviour).
    CloseSession,
}

/// Session settings with documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Unacknowledged messages kept while connected. Default 1000.
    pub max_depth: usize,
    /// Unacknowledged messages kept while disconnected (at least `max_depth`).
    /// Default 10,000.
    pub max_depth_disconnected: usize,
    /// Bytes of unacknowledged payload kept, whichever limit comes first.
    /// Default 8 MiB.
    pub max_bytes: usize,
    /// How long the server keeps a disconnected session. Default 60 s.
    pub reconnect_timeout: Duration,
    /// Send a cumulative ACK after this many messages. Default 32.
    pub ack_every: u32,
    /// ... or after this delay, whichever comes first. Default 20 ms.
    pub ack_delay: Duration,
    /// Queue-full policy. Default backpressure.
    pub overflow: Overflow,
    /// Request/reply: the application answers each message through the
    /// session, so a message is taken only while the replay queue has room for
    /// a reply as large as it; otherwise it is held unread and the link cut so
    /// the peer resumes (the DATA is refused: neither taken nor
    /// acknowledged, and sent again after the resume). A peer that never acknowledges
    /// then holds at most one queue of replies. The queue's bound is then
    /// `max_depth_disconnected` while connected too, so a requester with the
    /// same settings (at most `max_depth` in flight) never meets a full one.
    /// Default off (`mooring listen --session` turns it on).
    pub reserve_reply: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_depth: 1000,
            max_depth_disconnected: 10_000,
            max_bytes: 8 << 20,
            reconnect_timeout: Duration::from_secs(60),
            ack_every: 32,
            ack_delay: Duration::from_millis(20),
            overflow: Overflow::Backpressure,
            reserve_reply: false,
        }
    }
}
impl SessionConfig {
    /// `self` with the connected queue depth `depth` and the disconnected depth
    /// that goes with it, ten times as many (the defaults: 1,000 and 10,000).
    /// The one place of that rule: the CLI's `--queue` and the C API's
    /// `session_queue` both come through here.
    pub fn with_depth(self, depth: usize) -> SessionConfig {
        SessionConfig {
            max_depth: depth,
            max_depth_disconnected: depth.saturating_mul(10),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_depth_keeps_ten_times_the_depth_while_disconnected() {
        let d = SessionConfig::default();
        assert_eq!(d.with_depth(d.max_depth), d, "the defaults follow the rule");
        let s = d.with_depth(7);
        assert_eq!((s.max_depth, s.max_depth_disconnected), (7, 70));
        assert_eq!(
            SessionConfig {
                max_depth: 7,
                max_depth_disconnected: 70,
                ..d
            },
            s
        );
        assert_eq!(d.with_depth(usize::MAX).max_depth_disconnected, usize::MAX);
    }
}
