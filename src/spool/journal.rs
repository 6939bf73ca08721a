//! The journal: append into the batch, group commit, recycle delivered
//! segments, read undelivered messages back.

use super::index::{Entry, Index};
use super::record::{self, Body, CHECKPOINT_LEN, HEADER_LEN, MARK_LEN};
use super::session_record::SessionSlot;
use super::storage::{SegmentId, Storage};
use super::{Fsync, Seq, SpoolConfig, SpoolError};
use crate::time::Instant;

/// What [`Journal::commit`] made safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// Every message with a sequence number up to this may be acknowledged
    /// under the configured [`Fsync`] mode (0: none yet).
    pub acked_through: Seq,
    /// Every record up to this sequence number is on stable storage.
    pub synced_through: Seq,
}

/// A message read back by [`Journal::read`]; its bytes are in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its sequence number.
    pub seq: Seq,
    /// The sender given to [`Journal::append`].
    pub sender: u64,
    /// The arrival time given to [`Journal::append`].
    pub arrival: Instant,
    /// The message's length: the bytes are `buf[..len]`.
    pub len: usize,
}

/// What [`Journal::open`] found and repaired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Undelivered messages recovered into the index, to be forwarded first.
    pub recovered: u64,
    /// Undelivered messages found beyond the index's capacity: not delivered.
    /// Only possible after a power cut with [`Fsync::Off`] (or a smaller
    /// `index_entries` than before); the count is the loss.
    pub unindexed: u64,
    /// Damaged records skipped (never returned) that were not a torn tail.
    pub corrupt: u64,
    /// Bytes of torn data after the last good record, zeroed in place.
    pub truncated_bytes: u64,
    /// Segment files created (a new spool, or missing files).
    pub created_segments: u32,
    /// The delivered mark found on disk.
    pub delivered: Seq,
    /// The upstream session's state found on disk, when its record agrees
    /// with the delivered mark (see [`Journal::session`]).
    pub session: Option<super::SessionState>,
}

/// The spool's current state, for stats and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Messages accepted and not yet marked delivered.
    pub undelivered: usize,
    /// Segments holding undelivered messages or being written.
    pub segments_in_use: u32,
    /// Bytes in those segments.
    pub bytes_used: u64,
    /// `segments x segment_bytes`, fixed.
    pub total_bytes: u64,
}

/// One segment as the journal tracks it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Seg {
    /// Bytes used from offset 0.
    pub(super) fill: u32,
    pub(super) first_seq: Seq,
    pub(super) last_seq: Seq,
    /// Highest accepted sequence number in it (0: none): free once delivered.
    pub(super) max_accepted: Seq,
    /// Highest delivered mark its records carry.
    pub(super) d_max: Seq,
    /// Written to by the current batch: not to be recycled until it commits.
    pub(super) in_batch: bool,
    /// Written since its last sync.
    pub(super) dirty: bool,
}

/// A run of batch bytes bound for one segment.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    seg: SegmentId,
    offset: u32,
    start: usize,
    end: usize,
    /// The segment was (re)started in this batch: sync everything before
    /// overwriting its old content.
    fresh: bool,
}

/// The durable spool journal over a [`Storage`]. See the [module docs](super).
pub struct Journal<S: Storage> {
    pub(super) storage: S,
    pub(super) cfg: SpoolConfig,
    pub(super) segs: Vec<Seg>,
    pub(super) head: Option<SegmentId>,
    pub(super) next_seq: Seq,
    pub(super) delivered: Seq,
    pub(super) delivered_durable: Seq,
    pub(super) index: Index,
    /// One record: reads and recovery scans.
    pub(super) scratch: Vec<u8>,
    /// The upstream session's state (`session_record.rs`).
    pub(super) session: SessionSlot,
    batch: Vec<u8>,
    chunks: Vec<Chunk>,
    batch_last: Seq,
    batch_delivered: Seq,
    /// Batch bytes already written (not necessarily synced).
    written_bytes: usize,
    /// A failed sync under Off may have lost written records: reopen.
    poisoned: bool,
    pub(super) written_through: Seq,
    written_delivered: Seq,
    pub(super) synced_through: Seq,
    last_sync: Option<Instant>,
}

fn alloc<T: Clone>(n: usize, v: T) -> Result<Vec<T>, SpoolError> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| SpoolError::Config("cannot allocate the spool's buffers"))?;
    out.resize(n, v);
    Ok(out)
}

impl<S: Storage> Journal<S> {
    /// Opens the spool on `storage`: creates missing segments, recovers what
    /// is on disk (see the [module docs](super)), and allocates every buffer.
    pub fn open(storage: S, cfg: SpoolConfig) -> Result<(Self, RecoveryReport), SpoolError> {
        cfg.validate()?;
        let mut batch = alloc(cfg.batch_bytes as usize + HEADER_LEN, 0u8)?;
        batch.clear();
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(cfg.segments as usize)
            .map_err(|_| SpoolError::Config("cannot allocate the spool's buffers"))?;
        let mut journal = Journal {
            storage,
            segs: alloc(cfg.segments as usize, Seg::default())?,
            head: None,
            next_seq: 1,
            delivered: 0,
            delivered_durable: 0,
            index: Index::with_capacity(cfg.index_entries as usize)?,
            scratch: alloc(cfg.max_record(), 0u8)?,
            session: SessionSlot::default(),
            batch,
            chunks,
            batch_last: 0,
            batch_delivered: 0,
            written_bytes: 0,
            poisoned: false,
            written_through: 0,
            written_delivered: 0,
            synced_through: 0,
            last_sync: None,
            cfg,
        };
        let report = journal.recover()?;
        Ok((journal, report))
    }

    /// Takes in one message from `sender` arriving at `now`: it is in the
    /// index at once and durable after the next [`commit`](Self::commit) that
    /// covers its sequence number. Refusals: [`SpoolError::TooLarge`],
    /// [`SpoolError::IndexFull`], [`SpoolError::BatchFull`] (commit first),
    /// [`SpoolError::Full`] (deliver first); nothing is changed by a refusal.
    pub fn append(&mut self, sender: u64, now: Instant, message: &[u8]) -> Result<Seq, SpoolError> {
        self.check_poisoned()?;
        let max = self.cfg.max_message_bytes as usize;
        if message.len() > max {
            return Err(SpoolError::TooLarge {
                len: message.len(),
                max,
            });
        }
        if self.index.is_full() {
            return Err(SpoolError::IndexFull);
        }
        self.flush_session()?;
        let body = Body::Accepted {
            sender,
            arrival: now,
            message,
        };
        self.make_room(body.encoded_len())?;
        let (seq, segment, offset) = self.push(&body);
        self.index.push(Entry {
            seq,
            segment,
            offset,
        })?;
        Ok(seq)
    }

    /// Marks every message up to `up_to` delivered: they leave
    /// [`undelivered`](Self::undelivered) now, and the mark is written by the
    /// next commit. Their index slots stay taken until the mark is durable
    /// (a crash before then brings them back). Marks only move
    /// forward; a lower one is ignored.
    pub fn mark_delivered(&mut self, up_to: Seq) -> Result<(), SpoolError> {
        if up_to >= self.next_seq {
            return Err(SpoolError::InvalidMark);
        }
        if up_to > self.delivered {
            self.delivered = up_to;
            self.index.deliver_through(up_to);
            // A plain mark ends the session mapping (recovery then finds none).
            self.session = SessionSlot::plain(up_to);
        }
        Ok(())
    }

    /// Group commit: writes everything appended since the last commit (one
    /// write per segment touched) and syncs per the [`Fsync`] mode. On an
    /// error nothing new is acknowledged and the batch is kept: the next
    /// commit writes it all again (when space returns, for
    /// [`SpoolError::NoSpace`]).
    pub fn commit(&mut self, now: Instant) -> Result<Commit, SpoolError> {
        self.check_poisoned()?;
        // No room now: it waits for a later commit, like a plain mark.
        let _ = self.flush_session();
        self.carry_delivered_mark();
        self.write_batch()?;
        let due = match self.cfg.fsync {
            Fsync::Batch => true,
            // Sooner when half the batch is taken: it is kept until synced.
            Fsync::Interval(every) => {
                self.last_sync.is_none_or(|t| now >= t + every)
                    || self.batch.len() * 2 >= self.cfg.batch_bytes as usize
            }
            Fsync::Off => false,
        };
        if due {
            self.sync_dirty()?;
            self.last_sync = Some(now);
        }
        if due || self.cfg.fsync == Fsync::Off {
            self.clear_batch();
        }
        Ok(self.commit_state())
    }

    /// A commit that syncs whatever the [`Fsync`] mode: for a shutdown, so that
    /// everything written (and acknowledged under `Interval` or `Off`) is on
    /// stable storage before the process exits.
    pub fn commit_and_sync(&mut self, now: Instant) -> Result<Commit, SpoolError> {
        self.commit(now)?;
        self.sync_dirty()?;
        self.last_sync = Some(now);
        self.clear_batch();
        Ok(self.commit_state())
    }

    /// What the last commits made safe, without writing anything.
    pub fn commit_state(&self) -> Commit {
        let acked_through = match self.cfg.fsync {
            Fsync::Batch => self.synced_through,
            Fsync::Interval(_) | Fsync::Off => self.written_through,
        };
        Commit {
            acked_through,
            synced_through: self.synced_through,
        }
    }

    /// With [`Fsync::Interval`] and written data not yet synced: when the next
    /// [`commit`](Self::commit) (an empty one will do) should run to sync it.
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.cfg.fsync {
            Fsync::Interval(every) if self.segs.iter().any(|s| s.dirty) => {
                Some(self.last_sync.map_or(Instant::ZERO, |t| t + every))
            }
            _ => None,
        }
    }

    /// The undelivered messages, oldest first.
    pub fn undelivered(&self) -> impl Iterator<Item = Entry> + '_ {
        self.index.iter()
    }

    /// Reads the message at `entry` into `buf` (which must hold
    /// `max_message_bytes`, or at least this message), checking its CRC.
    pub fn read(&mut self, entry: Entry, buf: &mut [u8]) -> Result<Message, SpoolError> {
        self.check_poisoned()?;
        let (mut message, bytes) = self.accepted_at(entry)?;
        let out = buf
            .get_mut(..bytes.len())
            .ok_or(SpoolError::BufferTooSmall {
                required: bytes.len(),
            })?;
        out.copy_from_slice(bytes);
        message.len = bytes.len();
        Ok(message)
    }

    /// When the oldest undelivered message arrived (for its age in stats),
    /// read back and checked like [`read`](Self::read).
    pub fn oldest_arrival(&mut self) -> Result<Option<Instant>, SpoolError> {
        self.check_poisoned()?;
        let Some(entry) = self.index.iter().next() else {
            return Ok(None);
        };
        Ok(Some(self.accepted_at(entry)?.0.arrival))
    }

    /// The accepted record at `entry`, from the batch or the disk, checked.
    fn accepted_at(&mut self, entry: Entry) -> Result<(Message, &[u8]), SpoolError> {
        let corrupt = SpoolError::Corrupt { seq: entry.seq };
        let in_batch = self.chunks.iter().find(|c| {
            c.seg == entry.segment
                && entry.offset >= c.offset
                && ((entry.offset - c.offset) as usize) < c.end - c.start
        });
        let bytes: &[u8] = if let Some(c) = in_batch {
            let at = c.start + (entry.offset - c.offset) as usize;
            let header: &[u8; HEADER_LEN] = self
                .batch
                .get(at..at + HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(corrupt)?;
            match record::peek(header, c.end - at, self.cfg.max_record()) {
                record::Peek::Record(len) => &self.batch[at..at + len],
                _ => return Err(corrupt),
            }
        } else {
            let len = read_record(&mut self.storage, &mut self.scratch, &self.cfg, entry)?;
            &self.scratch[..len]
        };
        match record::decode(bytes) {
            Some(record::Record {
                seq,
                body:
                    Body::Accepted {
                        sender,
                        arrival,
                        message,
                    },
            }) if seq == entry.seq => Ok((
                Message {
                    seq,
                    sender,
                    arrival,
                    len: message.len(),
                },
                message,
            )),
            _ => Err(corrupt),
        }
    }

    /// The delivered mark in memory (what [`mark_delivered`](Self::mark_delivered) set).
    pub fn delivered(&self) -> Seq {
        self.delivered
    }

    /// The delivered mark covered by a completed sync: no message at or
    /// below it is ever returned again, whatever happens.
    pub fn delivered_durable(&self) -> Seq {
        self.delivered_durable
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// Current usage.
    pub fn stats(&self) -> SpoolStats {
        let mut stats = SpoolStats {
            undelivered: self.index.len(),
            total_bytes: self.cfg.total_bytes(),
            ..SpoolStats::default()
        };
        for (id, s) in self.segs.iter().enumerate() {
            if s.max_accepted > self.delivered || self.head == Some(id as SegmentId) {
                stats.segments_in_use += 1;
                stats.bytes_used += u64::from(s.fill);
            }
        }
        stats
    }

    /// The storage underneath (tests arm faults through it).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back (to reopen it, or after a simulated crash).
    pub fn into_storage(self) -> S {
        self.storage
    }

    fn check_poisoned(&self) -> Result<(), SpoolError> {
        if self.poisoned {
            Err(SpoolError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Ensures `len` more bytes fit in the head segment and the batch,
    /// starting a new segment (with its checkpoint) when the head is full.
    pub(super) fn make_room(&mut self, len: usize) -> Result<(), SpoolError> {
        let seg_bytes = self.cfg.segment_bytes as usize;
        let fits_head = self.head.is_some_and(|h| {
            self.segs[h as usize].fill as usize + len + self.session.reserve() <= seg_bytes
        });
        // A switch also zeroes one header after the old head's last record.
        let need = if fits_head {
            len
        } else {
            HEADER_LEN + CHECKPOINT_LEN + self.session.copy_len() + len
        };
        if self.batch.len() + need > self.cfg.batch_bytes as usize {
            return Err(SpoolError::BatchFull);
        }
        if !fits_head {
            let next = self.pick_free().ok_or(SpoolError::Full)?;
            self.start_segment(next);
        }
        Ok(())
    }

    /// A segment that may be (re)written: not the head, not written by this
    /// batch, and every accepted record in it delivered. Never-used first,
    /// then the oldest.
    fn pick_free(&self) -> Option<SegmentId> {
        let free = |(id, s): &(usize, &Seg)| {
            // Freed by a written mark only (see session_record.rs).
            self.head != Some(*id as SegmentId)
                && !s.in_batch
                && s.max_accepted <= self.session.mark_pushed
        };
        let pick = self
            .segs
            .iter()
            .enumerate()
            .filter(free)
            .min_by_key(|(_, s)| (s.first_seq != 0, s.last_seq));
        pick.map(|(id, _)| id as SegmentId)
    }

    fn start_segment(&mut self, id: SegmentId) {
        if let Some(old) = self.head {
            // A zeroed header after the old head's last record ends its scan
            // cleanly at recovery (its old content beyond is not a torn tail).
            let s = &mut self.segs[old as usize];
            let pad = (self.cfg.segment_bytes - s.fill).min(HEADER_LEN as u32);
            if pad > 0 {
                let at = self.batch.len();
                self.batch.resize(at + pad as usize, 0);
                self.extend_chunk(old, at);
                let s = &mut self.segs[old as usize];
                s.fill += pad;
                s.in_batch = true;
            }
        }
        self.segs[id as usize] = Seg {
            in_batch: true,
            dirty: self.segs[id as usize].dirty,
            ..Seg::default()
        };
        let at = self.batch.len();
        self.chunks.push(Chunk {
            seg: id,
            offset: 0,
            start: at,
            end: at,
            fresh: true,
        });
        self.head = Some(id);
        self.push(&Body::Checkpoint {
            delivered: self.session.mark_pushed,
        });
        // The newest session record lives in the head, whatever is recycled.
        if let Some(state) = self.session.pushed {
            self.push(&Body::Session(state));
        }
    }

    /// Records that batch bytes `start..` belong to segment `seg` at its fill.
    fn extend_chunk(&mut self, seg: SegmentId, start: usize) {
        let end = self.batch.len();
        match self.chunks.last_mut() {
            Some(c) if c.seg == seg => c.end = end,
            _ => self.chunks.push(Chunk {
                seg,
                offset: self.segs[seg as usize].fill,
                start,
                end,
                fresh: false,
            }),
        }
    }

    /// Bytes appended since the last commit.
    pub(super) fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// Encodes a record at the head's fill; the caller made room.
    pub(super) fn push(&mut self, body: &Body<'_>) -> (Seq, SegmentId, u32) {
        let Some(h) = self.head else {
            // make_room always sets a head before a push.
            unreachable!("push without a head segment")
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let start = self.batch.len();
        let len = body.encoded_len();
        self.batch.resize(start + len, 0);
        record::encode(seq, body, &mut self.batch[start..]);
        self.extend_chunk(h, start);
        let s = &mut self.segs[h as usize];
        let offset = s.fill;
        s.fill += len as u32;
        s.in_batch = true;
        if s.first_seq == 0 {
            s.first_seq = seq;
        }
        s.last_seq = seq;
        if let Some(d) = body.delivered() {
            s.d_max = s.d_max.max(d);
            self.batch_delivered = self.batch_delivered.max(d);
        } else {
            s.max_accepted = seq;
        }
        self.batch_last = seq;
        (seq, h, offset)
    }

    /// Appends the delivered mark and syncs it, whatever the fsync mode.
    pub(super) fn carry_mark_now(&mut self) -> Result<(), SpoolError> {
        self.flush_session()?;
        self.make_room(MARK_LEN)?;
        self.push(&Body::Delivered {
            up_to: self.session.mark_pushed,
        });
        self.write_batch()?;
        self.sync_dirty()?;
        self.clear_batch();
        Ok(())
    }

    /// Puts the in-memory delivered mark into the batch, once per commit, when
    /// the head does not carry it yet. No room now: it waits for a later commit
    /// (those messages may be returned once more after a crash meanwhile).
    fn carry_delivered_mark(&mut self) {
        let mark = self.session.mark_pushed;
        let carried = self.head.map_or(0, |h| self.segs[h as usize].d_max);
        if mark > carried && self.make_room(MARK_LEN).is_ok() {
            let carried = self.head.map_or(0, |h| self.segs[h as usize].d_max);
            if mark > carried {
                self.push(&Body::Delivered { up_to: mark });
            }
        }
    }

    /// Writes what of the batch is not written yet. The batch itself stays
    /// until a sync covers it (Off: until written), so a failed sync, after
    /// which the kernel may have dropped the pages, is repaired by writing it
    /// all again.
    fn write_batch(&mut self) -> Result<(), SpoolError> {
        for i in 0..self.chunks.len() {
            let c = self.chunks[i];
            let from = c.start.max(self.written_bytes);
            if from >= c.end {
                continue;
            }
            if c.fresh && from == c.start {
                // The old content of a recycled segment may hold the only copy
                // of the delivered mark until the records before it are synced
                // (in every mode: once per segment, it keeps the mark monotonic).
                self.sync_dirty()?;
            }
            // The last chunk is the head's: a zeroed header after it ends the
            // scan there, whatever older bytes follow.
            let last = i + 1 == self.chunks.len();
            let room = (self.cfg.segment_bytes as usize)
                .saturating_sub(c.offset as usize + c.end - c.start);
            let term = if last { room.min(HEADER_LEN) } else { 0 };
            let len = self.batch.len();
            self.batch.resize(len + term, 0);
            let offset = u64::from(c.offset) + (from - c.start) as u64;
            let result = self
                .storage
                .write_at(c.seg, offset, &self.batch[from..c.end + term]);
            self.batch.truncate(len);
            self.segs[c.seg as usize].dirty = true;
            result?;
            self.written_bytes = c.end;
        }
        self.written_through = self.batch_last.max(self.written_through);
        self.written_delivered = self.written_delivered.max(self.batch_delivered);
        if self.cfg.fsync == Fsync::Off {
            // Off promises nothing across a power cut: written is as good as it gets.
            self.index.release_through(self.written_delivered);
        }
        Ok(())
    }

    fn sync_dirty(&mut self) -> Result<(), SpoolError> {
        for id in 0..self.segs.len() {
            if self.segs[id].dirty {
                if let Err(e) = self.storage.sync(id as SegmentId) {
                    // The kernel may have dropped the unsynced pages: write the
                    // kept batch again; under Off nothing is kept to do so.
                    self.written_bytes = 0;
                    self.poisoned |= self.cfg.fsync == Fsync::Off;
                    return Err(e.into());
                }
                self.segs[id].dirty = false;
            }
        }
        self.synced_through = self.written_through;
        self.delivered_durable = self.written_delivered;
        self.index.release_through(self.delivered_durable);
        Ok(())
    }

    fn clear_batch(&mut self) {
        self.batch.clear();
        self.written_bytes = 0;
        self.chunks.clear();
        self.batch_last = 0;
        self.batch_delivered = 0;
        for s in &mut self.segs {
            s.in_batch = false;
        }
    }

    /// After recovery: what is on disk is written and synced.
    pub(super) fn set_recovered(&mut self, last_seq: Seq, skip_to: Seq, delivered: Seq) {
        self.next_seq = skip_to + 1;
        self.delivered = delivered;
        self.session.mark_pushed = delivered;
        self.delivered_durable = delivered;
        self.written_through = last_seq;
        self.written_delivered = delivered;
        self.synced_through = last_seq;
    }
}

/// Reads the whole record at `entry` into `scratch`, returning its length.
fn read_record<S: Storage>(
    storage: &mut S,
    scratch: &mut [u8],
    cfg: &SpoolConfig,
    entry: Entry,
) -> Result<usize, SpoolError> {
    let corrupt = SpoolError::Corrupt { seq: entry.seq };
    let mut header = [0u8; HEADER_LEN];
    storage.read_at(entry.segment, u64::from(entry.offset), &mut header)?;
    let room = (cfg.segment_bytes - entry.offset) as usize;
    let record::Peek::Record(len) = record::peek(&header, room, cfg.max_record()) else {
        return Err(corrupt);
    };
    let buf = scratch.get_mut(..len).ok_or(corrupt)?;
    storage.read_at(entry.segment, u64::from(entry.offset), buf)?;
    Ok(len)
}
