//! `CosFs`: the filesystem operations the FUSE adapter calls, one method per operation, in
//! POSIX terms (inode numbers, names, offsets) over an `ObjectStore`. No `fuser` types here.
//!
//! - Metadata is served from the inode table while it is younger than `metadata_ttl`, else
//!   refreshed (lookup: HEAD + LIST; open: HEAD). Names found missing are cached as negative
//!   entries for the same TTL.
//! - readdir streams listing pages (`dir::DirStream`) and records every entry's listing
//!   attributes in the inode table, so `ls -l` needs no request per entry. Entries returned by
//!   `readdir` carry one kernel reference each (readdirplus); `unsent` gives back the ones the
//!   reply had no room for.
//! - This mount is read-only for now: every open for writing is EROFS.
//! - Lock order: `dirs`/`files` maps, then `inodes`; never held across an await (directory
//!   streams have their own async mutex, held while a page is fetched).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::cos::{GetOptions, ObjectStore};

use super::attr::{self, AttrDefaults, AttrSource, FileKind, PosixAttr};
use super::cache::BlockCache;
use super::dir::DirStream;
use super::error::{FsError, FsResult};
use super::inode::{Inode, InodeTable, ROOT_INO};
use super::lookup::lookup;
use super::names::check_name;
use super::reader::ObjectReader;

/// Longest symlink target we read (PATH_MAX).
const MAX_LINK: u64 = 4096;

/// What the fs core needs to know about a mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix of the mount root: `""` for a whole bucket, `"data/"` for `BUCKET:/data`.
    pub prefix: String,
    pub defaults: AttrDefaults,
    /// How long attributes and negative entries are trusted.
    pub metadata_ttl: Duration,
    /// Memory budget of the block cache, bytes.
    pub cache_bytes: u64,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            prefix: String::new(),
            defaults: AttrDefaults::for_current_user(),
            // Short, so that changes made by other clients show up quickly (DESIGN.md).
            metadata_ttl: Duration::from_secs(1),
            // 256 MiB: a 64 MiB prefetch window per sequential reader with room for others.
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// An inode and its attributes, as replied to the kernel.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ino: u64,
    pub attr: PosixAttr,
}

/// One readdir entry; `offset` is where the next readdir resumes after it.
#[derive(Debug, Clone)]
pub struct ListedEntry {
    pub ino: u64,
    pub offset: u64,
    pub name: String,
    pub attr: PosixAttr,
}

#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub fh: u64,
    /// The object did not change since the last open: the kernel may keep its page cache.
    pub keep_cache: bool,
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

struct DirHandle {
    ino: u64,
    stream: DirStream,
}

pub struct CosFs<S: ObjectStore + ?Sized> {
    store: Arc<S>,
    cfg: FsConfig,
    inodes: Mutex<InodeTable>,
    cache: Arc<BlockCache>,
    files: Mutex<HashMap<u64, Arc<ObjectReader>>>,
    dirs: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirHandle>>>>,
    next_fh: AtomicU64,
    mount_time: SystemTime,
}

/// The key prefix of the directory holding `key` (a file key or a directory prefix).
fn parent_prefix(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    match trimmed.rfind('/') {
        Some(i) => &trimmed[..=i],
        None => "",
    }
}

impl<S: ObjectStore + ?Sized> CosFs<S> {
    pub fn new(store: Arc<S>, cfg: FsConfig) -> Self {
        let now = SystemTime::now();
        let root = attr::implicit_dir(&cfg.defaults, now);
        CosFs {
            store,
            inodes: Mutex::new(InodeTable::new(&cfg.prefix, root)),
            cache: Arc::new(BlockCache::new(cfg.cache_bytes)),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mount_time: now,
            cfg,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    fn node(&self, ino: u64) -> FsResult<Inode> {
        self.inodes
            .lock()
            .unwrap()
            .get(ino)
            .cloned()
            .ok_or(FsError::NotFound)
    }

    fn dir_node(&self, ino: u64) -> FsResult<Inode> {
        let n = self.node(ino)?;
        if n.attr.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        Ok(n)
    }

    /// Find `name` in directory `parent`; takes one kernel reference on the result.
    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<Entry> {
        check_name(name)?;
        let dir = self.dir_node(parent)?;
        let ttl = self.cfg.metadata_ttl;
        {
            let mut t = self.inodes.lock().unwrap();
            if let Some(c) = t.child(parent, name).filter(|c| c.is_fresh(ttl)) {
                let ino = c.ino;
                let node = t.get_mut(ino).expect("child is live");
                node.lookups += 1;
                return Ok(Entry {
                    ino,
                    attr: node.attr.clone(),
                });
            }
            if t.is_negative(parent, name, ttl) {
                return Err(FsError::NotFound);
            }
        }
        match lookup(&*self.store, &dir.key, name, &self.cfg.defaults).await {
            Ok(attr) => {
                let n = self
                    .inodes
                    .lock()
                    .unwrap()
                    .upsert(parent, name, attr, 1, false);
                Ok(Entry {
                    ino: n.ino,
                    attr: n.attr,
                })
            }
            Err(e) => {
                if matches!(e, FsError::NotFound) {
                    let mut t = self.inodes.lock().unwrap();
                    t.unlink_name(parent, name);
                    t.set_negative(parent, name, ttl);
                }
                Err(e)
            }
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.lock().unwrap().forget(ino, n);
    }

    /// Attributes of `ino`, refreshed when older than the TTL.
    pub async fn getattr(&self, ino: u64) -> FsResult<Entry> {
        let node = self.node(ino)?;
        if ino == ROOT_INO || node.is_fresh(self.cfg.metadata_ttl) {
            return Ok(Entry {
                ino,
                attr: node.attr,
            });
        }
        let found = lookup(
            &*self.store,
            parent_prefix(&node.key),
            &node.name,
            &self.cfg.defaults,
        )
        .await;
        let mut t = self.inodes.lock().unwrap();
        match found {
            Ok(attr) if attr.kind == node.attr.kind => {
                let n = t.upsert(node.parent, &node.name, attr, 0, false);
                Ok(Entry {
                    ino: n.ino,
                    attr: n.attr,
                })
            }
            // Deleted, or replaced by another kind: this inode is gone.
            Ok(_) | Err(FsError::NotFound) => {
                t.unlink_name(node.parent, &node.name);
                Err(FsError::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let dir = self.dir_node(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let stream = DirStream::new(&dir.key, self.mount_time);
        self.dirs.lock().unwrap().insert(
            fh,
            Arc::new(tokio::sync::Mutex::new(DirHandle { ino, stream })),
        );
        Ok(fh)
    }

    /// Up to `max` entries from `offset` (0 = start). Offsets 1 and 2 are `.` and `..`; every
    /// other entry takes one kernel reference, returned through `unsent` if not delivered.
    pub async fn readdir(&self, fh: u64, offset: u64, max: usize) -> FsResult<Vec<ListedEntry>> {
        let handle = self
            .dirs
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let mut h = handle.lock().await;
        let dir = self.dir_node(h.ino)?;
        let mut out = Vec::new();
        if offset == 0 {
            out.push(ListedEntry {
                ino: dir.ino,
                offset: 1,
                name: ".".into(),
                attr: dir.attr.clone(),
            });
        }
        if offset <= 1 {
            let parent = self.node(dir.parent).unwrap_or_else(|_| dir.clone());
            out.push(ListedEntry {
                ino: parent.ino,
                offset: 2,
                name: "..".into(),
                attr: parent.attr,
            });
        }
        let pos = offset.saturating_sub(2);
        let want = max.saturating_sub(out.len());
        let entries = h
            .stream
            .read(&*self.store, &self.cfg.defaults, pos, want)
            .await?;
        let mut t = self.inodes.lock().unwrap();
        for (p, e) in entries {
            let n = t.upsert(dir.ino, &e.name, e.attr, 1, true);
            out.push(ListedEntry {
                ino: n.ino,
                offset: p + 3,
                name: e.name,
                attr: n.attr,
            });
        }
        Ok(out)
    }

    /// Give back the references of entries `readdir` returned but the reply could not hold.
    pub fn unsent(&self, entries: &[ListedEntry]) {
        let mut t = self.inodes.lock().unwrap();
        for e in entries.iter().filter(|e| e.name != "." && e.name != "..") {
            t.forget(e.ino, 1);
        }
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().unwrap().remove(&fh);
    }

    /// Open `ino` for reading. Writing is EROFS on this (read-only) mount.
    pub async fn open(&self, ino: u64, write: bool) -> FsResult<Opened> {
        if write {
            return Err(FsError::ReadOnly);
        }
        let mut node = self.node(ino)?;
        match node.attr.kind {
            FileKind::Directory => return Err(FsError::IsDir),
            FileKind::Symlink | FileKind::File => {}
        }
        // A listing could not tell a symlink from a file: check before serving bytes.
        if !node.is_fresh(self.cfg.metadata_ttl) || node.attr.source == AttrSource::Listing {
            let fresh = match self.store.head_object(&node.key).await {
                Ok(meta) => attr::from_object(&meta, false, &self.cfg.defaults),
                Err(e) if e.is_not_found() => {
                    self.inodes
                        .lock()
                        .unwrap()
                        .unlink_name(node.parent, &node.name);
                    return Err(FsError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let kind_changed = fresh.kind != node.attr.kind;
            self.inodes
                .lock()
                .unwrap()
                .upsert(node.parent, &node.name, fresh.clone(), 0, false);
            if kind_changed {
                // ESTALE makes the kernel look the name up again and retry the open, which
                // then follows the symlink.
                return Err(FsError::Stale);
            }
            node.attr = fresh;
        }
        let etag = node.attr.etag.clone().unwrap_or_default();
        let keep_cache = {
            let mut t = self.inodes.lock().unwrap();
            match t.get_mut(ino) {
                Some(n) => {
                    let same = n.last_open_etag.as_deref() == Some(etag.as_str());
                    n.last_open_etag = Some(etag.clone());
                    same
                }
                None => false,
            }
        };
        let reader = ObjectReader::new(&node.key, &etag, node.attr.size);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files.lock().unwrap().insert(fh, Arc::new(reader));
        Ok(Opened { fh, keep_cache })
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let reader = self
            .files
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        reader.read(&self.store, &self.cache, offset, size).await
    }

    pub fn release(&self, fh: u64) {
        self.files.lock().unwrap().remove(&fh);
    }

    /// The target of a symlink (the object's body, as cosfs and s3fs store it).
    pub async fn readlink(&self, ino: u64) -> FsResult<Bytes> {
        let node = self.node(ino)?;
        if node.attr.kind != FileKind::Symlink {
            return Err(FsError::InvalidName);
        }
        let opts = GetOptions {
            range: Some(crate::cos::ByteRange::new(0, MAX_LINK)),
            ..Default::default()
        };
        let out = self.store.get_object(&node.key, &opts).await;
        match out {
            Ok(o) => Ok(o.collect().await?),
            // A zero-byte object has no range to serve.
            Err(e) if e.kind() == Some(crate::cos::ErrorKind::InvalidRange) => Ok(Bytes::new()),
            Err(e) => Err(e.into()),
        }
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

#[cfg(test)]
mod tests {
    use super::parent_prefix;

    #[test]
    fn parents() {
        assert_eq!(parent_prefix("a"), "");
        assert_eq!(parent_prefix("a/"), "");
        assert_eq!(parent_prefix("p/a/b"), "p/a/");
        assert_eq!(parent_prefix("p/a/b/"), "p/a/");
    }
}
