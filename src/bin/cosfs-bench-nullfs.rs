//! cosfs-bench-nullfs: the FUSE ceiling of the machine, for `scripts/bench-peers.sh`.
//!
//! Mounts a filesystem holding one file, `huge` (`--size-mib`, zeros), whose reads are answered
//! from a static buffer on fuser's session thread: no cache, no allocation, no hop to another
//! thread. What `fio` reaches on it is what the kernel, the FUSE protocol and fuser cost on this
//! machine, the most any FUSE filesystem built on them can serve; cosfs's figures are put next
//! to it. Runs in the foreground until unmounted.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use clap::Parser;
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyEntry, ReplyOpen,
    Request,
};

#[derive(Parser)]
#[command(about = "A do-nothing FUSE filesystem: the ceiling cosfs's read figures are put against")]
struct Args {
    mountpoint: std::path::PathBuf,
    /// Size of the one file, `huge`, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
}

const ROOT: u64 = 1;
const FILE: u64 = 2;
const TTL: Duration = Duration::from_secs(3600);
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

struct NullFs {
    size: u64,
}

impl NullFs {
    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, size, perm) = if ino == ROOT {
            (FileType::Directory, 0, 0o755)
        } else {
            (FileType::RegularFile, self.size, 0o444)
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl Filesystem for NullFs {
    fn lookup(&mut self, _: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent == ROOT && name == "huge" {
            reply.entry(&TTL, &self.attr(FILE), 0)
        } else {
            reply.error(libc::ENOENT)
        }
    }

    fn getattr(&mut self, _: &Request<'_>, ino: u64, _: Option<u64>, reply: ReplyAttr) {
        match ino {
            ROOT | FILE => reply.attr(&TTL, &self.attr(ino)),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn open(&mut self, _: &Request<'_>, _: u64, _: i32, reply: ReplyOpen) {
        reply.opened(0, 0)
    }

    fn read(
        &mut self,
        _: &Request<'_>,
        _: u64,
        _: u64,
        offset: i64,
        size: u32,
        _: i32,
        _: Option<u64>,
        reply: ReplyData,
    ) {
        let left = self.size.saturating_sub(offset.max(0) as u64);
        let n = (size as u64).min(left).min(ZEROS.len() as u64) as usize;
        reply.data(&ZEROS[..n])
    }
}

fn main() {
    let args = Args::parse();
    let fs = NullFs {
        size: args.size_mib << 20,
    };
    let options = [
        MountOption::FSName("cosfs-bench-nullfs".into()),
        MountOption::RO,
    ];
    if let Err(e) = fuser::mount2(fs, &args.mountpoint, &options) {
        eprintln!(
            "cosfs-bench-nullfs: cannot mount {}: {e}",
            args.mountpoint.display()
        );
        std::process::exit(1);
    }
}
