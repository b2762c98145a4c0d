//! `CosFs`: the filesystem operations the FUSE adapter calls, one method per operation, in
//! POSIX terms (inode numbers, names, offsets) over an `ObjectStore`. No `fuser` types here.
//!
//! - The facade: its fields are private, and the files that implement its operations are the
//!   submodules below, so nothing else in the fs core reaches its state. They call the rooms
//!   it holds: the namespace (`ns`), the block cache, the listing stage, the writers' context.
//!   - `open_file`: `OpenFile`, one per handle, which answers read, write, fallocate, flush,
//!     fsync and release;
//!   - `files`: open, create, mknod, setattr, truncate, fallocate;
//!   - `name_ops`: mknod, mkdir, symlink, unlink, rmdir, rename, link;
//!   - `commit`: flush, fsync, release (when a written file reaches COS) and shutdown;
//!   - `open_rename`: what a rename does to handles open on the renamed or replaced file;
//!   - `archive`, `storage_class`, `xattr_ops`: restores, the storage-class xattr, xattrs;
//!   - `passthrough`: opens the kernel serves from the disk cache's whole files;
//!   - `recovery`: what a mount cleans up at its start;
//!   - `tables`: the open handles and the writers by inode, each behind its own lock.
//! - Metadata is the namespace's: served while younger than `metadata_ttl`, else renewed
//!   (lookup: HEAD + LIST; open: HEAD); missing names are negative entries for the TTL.
//! - readdir streams listing pages (`dir::DirStream`) and records every entry's listing
//!   attributes in the namespace, so `ls -l` needs no request per entry. Entries returned by
//!   `readdir` carry one kernel reference each (readdirplus); `unsent` gives back the ones the
//!   reply had no room for.
//! - A file open for writing has one `FileWriter` shared by its handles; while it exists the
//!   inode is written here (`begin_writing`: its attributes are the truth) and reads of the
//!   file from any handle go through the writer, so unpublished writes are visible.
//! - Locks (`docs/ARCHITECTURE.md` "Locks"): async mutexes (a writer, a directory handle, the
//!   rename lock) before std mutexes; std mutexes are leaves, taken for one step: the maps
//!   (`files`, `writers`, `dirs`) are released before the inode table is taken.

mod archive;
mod commit;
pub mod files;
mod name_ops;
mod open_file;
mod open_rename;
mod passthrough;
mod recovery;
mod storage_class;
mod tables;
mod xattr_ops;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::object::ObjectStore;

use self::open_file::{LockedWriter, Mount, OpenFile, SharedWriter, Store};
use self::tables::{Handles, Writers};
use super::attr::{self, AttrDefaults, FileKind};
use super::cache::BlockCache;
use super::content_type::ContentTypeRule;
use super::dir::DirStream;
use super::dir_handle::DirHandle;
use super::dir_meta::{MetaStage, StageConfig};
use super::disk_cache::{DiskCache, DiskSize, DiskStats};
use super::error::{FsError, FsResult};
use super::memory::{self, MemoryBudget};
use super::namespace::{Backing, HandleIo, Inode, Namespace, Trust};
pub use super::namespace::{Entry, ListedEntry};
use super::orphans::Orphans;
use super::scratch::ScratchArea;
use super::symlink;
use super::timeouts::within;
use super::upload_journal::{Leftovers, UploadJournal};
use super::write::WriteCtx;
use crate::object::DeferredDeletes;

/// What the fs core needs to know about a mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix of the mount root: `""` for a whole bucket, `"data/"` for `BUCKET:/data`.
    pub prefix: String,
    pub defaults: AttrDefaults,
    /// How long attributes and negative entries are trusted.
    pub metadata_ttl: Duration,
    /// Most memory the block cache holds, bytes (`--cache-size`).
    pub cache_bytes: u64,
    /// The mount's memory budget, bytes (`--memory-limit`): block cache, write buffers and
    /// parts being uploaded together.
    pub memory_bytes: u64,
    /// This mount's own directory of the persistent disk cache (`--disk-cache`), if any.
    pub disk_cache: Option<PathBuf>,
    /// Most bytes the disk cache holds (`--disk-cache-size`; `auto`: from the free space).
    pub disk_cache_size: DiskSize,
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// This mount's private directory (`PrivateDir`: made 0700 if missing, else it must be
    /// ours and private): staging files of files modified in place, and the upload journal.
    pub cache_dir: PathBuf,
    /// Most bytes staging files may hold together (ENOSPC beyond).
    pub cache_dir_bytes: u64,
    /// Size of the first parts of a streaming upload.
    pub part_size: u64,
    /// Storage class of new files (`None`: the bucket's default, STANDARD). A file written
    /// over an object keeps that object's class.
    pub storage_class: Option<String>,
    /// How new files get their Content-Type (`content_type.rs`).
    pub content_type: ContentTypeRule,
    /// New files opened with `O_APPEND` are created as appendable objects, written by APPEND
    /// Object at each commit point (`--appendable-logs`).
    pub appendable_logs: bool,
    /// Parts of the first size in flight, mount-wide (the upload memory budget is this many
    /// times `part_size`; bigger parts later in a big file take more of it each).
    pub upload_concurrency: usize,
    /// Longest a read-only operation (lookup, getattr, readdir, open for reading, read,
    /// readlink, xattr reads) may wait on COS before it fails with ETIMEDOUT.
    pub op_timeout: Duration,
    /// HEAD every listed entry for its exact attributes (`--listing-metadata`); off shows
    /// the listing's guess.
    pub listing_metadata: bool,
    /// Listing HEADs in flight, mount-wide (`--listing-heads`).
    pub listing_heads: usize,
    /// Offer the kernel passthrough opens of files the disk cache holds whole, when it can
    /// take them (`--no-passthrough` turns this off).
    pub passthrough: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            prefix: String::new(),
            defaults: AttrDefaults::for_current_user(),
            // Short, so that changes made by other clients show up quickly (`docs/DESIGN.md`).
            metadata_ttl: Duration::from_secs(1),
            // 256 MiB: a 64 MiB prefetch window per sequential reader with room for others.
            cache_bytes: 256 * 1024 * 1024,
            // 512 MiB: the whole cache, the upload concurrency's 64 MiB of parts, and the
            // buffers of about twenty files being written at once before writers wait.
            memory_bytes: 512 * 1024 * 1024,
            disk_cache: None,
            // Half the free space, at most 10 GiB, never past the reserve (`disk_cache::space`).
            disk_cache_size: DiskSize::Auto,
            read_only: false,
            cache_dir: std::env::temp_dir()
                .join(format!("cosfs-{}", rustix::process::geteuid().as_raw())),
            // 4 GiB: room for in-place edits of several large files at once.
            cache_dir_bytes: 4 << 30,
            // 8 MiB: small enough that a part retried after a failure is cheap, big enough
            // that a 1 GiB file is 128 requests (`docs/DESIGN.md`).
            part_size: 8 << 20,
            storage_class: None,
            content_type: ContentTypeRule::ByExtension,
            appendable_logs: false,
            // 8 parts in flight: 64 MiB of upload memory, enough to fill a fast link.
            upload_concurrency: 8,
            // The client's default request budget: one slow request is all it waits for.
            op_timeout: crate::cos::config::TimeBudget::default().op,
            listing_metadata: true,
            // 128: `ls -l` of 10,000 entries is about 80 round trips of HEADs.
            listing_heads: 128,
            passthrough: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Opened {
    pub fh: u64,
    /// The object did not change since the last open: the kernel may keep its page cache.
    pub keep_cache: bool,
    /// The kernel is to read this handle from this local file (passthrough), not from cosfs.
    pub through: Option<Arc<Backing>>,
}

/// statfs figures: an object store has no fixed capacity, so these are large constants that
/// keep `df` and free-space checks of legacy programs happy.
#[derive(Debug, Clone, Copy)]
pub struct FsStats {
    pub block_size: u32,
    pub blocks: u64,
    pub files: u64,
    pub name_max: u32,
}

pub struct CosFs<S: ObjectStore + ?Sized> {
    store: Arc<Store<S>>,
    cfg: FsConfig,
    /// Names and inodes: the inode table and the requests that renew it.
    ns: Namespace<S>,
    cache: Arc<BlockCache>,
    /// Open file and directory handles.
    handles: Handles<S>,
    /// Exact attributes of listed entries, for every directory stream (`dir_meta`).
    listing: Arc<MetaStage<Store<S>>>,
    /// Files open for writing, by inode.
    writers: Writers<S>,
    wctx: WriteCtx<Store<S>>,
    /// Stopping: no new writes (opening for writing, creating, namespace changes are EROFS).
    stopping: AtomicBool,
    /// Files unlinked while open (their DELETE waits for the last close).
    orphans: Orphans,
    /// Held by a rename that holds the writers of two files at once (`open_rename`).
    replace_lock: tokio::sync::Mutex<()>,
    /// What gone mounts left for this one to clean up (`recovery`), until it does.
    leftovers: Mutex<Option<Leftovers>>,
    /// Passthrough opens are offered (`passthrough`): the option, and a kernel that takes them.
    passthrough: AtomicBool,
}

/// What the filesystem is doing, for `cosfs stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsActivity {
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Bytes of cached blocks.
    pub cache_bytes: u64,
    /// Bytes of blocks being fetched.
    pub fetching_bytes: u64,
    /// Files open for writing (their uploads finish at close or fsync).
    pub open_for_writing: usize,
    /// Bytes written to files and not yet cut into parts.
    pub write_buffer_bytes: u64,
    /// Bytes of parts handed to an upload and not yet acknowledged.
    pub upload_bytes_in_flight: u64,
    /// Memory budget charged now, and its size (`--memory-limit`).
    pub memory_used: u64,
    pub memory_limit: u64,
    /// The disk cache's figures and size, if the mount has one.
    pub disk: Option<(DiskStats, u64)>,
}

impl<S: ObjectStore + ?Sized> CosFs<S> {
    pub fn new(store: Arc<S>, cfg: FsConfig) -> Self {
        let store = Arc::new(DeferredDeletes::new(store));
        let now = SystemTime::now();
        let root = attr::implicit_dir(&cfg.defaults, now);
        // Readers keep a quarter of the cache (at least 4 MiB) whatever writers hold.
        let reader_floor = (cfg.cache_bytes.min(cfg.memory_bytes) / 4).max(4 << 20);
        let memory = MemoryBudget::new(memory::budget_for_limit(cfg.memory_bytes), reader_floor);
        let disk = cfg.disk_cache.as_ref().and_then(|dir| {
            DiskCache::open(dir, cfg.disk_cache_size)
                .map_err(|e| tracing::warn!("no disk cache: {e}"))
                .ok()
        });
        let cache = BlockCache::with_disk(cfg.cache_bytes, memory.clone(), disk);
        // Upload memory in flight: `upload_concurrency` parts of the first size.
        let budget_mib = (cfg.part_size.div_ceil(1 << 20) as usize * cfg.upload_concurrency.max(1))
            .min(u32::MAX as usize) as u32;
        let scratch = Arc::new(if cfg.read_only {
            ScratchArea::none("the mount is read-only")
        } else {
            ScratchArea::new(&cfg.cache_dir, cfg.cache_dir_bytes)
        });
        let (journal, leftovers) = match scratch.private_dir().map(|d| d.try_clone()) {
            Some(Ok(dir)) => UploadJournal::open(dir),
            _ => (UploadJournal::off(), Leftovers::default()),
        };
        let wctx = WriteCtx {
            store: store.clone(),
            cache: cache.clone(),
            scratch,
            journal: Arc::new(journal),
            permits: Arc::new(tokio::sync::Semaphore::new(budget_mib as usize)),
            budget_mib,
            part_size: cfg.part_size,
            storage_class: cfg.storage_class.clone(),
            content_type: cfg.content_type.clone(),
            memory,
        };
        let ns = Namespace::new(
            store.clone(),
            &cfg.prefix,
            root,
            Trust {
                ttl: cfg.metadata_ttl,
                op_timeout: cfg.op_timeout,
                defaults: cfg.defaults,
            },
        );
        let listing = Arc::new(MetaStage::new(
            store.clone(),
            ns.shared_table(),
            cfg.listing_heads,
            StageConfig {
                heads: cfg.listing_metadata,
                defaults: cfg.defaults,
                ttl: cfg.metadata_ttl,
            },
            now,
        ));
        CosFs {
            store,
            ns,
            cache,
            handles: Handles::new(),
            listing,
            writers: Writers::new(),
            wctx,
            stopping: AtomicBool::new(false),
            orphans: Orphans::default(),
            replace_lock: tokio::sync::Mutex::new(()),
            leftovers: Mutex::new(Some(leftovers)),
            passthrough: AtomicBool::new(false),
            cfg,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    pub fn activity(&self) -> FsActivity {
        let (cache_hits, cache_misses) = self.cache.hit_counts();
        let memory = &self.wctx.memory;
        let (write_buffer_bytes, upload_bytes_in_flight) = memory.write_use();
        FsActivity {
            cache_hits,
            cache_misses,
            cache_bytes: self.cache.ready_bytes(),
            fetching_bytes: self.cache.fetching_bytes(),
            open_for_writing: self.writers.count(),
            write_buffer_bytes,
            upload_bytes_in_flight,
            memory_used: memory.used_bytes(),
            memory_limit: memory.limit_bytes(),
            disk: self.cache.disk().map(|d| (d.stats(), d.cap())),
        }
    }

    fn cache_ref(&self) -> Arc<BlockCache> {
        self.cache.clone()
    }

    fn node(&self, ino: u64) -> FsResult<Inode> {
        self.ns.node(ino)
    }

    fn dir_node(&self, ino: u64) -> FsResult<Inode> {
        self.ns.dir_node(ino)
    }

    /// Find `name` in directory `parent`; takes one kernel reference on the result.
    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<Entry> {
        self.ns
            .lookup(parent, name, &|dir| self.open_names_in(dir))
            .await
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.ns.table().forget(ino, n);
    }

    /// Attributes of `ino`, refreshed when older than the TTL.
    pub async fn getattr(&self, ino: u64) -> FsResult<Entry> {
        self.ns.getattr(ino).await
    }

    /// Give back the references of entries `readdir` returned but the reply could not hold.
    pub fn unsent(&self, entries: &[ListedEntry]) {
        self.ns.unsent(entries)
    }

    /// Run a read-only operation within `--op-timeout`, else fail it with ETIMEDOUT
    /// (`timeouts::within`).
    async fn within_budget<T>(
        &self,
        op: impl std::future::Future<Output = FsResult<T>>,
    ) -> FsResult<T> {
        within(self.cfg.op_timeout, op).await
    }

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let dir = self.dir_node(ino)?;
        let stream = DirStream::new(&dir.key, ino, self.listing.clone());
        self.ns.table().listing_opened(ino);
        Ok(self.handles.add_dir(ino, DirHandle::new(ino, stream)))
    }

    /// Up to `max` entries from `offset` (0 = start). Offsets 1 and 2 are `.` and `..`; every
    /// other entry takes one kernel reference, returned through `unsent` if not delivered.
    pub async fn readdir(&self, fh: u64, offset: u64, max: usize) -> FsResult<Vec<ListedEntry>> {
        self.within_budget(self.readdir_now(fh, offset, max)).await
    }

    async fn readdir_now(&self, fh: u64, offset: u64, max: usize) -> FsResult<Vec<ListedEntry>> {
        let handle = self.handles.dir(fh)?;
        let mut h = handle.lock().await;
        let dir = self.dir_node(h.ino)?;
        if h.is_rewind(offset) {
            // rewinddir(3): the directory as it is now.
            let stream = DirStream::new(&dir.key, dir.ino, self.listing.clone());
            h.rewind(stream);
        }
        let (l, n) = h.listing(offset);
        if l.needs_local_names() {
            // Before the listing's first page is asked for.
            l.set_local_names(self.local_only_children(dir.ino).await);
        }
        let mut out = Vec::new();
        if n == 0 {
            out.push(ListedEntry {
                ino: dir.ino,
                offset: l.offset(1),
                name: ".".into(),
                attr: dir.attr.clone(),
            });
        }
        if n <= 1 {
            let parent = self.node(dir.parent).unwrap_or_else(|_| dir.clone());
            out.push(ListedEntry {
                ino: parent.ino,
                offset: l.offset(2),
                name: "..".into(),
                attr: parent.attr,
            });
        }
        let pos = n.saturating_sub(2);
        let want = max.saturating_sub(out.len());
        let entries = l.stream().read(pos, want).await?;
        tracing::debug!(fh, offset, n = entries.len(), "readdir");
        let got = entries.len();
        let next = entries.last().map(|(p, _)| p + 1).unwrap_or(pos);
        l.delivered(pos, next);
        // Entries of the current pages come with attributes; those of pages read past (a
        // seek back) are looked up, all at once.
        let mut found: Vec<(u64, String, Option<Entry>)> = Vec::new();
        {
            let mut t = self.ns.table();
            for (p, e) in entries {
                if t.removed_here(dir.ino, &e.name, e.listed_at, self.cfg.metadata_ttl) {
                    continue;
                }
                let known = e.attr.map(|a| {
                    let n = t.upsert(dir.ino, &e.name, a, 1, true);
                    Entry {
                        ino: n.ino,
                        attr: n.attr,
                    }
                });
                found.push((p, e.name, known));
            }
        }
        let open_here = &|dir| self.open_names_in(dir);
        let lookups = found
            .iter()
            .filter(|(_, _, known)| known.is_none())
            .map(|(_, name, _)| self.ns.resolve(dir.ino, name, open_here));
        let mut looked_up = futures_util::future::join_all(lookups).await.into_iter();
        let mut failed = None;
        for (p, name, known) in found {
            let entry = match known {
                Some(e) => e,
                None => match looked_up
                    .next()
                    .expect("one lookup per entry without attributes")
                {
                    Ok(e) => e,
                    Err(FsError::NotFound) => continue,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                },
            };
            out.push(ListedEntry {
                ino: entry.ino,
                offset: l.offset(p + 3),
                name,
                attr: entry.attr,
            });
        }
        if let Some(e) = failed {
            self.unsent(&out);
            return Err(e);
        }
        let mut t = self.ns.table();
        // After the listing: files that exist only on this mount so far.
        if let (true, Some(end)) = (got < want, l.stream().end()) {
            // A listing that held keys no name shows does not tell every name there.
            if let Some(began) = l.complete_since(end) {
                t.listing_complete(dir.ino, began, l.local_names());
            }
            let skip = next.saturating_sub(end) as usize;
            for (i, name) in l.local_names().iter().enumerate().skip(skip) {
                if out.len() >= max {
                    break;
                }
                let Some(ino) = t.child(dir.ino, name).filter(|c| c.local).map(|c| c.ino) else {
                    continue;
                };
                let attr = t.referenced(ino).expect("child is live");
                out.push(ListedEntry {
                    ino,
                    offset: l.offset(end + i as u64 + 3),
                    name: name.clone(),
                    attr,
                });
            }
        }
        Ok(out)
    }

    pub fn releasedir(&self, fh: u64) {
        if let Some(ino) = self.handles.remove_dir(fh) {
            self.ns.table().listing_closed(ino);
        }
    }

    /// The target of a symlink (the object's body, as cosfs and s3fs store it).
    pub async fn readlink(&self, ino: u64) -> FsResult<Bytes> {
        self.within_budget(self.readlink_now(ino)).await
    }

    async fn readlink_now(&self, ino: u64) -> FsResult<Bytes> {
        let node = self.node(ino)?;
        if node.attr.kind != FileKind::Symlink {
            return Err(FsError::InvalidName);
        }
        if let Some(t) = node.attr.target {
            return Ok(t); // fetched with the attributes of this version (a listing)
        }
        symlink::read_target(&*self.store, &node.key, node.attr.size).await
    }

    pub fn statfs(&self) -> FsStats {
        FsStats {
            block_size: 4096,
            // 1 PiB in 4 KiB blocks, all free.
            blocks: 1 << 38,
            files: 1 << 32,
            name_max: super::names::NAME_MAX as u32,
        }
    }
}
