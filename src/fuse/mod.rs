//! The FUSE adapter: turns each `fuser` callback into one call on the fs core and one reply.
//!
//! - No policy here: no caching, no COS logic. Operations that may touch the network run as
//!   tokio tasks that reply when done, so the FUSE session threads (`--fuse-threads`, each on
//!   its own /dev/fuse descriptor) never wait on the network and the kernel may have many
//!   requests in flight.
//! - Errors become errnos through `FsError::errno`, logged at debug when routine (ENOENT on
//!   lookup) and at warn otherwise.
//! - Its only decisions are translations: open flags into `OpenFlags`, `TimeOrNow` into a
//!   time, the request's uid/gid into the owner of a new file. At INIT it tells the fs core
//!   whether the kernel takes passthrough opens; an open the core answers with a backing
//!   file gets the kernel's id for it (`reply::opened`).
//! - `reply` turns the fs core's results into replies and errnos.

mod reply;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BsdFileFlags, FileHandle, FopenFlags, INodeNo, InitFlags, KernelConfig, LockOwner, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use self::reply::{log_error, opened, reply_with, reply_xattr, DirReply, Reply};
use crate::fs::error::FsError;
use crate::fs::files::{OpenFlags, Owner, SetAttr};
use crate::fs::CosFs;
use crate::object::ObjectStore;

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
        direct: flags & libc::O_DIRECT != 0,
    }
}

fn time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => from_kernel_time(t),
        TimeOrNow::Now => SystemTime::now(),
    })
}

/// fuser 0.18 reads a kernel time before 1970 (`tv_sec` -2, `tv_nsec` 0.5 s: -1.5 s) as
/// -(2 + 0.5) s; this undoes that, so a 1969 time with a fraction is stored as set. (It sends
/// such times right: no conversion is needed on the way out.)
fn from_kernel_time(t: SystemTime) -> SystemTime {
    match UNIX_EPOCH.duration_since(t) {
        Ok(d) if d.subsec_nanos() != 0 => {
            UNIX_EPOCH - Duration::from_secs(d.as_secs()) + Duration::new(0, d.subsec_nanos())
        }
        _ => t,
    }
}

/// The caller of `req`, as the owner of what it makes.
fn owner(req: &Request) -> Owner {
    Owner {
        uid: req.uid(),
        gid: req.gid(),
    }
}

/// The name as UTF-8, or `reply` answered with `invalid`'s errno (COS keys are UTF-8).
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
        offset: u64,
        max: usize,
        mut reply: R,
    ) {
        crate::metrics::fuse_op(op);
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.rt.spawn(async move {
            match fs.readdir(fh, offset, max).await {
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

impl<S: ObjectStore + ?Sized> fuser::Filesystem for FuseAdapter<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Each capability is optional: an older kernel without it still mounts.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
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
        // Passthrough (Linux 6.9+) needs CAP_SYS_ADMIN for every backing file: only root
        // asks. Depth 2 lets the backing file sit on an overlayfs (a container's disk).
        if self.fs.config().passthrough {
            let root = rustix::process::geteuid().is_root();
            let kernel = root
                && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(2).is_ok();
            if self.fs.enable_passthrough(kernel) {
                tracing::info!("passthrough: cached files are read by the kernel directly");
            } else if !root {
                tracing::info!(
                    "no passthrough (it needs root): cached files are read through cosfs"
                );
            } else {
                tracing::info!("no passthrough (no disk cache, or a kernel before 6.9): cached files are read through cosfs");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.spawn_named(
            "lookup",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.lookup(parent.0, &name).await },
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        crate::metrics::fuse_op("forget");
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.spawn(
            "getattr",
            reply,
            |fs| async move { fs.getattr(ino.0).await },
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn(
            "readlink",
            reply,
            |fs| async move { fs.readlink(ino.0).await },
        );
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: fuser::OpenFlags, reply: ReplyOpen) {
        let pid = req.pid();
        crate::metrics::fuse_op("open");
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.open(ino.0, open_flags(flags.0), pid).await {
                Ok(o) => opened(reply, &fs, o),
                Err(e) => reply.error(log_error("open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.spawn("read", reply, |fs| async move {
            fs.read(fh.0, offset, size).await
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("release", reply, |fs| async move {
            fs.release(fh.0).await;
            Ok(())
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
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
            |fs, name| async move { fs.create(parent.0, &name, mode, owner, flags, pid).await },
        );
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
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
            |fs, name| async move { fs.mknod(parent.0, &name, mode, rdev, owner).await },
        );
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: fuser::OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.spawn("write", reply, |fs| async move {
            fs.write(fh.0, offset, &data).await
        });
    }

    fn flush(&self, req: &Request, _ino: INodeNo, fh: FileHandle, _: LockOwner, reply: ReplyEmpty) {
        let pid = req.pid();
        self.spawn(
            "flush",
            reply,
            |fs| async move { fs.flush(fh.0, pid).await },
        );
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _: bool, reply: ReplyEmpty) {
        self.spawn("fsync", reply, |fs| async move { fs.fsync(fh.0).await });
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _: FileHandle, _: bool, reply: ReplyEmpty) {
        self.spawn(
            "fsyncdir",
            reply,
            |fs| async move { fs.fsyncdir(ino.0).await },
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
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
        let fh = fh.map(|h| h.0);
        self.spawn("setattr", reply, |fs| async move {
            fs.setattr(ino.0, fh, set).await
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.spawn("fallocate", reply, |fs| async move {
            fs.fallocate(fh.0, offset, length, mode).await
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
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
            |fs, name| async move { fs.mkdir(parent.0, &name, mode, owner).await },
        );
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
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
            |fs, name| async move { fs.symlink(parent.0, &name, &target, owner).await },
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "unlink",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.unlink(parent.0, &name).await },
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "rmdir",
            name,
            FsError::NotFound,
            reply,
            |fs, name| async move { fs.rmdir(parent.0, &name).await },
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            crate::metrics::fuse_op("rename");
            return reply.error(log_error("rename", &FsError::InvalidName));
        };
        self.spawn("rename", reply, |fs| async move {
            fs.rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        crate::metrics::fuse_op("link");
        let Some((name, reply)) = utf8_name("link", newname, FsError::InvalidName, reply) else {
            return;
        };
        let r = self.fs.link(ino.0, newparent.0, &name);
        reply_with(reply, self.ttl, r, "link");
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
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
            |fs, name| async move { fs.setxattr(ino.0, &name, Some(&value), flags).await },
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.spawn_named(
            "removexattr",
            name,
            FsError::InvalidName,
            reply,
            |fs, name| async move { fs.setxattr(ino.0, &name, None, 0).await },
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
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
            let r = fs.getxattr(ino.0, &name).await;
            reply_xattr(reply, size, r, "getxattr")
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        crate::metrics::fuse_op("listxattr");
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let r = fs.listxattr(ino.0).await.map(|names| {
                names
                    .into_iter()
                    .flat_map(|n| n.into_bytes().into_iter().chain([0]))
                    .collect()
            });
            reply_xattr(reply, size, r, "listxattr")
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: fuser::OpenFlags, reply: ReplyOpen) {
        crate::metrics::fuse_op("opendir");
        match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(log_error("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        // Only used when the kernel lacks readdirplus.
        self.spawn_listing("readdir", fh.0, offset, 128, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        // fuser does not tell the buffer size; 4 KiB pages are what Linux asks with.
        let max = 4096 / DIRENTPLUS_BYTES + 1;
        self.spawn_listing("readdirplus", fh.0, offset, max, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::OpenFlags,
        reply: ReplyEmpty,
    ) {
        crate::metrics::fuse_op("releasedir");
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
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

    /// What the kernel's timespec `(sec, nsec)` means, and how fuser 0.18 maps it to and from
    /// a `SystemTime` (its conversions in its `time.rs`, restated).
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
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    (-(d.as_secs() as i64), 0)
                } else {
                    (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
                }
            }
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
            // `file_attr` hands the stored time to fuser as it is.
            assert_eq!(fuser_sends(stored), (sec, nsec));
        }
    }
}
