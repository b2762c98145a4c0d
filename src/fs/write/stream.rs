//! Streaming upload of a file written from its start: data is cut into parts that upload in
//! the background while the program keeps writing.
//!
//! - Bytes not yet handed to an upload stay in `buf` (at most one part); a full part is sent
//!   as Upload Part on its own task. Bytes in flight are bounded mount-wide by a semaphore of
//!   MiB units (`WriteCtx::permits`), so memory is at most one part per open writer plus that
//!   budget; a writer that gets ahead of the network waits for permits (backpressure).
//! - The multipart upload starts with the first full part. A file that never fills one part is
//!   one PUT at `finish` (and keeps its buffer on failure, so a later flush can retry).
//! - A failed multipart upload is aborted (nothing billed is left behind) and the stream is
//!   broken: its data is gone, the error goes to the writer at close/fsync, and the previous
//!   object is untouched because Complete never happened.
//! - Metadata is sent at Initiate (or with the PUT). `finish` reports whether the metadata it
//!   was given is what the object got, so the caller can fix it with one copy if it changed
//!   after the upload started.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cos::{CosError, CosResult, ObjectStore, PutOptions, UploadedPart};

use super::parts::stream_part_size;

/// What a finished stream left on COS.
#[derive(Debug, Clone)]
pub struct Finished {
    pub etag: String,
    pub size: u64,
    /// The object carries the metadata passed to `finish`.
    pub meta_applied: bool,
}

pub struct StreamUpload<S: ObjectStore + ?Sized> {
    store: Arc<S>,
    key: String,
    first_part: u64,
    permits: Arc<Semaphore>,
    /// The semaphore's size in MiB (a part never asks for more).
    budget_mib: u32,
    upload_id: Option<String>,
    initiated_with: Option<PutOptions>,
    next_part: u32,
    /// Bytes from `buf_start` on, not yet handed to an upload.
    buf: BytesMut,
    buf_start: u64,
    tasks: JoinSet<CosResult<UploadedPart>>,
    parts: Vec<UploadedPart>,
    broken: Option<String>,
}

impl<S: ObjectStore + ?Sized> StreamUpload<S> {
    pub fn new(
        store: Arc<S>,
        key: &str,
        first_part: u64,
        permits: Arc<Semaphore>,
        budget_mib: u32,
    ) -> Self {
        StreamUpload {
            store,
            key: key.to_string(),
            first_part,
            permits,
            budget_mib: budget_mib.max(1),
            upload_id: None,
            initiated_with: None,
            next_part: 1,
            buf: BytesMut::new(),
            buf_start: 0,
            tasks: JoinSet::new(),
            parts: Vec::new(),
            broken: None,
        }
    }

    /// Upload to `key` instead (only before any part went up).
    pub fn set_key(&mut self, key: &str) {
        if self.upload_id.is_none() {
            self.key = key.to_string();
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// Where the bytes still held in memory start.
    pub fn buf_start(&self) -> u64 {
        self.buf_start
    }

    /// Whether any part has been handed to COS (the data before `buf_start` is not local).
    pub fn started(&self) -> bool {
        self.upload_id.is_some()
    }

    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// The bytes still in memory (all of the file while `started()` is false).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Write `data` at `offset`, which must be at or after `buf_start()`; a gap after the end
    /// is filled with zeros.
    pub async fn write(&mut self, offset: u64, data: &[u8], opts: &PutOptions) -> CosResult<()> {
        debug_assert!(offset >= self.buf_start);
        let at = (offset - self.buf_start) as usize;
        if at > self.buf.len() {
            self.buf.resize(at, 0);
        }
        let overlap = (self.buf.len() - at).min(data.len());
        self.buf[at..at + overlap].copy_from_slice(&data[..overlap]);
        let rest = &data[overlap..];
        let part = stream_part_size(self.first_part, self.next_part) as usize;
        if self.buf.len() + rest.len() > self.buf.capacity() && self.buf.len() >= 1 << 20 {
            // Past 1 MiB the file is big: grow straight to a whole part instead of doubling.
            self.buf
                .reserve(part.saturating_sub(self.buf.len()).max(rest.len()));
        }
        self.buf.extend_from_slice(rest);
        loop {
            let part = stream_part_size(self.first_part, self.next_part) as usize;
            if self.buf.len() < part {
                return Ok(());
            }
            let body = self.buf.split_to(part).freeze();
            if let Err(e) = self.send_part(body, opts).await {
                self.fail(&e).await;
                return Err(e);
            }
        }
    }

    /// A part's data is gone: abort the upload and refuse everything from now on.
    async fn fail(&mut self, e: &CosError) {
        self.abort().await;
        self.broken = Some(format!("upload of {} failed: {e}", self.key));
    }

    /// Cut the file to `size` (at or after `buf_start()`), or extend it with zeros.
    pub fn truncate(&mut self, size: u64) {
        debug_assert!(size >= self.buf_start);
        self.buf.resize((size - self.buf_start) as usize, 0);
    }

    async fn send_part(&mut self, body: Bytes, opts: &PutOptions) -> CosResult<()> {
        self.reap()?;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.store.initiate_multipart(&self.key, opts).await?;
                self.upload_id = Some(id.clone());
                self.initiated_with = Some(opts.clone());
                id
            }
        };
        let mib = (body.len().div_ceil(1 << 20) as u32).clamp(1, self.budget_mib);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(mib)
            .await
            .expect("the semaphore is never closed");
        let n = self.next_part;
        self.next_part += 1;
        self.buf_start += body.len() as u64;
        let (store, key) = (self.store.clone(), self.key.clone());
        self.tasks.spawn(async move {
            let r = store.upload_part(&key, &upload_id, n, body).await;
            drop(permit);
            r
        });
        Ok(())
    }

    /// Collect finished part uploads; the first failure breaks the stream.
    fn reap(&mut self) -> CosResult<()> {
        while let Some(done) = self.tasks.try_join_next() {
            self.record(done)?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        done: Result<CosResult<UploadedPart>, tokio::task::JoinError>,
    ) -> CosResult<()> {
        match done {
            Ok(Ok(p)) => {
                self.parts.push(p);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(CosError::Transport(format!("part upload task failed: {e}"))),
        }
    }

    /// Upload what is left and complete the object with `opts` as its metadata.
    pub async fn finish(&mut self, opts: &PutOptions) -> CosResult<Finished> {
        if let Some(why) = &self.broken {
            return Err(CosError::Transport(why.clone()));
        }
        let size = self.size();
        let Some(upload_id) = self.upload_id.clone() else {
            let body = self.buf.clone().freeze();
            let r = self.store.put_object(&self.key, body, opts).await?;
            return Ok(Finished {
                etag: r.etag,
                size,
                meta_applied: true,
            });
        };
        let result = async {
            if !self.buf.is_empty() {
                let body = self.buf.split().freeze();
                self.send_part(body, opts).await?;
            }
            while let Some(done) = self.tasks.join_next().await {
                self.record(done)?;
            }
            self.parts.sort_by_key(|p| p.part_number);
            self.store
                .complete_multipart(&self.key, &upload_id, &self.parts)
                .await
        }
        .await;
        match result {
            Ok(done) => {
                self.upload_id = None;
                Ok(Finished {
                    etag: done.etag,
                    size,
                    meta_applied: self.initiated_with.as_ref() == Some(opts),
                })
            }
            Err(e) => {
                self.fail(&e).await;
                Err(e)
            }
        }
    }

    /// Give up: stop the part uploads and abort the multipart upload, if any.
    pub async fn abort(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            if let Err(e) = self.store.abort_multipart(&self.key, &id).await {
                tracing::warn!(key = %self.key, error = %e, "abort of a failed upload failed too");
            }
        }
        self.broken.get_or_insert_with(|| "upload aborted".into());
    }
}
