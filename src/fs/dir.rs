//! Directory streams: GET Bucket pages (`delimiter=/`, 1000 per page) fetched by a task that
//! runs one page ahead of the reader, never the whole directory at once; each page's entries
//! get their exact attributes from the metadata stage (`dir_meta`) as soon as it arrives.
//!
//! - A stream is a snapshot that grows page by page: entry `i` keeps position `i` (offset
//!   `i + 1`, the position to resume after it) for the life of the stream, whatever happens to
//!   the directory meanwhile. So `telldir`/`seekdir` offsets stay valid past the first page and
//!   after the metadata TTL, and a name present from the start of the stream to its end is
//!   listed exactly once: COS lists keys in order from a marker, so renames, creates and
//!   deletes elsewhere in the directory cannot shift or hide it.
//! - The current page and the one before it keep their attributes; older pages keep their
//!   names only (packed: the name's bytes and 4 more per entry). A reader seeking back to
//!   them gets names without attributes, which the fs core looks up.
//! - A rewind (`rewinddir(3)`) is a new stream (`dir_handle`): it lists the directory as it
//!   is now.
//! - A page lists files and subdirectories (common prefixes) merged in key order. Unrepresentable
//!   names are skipped; the directory's own marker is not an entry.
//! - Directory shadows file: when `a` and `a/` are on the same page the file is dropped. When
//!   `a/` would sort after the end of a truncated page, the file is held back and decided by
//!   the following pages (at most a few names per page; no extra request).
//! - Entries whose object vanished before their HEAD are skipped (their positions stay
//!   unused). A failed LIST or HEAD fails that read only: the next read asks again from the
//!   same place (the LIST from the marker after the last page received, the HEAD anew).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::object::{ListRequest, ObjectStore};

use super::attr::PosixAttr;
use super::dir_meta::{AbortOnDrop, EntryMeta, Listed, MetaStage};
use super::error::{FsError, FsResult};
use super::names::listing_name;

/// Keys per GET Bucket page (the COS maximum).
const PAGE_KEYS: u32 = 1000;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    /// `None` for an entry of a page read past (a seek back): look it up.
    pub attr: Option<PosixAttr>,
    /// When the page holding it was listed: a change this mount made later wins.
    pub listed_at: Instant,
}

struct Slot {
    name: String,
    listed: Listed,
    meta: EntryMeta,
    /// The HEAD asked again after a failed one.
    _retry: Option<AbortOnDrop>,
}

/// One listing page with its entries' metadata on the way.
struct Page {
    slots: Vec<Slot>,
    last: bool,
    /// The page held keys no file name can show (`a/../b`, `a//b`, names over 255 bytes).
    hidden: bool,
    listed_at: Instant,
    /// Where the listing goes on after this page.
    resume: Resume,
    /// The HEADs of this page (cancelled with it).
    _heads: Option<AbortOnDrop>,
}

impl Page {
    fn empty() -> Page {
        Page {
            slots: Vec::new(),
            last: false,
            hidden: false,
            listed_at: Instant::now(),
            resume: Resume::default(),
            _heads: None,
        }
    }
}

/// A page read past: its names, one after another (an empty name: not listed).
struct PassedPage {
    start: u64,
    bytes: String,
    ends: Vec<u32>,
    listed_at: Instant,
}

impl PassedPage {
    fn pack(start: u64, page: Page) -> PassedPage {
        let mut bytes = String::new();
        let mut ends = Vec::with_capacity(page.slots.len());
        for slot in &page.slots {
            if !matches!(slot.meta, EntryMeta::Gone) {
                bytes.push_str(&slot.name);
            }
            ends.push(bytes.len() as u32);
        }
        bytes.shrink_to_fit();
        PassedPage {
            start,
            bytes,
            ends,
            listed_at: page.listed_at,
        }
    }

    fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// The name at `i` within the page, if it was listed.
    fn name(&self, i: usize) -> Option<&str> {
        let from = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let name = &self.bytes[from..self.ends[i] as usize];
        (!name.is_empty()).then_some(name)
    }
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
    /// Pages read past, oldest first: positions `0..base`.
    passed: Vec<PassedPage>,
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
            passed: Vec::new(),
            base: 0,
            prev: Page::empty(),
            cur: Page::empty(),
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

    /// Up to `max` entries starting at stream position `pos`, with their positions.
    pub async fn read(&mut self, pos: u64, max: usize) -> FsResult<Vec<(u64, DirEntry)>> {
        let mut out = Vec::new();
        let mut pos = pos;
        while out.len() < max {
            if pos < self.base {
                if let Some(e) = self.passed_entry(pos) {
                    out.push((pos, e));
                }
                pos += 1;
                continue;
            }
            let cur_start = self.base + self.prev.slots.len() as u64;
            let end = cur_start + self.cur.slots.len() as u64;
            if pos < end {
                let (page, i) = if pos < cur_start {
                    (&mut self.prev, (pos - self.base) as usize)
                } else {
                    (&mut self.cur, (pos - cur_start) as usize)
                };
                let listed_at = page.listed_at;
                let slot = &mut page.slots[i];
                if matches!(slot.meta, EntryMeta::Failed) {
                    let (mut metas, heads) = self
                        .stage
                        .resolve(self.dir_ino, &[(slot.name.clone(), slot.listed.clone())]);
                    slot.meta = metas.pop().expect("one entry asked, one answered");
                    slot._retry = heads;
                }
                if let Some(attr) = slot.meta.settle().await? {
                    let e = DirEntry {
                        name: slot.name.clone(),
                        attr: Some(attr.clone()),
                        listed_at,
                    };
                    out.push((pos, e));
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
                    // The next read lists again from the end of `cur`.
                    self.feed = None;
                    return Err(e);
                }
            };
            self.done = page.last;
            self.hidden |= page.hidden;
            let prev = std::mem::replace(&mut self.prev, std::mem::replace(&mut self.cur, page));
            if !prev.slots.is_empty() {
                let len = prev.slots.len() as u64;
                self.passed.push(PassedPage::pack(self.base, prev));
                self.base += len;
            }
        }
        Ok(out)
    }

    fn passed_entry(&self, pos: u64) -> Option<DirEntry> {
        let i = self.passed.partition_point(|p| p.start + p.len() <= pos);
        let page = &self.passed[i];
        page.name((pos - page.start) as usize).map(|name| DirEntry {
            name: name.to_string(),
            attr: None,
            listed_at: page.listed_at,
        })
    }

    async fn next_page(&mut self) -> FsResult<Page> {
        let stage = self.stage.clone();
        let prefix = self.prefix.clone();
        let dir_ino = self.dir_ino;
        let resume = self.cur.resume.clone();
        let feed = self.feed.get_or_insert_with(|| {
            // One page waits in the channel while the task lists the next: two ahead at most.
            let (tx, rx) = mpsc::channel(1);
            let task = tokio::spawn(async move {
                let mut lister = Lister { prefix, resume };
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

/// Where a listing stands between two pages.
#[derive(Clone, Default)]
struct Resume {
    marker: Option<String>,
    /// Files whose `name/` may still come on a later page, with their keys.
    carry: Vec<(String, (String, Listed))>,
}

/// Pages of one directory listing, in key order, with the directory-shadows-file rule.
struct Lister {
    prefix: String,
    resume: Resume,
}

impl Lister {
    async fn next<S: ObjectStore + ?Sized>(
        &mut self,
        stage: &Arc<MetaStage<S>>,
        dir_ino: u64,
    ) -> FsResult<Page> {
        let req = ListRequest {
            prefix: self.prefix.clone(),
            delimiter: Some("/".into()),
            marker: self.resume.marker.clone(),
            max_keys: PAGE_KEYS,
        };
        let listed_at = Instant::now();
        let page = stage.store().list_objects(&req).await?;
        let mut done = !page.is_truncated;
        self.resume.marker = page.next_marker.clone();
        if page.is_truncated && self.resume.marker.is_none() {
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
        let mut files = std::mem::take(&mut self.resume.carry);
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
                self.resume.carry.push((key, entry));
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
            .map(|((name, listed), meta)| Slot {
                name,
                listed,
                meta,
                _retry: None,
            })
            .collect();
        Ok(Page {
            slots,
            last: done,
            hidden,
            listed_at,
            resume: self.resume.clone(),
            _heads: heads,
        })
    }
}
