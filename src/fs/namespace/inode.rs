//! The inode table: which inode number stands for which path, and what we last knew about it.
//!
//! - Inode numbers are derived from the path (a hash of the directory flag and the full key),
//!   probed past collisions with live inodes, so the same path gets the same number for the
//!   whole life of the mount, also after the kernel forgot it (barring a collision, when it
//!   gets the next free number).
//! - Each inode counts the kernel's references (`lookup`, `readdirplus` entries) and is dropped
//!   when `forget` brings the count to zero. The root (ino 1) is never dropped.
//! - Attributes carry the instant they were fetched; callers decide freshness against the
//!   metadata TTL. Negative entries (names known not to exist) are kept per directory with the
//!   same TTL and a size cap.
//! - Directory times never go back on this mount. Entries made, removed or renamed move a
//!   directory's mtime and ctime here only (the marker is not rewritten per entry), so the
//!   times this mount showed or made are remembered by key (`dir_times`, also after the
//!   kernel forgot the inode): attributes from COS for a directory take the later of theirs
//!   and the remembered ones. An implicit directory (no marker) has no stored time at all,
//!   so the first time shown for it stays. An explicit `chmod`/`utimens` sets them as given.
//!   Bounded by `DIR_TIMES_CAP` keys (past it the memory starts over).
//! - Each inode counts the kernel's open handles by how it reads them (`io_mode`); one pinned
//!   by passthrough handles is never given another version's attributes: the name gets a new
//!   inode instead.
//! - One `Mutex` guards the table; it is never held across an await (callers copy out what
//!   they need).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::io_mode::{Backing, HandleIo, IoMode, Pinned};
use super::known_dirs::KnownDirs;
use crate::fs::attr::{AttrSource, FileKind, PosixAttr};

pub const ROOT_INO: u64 = 1;

/// Most negative entries kept; when full, expired ones are dropped, then all of them.
const NEGATIVE_CAP: usize = 65_536;
/// Most directories whose times are remembered.
const DIR_TIMES_CAP: usize = 65_536;

#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u64,
    pub parent: u64,
    pub name: Arc<str>,
    /// Object key for files and symlinks; key prefix (ending in `/`, or empty at the bucket
    /// root) for directories.
    pub key: Arc<str>,
    pub attr: PosixAttr,
    /// When the attributes were fetched; `None`: stale, look again before trusting them.
    pub fetched: Option<Instant>,
    /// References the kernel holds (lookups minus forgets).
    pub lookups: u64,
    /// ETag of the last open, to let the kernel keep its page cache when it did not change.
    pub last_open_etag: Option<String>,
    /// Open for writing on this mount: the attributes here are the truth (never refreshed
    /// from COS nor overwritten by a listing) until the last writer closes.
    pub local: bool,
    /// A directory whose marker this mount wrote last: the headers it wrote besides cosfs's
    /// own (so a metadata change within the TTL rewrites it without a HEAD first). Cleared
    /// when attributes from COS replace the ones here.
    pub own_marker: Option<Arc<crate::object::UserMeta>>,
    /// An appendable object this mount appended to last: what it knows of it (length, ETag,
    /// CRC-64, headers), so the next open for writing within the TTL sends no HEAD. A stale
    /// length is safe: the APPEND is refused and looked into (`write::append`). Cleared like
    /// `own_marker`.
    pub own_append: Option<Arc<crate::object::ObjectMeta>>,
    /// The kernel's handles of it, plain and passthrough (`io_mode`).
    pub io: IoMode,
}

impl Inode {
    pub fn is_fresh(&self, ttl: Duration) -> bool {
        self.fetched.is_some_and(|f| f.elapsed() < ttl)
    }

    /// Fresh, and more than a listing's guess: fit to answer a lookup or getattr.
    pub fn is_exact_and_fresh(&self, ttl: Duration) -> bool {
        self.is_fresh(ttl) && self.attr.source != AttrSource::Listing
    }
}

#[derive(Debug)]
pub struct InodeTable {
    inodes: HashMap<u64, Inode>,
    by_name: HashMap<(u64, Arc<str>), u64>,
    negative: HashMap<(u64, Arc<str>), Instant>,
    /// The latest (mtime, ctime) this mount showed or made for a directory, by key prefix.
    dir_times: HashMap<Arc<str>, (SystemTime, SystemTime)>,
    /// Directories whose every name this mount knows.
    pub(super) known: KnownDirs,
}

/// The key or key prefix of `name` in the directory with prefix `dir_prefix`.
pub fn key_for(dir_prefix: &str, name: &str, kind: FileKind) -> String {
    match kind {
        FileKind::Directory => format!("{dir_prefix}{name}/"),
        _ => format!("{dir_prefix}{name}"),
    }
}

fn path_hash(key: &str) -> u64 {
    // SipHash with fixed keys: the same path hashes the same in every run.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    key.hash(&mut h);
    // Keep clear of 0 (invalid), 1 (root) and the top bit (some tools print inodes signed).
    (h.finish() >> 1).max(2)
}

/// Fit the times COS gave for the directory `key` to what this mount showed before.
fn settle_dir_times(
    dir_times: &mut HashMap<Arc<str>, (SystemTime, SystemTime)>,
    key: &Arc<str>,
    attr: &mut PosixAttr,
) {
    if dir_times.len() >= DIR_TIMES_CAP && !dir_times.contains_key(key) {
        dir_times.clear();
    }
    let rec = dir_times
        .entry(key.clone())
        .or_insert((attr.mtime, attr.ctime));
    if attr.source == AttrSource::Implicit {
        // No stored time: the one shown first stays.
        (attr.mtime, attr.ctime) = *rec;
    } else {
        attr.mtime = attr.mtime.max(rec.0);
        attr.ctime = attr.ctime.max(rec.1);
    }
    *rec = (attr.mtime, attr.ctime);
}

impl InodeTable {
    pub fn new(root_prefix: &str, root_attr: PosixAttr) -> Self {
        let root = Inode {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: Arc::from(""),
            key: Arc::from(root_prefix),
            attr: root_attr,
            // A prefix's marker may hold the root's metadata: the first getattr asks.
            fetched: root_prefix.is_empty().then(Instant::now),
            lookups: 1,
            last_open_etag: None,
            local: false,
            own_marker: None,
            own_append: None,
            io: IoMode::default(),
        };
        InodeTable {
            inodes: HashMap::from([(ROOT_INO, root)]),
            by_name: HashMap::new(),
            negative: HashMap::new(),
            dir_times: HashMap::new(),
            known: KnownDirs::default(),
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(&ino)
    }

    /// A directory this mount made: it knows every name in it (none yet).
    pub fn made_dir(&mut self, ino: u64) {
        self.known.made(ino);
    }

    /// Whether `dir` is known, within `ttl`, to have no entries at all.
    pub fn known_empty(&self, dir: u64, ttl: Duration) -> bool {
        self.known.is_empty(dir, ttl)
    }

    /// A listing of `dir` began: names made here meanwhile are collected with the listed ones.
    pub fn listing_opened(&mut self, dir: u64) {
        self.known.listing_opened(dir);
    }

    /// A listing of `dir` ended (its handle closed).
    pub fn listing_closed(&mut self, dir: u64) {
        self.known.listing_closed(dir);
    }

    /// A listing of `dir` begun at `since` went through to its end: with `local` (files only
    /// on this mount so far) it names every entry.
    pub fn listing_complete(&mut self, dir: u64, since: Instant, local: &[String]) {
        self.known.listing_complete(dir, since, local);
    }

    /// The kernel took one more reference to `ino` (a lookup or a readdirplus entry it
    /// was sent); its attributes now.
    pub fn referenced(&mut self, ino: u64) -> Option<PosixAttr> {
        let node = self.get_mut(ino)?;
        node.lookups += 1;
        Some(node.attr.clone())
    }

    /// The file was unlinked while open, or replaced by a rename: it has no name any more.
    pub fn mark_unlinked(&mut self, ino: u64) {
        if let Some(n) = self.get_mut(ino) {
            n.attr.unlinked = true;
        }
    }

    /// `ino` is open for writing on this mount: `attr` (when given) is the truth from now
    /// on, never refreshed from COS nor overwritten by a listing, until `end_writing`.
    pub fn begin_writing(&mut self, ino: u64, attr: Option<&PosixAttr>) {
        if let Some(n) = self.get_mut(ino) {
            n.local = true;
            if let Some(a) = attr {
                n.attr = a.clone();
            }
        }
    }

    /// The attributes of a file being written changed (they are the truth: fresh now).
    pub fn written(&mut self, ino: u64, attr: &PosixAttr) {
        if attr.kind == FileKind::Directory {
            self.set_dir_attr(ino, attr);
        }
        if let Some(n) = self.get_mut(ino) {
            n.attr = attr.clone();
            n.fetched = Some(Instant::now());
        }
    }

    /// The last writer of `ino` closed. `left` is what it left on COS, fresh now (and the
    /// appendable object it appended to, if any); `None` when it left nothing certain, so the
    /// next use looks again (a new file that never reached COS is then gone).
    pub fn end_writing(
        &mut self,
        ino: u64,
        left: Option<(&PosixAttr, Option<crate::object::ObjectMeta>)>,
    ) {
        let Some(n) = self.get_mut(ino) else {
            return;
        };
        n.local = false;
        match left {
            None => n.fetched = None,
            Some((attr, appended)) => {
                n.attr = attr.clone();
                n.fetched = Some(Instant::now());
                n.own_append = appended.map(Arc::new);
            }
        }
    }

    /// An open for reading of the version `etag`: whether the last open saw the same version
    /// (so the kernel may keep its page cache). Never for a file open for writing here.
    pub fn opened_version(&mut self, ino: u64, etag: &str) -> bool {
        match self.get_mut(ino) {
            Some(n) if !n.local => {
                let same = n.last_open_etag.as_deref() == Some(etag);
                n.last_open_etag = Some(etag.to_string());
                same
            }
            _ => false,
        }
    }

    /// This mount wrote the marker of the directory `ino`, with `foreign` headers besides its
    /// own.
    pub fn wrote_marker(&mut self, ino: u64, foreign: crate::object::UserMeta) {
        if let Some(n) = self.get_mut(ino) {
            n.own_marker = Some(Arc::new(foreign));
        }
    }

    /// The inode currently standing for `name` in `parent`, if any.
    pub fn child(&self, parent: u64, name: &str) -> Option<&Inode> {
        let ino = self.by_name.get(&(parent, Arc::from(name)))?;
        self.inodes.get(ino)
    }

    /// Whether `name` in `parent` is known not to exist: a fresh negative entry, or a
    /// directory whose every name is known (`KnownDirs`) without it.
    pub fn is_negative(&self, parent: u64, name: &str, ttl: Duration) -> bool {
        self.negative
            .get(&(parent, Arc::from(name)))
            .is_some_and(|t| t.elapsed() < ttl)
            || self.known.is_absent(parent, name, ttl)
    }

    /// Whether a listing made at `listed` must leave `name` in `parent` out: this mount
    /// removed it after the listing was made (whatever the TTL), or within the TTL (a lookup
    /// answers ENOENT then too, while an object an open handle keeps may still be listed).
    pub fn removed_here(&self, parent: u64, name: &str, listed: Instant, ttl: Duration) -> bool {
        self.negative
            .get(&(parent, Arc::from(name)))
            .is_some_and(|t| *t >= listed || t.elapsed() < ttl)
    }

    pub fn set_negative(&mut self, parent: u64, name: &str, ttl: Duration) {
        if self.negative.len() >= NEGATIVE_CAP {
            self.negative.retain(|_, t| t.elapsed() < ttl);
            if self.negative.len() >= NEGATIVE_CAP {
                self.negative.clear();
            }
        }
        self.negative
            .insert((parent, Arc::from(name)), Instant::now());
    }

    /// What the marker of a prefix mount's root says (`None`: it has none, the root is
    /// implicit and keeps what it shows).
    pub fn refresh_root(&mut self, found: Option<PosixAttr>) -> Inode {
        let root = self
            .inodes
            .get_mut(&ROOT_INO)
            .expect("the root is never dropped");
        if let Some(mut attr) = found.filter(|_| !root.local) {
            settle_dir_times(&mut self.dir_times, &root.key, &mut attr);
            root.attr = attr;
            root.own_marker = None;
        }
        root.fetched = Some(Instant::now());
        root.clone()
    }

    /// The entries of directory `ino` changed on this mount at `now`.
    pub fn touch_dir(&mut self, ino: u64, now: SystemTime) {
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.attr.mtime = now;
            n.attr.ctime = now;
            let key = n.key.clone();
            self.dir_times.insert(key, (now, now));
        }
    }

    /// Directory `ino` now has attributes `attr`, set here (chmod, utimens): its times are
    /// what was set, earlier ones included.
    pub fn set_dir_attr(&mut self, ino: u64, attr: &PosixAttr) {
        if let Some(n) = self.inodes.get(&ino) {
            let key = n.key.clone();
            self.dir_times.insert(key, (attr.mtime, attr.ctime));
        }
    }

    /// Record what a lookup or listing found for `name` in `parent` and take `refs` kernel
    /// references on it. An existing inode of the same kind is updated in place; one of another
    /// kind (a file replaced by a directory) is unlinked from the name and a new one made.
    /// `keep_richer`: a listing must not overwrite HEAD attributes of the same object version.
    pub fn upsert(
        &mut self,
        parent: u64,
        name: &str,
        attr: PosixAttr,
        refs: u64,
        keep_richer: bool,
    ) -> Inode {
        let mut attr = attr;
        let name: Arc<str> = Arc::from(name);
        self.negative.remove(&(parent, name.clone()));
        self.known.added(parent, &name);
        let dir_key = self
            .inodes
            .get(&parent)
            .map(|p| p.key.clone())
            .unwrap_or_else(|| Arc::from(""));
        if let Some(&ino) = self.by_name.get(&(parent, name.clone())) {
            let node = self
                .inodes
                .get_mut(&ino)
                .expect("by_name points at a live inode");
            // A listing cannot tell a symlink or a mode; what a HEAD of the same version
            // (same ETag, or both implicit directories) found stays. A new HEAD always wins
            // (a chmod by another client keeps the ETag).
            // A listing shows a directory only as a common prefix (no marker ETag): a marker's
            // attributes from a HEAD stay too.
            let marker_dir = node.attr.kind == FileKind::Directory
                && attr.source == AttrSource::Implicit
                && node.attr.source == AttrSource::Head;
            let keep = node.local
                || (keep_richer
                    && attr.source != AttrSource::Head
                    && (marker_dir
                        || (node.attr.etag == attr.etag
                            && node.attr.source != AttrSource::Listing)));
            // Passthrough handles read the version they opened: another gets a new inode.
            let pinned_elsewhere = node
                .io
                .pinned_to()
                .is_some_and(|e| attr.etag.as_deref() != Some(e));
            if keep || (node.attr.kind == attr.kind && !pinned_elsewhere) {
                if !keep {
                    if attr.kind == FileKind::Directory {
                        settle_dir_times(&mut self.dir_times, &node.key, &mut attr);
                    }
                    node.attr = attr;
                    node.own_marker = None;
                    node.own_append = None;
                }
                node.fetched = Some(Instant::now());
                node.lookups += refs;
                return node.clone();
            }
            if pinned_elsewhere {
                node.attr.unlinked = true;
            }
            self.by_name.remove(&(parent, name.clone()));
        }
        let key: Arc<str> = Arc::from(key_for(&dir_key, &name, attr.kind));
        if attr.kind == FileKind::Directory {
            settle_dir_times(&mut self.dir_times, &key, &mut attr);
        }
        self.insert_new(parent, name, key, attr, refs, Some(Instant::now()))
    }

    /// A new inode for `name` in `parent` (whose number is free), with `refs` references.
    fn insert_new(
        &mut self,
        parent: u64,
        name: Arc<str>,
        key: Arc<str>,
        attr: PosixAttr,
        refs: u64,
        fetched: Option<Instant>,
    ) -> Inode {
        let mut ino = path_hash(&key);
        while self.inodes.contains_key(&ino) {
            ino = ino.wrapping_add(1).max(2) & (u64::MAX >> 1);
        }
        let node = Inode {
            ino,
            parent,
            name: name.clone(),
            key,
            attr,
            fetched,
            lookups: refs,
            last_open_etag: None,
            local: false,
            own_marker: None,
            own_append: None,
            io: IoMode::default(),
        };
        self.inodes.insert(ino, node.clone());
        self.by_name.insert((parent, name), ino);
        node
    }

    /// A new kernel handle of `ino` of the version `etag` (`io_mode`): the backing it reads
    /// through, if passthrough. On `Pinned`, the name now has a new inode (to be looked up
    /// again, so the open is to fail with ESTALE) and `ino` keeps its handles.
    pub fn open_handle(
        &mut self,
        ino: u64,
        etag: &str,
        offer: Option<Arc<Backing>>,
        write: bool,
    ) -> Result<Option<Arc<Backing>>, Pinned> {
        let Some(n) = self.get_mut(ino) else {
            return Ok(None);
        };
        let r = n.io.open(etag, offer, write);
        if r.is_err() {
            self.split_pinned(ino);
        }
        r
    }

    /// A kernel handle of `ino` of kind `io` was released.
    pub fn closed_handle(&mut self, ino: u64, io: HandleIo) {
        if let Some(n) = self.get_mut(ino) {
            n.io.closed(io);
        }
    }

    /// The kernel would not take a passthrough handle of `ino`: it is plain.
    pub fn through_refused(&mut self, ino: u64) {
        if let Some(n) = self.get_mut(ino) {
            n.io.refused();
        }
    }

    /// Give the name of the pinned `ino` a new inode with the same attributes, to be checked
    /// against COS at its first use; `ino` is left unlinked to whoever holds it.
    fn split_pinned(&mut self, ino: u64) {
        let Some(n) = self.inodes.get_mut(&ino) else {
            return;
        };
        let k = (n.parent, n.name.clone());
        if self.by_name.get(&k) != Some(&ino) {
            return; // already unlinked from its name
        }
        n.attr.unlinked = true;
        let (key, mut attr) = (n.key.clone(), n.attr.clone());
        attr.unlinked = false;
        self.by_name.remove(&k);
        self.insert_new(k.0, k.1, key, attr, 0, None);
    }

    /// Forget that `name` in `parent` exists (it was found deleted).
    pub fn unlink_name(&mut self, parent: u64, name: &str) {
        self.known.removed(parent, name);
        if let Some(ino) = self.by_name.remove(&(parent, Arc::from(name))) {
            self.known.gone(ino);
            // Whoever still holds it (an open fd, a cwd) sees `st_nlink` 0.
            if let Some(n) = self.inodes.get_mut(&ino) {
                n.attr.unlinked = true;
            }
        }
    }

    /// `name` in `parent` is now `new_name` in `new_parent` (same inode number). A directory
    /// takes every known inode below it along (their keys change prefix). Whatever stood
    /// under the new name is unlinked from it.
    pub fn rename(&mut self, parent: u64, name: &str, new_parent: u64, new_name: &str) {
        self.known.removed(parent, name);
        let Some(ino) = self.by_name.remove(&(parent, Arc::from(name))) else {
            return;
        };
        let new_dir_key = self
            .inodes
            .get(&new_parent)
            .map(|p| p.key.clone())
            .unwrap_or_else(|| Arc::from(""));
        let new_name: Arc<str> = Arc::from(new_name);
        let Some(node) = self.inodes.get_mut(&ino) else {
            return;
        };
        let old_key = node.key.clone();
        let new_key: Arc<str> = Arc::from(key_for(&new_dir_key, &new_name, node.attr.kind));
        node.parent = new_parent;
        node.name = new_name.clone();
        node.key = new_key.clone();
        // The objects were copied: their Last-Modified is new.
        node.attr.last_modified = None;
        let is_dir = node.attr.kind == FileKind::Directory;
        self.negative.remove(&(new_parent, new_name.clone()));
        self.known.added(new_parent, &new_name);
        let replaced = self.by_name.insert((new_parent, new_name), ino);
        // The inode the rename replaced has no name left: `st_nlink` 0 for whoever holds it.
        if let Some(old) = replaced.filter(|o| *o != ino) {
            if let Some(n) = self.inodes.get_mut(&old) {
                n.attr.unlinked = true;
            }
        }
        if is_dir && !old_key.is_empty() {
            for n in self.inodes.values_mut() {
                if n.ino != ino && n.key.starts_with(&*old_key) {
                    n.key = Arc::from(format!("{new_key}{}", &n.key[old_key.len()..]));
                    n.attr.last_modified = None;
                }
            }
        }
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.inodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let node = self.inodes.remove(&ino).expect("present");
            let k = (node.parent, node.name.clone());
            if self.by_name.get(&k) == Some(&ino) {
                self.by_name.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::attr::{implicit_dir, AttrDefaults};
    use std::time::SystemTime;

    fn file(etag: &str, perm: u32, source: AttrSource) -> PosixAttr {
        let mut a = implicit_dir(&AttrDefaults::for_current_user(), SystemTime::now());
        a.kind = FileKind::File;
        a.perm = perm;
        a.etag = Some(etag.into());
        a.source = source;
        a
    }

    fn table() -> InodeTable {
        let root = implicit_dir(&AttrDefaults::for_current_user(), SystemTime::now());
        InodeTable::new("pre/", root)
    }

    #[test]
    fn stable_numbers_and_keys() {
        let mut t = table();
        let a = t.upsert(ROOT_INO, "a", file("e1", 0o644, AttrSource::Head), 1, false);
        assert_eq!(&*a.key, "pre/a");
        t.forget(a.ino, 1);
        assert!(t.get(a.ino).is_none());
        let again = t.upsert(ROOT_INO, "a", file("e1", 0o644, AttrSource::Head), 1, false);
        assert_eq!(again.ino, a.ino, "same path, same inode after forget");
        let d = t.upsert(
            ROOT_INO,
            "d",
            implicit_dir(&AttrDefaults::for_current_user(), SystemTime::now()),
            1,
            false,
        );
        assert_eq!(&*d.key, "pre/d/");
        let f = t.upsert(d.ino, "f", file("e", 0o644, AttrSource::Listing), 2, false);
        assert_eq!(&*f.key, "pre/d/f");
        t.forget(f.ino, 1);
        assert!(t.get(f.ino).is_some(), "one reference left");
        t.forget(f.ino, 1);
        assert!(t.child(d.ino, "f").is_none());
    }

    #[test]
    fn listing_keeps_head_attrs_of_same_version() {
        let mut t = table();
        t.upsert(ROOT_INO, "a", file("e1", 0o600, AttrSource::Head), 1, false);
        let n = t.upsert(
            ROOT_INO,
            "a",
            file("e1", 0o644, AttrSource::Listing),
            1,
            true,
        );
        assert_eq!(n.attr.perm, 0o600);
        assert_eq!(n.lookups, 2);
        let n = t.upsert(
            ROOT_INO,
            "a",
            file("e2", 0o644, AttrSource::Listing),
            1,
            true,
        );
        assert_eq!(n.attr.perm, 0o644, "a new version replaces the attributes");
        let mut link = file("e3", 0o777, AttrSource::Head);
        link.kind = FileKind::Symlink;
        let l = t.upsert(ROOT_INO, "l", link, 1, false);
        let n = t.upsert(
            ROOT_INO,
            "l",
            file("e3", 0o644, AttrSource::Listing),
            1,
            true,
        );
        assert_eq!((n.ino, n.attr.kind), (l.ino, FileKind::Symlink));
    }

    #[test]
    fn kind_change_makes_a_new_inode() {
        let mut t = table();
        let f = t.upsert(ROOT_INO, "x", file("e", 0o644, AttrSource::Head), 1, false);
        let d = t.upsert(
            ROOT_INO,
            "x",
            implicit_dir(&AttrDefaults::for_current_user(), SystemTime::now()),
            1,
            false,
        );
        assert_ne!(f.ino, d.ino);
        assert_eq!(t.child(ROOT_INO, "x").unwrap().ino, d.ino);
        // The old file inode lives until the kernel forgets it, without stealing the name.
        t.forget(f.ino, 1);
        assert_eq!(t.child(ROOT_INO, "x").unwrap().ino, d.ino);
    }

    #[test]
    fn rename_moves_the_inode_and_its_descendants() {
        let mut t = table();
        let dir = implicit_dir(&AttrDefaults::for_current_user(), SystemTime::now());
        let d = t.upsert(ROOT_INO, "d", dir.clone(), 1, false);
        let f = t.upsert(d.ino, "f", file("e", 0o644, AttrSource::Head), 1, false);
        let e = t.upsert(ROOT_INO, "e", dir, 1, false);
        t.rename(ROOT_INO, "d", e.ino, "moved");
        assert!(t.child(ROOT_INO, "d").is_none());
        let m = t.child(e.ino, "moved").unwrap();
        assert_eq!((m.ino, &*m.key), (d.ino, "pre/e/moved/"));
        assert_eq!(&*t.get(f.ino).unwrap().key, "pre/e/moved/f");
    }

    #[test]
    fn negative_entries_expire() {
        let mut t = table();
        t.set_negative(ROOT_INO, "gone", Duration::from_secs(60));
        assert!(t.is_negative(ROOT_INO, "gone", Duration::from_secs(60)));
        assert!(!t.is_negative(ROOT_INO, "gone", Duration::ZERO));
        t.upsert(
            ROOT_INO,
            "gone",
            file("e", 0o644, AttrSource::Head),
            1,
            false,
        );
        assert!(!t.is_negative(ROOT_INO, "gone", Duration::from_secs(60)));
    }
}
