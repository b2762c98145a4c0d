//! Namespace operations of `CosFs`: mkdir, rmdir, unlink, symlink, rename, link (EPERM).
//!
//! - A new entry is owned by the caller; in a directory with the set-group-ID bit it takes the
//!   directory's group instead, and a new subdirectory the bit too (`new_entry`). Clearing
//!   S_ISGID from a new file whose creator is not in that group is the kernel's (since Linux
//!   6.0 the VFS strips it before create/mknod reach the filesystem; chmod's is done by the
//!   kernel's `setattr_prepare` under `default_permissions`).
//! - mkdir writes a zero-byte `name/` marker (`application/x-directory`) carrying the mode,
//!   owner and times; rmdir deletes it after checking that no key is below it (implicit
//!   directories work the same: deleting a missing marker succeeds). A directory known to be
//!   empty (`KnownDirs`) needs no LIST for that.
//! - unlink of a closed file and rmdir queue their DELETE (`deferred_deletes`): rmdir and
//!   fsync of a directory wait for the deletes below it and report the ones that failed.
//! - Removing the last entry of a directory that exists only implicitly (no marker) would make
//!   it vanish, so such a parent gets a marker first.
//! - rename copies and then deletes: a file is one PUT Object - Copy (multipart above 5 GB)
//!   guarded by its ETag; a directory is every key below it, copied with bounded parallelism,
//!   and only when all copies succeeded are the sources deleted (DELETE Multiple). A failed
//!   copy removes the copies already made and leaves the source as it was. Not atomic: another
//!   client may see both names for a moment (documented). Files open for writing are
//!   published first and follow the rename; what happens to other open handles of the renamed
//!   and the replaced file is `open_rename`'s business.

use bytes::Bytes;
use futures_util::{stream, StreamExt};

use crate::object::{ErrorKind, ListRequest, MetadataDirective, ObjectStore, MAX_DELETE_KEYS};

use super::files::{new_attr, Owner};
use super::{CosFs, Entry};
use crate::fs::attr::{AttrSource, FileKind, PosixAttr, SET_GROUP_ID};
use crate::fs::content_type::BodyHeaders;
use crate::fs::error::{FsError, FsResult};
use crate::fs::lookup::lookup;
use crate::fs::meta;
use crate::fs::names::{check_key, check_name};
use crate::fs::namespace::{key_for, Inode};
use crate::fs::orphans::Orphan;
use crate::fs::rename_journal::{delete_all, RenameJournal};

/// Copies in flight while renaming a directory.
const RENAME_CONCURRENCY: usize = 16;

/// `renameat2` flags.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// The key of a new entry `name` of `kind` in `parent` (create, mkdir, symlink, link),
    /// once the mount takes changes, the name is valid and the key fits COS's limit.
    /// The key of a new entry and the directory it goes in, once both are checked.
    fn new_entry_in(&self, parent: u64, name: &str, kind: FileKind) -> FsResult<(String, Inode)> {
        self.writable()?;
        check_name(name)?;
        let dir = self.dir_node(parent)?;
        let key = key_for(&dir.key, name, kind);
        check_key(&key)?;
        Ok((key, dir))
    }

    /// The key and attributes of a new entry made by `owner` (uid, gid): the caller owns it,
    /// except that a directory with the set-group-ID bit gives its group, and to a new
    /// subdirectory the bit itself (as Linux's `inode_init_owner`).
    pub(super) fn new_entry(
        &self,
        parent: u64,
        name: &str,
        kind: FileKind,
        perm: u32,
        owner: Owner,
        size: u64,
    ) -> FsResult<(String, PosixAttr)> {
        let (key, dir) = self.new_entry_in(parent, name, kind)?;
        let mut owner = owner;
        let mut perm = perm;
        if dir.attr.perm & SET_GROUP_ID != 0 {
            owner.gid = dir.attr.gid;
            if kind == FileKind::Directory {
                perm |= SET_GROUP_ID;
            }
        }
        Ok((key, new_attr(kind, perm, owner, size)))
    }

    /// link(2): objects cannot share data, so hard links are EPERM; an impossible name or key
    /// is refused first, as for any new entry.
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &str) -> FsResult<Entry> {
        let kind = self.node(ino)?.attr.kind;
        self.new_entry_in(new_parent, new_name, kind)?;
        Err(FsError::NotPermitted(
            "hard links (objects cannot share data)",
        ))
    }

    /// The inode of `name` in `parent` without taking a kernel reference (ENOENT if none).
    async fn resolve(&self, parent: u64, name: &str) -> FsResult<Inode> {
        check_name(name)?;
        let dir = self.dir_node(parent)?;
        {
            let t = self.ns.table();
            if let Some(c) = t.child(parent, name) {
                if c.local || c.is_fresh(self.cfg.metadata_ttl) {
                    return Ok(c.clone());
                }
            }
        }
        let attr = lookup(&*self.store, &dir.key, name, &self.cfg.defaults).await?;
        Ok(self.ns.table().upsert(parent, name, attr, 0, false))
    }

    async fn resolve_opt(&self, parent: u64, name: &str) -> FsResult<Option<Inode>> {
        match self.resolve(parent, name).await {
            Ok(n) => Ok(Some(n)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Give an implicit directory a marker, so removing its last entry keeps it.
    async fn keep_dir(&self, ino: u64) -> FsResult<()> {
        let dir = self.dir_node(ino)?;
        if dir.key.is_empty() || dir.attr.source != AttrSource::Implicit {
            return Ok(());
        }
        let etag = meta::put_marker(&*self.store, &dir.key, &dir.attr, &Default::default()).await?;
        let mut a = dir.attr;
        a.changed_here(Some(etag));
        self.sync_attr(ino, &a);
        self.wrote_marker(ino, Default::default());
        Ok(())
    }

    fn forget_name(&self, parent: u64, name: &str) {
        let mut t = self.ns.table();
        t.unlink_name(parent, name);
        t.set_negative(parent, name, self.cfg.metadata_ttl);
    }

    /// Whether anything (on COS, or a file not uploaded yet) is below the directory `node`.
    async fn dir_has_entries(&self, node: &Inode) -> FsResult<bool> {
        // Files of this directory being written: a commit in progress (a release uploading a
        // file just closed) is waited for, so its object is in the LIST below; a file not on
        // COS yet counts by itself.
        for (_, w) in self.writers_in(node.ino) {
            let g = w.lock().await;
            if !g.exists_remote() && !g.is_unlinked() {
                return Ok(true);
            }
        }
        if self.ns.table().known_empty(node.ino, self.cfg.metadata_ttl) {
            // Listed to its end (or made) within the TTL, and every name since removed.
            return Ok(false);
        }
        // Files unlinked while open keep their objects until their last close: not entries.
        let orphans = self.orphans.keys_under(&node.key);
        let req = ListRequest {
            prefix: node.key.to_string(),
            delimiter: None,
            marker: None,
            max_keys: 2 + orphans.len().min(997) as u32,
        };
        let page = self.store.list_objects(&req).await?;
        if let Some(e) = page
            .entries
            .iter()
            .find(|e| *e.key != *node.key && !orphans.contains(&e.key))
        {
            if e.key[node.key.len()..]
                .split('/')
                .next()
                .is_none_or(|n| check_name(n).is_err())
            {
                tracing::warn!(
                    dir = %node.key, key = %e.key,
                    "the directory is not empty: it holds a key no file name can show; remove it with a COS client"
                );
            }
            return Ok(true);
        }
        if page.is_truncated {
            return Ok(true); // a page of orphans only, and more keys after it
        }
        if !page.common_prefixes.is_empty() {
            return Ok(true);
        }
        Ok(!self.local_only_children(node.ino).await.is_empty())
    }

    /// `name` in `parent` was just made on this mount: it gets a fresh inode (whatever stood
    /// for the name, created elsewhere and not seen yet, is unlinked) with one kernel reference.
    pub(super) fn add_entry(&self, parent: u64, name: &str, attr: PosixAttr) -> Entry {
        let n = {
            let mut t = self.ns.table();
            t.unlink_name(parent, name);
            t.upsert(parent, name, attr, 1, false)
        };
        self.touch_dir(parent);
        Entry {
            ino: n.ino,
            attr: n.attr,
        }
    }

    pub async fn mkdir(&self, parent: u64, name: &str, mode: u32, owner: Owner) -> FsResult<Entry> {
        let (key, mut a) = self.new_entry(parent, name, FileKind::Directory, mode, owner, 0)?;
        a.etag = Some(meta::put_marker(&*self.store, &key, &a, &Default::default()).await?);
        let e = self.add_entry(parent, name, a);
        self.wrote_marker(e.ino, Default::default());
        // New and empty: a lookup in it needs no request until the TTL passes.
        self.ns.table().made_dir(e.ino);
        Ok(e)
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &[u8],
        owner: Owner,
    ) -> FsResult<Entry> {
        let (key, mut a) = self.new_entry(
            parent,
            name,
            FileKind::Symlink,
            0o777,
            owner,
            target.len() as u64,
        )?;
        let opts = meta::put_options(&a, &Default::default(), &BodyHeaders::default(), None)?;
        let body = Bytes::copy_from_slice(target);
        a.etag = Some(self.store.put_object(&key, body.clone(), &opts).await?.etag);
        a.target = Some(body);
        Ok(self.add_entry(parent, name, a))
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.writable()?;
        let node = self.resolve(parent, name).await?;
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::IsDir);
        }
        self.keep_dir(parent).await?;
        let mut remote = true;
        if let Some(mut g) = self.locked_writer(node.ino).await {
            // Open for writing: it goes on in memory and the staging area, never published.
            remote = g.exists_remote();
            g.mark_unlinked();
        }
        let open = self.is_open(node.ino);
        if open {
            if remote {
                self.orphans.add(
                    node.ino,
                    Orphan {
                        parent,
                        name: name.to_string(),
                        key: node.key.to_string(),
                        etag: node.attr.etag.clone(),
                    },
                );
            }
            self.ns.table().mark_unlinked(node.ino);
        } else if remote {
            self.store.delete_later(&node.key);
        }
        self.forget_name(parent, name);
        self.touch_dir(parent);
        Ok(())
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.writable()?;
        let node = self.resolve(parent, name).await?;
        if node.attr.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        // The deletes of what was unlinked below are a part of removing the directory: one
        // that failed left its key, so the directory is not empty on COS.
        self.settle_deletes(&node.key).await?;
        if self.dir_has_entries(&node).await? {
            return Err(FsError::NotEmpty);
        }
        self.keep_dir(parent).await?;
        self.store.delete_later(&node.key);
        self.forget_name(parent, name);
        self.touch_dir(parent);
        Ok(())
    }

    /// A commit point of the deferred deletes under the directory prefix `prefix` (`""`: the
    /// whole mount): wait for them, and EIO if any failed.
    pub async fn settle_deletes(&self, prefix: &str) -> FsResult<()> {
        self.store
            .settle(prefix)
            .await
            .map_err(FsError::DeletesFailed)
    }

    /// Deletes queued or in flight.
    pub fn pending_deletes(&self) -> usize {
        self.store.pending()
    }

    /// fsync of a directory: its entries' deletes have reached COS.
    pub async fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        let dir = self.dir_node(ino)?;
        self.settle_deletes(&dir.key).await
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        flags: u32,
    ) -> FsResult<()> {
        self.writable()?;
        if flags & RENAME_EXCHANGE != 0 || flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
            return Err(FsError::InvalidArgument(
                "RENAME_EXCHANGE and unknown rename flags",
            ));
        }
        check_name(new_name)?;
        let new_dir = self.dir_node(new_parent)?;
        check_key(&key_for(&new_dir.key, new_name, FileKind::File))?;
        let src = self.resolve(parent, name).await?;
        let new_key = key_for(&new_dir.key, new_name, src.attr.kind);
        check_key(&new_key)?;
        let dst = self.resolve_opt(new_parent, new_name).await?;
        if let Some(d) = &dst {
            if flags & RENAME_NOREPLACE != 0 {
                return Err(FsError::Exists);
            }
            if d.ino == src.ino {
                return Ok(());
            }
            match (
                src.attr.kind == FileKind::Directory,
                d.attr.kind == FileKind::Directory,
            ) {
                (false, true) => return Err(FsError::IsDir),
                (true, false) => return Err(FsError::NotDir),
                (true, true) if self.dir_has_entries(d).await? => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        if src.attr.kind == FileKind::Directory {
            self.rename_dir(parent, &src, &new_key, dst.is_some())
                .await?;
            if let Some(d) = &dst {
                // The empty directory that was replaced.
                if *d.key != *new_key {
                    self.store.delete_object(&d.key).await?;
                }
            }
        } else {
            let replaced = dst.as_ref().filter(|d| d.attr.kind != FileKind::Directory);
            let mut serial = None;
            let mut replaced_writer = None;
            if let Some(d) = replaced {
                if self.writer(d.ino).is_some() {
                    serial = Some(self.replace_lock.lock().await);
                    replaced_writer = self.locked_writer(d.ino).await;
                }
                if self.is_open(d.ino) {
                    self.keep_replaced(d, replaced_writer.as_ref()).await;
                }
            }
            self.keep_dir(parent).await?;
            self.keep_orphan_at(&new_key, src.ino).await;
            self.rename_file(&src, &new_key).await?;
            if let Some(d) = replaced {
                self.forget_replaced(d, replaced_writer.as_mut());
            }
            drop(replaced_writer);
            drop(serial);
        }
        self.ns.table().rename(parent, name, new_parent, new_name);
        self.ns
            .table()
            .set_negative(parent, name, self.cfg.metadata_ttl);
        self.touch_dir(parent);
        self.touch_dir(new_parent);
        Ok(())
    }

    async fn rename_file(&self, src: &Inode, new_key: &str) -> FsResult<()> {
        let mut guard = self.locked_writer(src.ino).await;
        if let Some(g) = guard.as_mut() {
            if !g.exists_remote() {
                // Not on COS yet: it is simply written under the new name.
                g.rekey_unpublished(new_key);
                return Ok(());
            }
            g.publish(&self.wctx).await?;
        }
        let m = self.store.head_object(&src.key).await?;
        self.check_copy_source(&src.key, &m, FsError::AppendableRename)?;
        let etag = meta::copy_object(
            &*self.store,
            &src.key,
            new_key,
            (m.size, &m.etag, m.storage_class.as_deref()),
            MetadataDirective::Copy,
        )
        .await?;
        self.store.delete_object(&src.key).await?;
        self.follow_rename(&src.key, &m.etag, new_key, &etag);
        if let Some(g) = guard.as_mut() {
            g.rekey(new_key, &etag);
        }
        Ok(())
    }

    /// Rename directory `src` (in `parent`) to the key prefix `new_key` (where an empty
    /// directory is when `replaces`). Written down first in a journal on COS
    /// (`rename_journal`), so that a crash midway is finished or undone by the next mount.
    async fn rename_dir(
        &self,
        parent: u64,
        src: &Inode,
        new_key: &str,
        replaces: bool,
    ) -> FsResult<()> {
        let old_key = src.key.to_string();
        // Files below that are open for writing go up first, so the copy takes them along.
        let open: Vec<(u64, String)> = {
            let inos: Vec<u64> = self.writers.all().into_iter().map(|(i, _)| i).collect();
            let t = self.ns.table();
            inos.into_iter()
                .filter_map(|i| t.get(i).map(|n| (i, n.key.to_string())))
                .filter(|(_, k)| k.starts_with(&old_key))
                .collect()
        };
        for (ino, _) in &open {
            if let Some(mut g) = self.locked_writer(*ino).await {
                g.publish(&self.wctx).await?;
            }
        }
        let mut keys = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .store
                .list_objects(&ListRequest {
                    prefix: old_key.clone(),
                    delimiter: None,
                    marker: marker.clone(),
                    max_keys: 1000,
                })
                .await?;
            keys.extend(
                page.entries
                    .into_iter()
                    .map(|e| (e.key, e.size, e.etag, e.storage_class)),
            );
            if !page.is_truncated || page.next_marker.is_none() {
                break;
            }
            marker = page.next_marker;
        }
        // Every key below must fit under the new name before anything is copied.
        if let Some((k, ..)) = keys.iter().max_by_key(|(k, ..)| k.len()) {
            check_key(&format!("{new_key}{}", &k[old_key.len()..]))?;
        }
        self.keep_dir(parent).await?;
        if keys.is_empty() {
            // Known only on this mount (files not uploaded yet): give it a marker.
            meta::put_marker(&*self.store, new_key, &src.attr, &Default::default()).await?;
            return Ok(());
        }
        let mut journal =
            RenameJournal::begin(&*self.store, &self.cfg.prefix, &old_key, new_key, replaces)
                .await?;
        let copies: Vec<_> = keys
            .iter()
            .map(|(k, size, etag, class)| {
                let dest = format!("{new_key}{}", &k[old_key.len()..]);
                async move {
                    let r = meta::copy_object(
                        &*self.store,
                        k,
                        &dest,
                        (*size, etag, class.as_deref()),
                        MetadataDirective::Copy,
                    )
                    .await;
                    (dest, r)
                }
            })
            .collect();
        let copying = stream::iter(copies)
            .buffer_unordered(RENAME_CONCURRENCY)
            .collect::<Vec<_>>();
        let results: Vec<_> = journal.while_running(&*self.store, copying).await;
        let failed_copy = results.iter().find(|(_, r)| r.is_err());
        // The commit point: once it is written, a crash is finished, not undone. A copy that
        // failed, or a commit point that could not be written, undoes the copies here.
        let not_committed = match failed_copy {
            Some(_) => None,
            None => journal.copied(&*self.store).await.err(),
        };
        if failed_copy.is_some() || not_committed.is_some() {
            let made: Vec<String> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(d, _)| d.clone())
                .collect();
            if delete_all(&*self.store, &made).await.is_ok() {
                journal.end(&*self.store).await;
            }
            let Some((failed_dest, Err(e))) = failed_copy else {
                let e = not_committed.expect("one of the two");
                tracing::warn!(from = %old_key, to = new_key, error = %e, "directory rename failed: its journal could not be written; source left as it was");
                return Err(e.into());
            };
            tracing::warn!(from = %old_key, to = new_key, error = %e, "directory rename failed; source left as it was");
            // A copy COS refuses for what its source is: an appendable object (EXDEV, so
            // that `mv` copies the tree itself) or an unrestored archived one.
            if e.kind() == Some(ErrorKind::Other) || e.kind() == Some(ErrorKind::InvalidObjectState)
            {
                let source = format!("{old_key}{}", &failed_dest[new_key.len()..]);
                if let Ok(Some(m)) = self.head(&source).await {
                    self.check_copy_source(&source, &m, FsError::AppendableRename)?;
                }
            }
            return Err(FsError::Io(crate::fs::error::cos_errno(e)));
        }
        let sources: Vec<(String, String)> = keys.into_iter().map(|(k, _, e, _)| (k, e)).collect();
        let old: Vec<String> = sources.iter().map(|(k, _)| k.clone()).collect();
        for chunk in old.chunks(MAX_DELETE_KEYS) {
            // A delete that fails leaves the journal in `deleting`: the next mount (or
            // `cosfs check --repair`) deletes the rest.
            let failed = self.store.delete_objects(chunk).await?;
            if let Some(f) = failed.first() {
                tracing::warn!(key = %f.key, code = %f.code, "rename could not delete a source key");
                return Err(FsError::SourceLeftBehind);
            }
        }
        journal.end(&*self.store).await;
        let new_etags: std::collections::HashMap<String, String> = results
            .into_iter()
            .filter_map(|(d, r)| r.ok().map(|e| (d, e)))
            .collect();
        for (old, old_etag) in &sources {
            let dest = format!("{new_key}{}", &old[old_key.len()..]);
            if let Some(etag) = new_etags.get(&dest) {
                self.follow_rename(old, old_etag, &dest, etag);
            }
        }
        for (ino, key) in open {
            let dest = format!("{new_key}{}", &key[old_key.len()..]);
            if let Some(etag) = new_etags.get(&dest) {
                if let Some(mut g) = self.locked_writer(ino).await {
                    g.rekey(&dest, etag);
                }
            }
        }
        Ok(())
    }
}
