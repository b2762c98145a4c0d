//! `FileWriter`: the state of one file open for writing (shared by all its handles).
//!
//! Two bodies:
//! - `Stream`: the file is being written from its start (new file, `O_TRUNC`, truncate to 0).
//!   Writes at or after the bytes still in memory go to the streaming upload; reads of those
//!   bytes are served from memory.
//! - `Staged`: the file is being modified in place. Bytes are `dirty` (in the staging file),
//!   `clean` (offset below `base_len` and not dirty: still the previous object, read through the
//!   block cache with its ETag pinned) or zeros (past `base_len`, never written). Publishing
//!   rebuilds the object from copied and uploaded parts (`parts::plan`).
//!
//! A stream turns into a staged file when a write or read reaches bytes already sent to COS.
//! If nothing was sent yet, the buffer moves to the staging file and nothing is published. An
//! overwrite keeps a copy of its sent parts (`stream`), so it turns into a staged file over the
//! still-open upload (`open_upload`): the previous object stays untouched until the commit,
//! which completes that upload reusing the parts nobody wrote over. Only when no copy could be
//! kept (a new file, or no room in the staging area) does the upload of what was written so far
//! complete first, so the object holds that prefix until the file is published again
//! (documented in the README).
//!
//! Failures: a staged publish that fails keeps everything (the next flush/fsync/close retries);
//! a broken stream has lost its parts, so the writer fails every later call with EIO and the
//! previous object stays as it was.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use crate::cos::{
    ByteRange, CosResult, MetadataDirective, ObjectMeta, ObjectStore, PutOptions, UploadedPart,
    UserMeta,
};
use crate::fs::attr::PosixAttr;
use crate::fs::cache::BlockCache;
use crate::fs::error::{FsError, FsResult};
use crate::fs::meta;
use crate::fs::reader::ObjectReader;

use super::cleanup::abort_upload;
use super::open_upload::{OpenUpload, Step};
use super::parts::{plan, PartSource};
use super::ranges::RangeSet;
use super::staging::{CacheDir, StagingFile};
use super::stream::StreamUpload;

/// Clean runs shorter than this are uploaded rather than copied.
const COPY_MIN: u64 = 4 * 1024 * 1024;
/// Parts of a rebuild in flight at once.
const REBUILD_CONCURRENCY: usize = 4;

/// What writers share: the store, caches and upload limits of the mount.
pub struct WriteCtx<S: ObjectStore + ?Sized> {
    pub store: Arc<S>,
    pub cache: Arc<BlockCache>,
    pub cache_dir: Arc<CacheDir>,
    /// Upload bytes in flight mount-wide, in MiB units.
    pub permits: Arc<Semaphore>,
    /// The size of `permits`.
    pub budget_mib: u32,
    pub part_size: u64,
}

/// The object a staged file started from.
struct Base {
    key: String,
    etag: String,
    reader: Arc<ObjectReader>,
}

struct Staged {
    file: Option<StagingFile>,
    base: Option<Base>,
    base_len: u64,
    size: u64,
    dirty: RangeSet,
    /// The upload a streamed overwrite left open (all bytes are then dirty and local).
    open: Option<OpenUpload>,
}

enum Body<S: ObjectStore + ?Sized> {
    Stream(StreamUpload<S>),
    Staged(Staged),
}

pub struct FileWriter<S: ObjectStore + ?Sized> {
    pub key: String,
    /// The file's attributes as this mount sees them (size and mtime follow the writes).
    pub attr: PosixAttr,
    /// `x-cos-meta-*` headers that are not POSIX attributes (xattrs, other tools').
    pub foreign: UserMeta,
    content_type: Option<String>,
    storage_class: Option<String>,
    body: Body<S>,
    /// Content differs from the object on COS.
    pub modified: bool,
    /// Metadata differs from the object on COS.
    pub meta_modified: bool,
    /// The name was removed: nothing is published any more.
    pub unlinked: bool,
    /// An object exists under `key` (else the file exists only on this mount so far).
    pub exists_remote: bool,
    /// Open handles of this file that may write.
    pub handles: usize,
    /// The last publish failed (and its error went to the program).
    pub publish_failed: bool,
    failed: Option<i32>,
}

impl<S: ObjectStore + ?Sized> FileWriter<S> {
    /// A file written from scratch (created, or opened with `O_TRUNC`).
    pub fn new_empty(
        ctx: &WriteCtx<S>,
        key: &str,
        attr: PosixAttr,
        existing: Option<&ObjectMeta>,
    ) -> Self {
        let mut attr = attr;
        attr.size = 0;
        FileWriter {
            key: key.to_string(),
            attr,
            foreign: existing
                .map(|m| meta::foreign_meta(&m.user_meta))
                .unwrap_or_default(),
            content_type: existing.and_then(|m| m.content_type.clone()),
            storage_class: existing.and_then(|m| m.storage_class.clone()),
            body: Body::Stream(new_stream(ctx, key, existing.is_some())),
            modified: true,
            meta_modified: true,
            unlinked: false,
            exists_remote: existing.is_some(),
            handles: 0,
            publish_failed: false,
            failed: None,
        }
    }

    /// A file opened for writing without truncation: a staged file over `existing`.
    pub fn new_over(key: &str, attr: PosixAttr, existing: &ObjectMeta) -> Self {
        FileWriter {
            key: key.to_string(),
            attr,
            foreign: meta::foreign_meta(&existing.user_meta),
            content_type: existing.content_type.clone(),
            storage_class: existing.storage_class.clone(),
            body: Body::Staged(Staged {
                file: None,
                base: Some(Base {
                    key: key.to_string(),
                    etag: existing.etag.clone(),
                    reader: Arc::new(ObjectReader::new(key, &existing.etag, existing.size)),
                }),
                base_len: existing.size,
                size: existing.size,
                dirty: RangeSet::new(),
                open: None,
            }),
            modified: false,
            meta_modified: false,
            unlinked: false,
            exists_remote: true,
            handles: 0,
            publish_failed: false,
            failed: None,
        }
    }

    fn check(&self) -> FsResult<()> {
        match self.failed {
            Some(errno) => Err(FsError::Io(errno)),
            None => Ok(()),
        }
    }

    pub fn size(&self) -> u64 {
        match &self.body {
            Body::Stream(s) => s.size(),
            Body::Staged(st) => st.size,
        }
    }

    fn put_options(&self) -> FsResult<PutOptions> {
        meta::put_options(
            &self.attr,
            &self.foreign,
            self.content_type.as_deref(),
            self.storage_class.as_deref(),
        )
    }

    fn touch(&mut self) {
        let now = std::time::SystemTime::now();
        self.attr.mtime = now;
        self.attr.ctime = now;
        self.attr.size = self.size();
        self.modified = true;
        self.meta_modified = true;
    }

    pub async fn write(&mut self, ctx: &WriteCtx<S>, offset: u64, data: &[u8]) -> FsResult<()> {
        self.check()?;
        if let Body::Stream(s) = &self.body {
            // Small forward gaps (up to a part) are zero-filled in memory.
            let streamable = offset >= s.buf_start() && offset <= s.size() + ctx.part_size;
            if !streamable {
                self.make_staged(ctx).await?;
            }
        }
        let opts = self.put_options()?;
        match &mut self.body {
            Body::Stream(s) => {
                let r = s.write(offset, data, &opts).await;
                if s.is_broken() {
                    self.failed = Some(libc::EIO);
                }
                r?;
            }
            Body::Staged(st) => st.write(ctx, offset, data)?,
        }
        self.touch();
        Ok(())
    }

    pub async fn read(&mut self, ctx: &WriteCtx<S>, offset: u64, len: u32) -> FsResult<Bytes> {
        self.check()?;
        let end = self.size().min(offset + len as u64);
        if offset >= end {
            return Ok(Bytes::new());
        }
        if let Body::Stream(s) = &self.body {
            if offset >= s.buf_start() {
                let from = (offset - s.buf_start()) as usize;
                let to = (end - s.buf_start()) as usize;
                return Ok(Bytes::copy_from_slice(&s.buffered()[from..to]));
            }
            self.make_staged(ctx).await?;
        }
        match &self.body {
            Body::Staged(st) => st.read(ctx, offset, end).await,
            Body::Stream(_) => unreachable!("a stream that reads sent bytes became staged"),
        }
    }

    pub async fn truncate(&mut self, ctx: &WriteCtx<S>, size: u64) -> FsResult<()> {
        self.check()?;
        if size == 0 {
            // Nothing of the old content is needed: start a fresh stream.
            if let Body::Stream(s) = &mut self.body {
                s.abort().await;
            }
            self.discard_open_upload(ctx).await;
            self.body = Body::Stream(new_stream(ctx, &self.key, self.exists_remote));
        } else {
            if let Body::Stream(s) = &self.body {
                // Cutting into sent bytes needs them back; growing past what memory holds
                // (a part) would buffer zeros: both go on in a (sparse) staging file.
                if size < s.buf_start() || size > s.size() + ctx.part_size {
                    self.make_staged(ctx).await?;
                }
            }
            match &mut self.body {
                Body::Stream(s) => s.truncate(size),
                Body::Staged(st) => st.truncate(size)?,
            }
        }
        self.touch();
        Ok(())
    }

    /// Record new attributes (chmod, chown, utimens); they go up with the next publish.
    pub fn set_attr(&mut self, attr: PosixAttr) {
        let size = self.size();
        self.attr = attr;
        self.attr.size = size;
        self.meta_modified = true;
    }

    /// Turn a stream into a staged file (see the module comment).
    async fn make_staged(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        let Body::Stream(s) = &mut self.body else {
            return Ok(());
        };
        match s.keep_parts().await {
            Ok(Some((open, file, size))) => {
                let mut dirty = RangeSet::new();
                dirty.insert(0..size);
                self.body = Body::Staged(Staged {
                    file: Some(file),
                    base: None,
                    base_len: 0,
                    size,
                    dirty,
                    open: Some(open),
                });
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => {
                self.failed = Some(libc::EIO);
                return Err(e.into());
            }
        }
        let Body::Stream(s) = &self.body else {
            unreachable!("still a stream")
        };
        if !s.started() {
            let mut file = StagingFile::create(&ctx.cache_dir)?;
            let data = s.buffered();
            file.charge(data.len() as u64)?;
            file.write_at(0, data)?;
            let mut dirty = RangeSet::new();
            dirty.insert(0..data.len() as u64);
            self.body = Body::Staged(Staged {
                file: Some(file),
                base: None,
                base_len: 0,
                size: data.len() as u64,
                dirty,
                open: None,
            });
            return Ok(());
        }
        self.publish(ctx).await
    }

    /// Make COS hold what this mount shows: upload (or rebuild) the content if it changed,
    /// else rewrite the metadata if that changed. Returns once the object is complete.
    pub async fn publish(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        let r = self.try_publish(ctx).await;
        self.publish_failed = r.is_err();
        r
    }

    async fn try_publish(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        self.check()?;
        if self.unlinked || (!self.modified && !self.meta_modified) {
            return Ok(());
        }
        let opts = self.put_options()?;
        let (etag, size) = match &mut self.body {
            Body::Stream(s) => {
                let r = s.finish(&opts).await;
                if s.is_broken() {
                    self.failed = Some(libc::EIO);
                }
                let done = r?;
                let mut etag = done.etag;
                if !done.meta_applied {
                    // Metadata changed after the upload began (e.g. `cp -p` on a big file).
                    etag = meta::copy_object(
                        &*ctx.store,
                        &self.key,
                        &self.key,
                        done.size,
                        &etag,
                        MetadataDirective::Replaced(opts.clone()),
                    )
                    .await?;
                }
                (etag, done.size)
            }
            Body::Staged(st) => {
                let etag = match &st.base {
                    Some(base) if !self.modified => {
                        meta::copy_object(
                            &*ctx.store,
                            &base.key,
                            &self.key,
                            st.size,
                            &base.etag,
                            MetadataDirective::Replaced(opts.clone()),
                        )
                        .await?
                    }
                    _ => st.rebuild(ctx, &self.key, &opts).await?,
                };
                (etag, st.size)
            }
        };
        self.set_base(&etag, size);
        self.modified = false;
        self.meta_modified = false;
        self.exists_remote = true;
        Ok(())
    }

    /// The object under `key` is now `etag` with `size` bytes and this writer's content.
    fn set_base(&mut self, etag: &str, size: u64) {
        self.body = Body::Staged(Staged {
            file: None,
            base: Some(Base {
                key: self.key.clone(),
                etag: etag.to_string(),
                reader: Arc::new(ObjectReader::new(&self.key, etag, size)),
            }),
            base_len: size,
            size,
            dirty: RangeSet::new(),
            open: None,
        });
        self.attr.etag = Some(etag.to_string());
        self.attr.size = size;
    }

    /// The published object was renamed to `key` (as `etag`).
    pub fn rekey(&mut self, key: &str, etag: &str) {
        self.key = key.to_string();
        let size = self.size();
        self.set_base(etag, size);
    }

    /// The file (never published) will be written under `key` instead.
    pub fn rekey_unpublished(&mut self, key: &str) {
        self.key = key.to_string();
        if let Body::Stream(s) = &mut self.body {
            s.set_key(key);
        }
    }

    /// Drop everything not yet published (the file was unlinked, or its last handle closed
    /// after a failure).
    pub async fn discard(&mut self, ctx: &WriteCtx<S>) {
        if let Body::Stream(s) = &mut self.body {
            s.abort().await;
        }
        self.discard_open_upload(ctx).await;
        self.modified = false;
        self.meta_modified = false;
    }

    /// Abort the upload a streamed overwrite left open, if any (its parts are not wanted).
    async fn discard_open_upload(&mut self, ctx: &WriteCtx<S>) {
        let Body::Staged(st) = &mut self.body else {
            return;
        };
        if let Some(open) = st.open.take() {
            abort_upload(&ctx.store, &self.key, &open.id).await;
        }
    }

    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Shutdown gave up on this file: drop what is not published (aborting its multipart
    /// upload) and fail every later operation with EIO. True if unpublished changes were lost.
    pub async fn give_up(&mut self, ctx: &WriteCtx<S>) -> bool {
        let lost = !self.unlinked && (self.modified || self.meta_modified);
        self.discard(ctx).await;
        self.failed = Some(libc::EIO);
        self.publish_failed = true;
        lost
    }
}

/// Run the part uploads `sends` (`REBUILD_CONCURRENCY` at a time) and complete upload `id`
/// of `key` with their parts; returns the new ETag. The caller aborts on failure.
async fn complete_with<S, F>(
    ctx: &WriteCtx<S>,
    key: &str,
    id: &str,
    sends: Vec<F>,
) -> FsResult<String>
where
    S: ObjectStore + ?Sized,
    F: std::future::Future<Output = FsResult<UploadedPart>>,
{
    let mut done: Vec<UploadedPart> = stream::iter(sends)
        .buffer_unordered(REBUILD_CONCURRENCY)
        .try_collect()
        .await?;
    done.sort_by_key(|p| p.part_number);
    Ok(ctx.store.complete_multipart(key, id, &done).await?.etag)
}

/// A stream to `key`; an overwrite (`keep`) keeps a copy of its sent parts.
fn new_stream<S: ObjectStore + ?Sized>(
    ctx: &WriteCtx<S>,
    key: &str,
    keep: bool,
) -> StreamUpload<S> {
    StreamUpload::new(
        ctx.store.clone(),
        key,
        ctx.part_size,
        ctx.permits.clone(),
        ctx.budget_mib,
        keep.then(|| ctx.cache_dir.clone()),
    )
}

impl Staged {
    fn file(&mut self, ctx_dir: &Arc<CacheDir>) -> FsResult<&mut StagingFile> {
        if self.file.is_none() {
            self.file = Some(StagingFile::create(ctx_dir)?);
        }
        Ok(self.file.as_mut().expect("just created"))
    }

    fn write<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let r = offset..offset + data.len() as u64;
        let new_bytes = self.dirty.missing_len(r.clone());
        let file = self.file(&ctx.cache_dir)?;
        file.charge(new_bytes)?;
        if let Err(e) = file.write_at(offset, data) {
            file.uncharge(new_bytes);
            return Err(e);
        }
        self.dirty.insert(r.clone());
        self.size = self.size.max(r.end);
        if let Some(o) = &mut self.open {
            o.touched(&r);
        }
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> FsResult<()> {
        if let Some(o) = &mut self.open {
            o.cut(size);
        }
        if size < self.size {
            let dropped = self.dirty.truncate(size);
            self.base_len = self.base_len.min(size);
            if let Some(f) = &mut self.file {
                f.set_len(size)?;
                f.uncharge(dropped);
            }
        }
        self.size = size;
        Ok(())
    }

    /// Ranges of `within` still equal to the base object.
    fn clean(&self, within: std::ops::Range<u64>) -> Vec<std::ops::Range<u64>> {
        if self.base.is_none() {
            return Vec::new();
        }
        let end = within.end.min(self.base_len);
        if within.start >= end {
            return Vec::new();
        }
        self.dirty.gaps(within.start..end)
    }

    /// Bytes `offset..end` of the file as this mount sees it.
    async fn read<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        offset: u64,
        end: u64,
    ) -> FsResult<Bytes> {
        let mut buf = BytesMut::zeroed((end - offset) as usize);
        if let Some(f) = &self.file {
            f.read_at(offset, &mut buf)?;
        }
        if let Some(base) = &self.base {
            for r in self.clean(offset..end) {
                let mut at = r.start;
                while at < r.end {
                    let want = (r.end - at).min(u32::MAX as u64 / 2) as u32;
                    let got = base.reader.read(&ctx.store, &ctx.cache, at, want).await?;
                    if got.is_empty() {
                        return Err(FsError::Io(libc::EIO));
                    }
                    let i = (at - offset) as usize;
                    buf[i..i + got.len()].copy_from_slice(&got);
                    at += got.len() as u64;
                }
            }
        }
        Ok(buf.freeze())
    }

    /// Write the file to `key`: over the upload a streamed overwrite left open, if any; else
    /// one PUT when it is a single data part, else a multipart upload that copies unchanged
    /// runs of the base object. Returns the new ETag.
    async fn rebuild<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        key: &str,
        opts: &PutOptions,
    ) -> FsResult<String> {
        if let Some(open) = self.open.take() {
            return self.complete_open(ctx, key, opts, open).await;
        }
        let parts = plan(
            self.size,
            &self.clean(0..self.size),
            ctx.part_size,
            COPY_MIN,
        );
        if let [PartSource::Data(r)] = parts.as_slice() {
            let body = self.read(ctx, r.start, r.end).await?;
            return Ok(ctx.store.put_object(key, body, opts).await?.etag);
        }
        let id = ctx.store.initiate_multipart(key, opts).await?;
        let sends: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| self.send_part(ctx, key, &id, i as u32 + 1, p))
            .collect();
        let result = complete_with(ctx, key, &id, sends).await;
        if result.is_err() {
            abort_upload(&ctx.store, key, &id).await;
        }
        result
    }

    /// Complete the upload a streamed overwrite left open (see `open_upload`). On failure it
    /// is aborted; every byte is still here, so a later commit starts over.
    async fn complete_open<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        key: &str,
        opts: &PutOptions,
        open: OpenUpload,
    ) -> FsResult<String> {
        let steps = open.plan(self.size, ctx.part_size);
        let id = open.id.as_str();
        let result: FsResult<String> = async {
            if steps.is_empty() {
                // Cut to nothing: no part to complete with.
                return Ok(ctx.store.put_object(key, Bytes::new(), opts).await?.etag);
            }
            let sends: Vec<_> = steps
                .iter()
                .map(|step| self.send_step(ctx, key, id, step))
                .collect();
            let etag = complete_with(ctx, key, id, sends).await?;
            if open.initiated_with == *opts {
                return Ok(etag);
            }
            // Metadata changed after the upload began (e.g. `cp -p`).
            let replaced = MetadataDirective::Replaced(opts.clone());
            Ok(meta::copy_object(&*ctx.store, key, key, self.size, &etag, replaced).await?)
        }
        .await;
        if result.is_err() || steps.is_empty() {
            abort_upload(&ctx.store, key, id).await;
        }
        result
    }

    /// One part of an open upload's Complete: kept as it is, or sent again.
    async fn send_step<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        key: &str,
        upload_id: &str,
        step: &Step,
    ) -> FsResult<UploadedPart> {
        match step {
            Step::Keep(p) => Ok(p.clone()),
            Step::Send(n, r) => {
                let body = self.read(ctx, r.start, r.end).await?;
                Ok(ctx.store.upload_part(key, upload_id, *n, body).await?)
            }
        }
    }

    async fn send_part<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        key: &str,
        upload_id: &str,
        n: u32,
        part: &PartSource,
    ) -> FsResult<UploadedPart> {
        let r: CosResult<UploadedPart> = match part {
            PartSource::Copy(r) => {
                let base = self.base.as_ref().expect("copy parts need a base");
                ctx.store
                    .upload_part_copy(
                        key,
                        upload_id,
                        n,
                        &base.key,
                        Some(ByteRange::new(r.start, r.end)),
                        Some(&base.etag),
                    )
                    .await
            }
            PartSource::Data(r) => {
                let body = self.read(ctx, r.start, r.end).await?;
                ctx.store.upload_part(key, upload_id, n, body).await
            }
        };
        Ok(r?)
    }
}
