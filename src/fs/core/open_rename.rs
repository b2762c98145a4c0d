//! What a rename does to files open on this mount, so that their handles read on as they
//! would on a local filesystem:
//! - the renamed file: its handles' readers follow it to the new key (and the copy's ETag);
//!   a writer is published first and rekeyed (`name_ops`);
//! - a file the rename replaces: before the copy lands on its key, the versions its handles
//!   read are kept on local disk (`scratch::kept`) and the readers point there; once the copy landed,
//!   the file is gone as if unlinked: `st_nlink` 0, its writer never publishes (it would
//!   overwrite the renamed file), metadata changes stay in memory. Another client sees the
//!   new contents under the name at once; nothing of the replaced file stays on COS.
//!
//! The same keeping protects a file unlinked while open when this mount puts a new file on its
//! key (`keep_orphan_at`).
//!
//! Holding two writers at once (the replaced file's, across the copy, and the renamed file's)
//! happens only under `replace_lock`, so two such renames cannot wait on each other.

use std::sync::Arc;

use crate::object::ObjectStore;

use super::{CosFs, LockedWriter};
use crate::fs::namespace::Inode;
use crate::fs::reader::{ObjectReader, Source};
use crate::fs::scratch::KeptCopy;

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// The readers of `ino`'s open handles, and of its writer's base when it has one.
    fn readers_of(&self, ino: u64, writer: Option<&LockedWriter<S>>) -> Vec<Arc<ObjectReader>> {
        let mut readers: Vec<Arc<ObjectReader>> = self
            .handles
            .files_of(ino)
            .iter()
            .map(|h| h.reader().clone())
            .collect();
        readers.extend(writer.and_then(|g| g.base_reader()));
        readers
    }

    /// Keep on local disk every version of `replaced` (about to be overwritten by a rename)
    /// that its open handles read. Failing to keep one is logged, not an error: the rename
    /// goes on and those handles get EIO for blocks they had not read.
    pub(super) async fn keep_replaced(&self, replaced: &Inode, writer: Option<&LockedWriter<S>>) {
        let readers = self.readers_of(replaced.ino, writer);
        let mut versions: Vec<(Arc<str>, Arc<str>, u64)> = readers
            .iter()
            .filter_map(|r| r.cos_version())
            .filter(|(key, _, _)| **key == *replaced.key)
            .collect();
        versions.sort();
        versions.dedup();
        for (key, etag, size) in versions {
            let dir = &self.wctx.scratch;
            match KeptCopy::fetch(&*self.store, dir, &key, &etag, size).await {
                Ok(copy) => {
                    let to = Source::Kept(Arc::new(copy));
                    for r in &readers {
                        r.relocate(&key, &etag, &to);
                    }
                }
                Err(e) => tracing::warn!(
                    %key, error = %e,
                    "a rename replaces a file open on this mount and its contents could not be kept; its handles get EIO for what they have not read"
                ),
            }
        }
    }

    /// Before this mount puts a new object on `key` (for file `ino`): a file unlinked while
    /// open whose object is still there keeps its version on local disk (`orphans`).
    pub(super) async fn keep_orphan_at(&self, key: &str, ino: u64) {
        let Some(orphan) = self.orphans.at_key(key, ino) else {
            return;
        };
        let Some(node) = self.ns.table().get(orphan).cloned() else {
            return;
        };
        // Its writer, if idle: one busy right now keeps reading its base from COS.
        let writer = self.writer(orphan).and_then(|w| w.try_lock_owned().ok());
        self.keep_replaced(&node, writer.as_ref()).await;
    }

    /// After a rename landed over `replaced`: the file lives on only in its open handles.
    pub(super) fn forget_replaced(&self, replaced: &Inode, writer: Option<&mut LockedWriter<S>>) {
        if let Some(g) = writer {
            g.mark_unlinked();
        }
        if self.is_open(replaced.ino) {
            self.ns.table().mark_unlinked(replaced.ino);
        }
    }

    /// Point the readers of files open on this mount that read `from_key` as `from_etag` at
    /// `to_key` as `to_etag` (a rename copied the object there).
    pub(super) fn follow_rename(
        &self,
        from_key: &str,
        from_etag: &str,
        to_key: &str,
        to_etag: &str,
    ) {
        let to = Source::Cos {
            key: Arc::from(to_key),
            etag: Arc::from(to_etag),
        };
        let readers: Vec<Arc<ObjectReader>> = self
            .handles
            .all_files()
            .iter()
            .map(|h| h.reader().clone())
            .collect();
        for r in readers {
            r.relocate(from_key, from_etag, &to);
        }
    }
}
