//! The spool on a real directory ([`FsStorage`]): reopen and recover, damage
//! at every byte offset of the last records, and the lock that keeps a second
//! process out.

use std::fs;
use std::path::{Path, PathBuf};

use mooring::spool::{FsStorage, Fsync, Journal, Seq, SpoolConfig, SpoolError};
use mooring::Instant;

/// A fresh directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mooring-spool-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cfg() -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 2048,
        segments: 2,
        max_message_bytes: 128,
        batch_bytes: 1024,
        index_entries: 64,
        fsync: Fsync::Batch,
    }
}

fn msg(i: u64) -> Vec<u8> {
    format!("MSH|{i}|").into_bytes()
}

fn open(dir: &Path) -> (Journal<FsStorage>, mooring::spool::RecoveryReport) {
    Journal::open(FsStorage::open(dir).unwrap(), cfg()).unwrap()
}

fn drain(j: &mut Journal<FsStorage>) -> Vec<(Seq, Vec<u8>)> {
    let mut buf = [0u8; 128];
    let entries: Vec<_> = j.undelivered().collect();
    entries
        .into_iter()
        .map(|e| {
            let m = j.read(e, &mut buf).unwrap();
            (m.seq, buf[..m.len].to_vec())
        })
        .collect()
}

#[test]
fn committed_messages_are_there_after_reopening() {
    let dir = TempDir::new("reopen");
    let (mut j, report) = open(&dir.0);
    assert_eq!(report.created_segments, 2);
    let seqs: Vec<Seq> = (0..5)
        .map(|i| j.append(i, Instant::from_millis(i), &msg(i)).unwrap())
        .collect();
    let c = j.commit(Instant::from_millis(5)).unwrap();
    assert_eq!(c.acked_through, seqs[4]);
    j.mark_delivered(seqs[0]).unwrap();
    j.commit(Instant::from_millis(6)).unwrap();
    drop(j);
    for name in ["00000000.seg", "00000001.seg"] {
        assert_eq!(
            fs::metadata(dir.0.join(name)).unwrap().len(),
            2048,
            "preallocated, fixed size"
        );
    }
    let (mut j, report) = open(&dir.0);
    assert_eq!(
        (report.recovered, report.corrupt, report.truncated_bytes),
        (4, 0, 0)
    );
    let got = drain(&mut j);
    assert_eq!(
        got,
        (1..5)
            .map(|i| (seqs[i as usize], msg(i)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_second_holder_of_the_spool_directory_is_refused() {
    let dir = TempDir::new("lock");
    let first = FsStorage::open(&dir.0).unwrap();
    assert_eq!(FsStorage::open(&dir.0).unwrap_err(), SpoolError::Locked);
    drop(first);
    assert!(
        FsStorage::open(&dir.0).is_ok(),
        "the lock goes with its holder"
    );
}

/// The offsets of the records in a segment file, by walking their lengths.
fn record_offsets(seg: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= seg.len() {
        let len = u32::from_le_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push((at, len));
        at += len;
    }
    out
}

#[test]
fn damage_at_every_byte_of_the_last_records_never_returns_a_bad_message() {
    let dir = TempDir::new("damage");
    let (mut j, _) = open(&dir.0);
    let sent: Vec<(Seq, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                j.append(0, Instant::from_millis(i), &msg(i)).unwrap(),
                msg(i),
            )
        })
        .collect();
    j.commit(Instant::from_millis(9)).unwrap();
    drop(j);
    let seg = dir.0.join("00000000.seg");
    let pristine = fs::read(&seg).unwrap();
    let records = record_offsets(&pristine);
    // The last two records are the last two messages.
    let (from, _) = records[records.len() - 2];
    let (last, last_len) = records[records.len() - 1];
    let end = last + last_len;
    let mut runs = 0;
    for at in from..end {
        // The record holding byte `at`, and the messages wholly before it.
        let damaged = if at < last {
            sent.len() - 2
        } else {
            sent.len() - 1
        };
        for cut in [true, false] {
            let mut bytes = pristine.clone();
            if cut {
                bytes.truncate(at); // the file itself is cut short here
            } else {
                bytes[at] ^= 0x5A;
            }
            fs::write(&seg, &bytes).unwrap();
            let (mut j, report) = open(&dir.0);
            let got = drain(&mut j);
            for (seq, m) in &got {
                assert!(
                    sent.contains(&(*seq, m.clone())),
                    "at {at} cut {cut}: a message that was never sent"
                );
            }
            for s in &sent[..damaged] {
                assert!(
                    got.contains(s),
                    "at {at} cut {cut}: lost {:?} before the damage",
                    s.0
                );
            }
            assert!(
                !got.iter().any(|g| g.0 == sent[damaged].0),
                "at {at} cut {cut}: the damaged one came back"
            );
            if !cut && damaged == sent.len() - 2 && at >= from + 4 {
                // A damaged record with a good one after it: skipped, counted
                // (unless its length was hit: then nothing after it can be
                // found, and it all counts as a torn tail).
                assert!(
                    got.contains(&sent[sent.len() - 1]),
                    "at {at}: the record after the damage"
                );
                assert_eq!(report.corrupt, 1, "at {at}");
            }
            drop(j);
            runs += 1;
        }
    }
    assert_eq!(runs, 2 * (end - from));
    assert!(
        end - from >= 2 * (20 + 16 + msg(0).len()),
        "two whole records"
    );
}
