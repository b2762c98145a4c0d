//! The FUSE adapter: turns each `fuser` callback into one call on the fs core and one reply.
//!
//! - No policy here: no caching, no COS logic. Operations that may touch the network run as
//!   tokio tasks that reply when done, so the single FUSE session thread never waits on the
//!   network and the kernel may have many requests in flight.
//! - Errors become errnos through `FsError::errno`, logged at debug when routine (ENOENT on
//!   lookup) and at warn otherwise.
//! - Write operations are not implemented in this read-only mount; the mount itself is `ro`,
//!   so the kernel answers them with EROFS before they get here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use fuser::{
    consts, FileAttr, FileType, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};

use crate::cos::ObjectStore;
use crate::fs::attr::{FileKind, PosixAttr};
use crate::fs::error::FsError;
use crate::fs::CosFs;

/// `st_blksize`: tools such as cat and cp size their buffers by it; 1 MiB matches the largest
/// read the kernel sends.
const BLKSIZE: u32 = 1024 * 1024;

/// Bytes a readdirplus entry takes in the reply (fuse_entry_out + fuse_dirent header), used
/// to ask the fs core for about as many entries as the kernel's buffer holds.
const DIRENTPLUS_BYTES: usize = 152;

pub struct FuseAdapter<S: ObjectStore + ?Sized> {
    fs: Arc<CosFs<S>>,
    rt: tokio::runtime::Handle,
    ttl: Duration,
}

impl<S: ObjectStore + ?Sized> FuseAdapter<S> {
    pub fn new(fs: Arc<CosFs<S>>, rt: tokio::runtime::Handle) -> Self {
        let ttl = fs.config().metadata_ttl;
        FuseAdapter { fs, rt, ttl }
    }
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

fn file_attr(ino: u64, a: &PosixAttr) -> FileAttr {
    FileAttr {
        ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: if a.kind == FileKind::Directory { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

fn log_error(op: &str, e: &FsError) -> i32 {
    if e.is_routine() {
        tracing::debug!(op, error = %e, "failed");
    } else {
        tracing::warn!(op, error = %e, "failed");
    }
    e.errno()
}

fn name_str(name: &OsStr) -> Option<String> {
    std::str::from_utf8(name.as_bytes())
        .ok()
        .map(str::to_string)
}

impl<S: ObjectStore + ?Sized> fuser::Filesystem for FuseAdapter<S> {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Each capability is optional: an older kernel without it still mounts.
        for cap in [
            consts::FUSE_DO_READDIRPLUS,
            consts::FUSE_PARALLEL_DIROPS,
            consts::FUSE_CACHE_SYMLINKS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        // As much readahead as the kernel allows, so sequential reads come in big requests.
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.rt.spawn(async move {
            match fs.lookup(parent, &name).await {
                Ok(e) => reply.entry(&ttl, &file_attr(e.ino, &e.attr), 0),
                Err(e) => reply.error(log_error("lookup", &e)),
            }
        });
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        self.fs.forget(ino, nlookup);
    }

    fn batch_forget(&mut self, _req: &Request<'_>, nodes: &[fuser::fuse_forget_one]) {
        for n in nodes {
            self.fs.forget(n.nodeid, n.nlookup);
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.rt.spawn(async move {
            match fs.getattr(ino).await {
                Ok(e) => reply.attr(&ttl, &file_attr(e.ino, &e.attr)),
                Err(e) => reply.error(log_error("getattr", &e)),
            }
        });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.readlink(ino).await {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(log_error("readlink", &e)),
            }
        });
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.open(ino, write).await {
                Ok(o) => {
                    let flags = if o.keep_cache {
                        consts::FOPEN_KEEP_CACHE
                    } else {
                        0
                    };
                    reply.opened(o.fh, flags)
                }
                Err(e) => reply.error(log_error("open", &e)),
            }
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.read(fh, offset.max(0) as u64, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(log_error("read", &e)),
            }
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.fs.opendir(ino) {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(log_error("opendir", &e)),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        // Only used when the kernel lacks readdirplus; entries take no references here.
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.readdir(fh, offset.max(0) as u64, 128).await {
                Ok(entries) => {
                    for e in &entries {
                        if reply.add(e.ino, e.offset as i64, file_type(e.attr.kind), &e.name) {
                            break;
                        }
                    }
                    fs.unsent(&entries);
                    reply.ok()
                }
                Err(e) => reply.error(log_error("readdir", &e)),
            }
        });
    }

    fn readdirplus(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        // fuser does not tell the buffer size; 4 KiB pages are what Linux asks with.
        let max = 4096 / DIRENTPLUS_BYTES + 1;
        self.rt.spawn(async move {
            match fs.readdir(fh, offset.max(0) as u64, max).await {
                Ok(entries) => {
                    let mut sent = 0;
                    for e in &entries {
                        let attr = file_attr(e.ino, &e.attr);
                        if reply.add(e.ino, e.offset as i64, &e.name, &ttl, &attr, 0) {
                            break;
                        }
                        sent += 1;
                    }
                    fs.unsent(&entries[sent..]);
                    reply.ok()
                }
                Err(e) => reply.error(log_error("readdirplus", &e)),
            }
        });
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks,
            s.blocks,
            s.blocks,
            s.files,
            s.files,
            s.block_size,
            s.name_max,
            s.block_size,
        );
    }
}
