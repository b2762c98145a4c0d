//! Knowing a directory again: when a lookup misses in a directory this mount knew completely
//! (`KnownDirs`) and that knowledge has expired, one LIST of the whole directory (one page:
//! at most `RELIST_MAX` names known before, and the page must not be truncated) renews it for
//! another `--metadata-ttl`, instead of a HEAD and a LIST for every new name.
//!
//! A program filling a directory (a `cp -r`, an untar, a loop of redirections) thus pays one
//! LIST per directory per TTL for the names it creates, and still sees another client's new
//! names within the TTL. The listing's names join the known set only: no inode is made for
//! them (a later lookup of one asks COS for its exact attributes as usual).

use crate::object::{ListRequest, ObjectStore};

use super::inode::Inode;
use super::{Namespace, OpenHere};
use crate::fs::error::FsResult;
use crate::fs::names::listing_name;

/// Most names a directory may have had for a miss to re-list it (one LIST page).
const RELIST_MAX: usize = 1000;

impl<S: ObjectStore + ?Sized> Namespace<S> {
    /// List `dir` whole if its knowledge expired and it is small; true when it is known again.
    pub(super) async fn relist(&self, dir: &Inode, open_here: OpenHere<'_>) -> FsResult<bool> {
        let ttl = self.ttl;
        let since = std::time::Instant::now();
        {
            let mut t = self.table();
            if !t.known.expired_with_at_most(dir.ino, ttl, RELIST_MAX) {
                return Ok(false);
            }
            // Names made here while the LIST is out are collected with the listed ones.
            t.known.listing_opened(dir.ino);
        }
        let req = ListRequest {
            prefix: dir.key.to_string(),
            delimiter: Some("/".into()),
            marker: None,
            max_keys: 1000,
        };
        let page = self.store.list_objects(&req).await;
        // Files open for writing here count as present (an extra name is harmless).
        let open = open_here(dir.ino);
        let mut t = self.table();
        let complete = match &page {
            Ok(p) if !p.is_truncated => {
                let listed = p
                    .entries
                    .iter()
                    .map(|e| e.key.as_str())
                    .chain(p.common_prefixes.iter().map(String::as_str))
                    .filter_map(|k| listing_name(&dir.key, k));
                for name in listed {
                    t.known.added(dir.ino, &std::sync::Arc::from(name));
                }
                t.known.listing_complete(dir.ino, since, &open);
                true
            }
            // Too big to re-list: lookups here ask COS name by name from now on.
            Ok(_) => {
                t.known.gone(dir.ino);
                false
            }
            Err(_) => false,
        };
        t.known.listing_closed(dir.ino);
        drop(t);
        page?;
        Ok(complete)
    }
}
