//! One memory budget for the whole mount (`--memory-limit`).
//!
//! - Everything large the mount holds in memory is charged here, in 64 KiB units: the block
//!   cache (ready blocks and blocks being fetched, prefetch and whole-object fetches included),
//!   the buffers of files being written, and upload parts until COS has taken them (streamed
//!   parts and the parts a staged file's commit reads back from disk).
//! - The units are one fair semaphore. The block cache holds at most `--cache-size` of them;
//!   writers hold at most the limit minus a floor kept for readers (`reader_floor`), so a
//!   reader can always make progress however many files are being written, and writers can
//!   always make progress however much is cached.
//! - A writer that finds no free units asks the cache to give back least-recently-used blocks
//!   (`Shed`), then waits: backpressure, never a failure. The cache, for its own fetches,
//!   evicts its own blocks first and otherwise waits (demand reads) or skips (prefetch).
//! - What is not charged is the fixed overhead the README states: request buffers of the FUSE
//!   threads, the bytes of reads and writes being copied to and from the kernel, HTTP
//!   connection buffers and the allocator's own slack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What of `--memory-limit` the budget hands out: the limit minus a sixteenth of it (4 to
/// 64 MiB), kept for memory that comes and goes with each request and is not charged: the
/// bytes of a FUSE write request until they are taken in, a read's reply while it is copied
/// to the kernel, HTTP connection buffers, the allocator's lag in handing freed pages back.
/// Measured with 32 readers then 32 writers under the 512 MiB default, that was 65-72 MiB
/// beyond a budget of the whole limit (577-584 MiB peak RSS).
pub fn budget_for_limit(limit_bytes: u64) -> u64 {
    limit_bytes.saturating_sub((limit_bytes / 16).clamp(4 << 20, 64 << 20))
}

/// Accounting granularity (the block cache's block size).
pub const UNIT: u64 = 64 * 1024;
/// Smallest limit: room for the smallest cache and a few parts being written.
pub const MIN_LIMIT: u64 = 16 * 1024 * 1024;
/// Smallest budget (what a `MIN_LIMIT` leaves, rounded down).
const MIN_BUDGET: u64 = 8 * 1024 * 1024;
/// How long a writer waits for units before asking the cache to shed again.
const RECHECK: Duration = Duration::from_millis(20);
/// Units shed for writers after which freed heap memory is handed back to the system (4 MiB),
/// at most once per `TRIM_EVERY`.
const TRIM_AFTER: u64 = 64;
const TRIM_EVERY: Duration = Duration::from_millis(50);

/// Something holding units it can give back on demand (the block cache).
pub trait Shed: Send + Sync {
    /// Release up to `units` units; returns how many were released.
    fn shed(&self, units: u32) -> u32;
}

/// What writers hold now, for `cosfs stats`.
#[derive(Debug, Default)]
struct WriteUse {
    /// Bytes of files written but not yet cut into parts.
    buffered: AtomicU64,
    /// Bytes of parts handed to an upload and not yet acknowledged.
    uploading: AtomicU64,
}

pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total: u32,
    /// Most units writers may hold together.
    writes: Arc<Semaphore>,
    write_cap: u32,
    shedder: OnceLock<Weak<dyn Shed>>,
    use_by: WriteUse,
    /// Units shed since the last trim, and when that was.
    shed_since_trim: AtomicU64,
    last_trim: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What a writer's charge is for (shown separately in the stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteUseKind {
    Buffer,
    Upload,
}

impl MemoryBudget {
    /// A budget of `limit_bytes` (at least `MIN_BUDGET`) of which readers keep `reader_floor`.
    pub fn new(limit_bytes: u64, reader_floor: u64) -> Arc<Self> {
        let total = (limit_bytes.max(MIN_BUDGET) / UNIT).min(u32::MAX as u64 / 2) as u32;
        let floor = (reader_floor / UNIT).clamp(1, total as u64 / 2) as u32;
        let write_cap = total - floor;
        Arc::new(MemoryBudget {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
            writes: Arc::new(Semaphore::new(write_cap as usize)),
            write_cap,
            shedder: OnceLock::new(),
            use_by: WriteUse::default(),
            shed_since_trim: AtomicU64::new(0),
            last_trim: std::sync::Mutex::new(None),
        })
    }

    /// Who gives back units when writers need them (set once, by the block cache).
    pub fn set_shedder(&self, s: Weak<dyn Shed>) {
        let _ = self.shedder.set(s);
    }

    pub fn limit_bytes(&self) -> u64 {
        self.total as u64 * UNIT
    }

    /// Most bytes writers may hold together.
    pub fn write_cap_bytes(&self) -> u64 {
        self.write_cap as u64 * UNIT
    }

    /// Bytes charged now, by anyone.
    pub fn used_bytes(&self) -> u64 {
        (self.total as u64 - self.units.available_permits() as u64) * UNIT
    }

    /// (write buffers, parts uploading) in bytes.
    pub fn write_use(&self) -> (u64, u64) {
        (
            self.use_by.buffered.load(Ordering::Relaxed),
            self.use_by.uploading.load(Ordering::Relaxed),
        )
    }

    /// Units for `bytes` if they are free now, after asking the cache to shed.
    pub fn try_charge(self: &Arc<Self>, bytes: u64, kind: WriteUseKind) -> Option<WriteCharge> {
        let n = self.units_for(bytes);
        let w = self.writes.clone().try_acquire_many_owned(n).ok()?;
        let u = self.take_units_now(n)?;
        Some(self.charge(w, u, bytes, kind))
    }

    /// Units for `bytes`, waiting for them (asking the cache to shed while waiting). A charge
    /// larger than writers may ever hold is clamped to what they may.
    pub async fn charge_waiting(self: &Arc<Self>, bytes: u64, kind: WriteUseKind) -> WriteCharge {
        let n = self.units_for(bytes);
        let w = self
            .writes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("never closed");
        let u = self.take_units_waiting(n).await;
        self.charge(w, u, bytes, kind)
    }

    fn units_for(&self, bytes: u64) -> u32 {
        (bytes.div_ceil(UNIT) as u32).clamp(1, self.write_cap)
    }

    /// `n` units of the shared pool if they are free now, after asking the cache to shed.
    pub(super) fn take_units_now(&self, n: u32) -> Option<OwnedSemaphorePermit> {
        if let Ok(u) = self.units.clone().try_acquire_many_owned(n) {
            return Some(u);
        }
        let short = n.saturating_sub(self.units.available_permits() as u32);
        if let Some(cache) = self.shedder.get().and_then(Weak::upgrade) {
            let freed = cache.shed(short);
            self.after_shed(freed);
        }
        self.units.clone().try_acquire_many_owned(n).ok()
    }

    /// Cached blocks are small heap allocations, and write buffers are mapped afresh: the heap
    /// room blocks leave is not what buffers reuse, and glibc keeps it. Measured with 32
    /// readers then 32 writers under the 512 MiB default, the peak RSS was 644 MiB before
    /// freed heap pages were handed back here.
    fn after_shed(&self, freed: u32) {
        let since = self
            .shed_since_trim
            .fetch_add(freed as u64, Ordering::Relaxed)
            + freed as u64;
        if since < TRIM_AFTER {
            return;
        }
        let mut last = self.last_trim.lock().unwrap();
        if last.is_some_and(|t| t.elapsed() < TRIM_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.shed_since_trim.store(0, Ordering::Relaxed);
        drop(last);
        release_freed_heap();
    }

    /// `n` units of the shared pool, waiting for them. Blocks finishing their fetch keep
    /// their units as cached blocks, so a waiter asks the cache to shed again every `RECHECK`.
    pub(super) async fn take_units_waiting(&self, n: u32) -> OwnedSemaphorePermit {
        let n = n.min(self.total);
        loop {
            if let Some(u) = self.take_units_now(n) {
                return u;
            }
            let wait = self.units.clone().acquire_many_owned(n);
            if let Ok(u) = tokio::time::timeout(RECHECK, wait).await {
                return u.expect("never closed");
            }
        }
    }

    fn charge(
        self: &Arc<Self>,
        w: OwnedSemaphorePermit,
        u: OwnedSemaphorePermit,
        bytes: u64,
        kind: WriteUseKind,
    ) -> WriteCharge {
        let c = WriteCharge {
            budget: self.clone(),
            writes: Some(w),
            units: Some(u),
            bytes: 0,
            kind,
        };
        c.with_bytes(bytes)
    }

    fn counter(&self, kind: WriteUseKind) -> &AtomicU64 {
        match kind {
            WriteUseKind::Buffer => &self.use_by.buffered,
            WriteUseKind::Upload => &self.use_by.uploading,
        }
    }
}

/// Units a writer holds; given back when dropped.
pub struct WriteCharge {
    budget: Arc<MemoryBudget>,
    writes: Option<OwnedSemaphorePermit>,
    units: Option<OwnedSemaphorePermit>,
    /// The bytes this charge stands for (shown in the stats).
    bytes: u64,
    kind: WriteUseKind,
}

impl WriteCharge {
    fn with_bytes(mut self, bytes: u64) -> Self {
        self.budget
            .counter(self.kind)
            .fetch_add(bytes, Ordering::Relaxed);
        self.bytes = bytes;
        self
    }

    /// Bytes this charge has room for.
    pub fn room(&self) -> u64 {
        self.units.as_ref().map_or(0, |u| u.num_permits() as u64) * UNIT
    }

    /// Take in `more` (same budget).
    pub fn absorb(&mut self, mut more: WriteCharge) {
        merge(&mut self.writes, more.writes.take());
        merge(&mut self.units, more.units.take());
        let b = std::mem::take(&mut more.bytes);
        self.budget
            .counter(more.kind)
            .fetch_sub(b, Ordering::Relaxed);
        self.set_bytes(self.bytes + b);
    }

    /// Say how many bytes the charge now stands for (at most its room).
    pub fn set_bytes(&mut self, bytes: u64) {
        let c = self.budget.counter(self.kind);
        c.fetch_sub(self.bytes, Ordering::Relaxed);
        c.fetch_add(bytes, Ordering::Relaxed);
        self.bytes = bytes;
    }

    /// Split off the units of `bytes` (rounded up; at most what is held) as a charge of
    /// `kind`; the rest stays here.
    pub fn split(&mut self, bytes: u64, kind: WriteUseKind) -> WriteCharge {
        let held = self.units.as_ref().map_or(0, |u| u.num_permits());
        let n = (bytes.div_ceil(UNIT) as usize).min(held);
        let take = |p: &mut Option<OwnedSemaphorePermit>| match p {
            Some(p) if n == p.num_permits() => None,
            Some(p) => p.split(n),
            None => None,
        };
        let (w, u) = if n == held {
            (self.writes.take(), self.units.take())
        } else {
            (take(&mut self.writes), take(&mut self.units))
        };
        let moved = bytes.min(self.bytes);
        self.set_bytes(self.bytes - moved);
        let c = WriteCharge {
            budget: self.budget.clone(),
            writes: w,
            units: u,
            bytes: 0,
            kind,
        };
        c.with_bytes(moved)
    }

    /// Give back the units beyond what `bytes` needs.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = bytes.div_ceil(UNIT) as usize;
        let held = self.units.as_ref().map_or(0, |u| u.num_permits());
        if held > keep {
            drop(self.split((held - keep) as u64 * UNIT, self.kind));
            self.set_bytes(bytes.min(self.room()));
        }
    }
}

fn merge(into: &mut Option<OwnedSemaphorePermit>, more: Option<OwnedSemaphorePermit>) {
    match (into.as_mut(), more) {
        (Some(p), Some(m)) => p.merge(m),
        (None, m) => *into = m,
        (_, None) => {}
    }
}

impl Drop for WriteCharge {
    fn drop(&mut self) {
        self.budget
            .counter(self.kind)
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Hand free heap pages back to the system (glibc keeps them otherwise).
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const MIB: u64 = 1024 * 1024;

    /// A shedder holding units, giving them back on demand.
    struct Held(Mutex<Vec<OwnedSemaphorePermit>>);

    impl Shed for Held {
        fn shed(&self, units: u32) -> u32 {
            let mut g = self.0.lock().unwrap();
            let mut freed = 0;
            while freed < units {
                let Some(p) = g.pop() else { break };
                freed += p.num_permits() as u32;
            }
            freed
        }
    }

    #[tokio::test]
    async fn writers_keep_off_the_reader_floor_and_cache_sheds_for_them() {
        let b = MemoryBudget::new(32 * MIB, 8 * MIB);
        assert_eq!(b.write_cap_bytes(), 24 * MIB);
        // The "cache" holds everything.
        let held: Vec<_> = (0..b.total)
            .map(|_| b.units.clone().try_acquire_owned().unwrap())
            .collect();
        let cache: Arc<dyn Shed> = Arc::new(Held(Mutex::new(held)));
        b.set_shedder(Arc::downgrade(&cache));
        let mut c = b
            .try_charge(MIB, WriteUseKind::Buffer)
            .expect("cache shed for it");
        assert_eq!(b.write_use(), (MIB, 0));
        let more = b.charge_waiting(23 * MIB, WriteUseKind::Buffer).await;
        c.absorb(more);
        assert!(
            b.try_charge(UNIT, WriteUseKind::Buffer).is_none(),
            "writers may not go past their cap"
        );
        let part = c.split(4 * MIB, WriteUseKind::Upload);
        assert_eq!(b.write_use(), (20 * MIB, 4 * MIB));
        drop(part);
        assert!(b.try_charge(MIB, WriteUseKind::Buffer).is_some());
        drop(c);
        assert_eq!(b.write_use(), (0, 0));
        assert_eq!(
            b.used_bytes(),
            8 * MIB,
            "the cache kept what it was not asked for"
        );
    }

    #[tokio::test]
    async fn a_waiting_writer_gets_units_when_they_come_back() {
        let b = MemoryBudget::new(16 * MIB, 4 * MIB);
        let first = b.charge_waiting(12 * MIB, WriteUseKind::Upload).await;
        let b2 = b.clone();
        let waiter =
            tokio::spawn(async move { b2.charge_waiting(MIB, WriteUseKind::Buffer).await.room() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "backpressure: it waits");
        drop(first);
        assert_eq!(waiter.await.unwrap(), MIB);
    }

    #[tokio::test]
    async fn shrink_gives_back_what_is_not_needed() {
        let b = MemoryBudget::new(16 * MIB, 4 * MIB);
        let mut c = b.charge_waiting(4 * MIB, WriteUseKind::Buffer).await;
        c.shrink_to(MIB + 1);
        assert_eq!(c.room(), MIB + UNIT);
        assert_eq!(b.used_bytes(), MIB + UNIT);
        assert_eq!(b.write_use().0, MIB + 1);
    }
}
