//! [`SimDisk`]: an in-memory [`Storage`] that crashes like a real disk, for
//! deterministic tests of the spool (and of code that embeds it).
//!
//! Every file keeps two images: what a reader sees now, and what is on
//! stable storage (updated by `sync`). A crash ([`SimDisk::crash`]) throws
//! away what was not synced, except that, chosen by the seeded generator, a
//! prefix of the unsynced writes may have reached the disk in order, the last
//! of them torn at a random byte, or only a torn prefix of the very last
//! write. Files renamed or created but not followed by `sync_dir` vanish.
//! Faults on command: `ENOSPC` or `EIO` on the next writes and syncs (a failed
//! sync drops that file's unsynced writes, as Linux may), and a crash armed
//! to happen at the n-th mutating operation from now.

use super::storage::{SegmentId, Storage};
use crate::rng::XorShift64;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

/// A fault [`SimDisk::fail_next`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFault {
    /// `ENOSPC` (`ErrorKind::StorageFull`).
    NoSpace,
    /// `EIO` (os error 5).
    Eio,
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Its name is durable (the directory was synced after it appeared).
    listed: bool,
}

/// One write not yet covered by a sync, in issue order.
#[derive(Clone, Debug)]
struct Pending {
    id: SegmentId,
    offset: usize,
    data: Vec<u8>,
}

/// The simulated disk, a handle: clones share one disk, so a test keeps a
/// handle to crash it while the journal owns another. See the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct SimDisk(Rc<RefCell<Disk>>);

#[derive(Debug, Default)]
struct Disk {
    files: Vec<Option<SimFile>>,
    temps: Vec<Option<Vec<u8>>>,
    pending: Vec<Pending>,
    fault: Option<(SimFault, u32)>,
    crash_in: Option<u64>,
    crashed: bool,
    /// The largest total size the files ever had.
    peak_bytes: u64,
    syncs: u64,
}

/// How a mutating operation may proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Go,
    /// The armed crash is this operation.
    CrashNow,
    /// Crashed earlier.
    Dead,
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the disk is gone until SimDisk::crash")
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        SimDisk::default()
    }

    fn disk(&self) -> std::cell::RefMut<'_, Disk> {
        self.0.borrow_mut()
    }

    /// The next `count` writes or syncs fail with `fault`.
    pub fn fail_next(&self, fault: SimFault, count: u32) {
        self.disk().fault = Some((fault, count));
    }

    /// Cancels injected faults (not an armed crash).
    pub fn clear_faults(&self) {
        self.disk().fault = None;
    }

    /// The `ops`-th mutating operation from now (write, sync, create,
    /// rename, directory sync; 1 = the next) crashes the disk: it fails, and so
    /// does everything after it until [`crash`](Self::crash). A write that
    /// crashes may still land, torn.
    pub fn crash_after(&self, ops: u64) {
        self.disk().crash_in = Some(ops.max(1));
    }

    /// Cancels an armed crash that has not happened yet.
    pub fn disarm_crash(&self) {
        self.disk().crash_in = None;
    }

    /// Whether an armed crash has happened.
    pub fn has_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// The largest total size of all segment files so far.
    pub fn peak_bytes(&self) -> u64 {
        self.disk().peak_bytes
    }

    /// Completed syncs so far.
    pub fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    /// Power cut: what was not synced is lost, apart from what `rng` lets
    /// land (see the module docs). The disk works again afterwards.
    pub fn crash(&self, rng: &mut XorShift64) {
        self.disk().crash(rng);
    }

    /// Flips the bits of `mask` in byte `offset` of segment `id`, on disk and
    /// in view (bit rot).
    pub fn corrupt(&self, id: SegmentId, offset: usize, mask: u8) {
        self.disk().corrupt(id, offset, mask);
    }
}

impl Storage for SimDisk {
    fn list(&mut self, out: &mut Vec<SegmentId>) -> io::Result<()> {
        self.disk().list(out)
    }
    fn segment_len(&mut self, id: SegmentId) -> io::Result<Option<u64>> {
        self.disk().segment_len(id)
    }
    fn create_temp(&mut self, id: SegmentId, len: u64) -> io::Result<()> {
        self.disk().create_temp(id, len)
    }
    fn publish(&mut self, id: SegmentId) -> io::Result<()> {
        self.disk().publish(id)
    }
    fn write_at(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk().write_at(id, offset, data)
    }
    fn read_at(&mut self, id: SegmentId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.disk().read_at(id, offset, buf)
    }
    fn sync(&mut self, id: SegmentId) -> io::Result<()> {
        self.disk().sync(id)
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        self.disk().sync_dir()
    }
}

impl Disk {
    fn crash(&mut self, rng: &mut XorShift64) {
        let n = self.pending.len();
        let (land, torn) = match rng.below(3) {
            0 => (0, None),
            // In order: the first k landed, the next one torn.
            1 => {
                let k = rng.below(n as u64 + 1) as usize;
                (k, (k < n).then_some(k))
            }
            // Only the last write, torn.
            _ => (0, n.checked_sub(1)),
        };
        let pending = std::mem::take(&mut self.pending);
        for f in self.files.iter_mut().flatten() {
            f.current.clone_from(&f.durable);
        }
        for (i, w) in pending.iter().enumerate() {
            let keep = if i < land {
                w.data.len()
            } else if Some(i) == torn {
                rng.below(w.data.len() as u64 + 1) as usize
            } else {
                continue;
            };
            if let Some(Some(f)) = self.files.get_mut(w.id as usize) {
                f.current[w.offset..w.offset + keep].copy_from_slice(&w.data[..keep]);
                f.durable.clone_from(&f.current);
            }
        }
        for slot in &mut self.files {
            if slot.as_ref().is_some_and(|f| !f.listed) {
                *slot = None;
            }
        }
        self.temps.clear();
        self.crashed = false;
        self.crash_in = None;
        self.fault = None;
    }

    fn corrupt(&mut self, id: SegmentId, offset: usize, mask: u8) {
        if let Some(Some(f)) = self.files.get_mut(id as usize) {
            if let (Some(c), Some(d)) = (f.current.get_mut(offset), f.durable.get_mut(offset)) {
                *c ^= mask;
                *d ^= mask;
            }
        }
    }

    /// Counts down an armed crash before a mutating operation.
    fn begin(&mut self) -> Op {
        if self.crashed {
            return Op::Dead;
        }
        match self.crash_in {
            Some(n) if n <= 1 => {
                self.crashed = true;
                self.crash_in = None;
                Op::CrashNow
            }
            Some(n) => {
                self.crash_in = Some(n - 1);
                Op::Go
            }
            None => Op::Go,
        }
    }

    /// `begin` for operations that simply fail once the disk has crashed.
    fn mutate(&mut self) -> io::Result<()> {
        match self.begin() {
            Op::Go => Ok(()),
            Op::CrashNow | Op::Dead => Err(crashed_error()),
        }
    }

    fn take_fault(&mut self) -> Option<io::Error> {
        let (fault, left) = self.fault?;
        self.fault = (left > 1).then_some((fault, left - 1));
        Some(match fault {
            SimFault::NoSpace => io::Error::from(io::ErrorKind::StorageFull),
            SimFault::Eio => io::Error::from_raw_os_error(5),
        })
    }

    fn file(&self, id: SegmentId) -> io::Result<&SimFile> {
        match self.files.get(id as usize) {
            Some(Some(f)) => Ok(f),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn file_mut(&mut self, id: SegmentId) -> io::Result<&mut SimFile> {
        match self.files.get_mut(id as usize) {
            Some(Some(f)) => Ok(f),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn note_size(&mut self) {
        let files = self.files.iter().flatten().map(|f| f.current.len() as u64);
        let temps = self.temps.iter().flatten().map(|t| t.len() as u64);
        self.peak_bytes = self.peak_bytes.max(files.chain(temps).sum());
    }
}

fn slot<T>(v: &mut Vec<Option<T>>, id: SegmentId) -> &mut Option<T> {
    let i = id as usize;
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    &mut v[i]
}

impl Storage for Disk {
    fn list(&mut self, out: &mut Vec<SegmentId>) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        let ids = self.files.iter().enumerate().filter(|(_, f)| f.is_some());
        out.extend(ids.map(|(i, _)| i as SegmentId));
        Ok(())
    }

    fn segment_len(&mut self, id: SegmentId) -> io::Result<Option<u64>> {
        if self.crashed {
            return Err(crashed_error());
        }
        Ok(self.file(id).ok().map(|f| f.current.len() as u64))
    }

    fn create_temp(&mut self, id: SegmentId, len: u64) -> io::Result<()> {
        self.mutate()?;
        if let Some(e) = self.take_fault() {
            return Err(e);
        }
        *slot(&mut self.temps, id) = Some(vec![0; len as usize]);
        self.note_size();
        Ok(())
    }

    fn publish(&mut self, id: SegmentId) -> io::Result<()> {
        self.mutate()?;
        let data = slot(&mut self.temps, id)
            .take()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        // Created synced: the contents are durable, the name is not yet.
        *slot(&mut self.files, id) = Some(SimFile {
            durable: data.clone(),
            current: data,
            listed: false,
        });
        Ok(())
    }

    fn write_at(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> io::Result<()> {
        let offset = offset as usize;
        if offset + data.len() > self.file(id)?.current.len() {
            // The spool must never grow a segment.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write past the segment's end",
            ));
        }
        let op = self.begin();
        if op == Op::Dead {
            return Err(crashed_error());
        }
        if op == Op::Go {
            if let Some(e) = self.take_fault() {
                return Err(e);
            }
            self.file_mut(id)?.current[offset..offset + data.len()].copy_from_slice(data);
        }
        // Unsynced until a sync of this file; the crashing write may land torn.
        self.pending.push(Pending {
            id,
            offset,
            data: data.to_vec(),
        });
        match op {
            Op::Go => Ok(()),
            _ => Err(crashed_error()),
        }
    }

    fn read_at(&mut self, id: SegmentId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        let f = self.file(id)?;
        let offset = offset as usize;
        let src = f
            .current
            .get(offset..offset + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn sync(&mut self, id: SegmentId) -> io::Result<()> {
        self.mutate()?;
        if let Some(e) = self.take_fault() {
            // As Linux may: the dirty pages are dropped, the data is gone.
            let f = self.file_mut(id)?;
            f.current.clone_from(&f.durable);
            self.pending.retain(|w| w.id != id);
            return Err(e);
        }
        let f = self.file_mut(id)?;
        f.durable.clone_from(&f.current);
        self.pending.retain(|w| w.id != id);
        self.syncs += 1;
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        self.mutate()?;
        for f in self.files.iter_mut().flatten() {
            f.listed = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_with_segment() -> SimDisk {
        let mut d = SimDisk::new();
        d.create_temp(0, 16).unwrap();
        d.publish(0).unwrap();
        d.sync_dir().unwrap();
        d
    }

    #[test]
    fn a_crash_keeps_synced_writes_and_loses_the_rest() {
        let mut d = disk_with_segment();
        d.write_at(0, 0, &[1; 4]).unwrap();
        d.sync(0).unwrap();
        d.write_at(0, 4, &[2; 4]).unwrap();
        d.crash(&mut XorShift64::new(0));
        let mut buf = [0; 8];
        d.read_at(0, 0, &mut buf).unwrap();
        assert_eq!(&buf[..4], &[1; 4]);
        // The unsynced write is gone, or only a prefix of it landed.
        let landed = buf[4..].iter().take_while(|&&b| b == 2).count();
        assert!(buf[4 + landed..].iter().all(|&b| b == 0));
    }

    #[test]
    fn over_seeds_a_crash_sometimes_tears_and_never_invents() {
        let mut outcomes = [false; 3]; // lost, torn, whole
        for seed in 0..200 {
            let mut d = disk_with_segment();
            d.write_at(0, 0, &[7; 8]).unwrap();
            d.crash(&mut XorShift64::new(seed));
            let mut buf = [0; 16];
            d.read_at(0, 0, &mut buf).unwrap();
            let landed = buf.iter().take_while(|&&b| b == 7).count();
            assert!(buf[landed..].iter().all(|&b| b == 0));
            outcomes[if landed == 0 {
                0
            } else if landed < 8 {
                1
            } else {
                2
            }] = true;
        }
        assert_eq!(outcomes, [true; 3]);
    }

    #[test]
    fn an_unsynced_directory_loses_a_new_file() {
        let mut d = SimDisk::new();
        d.create_temp(0, 8).unwrap();
        d.publish(0).unwrap();
        d.crash(&mut XorShift64::new(1));
        assert_eq!(d.segment_len(0).unwrap(), None);
    }

    #[test]
    fn faults_and_armed_crashes_fail_operations() {
        let mut d = disk_with_segment();
        d.fail_next(SimFault::NoSpace, 1);
        assert_eq!(
            d.write_at(0, 0, &[1]).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        d.write_at(0, 0, &[1]).unwrap();
        d.fail_next(SimFault::Eio, 1);
        assert_eq!(d.sync(0).unwrap_err().raw_os_error(), Some(5));
        d.crash_after(2);
        d.write_at(0, 1, &[1]).unwrap();
        assert!(d.sync(0).is_err());
        assert!(d.has_crashed() && d.read_at(0, 0, &mut [0]).is_err());
        assert!(d.write_at(0, 16, &[1]).is_err(), "never past the end");
    }
}
