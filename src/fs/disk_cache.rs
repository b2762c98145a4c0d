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
//! - Integrity: the header holds the CRC-64 of each 64 KiB block, so a load reads and checks
//!   only the blocks it wants (a random 4 KiB read does not read a whole chunk). A chunk whose
//!   header or a checksum does not match (a torn write after a crash, bit rot, a file edited by
//!   hand) is deleted and fetched again, never served. Files are written to a temporary name
//!   and renamed.
//! - Off the read path: complete chunks are named to one writer thread through a queue; when
//!   their turn comes the writer takes their blocks from the block cache (`ChunkSource`), so
//!   the queue holds no data and no memory outside the budget. A chunk evicted from memory
//!   before its turn is skipped (counted as dropped). Loads are file reads done on the
//!   blocking pool by the fetch that wanted the blocks.
//! - Size: at most `--disk-cache-size` of chunk files, least recently used evicted first. The
//!   order survives remounts through the files' mtimes (the first hit of a chunk in a mount
//!   sets its mtime).
//! - Failures degrade, never fail reads: a directory that cannot be made or locked means no
//!   disk cache (a warning at mount); a write error (a full disk, a removed directory) stops
//!   writing for a minute with a warning; a load error is a miss.
//! - Privacy: the mount's directory is `DIR/<mount id>` with mode 0700 and files 0600, locked
//!   with `flock` so that two mounts never share one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lru::LruCache;
use sha1::{Digest, Sha1};

use crate::cos::integrity::crc64;

use super::cache::BLOCK_SIZE;

/// Bytes per chunk file.
pub const CHUNK: u64 = 1024 * 1024;
const MAGIC: &[u8; 8] = b"COSFSDC1";
/// Chunks waiting for the writer thread at most (names only).
const QUEUE: usize = 1024;
/// Chunks waiting past which background fetches hold back: 32 MiB of blocks the writer has
/// yet to copy out of memory before the block cache evicts them.
const BUSY: usize = 32;
/// How long writing stays off after a write error.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(60);

/// One chunk of one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ChunkName {
    version: [u8; 20],
    index: u64,
}

impl ChunkName {
    fn new(key: &str, etag: &str, index: u64) -> Self {
        let mut h = Sha1::new();
        h.update(key.as_bytes());
        h.update([0]);
        h.update(etag.as_bytes());
        ChunkName {
            version: h.finalize().into(),
            index,
        }
    }

    fn file_name(&self) -> String {
        format!("{}-{:x}", hex::encode(self.version), self.index)
    }

    fn parse(name: &str) -> Option<ChunkName> {
        let (v, i) = name.split_once('-')?;
        let mut version = [0u8; 20];
        hex::decode_to_slice(v, &mut version).ok()?;
        Some(ChunkName {
            version,
            index: u64::from_str_radix(i, 16).ok()?,
        })
    }

    fn subdir(&self) -> String {
        hex::encode(&self.version[..1])
    }
}

struct Job {
    name: ChunkName,
    key: Arc<str>,
    etag: Arc<str>,
    len: u64,
}

/// Where the writer takes a chunk's bytes from when its turn comes (the block cache).
pub trait ChunkSource: Send + Sync {
    /// The blocks of chunk `index` (`len` bytes) of the version, in order, if all of them
    /// are in memory.
    fn chunk_blocks(
        &self,
        key: &Arc<str>,
        etag: &Arc<str>,
        index: u64,
        len: u64,
    ) -> Option<Vec<Bytes>>;
}

/// A chunk file the index knows.
struct Known {
    size: u64,
    /// Its mtime was set by this mount (the LRU order kept on disk).
    touched: bool,
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
}

pub struct DiskCache {
    dir: PathBuf,
    cap: u64,
    index: Mutex<Index>,
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
    /// Held for the cache's lifetime: the directory is this mount's alone.
    _lock: File,
}

impl DiskCache {
    /// The cache in `dir` (one mount's own directory), holding at most `cap` bytes: made if
    /// missing, cleaned of unfinished writes, and its index read from the files.
    pub fn open(dir: &Path, cap: u64) -> Result<Arc<DiskCache>, String> {
        let dir = dir.to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join(".lock"))
            .map_err(|e| format!("cannot open {}: {e}", dir.join(".lock").display()))?;
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
                dir.display()
            ));
        }
        let mut found = scan(&dir);
        found.sort_by_key(|(_, _, mtime)| *mtime);
        let mut index = Index {
            files: LruCache::unbounded(),
            bytes: 0,
        };
        for (name, size, _) in found {
            index.files.push(
                name,
                Known {
                    size,
                    touched: false,
                },
            );
            index.bytes += size;
        }
        let (tx, rx) = sync_channel(QUEUE);
        let cache = Arc::new(DiskCache {
            dir,
            cap,
            index: Mutex::new(index),
            queue: tx,
            source: std::sync::OnceLock::new(),
            backlog: AtomicUsize::new(0),
            paused_until: Mutex::new(None),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            _lock: lock,
        });
        cache.evict();
        let weak = Arc::downgrade(&cache);
        std::thread::Builder::new()
            .name("disk-cache".into())
            .spawn(move || writer(weak, rx))
            .map_err(|e| format!("cannot start the disk cache writer: {e}"))?;
        Ok(cache)
    }

    pub fn cap(&self) -> u64 {
        self.cap
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
        }
    }

    /// Whether chunk `index` of the version is on disk (an index lookup, no I/O).
    pub fn has(&self, key: &str, etag: &str, index: u64) -> bool {
        let name = ChunkName::new(key, etag, index);
        self.index.lock().unwrap().files.contains(&name)
    }

    fn path(&self, name: &ChunkName) -> PathBuf {
        self.dir.join(name.subdir()).join(name.file_name())
    }

    /// Whether the writer is behind: background fetches should wait for it.
    pub fn busy(&self) -> bool {
        self.backlog.load(Ordering::Relaxed) >= BUSY
    }

    /// Blocks `blocks` (indexes within the chunk) of chunk `index` of the version, whose
    /// length is `len`, if the chunk is on disk and those blocks are intact (blocking I/O). A
    /// damaged chunk is deleted.
    pub fn load(
        &self,
        key: &str,
        etag: &str,
        index: u64,
        len: u64,
        blocks: std::ops::Range<u64>,
    ) -> Option<Vec<Bytes>> {
        let name = ChunkName::new(key, etag, index);
        let touch = match self.index.lock().unwrap().files.get_mut(&name) {
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(k) => !std::mem::replace(&mut k.touched, true),
        };
        let path = self.path(&name);
        let got = File::open(&path)
            .map_err(|e| tracing::debug!(path = %path.display(), error = %e, "disk cache chunk unreadable"))
            .ok()
            .and_then(|f| read_blocks(&f, key, etag, index, len, blocks));
        let Some(got) = got else {
            if path.exists() {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path.display(), "disk cache chunk damaged; deleted and fetched again");
            }
            self.forget(&name);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        if touch {
            if let Ok(f) = File::options().write(true).open(&path) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
        Some(got)
    }

    /// Keep chunk `index` of the version (`len` bytes, all of it in the block cache now),
    /// written in the background. Dropped when the writer is far behind or paused.
    pub fn store(&self, key: &Arc<str>, etag: &Arc<str>, index: u64, len: u64) {
        let name = ChunkName::new(key, etag, index);
        if self.index.lock().unwrap().files.contains(&name) || self.paused() {
            return;
        }
        let job = Job {
            name,
            key: key.clone(),
            etag: etag.clone(),
            len,
        };
        match self.queue.try_send(job) {
            Ok(()) => {
                self.backlog.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
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
        let _ = std::fs::remove_file(self.path(name));
    }

    /// Delete least recently used chunks until the cache fits its size.
    fn evict(&self) {
        loop {
            let victim = {
                let mut g = self.index.lock().unwrap();
                if g.bytes <= self.cap {
                    return;
                }
                match g.files.pop_lru() {
                    Some((name, k)) => {
                        g.bytes -= k.size;
                        name
                    }
                    None => return,
                }
            };
            let _ = std::fs::remove_file(self.path(&victim));
        }
    }

    fn write(&self, job: &Job, blocks: &[Bytes]) -> std::io::Result<u64> {
        let sub = self.dir.join(job.name.subdir());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&sub)?;
        let data_len: usize = blocks.iter().map(Bytes::len).sum();
        let head = header(
            &job.key,
            &job.etag,
            job.name.index,
            data_len as u64,
            blocks.iter().map(|b| crc64(b)),
        );
        let name = job.name.file_name();
        let tmp = sub.join(format!("{name}.tmp"));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = (|| {
            f.write_all(&head)?;
            for b in blocks {
                f.write_all(b)?;
            }
            std::fs::rename(&tmp, sub.join(&name))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok((head.len() + data_len) as u64)
    }
}

/// A chunk file's header: what it holds, and the CRC-64 of each block.
fn header(key: &str, etag: &str, index: u64, len: u64, crcs: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(64 + key.len() + etag.len() + 128);
    head.extend_from_slice(MAGIC);
    for field in [key.as_bytes(), etag.as_bytes()] {
        head.extend_from_slice(&(field.len() as u32).to_le_bytes());
        head.extend_from_slice(field);
    }
    head.extend_from_slice(&index.to_le_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    for c in crcs {
        head.extend_from_slice(&c.to_le_bytes());
    }
    head
}

/// Blocks `blocks` of the chunk file `f`, if its header names chunk `index` of this version
/// with `len` bytes, and the blocks read match their checksums.
fn read_blocks(
    f: &File,
    key: &str,
    etag: &str,
    index: u64,
    len: u64,
    blocks: std::ops::Range<u64>,
) -> Option<Vec<Bytes>> {
    let n = len.div_ceil(BLOCK_SIZE);
    let expect = header(key, etag, index, len, (0..n).map(|_| 0));
    let mut head = vec![0u8; expect.len()];
    f.read_exact_at(&mut head, 0).ok()?;
    let crc_at = expect.len() - 8 * n as usize;
    if head[..crc_at] != expect[..crc_at] || f.metadata().ok()?.len() != head.len() as u64 + len {
        return None;
    }
    let mut out = Vec::with_capacity((blocks.end - blocks.start) as usize);
    for b in blocks {
        let at = b * BLOCK_SIZE;
        let want = BLOCK_SIZE.min(len.checked_sub(at)?) as usize;
        let data = read_at(f, head.len() as u64 + at, want)?;
        let c = crc_at + 8 * b as usize;
        let want = u64::from_le_bytes(head[c..c + 8].try_into().expect("8 bytes"));
        if crc64(&data) != want {
            return None;
        }
        out.push(Bytes::from(data));
    }
    Some(out)
}

/// `n` bytes of `f` at `at`, read into fresh memory without zeroing it first.
fn read_at(mut f: &File, at: u64, n: usize) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(at)).ok()?;
    let mut data = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut data).ok()?;
    (data.len() == n).then_some(data)
}

/// Chunk files under `dir` with their sizes and mtimes; unfinished writes are deleted.
fn scan(dir: &Path) -> Vec<(ChunkName, u64, SystemTime)> {
    let mut out = Vec::new();
    let Ok(subs) = std::fs::read_dir(dir) else {
        return out;
    };
    for sub in subs.flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            let file_name = f.file_name();
            let name = file_name.to_string_lossy();
            match (ChunkName::parse(&name), f.metadata()) {
                (Some(c), Ok(m)) if m.is_file() => {
                    out.push((c, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                }
                _ if name.ends_with(".tmp") => {
                    let _ = std::fs::remove_file(f.path());
                }
                _ => {}
            }
        }
    }
    out
}

/// The writer thread: until the cache is gone, write queued chunks and keep the size.
fn writer(cache: std::sync::Weak<DiskCache>, jobs: Receiver<Job>) {
    let mut warned = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let Some(cache) = cache.upgrade() else {
            return;
        };
        cache.backlog.fetch_sub(1, Ordering::Relaxed);
        if cache.paused() || cache.index.lock().unwrap().files.contains(&job.name) {
            continue;
        }
        let source = cache.source.get().and_then(std::sync::Weak::upgrade);
        let blocks =
            source.and_then(|s| s.chunk_blocks(&job.key, &job.etag, job.name.index, job.len));
        let Some(blocks) = blocks else {
            cache.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match cache.write(&job, &blocks) {
            Ok(size) => {
                let mut g = cache.index.lock().unwrap();
                g.files.push(
                    job.name,
                    Known {
                        size,
                        touched: true,
                    },
                );
                g.bytes += size;
                drop(g);
                cache.written.fetch_add(1, Ordering::Relaxed);
                cache.evict();
            }
            Err(e) => {
                *cache.paused_until.lock().unwrap() = Some(Instant::now() + PAUSE_AFTER_ERROR);
                let kind = e.raw_os_error().unwrap_or(0);
                if warned.insert(kind, ()).is_none() {
                    tracing::warn!(dir = %cache.dir.display(), error = %e, "cannot write to the disk cache; reads go on without it, writing is retried in a minute");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks "in memory", by index.
    struct Fixed(Mutex<HashMap<u64, Vec<Bytes>>>);

    impl ChunkSource for Fixed {
        fn chunk_blocks(
            &self,
            _: &Arc<str>,
            _: &Arc<str>,
            index: u64,
            _: u64,
        ) -> Option<Vec<Bytes>> {
            self.0.lock().unwrap().get(&index).cloned()
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
        c.store(k, e, index, CHUNK);
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
            let c = DiskCache::open(&root.path().join("m"), 8 * CHUNK).unwrap();
            assert!(
                DiskCache::open(&root.path().join("m"), 8 * CHUNK).is_err(),
                "one mount per directory"
            );
            let src = with_source(&c);
            put(&c, &src, &k, &e1, 3, blocks(7));
            wait_written(&c, 1);
        }
        let c = DiskCache::open(&root.path().join("m"), 8 * CHUNK).unwrap();
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
        let c = DiskCache::open(&root.path().join("m"), 8 * CHUNK).unwrap();
        let src = with_source(&c);
        put(&c, &src, &k, &e, 0, blocks(1));
        wait_written(&c, 1);
        let path = c.path(&ChunkName::new("k", "e", 0));
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
        let c = DiskCache::open(&root.path().join("m"), 3 * CHUNK + 1024).unwrap();
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
}
