//! The disk cache's writer thread: it writes the chunks `DiskCache::store` names, taking their
//! blocks from the block cache when their turn comes, and keeps the cache under its size and
//! above the filesystem's reserve (`space`).
//! A write error pauses writing for `PAUSE_AFTER_ERROR` and is logged once per kind of error.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Weak;
use std::time::Instant;

use super::chunk_file;
use super::{ChunkOf, DiskCache, Job, Known, PAUSE_AFTER_ERROR};

/// Room for a chunk file's header, over its data, when making room for it.
const HEADER_ROOM: u64 = 8 << 10;

/// Until the cache is gone, write queued chunks and keep the size.
pub(super) fn run(cache: Weak<DiskCache>, jobs: Receiver<Job>) {
    let mut warned = HashSet::new();
    while let Ok(job) = jobs.recv() {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        cache.backlog.fetch_sub(1, Ordering::Relaxed);
        if cache.paused() || cache.index.lock().unwrap().files.contains(&job.name) {
            continue;
        }
        let source = cache.source.get().and_then(Weak::upgrade);
        let blocks = source.and_then(|s| {
            s.chunk_blocks(&ChunkOf {
                key: &job.key,
                etag: &job.etag,
                index: job.name.index,
                len: job.len,
            })
        });
        let Some(blocks) = blocks else {
            cache.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        // The file: the chunk and a header (a CRC-64 per block, the key and ETag).
        if !cache.make_room(job.len + HEADER_ROOM) {
            cache.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match chunk_file::write(&cache.dir, &job.name, &job.key, &job.etag, &blocks) {
            Ok(size) => {
                let mut g = cache.index.lock().unwrap();
                g.files.push(
                    job.name,
                    Known {
                        size,
                        touched: true,
                        checked: 0,
                    },
                );
                g.bytes += size;
                drop(g);
                cache.written.fetch_add(1, Ordering::Relaxed);
                cache.evict();
            }
            Err(e) => {
                *cache.paused_until.lock().unwrap() = Some(Instant::now() + PAUSE_AFTER_ERROR);
                if warned.insert(e.raw_os_error().unwrap_or(0)) {
                    tracing::warn!(dir = %cache.dir.path().display(), error = %e, "cannot write to the disk cache; reads go on without it, writing is retried in a minute");
                }
            }
        }
    }
}
