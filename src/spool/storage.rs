//! What the journal needs from a disk, and [`FsStorage`], the real directory.
//!
//! Segment files are fixed-size and preallocated, so there is no truncate or
//! delete: a torn tail is zeroed in place and a delivered segment is written
//! again from the start. Creating a segment is the only change to the
//! directory (a temporary file, renamed, then [`Storage::sync_dir`]).

use std::io;

/// A segment's number, `0..segments`.
pub type SegmentId = u32;

/// The storage interface under a [`Journal`](super::Journal).
///
/// Errors are plain `io::Error`s: `ErrorKind::StorageFull` becomes
/// [`SpoolError::NoSpace`](super::SpoolError::NoSpace), anything else
/// [`SpoolError::Io`](super::SpoolError::Io).
pub trait Storage {
    /// The ids of every segment present (not temporaries). Called at open only.
    fn list(&mut self, out: &mut Vec<SegmentId>) -> io::Result<()>;
    /// The length of segment `id` in bytes, `None` if it does not exist.
    fn segment_len(&mut self, id: SegmentId) -> io::Result<Option<u64>>;
    /// Creates segment `id` under a temporary name: `len` zero bytes, synced
    /// (so the space is allocated), replacing any leftover temporary.
    fn create_temp(&mut self, id: SegmentId, len: u64) -> io::Result<()>;
    /// Renames the temporary of segment `id` to its real name. Durable after
    /// the next [`sync_dir`](Storage::sync_dir).
    fn publish(&mut self, id: SegmentId) -> io::Result<()>;
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Fills all of `buf` from `offset` (`UnexpectedEof` past the end).
    fn read_at(&mut self, id: SegmentId, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// `fdatasync`: everything written to segment `id` is on stable storage.
    fn sync(&mut self, id: SegmentId) -> io::Result<()>;
    /// `fsync` of the directory: created and renamed segments are durable.
    fn sync_dir(&mut self) -> io::Result<()>;
}

#[cfg(unix)]
pub use fs::FsStorage;

#[cfg(unix)]
mod fs {
    use super::{SegmentId, Storage};
    use crate::spool::SpoolError;
    use std::fs::{File, OpenOptions, TryLockError};
    use std::io::{self, Write};
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};

    const LOCK: &str = "lock";
    const SUFFIX: &str = ".seg";
    const TEMP_SUFFIX: &str = ".seg.tmp";

    /// Segment files `00000000.seg`, `00000001.seg`, ... in one directory,
    /// held with an exclusive `flock` on `DIR/lock` for as long as it lives.
    ///
    /// The lock is the kernel's: it goes away with the process (even on
    /// `SIGKILL`), so a stale lock never blocks a restart, and a PID reused after
    /// a reboot cannot fool it, as a PID file could.
    #[derive(Debug)]
    pub struct FsStorage {
        dir: PathBuf,
        _lock: File,
        files: Vec<Option<File>>,
    }

    impl FsStorage {
        /// Opens (creating if needed) the spool directory `dir` and takes its
        /// lock; [`SpoolError::Locked`] if another holder has it.
        pub fn open(dir: &Path) -> Result<Self, SpoolError> {
            std::fs::create_dir_all(dir)?;
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(LOCK))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked),
                Err(TryLockError::Error(e)) => return Err(e.into()),
            }
            Ok(FsStorage {
                dir: dir.to_path_buf(),
                _lock: lock,
                files: Vec::new(),
            })
        }

        fn path(&self, id: SegmentId, suffix: &str) -> PathBuf {
            self.dir.join(format!("{id:08}{suffix}"))
        }

        /// The open file of segment `id`, opened on first use (at open time).
        fn file(&mut self, id: SegmentId) -> io::Result<&File> {
            let i = id as usize;
            if self.files.len() <= i {
                self.files.resize_with(i + 1, || None);
            }
            if self.files[i].is_none() {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(self.path(id, SUFFIX))?;
                self.files[i] = Some(f);
            }
            self.files[i]
                .as_ref()
                .ok_or_else(|| io::Error::other("segment not open"))
        }
    }

    impl Storage for FsStorage {
        fn list(&mut self, out: &mut Vec<SegmentId>) -> io::Result<()> {
            for entry in std::fs::read_dir(&self.dir)? {
                let name = entry?.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some(id) = name.strip_suffix(SUFFIX) {
                    if let Ok(id) = id.parse() {
                        out.push(id);
                    }
                }
            }
            Ok(())
        }

        fn segment_len(&mut self, id: SegmentId) -> io::Result<Option<u64>> {
            match std::fs::metadata(self.path(id, SUFFIX)) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }

        fn create_temp(&mut self, id: SegmentId, len: u64) -> io::Result<()> {
            let mut f = File::create(self.path(id, TEMP_SUFFIX))?;
            // Real zeros, not a sparse set_len: the blocks are allocated now, so
            // writing into the segment later cannot hit ENOSPC.
            let zeros = [0u8; 8192];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        }

        fn publish(&mut self, id: SegmentId) -> io::Result<()> {
            std::fs::rename(self.path(id, TEMP_SUFFIX), self.path(id, SUFFIX))
        }

        fn write_at(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> io::Result<()> {
            self.file(id)?.write_all_at(data, offset)
        }

        fn read_at(&mut self, id: SegmentId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.file(id)?.read_exact_at(buf, offset)
        }

        fn sync(&mut self, id: SegmentId) -> io::Result<()> {
            self.file(id)?.sync_data()
        }

        fn sync_dir(&mut self) -> io::Result<()> {
            File::open(&self.dir)?.sync_all()
        }
    }
}
