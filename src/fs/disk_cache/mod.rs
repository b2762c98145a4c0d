//! The persistent disk cache (`--disk-cache DIR`, `--disk-cache-size N`): a second tier under
//! the block cache that outlives the mount.
//!
//! - Unit: a chunk of `CHUNK` bytes (16 blocks), aligned in the object, one file each. A chunk
//!   is written once all its blocks are in memory (sequential reads, whole-object fetches and
//!   aligned random fetches complete them); scattered single blocks are not kept.
//! - Identity: the file name is a hash of key + ETag plus the chunk index, and the header
//!   repeats key, ETag and index. A replaced object has a new ETag, so its old chunks are never
//!   looked up again (they age out). A remount validates nothing up front: a handle reads the
//!   version its open saw (a HEAD when the metadata TTL has passed), and only chunks of that
//!   version match.
//! - Integrity: the header holds the CRC-64 of each 64 KiB block; every block is checked the
//!   first time a mount reads it, after which reads of it fetch just the bytes wanted
//!   (`chunk_file`). A chunk whose header or a checksum does not match (a torn write after a
//!   crash, bit rot, a file edited by hand) is deleted and fetched again, never served. Files
//!   are written to a temporary name and renamed.
//! - Reads: a read whose chunks are all on disk is served from the files directly (`read`),
//!   without going through the block cache: from the page cache on the async worker when it
//!   holds the bytes (`RWF_NOWAIT`), else on the blocking pool. Up to `OPEN_FILES` chunk
//!   files stay open, so a hit costs one `pread`.
//! - Off the read path: complete chunks are named to one writer thread through a queue; when
//!   their turn comes the writer takes their blocks from the block cache (`ChunkSource`), so
//!   the queue holds no data and no memory outside the budget. A chunk evicted from memory
//!   before its turn is skipped (counted as dropped).
//! - Size: at most `--disk-cache-size` of chunk files (`auto`: from the free space, `space`),
//!   least recently used evicted first, and never past the filesystem's reserve. The order
//!   survives remounts through the files' mtimes (the first hit of a chunk in a mount sets its
//!   mtime).
//! - Failures degrade, never fail reads: a directory that cannot be made or locked means no
//!   disk cache (a warning at mount); a write error (a full disk, a removed directory) stops
//!   writing for a minute with a warning; a load error is a miss.
//! - Privacy: the mount's directory is `DIR/<mount id>`, a `PrivateDir` (ours, mode 0700,
//!   verified from `/` down, every file reached without following a symlink), files 0600,
//!   locked with `flock` so that two mounts never share one.

mod chunk_file;
mod space;
mod whole_file;
mod writer;

use std::fs::File;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use super::block::BLOCK_SIZE;
use crate::private_dir::PrivateDir;
use chunk_file::{pread, Checked, ChunkFile, ChunkName, ReadFailure, VersionName};
pub use space::DiskSize;
use space::Space;

/// Bytes per chunk file.
pub const CHUNK: u64 = 1024 * 1024;
/// Chunks waiting for the writer thread at most (names only).
const QUEUE: usize = 1024;
/// Chunks waiting past which background fetches hold back: 32 MiB of blocks the writer has
/// yet to copy out of memory before the block cache evicts them.
const BUSY: usize = 32;
/// How long writing stays off after a write error.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(60);
/// Chunk files kept open for reads (a 4 GiB working set; the least recently used is closed).
const OPEN_FILES: usize = 4096;
/// Whole files kept open for reads.
const OPEN_WHOLE: usize = 64;
/// Versions remembered as wanted whole before their last chunk is on disk.
const WANTED: usize = 256;

struct Job {
    name: ChunkName,
    key: Arc<str>,
    etag: Arc<str>,
    len: u64,
    /// The object's size (whether the version is complete on disk, for its whole file).
    size: u64,
}

/// Where the writer takes a chunk's bytes from when its turn comes (the block cache).
pub trait ChunkSource: Send + Sync {
    /// The blocks of `chunk`, in order, if all of them are in memory.
    fn chunk_blocks(&self, chunk: &ChunkOf<'_>) -> Option<Vec<Bytes>>;
}

/// Chunk `index` (`len` bytes) of the version `etag` of `key`.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOf<'a> {
    pub key: &'a Arc<str>,
    pub etag: &'a Arc<str>,
    pub index: u64,
    pub len: u64,
}

/// A chunk file the index knows.
struct Known {
    size: u64,
    /// Its mtime was set by this mount (the LRU order kept on disk).
    touched: bool,
    /// Blocks this mount has checked against their CRC (a whole file: non-zero once checked).
    checked: Checked,
}

/// What a read of the disk cache found.
pub enum DiskRead {
    /// The bytes, every block checked.
    Hit(Bytes),
    /// On disk, but not in the page cache: read again with `wait` on the blocking pool.
    WouldBlock,
    /// Not (all) on disk, or damaged (and now deleted).
    Miss,
}

struct Index {
    /// Chunk files, least recently used first.
    files: LruCache<ChunkName, Known>,
    bytes: u64,
}

/// What the disk cache did, for `cosfs stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskStats {
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub written: u64,
    pub dropped: u64,
    pub corrupt: u64,
    /// Whole files made (`whole_file`).
    pub whole: u64,
    /// Jobs the writer has queued or is doing now.
    pub queued: u64,
}

pub struct DiskCache {
    dir: PrivateDir,
    cap: u64,
    index: Mutex<Index>,
    /// Chunk files open for reads, least recently used first.
    open: Mutex<LruCache<ChunkName, Arc<ChunkFile>>>,
    /// Whole files open for reads (checked this mount), least recently used first.
    open_whole: Mutex<LruCache<ChunkName, Arc<File>>>,
    /// Complete versions that fit `whole_limit` become whole files (`whole_file`).
    whole_files: AtomicBool,
    /// Versions to make whole as their last chunk lands (`want_whole`), the latest `WANTED`.
    wanted: Mutex<LruCache<ChunkName, ()>>,
    queue: SyncSender<Job>,
    source: std::sync::OnceLock<std::sync::Weak<dyn ChunkSource>>,
    /// Chunks queued and not yet written.
    backlog: AtomicUsize,
    /// Writing is off until then, after a write error.
    paused_until: Mutex<Option<Instant>>,
    hits: AtomicU64,
    misses: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    corrupt: AtomicU64,
    whole: AtomicU64,
    /// Held for the cache's lifetime (`flock`): the directory is this mount's alone. Also
    /// what the free space of the filesystem is asked through.
    lock: File,
}

impl DiskCache {
    /// The cache in `dir` (one mount's own directory), of `size` (its cap, from the free space
    /// for `auto`): made if missing, cleaned of unfinished writes, and its index read from the
    /// files.
    pub fn open(dir: &Path, size: DiskSize) -> Result<Arc<DiskCache>, String> {
        let dir = PrivateDir::open(dir).map_err(|e| e.to_string())?;
        let lock = dir
            .open_or_create(".lock")
            .map_err(|e| format!("cannot open {}/.lock: {e}", dir.path().display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        if unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } != 0
        {
            return Err(format!(
                "{} is in use by another mount of the same bucket",
                dir.path().display()
            ));
        }
        let mut found = chunk_file::scan(&dir);
        found.sort_by_key(|(_, _, mtime)| *mtime);
        let mut index = Index {
            files: LruCache::unbounded(),
            bytes: 0,
        };
        for (name, bytes, _) in found {
            index.files.push(
                name,
                Known {
                    size: bytes,
                    touched: false,
                    checked: 0,
                },
            );
            index.bytes += bytes;
        }
        let cap = size.cap(Space::of(&lock).ok(), index.bytes);
        tracing::info!(dir = %dir.path().display(), cap, held = index.bytes, "disk cache");
        let (tx, rx) = sync_channel(QUEUE);
        let cache = Arc::new(DiskCache {
            dir,
            cap,
            index: Mutex::new(index),
            open: Mutex::new(LruCache::new(
                NonZeroUsize::new(open_files_allowed()).expect("at least one"),
            )),
            open_whole: Mutex::new(LruCache::new(
                NonZeroUsize::new(OPEN_WHOLE).expect("at least one"),
            )),
            whole_files: AtomicBool::new(false),
            wanted: Mutex::new(LruCache::new(
                NonZeroUsize::new(WANTED).expect("at least one"),
            )),
            queue: tx,
            source: std::sync::OnceLock::new(),
            backlog: AtomicUsize::new(0),
            paused_until: Mutex::new(None),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            whole: AtomicU64::new(0),
            lock,
        });
        cache.evict();
        let weak = Arc::downgrade(&cache);
        std::thread::Builder::new()
            .name("disk-cache".into())
            .spawn(move || writer::run(weak, rx))
            .map_err(|e| format!("cannot start the disk cache writer: {e}"))?;
        Ok(cache)
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Make whole files of complete versions from now on (`on`), if the filesystem keeps
    /// extended attributes; whether it does.
    pub fn set_whole_files(&self, on: bool) -> bool {
        let on = on && whole_file::supported(&self.dir);
        self.whole_files.store(on, Ordering::Relaxed);
        on
    }

    /// The largest object kept as a whole file: a quarter of the cap, so one never crowds out
    /// everything else (its chunks and the file both exist while it is written).
    fn whole_limit(&self) -> u64 {
        self.cap / 4
    }

    /// The whole file of the version (`size` bytes), checked through the first time this mount
    /// uses it (blocking I/O: a GiB takes a fraction of a second from the page cache). None if
    /// the cache has none, or it was damaged (and is now deleted).
    pub fn whole(&self, key: &str, etag: &str, size: u64) -> Option<File> {
        let name = VersionName::new(key, etag).whole();
        let mut one = [0u8; 0];
        if let Err(e) = self.read_whole(&name, key, etag, Some(size), 0, &mut one, true) {
            self.failed(&name, e);
            return None;
        }
        let f = self.open_whole.lock().unwrap().get(&name).cloned()?;
        // The version names its size; a caller that knows another is not to be handed this.
        if f.metadata().ok()?.len() != size {
            return None;
        }
        f.try_clone().ok()
    }

    /// Where the writer takes chunks' bytes from (set once, by the block cache).
    pub fn set_source(&self, source: std::sync::Weak<dyn ChunkSource>) {
        let _ = self.source.set(source);
    }

    pub fn stats(&self) -> DiskStats {
        DiskStats {
            bytes: self.index.lock().unwrap().bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            whole: self.whole.load(Ordering::Relaxed),
            queued: self.backlog.load(Ordering::Relaxed) as u64,
        }
    }

    /// Whether the version's whole file is on disk (an index lookup, no I/O).
    pub fn has_whole(&self, key: &str, etag: &str) -> bool {
        let name = VersionName::new(key, etag).whole();
        self.index.lock().unwrap().files.contains(&name)
    }

    /// Whether chunk `index` of the version is on disk, alone or in the whole file (an index
    /// lookup, no I/O).
    pub fn has(&self, key: &str, etag: &str, index: u64) -> bool {
        let v = VersionName::new(key, etag);
        let g = self.index.lock().unwrap();
        g.files.contains(&v.chunk(index)) || g.files.contains(&v.whole())
    }

    /// Whether the writer is behind: background fetches should wait for it.
    pub fn busy(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= BUSY
    }

    /// Bytes `offset..end` of the version (`size` bytes long), if every chunk they touch is
    /// on disk and intact. Without `wait`, only what the page cache holds is read. A damaged
    /// chunk is deleted.
    pub fn read(
        &self,
        key: &str,
        etag: &str,
        size: u64,
        offset: u64,
        end: u64,
        wait: bool,
    ) -> DiskRead {
        let version = VersionName::new(key, etag);
        let (first, last) = (offset / CHUNK, (end - 1) / CHUNK);
        let whole = version.whole();
        {
            let g = self.index.lock().unwrap();
            if g.files.contains(&whole) {
                drop(g);
                let mut out = vec![0u8; (end - offset) as usize];
                return match self.read_whole(&whole, key, etag, Some(size), offset, &mut out, wait)
                {
                    Ok(()) => {
                        self.hits.fetch_add(1, Ordering::Relaxed);
                        DiskRead::Hit(Bytes::from(out))
                    }
                    Err(e) => self.failed(&whole, e),
                };
            }
            if !(first..=last).all(|c| g.files.contains(&version.chunk(c))) {
                return DiskRead::Miss;
            }
        }
        let mut out = vec![0u8; (end - offset) as usize];
        for c in first..=last {
            let start = c * CHUNK;
            let (from, to) = (offset.max(start), end.min(start + CHUNK));
            let buf = &mut out[(from - offset) as usize..(to - offset) as usize];
            let len = CHUNK.min(size - start);
            let name = version.chunk(c);
            if let Err(e) = self.read_chunk(&name, key, etag, len, from - start, buf, wait) {
                return self.failed(&name, e);
            }
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        DiskRead::Hit(Bytes::from(out))
    }

    /// Blocks `blocks` (indexes within the chunk) of chunk `index` of the version, whose
    /// length is `len`, one allocation each, if the chunk is on disk and those blocks are
    /// intact (blocking I/O). A damaged chunk is deleted.
    pub fn load(
        &self,
        key: &str,
        etag: &str,
        index: u64,
        len: u64,
        blocks: std::ops::Range<u64>,
    ) -> Option<Vec<Bytes>> {
        let version = VersionName::new(key, etag);
        let (name, whole) = (version.chunk(index), version.whole());
        let in_whole = {
            let g = self.index.lock().unwrap();
            match (g.files.contains(&name), g.files.contains(&whole)) {
                (_, true) => true,
                (true, false) => false,
                (false, false) => return None,
            }
        };
        let from = blocks.start * BLOCK_SIZE;
        let to = len.min(blocks.end * BLOCK_SIZE);
        let mut all = vec![0u8; to.checked_sub(from)? as usize];
        let read = match in_whole {
            true => self.read_whole(
                &whole,
                key,
                etag,
                None,
                index * CHUNK + from,
                &mut all,
                true,
            ),
            false => self.read_chunk(&name, key, etag, len, from, &mut all, true),
        };
        if let Err(e) = read {
            self.failed(if in_whole { &whole } else { &name }, e);
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(
            all.chunks(BLOCK_SIZE as usize)
                .map(Bytes::copy_from_slice)
                .collect(),
        )
    }

    /// Fill `buf` from byte `from` of chunk `name` (`len` bytes), opening its file if it is
    /// not open and checking blocks not checked yet.
    #[allow(clippy::too_many_arguments)]
    fn read_chunk(
        &self,
        name: &ChunkName,
        key: &str,
        etag: &str,
        len: u64,
        from: u64,
        buf: &mut [u8],
        wait: bool,
    ) -> Result<(), ReadFailure> {
        let (checked, touched) = match self.index.lock().unwrap().files.get(name) {
            Some(k) => (k.checked, k.touched),
            None => return Err(ReadFailure::Unreadable(std::io::ErrorKind::NotFound.into())),
        };
        let open = self.open.lock().unwrap().get(name).cloned();
        let file = match open {
            Some(f) => f,
            None => {
                let rel = name.rel();
                let f = Arc::new(ChunkFile::open(
                    &self.dir, &rel, key, etag, name.index, len, wait,
                )?);
                self.open.lock().unwrap().put(*name, f.clone());
                f
            }
        };
        let now_checked = file.read_into(from, buf, checked, wait)?;
        if !touched {
            file.touch();
        }
        if now_checked != 0 || !touched {
            if let Some(k) = self.index.lock().unwrap().files.peek_mut(name) {
                k.checked |= now_checked;
                k.touched = true;
            }
        }
        Ok(())
    }

    /// Fill `buf` from byte `from` of the whole file `name` of the version, checking the file
    /// through first if this mount has not (which needs `wait`).
    #[allow(clippy::too_many_arguments)]
    fn read_whole(
        &self,
        name: &ChunkName,
        key: &str,
        etag: &str,
        size: Option<u64>,
        from: u64,
        buf: &mut [u8],
        wait: bool,
    ) -> Result<(), ReadFailure> {
        let checked = match self.index.lock().unwrap().files.get(name) {
            Some(k) => k.checked != 0,
            None => return Err(ReadFailure::Unreadable(std::io::ErrorKind::NotFound.into())),
        };
        let open = self.open_whole.lock().unwrap().get(name).cloned();
        let file = match open {
            Some(f) if checked => f,
            _ if !wait => return Err(ReadFailure::WouldBlock),
            _ => {
                let f = if checked {
                    self.dir
                        .open_file(&name.rel(), false)
                        .map_err(ReadFailure::Unreadable)?
                } else {
                    whole_file::verify(&self.dir, &name.rel(), key, etag, size)?
                };
                f.set_modified(std::time::SystemTime::now()).ok();
                let f = Arc::new(f);
                self.open_whole.lock().unwrap().put(*name, f.clone());
                if let Some(k) = self.index.lock().unwrap().files.peek_mut(name) {
                    k.checked = 1;
                    k.touched = true;
                }
                f
            }
        };
        if buf.is_empty() {
            return Ok(());
        }
        pread(&file, buf, from, wait)
    }

    /// What a failed read of chunk `name` means for the caller; a damaged or vanished chunk
    /// is forgotten.
    fn failed(&self, name: &ChunkName, e: ReadFailure) -> DiskRead {
        match e {
            ReadFailure::WouldBlock => return DiskRead::WouldBlock,
            ReadFailure::Damaged => {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %self.dir.path().join(name.rel()).display(), "disk cache chunk damaged; deleted and fetched again");
            }
            ReadFailure::Unreadable(e) => {
                tracing::debug!(path = %self.dir.path().join(name.rel()).display(), error = %e, "disk cache chunk unreadable");
            }
        }
        self.forget(name);
        self.misses.fetch_add(1, Ordering::Relaxed);
        DiskRead::Miss
    }

    /// The version (`size` bytes) is wanted whole (a handle that read it was closed): if every
    /// chunk of it is on disk, the writer makes its whole file now, else as its last chunk
    /// lands (`writer`: why not sooner).
    pub fn want_whole(&self, key: &Arc<str>, etag: &Arc<str>, size: u64) {
        if self.fits_whole(size) {
            // Wanted first, so a last chunk landing meanwhile finds it so.
            let name = VersionName::new(key, etag).whole();
            self.wanted.lock().unwrap().put(name, ());
            self.whole_if_complete(key, etag, size);
        }
    }

    /// If every chunk of the version (`size` bytes) is on disk and it has no whole file yet,
    /// the writer makes one (in the background). Asked at an open, for chunks a mount left or
    /// wrote before whole files were on. Whether it was complete (or whole already).
    pub fn whole_if_complete(&self, key: &Arc<str>, etag: &Arc<str>, size: u64) -> bool {
        if !self.fits_whole(size) {
            return false;
        }
        let v = VersionName::new(key, etag);
        {
            let g = self.index.lock().unwrap();
            if g.files.contains(&v.whole()) {
                return true;
            }
            if !(0..size.div_ceil(CHUNK)).all(|c| g.files.contains(&v.chunk(c))) {
                return false;
            }
        }
        let job = Job {
            name: v.whole(),
            key: key.clone(),
            etag: etag.clone(),
            len: size,
            size,
        };
        self.enqueue(job);
        true
    }

    /// Whole files are on and a version of `size` bytes may be one.
    fn fits_whole(&self, size: u64) -> bool {
        self.whole_files.load(Ordering::Relaxed) && size <= self.whole_limit() && size > 0
    }

    /// The chunks of the version (`size` bytes) not on disk, if it may be a whole file and has
    /// none yet (those the writer dropped because their blocks left memory first).
    pub fn missing_chunks(&self, key: &str, etag: &str, size: u64) -> Vec<u64> {
        if !self.fits_whole(size) {
            return Vec::new();
        }
        let v = VersionName::new(key, etag);
        let g = self.index.lock().unwrap();
        if g.files.contains(&v.whole()) {
            return Vec::new();
        }
        (0..size.div_ceil(CHUNK))
            .filter(|c| !g.files.contains(&v.chunk(*c)))
            .collect()
    }

    /// Whether the version `v` is wanted whole (`want_whole`).
    fn is_wanted(&self, v: &VersionName) -> bool {
        self.wanted.lock().unwrap().contains(&v.whole())
    }

    /// The version `v` is whole now, or never will be: no longer wanted.
    fn not_wanted(&self, v: &VersionName) {
        self.wanted.lock().unwrap().pop(&v.whole());
    }

    /// Hand `job` to the writer; false when its queue is full. Counted before it is sent, so
    /// the writer never takes one off before it was added.
    fn enqueue(&self, job: Job) -> bool {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.backlog.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Keep chunk `index` of the version (`len` bytes, all of it in the block cache now),
    /// written in the background. Dropped when the writer is far behind or paused.
    /// The version is `size` bytes long.
    pub fn store(&self, key: &Arc<str>, etag: &Arc<str>, size: u64, index: u64, len: u64) {
        if self.has(key, etag, index) || self.paused() {
            return;
        }
        let job = Job {
            name: ChunkName::new(key, etag, index),
            key: key.clone(),
            etag: etag.clone(),
            len,
            size,
        };
        if !self.enqueue(job) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn paused(&self) -> bool {
        let mut p = self.paused_until.lock().unwrap();
        match *p {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *p = None;
                false
            }
            None => false,
        }
    }

    fn forget(&self, name: &ChunkName) {
        let mut g = self.index.lock().unwrap();
        if let Some(k) = g.files.pop(name) {
            g.bytes -= k.size;
        }
        drop(g);
        self.open.lock().unwrap().pop(name);
        self.open_whole.lock().unwrap().pop(name);
        let _ = self.dir.remove_file(&name.rel());
    }

    /// Delete least recently used chunks until the cache fits its size.
    fn evict(&self) {
        while self.index.lock().unwrap().bytes > self.cap {
            if self.evict_one().is_none() {
                return;
            }
        }
    }

    /// Before writing a chunk file of `more` bytes: delete least recently used chunks until
    /// the write leaves the filesystem's reserve free (`space`). False when the cache holds
    /// too little to make room: the chunk is not to be written.
    fn make_room(&self, more: u64) -> bool {
        let Ok(space) = Space::of(&self.lock) else {
            return true; // the filesystem does not say: the cap alone bounds the cache
        };
        let mut need = space.shortfall(more);
        while need > 0 {
            match self.evict_one() {
                Some(freed) => need = need.saturating_sub(freed),
                None => return false,
            }
        }
        true
    }

    /// Delete the least recently used chunk; its size, or None when the cache is empty.
    fn evict_one(&self) -> Option<u64> {
        let (victim, size) = {
            let mut g = self.index.lock().unwrap();
            let (name, k) = g.files.pop_lru()?;
            g.bytes -= k.size;
            (name, k.size)
        };
        self.open.lock().unwrap().pop(&victim);
        self.open_whole.lock().unwrap().pop(&victim);
        let _ = self.dir.remove_file(&victim.rel());
        Some(size)
    }
}

/// Chunk files to keep open: `OPEN_FILES`, or a quarter of the descriptors this process
/// may open if that is less.
fn open_files_allowed() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        1024
    };
    OPEN_FILES.min(soft / 4).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Chunks "in memory", by index.
    struct Fixed(Mutex<HashMap<u64, Vec<Bytes>>>);

    impl ChunkSource for Fixed {
        fn chunk_blocks(&self, chunk: &ChunkOf<'_>) -> Option<Vec<Bytes>> {
            self.0.lock().unwrap().get(&chunk.index).cloned()
        }
    }

    /// `c` with a source of its own; `put` stores a chunk through it.
    fn with_source(c: &Arc<DiskCache>) -> Arc<Fixed> {
        let src = Arc::new(Fixed(Mutex::new(HashMap::new())));
        let dyn_src: Arc<dyn ChunkSource> = src.clone();
        c.set_source(Arc::downgrade(&dyn_src));
        src
    }

    fn put(c: &DiskCache, src: &Fixed, k: &Arc<str>, e: &Arc<str>, index: u64, b: Vec<Bytes>) {
        src.0.lock().unwrap().insert(index, b);
        c.store(k, e, 8 * CHUNK, index, CHUNK);
    }

    fn blocks(seed: u8) -> Vec<Bytes> {
        (0..16)
            .map(|i| Bytes::from(vec![seed.wrapping_add(i); 64 * 1024]))
            .collect()
    }

    fn wait_written(c: &DiskCache, n: u64) {
        for _ in 0..500 {
            if c.stats().written >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("chunk not written");
    }

    #[test]
    fn chunks_survive_reopening_and_are_keyed_by_etag() {
        let root = tempfile::tempdir().unwrap();
        let (k, e1): (Arc<str>, Arc<str>) = (Arc::from("a/b"), Arc::from("\"e1\""));
        {
            let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).unwrap();
            assert!(
                DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).is_err(),
                "one mount per directory"
            );
            let src = with_source(&c);
            put(&c, &src, &k, &e1, 3, blocks(7));
            wait_written(&c, 1);
        }
        let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).unwrap();
        let got = c
            .load("a/b", "\"e1\"", 3, CHUNK, 0..16)
            .expect("kept across reopening");
        assert_eq!(got, blocks(7));
        let some = c.load("a/b", "\"e1\"", 3, CHUNK, 5..7).unwrap();
        assert_eq!(some, blocks(7)[5..7].to_vec());
        assert!(
            c.load("a/b", "\"e2\"", 3, CHUNK, 0..1).is_none(),
            "another version"
        );
        assert!(
            c.load("a/b", "\"e1\"", 4, CHUNK, 0..1).is_none(),
            "another chunk"
        );
        let mode = std::fs::metadata(root.path().join("m")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
    }

    #[test]
    fn a_damaged_chunk_is_never_served() {
        let root = tempfile::tempdir().unwrap();
        let (k, e): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("e"));
        let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).unwrap();
        let src = with_source(&c);
        put(&c, &src, &k, &e, 0, blocks(1));
        wait_written(&c, 1);
        let path = c.dir.path().join(ChunkName::new("k", "e", 0).rel());
        let mut raw = std::fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 10] ^= 0xff;
        std::fs::write(&path, &raw).unwrap();
        assert!(
            c.load("k", "e", 0, CHUNK, 0..1).is_some(),
            "block 0 is intact"
        );
        assert!(
            c.load("k", "e", 0, CHUNK, 15..16).is_none(),
            "block 15 is not"
        );
        assert!(!path.exists(), "deleted");
        assert_eq!(c.stats().corrupt, 1);
    }

    #[test]
    fn least_recently_used_chunks_go_first() {
        let root = tempfile::tempdir().unwrap();
        let (k, e): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("e"));
        let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(3 * CHUNK + 1024)).unwrap();
        let src = with_source(&c);
        for i in 0..3 {
            put(&c, &src, &k, &e, i, blocks(i as u8));
            wait_written(&c, i + 1);
        }
        assert!(
            c.load("k", "e", 0, CHUNK, 0..1).is_some(),
            "chunk 0 used again"
        );
        put(&c, &src, &k, &e, 3, blocks(3));
        wait_written(&c, 4);
        assert!(c.has("k", "e", 0) && c.has("k", "e", 2) && c.has("k", "e", 3));
        assert!(!c.has("k", "e", 1), "the least recently used went");
        assert!(c.stats().bytes <= 3 * CHUNK + 1024);
    }

    /// `read`, retried with `wait` when the page cache does not hold the bytes.
    fn read(c: &DiskCache, size: u64, offset: u64, end: u64) -> Option<Bytes> {
        for wait in [false, true] {
            match c.read("k", "e", size, offset, end, wait) {
                DiskRead::Hit(b) => return Some(b),
                DiskRead::Miss => return None,
                DiskRead::WouldBlock => assert!(!wait, "a waiting read never says WouldBlock"),
            }
        }
        None
    }

    #[test]
    fn reads_span_chunks_and_a_damaged_one_is_a_miss_and_deleted() {
        let root = tempfile::tempdir().unwrap();
        let (k, e): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("e"));
        let all: Vec<u8> = [blocks(1), blocks(2)]
            .iter()
            .flatten()
            .flat_map(|b| b.to_vec())
            .collect();
        let size = 2 * CHUNK;
        {
            let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).unwrap();
            let src = with_source(&c);
            put(&c, &src, &k, &e, 0, blocks(1));
            put(&c, &src, &k, &e, 1, blocks(2));
            wait_written(&c, 2);
            let (from, to) = (CHUNK - 5000, CHUNK + 3000);
            assert_eq!(
                read(&c, size, from, to).unwrap(),
                all[from as usize..to as usize]
            );
            assert!(
                read(&c, 3 * CHUNK, 2 * CHUNK, 2 * CHUNK + 1).is_none(),
                "not on disk"
            );
            assert_eq!(c.stats().hits, 1);
        }
        // Damage chunk 1 between mounts: a remount checks each block on its first read.
        let path = root
            .path()
            .join("m")
            .join(ChunkName::new("k", "e", 1).rel());
        let mut raw = std::fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 0x55;
        std::fs::write(&path, &raw).unwrap();
        let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(8 * CHUNK)).unwrap();
        assert_eq!(read(&c, size, 0, 4096).unwrap(), all[..4096]);
        assert!(read(&c, size, 2 * CHUNK - 4096, 2 * CHUNK).is_none());
        assert!(!path.exists() && !c.has("k", "e", 1), "deleted");
        assert_eq!(c.stats().corrupt, 1);
        assert!(c.has("k", "e", 0), "the intact chunk stays");
    }

    #[test]
    fn a_complete_version_becomes_one_whole_file_served_by_every_read_path() {
        let root = tempfile::tempdir().unwrap();
        let (k, e): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("e"));
        let size = 2 * CHUNK;
        let all: Vec<u8> = [blocks(1), blocks(2)]
            .iter()
            .flatten()
            .flat_map(|b| b.to_vec())
            .collect();
        {
            let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(16 * CHUNK)).unwrap();
            assert!(c.set_whole_files(true), "the test directory keeps xattrs");
            let src = with_source(&c);
            // Complete, and not asked for: it stays as chunks (the readers that fetched it may
            // still run).
            for (i, b) in [blocks(1), blocks(2)].into_iter().enumerate() {
                src.0.lock().unwrap().insert(i as u64, b);
                c.store(&k, &e, size, i as u64, CHUNK);
            }
            wait_written(&c, 2);
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(c.stats().whole, 0, "made only when wanted");
            // Wanted before its last chunk lands (a reader closed early): made as it lands.
            let k2: Arc<str> = Arc::from("k2");
            src.0.lock().unwrap().insert(0, blocks(1));
            c.store(&k2, &e, size, 0, CHUNK);
            wait_written(&c, 3);
            c.want_whole(&k2, &e, size);
            assert_eq!(c.stats().whole, 0, "not complete yet");
            src.0.lock().unwrap().insert(1, blocks(2));
            c.store(&k2, &e, size, 1, CHUNK);
            for _ in 0..500 {
                if c.stats().whole == 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(c.stats().whole, 1, "made as its last chunk landed");
            assert!(c.has_whole("k2", "e") && !c.has_whole("k", "e"));
            // Wanted when complete: made now.
            c.want_whole(&k, &e, size);
            for _ in 0..500 {
                if c.stats().whole == 2 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(c.stats().whole, 2);
            assert_eq!(
                c.stats().bytes,
                2 * size,
                "the chunks are gone: one copy each"
            );
            assert!(c.has_whole("k", "e") && c.has("k", "e", 1));
            let f = c.whole("k", "e", size).expect("the whole file");
            assert_eq!(
                std::fs::read(format!("/proc/self/fd/{}", {
                    use std::os::fd::AsRawFd;
                    f.as_raw_fd()
                }))
                .unwrap(),
                all
            );
            assert!(
                c.whole("k", "e", size + 1).is_none(),
                "another size is not it"
            );
        }
        // A remount reads it through `read` and `load` (checked once), also without whole files
        // being made.
        let c = DiskCache::open(&root.path().join("m"), DiskSize::Bytes(16 * CHUNK)).unwrap();
        let (from, to) = (CHUNK - 100, CHUNK + 100);
        assert_eq!(
            read(&c, size, from, to).unwrap(),
            all[from as usize..to as usize]
        );
        assert_eq!(
            c.load("k", "e", 1, CHUNK, 3..5).unwrap(),
            blocks(2)[3..5].to_vec()
        );
    }
}
