//! cosfs-bench-nullfs: the FUSE ceiling of the machine, for `scripts/bench-peers.sh`.
//!
//! Mounts a filesystem holding one file, `huge` (`--size-mib`, zeros), whose reads are answered
//! from a static buffer on fuser's session threads (`--threads`, as cosfs's `--fuse-threads`):
//! no cache, no allocation, no hop to another thread. What `fio` reaches on it is what the
//! kernel, the FUSE protocol and fuser cost on this machine, the most any FUSE filesystem built
//! on them can serve; cosfs's figures are put next to it. Runs in the foreground until
//! unmounted.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use clap::Parser;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyEntry, ReplyOpen, Request,
};

#[derive(Parser)]
#[command(about = "A do-nothing FUSE filesystem: the ceiling cosfs's read figures are put against")]
struct Args {
    mountpoint: std::path::PathBuf,
    /// Size of the one file, `huge`, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// FUSE session threads, each with its own /dev/fuse descriptor.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

const ROOT: INodeNo = INodeNo::ROOT;
const FILE: INodeNo = INodeNo(2);
const TTL: Duration = Duration::from_secs(3600);
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

struct NullFs {
    size: u64,
}

impl NullFs {
    fn attr(&self, ino: INodeNo) -> FileAttr {
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
    fn lookup(&self, _: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == ROOT && name == "huge" {
            reply.entry(&TTL, &self.attr(FILE), Generation(0))
        } else {
            reply.error(Errno::ENOENT)
        }
    }

    fn getattr(&self, _: &Request, ino: INodeNo, _: Option<FileHandle>, reply: ReplyAttr) {
        if ino == ROOT || ino == FILE {
            reply.attr(&TTL, &self.attr(ino))
        } else {
            reply.error(Errno::ENOENT)
        }
    }

    fn open(&self, _: &Request, _: INodeNo, _: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty())
    }

    fn read(
        &self,
        _: &Request,
        _: INodeNo,
        _: FileHandle,
        offset: u64,
        size: u32,
        _: OpenFlags,
        _: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let left = self.size.saturating_sub(offset);
        let n = (size as u64).min(left).min(ZEROS.len() as u64) as usize;
        reply.data(&ZEROS[..n])
    }
}

fn main() {
    let args = Args::parse();
    let fs = NullFs {
        size: args.size_mib << 20,
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("cosfs-bench-nullfs".into()),
        MountOption::RO,
    ];
    config.n_threads = Some(args.threads.max(1));
    config.clone_fd = args.threads > 1;
    if let Err(e) = fuser::mount(fs, &args.mountpoint, &config) {
        eprintln!(
            "cosfs-bench-nullfs: cannot mount {}: {e}",
            args.mountpoint.display()
        );
        std::process::exit(1);
    }
}
