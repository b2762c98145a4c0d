//! The FUSE adapter: turns each `fuser` callback into one call on the fs core and one reply.
//!
//! - No policy here: no caching, no COS logic. Operations that may touch the network run as
//!   tokio tasks that reply when done, so the single FUSE session thread never waits on the
//!   network and the kernel may have many requests in flight.
//! - Errors become errnos through `FsError::errno`, logged at debug when routine (ENOENT on
//!   lookup) and at warn otherwise.
//! - Its only decisions are translations: open flags into `OpenFlags`, `TimeOrNow` into a
//!   time, the request's uid/gid into the owner of a new file.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fuser::{
    consts, FileAttr, FileType, KernelConfig, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow,
};

use crate::fs::attr::{FileKind, PosixAttr};
use crate::fs::error::FsError;
use crate::fs::files::{OpenFlags, Owner, SetAttr};
use crate::fs::{CosFs, Entry, ListedEntry, Opened};
use crate::object::ObjectStore;

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
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDevice => FileType::CharDevice,
        FileKind::BlockDevice => FileType::BlockDevice,
    }
}

fn file_attr(ino: u64, a: &PosixAttr) -> FileAttr {
    FileAttr {
        ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: to_kernel_time(a.atime),
        mtime: to_kernel_time(a.mtime),
        ctime: to_kernel_time(a.ctime),
        crtime: to_kernel_time(a.mtime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink(),
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// The errno of `e`, logged (at debug when routine) and counted for the metrics.
fn log_error(op: &'static str, e: &FsError) -> i32 {
    if e.is_routine() {
        tracing::debug!(op, error = %e, "failed");
    } else {
        tracing::warn!(op, error = %e, "failed");
    }
    let errno = e.errno();
    crate::metrics::fuse_error(op, errno);
    errno
}

fn name_str(name: &OsStr) -> Option<String> {
    std::str::from_utf8(name.as_bytes())
        .ok()
        .map(str::to_string)
}

fn open_flags(flags: i32) -> OpenFlags {
    OpenFlags {
        write: flags & libc::O_ACCMODE != libc::O_RDONLY,
        truncate: flags & libc::O_TRUNC != 0,
        append: flags & libc::O_APPEND != 0,
    }
}

fn time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => from_kernel_time(t),
        TimeOrNow::Now => SystemTime::now(),
    })
}

/// fuser 0.15 reads a kernel time before 1970 (`tv_sec` -2, `tv_nsec` 0.5 s: -1.5 s) as
/// -(2 + 0.5) s; this undoes that, so a 1969 time with a fraction is stored as set.
fn from_kernel_time(t: SystemTime) -> SystemTime {
    match UNIX_EPOCH.duration_since(t) {
        Ok(d) if d.subsec_nanos() != 0 => {
            UNIX_EPOCH - Duration::from_secs(d.as_secs()) + Duration::new(0, d.subsec_nanos())
        }
        _ => t,
    }
}

/// The time to hand fuser 0.15 so the kernel gets `t`: fuser sends a time before 1970 as
/// `tv_sec` -(whole seconds before), `tv_nsec` the fraction, which would be 1 s - fraction
/// off; this is the inverse of `from_kernel_time`.
fn to_kernel_time(t: SystemTime) -> SystemTime {
    match UNIX_EPOCH.duration_since(t) {
        Ok(d) if d.subsec_nanos() != 0 => {
            let secs = d.as_secs() + 1;
            UNIX_EPOCH - Duration::new(secs, 1_000_000_000 - d.subsec_nanos())
        }
        _ => t,
    }
}

/// A reply the fs core's `Ok` value answers; an error answers any reply with its errno.
trait Reply<T>: Send + 'static {
    fn answer(self, ttl: Duration, value: T);
    fn fail(self, errno: i32);
}

macro_rules! replies {
    ($($reply:ty, $value:ty => |$r:ident, $ttl:ident, $v:ident| $answer:expr;)*) => {$(
        impl Reply<$value> for $reply {
            fn answer(self, $ttl: Duration, $v: $value) {
                let $r = self;
                $answer
            }
            fn fail(self, errno: i32) {
                self.error(errno)
            }
        }
    )*};
}

replies! {
    ReplyEntry, Entry => |r, ttl, e| r.entry(&ttl, &file_attr(e.ino, &e.attr), 0);
    ReplyAttr, Entry => |r, ttl, e| r.attr(&ttl, &file_attr(e.ino, &e.attr));
    ReplyEmpty, () => |r, _ttl, _v| r.ok();
    ReplyData, Bytes => |r, _ttl, data| r.data(&data);
    ReplyWrite, u32 => |r, _ttl, n| r.written(n);
    ReplyOpen, Opened => |r, _ttl, o| r.opened(o.fh, open_reply_flags(&o));
    // A new file has no cached pages to keep.
    ReplyCreate, (Entry, Opened) => |r, ttl, eo| r.created(&ttl, &file_attr(eo.0.ino, &eo.0.attr), 0, eo.1.fh, 0);
}

/// The `FOPEN_*` flags of an open: keep the page cache when the fs core says it is current.
fn open_reply_flags(o: &Opened) -> u32 {
    if o.keep_cache {
        consts::FOPEN_KEEP_CACHE
    } else {
        0
    }
}

/// Reply to `reply` with `r`: the value, or the errno (logged and counted under `op`).
fn reply_with<T, R: Reply<T>>(reply: R, ttl: Duration, r: Result<T, FsError>, op: &'static str) {
    match r {
        Ok(v) => reply.answer(ttl, v),
        Err(e) => reply.fail(log_error(op, &e)),
    }
}

/// The name as UTF-8, or `reply` answered with `invalid`'s errno (COS keys are UTF-8).
/// The caller of `req`, as the owner of what it makes.
fn owner(req: &Request<'_>) -> Owner {
    Owner {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn utf8_name<T, R: Reply<T>>(
    op: &'static str,
    name: &OsStr,
    invalid: FsError,
    reply: R,
) -> Option<(String, R)> {
    match name_str(name) {
        Some(n) => Some((n, reply)),
        None => {
            reply.fail(log_error(op, &invalid));
            None
        }
    }
}

impl<S: ObjectStore + ?Sized> FuseAdapter<S> {
    /// Run `work` on the fs core as a task; its result is the reply (errors logged as `op`).
    fn spawn<T, R, F, Fut>(&self, op: &'static str, reply: R, work: F)
    where
        T: Send + 'static,
        R: Reply<T>,
        F: FnOnce(Arc<CosFs<S>>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FsError>> + Send + 'static,
    {
        crate::metrics::fuse_op(op);
        let (ttl, work) = (self.ttl, work(self.fs.clone()));
        self.rt
            .spawn(async move { reply_with(reply, ttl, work.await, op) });
    }

    /// Answer a readdir or readdirplus with up to `max` entries of handle `fh` from `offset`:
    /// as many as the reply's buffer holds; the rest go back to the listing (`unsent`).
    fn spawn_listing<R: DirReply>(
        &self,
        op: &'static str,
        fh: u64,
        offset: i64,
        max: usize,
        mut reply: R,
    ) {
        crate::metrics::fuse_op(op);
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.rt.spawn(async move {
            match fs.readdir(fh, offset.max(0) as u64, max).await {
                Ok(entries) => {
                    let sent = entries.iter().take_while(|e| reply.add(e, &ttl)).count();
                    fs.unsent(if R::TAKES_REFERENCES {
                        &entries[sent..]
                    } else {
                        &entries
                    });
                    reply.ok()
                }
                Err(e) => reply.error(log_error(op, &e)),
            }
        });
    }

    /// `spawn` for an operation on `name`; a name that is not UTF-8 is answered `invalid`.
    fn spawn_named<T, R, F, Fut>(
        &self,
        op: &'static str,
        name: &OsStr,
        invalid: FsError,
        reply: R,
        work: F,
    ) where
        T: Send + 'static,
        R: Reply<T>,
        F: FnOnce(Arc<CosFs<S>>, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, FsError>> + Send + 'static,
    {
        match utf8_name(op, name, invalid, reply) {
            Some((name, reply)) => self.spawn(op, reply, |fs| work(fs, name)),
            None => crate::metrics::fuse_op(op),
        }
    }
}

/// A readdir or readdirplus reply, filled entry by entry.
trait DirReply: Send + 'static {
    /// Whether the kernel takes a reference on each entry sent (readdirplus does).
    const TAKES_REFERENCES: bool;
    /// Add `e`; false when the buffer is full and `e` was not added.
    fn add(&mut self, e: &ListedEntry, ttl: &Duration) -> bool;
    fn ok(self);
    fn error(self, errno: libc::c_int);
}

impl DirReply for ReplyDirectory {
    const TAKES_REFERENCES: bool = false;
    fn add(&mut self, e: &ListedEntry, _ttl: &Duration) -> bool {
        !ReplyDirectory::add(
            self,
            e.ino,
            e.offset as i64,
            file_type(e.attr.kind),
            &e.name,
        )
    }
    fn ok(self) {
        ReplyDirectory::ok(self)
    }
    fn error(self, errno: libc::c_int) {
        ReplyDirectory::error(self, errno)
    }
}

impl DirReply for ReplyDirectoryPlus {
    const TAKES_REFERENCES: bool = true;
    fn add(&mut self, e: &ListedEntry, ttl: &Duration) -> bool {
        let attr = file_attr(e.ino, &e.attr);
        !ReplyDirectoryPlus::add(self, e.ino, e.offset as i64, &e.name, ttl, &attr, 0)
    }
    fn ok(self) {
        ReplyDirectoryPlus::ok(self)
    }
    fn error(self, errno: libc::c_int) {
        ReplyDirectoryPlus::error(self, errno)
    }
}

/// getxattr/listxattr answer: the size when asked for it, the bytes when they fit, else ERANGE.
fn reply_xattr(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, FsError>, op: &'static str) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() <= size as usize => reply.data(&v),
        Ok(_) => reply.error(log_error(op, &FsError::BufferTooSmall)),
        Err(e) => reply.error(log_error(op, &e)),
    }
}

impl<S: ObjectStore + ?Sized> fuser::Filesystem for FuseAdapter<S> {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Each capability is optional: an older kernel without it still mounts.
        for cap in [
            consts::FUSE_DO_READDIRPLUS,
            consts::FUSE_PARALLEL_DIROPS,
            consts::FUSE_CACHE_SYMLINKS,
        ] {
            // Not FUSE_ATOMIC_O_TRUNC: with it the kernel drops the page cache of an
            // `open(O_RDONLY|O_TRUNC)` before it checks that the file is not being executed
            // (ETXTBSY), so the running program faults on pages it no longer has. Without it,
            // O_TRUNC arrives as a truncate to 0 after that check (`setattr`).
            let _ = config.add_capabilities(cap);
        }
        // As much readahead as the kernel allows, so sequential reads come in big requests.
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        self.spawn_named(
            "lookup",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.lookup(parent, &name).await },
        );
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        crate::metrics::fuse_op("forget");
        self.fs.forget(ino, nlookup);
    }

    fn batch_forget(&mut self, _req: &Request<'_>, nodes: &[fuser::fuse_forget_one]) {
        crate::metrics::fuse_op("batch_forget");
        for n in nodes {
            self.fs.forget(n.nodeid, n.nlookup);
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        self.spawn("getattr", reply, |fs| async move { fs.getattr(ino).await });
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        self.spawn(
            "readlink",
            reply,
            |fs| async move { fs.readlink(ino).await },
        );
    }

    fn open(&mut self, req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let pid = req.pid();
        self.spawn("open", reply, |fs| async move {
            fs.open(ino, open_flags(flags), pid).await
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
        let offset = offset.max(0) as u64;
        self.spawn("read", reply, |fs| async move {
            fs.read(fh, offset, size).await
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
        self.spawn("release", reply, |fs| async move {
            fs.release(fh).await;
            Ok(())
        });
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (owner, pid, flags) = (owner(req), req.pid(), open_flags(flags));
        self.spawn_named(
            "create",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.create(parent, &name, mode, owner, flags, pid).await },
        );
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let owner = owner(req);
        self.spawn_named(
            "mknod",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.mknod(parent, &name, mode, rdev, owner).await },
        );
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let (offset, data) = (offset.max(0) as u64, data.to_vec());
        self.spawn("write", reply, |fs| async move {
            fs.write(fh, offset, &data).await
        });
    }

    fn flush(&mut self, req: &Request<'_>, _ino: u64, fh: u64, _lock: u64, reply: ReplyEmpty) {
        let pid = req.pid();
        self.spawn("flush", reply, |fs| async move { fs.flush(fh, pid).await });
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _data: bool, reply: ReplyEmpty) {
        self.spawn("fsync", reply, |fs| async move { fs.fsync(fh).await });
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _d: bool, reply: ReplyEmpty) {
        self.spawn(
            "fsyncdir",
            reply,
            |fs| async move { fs.fsyncdir(ino).await },
        );
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time(atime),
            mtime_now: matches!(mtime, Some(TimeOrNow::Now)),
            mtime: time(mtime),
        };
        self.spawn("setattr", reply, |fs| async move {
            fs.setattr(ino, fh, set).await
        });
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (offset, length) = (offset.max(0) as u64, length.max(0) as u64);
        self.spawn("fallocate", reply, |fs| async move {
            fs.fallocate(fh, offset, length, mode).await
        });
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let owner = owner(req);
        self.spawn_named(
            "mkdir",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.mkdir(parent, &name, mode, owner).await },
        );
    }

    fn symlink(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes().to_vec();
        let owner = owner(req);
        self.spawn_named(
            "symlink",
            link_name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.symlink(parent, &name, &target, owner).await },
        );
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "unlink",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.unlink(parent, &name).await },
        );
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "rmdir",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.rmdir(parent, &name).await },
        );
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            crate::metrics::fuse_op("rename");
            return reply.error(log_error("rename", &FsError::InvalidName));
        };
        self.spawn("rename", reply, |fs| async move {
            fs.rename(parent, &name, newparent, &newname, flags).await
        });
    }

    fn link(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        crate::metrics::fuse_op("link");
        let Some((name, reply)) = utf8_name("link", newname, FsError::InvalidName, reply) else {
            return;
        };
        reply_with(reply, self.ttl, self.fs.link(ino, newparent, &name), "link");
    }

    fn setxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let value = value.to_vec();
        self.spawn_named(
            "setxattr",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.setxattr(ino, &name, Some(&value), flags).await },
        );
    }

    fn removexattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "removexattr",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.setxattr(ino, &name, None, 0).await },
        );
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        crate::metrics::fuse_op("getxattr");
        let Some(name) = name_str(name) else {
            return reply.error(log_error("getxattr", &FsError::NoXattr));
        };
        // Answered on this thread when no request is needed: a task per `ls -l` entry costs.
        if let Some(r) = self.fs.getxattr_now(&name) {
            return reply_xattr(reply, size, r, "getxattr");
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let r = fs.getxattr(ino, &name).await;
            reply_xattr(reply, size, r, "getxattr")
        });
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        crate::metrics::fuse_op("listxattr");
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let r = fs.listxattr(ino).await.map(|names| {
                names
                    .into_iter()
                    .flat_map(|n| n.into_bytes().into_iter().chain([0]))
                    .collect()
            });
            reply_xattr(reply, size, r, "listxattr")
        });
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        crate::metrics::fuse_op("opendir");
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
        reply: ReplyDirectory,
    ) {
        // Only used when the kernel lacks readdirplus.
        self.spawn_listing("readdir", fh, offset, 128, reply);
    }

    fn readdirplus(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        reply: ReplyDirectoryPlus,
    ) {
        // fuser does not tell the buffer size; 4 KiB pages are what Linux asks with.
        self.spawn_listing(
            "readdirplus",
            fh,
            offset,
            4096 / DIRENTPLUS_BYTES + 1,
            reply,
        );
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        crate::metrics::fuse_op("releasedir");
        self.fs.releasedir(fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        crate::metrics::fuse_op("statfs");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel's timespec `(sec, nsec)` means, and how fuser 0.15 maps it to and from
    /// a `SystemTime` (its conversions, restated).
    fn kernel_value(sec: i64, nsec: u32) -> f64 {
        sec as f64 + f64::from(nsec) / 1e9
    }
    fn fuser_reads(sec: i64, nsec: u32) -> SystemTime {
        if sec >= 0 {
            UNIX_EPOCH + Duration::new(sec as u64, nsec)
        } else {
            UNIX_EPOCH - Duration::new((-sec) as u64, nsec)
        }
    }
    fn fuser_sends(t: SystemTime) -> (i64, u32) {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => (
                -(e.duration().as_secs() as i64),
                e.duration().subsec_nanos(),
            ),
        }
    }
    fn seconds(t: SystemTime) -> f64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    #[test]
    fn times_before_1970_with_a_fraction_cross_fuser_exactly() {
        for (sec, nsec) in [
            (-2, 500_000_000),
            (-1, 250_000_000),
            (-86_400, 1),
            (-5, 0),
            (7, 9),
        ] {
            let stored = from_kernel_time(fuser_reads(sec, nsec));
            assert!(
                (seconds(stored) - kernel_value(sec, nsec)).abs() < 1e-6,
                "({sec}, {nsec}) stored as {}",
                seconds(stored)
            );
            assert_eq!(fuser_sends(to_kernel_time(stored)), (sec, nsec));
        }
    }
}
