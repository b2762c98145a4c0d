//! `ScratchArea` and `ScratchFile`: anonymous files in the mount's private directory, under one
//! byte budget.
//!
//! - A scratch file is an anonymous file (`O_TMPFILE`, mode 0600) in the mount's private
//!   directory under `--cache-dir` (`PrivateDir`: ours, mode 0700, verified from `/` down). It
//!   has no name, so no other process can open it, and it never outlives the process (a crash
//!   or `kill -9` leaves nothing behind).
//! - It is sparse: it holds only the bytes written (and zeros where the file was extended);
//!   bytes still equal to the previous object are not copied down. Disk use is accounted as the
//!   number of dirty bytes, against `--cache-dir-size` for all files of the mount together; a
//!   write that would pass the cap, or that the disk refuses, fails with ENOSPC and changes
//!   nothing else.
//! - Copies kept only while there is room (`charge_spare`: the sent parts of an overwrite)
//!   may use at most half of the cap, so that edits in place always find room.
//! - File I/O is plain `pread`/`pwrite` on the calling task: these hit the page cache and take
//!   microseconds; the upload reads whole parts the same way.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::fs::error::{FsError, FsResult};
use crate::private_dir::PrivateDir;

/// The scratch area of a mount.
#[derive(Debug)]
pub struct ScratchArea {
    /// The private directory, or why it cannot be used (every staging file then fails).
    dir: Result<PrivateDir, String>,
    cap: u64,
    used: AtomicU64,
}

impl ScratchArea {
    /// The staging area in the private directory `path` (made if missing), holding at most
    /// `cap` bytes. A directory that is not private is refused: staging files then fail
    /// with EACCES, and the log says why (the CLI checks first and refuses to mount).
    pub fn new(path: &Path, cap: u64) -> Self {
        let dir = PrivateDir::open(path).map_err(|e| {
            tracing::error!(error = %e, "the staging area cannot be used: edits in place will fail");
            e.to_string()
        });
        ScratchArea {
            dir,
            cap,
            used: AtomicU64::new(0),
        }
    }

    /// No staging area (a read-only mount): every staging file fails.
    pub fn none(why: &str) -> Self {
        ScratchArea {
            dir: Err(why.to_string()),
            cap: 0,
            used: AtomicU64::new(0),
        }
    }

    /// The private directory, for other local state of the mount (the upload journal).
    pub fn private_dir(&self) -> Option<&PrivateDir> {
        self.dir.as_ref().ok()
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Account `n` bytes unless that would take the total past `limit` (at most the cap).
    fn reserve_within(&self, n: u64, limit: u64) -> FsResult<()> {
        let limit = limit.min(self.cap);
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur + n > limit {
                return Err(FsError::NoSpace);
            }
            match self
                .used
                .compare_exchange(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

fn io_err(e: std::io::Error) -> FsError {
    FsError::disk(e)
}

/// One anonymous, sparse staging file.
#[derive(Debug)]
pub struct ScratchFile {
    dir: Arc<ScratchArea>,
    file: File,
    /// Bytes accounted against the cache dir.
    charged: u64,
}

impl ScratchFile {
    pub fn create(dir: &Arc<ScratchArea>) -> FsResult<Self> {
        let private = match &dir.dir {
            Ok(d) => d,
            Err(why) => {
                tracing::warn!(why = %why, "no staging file: the staging area is unusable");
                return Err(FsError::Io(libc::EACCES));
            }
        };
        let file = private.anonymous_file().map_err(io_err)?;
        Ok(ScratchFile {
            dir: dir.clone(),
            file,
            charged: 0,
        })
    }

    /// Account `n` more dirty bytes; ENOSPC when the cache dir is full.
    pub fn charge(&mut self, n: u64) -> FsResult<()> {
        self.dir.reserve_within(n, u64::MAX)?;
        self.charged += n;
        Ok(())
    }

    /// Account `n` more bytes of a copy that is only kept while there is room (the sent parts
    /// of an overwrite): such copies may fill the staging area only up to half, so that edits
    /// in place always find room.
    pub fn charge_spare(&mut self, n: u64) -> FsResult<()> {
        self.dir.reserve_within(n, self.dir.cap / 2)?;
        self.charged += n;
        Ok(())
    }

    pub fn uncharge(&mut self, n: u64) {
        let n = n.min(self.charged);
        self.dir.release(n);
        self.charged -= n;
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> FsResult<()> {
        self.file.write_all_at(data, offset).map_err(io_err)
    }

    /// Fill `buf` from `offset`; bytes past the end of the file read as zeros.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> FsResult<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .file
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(io_err)?;
            if n == 0 {
                buf[done..].fill(0);
                break;
            }
            done += n;
        }
        Ok(())
    }

    pub fn set_len(&self, len: u64) -> FsResult<()> {
        self.file.set_len(len).map_err(io_err)
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        self.dir.release(self.charged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_gives_enospc_and_drop_gives_space_back() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("staging");
        let dir = Arc::new(ScratchArea::new(&tmp, 100));
        let mut a = ScratchFile::create(&dir).unwrap();
        a.charge(60).unwrap();
        a.write_at(1 << 30, b"far out").unwrap();
        let mut buf = [1u8; 4];
        a.read_at(0, &mut buf).unwrap();
        assert_eq!(buf, [0; 4], "holes read as zeros");
        let mut b = ScratchFile::create(&dir).unwrap();
        assert_eq!(b.charge(50).unwrap_err().errno(), libc::ENOSPC);
        assert_eq!(
            b.charge_spare(10).unwrap_err().errno(),
            libc::ENOSPC,
            "spare copies stop at half"
        );
        drop(a);
        b.charge(50).unwrap();
        assert_eq!(dir.used(), 50);
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "files are anonymous"
        );
        drop(b);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&tmp).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
}
