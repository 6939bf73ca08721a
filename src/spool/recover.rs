//! Recovery at open: make sure every segment file exists at its fixed size,
//! scan every record, skip damage, zero a torn tail, rebuild the index.

use super::index::Entry;
use super::journal::{Journal, RecoveryReport, Seg};
use super::record::{self, Body, Peek, Record, HEADER_LEN};
use super::storage::{SegmentId, Storage};
use super::{Seq, SpoolError};

/// What one pass over a segment found.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    first_seq: Seq,
    last_seq: Seq,
    /// End of the last good record.
    tail: u32,
    d_max: Seq,
    max_accepted: Seq,
    /// Damaged records followed by good ones (skipped, never returned).
    corrupt: u64,
    /// Damaged bytes before the first good record: a recycled segment whose
    /// first write was torn (the good records after are its older content).
    lead_damage: u32,
    /// Where unreadable bytes start, when the scan ended on damage rather than
    /// on zeroed space, the segment's end or an older record left from before
    /// the segment was recycled.
    damage_from: Option<u32>,
}

/// Reads a segment through a buffer in large pieces: one read per buffer
/// rather than two per record (a full spool is scanned at every start).
struct Reader<'a, S> {
    storage: &'a mut S,
    buf: &'a mut [u8],
    id: SegmentId,
    seg_bytes: u32,
    /// Segment offset of `buf[0]`, and how many bytes of `buf` are valid.
    start: u32,
    len: usize,
}

impl<S: Storage> Reader<'_, S> {
    /// `n` bytes at `off`; `n` is at most the buffer and the room left.
    fn get(&mut self, off: u32, n: usize) -> Result<&[u8], SpoolError> {
        let end = off as usize + n;
        if off < self.start || end > self.start as usize + self.len {
            let len = self.buf.len().min((self.seg_bytes - off) as usize);
            self.storage
                .read_at(self.id, u64::from(off), &mut self.buf[..len])?;
            self.start = off;
            self.len = len;
        }
        let at = (off - self.start) as usize;
        Ok(&self.buf[at..at + n])
    }
}

/// Walks the records of segment `id` from offset 0. A record is good when
/// its CRC checks and its sequence number is above the previous good one in
/// the segment (a lower one is older content behind a recycled segment's end).
/// A damaged record whose length is plausible is stepped over, so good
/// records after it are still found. `buf` holds at least one record.
fn scan<S: Storage>(
    storage: &mut S,
    buf: &mut [u8],
    seg_bytes: u32,
    max_record: usize,
    id: SegmentId,
    mut visit: impl FnMut(Record<'_>, u32),
) -> Result<Scan, SpoolError> {
    let mut reader = Reader {
        storage,
        buf,
        id,
        seg_bytes,
        start: 0,
        len: 0,
    };
    let mut out = Scan::default();
    let mut off: u32 = 0;
    let mut first_bad: Option<u32> = None;
    let mut bad_count = 0u64;
    let clean_end = loop {
        let room = (seg_bytes - off) as usize;
        if room < HEADER_LEN {
            break true;
        }
        let header: &[u8; HEADER_LEN] = reader
            .get(off, HEADER_LEN)?
            .try_into()
            .map_err(|_| SpoolError::Config("scan buffer"))?;
        let len = match record::peek(header, room, max_record) {
            Peek::Empty => break true,
            Peek::Implausible => break false,
            Peek::Record(len) => len,
        };
        match record::decode(reader.get(off, len)?) {
            Some(rec) if rec.seq > out.last_seq => {
                if out.last_seq == 0 {
                    out.lead_damage = off;
                } else {
                    out.corrupt += bad_count;
                }
                bad_count = 0;
                first_bad = None;
                if out.first_seq == 0 {
                    out.first_seq = rec.seq;
                }
                out.last_seq = rec.seq;
                match rec.body {
                    Body::Accepted { .. } => out.max_accepted = rec.seq,
                    body => out.d_max = out.d_max.max(body.delivered().unwrap_or(0)),
                }
                visit(rec, off);
                // len <= room, so this stays within the segment.
                off += len as u32;
                out.tail = off;
            }
            // An older record: what is left of the segment's previous use.
            Some(_) => break true,
            None => {
                first_bad.get_or_insert(off);
                bad_count += 1;
                off += len as u32;
            }
        }
    };
    out.damage_from = match (first_bad, clean_end) {
        (Some(at), _) => Some(at),
        (None, false) => Some(off),
        (None, true) => None,
    };
    Ok(out)
}

impl<S: Storage> Journal<S> {
    /// Creates missing segments, repairs short ones, refuses a layout that
    /// does not match the configuration.
    fn prepare_files(&mut self, report: &mut RecoveryReport) -> Result<(), SpoolError> {
        let count = self.cfg.segments;
        let size = u64::from(self.cfg.segment_bytes);
        let mut present = Vec::new();
        self.storage.list(&mut present)?;
        if present.iter().any(|&id| id >= count) {
            return Err(SpoolError::Layout("more segment files than segments"));
        }
        for id in 0..count {
            match self.storage.segment_len(id)? {
                None => {
                    self.storage.create_temp(id, size)?;
                    self.storage.publish(id)?;
                    report.created_segments += 1;
                }
                Some(len) if len == size => {}
                Some(len) if len < size => {
                    // Cut short (by a tool or a broken filesystem): what is
                    // there is still scanned; the rest becomes zeroed space.
                    log::warn!("spool segment {id} is {len} bytes, restoring it to {size}");
                    self.zero(id, len, size, true)?;
                    self.storage.sync(id)?;
                }
                Some(_) => {
                    return Err(SpoolError::Layout(
                        "a segment file is larger than segment_bytes",
                    ))
                }
            }
        }
        if report.created_segments > 0 {
            self.storage.sync_dir()?;
        }
        Ok(())
    }

    /// Zeroes `from..to` of segment `id`, writing only the parts that are not
    /// zero already (all of it when `blind`, past the end of a short file).
    /// Returns how many bytes up to the last non-zero one were cleared.
    fn zero(&mut self, id: SegmentId, from: u64, to: u64, blind: bool) -> Result<u64, SpoolError> {
        let mut cleared_to = from;
        let mut at = from;
        while at < to {
            let n = (to - at).min(self.scratch.len() as u64) as usize;
            let chunk = &mut self.scratch[..n];
            if !blind {
                self.storage.read_at(id, at, chunk)?;
            }
            if blind || chunk.iter().any(|&b| b != 0) {
                let last = chunk.iter().rposition(|&b| b != 0).map_or(n, |p| p + 1);
                cleared_to = at + last as u64;
                chunk.fill(0);
                self.storage.write_at(id, at, chunk)?;
            }
            at += n as u64;
        }
        Ok(cleared_to - from)
    }

    /// Rebuilds the journal's state from disk. See the module docs of `spool`.
    pub(super) fn recover(&mut self) -> Result<RecoveryReport, SpoolError> {
        let mut report = RecoveryReport::default();
        self.prepare_files(&mut report)?;
        let (seg_bytes, max_record) = (self.cfg.segment_bytes, self.cfg.max_record());
        let mut scans = Vec::new();
        scans
            .try_reserve_exact(self.segs.len())
            .map_err(|_| SpoolError::Config("cannot allocate the recovery table"))?;
        for id in 0..self.cfg.segments {
            scans.push(scan(
                &mut self.storage,
                &mut self.scratch,
                seg_bytes,
                max_record,
                id,
                |_, _| {},
            )?);
        }
        let delivered = scans.iter().map(|s| s.d_max).max().unwrap_or(0);
        let last_seq = scans.iter().map(|s| s.last_seq).max().unwrap_or(0);
        let head = scans
            .iter()
            .position(|s| s.last_seq == last_seq && last_seq > 0)
            .map(|i| i as SegmentId);

        // Damage: a torn tail in the newest segment, or a damaged end elsewhere
        // (a new segment's first write torn, or bit rot). Zeroed either way, so
        // nothing stale is ever read as a record later.
        for id in 0..self.cfg.segments {
            let s = scans[id as usize];
            let from = if Some(id) == head {
                Some(s.tail)
            } else {
                s.damage_from
            };
            let damaged = s.damage_from.is_some();
            report.corrupt += s.corrupt;
            report.truncated_bytes += u64::from(s.lead_damage);
            if let (Some(from), true) = (from, damaged) {
                let cleared = self.zero(id, u64::from(from), u64::from(seg_bytes), false)?;
                self.storage.sync(id)?;
                if Some(id) == head || s.last_seq == 0 {
                    report.truncated_bytes += cleared;
                } else {
                    report.corrupt += 1;
                }
            }
        }

        // The index: undelivered accepted records, segments in sequence order.
        let mut order: Vec<(Seq, SegmentId)> = Vec::new();
        order
            .try_reserve_exact(scans.len())
            .map_err(|_| SpoolError::Config("cannot allocate the recovery table"))?;
        order.extend(
            (0..self.cfg.segments)
                .filter(|&id| scans[id as usize].first_seq > 0)
                .map(|id| (scans[id as usize].first_seq, id)),
        );
        order.sort_unstable();
        let mut newest_session = None;
        for &(_, id) in &order {
            let index = &mut self.index;
            let report = &mut report;
            let newest_session = &mut newest_session;
            scan(
                &mut self.storage,
                &mut self.scratch,
                seg_bytes,
                max_record,
                id,
                |rec, offset| {
                    if let Body::Session(s) = rec.body {
                        // Segments go in sequence order: the last seen is newest.
                        *newest_session = Some(s);
                    }
                    if !matches!(rec.body, Body::Accepted { .. }) || rec.seq <= delivered {
                        return;
                    }
                    let entry = Entry {
                        seq: rec.seq,
                        segment: id,
                        offset,
                    };
                    match index.push(entry) {
                        Ok(()) => report.recovered += 1,
                        Err(_) => report.unindexed += 1,
                    }
                },
            )?;
        }
        self.index.sort();
        if report.unindexed > 0 {
            log::error!(
                "spool: {} undelivered messages do not fit the index of {} and will not be delivered",
                report.unindexed,
                self.cfg.index_entries
            );
        }

        for (seg, s) in self.segs.iter_mut().zip(&scans) {
            *seg = Seg {
                fill: s.tail,
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                max_accepted: s.max_accepted,
                d_max: s.d_max,
                in_batch: false,
                dirty: false,
            };
        }
        // What a crashed process left in the page cache is recovered (and may
        // be acknowledged again) only once it is on stable storage.
        for id in 0..self.cfg.segments {
            self.storage.sync(id)?;
        }
        self.head = head;
        // Records written but never durable may still lie beyond a gap, unseen:
        // numbering resumes above any they could have had, so a number is never
        // given twice. Unsynced writes never exceed a segment plus the batch
        // (a sync comes before every recycled segment), and a record is at
        // least a header long.
        let lost = (u64::from(seg_bytes) + u64::from(self.cfg.batch_bytes)) / HEADER_LEN as u64;
        self.set_recovered(last_seq, last_seq.saturating_add(lost), delivered);
        report.delivered = delivered;
        self.recover_session(newest_session, delivered);
        report.session = self.session.state;
        // A delivered mark, synced now: the newest segment carries the mark
        // (before any older segment holding it is recycled), and the disk
        // holds the new numbering (so the next recovery resumes above it).
        if let Err(e) = self.carry_mark_now() {
            if e != SpoolError::Full {
                return Err(e);
            }
            log::warn!("spool: full at recovery, the delivered mark is not rewritten");
        }
        Ok(report)
    }
}
