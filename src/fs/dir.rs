//! Directory streams: GET Bucket pages (`delimiter=/`, 1000 per page) fetched only as the
//! reader asks for more, never the whole directory at once.
//!
//! - Entry `i` of a stream has offset `i + 1` (the position to resume after it); `.` and `..` are
//!   the adapter's business. The stream keeps the current page and the one before it, so a
//!   reader resuming inside them costs nothing; resuming before them (seekdir back) restarts the
//!   listing and skips forward.
//! - A page lists files and subdirectories (common prefixes) merged in key order. Unrepresentable
//!   names are skipped; the directory's own marker is not an entry.
//! - Directory shadows file: when `a` and `a/` are on the same page the file is dropped. When
//!   `a/` would sort after the end of a truncated page, the file is held back and decided by
//!   the following pages (at most a few names per page; no extra request).

use std::time::SystemTime;

use crate::cos::{ListRequest, ObjectStore};

use super::attr::{self, AttrDefaults, PosixAttr};
use super::error::FsResult;
use super::names::listing_name;

/// Keys per GET Bucket page (the COS maximum).
const PAGE_KEYS: u32 = 1000;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: PosixAttr,
}

#[derive(Debug)]
pub struct DirStream {
    prefix: String,
    /// Stream position of `prev[0]`; `cur` starts at `base + prev.len()`.
    base: u64,
    prev: Vec<DirEntry>,
    cur: Vec<DirEntry>,
    marker: Option<String>,
    done: bool,
    /// Files whose `name/` may still come on a later page, with their keys.
    carry: Vec<(String, DirEntry)>,
    /// Attributes given to subdirectories seen only as common prefixes.
    dir_mtime: SystemTime,
}

impl DirStream {
    pub fn new(prefix: &str, dir_mtime: SystemTime) -> Self {
        DirStream {
            prefix: prefix.to_string(),
            base: 0,
            prev: Vec::new(),
            cur: Vec::new(),
            marker: None,
            done: false,
            carry: Vec::new(),
            dir_mtime,
        }
    }

    /// The number of entries of the whole stream, once the last page has been read.
    pub fn end(&self) -> Option<u64> {
        self.done
            .then(|| self.base + self.prev.len() as u64 + self.cur.len() as u64)
    }

    fn restart(&mut self) {
        *self = DirStream::new(&self.prefix, self.dir_mtime);
    }

    /// Up to `max` entries starting at stream position `pos`, with their positions.
    pub async fn read<S: ObjectStore + ?Sized>(
        &mut self,
        store: &S,
        defaults: &AttrDefaults,
        pos: u64,
        max: usize,
    ) -> FsResult<Vec<(u64, DirEntry)>> {
        if pos < self.base {
            self.restart();
        }
        let mut out = Vec::new();
        let mut pos = pos;
        while out.len() < max {
            let start = self.base;
            let cur_start = start + self.prev.len() as u64;
            let end = cur_start + self.cur.len() as u64;
            if pos < end {
                let e = if pos < cur_start {
                    &self.prev[(pos - start) as usize]
                } else {
                    &self.cur[(pos - cur_start) as usize]
                };
                out.push((pos, e.clone()));
                pos += 1;
                continue;
            }
            if self.done {
                break;
            }
            let page = self.fetch_page(store, defaults).await?;
            self.base += self.prev.len() as u64;
            self.prev = std::mem::replace(&mut self.cur, page);
        }
        Ok(out)
    }

    async fn fetch_page<S: ObjectStore + ?Sized>(
        &mut self,
        store: &S,
        defaults: &AttrDefaults,
    ) -> FsResult<Vec<DirEntry>> {
        let req = ListRequest {
            prefix: self.prefix.clone(),
            delimiter: Some("/".into()),
            marker: self.marker.clone(),
            max_keys: PAGE_KEYS,
        };
        let page = store.list_objects(&req).await?;
        self.done = !page.is_truncated;
        self.marker = page.next_marker.clone();
        if page.is_truncated && self.marker.is_none() {
            // A truncated page without a way to continue: stop rather than loop forever.
            tracing::warn!(prefix = %self.prefix, "truncated listing without NextMarker");
            self.done = true;
        }
        let last = page
            .entries
            .iter()
            .map(|e| e.key.as_str())
            .chain(page.common_prefixes.iter().map(|p| p.as_str()))
            .max()
            .map(str::to_string);
        let dirs: std::collections::HashSet<&str> = page
            .common_prefixes
            .iter()
            .map(|p| p.trim_end_matches('/'))
            .collect();
        let mut items: Vec<(String, DirEntry)> = Vec::new();
        for p in &page.common_prefixes {
            if let Some(name) = listing_name(&self.prefix, p) {
                items.push((
                    p.clone(),
                    DirEntry {
                        name: name.to_string(),
                        attr: attr::implicit_dir(defaults, self.dir_mtime),
                    },
                ));
            }
        }
        let mut files = std::mem::take(&mut self.carry);
        for e in &page.entries {
            if e.key.ends_with('/') {
                continue; // the directory's own marker
            }
            if let Some(name) = listing_name(&self.prefix, &e.key) {
                let entry = DirEntry {
                    name: name.to_string(),
                    attr: attr::from_listing(e, defaults),
                };
                files.push((e.key.clone(), entry));
            }
        }
        for (key, entry) in files {
            if dirs.contains(key.as_str()) {
                continue; // shadowed by a directory of the same name
            }
            let dir_form = format!("{key}/");
            if !self.done && last.as_deref().is_some_and(|l| dir_form.as_str() > l) {
                self.carry.push((key, entry));
            } else {
                items.push((key, entry));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(items.into_iter().map(|(_, e)| e).collect())
    }
}
