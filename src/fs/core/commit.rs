//! When a file being written reaches COS. Commit points are where COS is made to hold the
//! file and the upload's error is returned to the program:
//! - `fsync` always;
//! - `flush` (every `close` of any descriptor) only when it can be the writer's last close:
//!   the handle was written through (write, ftruncate, fallocate, or any metadata change
//!   of the file while it is open) since it was opened, and the closing process is the one
//!   that opened it. A flush before any write is a descriptor being duplicated away (`dd`,
//!   the shell's `>`: open, dup2, close the original); a flush from another process is a
//!   forked child closing what it inherited. Neither publishes, so an existing object is
//!   never replaced by the empty file `O_TRUNC` left or by half of the new content;
//! - `release` (the last reference gone) publishes whatever is still unpublished, unless a
//!   commit already failed and told the program (its errors can only be logged: the kernel
//!   does not wait for it). So `open(O_TRUNC)` + `close` with no write, or a file last
//!   closed by a child, still ends with the right object.
//!
//! Shutdown uses the same writers: `begin_stop` refuses new writes, `abort_writers` gives up
//! on the files still open.

use std::sync::atomic::Ordering;

use crate::object::ObjectStore;

use super::{CosFs, HandleIo, SharedWriter};
use crate::fs::error::{FsError, FsResult};
use crate::fs::orphans::Orphan;

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// Stop taking changes (shutdown): from now on opening for writing, creating and every
    /// namespace or metadata change is EROFS. Handles already open for writing keep working,
    /// so programs in the middle of a file can finish it.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Files open for writing now.
    pub fn open_for_writing(&self) -> usize {
        self.writers.count()
    }

    /// Give up on every file still open for writing (shutdown after the grace period): its
    /// unfinished upload is aborted, so COS keeps the object as of the last close or fsync,
    /// and every later write, flush or close of it fails with EIO. With `wait`, uploads that
    /// are completing right now (a close or fsync in progress) are let finish first; without,
    /// those are skipped. Returns the keys given up on.
    pub async fn abort_writers(&self, wait: bool) -> Vec<String> {
        let writers: Vec<SharedWriter<S>> =
            self.writers.all().into_iter().map(|(_, w)| w).collect();
        let mut keys = Vec::new();
        for w in writers {
            let mut g = match w.try_lock() {
                Ok(g) => g,
                Err(_) if wait => w.lock().await,
                Err(_) => continue,
            };
            if g.give_up(&self.wctx).await {
                keys.push(g.key().to_string());
            }
        }
        keys
    }

    /// Every handle open for writing on `ino` now has changes to commit at its close.
    pub(super) fn mark_written(&self, ino: u64) {
        for h in self.handles.files_of(ino) {
            h.mark_written();
        }
    }

    /// A `close` of one descriptor of handle `fh` by thread `pid` (`OpenFile::flush`).
    pub async fn flush(&self, fh: u64, pid: u32) -> FsResult<()> {
        self.handle(fh)?.flush(self, pid).await
    }

    /// Make COS hold the handle's file now and return the upload's error.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        self.handle(fh)?.fsync(self).await
    }

    pub async fn release(&self, fh: u64) {
        let Some(h) = self.handles.remove_file(fh) else {
            return;
        };
        h.release(self).await;
        let ino = h.ino();
        if h.io() == HandleIo::Plain && !h.writes() {
            self.read_closed(h.reader());
        }
        self.ns.table().closed_handle(ino, h.io());
        if self.orphans.contains(ino) && !self.is_open(ino) {
            if let Some(o) = self.orphans.take(ino) {
                self.delete_orphan(o).await;
            }
        }
    }

    /// The last close of a file unlinked while open: its object goes now, unless the name was
    /// taken again meanwhile (see `orphans`).
    async fn delete_orphan(&self, o: Orphan) {
        if self.ns.table().child(o.parent, &o.name).is_some() {
            return; // a new file of this mount has the name
        }
        let r = match self.head(&o.key).await {
            Ok(Some(m)) if o.etag.as_deref().is_none_or(|e| e == m.etag) => self
                .store
                .delete_object(&o.key)
                .await
                .map_err(FsError::from),
            Ok(_) => Ok(()), // gone, or replaced by another client
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            tracing::warn!(key = %o.key, error = %e, "could not delete a file unlinked while open; it stays on COS");
        }
    }

    /// A writing handle of `ino` let go of `w`: the last one publishes what is unpublished
    /// and drops the writer.
    pub(super) async fn release_writer(&self, ino: u64, w: &SharedWriter<S>) {
        let mut g = w.lock().await;
        if g.drop_handle() > 0 {
            return;
        }
        // A failed flush already told the program; uploading now would make the changes it
        // was told are lost appear after all. A writer killed midway left no new version.
        if let Some(signal) = g.abandoned().filter(|_| g.has_unpublished_changes()) {
            tracing::warn!(key = %g.key(), signal, "a program writing this file was killed midway; its unfinished changes are dropped and COS keeps the previous version");
        } else if !g.publish_failed() {
            self.keep_orphan_at(g.key(), ino).await;
            if let Err(e) = g.publish(&self.wctx).await {
                tracing::error!(key = %g.key(), error = %e, "last close of a file could not upload it; its changes are lost");
            }
        }
        // Unpublished changes (a failed upload included) are lost now: the file is what COS
        // holds, not what this mount showed.
        let lost = g.has_unpublished_changes();
        g.discard(&self.wctx).await;
        // The inode first: an open that finds no writer then finds what this one left.
        let left = if lost || g.is_unlinked() || g.superseded() {
            None
        } else {
            Some((g.attr(), g.appended_object()))
        };
        self.ns.table().end_writing(ino, left);
        self.writers.remove(ino);
    }
}
