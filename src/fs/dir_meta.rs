//! The metadata stage of a listing: the exact attributes of every listed entry, fetched ahead
//! of the reader.
//!
//! - A GET Bucket page carries size, ETag and Last-Modified but no `x-cos-meta-*` headers, so a
//!   listing alone cannot tell a mode, an owner, an mtime or a symlink. Each entry of a page
//!   gets a HEAD (`key` for objects, `key/` for common prefixes: a marker carries the
//!   directory's metadata, none means an implicit directory) as soon as the page arrives.
//!   A driver task per page takes permits from one mount-wide semaphore
//!   (`--listing-heads`, default 128) in entry order, so the entries the reader wants next are
//!   asked first and the whole mount never has more HEADs in flight than that.
//! - A symlink's target is fetched right after its HEAD, in the same pipeline: `ls -l` reads
//!   every link next, and would otherwise wait a round trip per link.
//! - A HEAD is skipped when the inode table already proves the entry's attributes current:
//!   - objects: attributes from a HEAD of the same ETag, size and Last-Modified, taken at
//!     least `SAME_SECOND` after that Last-Modified (a metadata-only change by another client
//!     keeps the ETag but moves Last-Modified, whose resolution is one second), or within the
//!     metadata TTL;
//!   - directories: attributes within the metadata TTL;
//!   - anything open for writing on this mount (its attributes are the truth).
//! - An object gone between the LIST and its HEAD is dropped from the listing. A HEAD that
//!   fails (503s past the retries, a hung server) fails the readdir: an entry is never handed
//!   to the kernel with attributes cosfs could not check.
//! - `--listing-metadata=off` turns the stage off: entries carry the listing's guess (default
//!   owner and mode, Last-Modified as mtime, symlinks shown as files), for buckets known to
//!   hold no POSIX metadata.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::object::{ListEntry, ObjectStore};

use super::attr::{self, AttrDefaults, AttrSource, FileKind, PosixAttr};
use super::error::{FsError, FsResult};
use super::namespace::InodeTable;
use super::symlink::read_link;

/// How long after an object's Last-Modified a HEAD must have been answered for its result to
/// stand for every listing that shows the same ETag and Last-Modified.
const SAME_SECOND: Duration = Duration::from_secs(2);

/// What a listing says about one name, before its metadata is known.
#[derive(Debug, Clone)]
pub enum Listed {
    Object(ListEntry),
    /// A common prefix (`key` ends in `/`).
    Prefix(String),
}

/// One entry's attributes: known, coming from a HEAD, or gone.
#[derive(Debug)]
pub enum EntryMeta {
    Ready(PosixAttr),
    Pending(oneshot::Receiver<FsResult<Option<PosixAttr>>>),
    /// Deleted between the LIST and its HEAD: not listed.
    Gone,
    /// The HEAD failed (the error went to the reader): ask again before handing it out.
    Failed,
}

impl EntryMeta {
    /// Wait for the attributes (cancel-safe: an interrupted wait can be resumed).
    pub async fn settle(&mut self) -> FsResult<Option<&PosixAttr>> {
        if let EntryMeta::Pending(rx) = self {
            match rx.await.unwrap_or(Err(FsError::ListingCancelled)) {
                Ok(Some(a)) => *self = EntryMeta::Ready(a),
                Ok(None) => *self = EntryMeta::Gone,
                Err(e) => {
                    // Not handed out; the stream asks again on the next read.
                    *self = EntryMeta::Failed;
                    return Err(e);
                }
            }
        }
        Ok(match self {
            EntryMeta::Ready(a) => Some(a),
            _ => None,
        })
    }
}

/// Settings of the stage, shared by every directory of a mount.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// HEAD every listed entry (`--listing-metadata`).
    pub heads: bool,
    pub defaults: AttrDefaults,
    pub ttl: Duration,
}

/// The stage of a mount, shared by all its directory streams.
pub struct MetaStage<S: ObjectStore + ?Sized> {
    store: Arc<S>,
    inodes: Arc<Mutex<InodeTable>>,
    /// HEADs in flight for the whole mount.
    permits: Arc<Semaphore>,
    cfg: StageConfig,
    /// mtime of implicit subdirectories.
    dir_mtime: SystemTime,
}

/// A HEAD the stage will send for one entry, and where its answer goes.
struct HeadJob {
    key: String,
    is_prefix: bool,
    tx: oneshot::Sender<FsResult<Option<PosixAttr>>>,
}

impl<S: ObjectStore + ?Sized> MetaStage<S> {
    /// `heads_in_flight` permits (at least one).
    pub fn new(
        store: Arc<S>,
        inodes: Arc<Mutex<InodeTable>>,
        heads_in_flight: usize,
        cfg: StageConfig,
        dir_mtime: SystemTime,
    ) -> Self {
        MetaStage {
            store,
            inodes,
            permits: Arc::new(Semaphore::new(heads_in_flight.max(1))),
            cfg,
            dir_mtime,
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Attributes for the entries `(name, listed)` of one page of directory `dir_ino`, in
    /// order. HEADs start now, driven by the returned task (dropping it cancels the ones not
    /// sent yet).
    pub fn resolve(
        self: &Arc<Self>,
        dir_ino: u64,
        entries: &[(String, Listed)],
    ) -> (Vec<EntryMeta>, Option<AbortOnDrop>) {
        let mut jobs = Vec::new();
        let metas = entries
            .iter()
            .map(|(name, listed)| {
                if !self.cfg.heads {
                    return EntryMeta::Ready(self.guess(listed));
                }
                if let Some(a) = self.known(dir_ino, name, listed) {
                    return EntryMeta::Ready(a);
                }
                let (tx, rx) = oneshot::channel();
                let (key, is_prefix) = match listed {
                    Listed::Object(e) => (e.key.clone(), false),
                    Listed::Prefix(p) => (p.clone(), true),
                };
                jobs.push(HeadJob { key, is_prefix, tx });
                EntryMeta::Pending(rx)
            })
            .collect();
        if jobs.is_empty() {
            return (metas, None);
        }
        let stage = self.clone();
        let driver = tokio::spawn(async move { stage.drive(jobs).await });
        (metas, Some(AbortOnDrop::new(driver)))
    }

    /// What the listing alone says (`--listing-metadata=off`).
    fn guess(&self, listed: &Listed) -> PosixAttr {
        match listed {
            Listed::Object(e) => attr::from_listing(e, &self.cfg.defaults),
            Listed::Prefix(_) => attr::implicit_dir(&self.cfg.defaults, self.dir_mtime),
        }
    }

    /// Attributes the inode table proves current for this listed entry, if any.
    fn known(&self, dir_ino: u64, name: &str, listed: &Listed) -> Option<PosixAttr> {
        let t = self.inodes.lock().unwrap();
        let node = t.child(dir_ino, name)?;
        if node.local {
            return Some(node.attr.clone());
        }
        let a = &node.attr;
        let fresh = node.is_exact_and_fresh(self.cfg.ttl);
        let proven = match listed {
            Listed::Object(e) => {
                a.kind != FileKind::Directory
                    && a.source == AttrSource::Head
                    && a.etag.as_deref() == Some(e.etag.as_str())
                    && a.size == e.size
                    && (fresh || settled_version(a, e))
            }
            Listed::Prefix(_) => a.kind == FileKind::Directory && fresh,
        };
        proven.then(|| a.clone())
    }

    async fn drive(self: Arc<Self>, jobs: Vec<HeadJob>) {
        let mut running = JoinSet::new();
        for job in jobs {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return;
            };
            let stage = self.clone();
            running.spawn(async move {
                let r = stage.head(&job.key, job.is_prefix).await;
                drop(permit);
                let _ = job.tx.send(r);
            });
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    async fn head(&self, key: &str, is_prefix: bool) -> FsResult<Option<PosixAttr>> {
        match self.store.head_object(key).await {
            Ok(m) => {
                let mut a = attr::from_object(&m, is_prefix, &self.cfg.defaults);
                if a.kind == FileKind::Symlink {
                    // `ls -l` reads every link next: fetch the target in the same pipeline.
                    // One too long to be a link fails its own readlink, not the listing.
                    a.target = match read_link(&*self.store, key).await {
                        Ok(t) => Some(t),
                        Err(FsError::NameTooLong) => None,
                        Err(e) => return Err(e),
                    };
                }
                Ok(Some(a))
            }
            // A directory without a marker object: implicit.
            Err(e) if e.is_not_found() && is_prefix => {
                Ok(Some(attr::implicit_dir(&self.cfg.defaults, self.dir_mtime)))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The listing shows the very version a HEAD described, and that HEAD came late enough after
/// its Last-Modified that any later change would show a later one.
fn settled_version(a: &PosixAttr, e: &ListEntry) -> bool {
    match (a.last_modified, e.last_modified, a.checked) {
        (Some(ours), Some(listed), Some(checked)) => {
            whole_seconds(ours) == whole_seconds(listed)
                && checked
                    .duration_since(listed)
                    .is_ok_and(|d| d >= SAME_SECOND)
        }
        _ => false,
    }
}

/// HEAD answers Last-Modified in whole seconds; a listing may add milliseconds.
fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A task cancelled when its handle is dropped.
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    pub fn new(task: tokio::task::JoinHandle<()>) -> Self {
        AbortOnDrop(task)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(etag: &str, lm: u64) -> ListEntry {
        ListEntry {
            key: "k".into(),
            size: 3,
            etag: etag.into(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(lm)),
            storage_class: None,
        }
    }

    fn head_attr(etag: &str, lm: u64, checked: u64) -> PosixAttr {
        let mut a = attr::from_listing(&entry(etag, lm), &AttrDefaults::for_current_user());
        a.source = AttrSource::Head;
        a.checked = Some(UNIX_EPOCH + Duration::from_secs(checked));
        a
    }

    #[test]
    fn a_head_stands_for_its_version_once_the_second_has_passed() {
        assert!(settled_version(&head_attr("e", 100, 102), &entry("e", 100)));
        assert!(
            !settled_version(&head_attr("e", 100, 101), &entry("e", 100)),
            "a change within the same second could hide behind the same Last-Modified"
        );
        assert!(!settled_version(
            &head_attr("e", 100, 200),
            &entry("e", 150)
        ));
        let mut listed_ms = entry("e", 100);
        listed_ms.last_modified = listed_ms
            .last_modified
            .map(|t| t + Duration::from_millis(250));
        assert!(settled_version(&head_attr("e", 100, 103), &listed_ms));
        let mut changed_here = head_attr("e", 100, 200);
        changed_here.changed_here(Some("e".into()));
        assert!(!settled_version(&changed_here, &entry("e", 100)));
    }
}
