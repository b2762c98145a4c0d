//! `Staged`: a file being modified in place (see `writer`). Bytes are `dirty` (in the staging
//! file), `clean` (offset below `base_len` and not dirty: still the previous object, read
//! through the block cache with its ETag pinned) or zeros (past `base_len`, never written).
//! Committing rebuilds the object from copied and uploaded parts (`parts::plan`), or, for a
//! streamed overwrite that turned staged, completes the upload it left open (`open_upload`).

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::fs::error::FsResult;
use crate::fs::memory::{WriteCharge, WriteUseKind};
use crate::fs::reader::ObjectReader;
use crate::object::{ByteRange, CopySource, CosResult, ObjectStore, Upload, UploadedPart};

use super::cleanup::abort_upload;
use super::ctx::WriteCtx;
use super::headers::{Headers, Landed};
use super::open_upload::{OpenUpload, Step};
use super::parts::{plan, PartSource};
use super::ranges::RangeSet;
use crate::fs::scratch::{ScratchArea, ScratchFile};

/// Clean runs shorter than this are uploaded rather than copied.
const COPY_MIN: u64 = 4 * 1024 * 1024;
/// Parts of a rebuild in flight at once.
const REBUILD_CONCURRENCY: usize = 4;

/// The object a staged file started from.
pub(super) struct Base {
    pub key: String,
    pub etag: String,
    reader: Arc<ObjectReader>,
}

pub(super) struct Staged {
    file: Option<ScratchFile>,
    pub base: Option<Base>,
    base_len: u64,
    pub size: u64,
    dirty: RangeSet,
    /// The upload a streamed overwrite left open (all bytes are then dirty and local).
    pub open: Option<OpenUpload>,
    /// The base may be copied from (COS refuses to copy appendable objects: their clean
    /// bytes are read and uploaded instead).
    copy_base: bool,
}

impl Staged {
    /// The reader of the object this file started from, if any.
    pub fn base_reader(&self) -> Option<Arc<ObjectReader>> {
        self.base.as_ref().map(|b| b.reader.clone())
    }

    /// The object `key` as `etag` with `size` bytes, nothing changed yet.
    pub fn over_object(key: &str, etag: &str, size: u64) -> Self {
        Staged {
            file: None,
            base: Some(Base {
                key: key.to_string(),
                etag: etag.to_string(),
                reader: Arc::new(ObjectReader::new(key, etag, size)),
            }),
            base_len: size,
            size,
            dirty: RangeSet::new(),
            open: None,
            copy_base: true,
        }
    }

    /// The appendable object `key` as `etag` with `size` bytes: rebuilt without copies.
    pub fn over_appendable(key: &str, etag: &str, size: u64) -> Self {
        let mut st = Self::over_object(key, etag, size);
        st.copy_base = false;
        if let Some(b) = &mut st.base {
            b.reader = Arc::new(ObjectReader::new_appendable(key, etag, size));
        }
        st
    }

    /// A file whose `size` bytes are all in `file` (a stream moved down), over the upload a
    /// streamed overwrite left `open`, if any.
    pub fn local(file: ScratchFile, size: u64, open: Option<OpenUpload>) -> Self {
        let mut dirty = RangeSet::new();
        dirty.insert(0..size);
        Staged {
            file: Some(file),
            base: None,
            base_len: 0,
            size,
            dirty,
            open,
            copy_base: true,
        }
    }

    fn file(&mut self, ctx_dir: &Arc<ScratchArea>) -> FsResult<&mut ScratchFile> {
        if self.file.is_none() {
            self.file = Some(ScratchFile::create(ctx_dir)?);
        }
        Ok(self.file.as_mut().expect("just created"))
    }

    pub fn write<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        let r = offset..offset + data.len() as u64;
        let new_bytes = self.dirty.missing_len(r.clone());
        let file = self.file(&ctx.scratch)?;
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

    pub fn truncate(&mut self, size: u64) -> FsResult<()> {
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

    /// Fill `buf` with the file's bytes from `offset` as this mount sees them (all within its
    /// size).
    pub async fn read_into<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        offset: u64,
        buf: &mut [u8],
    ) -> FsResult<()> {
        if let Some(f) = &self.file {
            f.read_at(offset, buf)?;
        }
        if let Some(base) = &self.base {
            let clean = self.clean(offset..offset + buf.len() as u64);
            ctx.read_object_ranges(&base.reader, offset, clean, buf)
                .await?;
        }
        Ok(())
    }

    /// Bytes `range` of the file, for a part or a PUT.
    async fn read_range<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        range: &std::ops::Range<u64>,
    ) -> FsResult<Bytes> {
        let mut buf = BytesMut::zeroed((range.end - range.start) as usize);
        self.read_into(ctx, range.start, &mut buf).await?;
        Ok(buf.freeze())
    }

    /// Write the file to `key`: over the upload a streamed overwrite left open, if any; else
    /// one PUT when it is a single data part, else a multipart upload that copies unchanged
    /// runs of the base object. Returns the new ETag and what the object carries of
    /// `headers` (all of them, but for an upload a stream initiated).
    pub async fn rebuild<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        key: &str,
        headers: &Headers,
    ) -> FsResult<(String, Landed)> {
        if let Some(open) = self.open.take() {
            return self.complete_open(ctx, key, headers, open).await;
        }
        let opts = &headers.full;
        let copyable = if self.copy_base {
            self.clean(0..self.size)
        } else {
            Vec::new()
        };
        let parts = plan(self.size, &copyable, ctx.part_size, COPY_MIN);
        if let [PartSource::Data(r)] = parts.as_slice() {
            let _charge = part_memory(ctx, r).await;
            let body = self.read_range(ctx, r).await?;
            return Ok((
                ctx.store.put_object(key, body, opts).await?.etag,
                Landed::Exact,
            ));
        }
        let id = ctx.journal.initiate(&*ctx.store, key, opts).await?;
        let sends: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| self.send_part(ctx, key, &id, i as u32 + 1, p))
            .collect();
        let result = complete_with(ctx, key, &id, sends).await;
        if result.is_err() {
            abort_upload(&ctx.store, &ctx.journal, key, &id).await;
        }
        Ok((result?, Landed::Exact))
    }

    /// Complete the upload a streamed overwrite left open (see `open_upload`). On failure it
    /// is aborted; every byte is still here, so a later commit starts over.
    async fn complete_open<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        key: &str,
        headers: &Headers,
        open: OpenUpload,
    ) -> FsResult<(String, Landed)> {
        let steps = open.plan(self.size, ctx.part_size);
        let id = open.id.as_str();
        let result: FsResult<(String, Landed)> = async {
            if steps.is_empty() {
                // Cut to nothing: no part to complete with.
                let put = ctx.store.put_object(key, Bytes::new(), &headers.full);
                return Ok((put.await?.etag, Landed::Exact));
            }
            let sends: Vec<_> = steps
                .iter()
                .map(|step| self.send_step(ctx, key, id, step))
                .collect();
            let etag = complete_with(ctx, key, id, sends).await?;
            Ok((etag, headers.landed(&open.initiated_with)))
        }
        .await;
        if result.is_err() || steps.is_empty() {
            abort_upload(&ctx.store, &ctx.journal, key, id).await;
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
                let _charge = part_memory(ctx, r).await;
                let body = self.read_range(ctx, r).await?;
                Ok(ctx
                    .store
                    .upload_part(&Upload::new(key, upload_id), *n, body)
                    .await?)
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
                        &Upload::new(key, upload_id),
                        n,
                        &CopySource {
                            key: &base.key,
                            range: Some(ByteRange::new(r.start, r.end)),
                            if_match: Some(&base.etag),
                        },
                    )
                    .await
            }
            PartSource::Data(r) => {
                let _charge = part_memory(ctx, r).await;
                let body = self.read_range(ctx, r).await?;
                ctx.store
                    .upload_part(&Upload::new(key, upload_id), n, body)
                    .await
            }
        };
        Ok(r?)
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
    let etag = ctx
        .store
        .complete_multipart(&Upload::new(key, id), &done)
        .await?
        .etag;
    ctx.journal.ended(id);
    Ok(etag)
}

/// The memory charge of a part read back from the staging file, held until it is uploaded.
async fn part_memory<S: ObjectStore + ?Sized>(ctx: &WriteCtx<S>, r: &Range<u64>) -> WriteCharge {
    ctx.memory
        .charge_waiting(r.end - r.start, WriteUseKind::Upload)
        .await
}
