//! The upstream session's state in the spool, so a relay that restarts can
//! resume its mooring session instead of opening a new one (exactly once
//! across restarts, within the upstream's resume window).
//!
//! One record kind, *session*, written only when the state changes and only
//! with the group commit that happens anyway (no sync of its own):
//!
//! ```text
//! body (48 bytes): delivered u64, session id u64, token [16], next u64, received u64
//! ```
//!
//! It is also a delivered mark (`delivered`), and it says how the undelivered
//! messages map onto the session: the first accepted message after
//! `delivered`, in spool order, is (or will be) the session's DATA `next`, and
//! each following one the next number, without gaps. So the state changes only
//! on a new session (its WELCOME), on the upstream's cumulative ACK progress,
//! and on replies received from it: what was *sent* needs no record at all, the
//! upstream's WELCOME says what it has.
//!
//! Order on disk makes the pairing atomic: while a session state waits to be
//! written, no other record carries its delivered mark (checkpoints and plain
//! marks carry the last *written* one) and no segment it frees is recycled. So
//! whatever prefix of the writes a crash keeps, the newest session record and
//! the highest delivered mark agree, or recovery reports no session (then the
//! relay falls back to a new session and at least once).

use super::journal::Journal;
use super::record::{Body, CHECKPOINT_LEN, HEADER_LEN, MARK_LEN};
use super::storage::Storage;
use super::{Seq, SpoolError};
use crate::wire::TOKEN_LEN;

/// Body bytes of a session record.
pub(crate) const SESSION_BODY: usize = 48;
/// A whole session record.
pub(crate) const SESSION_LEN: usize = HEADER_LEN + SESSION_BODY;

/// The upstream session's state as the spool keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Every accepted message up to this spool sequence number is delivered
    /// (acknowledged by the upstream, or settled otherwise).
    pub delivered: u64,
    /// The session's id at the upstream; 0: no session (the next one is new).
    pub id: u64,
    /// The session's token (unguessable; kept with the spool's permissions).
    pub token: [u8; TOKEN_LEN],
    /// The session's sequence number of the first accepted message after
    /// `delivered`; the ones after it follow in spool order, without gaps.
    pub next: u64,
    /// The upstream's DATA (replies) received in order: the `last_received`
    /// the resumed session claims.
    pub received: u64,
}

impl SessionState {
    /// No session: the next one is new (the mapping starts over).
    pub fn none(delivered: u64) -> Self {
        SessionState {
            delivered,
            ..SessionState::default()
        }
    }

    /// True when it names a session that may be resumed.
    pub fn is_session(&self) -> bool {
        self.id != 0 && self.next != 0
    }

    pub(crate) fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.delivered.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..16 + TOKEN_LEN].copy_from_slice(&self.token);
        out[32..40].copy_from_slice(&self.next.to_le_bytes());
        out[40..48].copy_from_slice(&self.received.to_le_bytes());
    }

    /// `None` unless `body` is exactly one session body.
    pub(crate) fn decode(body: &[u8]) -> Option<Self> {
        if body.len() != SESSION_BODY {
            return None;
        }
        let u = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
        };
        Some(SessionState {
            delivered: u(0)?,
            id: u(8)?,
            token: body.get(16..16 + TOKEN_LEN)?.try_into().ok()?,
            next: u(32)?,
            received: u(40)?,
        })
    }
}

/// The journal's session bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SessionSlot {
    /// The newest state given (or recovered); `None`: plain marks only.
    pub(super) state: Option<SessionState>,
    /// `state` is not in the batch yet.
    pub(super) pending: bool,
    /// The newest state in the batch or on disk (copied into each new
    /// segment, so recycling never takes the only copy).
    pub(super) pushed: Option<SessionState>,
    /// The delivered mark already in the batch or on disk: what checkpoints
    /// and plain marks carry, and what frees segments for recycling.
    pub(super) mark_pushed: Seq,
}

impl SessionSlot {
    /// After a plain mark: no session mapping, the mark counts at once.
    pub(super) fn plain(delivered: Seq) -> Self {
        SessionSlot {
            mark_pushed: delivered,
            ..SessionSlot::default()
        }
    }

    /// Bytes every segment keeps free for one session record: when the
    /// spool is full and only a session record waiting to be written would
    /// free a segment, it goes there (see `Journal::flush_session`).
    pub(super) fn reserve(&self) -> usize {
        if self.state.is_some() {
            SESSION_LEN
        } else {
            0
        }
    }

    /// Bytes the copy at a new segment's start takes.
    pub(super) fn copy_len(&self) -> usize {
        if self.pushed.is_some() {
            SESSION_LEN
        } else {
            0
        }
    }
}

impl<S: Storage> Journal<S> {
    /// The upstream session's state: the one given last, or the one recovered
    /// (`None` after a plain [`mark_delivered`](Self::mark_delivered), or
    /// when the newest session record on disk does not agree with the
    /// delivered mark).
    pub fn session(&self) -> Option<SessionState> {
        self.session.state
    }

    /// True while the state last given to [`set_session`](Self::set_session)
    /// is not in the batch yet (a commit that returns `Ok` with this false
    /// made it durable per the [`Fsync`](super::Fsync) mode).
    pub fn session_pending(&self) -> bool {
        self.session.pending
    }

    /// Sets the upstream session's state; `state.delivered` is a delivered
    /// mark like [`mark_delivered`](Self::mark_delivered)'s (at or above the
    /// current one). The record goes into the batch before the next record
    /// appended, or at the next commit: no sync of its own. Refusals:
    /// [`SpoolError::InvalidMark`], and [`SpoolError::Config`] when a segment
    /// or the batch cannot hold a session record beside a largest message.
    pub fn set_session(&mut self, state: SessionState) -> Result<(), SpoolError> {
        let cfg = &self.cfg;
        // A copy at a segment's start, and the reserve at its end.
        let extra = SESSION_LEN * 2;
        if (cfg.segment_bytes as usize) < CHECKPOINT_LEN + extra + cfg.max_record() {
            return Err(SpoolError::Config(
                "segment_bytes must hold a checkpoint, session records and one max_message_bytes record",
            ));
        }
        if (cfg.batch_bytes as usize)
            < HEADER_LEN + CHECKPOINT_LEN + MARK_LEN + extra + SESSION_LEN + cfg.max_record()
        {
            return Err(SpoolError::Config(
                "batch_bytes must hold a checkpoint, session records, a mark and one max_message_bytes record",
            ));
        }
        if state.delivered < self.delivered || state.delivered >= self.next_seq {
            return Err(SpoolError::InvalidMark);
        }
        if self.session.state == Some(state) {
            return Ok(());
        }
        if state.delivered > self.delivered {
            self.delivered = state.delivered;
            self.index.deliver_through(state.delivered);
        }
        self.session.state = Some(state);
        self.session.pending = true;
        Ok(())
    }

    /// Puts a waiting session state into the batch.
    pub(super) fn flush_session(&mut self) -> Result<(), SpoolError> {
        let slot = self.session;
        let Some(state) = slot.state.filter(|_| slot.pending) else {
            return Ok(());
        };
        match self.make_room(SESSION_LEN) {
            Ok(()) => {}
            // No segment is free by the written mark, and only this record
            // would free one: it takes the head's reserve. (Recycling a
            // segment it frees before it is written could lose, at a torn
            // write, messages its mapping counts.)
            Err(SpoolError::Full) if self.reserve_frees(state.delivered) => {}
            Err(e) => return Err(e),
        }
        self.push(&Body::Session(state));
        self.session.pending = false;
        self.session.pushed = Some(state);
        self.session.mark_pushed = state.delivered;
        Ok(())
    }

    /// True when the head's reserve can take a session record now and a
    /// delivered mark of `delivered` frees a segment.
    fn reserve_frees(&self, delivered: Seq) -> bool {
        let Some(h) = self.head else { return false };
        let room = self.segs[h as usize].fill as usize + SESSION_LEN
            <= self.cfg.segment_bytes as usize
            && self.batch_len() + SESSION_LEN <= self.cfg.batch_bytes as usize;
        room && self
            .segs
            .iter()
            .enumerate()
            .any(|(id, s)| id != h as usize && !s.in_batch && s.max_accepted <= delivered)
    }

    /// Recovery: the newest session record found, if it agrees with the
    /// delivered mark on disk.
    pub(super) fn recover_session(&mut self, newest: Option<SessionState>, delivered: Seq) {
        let state = newest.filter(|s| s.delivered == delivered);
        if newest.is_some() && state.is_none() {
            log::warn!("spool: the session record does not match the delivered mark: not resumed");
        }
        self.session = SessionSlot {
            state,
            pending: false,
            pushed: state,
            mark_pushed: delivered,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_lengths() {
        let s = SessionState {
            delivered: 7,
            id: u64::MAX,
            token: [9; TOKEN_LEN],
            next: 3,
            received: 11,
        };
        let mut b = [0u8; SESSION_BODY];
        s.encode(&mut b);
        assert_eq!(SessionState::decode(&b), Some(s));
        assert_eq!(SessionState::decode(&b[..47]), None);
        assert!(s.is_session());
        assert!(!SessionState::none(4).is_session());
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;
    use crate::rng::XorShift64;
    use crate::spool::sim::SimDisk;
    use crate::spool::SpoolConfig;
    use crate::time::Instant;

    fn cfg() -> SpoolConfig {
        SpoolConfig {
            segment_bytes: 700,
            segments: 3,
            max_message_bytes: 16,
            batch_bytes: 1200,
            index_entries: 64,
            ..SpoolConfig::default()
        }
    }

    fn state(delivered: u64, next: u64) -> SessionState {
        SessionState {
            delivered,
            id: 5,
            token: [3; TOKEN_LEN],
            next,
            received: 2,
        }
    }

    #[test]
    fn the_state_survives_crashes_and_recycling_and_agrees_with_the_mark() {
        let disk = SimDisk::new();
        let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        let mut rng = XorShift64::new(1);
        let mut next = 1;
        for round in 0..40u64 {
            let a = j.append(1, Instant::ZERO, b"0123456789").unwrap();
            let b = j.append(1, Instant::ZERO, b"abcdefghij").unwrap();
            j.set_session(state(a, next)).unwrap();
            next += 1;
            j.commit(Instant::ZERO).unwrap();
            assert!(!j.session_pending());
            if round % 3 == 0 {
                disk.crash(&mut rng);
                let (j2, report) = Journal::open(disk.clone(), cfg()).unwrap();
                j = j2;
                assert_eq!(report.session, Some(state(a, next - 1)), "round {round}");
                assert_eq!(j.undelivered().map(|e| e.seq).collect::<Vec<_>>(), [b]);
            }
            j.set_session(state(b, next)).unwrap();
        }
        // A plain mark ends the mapping.
        let a = j.append(1, Instant::ZERO, b"x").unwrap();
        j.mark_delivered(a).unwrap();
        j.commit(Instant::ZERO).unwrap();
        let (j, report) = Journal::open(disk.clone(), cfg()).unwrap();
        assert_eq!((report.session, j.session()), (None, None));
    }

    #[test]
    fn a_committed_message_after_a_session_state_survives_a_power_cut() {
        let disk = SimDisk::new();
        let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        j.set_session(state(0, 1)).unwrap();
        j.commit(Instant::ZERO).unwrap();
        let a = j.append(1, Instant::ZERO, b"m").unwrap();
        assert!(j.commit(Instant::ZERO).unwrap().acked_through >= a);
        disk.crash(&mut XorShift64::new(3));
        let (j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        assert_eq!(j.undelivered().map(|e| e.seq).collect::<Vec<_>>(), [a]);
    }
}
