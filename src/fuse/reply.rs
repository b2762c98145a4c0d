//! The replies of the FUSE adapter: how an fs core result becomes a `fuser` reply (the
//! `Reply` trait, one impl per reply type), attributes as the kernel sees them, and errnos,
//! logged and counted in one place (`log_error`).

use std::time::Duration;

use bytes::Bytes;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    ReplyXattr,
};

use crate::fs::attr::{FileKind, PosixAttr};
use crate::fs::error::FsError;
use crate::fs::{CosFs, Entry, ListedEntry, Opened};
use crate::object::ObjectStore;

/// `st_blksize`: tools such as cat and cp size their buffers by it; 1 MiB matches the largest
/// read the kernel sends.
const BLKSIZE: u32 = 1024 * 1024;

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

pub(super) fn file_attr(ino: u64, a: &PosixAttr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
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
pub(super) fn log_error(op: &'static str, e: &FsError) -> Errno {
    if e.is_routine() {
        tracing::debug!(op, error = %e, "failed");
    } else {
        tracing::warn!(op, error = %e, "failed");
    }
    let errno = e.errno();
    crate::metrics::fuse_error(op, errno);
    Errno::from_i32(errno)
}

/// A reply the fs core's `Ok` value answers; an error answers any reply with its errno.
pub(super) trait Reply<T>: Send + 'static {
    fn answer(self, ttl: Duration, value: T);
    fn fail(self, errno: Errno);
}

macro_rules! replies {
    ($($reply:ty, $value:ty => |$r:ident, $ttl:ident, $v:ident| $answer:expr;)*) => {$(
        impl Reply<$value> for $reply {
            fn answer(self, $ttl: Duration, $v: $value) {
                let $r = self;
                $answer
            }
            fn fail(self, errno: Errno) {
                self.error(errno)
            }
        }
    )*};
}

replies! {
    ReplyEntry, Entry => |r, ttl, e| r.entry(&ttl, &file_attr(e.ino, &e.attr), Generation(0));
    ReplyAttr, Entry => |r, ttl, e| r.attr(&ttl, &file_attr(e.ino, &e.attr));
    ReplyEmpty, () => |r, _ttl, _v| r.ok();
    ReplyData, Bytes => |r, _ttl, data| r.data(&data);
    ReplyWrite, u32 => |r, _ttl, n| r.written(n);
    // A new file has no cached pages to keep.
    ReplyCreate, (Entry, Opened) => |r, ttl, eo| {
        let attr = file_attr(eo.0.ino, &eo.0.attr);
        r.created(&ttl, &attr, Generation(0), FileHandle(eo.1.fh), FopenFlags::empty())
    };
}

/// Answer an open: in passthrough mode over the backing the fs core chose, with the kernel's
/// id for it (made at the backing's first open, then reused), else plain. If the kernel
/// refuses the backing, the core hears of it and the open is plain.
pub(super) fn opened<S: ObjectStore + ?Sized>(reply: ReplyOpen, fs: &CosFs<S>, o: Opened) {
    let flags = open_reply_flags(&o);
    if let Some(b) = &o.through {
        match b.kernel_id(|f| reply.open_backing(f)) {
            Ok(id) => return reply.opened_passthrough(FileHandle(o.fh), flags, id),
            Err(e) => fs.passthrough_refused(o.fh, &e),
        }
    }
    reply.opened(FileHandle(o.fh), flags)
}

/// The `FOPEN_*` flags of an open: keep the page cache when the fs core says it is current.
fn open_reply_flags(o: &Opened) -> FopenFlags {
    if o.keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}

/// Reply to `reply` with `r`: the value, or the errno (logged and counted under `op`).
pub(super) fn reply_with<T, R: Reply<T>>(
    reply: R,
    ttl: Duration,
    r: Result<T, FsError>,
    op: &'static str,
) {
    match r {
        Ok(v) => reply.answer(ttl, v),
        Err(e) => reply.fail(log_error(op, &e)),
    }
}

/// A readdir or readdirplus reply, filled entry by entry.
pub(super) trait DirReply: Send + 'static {
    /// Whether the kernel takes a reference on each entry sent (readdirplus does).
    const TAKES_REFERENCES: bool;
    /// Add `e`; false when the buffer is full and `e` was not added.
    fn add(&mut self, e: &ListedEntry, ttl: &Duration) -> bool;
    fn ok(self);
    fn error(self, errno: Errno);
}

impl DirReply for ReplyDirectory {
    const TAKES_REFERENCES: bool = false;
    fn add(&mut self, e: &ListedEntry, _ttl: &Duration) -> bool {
        let kind = file_type(e.attr.kind);
        !ReplyDirectory::add(self, INodeNo(e.ino), e.offset, kind, &e.name)
    }
    fn ok(self) {
        ReplyDirectory::ok(self)
    }
    fn error(self, errno: Errno) {
        ReplyDirectory::error(self, errno)
    }
}

impl DirReply for ReplyDirectoryPlus {
    const TAKES_REFERENCES: bool = true;
    fn add(&mut self, e: &ListedEntry, ttl: &Duration) -> bool {
        let attr = file_attr(e.ino, &e.attr);
        let (ino, generation) = (INodeNo(e.ino), Generation(0));
        !ReplyDirectoryPlus::add(self, ino, e.offset, &e.name, ttl, &attr, generation)
    }
    fn ok(self) {
        ReplyDirectoryPlus::ok(self)
    }
    fn error(self, errno: Errno) {
        ReplyDirectoryPlus::error(self, errno)
    }
}

/// getxattr/listxattr answer: the size when asked for it, the bytes when they fit, else ERANGE.
pub(super) fn reply_xattr(
    reply: ReplyXattr,
    size: u32,
    r: Result<Vec<u8>, FsError>,
    op: &'static str,
) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() <= size as usize => reply.data(&v),
        Ok(_) => reply.error(log_error(op, &FsError::BufferTooSmall)),
        Err(e) => reply.error(log_error(op, &e)),
    }
}
