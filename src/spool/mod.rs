//! The durable spool: a journal of accepted messages that survives a crash, a
//! reboot and a power cut, in a fixed amount of disk and memory.
//!
//! A library component, not yet wired into the CLI relay. The [`Journal`]
//! never reads a clock or touches a file itself: time comes in as `now` and
//! every byte goes through a [`Storage`] ([`FsStorage`] for a real directory,
//! [`sim::SimDisk`] for deterministic crash tests).
//!
//! # Use
//!
//! ```
//! use mooring::spool::{sim::SimDisk, Journal, SpoolConfig};
//! use mooring::Instant;
//!
//! let cfg = SpoolConfig { segment_bytes: 4096, segments: 4, max_message_bytes: 512,
//!                         batch_bytes: 2048, index_entries: 64, ..SpoolConfig::default() };
//! let (mut journal, report) = Journal::open(SimDisk::new(), cfg)?;
//! assert_eq!(report.recovered, 0);
//! let seq = journal.append(7, Instant::from_millis(1), b"MSH|...")?;
//! let commit = journal.commit(Instant::from_millis(1))?;
//! assert!(commit.acked_through >= seq); // now the device may get its AA
//!
//! // Forward the oldest undelivered message, then mark it delivered.
//! let mut buf = [0u8; 512];
//! let entry = journal.undelivered().next().unwrap();
//! let msg = journal.read(entry, &mut buf)?;
//! assert_eq!(&buf[..msg.len], b"MSH|...");
//! journal.mark_delivered(msg.seq)?;
//! # Ok::<(), mooring::spool::SpoolError>(())
//! ```
//!
//! # On disk
//!
//! `segments` files of exactly `segment_bytes` each, created once, filled with
//! zeros (so the space is really allocated) under a temporary name and renamed,
//! with the directory fsynced after. The spool never grows past
//! `segments x segment_bytes`. Each segment holds records one after the other
//! from offset 0 (layout in `record.rs`): length, CRC-32C, sequence number,
//! kind, body. Kinds: *checkpoint* (the first record of every segment, with the
//! delivered mark when the segment was started), *accepted* (sender, arrival
//! time, message), *delivered up to N* and *session* (an upstream session's
//! state, also a delivered mark: [`Journal::set_session`], layout and rules in
//! `session_record.rs`). Sequence numbers increase across the
//! whole journal; a segment whose accepted records are all delivered is
//! recycled: written again from offset 0 (never truncated or deleted).
//!
//! # Commit
//!
//! [`Journal::append`] only encodes into the batch buffer. [`Journal::commit`]
//! writes everything appended since the last commit with one write per segment
//! touched (one, except when the batch crosses into a new segment) and, in
//! [`Fsync::Batch`], one `fdatasync`; it returns the sequence numbers the caller
//! may acknowledge. Before a recycled segment is overwritten, all earlier
//! writes are synced, so the delivered mark on disk never goes backwards.
//! See [`Fsync`] for what each mode can lose.
//!
//! # Recovery
//!
//! [`Journal::open`] scans every segment and checks every record's CRC. A
//! damaged record followed by good records in the same segment is skipped and
//! counted (`corrupt`), never returned. Damage after the last good record of
//! the newest segment is a torn tail: it is zeroed in place (`truncated_bytes`;
//! the file keeps its size). The undelivered accepted messages (sequence
//! number above the highest delivered mark found) are indexed in their original
//! order. Numbering resumes above any number a lost write could have used
//! (recorded by a synced mark at open), so a number that reached the disk is
//! never given to another message.
//!
//! # Delivery contract (at least once)
//!
//! - Every message whose sequence number is at or below
//!   [`Commit::synced_through`] is returned by [`Journal::undelivered`] after
//!   any crash and recovery, unless it was marked delivered and that mark was
//!   committed.
//! - A message marked delivered whose mark was not yet covered by a completed
//!   sync ([`Journal::delivered_durable`]) may be returned once more after a
//!   crash; one whose mark was synced never is.
//! - A message appended but never covered by a commit may or may not come back
//!   (it was never acknowledged). Order is always the original sequence order,
//!   and no damaged or partial record is ever returned.
//!
//! # Memory
//!
//! Fixed at [`Journal::open`] (fallible allocation): the batch buffer
//! (`batch_bytes`), a read buffer (one record), the index (16 bytes x
//! `index_entries`) and a few words per segment. `append`, `commit`, `read` and
//! `mark_delivered` allocate nothing.

mod index;
mod journal;
mod record;
mod recover;
mod session_record;
pub mod sim;
mod storage;

pub use index::Entry;
pub use journal::{Commit, Journal, Message, RecoveryReport, SpoolStats};
pub use session_record::SessionState;
#[cfg(unix)]
pub use storage::FsStorage;
pub use storage::{SegmentId, Storage};

use core::fmt;
use core::time::Duration;
use std::io;

/// A record's sequence number; 0 means "none".
pub type Seq = u64;

/// When the journal calls `fdatasync`, and what each choice can lose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// Every [`Journal::commit`] ends with one `fdatasync` covering the whole
    /// batch (group commit); `acked_through` is what is on stable storage.
    /// Loses nothing that was acknowledged, on a crash or a power cut.
    #[default]
    Batch,
    /// Commits write to the OS at once; `fdatasync` runs at the first commit
    /// after the interval elapsed (see [`Journal::sync_deadline`]) or once
    /// half the batch buffer holds unsynced records (kept to write again if a
    /// sync fails). `acked_through` counts what was written. A process crash
    /// loses nothing, unless it follows a failed sync before the next good
    /// commit; a power cut or OS crash can lose up to one interval of
    /// acknowledged messages.
    Interval(Duration),
    /// No `fdatasync` at commits (the OS writes back when it likes, typically
    /// within 30 s); only the one before a segment is recycled. A process
    /// crash loses nothing; a power cut can lose anything not yet written
    /// back, acknowledged or not.
    Off,
}

/// The spool's shape and limits. Total disk is `segments x segment_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Bytes per segment file. Default 16 MiB. At most 1 GiB.
    pub segment_bytes: u32,
    /// Number of segment files, at least 2. Default 16 (256 MiB in all).
    pub segments: u32,
    /// Largest message accepted. Default 1 MiB (the default `max_frame`).
    pub max_message_bytes: u32,
    /// Batch buffer: everything appended between two commits. Default 2 MiB.
    /// Must hold one largest record plus a checkpoint and a delivered mark.
    pub batch_bytes: u32,
    /// Undelivered messages the index can hold (16 bytes each). Default
    /// 524,288 (8 MiB): one per [`BYTES_PER_INDEX_ENTRY`] of spool.
    pub index_entries: u32,
    /// When to `fdatasync`. Default [`Fsync::Batch`].
    pub fsync: Fsync,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_bytes: 16 << 20,
            segments: 16,
            max_message_bytes: 1 << 20,
            batch_bytes: 2 << 20,
            index_entries: ((256 << 20) / BYTES_PER_INDEX_ENTRY) as u32,
            fsync: Fsync::Batch,
        }
    }
}

/// Spool bytes per index entry in the default sizing (HL7 messages are
/// rarely under 512 bytes; smaller ones can fill the index first: `IndexFull`).
pub const BYTES_PER_INDEX_ENTRY: u64 = 512;

impl SpoolConfig {
    /// The default configuration resized to about `total` bytes on disk:
    /// segments of the default size (fewer bytes each for a small spool, at
    /// least 2 segments), and the index sized from the total (one entry per
    /// [`BYTES_PER_INDEX_ENTRY`]).
    pub fn with_total_bytes(total: u64) -> SpoolConfig {
        let d = SpoolConfig::default();
        let segment_bytes = u64::from(d.segment_bytes).min(total / 2).max(1);
        let segments = (total / segment_bytes).clamp(2, u64::from(u32::MAX));
        let index =
            (segments * segment_bytes / BYTES_PER_INDEX_ENTRY).clamp(1, u64::from(u32::MAX));
        SpoolConfig {
            segment_bytes: segment_bytes as u32,
            segments: segments as u32,
            index_entries: index as u32,
            ..d
        }
    }

    /// Total bytes on disk.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.segments) * u64::from(self.segment_bytes)
    }

    /// The largest record, header included.
    pub(crate) fn max_record(&self) -> usize {
        let accepted = record::HEADER_LEN + record::ACCEPTED_META + self.max_message_bytes as usize;
        accepted.max(session_record::SESSION_LEN)
    }

    /// Checks the limits fit together.
    pub fn validate(&self) -> Result<(), SpoolError> {
        let max_record = self.max_record();
        let bad = if self.segments < 2 {
            Some("segments must be at least 2")
        } else if self.segment_bytes > 1 << 30 {
            Some("segment_bytes must be at most 1 GiB")
        } else if (self.segment_bytes as usize) < record::CHECKPOINT_LEN + max_record {
            Some("segment_bytes must hold a checkpoint and one max_message_bytes record")
        } else if (self.batch_bytes as usize)
            < record::CHECKPOINT_LEN + record::MARK_LEN + max_record
        {
            Some("batch_bytes must hold a checkpoint, a delivered mark and one max_message_bytes record")
        } else if self.index_entries == 0 {
            Some("index_entries must be at least 1")
        } else if matches!(self.fsync, Fsync::Interval(d) if d.is_zero()) {
            Some("fsync interval must be above zero")
        } else {
            None
        };
        bad.map_or(Ok(()), |what| Err(SpoolError::Config(what)))
    }
}

/// Why a spool operation failed. Every refusal is named; nothing is dropped
/// silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpoolError {
    /// No segment is free: the spool holds `segments x segment_bytes` of
    /// undelivered messages. Deliver (and mark) some, then append again.
    Full,
    /// The index holds `index_entries` undelivered messages.
    IndexFull,
    /// The batch buffer is full: commit, then append again.
    BatchFull,
    /// The message is longer than `max_message_bytes`.
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A read buffer shorter than the message.
    BufferTooSmall {
        /// The length that would have worked.
        required: usize,
    },
    /// `mark_delivered` beyond the last appended sequence number.
    InvalidMark,
    /// A record failed its CRC when read back (damage after recovery).
    Corrupt {
        /// The record's sequence number.
        seq: Seq,
    },
    /// The disk is full (`ENOSPC`). Nothing appended since the last good commit
    /// is durable; the next commit writes it all again.
    NoSpace,
    /// Any other I/O error (`EIO` and the like), with the OS error number.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The raw OS error number, when there is one (5 is `EIO`).
        errno: Option<i32>,
    },
    /// Under [`Fsync::Off`], a failed `fdatasync` may have dropped written
    /// records from the page cache: reopen the journal, whose recovery finds
    /// what is really on disk.
    Poisoned,
    /// Another process holds the spool directory's lock.
    Locked,
    /// The files on disk do not match the configuration (a segment of another
    /// size, or more segments than configured): refused rather than lose data.
    Layout(&'static str),
    /// The configuration is inconsistent.
    Config(&'static str),
}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull {
            SpoolError::NoSpace
        } else {
            SpoolError::Io {
                kind: e.kind(),
                errno: e.raw_os_error(),
            }
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full => {
                f.write_str("spool full: no segment free until messages are delivered")
            }
            SpoolError::IndexFull => f.write_str("spool index full: too many undelivered messages"),
            SpoolError::BatchFull => f.write_str("spool batch buffer full: commit first"),
            SpoolError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the spool limit of {max}")
            }
            SpoolError::BufferTooSmall { required } => {
                write!(f, "read buffer too small: {required} bytes needed")
            }
            SpoolError::InvalidMark => {
                f.write_str("delivered mark beyond the last appended message")
            }
            SpoolError::Corrupt { seq } => write!(f, "spool record {seq} failed its CRC"),
            SpoolError::NoSpace => f.write_str("no space left on the spool's device (ENOSPC)"),
            SpoolError::Io {
                kind,
                errno: Some(n),
            } => write!(f, "spool I/O error: {kind} (os error {n})"),
            SpoolError::Io { kind, errno: None } => write!(f, "spool I/O error: {kind}"),
            SpoolError::Poisoned => {
                f.write_str("spool sync failed under fsync=off: reopen the spool")
            }
            SpoolError::Locked => f.write_str("spool directory is locked by another process"),
            SpoolError::Layout(what) => {
                write!(f, "spool files do not match the configuration: {what}")
            }
            SpoolError::Config(what) => write!(f, "spool configuration: {what}"),
        }
    }
}

impl std::error::Error for SpoolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_from_a_total_keeps_segments_and_index_in_proportion() {
        assert_eq!(
            SpoolConfig::with_total_bytes(256 << 20),
            SpoolConfig::default()
        );
        let big = SpoolConfig::with_total_bytes(1 << 30);
        assert_eq!(
            (big.segments, big.segment_bytes, big.index_entries),
            (64, 16 << 20, 1 << 21)
        );
        let small = SpoolConfig::with_total_bytes(8 << 20);
        assert_eq!((small.segments, small.segment_bytes), (2, 4 << 20));
        assert_eq!(small.validate(), Ok(()));
        assert!(
            SpoolConfig::with_total_bytes(1000).validate().is_err(),
            "too small for one message"
        );
    }
}
