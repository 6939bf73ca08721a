//! The relay's durable spool: every message the relay accepts is appended to a
//! [`Journal`] on disk, committed once per loop turn (group commit), and marked
//! delivered as the upstream acknowledges it. With [`AckAfter::Queued`] a
//! device's AA waits for the commit that covers its message, so an AA always
//! means "on disk". On start the undelivered messages are recovered and
//! forwarded, in their original order, before anything new.
//!
//! [`AckAfter::Queued`]: super::AckAfter::Queued

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::intake::{build_ack, msh_segment, send_ack};
use super::{AckAfter, Relay, RelayEvent};
use crate::hl7::{self, AckCode};
use crate::spool::{
    Entry, FsStorage, Fsync, Journal, RecoveryReport, Seq, SpoolConfig, SpoolError,
};
use crate::time::{earliest, Instant};
use crate::{LinkId, Node};

/// Where and how the relay keeps its queue on disk ([`RelayConfig::spool`]).
///
/// [`RelayConfig::spool`]: super::RelayConfig::spool
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The spool directory (created if missing, locked while the relay runs).
    pub dir: PathBuf,
    /// Total bytes on disk, preallocated at start. Default 256 MiB.
    pub size: u64,
    /// When to `fdatasync`. Default [`Fsync::Batch`] (an AA is sent only after
    /// the sync that covers its message).
    pub fsync: Fsync,
}

impl SpoolSettings {
    /// The default size (256 MiB) and [`Fsync::Batch`] in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolSettings {
            dir: dir.into(),
            size: 256 << 20,
            fsync: Fsync::Batch,
        }
    }

    /// The journal's configuration for messages up to `max_message` bytes.
    pub fn journal_config(&self, max_message: usize) -> SpoolConfig {
        let mut cfg = SpoolConfig::with_total_bytes(self.size);
        cfg.max_message_bytes = u32::try_from(max_message).unwrap_or(u32::MAX);
        let batch = u64::from(cfg.max_message_bytes).saturating_mul(2) + 4096;
        cfg.batch_bytes = cfg
            .batch_bytes
            .max(u32::try_from(batch).unwrap_or(u32::MAX));
        cfg.fsync = self.fsync;
        cfg
    }
}

/// The spool's pressure, reported on each change ([`super::RelayEvent::SpoolPressure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    /// Messages are accepted and committed.
    Ok,
    /// The spool holds as much undelivered data as it can (its size, or its
    /// index of undelivered messages): devices get MSA|AR until the upstream
    /// acknowledges some.
    Full,
    /// Writing or syncing failed (`ENOSPC`, `EIO`): devices get MSA|AR; the
    /// relay retries the commit every [`RETRY`] and recovers by itself.
    DiskError(SpoolError),
    /// Recovered messages do not all fit the in-memory queue yet: new
    /// messages get MSA|AR until they are forwarded (they go first).
    Recovering,
}

impl Pressure {
    /// The name in `state=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Ok => "ok",
            Pressure::Full => "full",
            Pressure::DiskError(_) => "disk_error",
            Pressure::Recovering => "recovering",
        }
    }
}

/// How often a failed commit is tried again.
pub const RETRY: Duration = Duration::from_millis(200);

/// Delivered marks wait at most this long for a commit of new messages to
/// ride along with, so that forwarding costs no `fdatasync` of its own per
/// acknowledged message. A crash can thus make the relay resend up to this
/// much of what the upstream had already acknowledged (at least once, as
/// ever; raw receivers deduplicate by MSH-10).
pub const MARKS_WITHIN: Duration = Duration::from_millis(100);

/// The spool's numbers for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelaySpoolStats {
    /// Bytes in the segments holding undelivered messages.
    pub bytes_used: u64,
    /// Total bytes on disk.
    pub bytes_total: u64,
    /// Undelivered messages (records) in the spool.
    pub records: usize,
    /// Age of the oldest undelivered message (zero when none).
    pub oldest_age: Duration,
}

/// The journal with the relay's bookkeeping around it.
pub(super) struct Durable {
    pub(super) journal: Journal<FsStorage>,
    pub(super) settings: SpoolSettings,
    pub(super) report: RecoveryReport,
    /// The start event is still to be reported.
    pub(super) report_due: bool,
    pub(super) pressure: Pressure,
    /// Appended since the last good commit: devices wait for it.
    pub(super) uncommitted: bool,
    /// Delivered marks since the last good commit are written by then at the
    /// latest (they ride along with the next commit of new messages).
    pub(super) marks_by: Option<Instant>,
    /// What the last good commit made safe to acknowledge.
    pub(super) acked_through: Seq,
    /// When to try a failed commit again.
    pub(super) retry_at: Option<Instant>,
    /// Recovered messages not yet in the queue: the next to load is the first
    /// undelivered entry at or above this (0: none left).
    pub(super) backlog_from: Seq,
    /// One message read back from disk.
    pub(super) buf: Vec<u8>,
    /// The upstream session kept in the spool (`relay/resume.rs`).
    pub(super) session: super::resume::SpoolSession,
}

impl Durable {
    /// Opens (and recovers) the spool for messages up to `max_message` bytes.
    pub(super) fn open(settings: &SpoolSettings, max_message: usize) -> Result<Self, SpoolError> {
        let cfg = settings.journal_config(max_message);
        cfg.validate()?;
        let storage = FsStorage::open(&settings.dir)?;
        let (journal, report) = Journal::open(storage, cfg)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(max_message)
            .map_err(|_| SpoolError::Config("cannot allocate the spool's read buffer"))?;
        buf.resize(max_message, 0);
        let backlog_from = journal.undelivered().next().map_or(0, |e| e.seq);
        let mut d = Durable {
            journal,
            settings: settings.clone(),
            report,
            report_due: true,
            pressure: if backlog_from > 0 {
                Pressure::Recovering
            } else {
                Pressure::Ok
            },
            uncommitted: false,
            marks_by: None,
            acked_through: 0,
            retry_at: None,
            backlog_from,
            buf,
            session: super::resume::SpoolSession::default(),
        };
        d.session = super::resume::SpoolSession::recovered(&d);
        Ok(d)
    }

    /// Appends a device's message; the refusal names the cause.
    pub(super) fn append(
        &mut self,
        sender: u64,
        now: Instant,
        msg: &[u8],
    ) -> Result<Seq, SpoolError> {
        let seq = self.journal.append(sender, now, msg)?;
        self.uncommitted = true;
        Ok(seq)
    }

    /// `seq` (and everything before it) was settled upstream at `now`: its
    /// mark is committed within [`MARKS_WITHIN`] (at once when the spool is
    /// full: the mark frees its space).
    pub(super) fn mark(&mut self, seq: Seq, now: Instant) {
        if self.session.on {
            // Written as part of the session's state (relay/resume.rs).
            self.session.pending_mark = self.session.pending_mark.max(seq);
            return;
        }
        if seq > self.journal.delivered() && self.journal.mark_delivered(seq).is_ok() {
            let by = if self.pressure == Pressure::Full {
                now
            } else {
                now + MARKS_WITHIN
            };
            self.marks_by = earliest(self.marks_by, Some(by));
        }
    }

    /// Whether a commit is due now: new messages, or marks whose time came
    /// (and no failed commit waiting for its retry time), or an interval sync
    /// due.
    pub(super) fn commit_due(&self, now: Instant) -> bool {
        let wanted = self.uncommitted || self.marks_by.is_some_and(|t| now >= t);
        let pending = wanted && self.retry_at.is_none_or(|t| now >= t);
        pending || self.journal.sync_deadline().is_some_and(|t| now >= t)
    }

    /// The next time the relay must run for the spool.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let commit = if self.uncommitted {
            Some(self.retry_at.unwrap_or(Instant::ZERO))
        } else {
            self.marks_by.map(|t| self.retry_at.map_or(t, |r| r.max(t)))
        };
        earliest(commit, self.journal.sync_deadline())
    }

    /// The next recovered message to load into the queue (its number, and
    /// its length read into `buf`).
    pub(super) fn next_backlog(&mut self) -> Option<(Seq, Result<usize, SpoolError>)> {
        if self.backlog_from == 0 {
            return None;
        }
        let from = self.backlog_from;
        let Some(entry): Option<Entry> = self.journal.undelivered().find(|e| e.seq >= from) else {
            self.backlog_from = 0;
            return None;
        };
        Some((
            entry.seq,
            self.journal.read(entry, &mut self.buf).map(|m| m.len),
        ))
    }

    /// Current numbers.
    pub(super) fn stats(&mut self, now: Instant) -> RelaySpoolStats {
        let s = self.journal.stats();
        let oldest = self.journal.oldest_arrival().ok().flatten();
        RelaySpoolStats {
            bytes_used: s.bytes_used,
            bytes_total: s.total_bytes,
            records: s.undelivered,
            oldest_age: oldest.map_or(Duration::ZERO, |t| now.saturating_since(t)),
        }
    }
}

/// The pressure a refused append or a failed commit means.
fn pressure_of(e: SpoolError) -> Pressure {
    match e {
        SpoolError::Full | SpoolError::IndexFull | SpoolError::BatchFull => Pressure::Full,
        e => Pressure::DiskError(e),
    }
}

/// Sets the pressure, reporting a change.
fn set_pressure(d: &mut Durable, state: Pressure, out: &mut dyn FnMut(RelayEvent)) {
    if d.pressure == state {
        return;
    }
    d.pressure = state;
    let s = d.journal.stats();
    match state {
        Pressure::DiskError(e) => log::warn!("spool: {e}: devices get MSA|AR until it recovers"),
        Pressure::Full => log::warn!("spool full: devices get MSA|AR until messages are delivered"),
        _ => {}
    }
    out(RelayEvent::SpoolPressure {
        state,
        used: s.bytes_used,
        records: s.undelivered,
    });
}

impl Relay {
    /// With a spool: appends a new device message (its spool number), or
    /// names why it cannot be made durable (the device gets MSA|AR). Without
    /// a spool: `Ok(0)`.
    pub(super) fn spool_append(
        &mut self,
        link: LinkId,
        payload: &[u8],
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) -> Result<Seq, Pressure> {
        let Some(d) = self.spool.as_mut() else {
            return Ok(0);
        };
        if d.backlog_from != 0 {
            return Err(Pressure::Recovering);
        }
        match d.append(u64::from(link.slot()), now, payload) {
            Ok(seq) => {
                if d.pressure == Pressure::Full {
                    set_pressure(d, Pressure::Ok, out);
                }
                Ok(seq)
            }
            // A failing disk stays the cause until a commit succeeds.
            Err(_) if matches!(d.pressure, Pressure::DiskError(_)) => Err(d.pressure),
            Err(e) => {
                let p = pressure_of(e);
                set_pressure(d, p, out);
                Err(p)
            }
        }
    }

    /// Marks a settled message delivered in the spool (written at the next
    /// commit, within [`MARKS_WITHIN`]).
    pub(super) fn spool_mark(&mut self, spool_seq: Seq, now: Instant) {
        if let (Some(d), true) = (self.spool.as_mut(), spool_seq > 0) {
            d.mark(spool_seq, now);
        }
    }

    /// Group commit when due; then every device waiting for it gets AA (or,
    /// if it failed, MSA|AR: never AA for what is not durable).
    pub(super) fn commit(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        let now = node.now();
        let Some(d) = self.spool.as_mut() else { return };
        if d.report_due {
            d.report_due = false;
            out(RelayEvent::SpoolOpened {
                dir: &d.settings.dir,
                size: d.journal.stats().total_bytes,
                recovered: d.report.recovered,
                corrupt: d.report.corrupt,
            });
        }
        if !d.commit_due(now) {
            return;
        }
        let before = d.acked_through;
        let ok = match d.journal.commit(now) {
            Ok(c) => {
                d.uncommitted = false;
                d.marks_by = None;
                d.retry_at = None;
                d.acked_through = c.acked_through;
                if matches!(d.pressure, Pressure::DiskError(_)) {
                    set_pressure(d, Pressure::Ok, out);
                }
                true
            }
            Err(e) => {
                d.retry_at = Some(now + RETRY);
                set_pressure(d, Pressure::DiskError(e), out);
                false
            }
        };
        let acked = d.acked_through;
        let cause = d.pressure;
        if ok {
            self.session_committed(node);
        }
        if self.cfg.ack_after != AckAfter::Queued {
            return;
        }
        // Waiting devices are among the newest entries: count back from the
        // newest to what an earlier commit already covered, then answer
        // oldest first, so a device that pipelines gets its ACKs in the order
        // it sent its messages.
        let held = self.queue.entries_mut().len();
        let fresh = if ok {
            self.queue
                .entries_mut()
                .rev()
                .take_while(|e| e.spool_seq > before)
                .count()
        } else {
            held
        };
        for e in self.queue.entries_mut().skip(held - fresh) {
            let Some(link) = e.link else { continue };
            let code = if e.spool_seq <= acked {
                AckCode::Accept
            } else if !ok {
                out(RelayEvent::SpoolRefused {
                    peer: e.peer,
                    id: &e.id,
                    cause,
                });
                AckCode::Reject
            } else {
                continue;
            };
            e.link = None;
            if let Some(n) = build_ack(&e.msh, code, &mut self.ack_buf) {
                send_ack(node, link, &self.ack_buf[..n], e.peer);
            }
        }
    }

    /// Loads recovered messages into the queue, oldest first, while it has
    /// room; they go upstream before anything new.
    pub(super) fn load_backlog(&mut self, now: Instant, out: &mut dyn FnMut(RelayEvent)) {
        let Some(d) = self.spool.as_mut() else { return };
        while d.backlog_from != 0 && !self.queue.is_full() {
            let Some((seq, read)) = d.next_backlog() else {
                break;
            };
            let len = match read {
                Ok(len) => len,
                Err(e) => {
                    // Damaged since recovery: skipped, never delivered.
                    log::error!("spool: recovered message {seq} unreadable ({e}): skipped");
                    d.backlog_from = seq.saturating_add(1);
                    continue;
                }
            };
            let payload = &d.buf[..len];
            let key = hl7::message_key(payload);
            let id: &[u8] = key.map_or(&[], |[.., id]| id);
            if let Some(k) = key {
                self.dedup.first_time(&k);
            }
            let peer = SocketAddr::from(([0, 0, 0, 0], 0));
            let msh = msh_segment(payload);
            if self
                .queue
                .push(payload, msh, id, peer, None, now, seq)
                .is_none()
            {
                break; // the queue's bytes are taken: the next drive tries again
            }
            d.backlog_from = seq.saturating_add(1);
        }
        if d.backlog_from != 0 && d.journal.undelivered().all(|e| e.seq < d.backlog_from) {
            d.backlog_from = 0;
        }
        if d.backlog_from == 0 && d.pressure == Pressure::Recovering {
            set_pressure(d, Pressure::Ok, out);
        }
    }
}

impl Relay {
    /// The spool's pressure now (`None`: no spool).
    pub fn spool_pressure(&self) -> Option<Pressure> {
        self.spool.as_ref().map(|d| d.pressure)
    }
}
