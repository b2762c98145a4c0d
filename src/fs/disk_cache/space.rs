//! How much of its filesystem the disk cache may take.
//!
//! - The cap: `--disk-cache-size N`, or `auto` (the default): half of the space free for the
//!   cache when the mount starts (the filesystem's free space plus what the cache already
//!   holds), at most `AUTO_MAX`. A cache directory on a nearly full disk gets a small cache,
//!   not a full disk.
//! - The reserve, whatever the cap: the cache never takes the filesystem's free space below a
//!   tenth of its size (at most `RESERVE_MAX`). Before each chunk write the writer asks the
//!   filesystem (`fstatvfs`); when the write would cross the reserve, it deletes its own least
//!   recently used chunks first, and when it holds too little to make room, the chunk is not
//!   written. Space other programs take later is given back the same way.

use std::fs::File;
use std::os::fd::AsRawFd;

/// `--disk-cache-size`: a number of bytes, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSize {
    Auto,
    Bytes(u64),
}

/// The largest cap `auto` gives.
pub const AUTO_MAX: u64 = 10 << 30;
/// The reserve's largest size; below it, a tenth of the filesystem.
pub const RESERVE_MAX: u64 = 5 << 30;

/// The size and free space of a filesystem, in bytes (free: what an unprivileged writer may
/// still use, `f_bavail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

impl Space {
    /// The filesystem `file` is on.
    pub fn of(file: &File) -> std::io::Result<Space> {
        // SAFETY: fstatvfs writes into the zeroed struct we own; the descriptor is open.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let unit = st.f_frsize as u64;
        Ok(Space {
            total: (st.f_blocks as u64).saturating_mul(unit),
            free: (st.f_bavail as u64).saturating_mul(unit),
        })
    }

    /// The free space the cache always leaves.
    pub fn reserve(&self) -> u64 {
        (self.total / 10).min(RESERVE_MAX)
    }

    /// How many bytes must go before `more` bytes may be written without crossing the
    /// reserve (0: none).
    pub fn shortfall(&self, more: u64) -> u64 {
        (self.reserve() + more).saturating_sub(self.free)
    }
}

impl DiskSize {
    /// The cap for a cache that holds `held` bytes on a filesystem with `space`.
    pub fn cap(self, space: Option<Space>, held: u64) -> u64 {
        match (self, space) {
            (DiskSize::Bytes(n), _) => n,
            (DiskSize::Auto, Some(s)) => {
                let room = (s.free + held).saturating_sub(s.reserve());
                (room / 2).min(AUTO_MAX)
            }
            // The filesystem does not say: a modest cache.
            (DiskSize::Auto, None) => 1 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    #[test]
    fn auto_takes_half_the_room_above_the_reserve_at_most_ten_gib() {
        let big = Space {
            total: 1000 * G,
            free: 500 * G,
        };
        assert_eq!(big.reserve(), RESERVE_MAX);
        assert_eq!(DiskSize::Auto.cap(Some(big), 0), AUTO_MAX);
        let small = Space {
            total: 100 * M,
            free: 60 * M,
        };
        assert_eq!(small.reserve(), 10 * M);
        assert_eq!(DiskSize::Auto.cap(Some(small), 0), 25 * M);
        // What the cache already holds counts as room: a remount does not shrink it.
        assert_eq!(DiskSize::Auto.cap(Some(small), 20 * M), 35 * M);
        let full = Space {
            total: 100 * M,
            free: 5 * M,
        };
        assert_eq!(DiskSize::Auto.cap(Some(full), 0), 0);
        assert_eq!(DiskSize::Bytes(7).cap(Some(full), 0), 7);
    }

    #[test]
    fn the_shortfall_is_what_crosses_the_reserve() {
        let s = Space {
            total: 100 * M,
            free: 12 * M,
        };
        assert_eq!(s.shortfall(M), 0);
        assert_eq!(s.shortfall(2 * M), 0);
        assert_eq!(s.shortfall(3 * M), M);
    }

    #[test]
    fn a_real_filesystem_answers() {
        let f = tempfile::tempfile().unwrap();
        let s = Space::of(&f).unwrap();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
    }
}
