//! Raw outbound links that redial by themselves ([`ConnectConfig::redial`]).
//!
//! The link keeps its [`LinkId`] through every redial: the application holds
//! one id for "my link to that address". When the connection is lost the node
//! reports [`Event::Redialing`] (why, the lost connection's counters, the
//! bytes queued on it that were never written, the attempt and its wait)
//! instead of [`Event::Closed`]; the slot stays taken, the link is not open
//! (`send` answers `NotOpen`), and when the wait is over the node dials the
//! same address with the same settings into the same slot. A completed
//! connect is reported as [`Event::Connected`] with the same id, and starts
//! the backoff over. [`Event::Closed`] ends it for good: after a local
//! [`Node::close`] (or [`Node::close_all`]), or when `backoff.max_attempts`
//! are exhausted (with the last loss's reason).
//!
//! Frames queued on a lost connection are not resent: a raw link has no
//! acknowledgements, so the node cannot know what the peer got. Their bytes
//! not yet written are reported in `unsent_bytes`; resend what matters, or use
//! a session ([`Node::open_session`]), which replays what was not
//! acknowledged.
//!
//! When the next attempt is due is the pure [`Redial`] timer's decision (the
//! one [`crate::session::Backoff`], jittered from the node's entropy, on the
//! node's clock); this file moves its decisions into sockets and events.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{Event, LinkId, Node};
use crate::config::ConnectConfig;
use crate::error::CloseReason;
use crate::fallible::{self, AllocError};
use crate::session::Entropy;
use crate::session::Redial;
use crate::time::Instant;

/// One redialing link: where it goes, how, and its redial timer.
struct Entry {
    addr: SocketAddr,
    cfg: ConnectConfig,
    timer: Redial,
    /// Between a loss and the next dial: the slot keeps the link's id and
    /// has no socket.
    waiting: bool,
    /// Its `Event::Redialing` not yet reported (a newer loss replaces it;
    /// unsent bytes add up).
    note: Option<Event<'static>>,
}

/// The node's redialing links, by slot, sized at build.
pub(super) struct Redials {
    entries: Vec<Option<Entry>>,
    /// Slots with a note to report, each at most once.
    notes: VecDeque<u32>,
}

impl Redials {
    /// Room for one redialing link per slot.
    pub(super) fn new(slots: usize) -> Result<Redials, AllocError> {
        let mut entries = fallible::vec_with_capacity(slots, "redial table")?;
        entries.extend((0..slots).map(|_| None));
        Ok(Redials {
            entries,
            notes: fallible::deque_with_capacity(slots, "redial notes")?,
        })
    }

    /// True while a [`Event::Redialing`] waits to be pulled (per event
    /// pulled: inline).
    #[inline(always)]
    pub(super) fn has_notes(&self) -> bool {
        !self.notes.is_empty()
    }

    /// True while slot `i` waits to redial (its link is not open).
    pub(super) fn is_waiting(&self, i: u32) -> bool {
        self.entry(i).is_some_and(|e| e.waiting)
    }

    fn entry(&self, i: u32) -> Option<&Entry> {
        self.entries.get(i as usize)?.as_ref()
    }

    fn entry_mut(&mut self, i: u32) -> Option<&mut Entry> {
        self.entries.get_mut(i as usize)?.as_mut()
    }
}

impl Node {
    /// Heap index of slot `i`'s redial timer: after the links' and the
    /// sessions' timers.
    fn redial_timer(&self, i: u32) -> u32 {
        (self.slots.len() + self.cfg.max_sessions) as u32 + i
    }

    /// The heap index `t` belongs to a redial timer: its slot.
    pub(super) fn redial_slot_of_timer(&self, t: u32) -> Option<u32> {
        let base = (self.slots.len() + self.cfg.max_sessions) as u32;
        t.checked_sub(base)
    }

    /// `Node::connect` opened `link` with `cfg.redial`: it redials from now on.
    pub(super) fn start_redial(&mut self, link: LinkId, addr: SocketAddr, cfg: &ConnectConfig) {
        if let Some(e) = self.redials.entries.get_mut(link.slot as usize) {
            *e = Some(Entry {
                addr,
                cfg: cfg.clone(),
                timer: Redial::new(cfg.backoff),
                waiting: false,
                note: None,
            });
        }
    }

    /// Slot `i`'s connect completed: a later loss starts the backoff over.
    pub(super) fn redial_connected(&mut self, i: u32) {
        if let Some(e) = self.redials.entry_mut(i) {
            e.timer.reset();
        }
    }

    /// Slot `i`'s connection was lost for `reason` with `unsent_bytes` never
    /// written (`close_slot`, after the socket and buffers are released). True
    /// when it redials: the slot stays taken and `Event::Redialing` is
    /// reported instead of `Event::Closed`. False when it is not a redialing
    /// link or its attempts are exhausted (then it closes as any link).
    pub(super) fn redial_lost(&mut self, i: u32, reason: CloseReason, unsent_bytes: u64) -> bool {
        let now = self.now;
        let random = self.entropy.jitter();
        let t = self.redial_timer(i);
        let Node {
            redials,
            slots,
            timers,
            ..
        } = self;
        let Some(e) = redials.entries.get_mut(i as usize).and_then(Option::as_mut) else {
            return false;
        };
        let Some((attempt, after)) = e.timer.schedule(now, random) else {
            log::debug!("link to {}: redial attempts exhausted", e.addr);
            redials.entries[i as usize] = None;
            return false;
        };
        e.waiting = true;
        let s = &mut slots[i as usize];
        // Nothing of the lost connection is reported after its loss.
        s.pending = 0;
        let earlier = match e.note {
            Some(Event::Redialing { unsent_bytes, .. }) => unsent_bytes,
            _ => {
                redials.notes.push_back(i);
                0
            }
        };
        e.note = Some(Event::Redialing {
            link: s.id(i),
            peer: s.peer,
            reason,
            stats: s.link.stats(),
            attempt,
            after,
            unsent_bytes: unsent_bytes.saturating_add(earlier),
        });
        log::debug!("link to {}: redial {attempt} in {after:?}", s.peer);
        timers.set(t, e.timer.poll_timeout());
        true
    }

    /// Slot `i`'s redial timer passed: dials again into the same slot, with
    /// the same id. A dial that fails at once counts as a lost attempt.
    pub(super) fn redial_timeout(&mut self, i: u32, now: Instant) {
        let Some(e) = self.redials.entry_mut(i) else {
            return;
        };
        if !e.waiting || !e.timer.handle_timeout(now) {
            return;
        }
        e.waiting = false;
        let (addr, cfg) = (e.addr, e.cfg.clone());
        let gen = self.slots[i as usize].gen;
        match self.open_outbound(i, addr, &cfg) {
            // The new connection takes the link's id: the application's handle
            // stays valid.
            Ok(_) => self.slots[i as usize].gen = gen,
            Err(err) => {
                log::debug!("redial to {addr} failed at once: {err}");
                let reason = match &err {
                    super::SetupError::Io(e) => super::connect_reason(e),
                    _ => CloseReason::Io,
                };
                if !self.redial_lost(i, reason, 0) {
                    self.finish_redial(i, reason);
                }
            }
        }
    }

    /// A local close of slot `i`: it redials no more. True when it was
    /// waiting to redial: then it is closed and reported here (`LocalClose`);
    /// otherwise its close goes on as any link's.
    pub(super) fn stop_redial(&mut self, i: u32) -> bool {
        let Some(e) = self
            .redials
            .entries
            .get_mut(i as usize)
            .and_then(Option::take)
        else {
            return false;
        };
        self.timers.set(self.redial_timer(i), None);
        if !e.waiting {
            return false;
        }
        self.finish_redial(i, CloseReason::LocalClose);
        true
    }

    /// Ends a waiting slot `i` for good: reported as `Event::Closed` with
    /// `reason`, its slot freed.
    fn finish_redial(&mut self, i: u32, reason: CloseReason) {
        self.redials.entries[i as usize] = None;
        // With the report queue full it reports through the slot, with the
        // lost connection's reason.
        self.report_closed(
            i,
            reason,
            None,
            #[cfg(feature = "tls")]
            None,
        );
    }

    /// The next `Event::Redialing`, for `next_event`.
    pub(super) fn next_redial_note(&mut self) -> Option<Event<'static>> {
        while let Some(i) = self.redials.notes.pop_front() {
            // None: closed meanwhile, its `Closed` says the rest.
            if let Some(ev) = self.redials.entry_mut(i).and_then(|e| e.note.take()) {
                return Some(ev);
            }
        }
        None
    }
}
