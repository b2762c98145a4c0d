//! The shared block cache of the read path.
//!
//! - Objects are read in fixed blocks (`BLOCK_SIZE`), identified by key + ETag + index, so a
//!   block of one object version can never be served for another.
//! - A block is either ready (in an `lru::LruCache`) or pending (a GET is filling it; readers
//!   wait on a `watch` channel). A block is fetched by one GET however many readers want it.
//! - Memory: ready blocks plus blocks being fetched never exceed the cache's size
//!   (`--cache-size`), and every block is charged to the mount's memory budget (`memory`), one
//!   unit per block, from the moment its fetch reserves room until it is evicted.
//! - A fetch reserves room for its blocks before it starts (`reserve`, waiting; prefetch uses
//!   `try_reserve`, never waiting, and leaving a quarter of the in-flight room to demand
//!   reads). Reserving evicts least-recently-used ready blocks until
//!   ready + in flight fits the cache's size, and again while the budget has no free units
//!   (writers hold them). At most half of the cache may be in flight, so a burst of readers
//!   cannot wipe out every cached block. In-flight room is a fair semaphore whose permits
//!   fetches always return, so waiting readers cannot deadlock.
//! - Writers that need units make the cache give back its least-recently-used blocks
//!   (`Shed`).
//! - Lock order: the one `Mutex` is a leaf; it is never held across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;

use super::disk_cache::{ChunkOf, ChunkSource, DiskCache, CHUNK};
use super::error::BlockFailure;
use super::memory::{MemoryBudget, Shed};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub use super::block::BLOCK_SIZE;

/// Smallest budget: 4 MiB, so that one reader's largest request (1 MiB) fits in flight.
const MIN_BLOCKS: usize = (4 * 1024 * 1024 / BLOCK_SIZE) as usize;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockId {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

/// The result a pending block resolves to: its bytes, or why its fetch failed.
pub type BlockResult = Result<Bytes, BlockFailure>;

pub enum Lookup {
    Ready(Bytes),
    Pending(watch::Receiver<Option<BlockResult>>),
    Missing,
}

/// A cached block and its unit of the memory budget.
struct Ready {
    data: Bytes,
    _unit: OwnedSemaphorePermit,
}

struct Inner {
    ready: LruCache<BlockId, Ready>,
    ready_bytes: u64,
    pending: HashMap<BlockId, watch::Sender<Option<BlockResult>>>,
}

pub struct BlockCache {
    inner: Mutex<Inner>,
    /// Blocks that may be in flight at once (one permit each).
    in_flight: Arc<Semaphore>,
    in_flight_cap: usize,
    budget: u64,
    memory: Arc<MemoryBudget>,
    /// The persistent tier under this one, if the mount has one.
    disk: Option<Arc<DiskCache>>,
    /// Lookups answered from memory, and lookups that had to wait for or start a fetch.
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Room for `n` blocks being fetched (in-flight room and memory units); give one back per
/// block with `take_one`.
pub struct Reservation {
    flight: OwnedSemaphorePermit,
    units: OwnedSemaphorePermit,
}

impl Reservation {
    /// Split off the room of one block (dropped when that block is stored or fails).
    pub fn take_one(&mut self) -> Option<Reservation> {
        self.take(1)
    }

    /// Split off the room of `n` blocks.
    pub fn take(&mut self, n: usize) -> Option<Reservation> {
        if self.flight.num_permits() < n {
            return None;
        }
        Some(Reservation {
            flight: self.flight.split(n)?,
            units: self.units.split(n)?,
        })
    }
}

impl BlockCache {
    /// A cache holding at most `budget_bytes` (at least `MIN_BLOCKS` blocks), charging its
    /// blocks to `memory` (and shedding blocks when writers need units).
    pub fn new(budget_bytes: u64, memory: Arc<MemoryBudget>) -> Arc<Self> {
        Self::with_disk(budget_bytes, memory, None)
    }

    /// Such a cache over the disk cache `disk`.
    pub fn with_disk(
        budget_bytes: u64,
        memory: Arc<MemoryBudget>,
        disk: Option<Arc<DiskCache>>,
    ) -> Arc<Self> {
        let blocks =
            ((budget_bytes.min(memory.limit_bytes()) / BLOCK_SIZE) as usize).max(MIN_BLOCKS);
        let cache = Arc::new(BlockCache {
            inner: Mutex::new(Inner {
                ready: LruCache::unbounded(),
                ready_bytes: 0,
                pending: HashMap::new(),
            }),
            in_flight: Arc::new(Semaphore::new(blocks / 2)),
            in_flight_cap: blocks / 2,
            budget: blocks as u64 * BLOCK_SIZE,
            memory: memory.clone(),
            disk,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        });
        let shed: Arc<dyn Shed> = cache.clone();
        memory.set_shedder(Arc::downgrade(&shed));
        if let Some(d) = &cache.disk {
            let source: Arc<dyn ChunkSource> = cache.clone();
            d.set_source(Arc::downgrade(&source));
        }
        cache
    }

    pub fn disk(&self) -> Option<&Arc<DiskCache>> {
        self.disk.as_ref()
    }

    /// Largest object a random reader fetches whole in the background: half of what the
    /// memory cache or the disk cache holds, whichever is more.
    pub fn whole_object_limit(&self) -> u64 {
        (self.budget / 2).max(self.disk.as_ref().map_or(0, |d| d.cap() / 2))
    }

    /// Bytes of blocks being fetched now.
    pub fn fetching_bytes(&self) -> u64 {
        (self.in_flight_cap - self.in_flight.available_permits()) as u64 * BLOCK_SIZE
    }

    pub fn budget_bytes(&self) -> u64 {
        self.budget
    }

    /// Most blocks one fetch may reserve.
    pub fn max_run(&self) -> usize {
        self.in_flight_cap
    }

    /// Bytes held by ready blocks.
    pub fn ready_bytes(&self) -> u64 {
        self.inner.lock().unwrap().ready_bytes
    }

    /// (hits, misses) of `lookup` so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The blocks `ids`, if every one of them is ready (counted as hits only then).
    pub fn all_ready(&self, ids: impl Iterator<Item = BlockId>) -> Option<Vec<Bytes>> {
        let mut g = self.inner.lock().unwrap();
        let blocks: Vec<Bytes> = ids
            .map(|id| g.ready.get(&id).map(|b| b.data.clone()))
            .collect::<Option<_>>()?;
        self.hits.fetch_add(blocks.len() as u64, Ordering::Relaxed);
        Some(blocks)
    }

    pub fn lookup(&self, id: &BlockId) -> Lookup {
        let mut g = self.inner.lock().unwrap();
        if let Some(b) = g.ready.get(id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Ready(b.data.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        match g.pending.get(id) {
            Some(tx) => Lookup::Pending(tx.subscribe()),
            None => Lookup::Missing,
        }
    }

    /// Mark `id` pending unless it is already ready or pending; true if the caller now owns
    /// its fetch and must later call `complete` or `fail`.
    pub fn claim(&self, id: &BlockId) -> bool {
        let mut g = self.inner.lock().unwrap();
        if g.ready.contains(id) || g.pending.contains_key(id) {
            return false;
        }
        g.pending.insert(id.clone(), watch::channel(None).0);
        true
    }

    /// Wait for room for `n` blocks (`n <= max_run()`).
    pub async fn reserve(&self, n: usize) -> Reservation {
        let n = n.clamp(1, self.in_flight_cap) as u32;
        let flight = self
            .in_flight
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("never closed");
        self.make_room();
        let units = self.memory.take_units_waiting(n).await;
        Reservation { flight, units }
    }

    /// Room for `n` blocks if it is free now and a quarter of the in-flight room stays free
    /// for demand reads (prefetch never waits, and never crowds out a read that waits).
    pub fn try_reserve(&self, n: usize) -> Option<Reservation> {
        let n = n.clamp(1, self.in_flight_cap) as u32;
        if self.in_flight.available_permits() < n as usize + self.in_flight_cap / 4 {
            return None;
        }
        let flight = self.in_flight.clone().try_acquire_many_owned(n).ok()?;
        self.make_room();
        let units = self.memory.take_units_now(n)?;
        Some(Reservation { flight, units })
    }

    /// Evict ready blocks until ready + in flight fits the cache's size.
    fn make_room(&self) {
        let in_flight = (self.in_flight_cap - self.in_flight.available_permits()) as u64;
        let mut g = self.inner.lock().unwrap();
        while g.ready_bytes + in_flight * BLOCK_SIZE > self.budget {
            match g.ready.pop_lru() {
                Some((_, b)) => g.ready_bytes -= b.data.len() as u64,
                None => break,
            }
        }
    }

    /// A claimed block arrived: make it ready and wake its waiters. Its in-flight room is
    /// given back and its memory unit stays with it; without room (a kept copy read in
    /// place), it is handed to the waiters but not cached.
    pub fn complete(&self, id: BlockId, data: Bytes, room: Option<Reservation>) {
        let tx = {
            let mut g = self.inner.lock().unwrap();
            if let Some(room) = room {
                g.ready_bytes += data.len() as u64;
                let entry = Ready {
                    data: data.clone(),
                    _unit: room.units,
                };
                if let Some((old_id, old)) = g.ready.push(id.clone(), entry) {
                    if old_id == id {
                        g.ready_bytes -= old.data.len() as u64;
                    }
                }
            }
            g.pending.remove(&id)
        };
        if let Some(tx) = tx {
            let _ = tx.send(Some(Ok(data)));
        }
    }

    /// A claimed block's fetch failed: wake its waiters with why.
    pub fn fail(&self, id: &BlockId, why: BlockFailure) {
        let tx = self.inner.lock().unwrap().pending.remove(id);
        if let Some(tx) = tx {
            let _ = tx.send(Some(Err(why)));
        }
    }
}

impl Shed for BlockCache {
    fn shed(&self, units: u32) -> u32 {
        let mut g = self.inner.lock().unwrap();
        let mut freed = 0;
        while freed < units {
            let Some((_, b)) = g.ready.pop_lru() else {
                break;
            };
            g.ready_bytes -= b.data.len() as u64;
            freed += 1;
        }
        freed
    }
}

impl ChunkSource for BlockCache {
    fn chunk_blocks(&self, chunk: &ChunkOf<'_>) -> Option<Vec<Bytes>> {
        let ChunkOf {
            key,
            etag,
            index,
            len,
        } = *chunk;
        let first = index * (CHUNK / BLOCK_SIZE);
        let g = self.inner.lock().unwrap();
        (first..first + len.div_ceil(BLOCK_SIZE))
            .map(|i| {
                let id = BlockId {
                    key: key.clone(),
                    etag: etag.clone(),
                    index: i,
                };
                g.ready.peek(&id).map(|r| r.data.clone())
            })
            .collect()
    }
}

/// Wait for a pending block (a fetch that vanished without an answer is `Lost`).
pub async fn wait(mut rx: watch::Receiver<Option<BlockResult>>) -> BlockResult {
    match rx.wait_for(|v| v.is_some()).await {
        Ok(v) => v.clone().expect("checked is_some"),
        Err(_) => Err(BlockFailure::Lost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> BlockId {
        BlockId {
            key: Arc::from("k"),
            etag: Arc::from("e"),
            index: i,
        }
    }

    fn block() -> Bytes {
        Bytes::from(vec![0u8; BLOCK_SIZE as usize])
    }

    #[tokio::test]
    async fn budget_bounds_ready_and_in_flight() {
        let blocks = MIN_BLOCKS as u64;
        let c = BlockCache::new(blocks * BLOCK_SIZE, MemoryBudget::new(1 << 30, 1 << 20));
        for i in 0..blocks * 2 {
            assert!(c.claim(&id(i)));
            let mut r = c.reserve(1).await;
            let one = r.take_one();
            c.complete(id(i), block(), one);
            assert!(c.ready_bytes() <= blocks * BLOCK_SIZE);
        }
        assert!(matches!(c.lookup(&id(blocks * 2 - 1)), Lookup::Ready(_)));
        assert!(matches!(c.lookup(&id(0)), Lookup::Missing), "evicted");
        // Reserving half the budget in flight evicts ready blocks down to the other half.
        let held = c.reserve(c.max_run()).await;
        assert!(c.ready_bytes() <= blocks / 2 * BLOCK_SIZE);
        assert!(c.try_reserve(1).is_none(), "in-flight room is exhausted");
        drop(held);
        assert!(c.try_reserve(1).is_some());
    }

    #[tokio::test]
    async fn blocks_are_charged_to_the_memory_budget_and_shed_for_writers() {
        use super::super::memory::{WriteUseKind, UNIT};
        let memory = MemoryBudget::new(16 << 20, 4 << 20);
        let c = BlockCache::new(16 << 20, memory.clone());
        for i in 0..128 {
            assert!(c.claim(&id(i)));
            let mut r = c.reserve(1).await;
            let one = r.take_one();
            c.complete(id(i), block(), one);
        }
        assert_eq!(memory.used_bytes(), 128 * UNIT);
        // A writer wanting 12 MiB makes the cache give back its oldest blocks.
        let w = memory.charge_waiting(12 << 20, WriteUseKind::Buffer).await;
        assert_eq!(c.ready_bytes(), 4 << 20);
        assert!(
            matches!(c.lookup(&id(0)), Lookup::Missing),
            "oldest evicted"
        );
        assert!(matches!(c.lookup(&id(127)), Lookup::Ready(_)));
        // The cache cannot take the writer's units: a prefetch gets nothing, a demand read
        // evicts the cache's own blocks.
        assert!(memory.used_bytes() == 16 << 20);
        let r = c.reserve(4).await;
        drop(r);
        drop(w);
        assert_eq!(memory.used_bytes(), c.ready_bytes());
    }

    #[tokio::test]
    async fn waiters_get_the_bytes_or_the_error() {
        let c = BlockCache::new(64 * BLOCK_SIZE, MemoryBudget::new(1 << 30, 1 << 20));
        assert!(c.claim(&id(1)));
        assert!(!c.claim(&id(1)), "one fetch per block");
        let Lookup::Pending(rx) = c.lookup(&id(1)) else {
            panic!("pending")
        };
        c.complete(id(1), Bytes::from_static(b"abc"), None);
        assert_eq!(wait(rx).await.unwrap(), Bytes::from_static(b"abc"));
        assert!(c.claim(&id(2)));
        let Lookup::Pending(rx) = c.lookup(&id(2)) else {
            panic!("pending")
        };
        c.fail(&id(2), BlockFailure::Changed);
        assert_eq!(wait(rx).await, Err(BlockFailure::Changed));
        assert!(c.claim(&id(2)), "a failed block can be fetched again");
    }
}
