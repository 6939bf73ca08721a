//! The spool journal's rules, one behaviour per test, over the simulated disk
//! with explicit virtual time.

use std::time::Duration;

use mooring::internals::rng::XorShift64;
use mooring::spool::sim::{SimDisk, SimFault};
use mooring::spool::{Fsync, Journal, Seq, SpoolConfig, SpoolError};
use mooring::Instant;

fn cfg() -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 512,
        segments: 3,
        max_message_bytes: 64,
        batch_bytes: 1024,
        index_entries: 64,
        fsync: Fsync::Batch,
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn msg(i: u64) -> Vec<u8> {
    format!("MSH|^~\\&|A|B|C|D|{i}||ADT^A01|{i}|P|2.5").into_bytes()
}

/// Everything `undelivered` returns, read back: (seq, sender, bytes).
fn drain(j: &mut Journal<SimDisk>) -> Vec<(Seq, u64, Vec<u8>)> {
    let mut buf = [0u8; 64];
    let entries: Vec<_> = j.undelivered().collect();
    entries
        .into_iter()
        .map(|e| {
            let m = j.read(e, &mut buf).expect("read");
            (m.seq, m.sender, buf[..m.len].to_vec())
        })
        .collect()
}

#[test]
fn a_commit_is_one_sync_and_acknowledges_only_what_it_covers() {
    let disk = SimDisk::new();
    let (mut j, report) = Journal::open(disk.clone(), cfg()).unwrap();
    assert_eq!(report.created_segments, 3);
    let syncs = disk.syncs();
    let seqs: Vec<Seq> = (0..5)
        .map(|i| j.append(i, t(i), &msg(i)).unwrap())
        .collect();
    assert!(
        j.commit_state().acked_through < seqs[0],
        "nothing is acknowledged before a commit"
    );
    let c = j.commit(t(10)).unwrap();
    assert_eq!(
        disk.syncs() - syncs,
        1,
        "group commit: one fdatasync for the batch"
    );
    assert_eq!(c.acked_through, seqs[4]);
    assert_eq!(c.synced_through, seqs[4]);
    let late = j.append(9, t(11), b"late").unwrap();
    assert!(j.commit_state().acked_through < late);
}

#[test]
fn reopening_returns_the_undelivered_messages_in_order_with_sender_and_time() {
    let disk = SimDisk::new();
    let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
    for i in 0..4 {
        j.append(i % 2, t(100 + i), &msg(i)).unwrap();
    }
    j.commit(t(200)).unwrap();
    let first = j.undelivered().next().unwrap().seq;
    j.mark_delivered(first).unwrap();
    j.commit(t(201)).unwrap();
    drop(j);
    disk.crash(&mut XorShift64::new(1));
    let (mut j, report) = Journal::open(disk, cfg()).unwrap();
    assert_eq!(
        (report.recovered, report.corrupt, report.delivered),
        (3, 0, first)
    );
    let got = drain(&mut j);
    assert_eq!(
        got.iter().map(|g| g.2.clone()).collect::<Vec<_>>(),
        [msg(1), msg(2), msg(3)]
    );
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [1, 0, 1]);
    let mut buf = [0u8; 64];
    let e = j.undelivered().next().unwrap();
    assert_eq!(j.read(e, &mut buf).unwrap().arrival, t(101));
    assert_eq!(
        j.oldest_arrival(),
        Ok(Some(t(101))),
        "for the oldest undelivered age"
    );
    let last = j.undelivered().last().unwrap().seq;
    j.mark_delivered(last).unwrap();
    assert_eq!(j.oldest_arrival(), Ok(None));
}

#[test]
fn a_torn_last_write_is_truncated_and_never_returned() {
    let mut torn = 0;
    for seed in 0..64 {
        let disk = SimDisk::new();
        let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        j.append(1, t(0), &msg(0)).unwrap();
        j.commit(t(0)).unwrap();
        j.append(1, t(1), &msg(1)).unwrap();
        j.append(1, t(1), &msg(2)).unwrap();
        disk.crash_after(1); // the commit's write is the crash
        assert!(j.commit(t(1)).is_err());
        drop(j);
        disk.crash(&mut XorShift64::new(seed));
        let (mut j, report) = Journal::open(disk.clone(), cfg()).unwrap();
        assert_eq!(report.corrupt, 0);
        let got: Vec<_> = drain(&mut j).into_iter().map(|g| g.2).collect();
        // A prefix of what was written, whole records only.
        assert!(
            !got.is_empty()
                && got
                    .iter()
                    .zip([msg(0), msg(1), msg(2)])
                    .all(|(a, b)| *a == b)
        );
        torn += u32::from(report.truncated_bytes > 0);
        // Truncated means gone: the next recovery finds a clean tail.
        drop(j);
        let (mut j, report) = Journal::open(disk, cfg()).unwrap();
        assert_eq!(
            (report.truncated_bytes, report.corrupt),
            (0, 0),
            "seed {seed}"
        );
        assert_eq!(
            drain(&mut j).into_iter().map(|g| g.2).collect::<Vec<_>>(),
            got
        );
    }
    assert!(torn > 10, "some crashes left a torn record: {torn} of 64");
}

#[test]
fn a_corrupt_record_in_the_middle_is_skipped_and_counted() {
    let disk = SimDisk::new();
    let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
    for i in 0..3 {
        j.append(0, t(i), &msg(i)).unwrap();
    }
    j.commit(t(5)).unwrap();
    drop(j);
    // Segment 0: checkpoint (36 bytes), then the three records; flip a bit
    // in the second record's message.
    let first_len = 20 + 16 + msg(0).len();
    disk.corrupt(0, 36 + first_len + 40, 0x10);
    let (mut j, report) = Journal::open(disk, cfg()).unwrap();
    assert_eq!(report.corrupt, 1);
    let got: Vec<_> = drain(&mut j).into_iter().map(|g| g.2).collect();
    assert_eq!(got, [msg(0), msg(2)]);
}

#[test]
fn a_full_spool_refuses_by_name_and_takes_messages_again_after_delivery() {
    let (mut j, _) = Journal::open(SimDisk::new(), cfg()).unwrap();
    let mut accepted = 0u64;
    let err = loop {
        match j.append(0, t(accepted), &[b'x'; 64]) {
            Ok(_) => accepted += 1,
            Err(SpoolError::BatchFull) => {
                j.commit(t(accepted)).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err, SpoolError::Full);
    assert!(
        accepted >= 12,
        "3 segments of 512 bytes hold about 15 messages of 100 bytes"
    );
    j.commit(t(100)).unwrap();
    let last = j.undelivered().last().unwrap().seq;
    j.mark_delivered(last).unwrap();
    j.commit(t(101)).unwrap();
    assert!(
        j.append(0, t(102), &[b'y'; 64]).is_ok(),
        "space is back once delivered"
    );
    assert_eq!(j.stats().undelivered, 1);
}

#[test]
fn delivered_segments_are_recycled_and_the_spool_never_grows() {
    let disk = SimDisk::new();
    let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
    for i in 0..500 {
        let seq = j.append(i % 3, t(i), &msg(i)).unwrap();
        j.commit(t(i)).unwrap();
        j.mark_delivered(seq).unwrap();
    }
    // 500 records of about 80 bytes went through 1.5 KB of segments.
    assert_eq!(disk.peak_bytes(), cfg().total_bytes());
    assert_eq!(j.stats().undelivered, 0);
}

#[test]
fn enospc_and_eio_are_named_and_the_next_commit_writes_everything_again() {
    let disk = SimDisk::new();
    let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
    let a = j.append(0, t(0), &msg(0)).unwrap();
    disk.fail_next(SimFault::NoSpace, 1);
    assert_eq!(j.commit(t(1)), Err(SpoolError::NoSpace));
    assert!(
        j.commit_state().acked_through < a,
        "nothing acknowledged on ENOSPC"
    );
    let b = j.append(0, t(2), &msg(1)).unwrap();
    disk.fail_next(SimFault::Eio, 1); // the write succeeds, the sync fails
    let err = j.commit(t(3)).unwrap_err();
    assert!(
        matches!(err, SpoolError::Io { errno: Some(5), .. }),
        "{err:?}"
    );
    assert!(j.commit_state().acked_through < a);
    let c = j.commit(t(4)).unwrap();
    assert_eq!(c.synced_through, b);
    drop(j);
    disk.crash(&mut XorShift64::new(3));
    let (mut j, _) = Journal::open(disk, cfg()).unwrap();
    let got: Vec<_> = drain(&mut j).into_iter().map(|g| g.0).collect();
    assert_eq!(got, [a, b]);
}

#[test]
fn interval_mode_acknowledges_written_records_and_syncs_when_the_interval_is_due() {
    let disk = SimDisk::new();
    let cfg = SpoolConfig {
        fsync: Fsync::Interval(Duration::from_millis(100)),
        ..cfg()
    };
    let (mut j, _) = Journal::open(disk.clone(), cfg).unwrap();
    j.commit(t(0)).unwrap(); // syncs: the first commit is always due
    let syncs = disk.syncs();
    let a = j.append(0, t(1), &msg(0)).unwrap();
    let c = j.commit(t(1)).unwrap();
    assert_eq!(
        (c.acked_through, disk.syncs()),
        (a, syncs),
        "written, not synced"
    );
    assert!(c.synced_through < a);
    assert_eq!(j.sync_deadline(), Some(t(100)));
    let c = j.commit(t(100)).unwrap();
    assert_eq!(c.synced_through, a);
    assert_eq!(j.sync_deadline(), None);
}

#[test]
fn a_mark_beyond_the_last_message_and_an_oversized_message_are_refused() {
    let (mut j, _) = Journal::open(SimDisk::new(), cfg()).unwrap();
    let seq = j.append(0, t(0), b"x").unwrap();
    assert_eq!(j.mark_delivered(seq + 1), Err(SpoolError::InvalidMark));
    assert_eq!(
        j.append(0, t(0), &[0; 65]),
        Err(SpoolError::TooLarge { len: 65, max: 64 })
    );
    let mut small = [0u8; 0];
    let e = j.undelivered().next().unwrap();
    assert_eq!(
        j.read(e, &mut small),
        Err(SpoolError::BufferTooSmall { required: 1 })
    );
}

#[test]
fn a_layout_that_does_not_match_the_configuration_is_refused() {
    let disk = SimDisk::new();
    drop(Journal::open(disk.clone(), cfg()).unwrap());
    let smaller = SpoolConfig {
        segment_bytes: 256,
        ..cfg()
    };
    assert!(matches!(
        Journal::open(disk.clone(), smaller),
        Err(SpoolError::Layout(_))
    ));
    let fewer = SpoolConfig {
        segments: 2,
        ..cfg()
    };
    assert!(matches!(
        Journal::open(disk, fewer),
        Err(SpoolError::Layout(_))
    ));
}

#[test]
fn a_clean_reopen_after_recycling_reports_no_damage() {
    // Segments written again over older records of other lengths: what is
    // left of the old content past the new end must not look like a torn tail.
    let disk = SimDisk::new();
    for round in 0..6u64 {
        let (mut j, report) = Journal::open(disk.clone(), cfg()).unwrap();
        assert_eq!(
            (report.corrupt, report.truncated_bytes),
            (0, 0),
            "round {round}"
        );
        for i in 0..(7 + round * 3) {
            let len = ((i * 13 + round * 7) % 60) as usize;
            let seq = j.append(0, t(i), &vec![b'a'; len]).unwrap();
            if i % 3 == 2 {
                // Several records per commit: a batch crosses segments.
                j.commit(t(i)).unwrap();
                j.mark_delivered(seq).unwrap();
            }
        }
        j.commit(t(100)).unwrap();
    }
}

#[test]
fn recovery_survives_random_garbage_anywhere_without_a_panic() {
    use mooring::spool::Storage;
    for seed in 0..300 {
        let mut rng = XorShift64::new(seed);
        let mut disk = SimDisk::new();
        let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        let mut sent = Vec::new();
        for i in 0..rng.below(12) {
            let seq = j.append(0, t(i), &msg(i)).unwrap();
            sent.push((seq, msg(i)));
        }
        j.commit(t(50)).unwrap();
        drop(j);
        // Garbage: runs of random bytes, some shaped like plausible headers.
        for _ in 0..1 + rng.below(6) {
            let seg = rng.below(3) as u32;
            let at = rng.below(500);
            let mut junk = [0u8; 12];
            for b in &mut junk {
                *b = rng.next_u64() as u8;
            }
            if rng.below(2) == 0 {
                junk[..4].copy_from_slice(&(20 + rng.below(60) as u32).to_le_bytes());
            }
            disk.write_at(seg, at, &junk).unwrap();
            disk.sync(seg).unwrap();
        }
        let (mut j, _) = Journal::open(disk.clone(), cfg()).unwrap();
        let mut buf = [0u8; 64];
        let entries: Vec<_> = j.undelivered().collect();
        for e in entries {
            // Either the message as sent, or a named error: never garbage.
            if let Ok(m) = j.read(e, &mut buf) {
                assert!(
                    sent.contains(&(m.seq, buf[..m.len].to_vec())),
                    "seed {seed}"
                );
            }
        }
        // And the journal still works.
        j.append(0, t(60), b"after").unwrap();
        j.commit(t(60)).unwrap();
    }
}
