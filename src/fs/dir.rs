//! Directory streams: GET Bucket pages (`delimiter=/`, 1000 per page) fetched by a task that
//! runs one page ahead of the reader, never the whole directory at once; each page's entries
//! get their exact attributes from the metadata stage (`dir_meta`) as soon as it arrives.
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
//! - Entries whose object vanished before their HEAD are skipped (their positions stay
//!   unused). A failed LIST or HEAD fails the read and restarts the stream.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cos::{ListRequest, ObjectStore};

use super::attr::PosixAttr;
use super::dir_meta::{AbortOnDrop, EntryMeta, Listed, MetaStage};
use super::error::{FsError, FsResult};
use super::names::listing_name;

/// Keys per GET Bucket page (the COS maximum).
const PAGE_KEYS: u32 = 1000;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: PosixAttr,
}

struct Slot {
    name: String,
    meta: EntryMeta,
}

/// One listing page with its entries' metadata on the way.
#[derive(Default)]
struct Page {
    slots: Vec<Slot>,
    last: bool,
    /// The page held keys no file name can show (`a/../b`, `a//b`, names over 255 bytes).
    hidden: bool,
    /// The HEADs of this page (cancelled with it).
    _heads: Option<AbortOnDrop>,
}

/// The task listing pages ahead of the reader.
struct PageFeed {
    pages: mpsc::Receiver<FsResult<Page>>,
    _task: AbortOnDrop,
}

pub struct DirStream<S: ObjectStore + ?Sized> {
    prefix: String,
    dir_ino: u64,
    stage: Arc<MetaStage<S>>,
    /// Stream position of `prev[0]`; `cur` starts at `base + prev.len()`.
    base: u64,
    prev: Page,
    cur: Page,
    done: bool,
    feed: Option<PageFeed>,
    /// Some page held keys no file name can show: the directory is not empty, whatever the
    /// listing shows (`rmdir` must ask COS).
    hidden: bool,
}

impl<S: ObjectStore + ?Sized> DirStream<S> {
    /// The stream of directory `dir_ino`, whose keys start with `prefix`.
    pub fn new(prefix: &str, dir_ino: u64, stage: Arc<MetaStage<S>>) -> Self {
        DirStream {
            prefix: prefix.to_string(),
            dir_ino,
            stage,
            base: 0,
            prev: Page::default(),
            cur: Page::default(),
            done: false,
            feed: None,
            hidden: false,
        }
    }

    /// Whether the listing so far held keys that no name shows.
    pub fn holds_hidden(&self) -> bool {
        self.hidden
    }

    /// The number of positions of the whole stream, once the last page has been read.
    pub fn end(&self) -> Option<u64> {
        self.done
            .then(|| self.base + self.prev.slots.len() as u64 + self.cur.slots.len() as u64)
    }

    fn restart(&mut self) {
        self.base = 0;
        self.prev = Page::default();
        self.cur = Page::default();
        self.done = false;
        self.feed = None;
    }

    /// Up to `max` entries starting at stream position `pos`, with their positions.
    pub async fn read(&mut self, pos: u64, max: usize) -> FsResult<Vec<(u64, DirEntry)>> {
        if pos < self.base {
            self.restart();
        }
        let mut out = Vec::new();
        let mut pos = pos;
        while out.len() < max {
            let cur_start = self.base + self.prev.slots.len() as u64;
            let end = cur_start + self.cur.slots.len() as u64;
            if pos < end {
                let slot = if pos < cur_start {
                    &mut self.prev.slots[(pos - self.base) as usize]
                } else {
                    &mut self.cur.slots[(pos - cur_start) as usize]
                };
                match slot.meta.settle().await {
                    Ok(Some(attr)) => out.push((
                        pos,
                        DirEntry {
                            name: slot.name.clone(),
                            attr: attr.clone(),
                        },
                    )),
                    Ok(None) => {} // gone before its HEAD
                    Err(e) => {
                        self.restart();
                        return Err(e);
                    }
                }
                pos += 1;
                continue;
            }
            if self.done {
                break;
            }
            let page = match self.next_page().await {
                Ok(p) => p,
                Err(e) => {
                    self.restart();
                    return Err(e);
                }
            };
            self.done = page.last;
            self.hidden |= page.hidden;
            self.base += self.prev.slots.len() as u64;
            self.prev = std::mem::replace(&mut self.cur, page);
        }
        Ok(out)
    }

    async fn next_page(&mut self) -> FsResult<Page> {
        let stage = self.stage.clone();
        let prefix = self.prefix.clone();
        let dir_ino = self.dir_ino;
        let feed = self.feed.get_or_insert_with(|| {
            // One page waits in the channel while the task lists the next: two ahead at most.
            let (tx, rx) = mpsc::channel(1);
            let task = tokio::spawn(async move {
                let mut lister = Lister::new(prefix);
                loop {
                    let page = lister.next(&stage, dir_ino).await;
                    let stop = page.as_ref().map_or(true, |p| p.last);
                    if tx.send(page).await.is_err() || stop {
                        return;
                    }
                }
            });
            PageFeed {
                pages: rx,
                _task: AbortOnDrop::new(task),
            }
        });
        feed.pages
            .recv()
            .await
            .unwrap_or(Err(FsError::ListingCancelled))
    }
}

/// Pages of one directory listing, in key order, with the directory-shadows-file rule.
struct Lister {
    prefix: String,
    marker: Option<String>,
    /// Files whose `name/` may still come on a later page, with their keys.
    carry: Vec<(String, (String, Listed))>,
}

impl Lister {
    fn new(prefix: String) -> Self {
        Lister {
            prefix,
            marker: None,
            carry: Vec::new(),
        }
    }

    async fn next<S: ObjectStore + ?Sized>(
        &mut self,
        stage: &Arc<MetaStage<S>>,
        dir_ino: u64,
    ) -> FsResult<Page> {
        let req = ListRequest {
            prefix: self.prefix.clone(),
            delimiter: Some("/".into()),
            marker: self.marker.clone(),
            max_keys: PAGE_KEYS,
        };
        let page = stage.store().list_objects(&req).await?;
        let mut done = !page.is_truncated;
        self.marker = page.next_marker.clone();
        if page.is_truncated && self.marker.is_none() {
            // A truncated page without a way to continue: stop rather than loop forever.
            tracing::warn!(prefix = %self.prefix, "truncated listing without NextMarker");
            done = true;
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
        let mut items: Vec<(String, (String, Listed))> = Vec::new();
        let mut hidden = false;
        for p in &page.common_prefixes {
            match listing_name(&self.prefix, p) {
                Some(name) => {
                    items.push((p.clone(), (name.to_string(), Listed::Prefix(p.clone()))))
                }
                None => hidden = true,
            }
        }
        let mut files = std::mem::take(&mut self.carry);
        for e in &page.entries {
            if e.key.ends_with('/') {
                continue; // the directory's own marker
            }
            match listing_name(&self.prefix, &e.key) {
                Some(name) => {
                    files.push((e.key.clone(), (name.to_string(), Listed::Object(e.clone()))))
                }
                None => hidden = true,
            }
        }
        for (key, entry) in files {
            if dirs.contains(key.as_str()) {
                continue; // shadowed by a directory of the same name
            }
            let dir_form = format!("{key}/");
            if !done && last.as_deref().is_some_and(|l| dir_form.as_str() > l) {
                self.carry.push((key, entry));
            } else {
                items.push((key, entry));
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let entries: Vec<(String, Listed)> = items.into_iter().map(|(_, e)| e).collect();
        let (metas, heads) = stage.resolve(dir_ino, &entries);
        let slots = entries
            .into_iter()
            .zip(metas)
            .map(|((name, _), meta)| Slot { name, meta })
            .collect();
        Ok(Page {
            slots,
            last: done,
            hidden,
            _heads: heads,
        })
    }
}
