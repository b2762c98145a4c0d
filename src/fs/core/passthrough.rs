//! Kernel passthrough: a read-only open of an object version the disk cache holds whole (and
//! has checked this mount) is answered with that file as its backing, and the kernel reads it
//! without cosfs: reads, splice and mmap run at local-file speed. The rules of which opens may
//! be passthrough are the namespace's (`fs/namespace/io_mode.rs`).
//!
//! - Offered only when the option allows it (`--no-passthrough`) and the FUSE adapter found a
//!   kernel that takes it (`enable_passthrough`). The first open the kernel refuses (no
//!   CAP_SYS_ADMIN, a cache directory too deeply stacked) turns it off for the mount with one
//!   warning (`passthrough_refused`); reads then take the chunked path, as without it.
//! - Not for `O_DIRECT` opens: the kernel would read the backing file with `O_DIRECT` too,
//!   from the disk for every read, where cosfs serves them from memory or the page cache
//!   (measured: 4 KiB reads at 40,660 IOPS through passthrough on this machine's disk, against
//!   62,263 through cosfs). Such an open is passthrough only when the inode already has
//!   passthrough handles (the kernel admits no mix).
//! - Whole files are made by the disk cache only while passthrough is on: without it the
//!   chunks serve the same reads as well.
//! - A passthrough handle reads the version it opened until it is closed, whatever happens to
//!   the object meanwhile, as a descriptor of a replaced local file does. Writes, a new
//!   version or a writer on this mount give the name a new inode (`io_mode`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::fs::disk_cache::CHUNK;

use super::{Backing, CosFs, HandleIo, Inode, ObjectStore};
use crate::fs::reader::ObjectReader;

/// Dropped chunks are fetched again when they are at most one in this many of the object's.
const REFILL_SHARE: usize = 8;
/// How long a refill waits for the disk cache's writer to finish what it was given first.
const REFILL_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(100);
const REFILL_WAIT_STEPS: u32 = 600;

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// The kernel can take passthrough opens (`kernel_can`): offer them if the option allows
    /// and there is a disk cache. Returns whether they are offered.
    pub fn enable_passthrough(&self, kernel_can: bool) -> bool {
        let on = kernel_can
            && self.cfg.passthrough
            && self.cache.disk().is_some_and(|d| d.set_whole_files(true));
        self.passthrough.store(on, Ordering::Relaxed);
        on
    }

    /// The backing a read-only open of `node`'s version `etag` may use: the disk cache's
    /// whole file of it, checked (on the blocking pool) the first time this mount uses it.
    pub(super) async fn whole_backing(&self, node: &Inode, etag: &str) -> Option<Arc<Backing>> {
        if !self.passthrough.load(Ordering::Relaxed)
            || node.local
            || node.attr.appendable
            || node.attr.size == 0
            || etag.is_empty()
            || node.io.pinned_to() == Some(etag)
        {
            return None;
        }
        let disk = self.cache.disk()?.clone();
        if !disk.has_whole(&node.key, etag) {
            // Its chunks may all be here already (a mount that stopped before making it).
            disk.whole_if_complete(&node.key, &Arc::from(etag), node.attr.size);
            return None;
        }
        let (key, e, size) = (node.key.clone(), etag.to_string(), node.attr.size);
        let file = tokio::task::spawn_blocking(move || disk.whole(&key, &e, size))
            .await
            .ok()??;
        Some(Arc::new(Backing::new(file, etag)))
    }

    /// A handle that read `reader`'s version through cosfs was closed: make the version a
    /// whole file, for the next opens (not sooner: `disk_cache/writer.rs`). Chunks the disk
    /// cache's writer dropped (their blocks left memory before it got to them: a fast
    /// sequential read) are fetched again in the background when the handle read the object
    /// to its end (not for a handle that read a part), or they are at most `REFILL_SHARE` of
    /// it.
    pub(super) fn read_closed(&self, reader: &ObjectReader) {
        if !self.passthrough.load(Ordering::Relaxed) {
            return;
        }
        let (Some(disk), Some((key, etag, size))) = (self.cache.disk(), reader.cos_version())
        else {
            return;
        };
        disk.want_whole(&key, &etag, size);
        if disk.missing_chunks(&key, &etag, size).is_empty() {
            return;
        }
        let read_all = reader.reached_end();
        let (store, cache, disk) = (self.store.clone(), self.cache_ref(), disk.clone());
        tokio::spawn(async move {
            // What is missing once the writer has written what it was given.
            for _ in 0..REFILL_WAIT_STEPS {
                if disk.stats().queued == 0 {
                    break;
                }
                tokio::time::sleep(REFILL_WAIT_STEP).await;
            }
            let missing = disk.missing_chunks(&key, &etag, size);
            let few = missing.len() * REFILL_SHARE <= size.div_ceil(CHUNK) as usize;
            if missing.is_empty() || !(read_all || few) {
                return;
            }
            let again = Arc::new(ObjectReader::new(&key, &etag, size));
            for c in missing {
                // Through the block cache, which hands each complete chunk to the disk cache.
                if let Err(e) = again.read(&store, &cache, c * CHUNK, CHUNK as u32).await {
                    tracing::debug!(%key, error = %e, "refill of a dropped disk cache chunk failed");
                    return;
                }
            }
        });
    }

    /// The kernel refused handle `fh`'s passthrough open (`why`): it reads through cosfs, and
    /// no more passthrough is offered on this mount.
    pub fn passthrough_refused(&self, fh: u64, why: &std::io::Error) {
        if let Ok(h) = self.handle(fh) {
            h.set_io(HandleIo::Plain);
            self.ns.table().through_refused(h.ino());
        }
        if self.passthrough.swap(false, Ordering::Relaxed) {
            if let Some(d) = self.cache.disk() {
                d.set_whole_files(false);
            }
            tracing::warn!(error = %why, "the kernel refused passthrough; cached files are read through cosfs");
        }
    }
}
