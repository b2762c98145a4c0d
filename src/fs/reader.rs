//! Reading one open object version: ranged GETs pinned with `If-Match`, through the block cache.
//!
//! - A handle reads the version (ETag) it saw at open. Every GET sends `If-Match`, and blocks
//!   are cached under key + ETag, so a reader never mixes two versions: if the object is
//!   replaced, blocks already cached still serve the old version and a block that must be
//!   fetched fails with EIO ("changed while open", logged).
//!   An appendable object is the exception: appends change its ETag but never the bytes a
//!   handle opened, so its GETs are not pinned; the answer must still be an appendable object
//!   at least that long.
//! - Random reads fetch only the blocks they touch. Once a handle has made
//!   `RANDOM_BEFORE_WHOLE` non-sequential reads of an object that fits in half the memory
//!   cache (or half the disk cache, when there is one), the rest of the object is fetched in
//!   the background (GETs of up to `FETCH_CHUNK`, after the demand blocks, only into free
//!   room; where room ran out or the disk cache's writer is behind, a task carries it on while
//!   the handle is open: `drive_whole`), so random reads of it soon come from memory or disk.
//! - Larger objects: a non-sequential read that is the third of a handle's last 16 to land
//!   in one 1 MiB region (aligned; the disk cache's chunk) also fetches the rest of that
//!   region in the background (one GET, after the demand blocks, only into free room). Reads
//!   with no locality (uniformly random over a big object, or a stride) fetch only what they
//!   read.
//! - Sequential reads (each read starting near where the last ended) open a prefetch window
//!   that starts at 1 MiB and doubles on every read that keeps the pattern, up to a cap; the
//!   window is fetched ahead in GETs of up to `FETCH_CHUNK`, several in flight. Prefetch only
//!   uses cache room that is free, so it never pushes the cache over its budget.
//! - A read whose bytes the disk cache has all of is served from it directly (not through
//!   the block cache), and fetches ahead skip the chunks it has. A fetch first takes what the
//!   disk cache has, then GETs the rest; every 1 MiB chunk whose blocks are all in memory
//!   after a GET is handed to the disk cache.
//! - A fetch whose connection is cut mid-body resumes from the first incomplete block (a few
//!   times); a demand read whose blocks still fail (EIO, or ETIMEDOUT of an older fetch) is
//!   retried once with a fresh GET, within the operation's budget.
//! - The version a handle reads can move while it is open (`relocate`): a rename of the file
//!   moves it to the new key (and the copy's ETag), a rename over it to a copy on local disk
//!   (`scratch::kept`). Blocks stay identified by the version the handle opened, so cached blocks
//!   keep serving; only fetches go to the new place.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::object::{ByteRange, CosError, GetOptions, ObjectStore};

use super::cache::{self, BlockCache, BlockId, Lookup, Reservation, BLOCK_SIZE};
use super::disk_cache::{ChunkOf, ChunkSource, DiskCache, DiskRead, CHUNK};
use super::error::{BlockFailure, FsError, FsResult};
use super::scratch::KeptCopy;
use super::timeouts::Echo;

const MIB: u64 = 1024 * 1024;
/// First prefetch window of a sequential reader.
const INITIAL_WINDOW: u64 = MIB;
/// Largest window (further limited to a quarter of the cache budget).
const MAX_WINDOW: u64 = 64 * MIB;
/// Largest single prefetch GET: big enough to amortise a request, small enough that several
/// run in parallel inside a window.
const FETCH_CHUNK: u64 = 8 * MIB;
/// Largest request the kernel sends (max_read), used to tolerate reordered async reads.
const MAX_REQUEST: u64 = MIB;
/// Non-sequential reads of one handle after which an object that fits in half the cache is
/// fetched whole in the background.
const RANDOM_BEFORE_WHOLE: u32 = 4;
/// Non-sequential reads remembered to judge locality.
const LOCALITY_WINDOW: usize = 16;
/// A read fetches the rest of its region when this many of the remembered reads were in it:
/// the third read of a region within 16 reads. Uniformly random reads of a big object, or a
/// stride that visits each region once or twice, stay below it and fetch only what they read.
const REGION_READS_BEFORE: usize = 2;
/// How often a stopped whole-object fetch tries again, and how many tries without progress
/// it makes (10 s) before waiting for the next random read.
const WHOLE_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
const WHOLE_PATIENCE: u32 = 500;
/// How often one fetch picks up again after its connection was cut mid-body.
const MAX_RESUMES: u32 = 3;

#[derive(Debug)]
struct SeqState {
    /// Where the last read ended.
    next: u64,
    window: u64,
    /// Prefetch has been issued up to here (byte offset).
    prefetched_until: u64,
    /// Reads of this handle that did not follow the previous one.
    random_reads: u32,
    /// The whole-object background fetch has been issued up to here, once started.
    whole_from: Option<u64>,
    /// A task carries the whole-object fetch on (`drive_whole`).
    whole_driven: bool,
    /// The 1 MiB regions of the last `LOCALITY_WINDOW` non-sequential reads.
    recent: std::collections::VecDeque<u64>,
}

/// What a read asks to fetch beyond its own blocks.
enum Ahead {
    /// The sequential window.
    Window(u64, u64),
    /// The rest of an object that fits the cache, once reads of it keep jumping around.
    Whole(u64, u64),
    /// The rest of the aligned region (`CHUNK`) a read falls in, once non-sequential reads
    /// keep coming back to regions read shortly before.
    Region(u64, u64),
}

/// Where a reader's version is fetched from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An object on COS, every GET pinned to its ETag.
    Cos { key: Arc<str>, etag: Arc<str> },
    /// A copy on local disk of a version a rename replaced on COS.
    Kept(Arc<KeptCopy>),
}

pub struct ObjectReader {
    /// The version opened: what its blocks are cached under.
    version: Version,
    source: Mutex<Source>,
    seq: Mutex<SeqState>,
    /// When a read of this handle last ran out of time (see `timeouts`).
    pub timed_out: Echo,
    /// The version is an appendable object: appends elsewhere change its ETag but never its
    /// first `size` bytes, so GETs are not pinned to the ETag; an answer must still be an
    /// appendable object at least `size` long (else the object was replaced: "changed").
    appendable: bool,
}

impl ObjectReader {
    pub fn new(key: &str, etag: &str, size: u64) -> Self {
        let (key, etag): (Arc<str>, Arc<str>) = (Arc::from(key), Arc::from(etag));
        ObjectReader {
            source: Mutex::new(Source::Cos {
                key: key.clone(),
                etag: etag.clone(),
            }),
            version: Version { key, etag, size },
            seq: Mutex::new(SeqState {
                next: 0,
                window: INITIAL_WINDOW,
                prefetched_until: 0,
                random_reads: 0,
                whole_from: None,
                whole_driven: false,
                recent: Default::default(),
            }),
            timed_out: Echo::default(),
            appendable: false,
        }
    }

    /// A reader of the first `size` bytes of the appendable object `key` (as `etag` now).
    pub fn new_appendable(key: &str, etag: &str, size: u64) -> Self {
        ObjectReader {
            appendable: true,
            ..Self::new(key, etag, size)
        }
    }

    /// Whether this handle read (or fetched) its version to the end: sequentially, or by the
    /// whole-object background fetch.
    pub fn reached_end(&self) -> bool {
        let s = self.seq.lock().unwrap();
        s.next >= self.version.size || s.whole_from.is_some_and(|w| w >= self.version.size)
    }

    /// The COS object (key, ETag) this reader fetches from now, if it has bytes there.
    pub fn cos_version(&self) -> Option<(Arc<str>, Arc<str>, u64)> {
        match &*self.source.lock().unwrap() {
            Source::Cos { key, etag } if self.version.size > 0 => {
                Some((key.clone(), etag.clone(), self.version.size))
            }
            _ => None,
        }
    }

    /// Fetch from `to` from now on if the reader fetches from `key` as `etag` now.
    pub fn relocate(&self, key: &str, etag: &str, to: &Source) {
        let mut s = self.source.lock().unwrap();
        if matches!(&*s, Source::Cos { key: k, etag: e } if **k == *key && **e == *etag) {
            *s = to.clone();
        }
    }

    fn id(&self, index: u64) -> BlockId {
        self.version.id(index)
    }

    /// Exactly the bytes `range` of the object, into `out` (as long as the range); a body that
    /// ends early is `WrongLength`.
    pub async fn read_exact<S: ObjectStore + ?Sized + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        range: std::ops::Range<u64>,
        out: &mut [u8],
    ) -> FsResult<()> {
        let mut at = range.start;
        while at < range.end {
            let want = (range.end - at).min(u32::MAX as u64 / 2) as u32;
            let got = self.read(store, cache, at, want).await?;
            if got.is_empty() {
                return Err(FsError::WrongLength);
            }
            let i = (at - range.start) as usize;
            out[i..i + got.len()].copy_from_slice(&got);
            at += got.len() as u64;
        }
        Ok(())
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the object).
    pub async fn read<S: ObjectStore + ?Sized + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        offset: u64,
        len: u32,
    ) -> FsResult<Bytes> {
        if offset >= self.version.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = self.version.size.min(offset + len as u64);
        let mut ahead = self.note_read(
            offset,
            end,
            cache.budget_bytes(),
            cache.whole_object_limit(),
        );
        if let Some(b) = self.read_cached(cache, offset, end).await {
            self.fetch_ahead(store, cache, ahead);
            return Ok(b);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pending = self.start_demand(store, cache, offset, end).await;
            // After the demand blocks are claimed, so they are fetched first.
            if attempt == 1 {
                self.fetch_ahead(store, cache, ahead.take());
            }
            match self.assemble(pending, offset, end).await {
                Ok(b) => return Ok(b),
                // A fetch that failed may be an older one (a prefetch of a server that has
                // since recovered): one fresh GET. The caller's budget bounds the retry.
                Err(why) if why.worth_a_retry() && attempt < 2 => continue,
                Err(why) => return Err(FsError::Block(why)),
            }
        }
    }

    /// Bytes `offset..end` if a mount with a disk cache has them all in memory or all on disk
    /// (memory first: blocks just fetched by prefetch are there, and are on disk too once
    /// written). Without a disk cache, `start_demand` looks in memory.
    async fn read_cached(&self, cache: &BlockCache, offset: u64, end: u64) -> Option<Bytes> {
        cache.disk()?;
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        if let Some(blocks) = cache.all_ready((first..=last).map(|i| self.id(i))) {
            return Some(slice_blocks(&blocks, first, offset, end));
        }
        self.read_from_disk(cache, offset, end).await
    }

    /// Bytes `offset..end` from the disk cache, if all of them are there: read in place when
    /// the page cache holds them, else on the blocking pool.
    async fn read_from_disk(&self, cache: &BlockCache, offset: u64, end: u64) -> Option<Bytes> {
        let disk = cache.disk()?;
        let v = &self.version;
        match disk.read(&v.key, &v.etag, v.size, offset, end, false) {
            DiskRead::Hit(b) => Some(b),
            DiskRead::Miss => None,
            DiskRead::WouldBlock => {
                let (disk, v) = (disk.clone(), v.clone());
                let read = move || disk.read(&v.key, &v.etag, v.size, offset, end, true);
                match tokio::task::spawn_blocking(read).await {
                    Ok(DiskRead::Hit(b)) => Some(b),
                    _ => None,
                }
            }
        }
    }

    /// Start what `note_read` asked to fetch ahead.
    fn fetch_ahead<S: ObjectStore + ?Sized + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        ahead: Option<Ahead>,
    ) {
        match ahead {
            Some(Ahead::Window(from, to)) => {
                if let Some(at) = self.start_prefetch(store, cache, from, to) {
                    // No free room: forget the rest so a later read may prefetch it.
                    let mut s = self.seq.lock().unwrap();
                    s.prefetched_until = s.prefetched_until.min(at);
                }
            }
            // Not while the disk cache's writer is behind: what it would drop would only be
            // fetched again.
            Some(Ahead::Whole(from, to)) if !cache.disk().is_some_and(|d| d.busy()) => {
                let stopped = self.start_prefetch(store, cache, from, to);
                self.seq.lock().unwrap().whole_from = Some(stopped.unwrap_or(to));
                if stopped.is_some() {
                    self.drive_whole(store, cache);
                }
            }
            Some(Ahead::Whole(..)) => self.drive_whole(store, cache),
            Some(Ahead::Region(from, to)) => {
                self.start_prefetch(store, cache, from, to);
            }
            None => {}
        }
    }

    /// Carry a whole-object fetch that stopped (no free room, or the disk cache's writer
    /// behind) on in the background, so that it does not wait for the next random read: every
    /// `WHOLE_RETRY` while the handle is open, giving up after `WHOLE_PATIENCE` tries without
    /// progress (the next random read starts it again).
    fn drive_whole<S: ObjectStore + ?Sized + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
    ) {
        {
            let mut s = self.seq.lock().unwrap();
            if s.whole_driven {
                return;
            }
            s.whole_driven = true;
        }
        let (reader, store, cache) = (Arc::downgrade(self), store.clone(), cache.clone());
        tokio::spawn(async move {
            let mut idle = 0;
            while idle < WHOLE_PATIENCE {
                tokio::time::sleep(WHOLE_RETRY).await;
                let Some(r) = reader.upgrade() else { return };
                let from = r.seq.lock().unwrap().whole_from.unwrap_or(0);
                if from >= r.version.size {
                    break;
                }
                if cache.disk().is_some_and(|d| d.busy()) {
                    continue;
                }
                let stopped = r.start_prefetch(&store, &cache, from, r.version.size);
                let at = stopped.unwrap_or(r.version.size);
                r.seq.lock().unwrap().whole_from = Some(at);
                idle = if at > from { 0 } else { idle + 1 };
            }
            if let Some(r) = reader.upgrade() {
                r.seq.lock().unwrap().whole_driven = false;
            }
        });
    }

    /// Update the access-pattern state; returns what to fetch ahead, if anything.
    fn note_read(&self, offset: u64, end: u64, budget: u64, whole_limit: u64) -> Option<Ahead> {
        let mut s = self.seq.lock().unwrap();
        let sequential =
            offset >= s.next.saturating_sub(2 * MAX_REQUEST) && offset <= s.next + BLOCK_SIZE;
        if !sequential {
            s.window = INITIAL_WINDOW;
            s.next = end;
            s.prefetched_until = end;
            s.random_reads = s.random_reads.saturating_add(1);
            let from = s.whole_from.unwrap_or(0);
            if s.random_reads >= RANDOM_BEFORE_WHOLE
                && self.version.size <= whole_limit
                && from < self.version.size
            {
                return Some(Ahead::Whole(from, self.version.size));
            }
            let region = offset / CHUNK;
            let before = s.recent.iter().filter(|&&r| r == region).count();
            if s.recent.len() == LOCALITY_WINDOW {
                s.recent.pop_front();
            }
            s.recent.push_back(region);
            if before >= REGION_READS_BEFORE {
                return Some(Ahead::Region(
                    region * CHUNK,
                    self.version.size.min((region + 1) * CHUNK),
                ));
            }
            return None;
        }
        if end > s.next {
            if end / BLOCK_SIZE != s.next / BLOCK_SIZE {
                s.window = (s.window * 2).min(MAX_WINDOW).min(budget / 4);
            }
            s.next = end;
        }
        let target = self.version.size.min(end + s.window);
        let from = s.prefetched_until.max(end);
        if target <= from {
            return None;
        }
        s.prefetched_until = target;
        Some(Ahead::Window(from, target))
    }

    fn block_len(&self, index: u64) -> u64 {
        BLOCK_SIZE.min(self.version.size - index * BLOCK_SIZE)
    }

    /// Find or start the fetches of every block of `offset..end`; returns what to wait for.
    /// Safe to abandon at any await (a read past its deadline): blocks claimed but not yet
    /// handed to a fetch are failed by `Claims`, so no other reader waits on them forever.
    async fn start_demand<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        offset: u64,
        end: u64,
    ) -> Vec<Lookup> {
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        let mut out = Vec::new();
        let mut run = Claims {
            reader: self,
            cache,
            blocks: Vec::new(),
        };
        for i in first..=last {
            let id = self.id(i);
            let mut found = cache.lookup(&id);
            if matches!(found, Lookup::Missing) {
                if cache.claim(&id) {
                    run.blocks.push(i);
                    out.push(cache.lookup(&id));
                    if run.blocks.len() == cache.max_run() {
                        let room = cache.reserve(run.blocks.len()).await;
                        self.spawn_fetch(store, cache, run.take(), room);
                    }
                    continue;
                }
                found = cache.lookup(&id);
            }
            if !run.blocks.is_empty() {
                let room = cache.reserve(run.blocks.len()).await;
                self.spawn_fetch(store, cache, run.take(), room);
            }
            out.push(found);
        }
        if !run.blocks.is_empty() {
            let room = cache.reserve(run.blocks.len()).await;
            self.spawn_fetch(store, cache, run.take(), room);
        }
        out
    }

    /// Start GETs for the blocks of `from..to` that are neither cached (in memory or on disk)
    /// nor being fetched, as far as free cache room allows; where it stopped for lack of room,
    /// if it did. Blocks already there do not split a GET (see `spans`).
    fn start_prefetch<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        from: u64,
        to: u64,
    ) -> Option<u64> {
        let chunk_blocks = ((FETCH_CHUNK / BLOCK_SIZE) as usize).min(cache.max_run());
        let (mut i, last) = (from / BLOCK_SIZE, (to - 1) / BLOCK_SIZE);
        let v = &self.version;
        let per_chunk = CHUNK / BLOCK_SIZE;
        while i <= last {
            // Whole chunks the disk cache has are skipped, not read into memory.
            if cache
                .disk()
                .is_some_and(|d| d.has(&v.key, &v.etag, i / per_chunk))
            {
                i = (i / per_chunk + 1) * per_chunk;
                continue;
            }
            // A run stops at the next chunk the disk cache has.
            let mut n = chunk_blocks.min((last - i + 1) as usize);
            if let Some(d) = cache.disk() {
                let mut c = i / per_chunk + 1;
                while c * per_chunk < i + n as u64 {
                    if d.has(&v.key, &v.etag, c) {
                        n = (c * per_chunk - i) as usize;
                        break;
                    }
                    c += 1;
                }
            }
            let Some(mut room) = cache.try_reserve(n) else {
                return Some(i * BLOCK_SIZE);
            };
            let run: Vec<u64> = (i..i + n as u64)
                .filter(|&j| cache.claim(&self.id(j)))
                .collect();
            if !run.is_empty() {
                let part = room.take(run.len()).expect("reserved room for the run");
                self.spawn_fetch(store, cache, run, part);
            }
            i += n as u64;
        }
        None
    }

    /// Fetch the blocks `run` (ascending): from the disk cache where it has them, the rest in
    /// one GET per span (`spans`); every block is completed or failed. Chunks the GETs complete go to
    /// the disk cache. A connection dropped mid-body is resumed from the first block not yet
    /// complete, up to `MAX_RESUMES` times; other failures (a timeout, a changed object) fail
    /// the rest of the stretch.
    fn spawn_fetch<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        run: Vec<u64>,
        room: Reservation,
    ) {
        let (store, cache) = (store.clone(), cache.clone());
        let version = self.version.clone();
        let appendable = self.appendable;
        let blocks: Vec<(u64, u64)> = run.iter().map(|&i| (i, self.block_len(i))).collect();
        let (key, etag) = match self.source.lock().unwrap().clone() {
            Source::Cos { key, etag } => (key, etag),
            Source::Kept(copy) => return fill_from_copy(&copy, &cache, &blocks, room, &version),
        };
        tokio::spawn(async move {
            let mut room = room;
            let mut todo = blocks;
            if let Some(disk) = cache.disk().cloned() {
                todo = load_from_disk(&disk, &cache, &version, todo, &mut room).await;
            }
            for stretch in spans(&todo) {
                let from = CosVersion {
                    key: &key,
                    etag: &etag,
                    appendable,
                };
                get_blocks(&*store, &cache, from, &version, stretch, &mut room).await;
                if let Some(disk) = cache.disk() {
                    keep_chunks(disk, &cache, &version, stretch);
                }
            }
        });
    }

    async fn assemble(
        &self,
        pending: Vec<Lookup>,
        offset: u64,
        end: u64,
    ) -> Result<Bytes, BlockFailure> {
        let mut blocks = Vec::with_capacity(pending.len());
        for p in pending {
            let b = match p {
                Lookup::Ready(b) => b,
                Lookup::Pending(rx) => cache::wait(rx).await?,
                // Lost a race with an eviction between lookup and claim: refetch.
                Lookup::Missing => return Err(BlockFailure::Lost),
            };
            blocks.push(b);
        }
        Ok(slice_blocks(&blocks, offset / BLOCK_SIZE, offset, end))
    }
}

/// Bytes `offset..end` of consecutive blocks starting at block `first` (no copy when one
/// block holds them).
fn slice_blocks(blocks: &[Bytes], first: u64, offset: u64, end: u64) -> Bytes {
    if blocks.len() == 1 {
        let s = (offset - first * BLOCK_SIZE) as usize;
        let e = (end - first * BLOCK_SIZE) as usize;
        return blocks[0].slice(s..e.min(blocks[0].len()));
    }
    let mut out = BytesMut::with_capacity((end - offset) as usize);
    for (k, b) in blocks.iter().enumerate() {
        let block_start = (first + k as u64) * BLOCK_SIZE;
        let s = offset.saturating_sub(block_start) as usize;
        let e = ((end - block_start) as usize).min(b.len());
        out.extend_from_slice(&b[s.min(e)..e]);
    }
    out.freeze()
}

/// The object version a reader's blocks belong to (what they are cached under).
#[derive(Clone)]
struct Version {
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
}

impl Version {
    fn id(&self, index: u64) -> BlockId {
        BlockId {
            key: self.key.clone(),
            etag: self.etag.clone(),
            index,
        }
    }
}

/// Where GETs go: the object the reader fetches from now.
#[derive(Clone, Copy)]
struct CosVersion<'a> {
    key: &'a Arc<str>,
    etag: &'a Arc<str>,
    /// A prefix of an appendable object: not pinned to the ETag (see `ObjectReader`).
    appendable: bool,
}

/// Blocks a GET may read past (and drop) rather than split in two: 8 blocks, 512 KiB, take
/// about as long to transfer as another request's round trip over a 10 ms, 50 MiB/s link.
const MAX_GAP: u64 = 8;

/// `blocks` (index, length; ascending) split into spans one GET each: consecutive blocks, or
/// blocks with gaps of at most `MAX_GAP` blocks between them (the gap is read and dropped).
fn spans(blocks: &[(u64, u64)]) -> Vec<&[(u64, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=blocks.len() {
        if k == blocks.len() || blocks[k].0 > blocks[k - 1].0 + 1 + MAX_GAP {
            if k > start {
                out.push(&blocks[start..k]);
            }
            start = k;
        }
    }
    out
}

/// The chunk (of the disk cache) holding block `index`, and its length in an object of `size`.
fn chunk_of(index: u64, size: u64) -> (u64, u64) {
    let c = index * BLOCK_SIZE / CHUNK;
    (c, CHUNK.min(size - c * CHUNK))
}

/// Complete the blocks the disk cache has; returns the ones it does not.
async fn load_from_disk(
    disk: &Arc<DiskCache>,
    cache: &BlockCache,
    v: &Version,
    blocks: Vec<(u64, u64)>,
    room: &mut Reservation,
) -> Vec<(u64, u64)> {
    let mut rest = Vec::new();
    let mut k = 0;
    while k < blocks.len() {
        let (chunk, chunk_len) = chunk_of(blocks[k].0, v.size);
        let n = blocks[k..]
            .iter()
            .take_while(|(i, _)| chunk_of(*i, v.size).0 == chunk)
            .count();
        let group = &blocks[k..k + n];
        k += n;
        if !disk.has(&v.key, &v.etag, chunk) {
            rest.extend_from_slice(group);
            continue;
        }
        let (d, key, etag) = (disk.clone(), v.key.clone(), v.etag.clone());
        let per_chunk = CHUNK / BLOCK_SIZE;
        let wanted = group[0].0 - chunk * per_chunk..group[n - 1].0 - chunk * per_chunk + 1;
        let loaded =
            tokio::task::spawn_blocking(move || d.load(&key, &etag, chunk, chunk_len, wanted))
                .await
                .ok()
                .flatten();
        let Some(data) = loaded else {
            rest.extend_from_slice(group);
            continue;
        };
        for (&(i, _), block) in group.iter().zip(data) {
            cache.complete(v.id(i), block, room.take_one());
        }
    }
    rest
}

/// Name every chunk `stretch` touched to the disk cache if all its blocks are in memory.
fn keep_chunks(disk: &DiskCache, cache: &BlockCache, v: &Version, stretch: &[(u64, u64)]) {
    let per_chunk = CHUNK / BLOCK_SIZE;
    let (first, _) = chunk_of(stretch[0].0, v.size);
    let (last, _) = chunk_of(stretch[stretch.len() - 1].0, v.size);
    for chunk in first..=last {
        let (_, len) = chunk_of(chunk * per_chunk, v.size);
        let of = ChunkOf {
            key: &v.key,
            etag: &v.etag,
            index: chunk,
            len,
        };
        if cache.chunk_blocks(&of).is_some() {
            disk.store(&v.key, &v.etag, v.size, chunk, len);
        }
    }
}

/// One GET of the blocks `stretch` (ascending, maybe with gaps; see `spawn_fetch`).
async fn get_blocks<S: ObjectStore + ?Sized>(
    store: &S,
    cache: &BlockCache,
    from: CosVersion<'_>,
    v: &Version,
    stretch: &[(u64, u64)],
    room: &mut Reservation,
) {
    let key = from.key;
    let (last, last_len) = stretch[stretch.len() - 1];
    let end = v.size.min(last * BLOCK_SIZE + last_len);
    let mut done = 0usize;
    let mut resumes = 0;
    let failure = loop {
        let start = stretch[done].0 * BLOCK_SIZE;
        let opts = GetOptions {
            range: Some(ByteRange::new(start, end)),
            if_match: (!from.appendable).then(|| from.etag.to_string()),
            ..Default::default()
        };
        let mut body = match store.get_object(key, &opts).await {
            Err(e) => break Some(read_failure(key, &e)),
            Ok(out) if from.appendable && !(out.meta.appendable && out.meta.size >= v.size) => {
                tracing::warn!(%key, "an appendable object was replaced while open");
                break Some(BlockFailure::Changed);
            }
            Ok(out) if out.content_length != end - start => {
                tracing::warn!(%key, got = out.content_length, want = end - start, "ranged GET returned the wrong length");
                break Some(BlockFailure::WrongBody);
            }
            Ok(out) => out.body,
        };
        // One allocation per block, so that evicting a block frees its memory (a block split
        // off a larger buffer would keep all of it alive).
        let mut chunk = Bytes::new();
        let mut block = BytesMut::new();
        // Object offset of the first byte of `chunk`.
        let mut at = start;
        let failed = loop {
            if done == stretch.len() {
                break None;
            }
            let (index, want) = (stretch[done].0, stretch[done].1 as usize);
            if chunk.is_empty() {
                match body.next().await {
                    Some(Ok(c)) => chunk = c,
                    Some(Err(e)) => break Some(e),
                    None => break Some(CosError::Transport("object body ended early".into())),
                }
                continue;
            }
            let block_start = index * BLOCK_SIZE;
            if at < block_start {
                // A gap: bytes of blocks that are cached already.
                let skip = (block_start - at).min(chunk.len() as u64) as usize;
                let _ = chunk.split_to(skip);
                at += skip as u64;
                continue;
            }
            if block.capacity() < want {
                block.reserve(want - block.len());
            }
            let n = (want - block.len()).min(chunk.len());
            block.extend_from_slice(&chunk.split_to(n));
            at += n as u64;
            if block.len() == want {
                let full = std::mem::take(&mut block).freeze();
                cache.complete(v.id(index), full, room.take_one());
                done += 1;
            }
        };
        match failed {
            None => break None,
            Some(CosError::Transport(why)) if resumes < MAX_RESUMES => {
                resumes += 1;
                tracing::debug!(%key, why, from = stretch[done].0 * BLOCK_SIZE, "body cut off; resuming");
            }
            Some(e) => break Some(read_failure(key, &e)),
        }
    };
    if let Some(failure) = failure {
        for &(i, _) in &stretch[done..] {
            cache.fail(&v.id(i), failure);
        }
    }
}

/// Complete `blocks` from a local copy (plain `pread`s, as staging files are read).
fn fill_from_copy(
    copy: &KeptCopy,
    cache: &BlockCache,
    blocks: &[(u64, u64)],
    mut room: Reservation,
    v: &Version,
) {
    for &(i, len) in blocks {
        let from = i * BLOCK_SIZE;
        match copy.read(from, from + len) {
            Ok(b) if b.len() as u64 == len => cache.complete(v.id(i), b, room.take_one()),
            Ok(_) => cache.fail(&v.id(i), BlockFailure::WrongBody),
            Err(e) => cache.fail(&v.id(i), BlockFailure::from_fs(&e)),
        }
    }
}

/// Blocks a reader claimed and has not handed to a fetch yet.
struct Claims<'a> {
    reader: &'a ObjectReader,
    cache: &'a BlockCache,
    blocks: Vec<u64>,
}

impl Claims<'_> {
    /// The claimed run, now owned by a fetch.
    fn take(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.blocks)
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        for &i in &self.blocks {
            self.cache.fail(&self.reader.id(i), BlockFailure::TimedOut);
        }
    }
}

/// Why a failed GET fails the reader; a changed object is logged as such.
fn read_failure(key: &str, e: &crate::object::CosError) -> BlockFailure {
    let why = BlockFailure::from_cos(e);
    if why == BlockFailure::Changed {
        tracing::warn!(%key, "object changed while open; the reader gets EIO (reopen to read the new version)");
    } else {
        tracing::warn!(%key, error = %e, "read failed");
    }
    why
}
