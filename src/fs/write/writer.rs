//! `FileWriter`: the state of one file open for writing (shared by all its handles).
//!
//! Three bodies:
//! - `Stream`: the file is being written from its start (new file, `O_TRUNC`, truncate to 0).
//!   Writes at or after the bytes still in memory go to the streaming upload; reads of those
//!   bytes are served from memory.
//! - `Staged` (`staged`): the file is being modified in place, through a staging file over
//!   the previous object; publishing rebuilds the object.
//! - `Append` (`append`): the object is appendable and every write so far landed at the end;
//!   publishing is one APPEND Object of the new bytes. The first write elsewhere, or a
//!   truncate, sends them and turns it into a staged file, rewritten as a normal object.
//!   Metadata cannot change on an appendable object (COS cannot copy it): such changes are
//!   EOPNOTSUPP, except on a file no APPEND has created yet.
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

use crate::fs::attr::PosixAttr;
use crate::fs::content_type::BodyHeaders;
use crate::fs::error::{FsError, FsResult};
use crate::fs::meta;
use crate::fs::reader::ObjectReader;
use crate::object::{ErrorKind, MetadataDirective, ObjectMeta, ObjectStore, PutOptions, UserMeta};

use super::append::AppendTail;
use super::cleanup::abort_upload;
use super::ctx::WriteCtx;
use super::headers::{Headers, Landed};
use super::staged::Staged;
use super::stream::{StreamShared, StreamUpload};
use crate::fs::scratch::ScratchFile;

enum Body<S: ObjectStore + ?Sized> {
    Stream(StreamUpload<S>),
    Staged(Staged),
    Append(AppendTail),
}

pub struct FileWriter<S: ObjectStore + ?Sized> {
    key: String,
    /// The file's attributes as this mount sees them (size and mtime follow the writes).
    attr: PosixAttr,
    /// `x-cos-meta-*` headers that are not POSIX attributes (xattrs, other tools').
    foreign: UserMeta,
    /// Content-Type and the standard headers (`content_type.rs`).
    body_headers: BodyHeaders,
    storage_class: Option<String>,
    body: Body<S>,
    /// Content differs from the object on COS.
    modified: bool,
    /// Metadata differs from the object on COS.
    meta_modified: bool,
    /// The name was removed: nothing is published any more.
    unlinked: bool,
    /// An object exists under `key` (else the file exists only on this mount so far).
    exists_remote: bool,
    /// Open handles of this file that may write.
    handles: usize,
    /// The last publish failed (and its error went to the program).
    publish_failed: bool,
    /// Why this file cannot be written or published any more, once it cannot.
    failed: Option<&'static str>,
    /// mtime was set by the program (`utimens`) since the last write, so an upload carries it.
    times_set: bool,
    /// Another writer's object replaced ours after our upload landed (its version stands).
    superseded: bool,
    /// The process writing it was killed by this signal before its last close, and nothing
    /// wrote or synced since: its changes are not to be published.
    abandoned: Option<i32>,
}

/// What a writer keeps of the object it replaces: other applications' metadata, the body
/// headers and the storage class.
struct Inherited {
    foreign: UserMeta,
    body: BodyHeaders,
    storage_class: Option<String>,
}

impl Inherited {
    fn of(m: &ObjectMeta) -> Self {
        Inherited {
            foreign: meta::foreign_meta(&m.user_meta),
            body: BodyHeaders::of(m),
            storage_class: m.storage_class.clone(),
        }
    }
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
        let headers = match existing {
            Some(m) => Inherited::of(m),
            None => Inherited {
                foreign: Default::default(),
                body: BodyHeaders::typed(&ctx.content_type.for_new_file(key)),
                storage_class: ctx.storage_class.clone(),
            },
        };
        let body = Body::Stream(new_stream(ctx, key, existing.is_some()));
        FileWriter {
            modified: true,
            meta_modified: true,
            exists_remote: existing.is_some(),
            ..Self::unchanged(key, attr, headers, body)
        }
    }

    /// A file opened for writing without truncation: a staged file over `existing`.
    pub fn new_over(key: &str, attr: PosixAttr, existing: &ObjectMeta) -> Self {
        let body = Body::Staged(Staged::over_object(key, &existing.etag, existing.size));
        FileWriter {
            exists_remote: true,
            ..Self::unchanged(key, attr, Inherited::of(existing), body)
        }
    }

    /// A writer of `body` in the state every writer starts in: unchanged, not yet handed to
    /// any handle, nothing failed.
    fn unchanged(key: &str, attr: PosixAttr, headers: Inherited, body: Body<S>) -> Self {
        FileWriter {
            key: key.to_string(),
            attr,
            foreign: headers.foreign,
            body_headers: headers.body,
            storage_class: headers.storage_class,
            body,
            modified: false,
            meta_modified: false,
            unlinked: false,
            exists_remote: false,
            handles: 0,
            publish_failed: false,
            failed: None,
            times_set: false,
            superseded: false,
            abandoned: None,
        }
    }

    /// A file opened for writing over the appendable object `existing`: writes at its end
    /// are appended.
    pub fn new_append(key: &str, attr: PosixAttr, existing: &ObjectMeta) -> Self {
        let mut w = Self::new_over(key, attr, existing);
        w.body = Body::Append(AppendTail::over(key, existing));
        w
    }

    /// A new file created appendable (`--appendable-logs`): its first publish is the APPEND
    /// that creates it.
    pub fn new_appendable(ctx: &WriteCtx<S>, key: &str, attr: PosixAttr) -> Self {
        let mut w = Self::new_empty(ctx, key, attr, None);
        w.body = Body::Append(AppendTail::new_file(key));
        w
    }

    /// The appendable object this writer left, all of it sent, with its headers (for the next
    /// open within the TTL: `Inode::own_append`).
    pub fn appended_object(&self) -> Option<ObjectMeta> {
        let Body::Append(t) = &self.body else {
            return None;
        };
        if self.failed() || self.publish_failed || self.unlinked {
            return None;
        }
        let mut m = t.object()?;
        m.content_type = self.body_headers.content_type.clone();
        m.standard = self.body_headers.standard.clone();
        m.storage_class = self.storage_class.clone();
        m.user_meta = self.foreign.clone();
        m.user_meta
            .extend(crate::fs::attr::to_user_meta(&self.attr));
        Some(m)
    }

    /// The object was replaced by a normal one since this writer learnt it was appendable
    /// (another client's PUT within the TTL): the unsent bytes go after that object's, as a
    /// staged file over it, and the publish rebuilds it.
    async fn rebase_on_replaced(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        let m = ctx.store.head_object(&self.key).await?;
        let Body::Append(t) = &mut self.body else {
            return Ok(());
        };
        tracing::info!(key = %self.key, "the appendable object was replaced by a normal one; appending by a rebuild");
        let tail = t.take_pending();
        let mut st = if m.appendable {
            Staged::over_appendable(&self.key, &m.etag, m.size)
        } else {
            Staged::over_object(&self.key, &m.etag, m.size)
        };
        st.write(ctx, m.size, &tail)?;
        self.foreign = meta::foreign_meta(&m.user_meta);
        self.body_headers = BodyHeaders::of(&m);
        self.storage_class = m.storage_class.clone();
        self.body = Body::Staged(st);
        self.attr.size = self.size();
        self.modified = true;
        Ok(())
    }

    /// Metadata may change: not on an appendable object COS already holds.
    fn check_meta_changeable(&self) -> FsResult<()> {
        match &self.body {
            Body::Append(t) if !t.creates() => Err(FsError::NotCopyable),
            _ => Ok(()),
        }
    }

    /// The key it is published under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The file's attributes as this mount sees them.
    pub fn attr(&self) -> &PosixAttr {
        &self.attr
    }

    /// `x-cos-meta-*` headers that are not POSIX attributes.
    pub fn foreign(&self) -> &UserMeta {
        &self.foreign
    }

    /// The storage class the file is published in (`None`: STANDARD).
    pub fn storage_class(&self) -> Option<&str> {
        self.storage_class.as_deref()
    }

    /// A new storage class: it rides with the next publish.
    pub fn set_storage_class(&mut self, class: String) -> FsResult<()> {
        self.check_meta_changeable()?;
        self.storage_class = Some(class);
        self.meta_modified = true;
        Ok(())
    }

    /// New attributes and foreign headers (a metadata change): they ride with the next publish.
    pub fn set_meta(&mut self, attr: PosixAttr, foreign: UserMeta) -> FsResult<()> {
        self.check_meta_changeable()?;
        self.foreign = foreign;
        if attr.mtime != self.attr.mtime {
            self.times_set = true;
        }
        self.set_attr(attr);
        Ok(())
    }

    /// The process writing this file was killed by `signal` midway.
    pub fn abandon(&mut self, signal: i32) {
        self.abandoned = Some(signal);
    }

    /// Killed midway (and not written or synced since): the signal.
    pub fn abandoned(&self) -> Option<i32> {
        self.abandoned
    }

    /// Another writer's object replaced this file's after it landed: what this mount shows
    /// of it must be looked up again.
    pub fn superseded(&self) -> bool {
        self.superseded
    }

    /// An object exists under its key (else the file exists only on this mount so far).
    pub fn exists_remote(&self) -> bool {
        self.exists_remote
    }

    pub fn is_unlinked(&self) -> bool {
        self.unlinked
    }

    /// The name was removed (unlink, or replaced by a rename): it is never published again
    /// and shows `st_nlink` 0.
    pub fn mark_unlinked(&mut self) {
        self.unlinked = true;
        self.attr.unlinked = true;
    }

    /// One more open handle may write.
    pub fn add_handle(&mut self) {
        self.handles += 1;
    }

    /// A writing handle was released; how many remain.
    pub fn drop_handle(&mut self) -> usize {
        self.handles = self.handles.saturating_sub(1);
        self.handles
    }

    /// The last publish failed (and its error went to the program).
    pub fn publish_failed(&self) -> bool {
        self.publish_failed
    }

    /// Changes COS does not have: not published yet, or a publish that failed.
    pub fn has_unpublished_changes(&self) -> bool {
        self.failed() || self.modified || self.meta_modified || self.publish_failed
    }

    fn check(&self) -> FsResult<()> {
        match self.failed {
            Some(why) => Err(FsError::WriterBroken(why)),
            None => Ok(()),
        }
    }

    pub fn size(&self) -> u64 {
        match &self.body {
            Body::Stream(s) => s.size(),
            Body::Staged(st) => st.size,
            Body::Append(t) => t.size(),
        }
    }

    fn put_options(&self) -> FsResult<PutOptions> {
        meta::put_options(
            &self.attr,
            &self.foreign,
            &self.body_headers,
            self.storage_class.as_deref(),
        )
    }

    fn headers(&self) -> FsResult<Headers> {
        Ok(Headers::new(self.put_options()?, self.times_set))
    }

    /// The content changed now: mtime and ctime move, and the file must be published.
    pub fn touch(&mut self) {
        let now = std::time::SystemTime::now();
        self.attr.mtime = now;
        self.attr.ctime = now;
        self.times_set = false;
        self.abandoned = None;
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
        if matches!(&self.body, Body::Append(t) if offset != t.size()) {
            self.leave_append(ctx, "a write before its end").await?;
        }
        let headers = self.headers()?;
        match &mut self.body {
            Body::Append(t) => t.push(ctx, data, &headers.full).await?,
            Body::Stream(s) => {
                let r = s.write(offset, data, &headers.streamed).await;
                if s.is_broken() {
                    self.failed = Some("its streaming upload failed");
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
        let mut buf = BytesMut::zeroed((end - offset) as usize);
        match &self.body {
            Body::Append(t) => t.read_into(ctx, offset, &mut buf).await?,
            Body::Staged(st) => st.read_into(ctx, offset, &mut buf).await?,
            Body::Stream(_) => unreachable!("a stream that reads sent bytes became staged"),
        }
        Ok(buf.freeze())
    }

    pub async fn truncate(&mut self, ctx: &WriteCtx<S>, size: u64) -> FsResult<()> {
        self.check()?;
        if matches!(&self.body, Body::Append(t) if size != t.size() && size != 0) {
            self.leave_append(ctx, "a truncate").await?;
        }
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
                Body::Stream(s) => s.truncate(size).await,
                Body::Staged(st) => st.truncate(size)?,
                Body::Append(_) => {} // to its own size: nothing changes
            }
        }
        self.touch();
        Ok(())
    }

    /// Record new attributes (chmod, chown, utimens); they go up with the next publish.
    fn set_attr(&mut self, attr: PosixAttr) {
        let size = self.size();
        self.attr = attr;
        self.attr.size = size;
        self.meta_modified = true;
    }

    /// An appendable file gets a change that is not an append: its tail goes out, and it
    /// goes on as a staged file whose publish rewrites it as a normal object.
    async fn leave_append(&mut self, ctx: &WriteCtx<S>, why: &str) -> FsResult<()> {
        let opts = self.put_options()?;
        let Body::Append(t) = &mut self.body else {
            return Ok(());
        };
        t.send(ctx, &opts).await?;
        tracing::info!(
            key = %self.key,
            "{why} on an appendable object: it will be rewritten as a normal object"
        );
        self.exists_remote = true;
        self.body = Body::Staged(Staged::over_appendable(&self.key, t.etag(), t.committed()));
        Ok(())
    }

    /// Turn a stream into a staged file (see the module comment).
    async fn make_staged(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        let Body::Stream(s) = &mut self.body else {
            return Ok(());
        };
        match s.keep_parts().await {
            Ok(Some((open, file, size))) => {
                self.body = Body::Staged(Staged::local(file, size, Some(open)));
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => {
                self.failed = Some("its sent parts could not be kept for an edit");
                return Err(e.into());
            }
        }
        let Body::Stream(s) = &self.body else {
            unreachable!("still a stream")
        };
        if self.unlinked && s.started() {
            // Completing the upload to read its parts back would bring the name back.
            return Err(FsError::UnlinkedPartsGone);
        }
        if !s.started() {
            let mut file = ScratchFile::create(&ctx.scratch)?;
            let data = s.buffered();
            file.charge(data.len() as u64)?;
            file.write_at(0, data)?;
            self.body = Body::Staged(Staged::local(file, data.len() as u64, None));
            return Ok(());
        }
        self.publish(ctx).await
    }

    /// Make COS hold what this mount shows: upload (or rebuild) the content if it changed,
    /// else rewrite the metadata if that changed. Returns once the object is complete.
    pub async fn publish(&mut self, ctx: &WriteCtx<S>) -> FsResult<()> {
        self.abandoned = None;
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
        if let Body::Append(t) = &mut self.body {
            match t.send(ctx, &opts).await {
                Err(FsError::Cos(e)) if e.kind() == Some(ErrorKind::NotAppendable) => {
                    self.rebase_on_replaced(ctx).await?;
                    return Box::pin(self.try_publish(ctx)).await;
                }
                r => r?,
            }
            let Body::Append(t) = &self.body else {
                unreachable!("still appending")
            };
            let (etag, size) = (t.etag().to_string(), t.committed());
            self.attr.changed_here(Some(etag));
            self.attr.size = size;
            self.attr.appendable = true;
            self.modified = false;
            self.meta_modified = false;
            self.exists_remote = true;
            return Ok(());
        }
        let headers = self.headers()?;
        let (etag, size, landed) = match &mut self.body {
            Body::Append(_) => unreachable!("sent above"),
            Body::Stream(s) => {
                let r = s.finish(&headers).await;
                if s.is_broken() {
                    self.failed = Some("its streaming upload failed");
                }
                let done = r?;
                (done.etag, done.size, done.landed)
            }
            Body::Staged(st) => match &st.base {
                Some(base) if !self.modified => {
                    // Only the metadata changed: one copy onto itself, guarded by the ETag
                    // it was opened at (a 412 means someone replaced it: the change did
                    // not land, and the program is told).
                    let etag = meta::copy_object(
                        &*ctx.store,
                        &base.key,
                        &self.key,
                        (st.size, &base.etag, None),
                        MetadataDirective::Replaced(opts.clone()),
                    )
                    .await?;
                    (etag, st.size, Landed::Exact)
                }
                _ => {
                    let (etag, landed) = st.rebuild(ctx, &self.key, &headers).await?;
                    (etag, st.size, landed)
                }
            },
        };
        // The content is on COS now, whatever happens to the headers below: never upload it
        // again (that could overwrite a newer object of another writer).
        self.set_base(&etag, size);
        self.modified = false;
        self.exists_remote = true;
        match landed {
            Landed::Exact => self.meta_modified = false,
            Landed::TimesFromLastModified => {
                self.meta_modified = false;
                self.learn_times(ctx, &etag).await;
            }
            Landed::Stale => self.fix_headers(ctx, &headers.full, &etag, size).await?,
        }
        Ok(())
    }

    /// The object `etag` carries its times as its Last-Modified (a streamed upload): take
    /// them from one HEAD, so that what this mount shows does not move when its attributes
    /// are looked up again.
    async fn learn_times(&mut self, ctx: &WriteCtx<S>, etag: &str) {
        match ctx.store.head_object(&self.key).await {
            Ok(m) if m.etag == etag => {
                if let Some(lm) = m.last_modified {
                    self.attr.mtime = lm;
                    self.attr.ctime = lm;
                    self.attr.last_modified = Some(lm);
                }
            }
            Ok(_) => {
                tracing::info!(key = %self.key, "another writer replaced the object just after this upload landed; its version stands");
                self.superseded = true;
            }
            Err(e) => {
                tracing::debug!(key = %self.key, error = %e, "no HEAD after the upload; the times shown may move once looked up again")
            }
        }
    }

    /// The headers changed after the upload of `etag` began (`cp -p` of a big file): one
    /// copy onto itself puts them right, guarded by the ETag. A copy refused because another
    /// writer's object replaced ours leaves that object alone: our content landed, and the
    /// later writer won.
    async fn fix_headers(
        &mut self,
        ctx: &WriteCtx<S>,
        opts: &PutOptions,
        etag: &str,
        size: u64,
    ) -> FsResult<()> {
        self.meta_modified = true;
        let r = meta::copy_object(
            &*ctx.store,
            &self.key,
            &self.key,
            (size, etag, None),
            MetadataDirective::Replaced(opts.clone()),
        )
        .await;
        match r {
            Ok(new) => {
                self.set_base(&new, size);
                self.meta_modified = false;
                Ok(())
            }
            Err(e) if e.kind() == Some(ErrorKind::PreconditionFailed) => {
                tracing::info!(key = %self.key, "another writer replaced the object after this upload landed; its version stands, without this file's new metadata");
                self.meta_modified = false;
                self.superseded = true;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The object under `key` is now `etag` with `size` bytes and this writer's content.
    fn set_base(&mut self, etag: &str, size: u64) {
        self.body = Body::Staged(Staged::over_object(&self.key, etag, size));
        self.attr.changed_here(Some(etag.to_string()));
        self.attr.size = size;
        self.attr.appendable = false;
    }

    /// The reader of the object the clean bytes of this file still come from, if any.
    pub fn base_reader(&self) -> Option<Arc<ObjectReader>> {
        match &self.body {
            Body::Staged(st) => st.base_reader(),
            Body::Append(t) => Some(t.reader()),
            Body::Stream(_) => None,
        }
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
        match &mut self.body {
            Body::Stream(s) => s.set_key(key),
            Body::Append(t) => t.set_key(key),
            Body::Staged(_) => {}
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

    /// Start again from what COS holds (`existing`, None: nothing), dropping every change not
    /// published: a new open of a file whose last publish failed (and told its program so)
    /// sees what COS has, as it would once the failed handle's release had come.
    pub async fn restart_from(
        &mut self,
        ctx: &WriteCtx<S>,
        existing: Option<&ObjectMeta>,
        attr: PosixAttr,
    ) {
        self.discard(ctx).await;
        let handles = self.handles;
        *self = match existing {
            Some(m) if m.appendable => Self::new_append(&self.key, attr, m),
            Some(m) => Self::new_over(&self.key, attr, m),
            None => Self::new_empty(ctx, &self.key, attr, None),
        };
        self.handles = handles;
    }

    /// Abort the upload a streamed overwrite left open, if any (its parts are not wanted).
    async fn discard_open_upload(&mut self, ctx: &WriteCtx<S>) {
        let Body::Staged(st) = &mut self.body else {
            return;
        };
        if let Some(open) = st.open.take() {
            abort_upload(&ctx.store, &ctx.journal, &self.key, &open.id).await;
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
        self.failed = Some("shutdown gave up on it");
        self.publish_failed = true;
        lost
    }
}

/// A stream to `key`; an overwrite (`keep`) keeps a copy of its sent parts.
fn new_stream<S: ObjectStore + ?Sized>(
    ctx: &WriteCtx<S>,
    key: &str,
    keep: bool,
) -> StreamUpload<S> {
    let shared = StreamShared {
        store: ctx.store.clone(),
        journal: ctx.journal.clone(),
        permits: ctx.permits.clone(),
        budget_mib: ctx.budget_mib,
        memory: ctx.memory.clone(),
    };
    StreamUpload::new(
        shared,
        key,
        ctx.part_size,
        keep.then(|| ctx.scratch.clone()),
    )
}
