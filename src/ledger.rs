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
//!
//! One engine serves every at-least-once sender: [`Deliveries`] is the state
//! machine (states, attempts, outcomes) without payloads; [`Ledger`] adds the
//! messages' bytes for the relay's queue, and [`crate::Client`] runs its
//! requests through a `Deliveries` of one (its request's bytes are the
//! caller's). How a loss counts is the caller's [`Loss`]: in doubt (uses a
//! retry), unread (the keep-open race: one free resend) or fatal (fails now).

use std::collections::VecDeque;

use crate::replay::{ReplayError, ReplayQueue};

/// Ledger settings with documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LedgerConfig {
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
pub(crate) type MsgId = u64;

/// Where a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
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
pub(crate) enum LedgerError {
    /// At `capacity` or out of bytes: backpressure.
    Full,
    /// Larger than `max_bytes`.
    TooLarge,
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LedgerError::Full => "delivery ledger full (backpressure: retry later)",
            LedgerError::TooLarge => "message larger than the delivery ledger",
        })
    }
}

impl std::error::Error for LedgerError {}

/// What a dropped link left in doubt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InDoubt {
    /// Messages written whose replies never came (first and last id, inclusive).
    pub ids: Option<(MsgId, MsgId)>,
    /// Of those, how many will be resent.
    pub resent: u64,
    /// Of those, how many failed (out of retries).
    pub failed: u64,
    /// Of the resent, how many without using one of their retries
    /// ([`Loss::Unread`]).
    pub unread: u64,
}

/// How the messages written and not yet answered were lost: what decides
/// whether a resend uses up one of their retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    /// The link dropped or the reply did not come in time: each message may or
    /// may not have been processed. Resent while it has retries left, each
    /// resend using one; then failed.
    InDoubt,
    /// The link was found closed by the peer before any byte of a reply came,
    /// on a link reused after earlier replies (a close-after-reply peer whose
    /// close crossed the write): the peer closed without reading. Resent once
    /// without using a retry; a second such loss of the same message counts as
    /// [`Loss::InDoubt`].
    Unread,
    /// A failure a resend cannot fix (closed locally, a frame the link refused,
    /// an I/O error): every message written fails now.
    Fatal,
}

#[derive(Clone, Copy, Debug)]
struct State {
    delivery: Delivery,
    attempts: u32,
    /// Its one resend after [`Loss::Unread`] is used.
    unread_resent: bool,
}

/// The at-least-once engine without payloads: the state of each message held,
/// its attempts, and its outcome. [`Ledger`] is this with the messages' bytes
/// (the relay); [`crate::Client`] is this with a window of one, its request
/// being the one message.
#[derive(Debug)]
pub(crate) struct Deliveries {
    capacity: usize,
    window: usize,
    retries: u32,
    /// States of the held messages, oldest first; `states[0]` is id `base`.
    states: VecDeque<State>,
    base: MsgId,
    outcomes: VecDeque<(MsgId, Delivery)>,
}

impl Deliveries {
    /// Room for `capacity` messages (at least 1), `window` of them written
    /// before their replies, each resent up to `retries` times. Its memory is
    /// allocated here, once.
    pub(crate) fn new(capacity: usize, window: usize, retries: u32) -> Self {
        let cap = capacity.max(1);
        Deliveries {
            capacity: cap,
            window,
            retries,
            states: VecDeque::with_capacity(cap),
            base: 1,
            outcomes: VecDeque::with_capacity(cap),
        }
    }

    /// Messages held (queued or awaiting a reply).
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Takes a message (its bytes are the caller's); it is written in order.
    /// `Full` at capacity.
    pub(crate) fn push(&mut self) -> Result<MsgId, LedgerError> {
        if self.states.len() >= self.capacity {
            return Err(LedgerError::Full);
        }
        self.states.push_back(State {
            delivery: Delivery::Queued,
            attempts: 0,
            unread_resent: false,
        });
        Ok(self.base + self.states.len() as u64 - 1)
    }

    /// Forgets every message held and every outcome not yet polled (ids go on).
    pub(crate) fn clear(&mut self) {
        self.base += self.states.len() as u64;
        self.states.clear();
        self.outcomes.clear();
    }

    /// The state of message `id`, while held.
    #[cfg(test)]
    pub(crate) fn state(&self, id: MsgId) -> Option<Delivery> {
        self.get(id).map(|s| s.delivery)
    }

    /// Resends of message `id` that used one of its retries, while held.
    pub(crate) fn attempts(&self, id: MsgId) -> Option<u32> {
        self.get(id).map(|s| s.attempts)
    }

    fn get(&self, id: MsgId) -> Option<&State> {
        let i = id.checked_sub(self.base)?;
        self.states.get(usize::try_from(i).ok()?)
    }

    fn written_count(&self) -> usize {
        self.states
            .iter()
            .take_while(|s| s.delivery == Delivery::Written)
            .count()
    }

    /// The next message to write, if the window allows one: the oldest queued,
    /// with its place among the held messages (0: the oldest).
    #[must_use]
    pub(crate) fn poll_transmit(&self) -> Option<(MsgId, usize)> {
        let in_flight = self.written_count();
        if in_flight >= self.window {
            return None;
        }
        let s = self.states.get(in_flight)?;
        if s.delivery != Delivery::Queued {
            return None;
        }
        Some((self.base + in_flight as u64, in_flight))
    }

    /// Message `id` (from [`Deliveries::poll_transmit`]) was written.
    pub(crate) fn handle_written(&mut self, id: MsgId) {
        let Some(i) = id.checked_sub(self.base) else {
            return;
        };
        if let Some(s) = usize::try_from(i).ok().and_then(|i| self.states.get_mut(i)) {
            if s.delivery == Delivery::Queued {
                s.delivery = Delivery::Written;
            }
        }
    }

    /// A reply arrived for the oldest message awaiting one (replies come in
    /// order on a link). Returns its id, or `None` if nothing was awaited (an
    /// unexpected reply, for the caller to report).
    pub(crate) fn handle_reply(&mut self) -> Option<MsgId> {
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
        self.outcomes.push_back((self.base, how));
        self.base += 1;
    }

    /// Every message written and not acknowledged was lost as `loss` says.
    /// Each is queued again for a resend, or fails (out of retries, or a
    /// [`Loss::Fatal`] loss). Returns exactly which.
    pub(crate) fn handle_loss(&mut self, loss: Loss) -> InDoubt {
        let n = self.written_count();
        if n == 0 {
            return InDoubt::default();
        }
        let mut doubt = InDoubt {
            ids: Some((self.base, self.base + n as u64 - 1)),
            ..InDoubt::default()
        };
        let fail_now = loss == Loss::Fatal;
        for s in self.states.iter_mut().take(n) {
            s.delivery = Delivery::Queued;
            if loss == Loss::Unread && !s.unread_resent {
                s.unread_resent = true;
                doubt.unread += 1;
            } else {
                s.attempts = s.attempts.saturating_add(1);
            }
        }
        // Failures retire from the front so order is kept: a message that ran out
        // of retries fails, and those behind it stay queued.
        let mut left = n;
        while left > 0
            && self
                .states
                .front()
                .is_some_and(|s| fail_now || s.attempts > self.retries)
        {
            self.retire(Delivery::Failed);
            doubt.failed += 1;
            left -= 1;
        }
        doubt.resent = n as u64 - doubt.failed;
        doubt.unread = doubt.unread.min(doubt.resent);
        doubt
    }

    /// Gives up on the oldest message (the caller's own limit, e.g. a backoff
    /// out of attempts): it fails now. Returns its id.
    pub(crate) fn fail_oldest(&mut self) -> Option<MsgId> {
        self.states.front()?;
        let id = self.base;
        self.retire(Delivery::Failed);
        Some(id)
    }

    /// The next outcome (`Acknowledged` or `Failed`), in order of the messages.
    #[must_use]
    pub(crate) fn poll_outcome(&mut self) -> Option<(MsgId, Delivery)> {
        self.outcomes.pop_front()
    }
}

/// The ledger: [`Deliveries`] with the messages' bytes. See the module docs.
#[derive(Debug)]
pub(crate) struct Ledger {
    cfg: LedgerConfig,
    payloads: ReplayQueue,
    deliveries: Deliveries,
}

impl Ledger {
    /// A ledger; its memory is allocated here, once.
    pub(crate) fn new(cfg: LedgerConfig) -> Self {
        let cap = cfg.capacity.max(1);
        Ledger {
            cfg,
            payloads: ReplayQueue::new(cfg.max_bytes, cap),
            deliveries: Deliveries::new(cap, cfg.window, cfg.retries),
        }
    }

    /// Messages held (queued or awaiting a reply).
    pub(crate) fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// Payload bytes held (a walk over the messages: for stats, not per message).
    pub(crate) fn bytes(&self) -> usize {
        self.payloads.bytes()
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Takes a message; it is written in order. `Full` is backpressure.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Result<MsgId, LedgerError> {
        match self.payloads.push(payload, self.cfg.capacity) {
            Ok(()) => {}
            Err(ReplayError::Full) => return Err(LedgerError::Full),
            Err(ReplayError::TooLarge) => return Err(LedgerError::TooLarge),
        }
        // The bytes were refused at `capacity` already, and the states hold at
        // least as many: the two stay in step.
        self.deliveries.push()
    }

    /// The state of message `id`, while held.
    #[cfg(test)]
    pub(crate) fn state(&self, id: MsgId) -> Option<Delivery> {
        self.deliveries.state(id)
    }

    /// The next message to write, if the window allows one: the oldest queued.
    #[must_use]
    pub(crate) fn poll_transmit(&self) -> Option<(MsgId, &[u8])> {
        let (id, i) = self.deliveries.poll_transmit()?;
        Some((id, self.payloads.get(i)?))
    }

    /// Message `id` (from [`Ledger::poll_transmit`]) was written.
    pub(crate) fn handle_written(&mut self, id: MsgId) {
        self.deliveries.handle_written(id);
    }

    /// A reply arrived for the oldest message awaiting one (replies come in order
    /// on a link). Returns its id, or `None` if nothing was awaited (an
    /// unexpected reply, for the caller to report).
    pub(crate) fn handle_reply(&mut self) -> Option<MsgId> {
        let id = self.deliveries.handle_reply();
        self.forget_retired();
        id
    }

    /// The link dropped, or a reply did not come in time: every message written
    /// and not acknowledged is in doubt ([`Loss::InDoubt`]). Each is queued
    /// again for a resend, or fails once it has used its `retries`. Returns
    /// exactly which.
    pub(crate) fn handle_link_lost(&mut self) -> InDoubt {
        self.handle_loss(Loss::InDoubt)
    }

    /// Every message written and not acknowledged was lost as `loss` says (see
    /// [`Deliveries::handle_loss`]).
    pub(crate) fn handle_loss(&mut self, loss: Loss) -> InDoubt {
        let d = self.deliveries.handle_loss(loss);
        self.forget_retired();
        d
    }

    /// The bytes of messages that left the ledger (always the oldest).
    fn forget_retired(&mut self) {
        while self.payloads.len() > self.deliveries.len() {
            self.payloads.pop_front();
        }
    }

    /// The next outcome (`Acknowledged` or `Failed`), in order of the messages.
    #[must_use]
    pub(crate) fn poll_outcome(&mut self) -> Option<(MsgId, Delivery)> {
        self.deliveries.poll_outcome()
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

    #[test]
    fn an_unread_loss_resends_once_without_using_a_retry_then_counts() {
        let mut d = Deliveries::new(1, 1, 1);
        let id = d.push().unwrap();
        let write = |d: &mut Deliveries| {
            let (id, i) = d.poll_transmit().expect("queued");
            assert_eq!(i, 0);
            d.handle_written(id);
        };
        write(&mut d);
        let x = d.handle_loss(Loss::Unread);
        assert_eq!(
            (x.ids, x.resent, x.unread, x.failed),
            (Some((id, id)), 1, 1, 0)
        );
        assert_eq!(d.attempts(id), Some(0), "the free resend used no retry");
        write(&mut d);
        // The same race again is in doubt now: the one retry.
        let x = d.handle_loss(Loss::Unread);
        assert_eq!((x.resent, x.unread, x.failed), (1, 0, 0));
        assert_eq!(d.attempts(id), Some(1));
        write(&mut d);
        let x = d.handle_loss(Loss::InDoubt);
        assert_eq!((x.resent, x.failed), (0, 1), "out of retries");
        assert_eq!(d.poll_outcome(), Some((id, Delivery::Failed)));
        assert!(d.is_empty());
    }

    #[test]
    fn a_fatal_loss_fails_every_written_message_and_keeps_the_queued() {
        let mut d = Deliveries::new(4, 2, 3);
        for _ in 0..3 {
            d.push().unwrap();
        }
        for _ in 0..2 {
            let (id, _) = d.poll_transmit().unwrap();
            d.handle_written(id);
        }
        let x = d.handle_loss(Loss::Fatal);
        assert_eq!((x.ids, x.resent, x.failed), (Some((1, 2)), 0, 2));
        assert_eq!(d.poll_outcome(), Some((1, Delivery::Failed)));
        assert_eq!(d.poll_outcome(), Some((2, Delivery::Failed)));
        assert_eq!(d.state(3), Some(Delivery::Queued));
        assert_eq!(d.poll_transmit(), Some((3, 0)));
    }

    #[test]
    fn the_caller_can_give_up_on_the_oldest_and_clear_keeps_ids_going() {
        let mut d = Deliveries::new(1, 1, 5);
        let a = d.push().unwrap();
        assert_eq!(d.push(), Err(LedgerError::Full), "capacity 1");
        assert_eq!(d.fail_oldest(), Some(a));
        assert_eq!(d.poll_outcome(), Some((a, Delivery::Failed)));
        let b = d.push().unwrap();
        d.clear();
        assert!(d.is_empty() && d.poll_outcome().is_none());
        assert_eq!(d.push(), Ok(b + 1), "ids are never reused");
    }

    #[test]
    fn the_ledger_drops_the_bytes_of_each_message_that_leaves() {
        let mut l = ledger(2, 0);
        for p in [b"A", b"B", b"C"] {
            l.push(p).unwrap();
        }
        for _ in 0..2 {
            let (id, _) = l.poll_transmit().unwrap();
            l.handle_written(id);
        }
        assert_eq!(l.handle_reply(), Some(1));
        let x = l.handle_loss(Loss::InDoubt);
        assert_eq!((x.ids, x.failed), (Some((2, 2)), 1), "no retries");
        assert_eq!(l.poll_transmit(), Some((3, &b"C"[..])), "C's own bytes");
        assert_eq!(l.len(), 1);
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
