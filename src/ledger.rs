//! The delivery ledger, pure: at-least-once delivery to raw third-party peers,
//! with every message accounted for.
//!
//! A raw peer (an HL7 engine) has no sequence numbers or session: the only
//! proof of delivery is its reply (the HL7 ACK). So the sender keeps each
//! message until its reply arrives, and when a link drops, whatever was written
//! but not acknowledged is *in doubt*: it may or may not have been processed.
//! The ledger resends it on the next link (HL7 receivers deduplicate by
//! MSH-10; see [`crate::dedup`]) up to `retries` times, then declares it failed.
//!
//! Every message the application hands over is in exactly one state, and each
//! transition is reported in order through [`Ledger::poll_outcome`]:
//!
//! ```text
//! queued --written--> written --reply--> acknowledged   (reported, then forgotten)
//!   ^                   |
//!   +--link lost / no reply (attempts <= retries): in doubt, queued again
//!                       +--(attempts > retries)--> failed (reported, then forgotten)
//! ```
//!
//! What is guaranteed: a message is reported `Acknowledged` only after its
//! peer's reply; every message is eventually reported `Acknowledged` or
//! `Failed`; messages are written in the order they were queued, one window at
//! a time; and when a link drops, [`Ledger::handle_link_lost`] names exactly
//! which messages are in doubt. What is not: exactly-once at the peer (a
//! message in doubt may have been processed before the link dropped; the peer's
//! MSH-10 deduplication is what makes the resend harmless).

use std::collections::VecDeque;

use crate::replay::{ReplayError, ReplayQueue};

/// Ledger settings with documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Messages held (queued or awaiting a reply). Default 1000.
    pub capacity: usize,
    /// Bytes of payload held, whichever limit comes first. Default 8 MiB.
    pub max_bytes: usize,
    /// Messages written before their replies arrive (1: MLLP request/response).
    /// Default 1.
    pub window: usize,
    /// Resends of a message in doubt before it fails. Default 3.
    pub retries: u32,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            capacity: 1000,
            max_bytes: 8 << 20,
            window: 1,
            retries: 3,
        }
    }
}

/// A message's id in the ledger: 1, 2, 3, ... in the order they were queued.
pub type MsgId = u64;

/// Where a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting to be written (again, after `attempts` tries).
    Queued,
    /// Written; its reply is awaited.
    Written,
    /// Its reply arrived.
    Acknowledged,
    /// No reply after `retries` resends.
    Failed,
}

/// Why [`Ledger::push`] refused a message. Nothing was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// At `capacity` or out of bytes: backpressure.
    Full,
    /// Larger than `max_bytes`.
    TooLarge,
}

/// What a dropped link left in doubt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InDoubt {
    /// Messages written whose replies never came (first and last id, inclusive).
    pub ids: Option<(MsgId, MsgId)>,
    /// Of those, how many will be resent.
    pub resent: u64,
    /// Of those, how many failed (out of retries).
    pub failed: u64,
}

#[derive(Clone, Copy, Debug)]
struct State {
    delivery: Delivery,
    attempts: u32,
}

/// The ledger. See the module docs.
#[derive(Debug)]
pub struct Ledger {
    cfg: LedgerConfig,
    payloads: ReplayQueue,
    /// States of the held messages, oldest first; `states[0]` is id `base`.
    states: VecDeque<State>,
    base: MsgId,
    outcomes: VecDeque<(MsgId, Delivery)>,
}

impl Ledger {
    /// A ledger; its memory is allocated here, once.
    pub fn new(cfg: LedgerConfig) -> Self {
        let cap = cfg.capacity.max(1);
        Ledger {
            cfg,
            payloads: ReplayQueue::new(cfg.max_bytes, cap),
            states: VecDeque::with_capacity(cap),
            base: 1,
            outcomes: VecDeque::with_capacity(cap),
        }
    }

    /// Messages held (queued or awaiting a reply).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Payload bytes held (a walk over the messages: for stats, not per message).
    pub fn bytes(&self) -> usize {
        self.payloads.bytes()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Takes a message; it is written in order. `Full` is backpressure.
    pub fn push(&mut self, payload: &[u8]) -> Result<MsgId, LedgerError> {
        match self.payloads.push(payload, self.cfg.capacity) {
            Ok(()) => {}
            Err(ReplayError::Full) => return Err(LedgerError::Full),
            Err(ReplayError::TooLarge) => return Err(LedgerError::TooLarge),
        }
        self.states.push_back(State {
            delivery: Delivery::Queued,
            attempts: 0,
        });
        Ok(self.base + self.states.len() as u64 - 1)
    }

    /// The state of message `id`, while held.
    pub fn state(&self, id: MsgId) -> Option<Delivery> {
        let i = id.checked_sub(self.base)?;
        self.states.get(i as usize).map(|s| s.delivery)
    }

    fn written_count(&self) -> usize {
        self.states
            .iter()
            .take_while(|s| s.delivery == Delivery::Written)
            .count()
    }

    /// The next message to write, if the window allows one: the oldest queued.
    #[must_use]
    pub fn poll_transmit(&self) -> Option<(MsgId, &[u8])> {
        let in_flight = self.written_count();
        if in_flight >= self.cfg.window {
            return None;
        }
        let s = self.states.get(in_flight)?;
        if s.delivery != Delivery::Queued {
            return None;
        }
        let payload = self.payloads.get(in_flight)?;
        Some((self.base + in_flight as u64, payload))
    }

    /// Message `id` (from [`Ledger::poll_transmit`]) was written.
    pub fn handle_written(&mut self, id: MsgId) {
        if let Some(s) = id
            .checked_sub(self.base)
            .and_then(|i| self.states.get_mut(i as usize))
        {
            if s.delivery == Delivery::Queued {
                s.delivery = Delivery::Written;
            }
        }
    }

    /// A reply arrived for the oldest message awaiting one (replies come in order
    /// on a link). Returns its id, or `None` if nothing was awaited (an
    /// unexpected reply, for the caller to report).
    pub fn handle_reply(&mut self) -> Option<MsgId> {
        let s = self.states.front()?;
        if s.delivery != Delivery::Written {
            return None;
        }
        let id = self.base;
        self.retire(Delivery::Acknowledged);
        Some(id)
    }

    fn retire(&mut self, how: Delivery) {
        self.states.pop_front();
        self.payloads.pop_front();
        self.outcomes.push_back((self.base, how));
        self.base += 1;
    }

    /// The link dropped, or a reply did not come in time: every message written
    /// and not acknowledged is in doubt. Each is queued again for a resend, or
    /// fails once it has used its `retries`. Returns exactly which.
    pub fn handle_link_lost(&mut self) -> InDoubt {
        let n = self.written_count();
        if n == 0 {
            return InDoubt::default();
        }
        let mut doubt = InDoubt {
            ids: Some((self.base, self.base + n as u64 - 1)),
            ..InDoubt::default()
        };
        for s in self.states.iter_mut().take(n) {
            s.attempts += 1;
            s.delivery = Delivery::Queued;
        }
        // Failures retire from the front so order is kept: a message that ran out
        // of retries fails, and those behind it stay queued.
        while self
            .states
            .front()
            .is_some_and(|s| s.attempts > self.cfg.retries)
        {
            self.retire(Delivery::Failed);
            doubt.failed += 1;
        }
        doubt.resent = n as u64 - doubt.failed;
        doubt
    }

    /// The next outcome (`Acknowledged` or `Failed`), in order of the messages.
    #[must_use]
    pub fn poll_outcome(&mut self) -> Option<(MsgId, Delivery)> {
        self.outcomes.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;

    fn ledger(window: usize, retries: u32) -> Ledger {
        Ledger::new(LedgerConfig {
            capacity: 8,
            max_bytes: 256,
            window,
            retries,
        })
    }

    #[test]
    fn one_message_in_flight_then_the_next_after_its_reply() {
        let mut l = ledger(1, 3);
        let a = l.push(b"A").unwrap();
        let b = l.push(b"B").unwrap();
        assert_eq!(l.poll_transmit(), Some((a, &b"A"[..])));
        l.handle_written(a);
        assert_eq!(l.poll_transmit(), None, "window 1");
        assert_eq!(l.state(a), Some(Delivery::Written));
        assert_eq!(l.handle_reply(), Some(a));
        assert_eq!(l.poll_outcome(), Some((a, Delivery::Acknowledged)));
        assert_eq!(l.poll_transmit(), Some((b, &b"B"[..])));
    }

    #[test]
    fn a_dropped_link_names_what_is_in_doubt_and_resends_it_in_order() {
        let mut l = ledger(2, 3);
        for p in [b"A", b"B", b"C"] {
            l.push(p).unwrap();
        }
        for _ in 0..2 {
            let (id, _) = l.poll_transmit().unwrap();
            l.handle_written(id);
        }
        let d = l.handle_link_lost();
        assert_eq!(d.ids, Some((1, 2)));
        assert_eq!((d.resent, d.failed), (2, 0));
        assert_eq!(l.poll_transmit(), Some((1, &b"A"[..])), "resent first");
        assert_eq!(l.state(3), Some(Delivery::Queued));
    }

    #[test]
    fn a_message_out_of_retries_fails_and_is_reported() {
        let mut l = ledger(1, 1);
        let a = l.push(b"A").unwrap();
        l.push(b"B").unwrap();
        for round in 0..2 {
            let (id, _) = l.poll_transmit().unwrap();
            assert_eq!(id, a, "round {round}");
            l.handle_written(id);
            l.handle_link_lost();
        }
        assert_eq!(l.poll_outcome(), Some((a, Delivery::Failed)));
        assert_eq!(l.state(a), None);
        assert_eq!(l.poll_transmit().map(|x| x.0), Some(2));
    }

    #[test]
    fn a_reply_with_nothing_awaited_is_not_credited() {
        let mut l = ledger(1, 3);
        l.push(b"A").unwrap();
        assert_eq!(l.handle_reply(), None, "not written yet");
        assert_eq!(l.state(1), Some(Delivery::Queued));
    }

    #[test]
    fn full_is_backpressure() {
        let mut l = ledger(1, 3);
        for _ in 0..8 {
            l.push(b"x").unwrap();
        }
        assert_eq!(l.push(b"x"), Err(LedgerError::Full));
        assert_eq!(l.push(&[0; 300]), Err(LedgerError::TooLarge));
    }

    /// Random sends, writes, replies and link drops: every message ends exactly
    /// once as Acknowledged or Failed, in order, and acknowledged only after a
    /// reply to a write of it.
    #[test]
    fn every_message_is_accounted_for_exactly_once_under_random_faults() {
        for seed in 0..500 {
            let mut rng = Rng::new(seed);
            let window = 1 + rng.below(3);
            let retries = rng.below(4) as u32;
            let mut l = ledger(window, retries);
            let mut pushed = 0u64;
            let mut outcomes = Vec::new();
            let mut on_wire: VecDeque<MsgId> = VecDeque::new();
            for _ in 0..2000 {
                match rng.below(6) {
                    0 | 1 => {
                        if l.push(b"m").is_ok() {
                            pushed += 1;
                        }
                    }
                    2 => {
                        if let Some((id, _)) = l.poll_transmit() {
                            l.handle_written(id);
                            on_wire.push_back(id);
                        }
                    }
                    3 | 4 => {
                        // The peer replies to the oldest message it received.
                        if on_wire.pop_front().is_some() {
                            l.handle_reply().expect("a written message awaited it");
                        }
                    }
                    _ => {
                        on_wire.clear();
                        l.handle_link_lost();
                    }
                }
                while let Some(o) = l.poll_outcome() {
                    outcomes.push(o);
                }
            }
            // Drain: a healthy link answers what is on the wire, then everything left.
            while on_wire.pop_front().is_some() {
                l.handle_reply().expect("a written message awaited it");
            }
            for _ in 0..10_000 {
                if let Some((id, _)) = l.poll_transmit() {
                    l.handle_written(id);
                    l.handle_reply().expect("reply");
                } else {
                    break;
                }
            }
            while let Some(o) = l.poll_outcome() {
                outcomes.push(o);
            }
            assert!(l.is_empty(), "seed {seed}");
            let ids: Vec<MsgId> = outcomes.iter().map(|o| o.0).collect();
            let expected: Vec<MsgId> = (1..=pushed).collect();
            assert_eq!(
                ids, expected,
                "seed {seed}: each message ends once, in order"
            );
        }
    }
}
