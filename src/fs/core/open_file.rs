//! `OpenFile`: one open file handle, which owns what it reads and writes and answers `read`,
//! `write`, `fallocate`, `flush`, `fsync` and `release` itself, with the mount (`CosFs`) as
//! its context.
//!
//! - Its content: the version it opened (an `ObjectReader` pinned by ETag, or the kept copy
//!   a rename left it), and for a handle open for writing the file's one `FileWriter`, shared
//!   with the other writing handles of the inode. The writer is fixed for the handle's life:
//!   the handle holds one of the writer's handle counts, so the writer is not dropped before
//!   this handle's release.
//! - A handle open only for reading reads through the file's writer while another handle of
//!   this mount writes the file, so unpublished bytes are seen; otherwise its version.
//! - Commit points are the writing handle's (`docs/ARCHITECTURE.md` "A write", and
//!   `commit`): it knows whether it was written through and which process opened it.
//! - What it needs of the mount is the `Mount` trait (`CosFs` implements it), so this module
//!   imports nothing of the core above it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::fs::attr::PosixAttr;
use crate::fs::caller::{killed_by, process_of};
use crate::fs::error::{FsError, FsResult};
use crate::fs::namespace::HandleIo;
use crate::fs::reader::ObjectReader;
use crate::fs::write::{FileWriter, WriteCtx};
use crate::object::{DeferredDeletes, ObjectStore};

/// The store the filesystem talks to: the mount's, with deferred deletes.
pub(super) type Store<S> = DeferredDeletes<S>;
/// The one writer of a file open for writing, shared by its writing handles.
pub(super) type SharedWriter<S> = Arc<tokio::sync::Mutex<FileWriter<Store<S>>>>;
pub(super) type LockedWriter<S> = tokio::sync::OwnedMutexGuard<FileWriter<Store<S>>>;

/// What a handle needs of the mount it is open on.
pub(super) trait Mount<S: ObjectStore + ?Sized>: Sync {
    fn wctx(&self) -> &WriteCtx<Store<S>>;

    /// The writer of `ino`, locked, while it is still the file's writer.
    async fn locked_writer(&self, ino: u64) -> Option<LockedWriter<S>>;

    /// `size` bytes at `offset` of the version `reader` reads, within `--op-timeout`.
    async fn read_version(
        &self,
        reader: &Arc<ObjectReader>,
        offset: u64,
        size: u32,
    ) -> FsResult<Bytes>;

    /// The operation time limit (`--op-timeout`).
    fn op_timeout(&self) -> std::time::Duration;

    /// The attributes of a file being written changed.
    fn sync_attr(&self, ino: u64, a: &PosixAttr);

    /// Before a publish of `key` for `ino`: keep what other handles still read there.
    async fn keep_orphan_at(&self, key: &str, ino: u64);

    /// A writing handle of `ino` let go of `w`.
    async fn release_writer(&self, ino: u64, w: &SharedWriter<S>);
}

/// What only a handle open for writing has.
struct Writing<S: ObjectStore + ?Sized> {
    writer: SharedWriter<S>,
    /// `O_APPEND`: every write goes to the end.
    append: bool,
    /// The process that opened the handle: only its closes are commit points.
    opener: u32,
    /// Written through (write, ftruncate, fallocate, a metadata change) since it was opened.
    wrote: AtomicBool,
}

pub(super) struct OpenFile<S: ObjectStore + ?Sized> {
    ino: u64,
    reader: Arc<ObjectReader>,
    writing: Option<Writing<S>>,
    /// How the kernel reads it: plain, passthrough, or not the kernel's (`Internal`).
    io: Mutex<HandleIo>,
}

impl<S: ObjectStore + ?Sized> OpenFile<S> {
    /// A handle open for reading only.
    pub fn reading(ino: u64, reader: ObjectReader) -> Self {
        OpenFile {
            ino,
            reader: Arc::new(reader),
            writing: None,
            io: Mutex::new(HandleIo::Internal),
        }
    }

    /// A handle open for writing through `writer` (whose handle count it holds), opened by
    /// process `opener`.
    pub fn writing(
        ino: u64,
        reader: ObjectReader,
        writer: SharedWriter<S>,
        append: bool,
        opener: u32,
    ) -> Self {
        OpenFile {
            ino,
            reader: Arc::new(reader),
            writing: Some(Writing {
                writer,
                append,
                opener,
                wrote: AtomicBool::new(false),
            }),
            io: Mutex::new(HandleIo::Internal),
        }
    }

    /// A handle the kernel holds, read as `io`.
    pub fn for_kernel(self, io: HandleIo) -> Self {
        self.set_io(io);
        self
    }

    pub fn io(&self) -> HandleIo {
        *self.io.lock().unwrap()
    }

    pub fn set_io(&self, io: HandleIo) {
        *self.io.lock().unwrap() = io;
    }

    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The reader of the version this handle opened (a rename may point it at a kept copy).
    pub fn reader(&self) -> &Arc<ObjectReader> {
        &self.reader
    }

    pub fn writes(&self) -> bool {
        self.writing.is_some()
    }

    /// The handle's changes are to be committed at its close (a metadata change of the file,
    /// an ftruncate): a no-op on a read-only handle.
    pub fn mark_written(&self) {
        if let Some(w) = &self.writing {
            w.wrote.store(true, Ordering::Relaxed);
        }
    }

    fn writer(&self) -> FsResult<&Writing<S>> {
        self.writing.as_ref().ok_or(FsError::BadHandle)
    }

    /// `size` bytes at `offset`: through the file's writer while it is written on this mount
    /// (which may complete an upload, so it is bounded by the client's budgets), else from
    /// COS through the block cache within `--op-timeout`.
    pub async fn read(&self, fs: &impl Mount<S>, offset: u64, size: u32) -> FsResult<Bytes> {
        if let Some(w) = &self.writing {
            return w.writer.lock().await.read(fs.wctx(), offset, size).await;
        }
        if let Some(mut g) = fs.locked_writer(self.ino).await {
            return g.read(fs.wctx(), offset, size).await;
        }
        if self.reader.timed_out.recent() {
            return Err(FsError::TimedOut(fs.op_timeout()));
        }
        let r = fs.read_version(&self.reader, offset, size).await;
        if r.as_ref().is_err_and(FsError::is_timeout) {
            self.reader.timed_out.record();
        }
        r
    }

    /// Write `data` at `offset` (at the end for `O_APPEND`); returns the bytes taken.
    pub async fn write(&self, fs: &impl Mount<S>, offset: u64, data: &[u8]) -> FsResult<u32> {
        let w = self.writer()?;
        // Set before the attempt: a close after a failed write must report it too.
        w.wrote.store(true, Ordering::Relaxed);
        if data.is_empty() {
            return Ok(0); // no bytes: the file does not grow to `offset` (POSIX write(2))
        }
        let mut g = w.writer.lock().await;
        let offset = if w.append { g.size() } else { offset };
        g.write(fs.wctx(), offset, data).await?;
        fs.sync_attr(self.ino, g.attr());
        Ok(data.len() as u32)
    }

    /// Plain allocation up to `end` (the size grows, zeros read back); `keep_size`: nothing.
    pub async fn allocate(&self, fs: &impl Mount<S>, end: u64, keep_size: bool) -> FsResult<()> {
        let w = self.writer()?;
        let mut g = w.writer.lock().await;
        if !keep_size && end > g.size() {
            w.wrote.store(true, Ordering::Relaxed);
            g.truncate(fs.wctx(), end).await?;
            fs.sync_attr(self.ino, g.attr());
        }
        Ok(())
    }

    /// A `close` of one descriptor by thread `pid`: publishes only at a commit point (see
    /// `commit`), else does nothing and answers success.
    pub async fn flush(&self, fs: &impl Mount<S>, pid: u32) -> FsResult<()> {
        let Some(w) = &self.writing else {
            return Ok(());
        };
        if !w.wrote.load(Ordering::Relaxed) {
            return Ok(()); // nothing written through it yet: a dup'ed descriptor going away
        }
        if let Some(signal) = killed_by(pid) {
            // The writer was killed midway (`kill -9`): what it wrote is not a complete new
            // version, and nothing publishes it (the release drops it), unless another
            // process writes or syncs the file before its last close.
            w.writer.lock().await.abandon(signal);
            return Ok(());
        }
        if process_of(pid) != w.opener {
            return Ok(()); // a forked child closing the descriptor it inherited
        }
        self.fsync(fs).await
    }

    /// Make COS hold the handle's file now and return the upload's error.
    pub async fn fsync(&self, fs: &impl Mount<S>) -> FsResult<()> {
        let Some(w) = &self.writing else {
            return Ok(());
        };
        let mut g = w.writer.lock().await;
        fs.keep_orphan_at(g.key(), self.ino).await;
        let r = g.publish(fs.wctx()).await;
        fs.sync_attr(self.ino, g.attr());
        r
    }

    /// The handle is gone (taken out of the mount's table): give back its writer's handle
    /// count, which publishes at the last one.
    pub async fn release(&self, fs: &impl Mount<S>) {
        if let Some(w) = &self.writing {
            fs.release_writer(self.ino, &w.writer).await;
        }
    }
}
