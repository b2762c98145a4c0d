//! The disk cache's writer thread: it writes the chunks `DiskCache::store` names, taking their
//! blocks from the block cache when their turn comes, and keeps the cache under its size and
//! above the filesystem's reserve (`space`).
//! A write error pauses writing for `PAUSE_AFTER_ERROR` and is logged once per kind of error.
//! When whole files are on, the writer makes a complete version's whole file from its chunks
//! (`whole_file`) and deletes the chunks, when asked (`DiskCache::want_whole`: at an open, and
//! at the close of a handle that read it). Not as the last chunk lands: that is while the
//! reads that fetched it still run, and copying a GiB then took a fifth of a first random-read
//! run's throughput on two cores.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Weak;
use std::time::Instant;

use super::chunk_file::{self, ReadFailure, VersionName, WHOLE};
use super::{whole_file, ChunkOf, DiskCache, Job, Known, CHUNK, PAUSE_AFTER_ERROR};

/// Room for a chunk file's header, over its data, when making room for it.
const HEADER_ROOM: u64 = 8 << 10;

/// Until the cache is gone, write queued chunks and keep the size.
pub(super) fn run(cache: Weak<DiskCache>, jobs: Receiver<Job>) {
    // Below the readers it works for: copying a GiB into a whole file takes seconds of CPU
    // that fio-like readers on a small machine would otherwise lose. Linux applies a thread
    // id's nice value to that thread alone.
    // SAFETY: setpriority on this thread's own id; no memory is passed.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
    let mut warned = HashSet::new();
    while let Ok(job) = jobs.recv() {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        // The job counts as queued until it is done (`cosfs stats`: queued=).
        let _done = Done(&cache.backlog);
        if cache.paused() || cache.index.lock().unwrap().files.contains(&job.name) {
            continue;
        }
        if job.name.index == WHOLE {
            make_whole(&cache, &job); // asked for (`DiskCache::want_whole`)
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
                if cache.is_wanted(&VersionName::new(&job.key, &job.etag)) {
                    make_whole(&cache, &job);
                }
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

/// Takes one off the writer's backlog when dropped (when its job is done, whichever way).
struct Done<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// If whole files are on, `job`'s version fits and every chunk of it is on disk, replace its
/// chunks by its whole file.
fn make_whole(cache: &DiskCache, job: &Job) {
    if !cache.whole_files.load(Ordering::Relaxed) || job.size == 0 || job.size > cache.whole_limit()
    {
        return;
    }
    let v = VersionName::new(&job.key, &job.etag);
    let chunks: Vec<_> = (0..job.size.div_ceil(CHUNK)).map(|c| v.chunk(c)).collect();
    {
        let g = cache.index.lock().unwrap();
        if g.files.contains(&v.whole()) {
            cache.not_wanted(&v);
            return;
        }
        if !chunks.iter().all(|c| g.files.contains(c)) {
            return;
        }
    }
    // Complete: made now or, failing, left as chunks for good.
    cache.not_wanted(&v);
    if !cache.make_room(job.size) {
        return;
    }
    match whole_file::assemble(&cache.dir, &v.whole(), &job.key, &job.etag, job.size) {
        Ok(size) => {
            let mut g = cache.index.lock().unwrap();
            for c in &chunks {
                if let Some(k) = g.files.pop(c) {
                    g.bytes -= k.size;
                }
            }
            // Written from chunks checked as they were read: checked for this mount.
            g.files.push(
                v.whole(),
                Known {
                    size,
                    touched: true,
                    checked: 1,
                },
            );
            g.bytes += size;
            drop(g);
            cache.whole.fetch_add(1, Ordering::Relaxed);
            for c in &chunks {
                cache.open.lock().unwrap().pop(c);
                let _ = cache.dir.remove_file(&c.rel());
            }
            cache.evict();
        }
        Err(ReadFailure::Unreadable(e)) => {
            // No room, no extended attributes, a removed directory: the chunks serve as before.
            tracing::debug!(key = %job.key, error = %e, "whole file not made");
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                cache.whole_files.store(false, Ordering::Relaxed);
                tracing::warn!(dir = %cache.dir.path().display(), error = %e, "disk cache: no whole files (and no passthrough) from now on");
            }
        }
        // A chunk failed its check: the next read finds it damaged and fetches it again.
        Err(_) => tracing::debug!(key = %job.key, "whole file not made: a chunk is damaged"),
    }
}
