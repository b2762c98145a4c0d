//! File operations of `CosFs`: open, create, mknod, setattr (truncate, chmod, chown, utimens)
//! and fallocate; read and write are the handle's (`open_file`), and what a handle needs of
//! the mount is the `Mount` impl here.
//!
//! - Opening for writing attaches the handle to the file's `FileWriter` (made on first use:
//!   a fresh stream for `O_TRUNC`, a staged file over the object otherwise). The writer lives
//!   until the last writing handle is released; the inode is written here meanwhile.
//! - When a written file reaches COS (the commit points of flush, fsync and release) is
//!   `commit`'s business; xattr operations are in `xattr_ops`.
//! - Metadata changes (chmod, chown, utimens, xattrs) on a file open for writing ride along
//!   with its next publish; on a closed file they are one copy of the object onto itself; on
//!   a file unlinked or replaced while open they stay in memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::object::{MetadataDirective, ObjectMeta, ObjectStore, PutOptions, UserMeta};

use super::{CosFs, Entry, LockedWriter, Mount, OpenFile, Opened, SharedWriter, Store};
use crate::fs::attr::{self, AttrSource, FileKind, PosixAttr};
use crate::fs::caller::process_of;
use crate::fs::content_type::BodyHeaders;
use crate::fs::error::{FsError, FsResult};
use crate::fs::meta;
use crate::fs::namespace::{HandleIo, Inode, Pinned};
use crate::fs::reader::ObjectReader;
use crate::fs::write::{FileWriter, WriteCtx};

/// How a file is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenFlags {
    pub write: bool,
    pub truncate: bool,
    pub append: bool,
    /// `O_DIRECT`: never passthrough, whose reads would then bypass the page cache of the
    /// disk cache's file and wait on the disk for every one (`core/passthrough.rs`).
    pub direct: bool,
}

/// Who makes a new entry: the caller's uid and gid, as the kernel sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// The attribute changes of one setattr.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
    /// `mtime` is "now" as the kernel sends it with a truncate (`O_TRUNC`, `truncate(2)`),
    /// not a time a program chose.
    pub mtime_now: bool,
}

impl SetAttr {
    fn changes_meta(&self) -> bool {
        self.mode.is_some()
            || self.uid.is_some()
            || self.gid.is_some()
            || self.atime.is_some()
            || self.mtime.is_some()
    }

    fn apply(&self, a: &mut PosixAttr) {
        if let Some(m) = self.mode {
            a.perm = m & 0o7777;
        }
        if let Some(u) = self.uid {
            a.uid = u;
        }
        if let Some(g) = self.gid {
            a.gid = g;
        }
        if let Some(t) = self.atime {
            a.atime = t;
        }
        if let Some(t) = self.mtime {
            a.mtime = t;
        }
        a.ctime = SystemTime::now();
    }
}

/// Attributes of a file, directory or symlink made on this mount.
pub(super) fn new_attr(kind: FileKind, perm: u32, owner: Owner, size: u64) -> PosixAttr {
    let now = SystemTime::now();
    PosixAttr {
        kind,
        perm: perm & 0o7777,
        uid: owner.uid,
        gid: owner.gid,
        size,
        rdev: 0,
        mtime: now,
        ctime: now,
        atime: now,
        etag: None,
        last_modified: None,
        checked: None,
        source: AttrSource::Head,
        unlinked: false,
        target: None,
        archived: false,
        appendable: false,
    }
}

/// What a handle (`OpenFile`) needs of the mount.
impl<S: ObjectStore + ?Sized> Mount<S> for CosFs<S> {
    fn wctx(&self) -> &WriteCtx<Store<S>> {
        &self.wctx
    }

    async fn locked_writer(&self, ino: u64) -> Option<LockedWriter<S>> {
        CosFs::locked_writer(self, ino).await
    }

    async fn read_version(
        &self,
        reader: &Arc<ObjectReader>,
        offset: u64,
        size: u32,
    ) -> FsResult<Bytes> {
        let cache = self.cache_ref();
        self.within_budget(reader.read(&self.store, &cache, offset, size))
            .await
    }

    fn op_timeout(&self) -> std::time::Duration {
        self.cfg.op_timeout
    }

    fn sync_attr(&self, ino: u64, a: &PosixAttr) {
        CosFs::sync_attr(self, ino, a)
    }

    async fn keep_orphan_at(&self, key: &str, ino: u64) {
        CosFs::keep_orphan_at(self, key, ino).await
    }

    async fn release_writer(&self, ino: u64, w: &SharedWriter<S>) {
        CosFs::release_writer(self, ino, w).await
    }
}

impl<S: ObjectStore + ?Sized> CosFs<S> {
    pub(super) fn writable(&self) -> FsResult<()> {
        if self.cfg.read_only || self.stopping.load(Ordering::Relaxed) {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    pub(super) fn writer(&self, ino: u64) -> Option<SharedWriter<S>> {
        self.writers.get(ino)
    }

    /// The writer of `ino`, locked, if it is still the file's writer once the lock is held:
    /// a release may finish and drop it while this waits, and a change made to a dropped
    /// writer would be lost (the caller then takes the closed-file path).
    pub(super) async fn locked_writer(&self, ino: u64) -> Option<LockedWriter<S>> {
        let w = self.writer(ino)?;
        let g = w.clone().lock_owned().await;
        self.writer(ino)
            .is_some_and(|cur| Arc::ptr_eq(&cur, &w))
            .then_some(g)
    }

    pub(super) fn handle(&self, fh: u64) -> FsResult<Arc<OpenFile<S>>> {
        self.handles.file(fh)
    }

    pub(super) fn new_fh(&self, h: OpenFile<S>) -> u64 {
        self.handles.add_file(h)
    }

    /// Copy the writer's attributes to the inode table.
    pub(super) fn sync_attr(&self, ino: u64, a: &PosixAttr) {
        self.ns.table().written(ino, a);
    }

    /// Names in `dir` of files open for writing that are not on COS yet.
    /// Whether any handle of this mount has `ino` open.
    pub(super) fn is_open(&self, ino: u64) -> bool {
        !self.handles.files_of(ino).is_empty()
    }

    /// The writers of files whose parent is `dir`, with the files' names.
    pub(super) fn writers_in(&self, dir: u64) -> Vec<(String, SharedWriter<S>)> {
        let writers = self.writers.all();
        let t = self.ns.table();
        writers
            .into_iter()
            .filter_map(|(ino, w)| {
                let n = t.get(ino).filter(|n| n.parent == dir)?;
                Some((n.name.to_string(), w))
            })
            .collect()
    }

    /// The names of the files open for writing in `dir` (present whatever a LIST says).
    pub(super) fn open_names_in(&self, dir: u64) -> Vec<String> {
        self.writers_in(dir).into_iter().map(|(n, _)| n).collect()
    }

    /// Files of `dir` created here and not on COS yet, sorted (a writer busy committing is
    /// left out: its object is on its way to the listing).
    pub(super) async fn local_only_children(&self, dir: u64) -> Vec<String> {
        let mut names = Vec::new();
        for (name, w) in self.writers_in(dir) {
            // A writer busy publishing is waited for: its name is on COS by the time a
            // listing that starts next is sent, or still only here.
            let g = w.lock().await;
            if !g.exists_remote() && !g.is_unlinked() {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    /// The current object behind `node` (HEAD), or None when there is none.
    pub(super) async fn head(&self, key: &str) -> FsResult<Option<ObjectMeta>> {
        match self.store.head_object(key).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Attach to (or make) the writer of `node`; takes one handle count.
    async fn attach_writer(&self, node: &Inode, truncate: bool) -> FsResult<SharedWriter<S>> {
        loop {
            if self.writer(node.ino).is_none() {
                // The appendable object this mount appended to within the TTL needs no HEAD
                // (as the inode has it now: the last writer's release may have just set it).
                let own = (!truncate)
                    .then(|| {
                        let t = self.ns.table();
                        let n = t.get(node.ino)?;
                        n.own_append
                            .clone()
                            .filter(|_| n.is_fresh(self.cfg.metadata_ttl))
                    })
                    .flatten();
                let existing = match own {
                    Some(m) => Some((*m).clone()),
                    None => self.head(&node.key).await?,
                };
                let mut a = match &existing {
                    Some(m) => attr::from_object(m, false, &self.cfg.defaults),
                    None if truncate => node.attr.clone(),
                    None => return Err(FsError::NotFound),
                };
                if a.kind != FileKind::File {
                    return Err(FsError::Stale);
                }
                a.source = AttrSource::Head;
                let w = match &existing {
                    _ if truncate => {
                        FileWriter::new_empty(&self.wctx, &node.key, a, existing.as_ref())
                    }
                    Some(m) if m.appendable => FileWriter::new_append(&node.key, a, m),
                    Some(m) => {
                        self.check_restored(&node.key, m)?;
                        FileWriter::new_over(&node.key, a, m)
                    }
                    None => unreachable!("checked above"),
                };
                // Another open may have made one meanwhile: the first one stays.
                self.writers.add_unless_present(node.ino, w);
            }
            let Some(mut g) = self.locked_writer(node.ino).await else {
                continue; // released while we waited: make a new one
            };
            if g.publish_failed() || g.failed() {
                // Its program was told the publish failed, and its release (which drops the
                // changes) is still on its way: this open starts from what COS holds.
                let existing = self.head(&node.key).await?;
                let mut a = match &existing {
                    Some(m) => attr::from_object(m, false, &self.cfg.defaults),
                    None => g.attr().clone(),
                };
                a.source = AttrSource::Head;
                g.restart_from(&self.wctx, existing.as_ref(), a).await;
            }
            if truncate {
                if g.size() > 0 {
                    g.truncate(&self.wctx, 0).await?;
                }
                // O_TRUNC of an existing file marks mtime and ctime, also when it was empty.
                g.touch();
            }
            g.add_handle();
            self.ns.table().begin_writing(node.ino, Some(g.attr()));
            let w = tokio::sync::OwnedMutexGuard::mutex(&g).clone();
            drop(g);
            return Ok(w);
        }
    }

    /// Open `ino` for thread `pid`. Readers pin the object's ETag; writers share the file's
    /// `FileWriter`. Opening for reading is bounded by `op_timeout`; opening for writing makes
    /// at most two requests of the client's budget each.
    pub async fn open(&self, ino: u64, flags: OpenFlags, pid: u32) -> FsResult<Opened> {
        if flags.write {
            return self.open_now(ino, flags, pid).await;
        }
        self.within_budget(self.open_now(ino, flags, pid)).await
    }

    async fn open_now(&self, ino: u64, flags: OpenFlags, pid: u32) -> FsResult<Opened> {
        if flags.write {
            self.writable()?;
        }
        let mut node = self.node(ino)?;
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::IsDir);
        }
        // A listing could not tell a symlink from a file: check before serving bytes.
        let mut headed = None;
        if !node.local
            && (!node.is_fresh(self.cfg.metadata_ttl) || node.attr.source == AttrSource::Listing)
        {
            let fresh = match self.head(&node.key).await? {
                Some(m) => {
                    let a = attr::from_object(&m, false, &self.cfg.defaults);
                    headed = Some(m);
                    a
                }
                None => {
                    self.ns.table().unlink_name(node.parent, &node.name);
                    return Err(FsError::NotFound);
                }
            };
            let now = self
                .ns
                .table()
                .upsert(node.parent, &node.name, fresh.clone(), 0, false);
            if now.ino != ino {
                // The name has a new inode: the kind changed (a symlink now), or passthrough
                // handles pin this one to its version. ESTALE makes the kernel look the name
                // up again and retry the open once, on the new inode.
                return Err(FsError::Stale);
            }
            node.attr = fresh;
        }
        if !flags.write && !node.local {
            // An archived object fails its open, not some read later.
            match &headed {
                Some(m) => self.check_restored(&node.key, m)?,
                None => self.check_archived_open(&node).await?,
            }
        }
        let etag = node.attr.etag.clone().unwrap_or_default();
        let offer = match flags.write || flags.direct {
            false => self.whole_backing(&node, &etag).await,
            true => None,
        };
        // A writer, or another version, while passthrough handles are open: the name got a
        // new inode, which the kernel opens after ESTALE (`namespace::io_mode`).
        let through = self
            .ns
            .table()
            .open_handle(ino, &etag, offer, flags.write)
            .map_err(|Pinned| FsError::Stale)?;
        let io = match through {
            Some(_) => HandleIo::Through,
            None => HandleIo::Plain,
        };
        let writer = match flags.write {
            true => match self.attach_writer(&node, flags.truncate).await {
                Ok(w) => Some(w),
                Err(e) => {
                    self.ns.table().closed_handle(ino, io);
                    return Err(e);
                }
            },
            false => None,
        };
        // The kernel takes no page-cache flags with passthrough (it reads the backing's).
        let keep_cache =
            !flags.write && self.ns.table().opened_version(ino, &etag) && through.is_none();
        let reader = if node.attr.appendable {
            ObjectReader::new_appendable(&node.key, &etag, node.attr.size)
        } else {
            ObjectReader::new(&node.key, &etag, node.attr.size)
        };
        let fh = self.new_fh(
            match writer {
                Some(w) => OpenFile::writing(ino, reader, w, flags.append, process_of(pid)),
                None => OpenFile::reading(ino, reader),
            }
            .for_kernel(io),
        );
        Ok(Opened {
            fh,
            keep_cache,
            through,
        })
    }

    /// Create and open a new file `name` in `parent` for thread `pid`, owned by `owner`.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        owner: Owner,
        flags: OpenFlags,
        pid: u32,
    ) -> FsResult<(Entry, Opened)> {
        let (key, a) = self.new_entry(parent, name, FileKind::File, mode, owner, 0)?;
        let mut w = if flags.append && self.cfg.appendable_logs {
            FileWriter::new_appendable(&self.wctx, &key, a.clone())
        } else {
            FileWriter::new_empty(&self.wctx, &key, a.clone(), None)
        };
        w.add_handle();
        let entry = self.add_entry(parent, name, a);
        let mut t = self.ns.table();
        t.begin_writing(entry.ino, None);
        // A new inode has no passthrough handles: this is its first plain one.
        let _ = t.open_handle(entry.ino, "", None, true);
        drop(t);
        let w = self.writers.add(entry.ino, w);
        let fh = self.new_fh(
            OpenFile::writing(
                entry.ino,
                ObjectReader::new(&key, "", 0),
                w,
                flags.append,
                process_of(pid),
            )
            .for_kernel(HandleIo::Plain),
        );
        Ok((
            entry,
            Opened {
                fh,
                keep_cache: false,
                through: None,
            },
        ))
    }

    /// mknod(2): a regular file is created and committed empty at once (no handle stays
    /// open); a FIFO, socket or device is a zero-byte object with its type (and device number)
    /// in its metadata, as s3fs writes it. Opening one is the kernel's business: no data
    /// goes to COS.
    pub async fn mknod(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        rdev: u32,
        owner: Owner,
    ) -> FsResult<Entry> {
        let kind = match FileKind::from_mode(mode) {
            Some(FileKind::File) => {
                let flags = OpenFlags {
                    write: true,
                    ..Default::default()
                };
                let (entry, opened) = self.create(parent, name, mode, owner, flags, 0).await?;
                let committed = self.fsync(opened.fh).await;
                self.release(opened.fh).await;
                return committed.map(|_| entry);
            }
            Some(k) if k.is_special() => k,
            _ => return Err(FsError::UnsupportedKind),
        };
        let (key, mut a) = self.new_entry(parent, name, kind, mode, owner, 0)?;
        if kind.is_device() {
            a.rdev = rdev;
        }
        let opts = meta::put_options(&a, &Default::default(), &BodyHeaders::default(), None)?;
        a.etag = Some(self.store.put_object(&key, Bytes::new(), &opts).await?.etag);
        Ok(self.add_entry(parent, name, a))
    }

    /// Read from handle `fh` (`OpenFile::read`).
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        self.handle(fh)?.read(self, offset, size).await
    }

    /// Write `data` at `offset` (at the end for `O_APPEND` handles); returns the bytes taken.
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.handle(fh)?.write(self, offset, data).await
    }

    /// chmod, chown, utimens and truncate.
    pub async fn setattr(&self, ino: u64, fh: Option<u64>, set: SetAttr) -> FsResult<Entry> {
        // ftruncate on a handle open for writing is a write: allowed while stopping.
        let on_writer = fh
            .and_then(|f| self.handle(f).ok())
            .is_some_and(|h| h.writes());
        if !on_writer || self.cfg.read_only {
            self.writable()?;
        }
        let node = self.node(ino)?;
        if fh.is_some() {
            self.mark_written(ino); // ftruncate
        }
        // A truncate's "mtime = now" is its own change (the truncate moves mtime), not a
        // utimens: that would make the next close a commit point, and `>` and `dd of=` would
        // publish an empty file at the close of the descriptor they dup away.
        let mut set = set;
        if set.size.is_some() && set.mtime_now {
            set.mtime = None;
        }
        if let Some(size) = set.size {
            if node.attr.kind == FileKind::Directory {
                return Err(FsError::IsDir);
            }
            self.truncate(&node, fh, size).await?;
        }
        if set.changes_meta() {
            self.change_meta(&node, |a, _| {
                set.apply(a);
                Ok(())
            })
            .await?;
        }
        let node = self.node(ino)?;
        Ok(Entry {
            ino,
            attr: node.attr,
        })
    }

    async fn truncate(&self, node: &Inode, fh: Option<u64>, size: u64) -> FsResult<()> {
        let open = fh
            .and_then(|fh| self.handle(fh).ok())
            .is_some_and(|h| h.writes());
        // attach_writer takes a handle count, so that writer cannot go before it is locked.
        let mut g = match self.locked_writer(node.ino).await {
            Some(g) => g,
            None => {
                self.attach_writer(node, size == 0)
                    .await?
                    .lock_owned()
                    .await
            }
        };
        let temporary = !open && self.handles.files_of(node.ino).iter().all(|h| !h.writes());
        g.truncate(&self.wctx, size).await?;
        self.sync_attr(node.ino, g.attr());
        drop(g);
        if !temporary {
            return Ok(());
        }
        // truncate(2) on a closed file: publish now and let go of the writer.
        let Some(w) = self.writer(node.ino) else {
            return Ok(()); // released meanwhile: its release published it
        };
        let reader = ObjectReader::new(&node.key, "", 0);
        let fh = self.new_fh(OpenFile::writing(node.ino, reader, w, false, 0));
        let r = self.fsync(fh).await;
        self.release(fh).await;
        r
    }

    /// fallocate: plain allocation (mode 0) extends the file like truncate; keeping the size
    /// is a no-op (an object store has no blocks to reserve); other modes are EOPNOTSUPP.
    pub async fn fallocate(&self, fh: u64, offset: u64, len: u64, mode: i32) -> FsResult<()> {
        const KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
        if mode & !KEEP_SIZE != 0 {
            return Err(FsError::Unsupported(
                "fallocate modes other than plain allocation",
            ));
        }
        self.handle(fh)?
            .allocate(self, offset + len, mode & KEEP_SIZE != 0)
            .await
    }

    /// Change the metadata of `node`: folded into its writer if it is open for writing, else
    /// one copy onto itself (files, symlinks) or a new marker (directories).
    pub(super) async fn change_meta<F>(&self, node: &Inode, change: F) -> FsResult<()>
    where
        F: FnOnce(&mut PosixAttr, &mut UserMeta) -> FsResult<()>,
    {
        if let Some(mut g) = self.locked_writer(node.ino).await {
            // The kernel names no handle for chmod/utimens; the next commit of any writing
            // handle of the file takes the change along.
            self.mark_written(node.ino);
            let (mut a, mut foreign) = (g.attr().clone(), g.foreign().clone());
            change(&mut a, &mut foreign)?;
            meta::put_options(&a, &foreign, &BodyHeaders::default(), None)?;
            g.set_meta(a, foreign)?;
            self.sync_attr(node.ino, g.attr());
            return Ok(());
        }
        let current = self.node(node.ino)?;
        if current.attr.unlinked {
            // Unlinked or replaced while open: the object under its old key is not its own
            // any more (or is deleted at its last close), so the change stays in memory.
            let mut a = current.attr.clone();
            change(&mut a, &mut UserMeta::new())?;
            self.sync_attr(node.ino, &a);
            return Ok(());
        }
        // A marker this mount wrote within the TTL is what COS holds: no HEAD to learn it.
        let own_marker = current
            .own_marker
            .clone()
            .filter(|_| current.is_fresh(self.cfg.metadata_ttl));
        let existing = match own_marker {
            Some(_) => None,
            None => self.head(&node.key).await?,
        };
        let (mut a, mut foreign) = match (&existing, own_marker) {
            (_, Some(foreign)) => (current.attr.clone(), (*foreign).clone()),
            (Some(m), None) => (
                attr::from_object(m, node.attr.kind == FileKind::Directory, &self.cfg.defaults),
                meta::foreign_meta(&m.user_meta),
            ),
            (None, None) if node.attr.kind == FileKind::Directory => {
                (node.attr.clone(), UserMeta::new())
            }
            (None, None) => return Err(FsError::NotFound),
        };
        if node.attr.kind == FileKind::Directory {
            // Entries made here moved the directory's mtime on this mount only (its marker is
            // not rewritten per entry): a rewrite of the marker keeps the later time.
            a.mtime = a.mtime.max(current.attr.mtime);
        }
        change(&mut a, &mut foreign)?;
        let etag = if node.attr.kind == FileKind::Directory {
            if node.key.is_empty() {
                return Err(FsError::NotPermitted(
                    "the bucket root has no marker to hold metadata",
                ));
            }
            let etag = meta::put_marker(&*self.store, &node.key, &a, &foreign).await?;
            self.wrote_marker(node.ino, foreign);
            etag
        } else {
            let m = existing.expect("files were checked above");
            self.check_copy_source(&node.key, &m, FsError::NotCopyable)?;
            let opts: PutOptions = meta::put_options(
                &a,
                &foreign,
                &BodyHeaders::of(&m),
                m.storage_class.as_deref(),
            )?;
            meta::copy_object(
                &*self.store,
                &node.key,
                &node.key,
                (m.size, &m.etag, None),
                MetadataDirective::Replaced(opts),
            )
            .await?
        };
        a.changed_here(Some(etag));
        self.sync_attr(node.ino, &a);
        Ok(())
    }

    /// This mount wrote the marker of the directory `ino`, with `foreign` headers besides its own.
    pub(super) fn wrote_marker(&self, ino: u64, foreign: UserMeta) {
        self.ns.table().wrote_marker(ino, foreign);
    }

    /// A directory's contents changed here: its mtime is now (this mount's view).
    pub(super) fn touch_dir(&self, ino: u64) {
        self.ns.table().touch_dir(ino, SystemTime::now());
    }
}
