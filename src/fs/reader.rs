//! Reading one open object version: ranged GETs pinned with `If-Match`, through the block cache.
//!
//! - A handle reads the version (ETag) it saw at open. Every GET sends `If-Match`, and blocks
//!   are cached under key + ETag, so a reader never mixes two versions: if the object is
//!   replaced, blocks already cached still serve the old version and a block that must be
//!   fetched fails with EIO ("changed while open", logged).
//! - Random reads fetch only the blocks they touch. Once a handle has made
//!   `RANDOM_BEFORE_WHOLE` non-sequential reads of an object that fits in half the cache, the
//!   rest of the object is fetched in the background (GETs of up to `FETCH_CHUNK`, after the
//!   demand blocks, only into free room, picked up again by later reads where room ran out), so
//!   random reads of it soon come from memory. Larger objects keep fetching only what is read.
//! - Sequential reads (each read starting near where the last ended) open a prefetch window
//!   that starts at 1 MiB and doubles on every read that keeps the pattern, up to a cap; the
//!   window is fetched ahead in GETs of up to `FETCH_CHUNK`, several in flight. Prefetch only
//!   uses cache room that is free, so it never pushes the cache over its budget.
//! - A fetch whose connection is cut mid-body resumes from the first incomplete block (a few
//!   times); a demand read whose blocks still fail (EIO, or ETIMEDOUT of an older fetch) is
//!   retried once with a fresh GET, within the operation's budget.
//! - The version a handle reads can move while it is open (`relocate`): a rename of the file
//!   moves it to the new key (and the copy's ETag), a rename over it to a copy on local disk
//!   (`kept`). Blocks stay identified by the version the handle opened, so cached blocks
//!   keep serving; only fetches go to the new place.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::cos::{ByteRange, CosError, GetOptions, ObjectStore};

use super::cache::{self, BlockCache, BlockId, Lookup, Reservation, BLOCK_SIZE};
use super::error::{BlockFailure, FsError, FsResult};
use super::kept::KeptCopy;
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
}

/// What a read asks to fetch beyond its own blocks.
enum Ahead {
    /// The sequential window.
    Window(u64, u64),
    /// The rest of an object that fits the cache, once reads of it keep jumping around.
    Whole(u64, u64),
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
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
    source: Mutex<Source>,
    seq: Mutex<SeqState>,
    /// When a read of this handle last ran out of time (see `timeouts`).
    pub timed_out: Echo,
}

impl ObjectReader {
    pub fn new(key: &str, etag: &str, size: u64) -> Self {
        let (key, etag): (Arc<str>, Arc<str>) = (Arc::from(key), Arc::from(etag));
        ObjectReader {
            source: Mutex::new(Source::Cos {
                key: key.clone(),
                etag: etag.clone(),
            }),
            key,
            etag,
            size,
            seq: Mutex::new(SeqState {
                next: 0,
                window: INITIAL_WINDOW,
                prefetched_until: 0,
                random_reads: 0,
                whole_from: None,
            }),
            timed_out: Echo::default(),
        }
    }

    /// The COS object (key, ETag) this reader fetches from now, if it has bytes there.
    pub fn cos_version(&self) -> Option<(Arc<str>, Arc<str>, u64)> {
        match &*self.source.lock().unwrap() {
            Source::Cos { key, etag } if self.size > 0 => {
                Some((key.clone(), etag.clone(), self.size))
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
        BlockId {
            key: self.key.clone(),
            etag: self.etag.clone(),
            index,
        }
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the object).
    pub async fn read<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        offset: u64,
        len: u32,
    ) -> FsResult<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = self.size.min(offset + len as u64);
        let ahead = self.note_read(offset, end, cache.budget_bytes());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pending = self.start_demand(store, cache, offset, end).await;
            // After the demand blocks are claimed, so they are fetched first.
            match ahead.as_ref().filter(|_| attempt == 1) {
                Some(Ahead::Window(from, to)) => {
                    if let Some(at) = self.start_prefetch(store, cache, *from, *to) {
                        // No free room: forget the rest so a later read may prefetch it.
                        let mut s = self.seq.lock().unwrap();
                        s.prefetched_until = s.prefetched_until.min(at);
                    }
                }
                Some(Ahead::Whole(from, to)) => {
                    let stopped = self.start_prefetch(store, cache, *from, *to);
                    self.seq.lock().unwrap().whole_from = Some(stopped.unwrap_or(*to));
                }
                None => {}
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

    /// Update the access-pattern state; returns what to fetch ahead, if anything.
    fn note_read(&self, offset: u64, end: u64, budget: u64) -> Option<Ahead> {
        let mut s = self.seq.lock().unwrap();
        let sequential =
            offset >= s.next.saturating_sub(2 * MAX_REQUEST) && offset <= s.next + BLOCK_SIZE;
        if !sequential {
            s.window = INITIAL_WINDOW;
            s.next = end;
            s.prefetched_until = end;
            s.random_reads = s.random_reads.saturating_add(1);
            let from = s.whole_from.unwrap_or(0);
            if s.random_reads >= RANDOM_BEFORE_WHOLE && self.size <= budget / 2 && from < self.size
            {
                return Some(Ahead::Whole(from, self.size));
            }
            return None;
        }
        if end > s.next {
            if end / BLOCK_SIZE != s.next / BLOCK_SIZE {
                s.window = (s.window * 2).min(MAX_WINDOW).min(budget / 4);
            }
            s.next = end;
        }
        let target = self.size.min(end + s.window);
        let from = s.prefetched_until.max(end);
        if target <= from {
            return None;
        }
        s.prefetched_until = target;
        Some(Ahead::Window(from, target))
    }

    fn block_len(&self, index: u64) -> u64 {
        BLOCK_SIZE.min(self.size - index * BLOCK_SIZE)
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

    /// Start GETs for the blocks of `from..to` that are neither cached nor being fetched,
    /// as far as free cache room allows; where it stopped for lack of room, if it did.
    fn start_prefetch<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        from: u64,
        to: u64,
    ) -> Option<u64> {
        let chunk_blocks = ((FETCH_CHUNK / BLOCK_SIZE) as usize).min(cache.max_run());
        let (mut i, last) = (from / BLOCK_SIZE, (to - 1) / BLOCK_SIZE);
        while i <= last {
            let n = chunk_blocks.min((last - i + 1) as usize);
            let Some(mut room) = cache.try_reserve(n) else {
                return Some(i * BLOCK_SIZE);
            };
            let mut run = Vec::new();
            for j in i..i + n as u64 {
                if cache.claim(&self.id(j)) {
                    run.push(j);
                } else if !run.is_empty() {
                    let part = room.take(run.len()).expect("reserved room for the run");
                    self.spawn_fetch(store, cache, std::mem::take(&mut run), part);
                }
            }
            if !run.is_empty() {
                let part = room.take(run.len()).expect("reserved room for the run");
                self.spawn_fetch(store, cache, run, part);
            }
            i += n as u64;
        }
        None
    }

    /// GET the consecutive blocks `run` in one request; every block is completed or failed.
    /// A connection dropped mid-body is resumed from the first block not yet complete, up to
    /// `MAX_RESUMES` times; other failures (a timeout, a changed object) fail the rest.
    fn spawn_fetch<S: ObjectStore + ?Sized>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        run: Vec<u64>,
        room: Reservation,
    ) {
        let (store, cache) = (store.clone(), cache.clone());
        let (id_key, id_etag, size) = (self.key.clone(), self.etag.clone(), self.size);
        let lens: Vec<u64> = run.iter().map(|&i| self.block_len(i)).collect();
        let id = move |index| BlockId {
            key: id_key.clone(),
            etag: id_etag.clone(),
            index,
        };
        let (key, etag) = match self.source.lock().unwrap().clone() {
            Source::Cos { key, etag } => (key, etag),
            Source::Kept(copy) => return fill_from_copy(&copy, &cache, run, &lens, room, id),
        };
        tokio::spawn(async move {
            let end = size.min(run[0] * BLOCK_SIZE + lens.iter().sum::<u64>());
            let mut room = room;
            let mut done = 0usize;
            let mut resumes = 0;
            let failure = loop {
                let start = run[done] * BLOCK_SIZE;
                let opts = GetOptions {
                    range: Some(ByteRange::new(start, end)),
                    if_match: Some(etag.to_string()),
                    ..Default::default()
                };
                let mut body = match store.get_object(&key, &opts).await {
                    Err(e) => break Some(read_failure(&key, &e)),
                    Ok(out) if out.content_length != end - start => {
                        tracing::warn!(%key, got = out.content_length, want = end - start, "ranged GET returned the wrong length");
                        break Some(BlockFailure::WrongBody);
                    }
                    Ok(out) => out.body,
                };
                // One allocation per block, so that evicting a block frees its memory (a
                // block split off a larger buffer would keep all of it alive).
                let mut chunk = Bytes::new();
                let mut block = BytesMut::new();
                let failed = loop {
                    if done == run.len() {
                        break None;
                    }
                    let want = lens[done] as usize;
                    if block.capacity() < want {
                        block.reserve(want - block.len());
                    }
                    if chunk.is_empty() {
                        match body.next().await {
                            Some(Ok(c)) => chunk = c,
                            Some(Err(e)) => break Some(e),
                            None => {
                                break Some(CosError::Transport("object body ended early".into()))
                            }
                        }
                        continue;
                    }
                    let n = (want - block.len()).min(chunk.len());
                    block.extend_from_slice(&chunk.split_to(n));
                    if block.len() == want {
                        let full = std::mem::take(&mut block).freeze();
                        cache.complete(id(run[done]), full, room.take_one());
                        done += 1;
                    }
                };
                match failed {
                    None => break None,
                    Some(CosError::Transport(why)) if resumes < MAX_RESUMES => {
                        resumes += 1;
                        tracing::debug!(%key, why, from = run[done] * BLOCK_SIZE, "body cut off; resuming");
                    }
                    Some(e) => break Some(read_failure(&key, &e)),
                }
            };
            if let Some(failure) = failure {
                for &i in &run[done..] {
                    cache.fail(&id(i), failure);
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
        let first = offset / BLOCK_SIZE;
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
        if blocks.len() == 1 {
            let s = (offset - first * BLOCK_SIZE) as usize;
            let e = (end - first * BLOCK_SIZE) as usize;
            return Ok(blocks[0].slice(s..e.min(blocks[0].len())));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for (k, b) in blocks.iter().enumerate() {
            let block_start = (first + k as u64) * BLOCK_SIZE;
            let s = offset.saturating_sub(block_start) as usize;
            let e = ((end - block_start) as usize).min(b.len());
            out.extend_from_slice(&b[s.min(e)..e]);
        }
        Ok(out.freeze())
    }
}

/// Complete the blocks `run` from a local copy (plain `pread`s, as staging files are read).
fn fill_from_copy(
    copy: &KeptCopy,
    cache: &BlockCache,
    run: Vec<u64>,
    lens: &[u64],
    mut room: Reservation,
    id: impl Fn(u64) -> BlockId,
) {
    for (&i, &len) in run.iter().zip(lens) {
        let from = i * BLOCK_SIZE;
        match copy.read(from, from + len) {
            Ok(b) if b.len() as u64 == len => cache.complete(id(i), b, room.take_one()),
            Ok(_) => cache.fail(&id(i), BlockFailure::WrongBody),
            Err(e) => cache.fail(&id(i), BlockFailure::from_fs(&e)),
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
fn read_failure(key: &str, e: &crate::cos::CosError) -> BlockFailure {
    let why = BlockFailure::from_cos(e);
    if why == BlockFailure::Changed {
        tracing::warn!(%key, "object changed while open; the reader gets EIO (reopen to read the new version)");
    } else {
        tracing::warn!(%key, error = %e, "read failed");
    }
    why
}
