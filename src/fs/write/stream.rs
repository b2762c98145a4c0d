//! Streaming upload of a file written from its start: data is cut into parts that upload in
//! the background while the program keeps writing.
//!
//! - Bytes not yet handed to an upload stay in `buf` (at most one part); a full part is sent
//!   as Upload Part on its own task. Both are charged to the mount's memory budget
//!   (`memory`): the buffer as it grows, and a part until COS has taken it. A writer that
//!   finds no free memory sends what it has as a smaller part when that is a valid part (at
//!   least 1 MiB) and the write appends, then waits for memory (backpressure). Parts uploading
//!   at once are also bounded mount-wide by a semaphore of MiB units (`WriteCtx::permits`,
//!   `--upload-concurrency` parts of `--part-size`).
//! - The multipart upload starts with the first full part. A file that never fills one part is
//!   one PUT at `finish` (and keeps its buffer on failure, so a later flush can retry).
//! - A failed multipart upload is aborted (nothing billed is left behind) and the stream is
//!   broken: its data is gone, the error goes to the writer at close/fsync, and the previous
//!   object is untouched because Complete never happened.
//! - Metadata is sent at Initiate (or with the PUT): the streamed form of the headers, without
//!   the times writes keep moving (`headers`). `finish` reports what the object got, so the
//!   caller learns the times with a HEAD, or fixes headers that changed after the upload
//!   started with one copy.
//! - An overwrite keeps a copy of every part it sends in a staging file (`keep`), while the
//!   staging area has room for it. Sent parts cannot be read back from COS before Complete,
//!   so this copy is what lets the file turn into a staged one without completing the upload
//!   (`keep_parts`) when the program reads or writes back into them: the previous object then
//!   stays untouched until the file is committed. Without room the copy is dropped for good.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::object::{CosError, CosResult, ObjectStore, PutOptions, Upload, UploadedPart};

use super::super::memory::{MemoryBudget, WriteCharge, WriteUseKind};
use super::super::upload_journal::UploadJournal;
use super::cleanup::abort_upload;
use super::headers::{Headers, Landed};
use super::open_upload::{OpenUpload, SentPart};
use super::parts::{stream_part_size, MIN_PART};
use crate::fs::scratch::{ScratchArea, ScratchFile};

/// What a finished stream left on COS.
#[derive(Debug, Clone)]
pub struct Finished {
    pub etag: String,
    pub size: u64,
    /// What the object carries of the headers passed to `finish`.
    pub landed: Landed,
}

/// The copy of sent parts an overwrite keeps.
enum Keep {
    /// Not wanted (a new file: there is no previous object to protect).
    Off,
    /// Wanted; the staging file is made with the first part.
    Wanted(Arc<ScratchArea>),
    On(ScratchFile),
    /// Wanted, but the staging area had no room: gone for this stream.
    Lost,
}

pub struct StreamUpload<S: ObjectStore + ?Sized> {
    store: Arc<S>,
    journal: Arc<UploadJournal>,
    key: String,
    keep: Keep,
    /// Byte ranges of the parts sent, part `n` at index `n - 1`.
    sent: Vec<Range<u64>>,
    first_part: u64,
    permits: Arc<Semaphore>,
    /// The semaphore's size in MiB (a part never asks for more).
    budget_mib: u32,
    memory: Arc<MemoryBudget>,
    /// The memory charge of `buf`.
    held: Option<WriteCharge>,
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

/// What every stream of a mount shares: where parts go, and the limits they are sent under.
pub struct StreamShared<S: ObjectStore + ?Sized> {
    pub store: Arc<S>,
    pub journal: Arc<UploadJournal>,
    /// Upload bytes in flight mount-wide, in MiB units.
    pub permits: Arc<Semaphore>,
    /// The size of `permits`.
    pub budget_mib: u32,
    pub memory: Arc<MemoryBudget>,
}

impl<S: ObjectStore + ?Sized> StreamUpload<S> {
    /// A stream to `key` with parts of `first_part` bytes first; `keep` names the staging
    /// area when sent parts should be kept (an overwrite).
    pub fn new(
        shared: StreamShared<S>,
        key: &str,
        first_part: u64,
        keep: Option<Arc<ScratchArea>>,
    ) -> Self {
        let StreamShared {
            store,
            journal,
            permits,
            budget_mib,
            memory,
        } = shared;
        StreamUpload {
            store,
            journal,
            key: key.to_string(),
            keep: keep.map_or(Keep::Off, Keep::Wanted),
            sent: Vec::new(),
            first_part,
            permits,
            budget_mib: budget_mib.max(1),
            memory,
            held: None,
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
        // In steps of at most 1 MiB, so that memory is charged (and waited for) gradually.
        let mut done = 0;
        loop {
            let n = (data.len() - done).min(MIN_PART as usize);
            self.write_step(offset + done as u64, &data[done..done + n], opts)
                .await?;
            done += n;
            if done == data.len() {
                return Ok(());
            }
        }
    }

    async fn write_step(&mut self, offset: u64, data: &[u8], opts: &PutOptions) -> CosResult<()> {
        let end = offset + data.len() as u64;
        if end > self.size() {
            self.hold_until(end, offset == self.size(), opts).await?;
        }
        let at = (offset - self.buf_start) as usize;
        if at > self.buf.len() {
            self.buf.resize(at, 0);
        }
        let overlap = (self.buf.len() - at).min(data.len());
        self.buf[at..at + overlap].copy_from_slice(&data[..overlap]);
        let rest = &data[overlap..];
        let part = stream_part_size(self.first_part, self.next_part) as usize;
        if self.buf.len() + rest.len() > self.buf.capacity()
            && self.buf.len() + rest.len() > 256 << 10
        {
            // Past 256 KiB the file is big: grow straight to a whole part instead of doubling
            // (each doubling copies, and holds old and new at once). Capacity not written to
            // is address space, not memory.
            self.buf
                .reserve(part.saturating_sub(self.buf.len()).max(rest.len()));
        }
        self.buf.extend_from_slice(rest);
        self.note_held();
        loop {
            let part = stream_part_size(self.first_part, self.next_part) as usize;
            if self.buf.len() < part {
                return Ok(());
            }
            let body = self.cut(part);
            if let Err(e) = self.send_part(body, opts).await {
                self.fail(&e).await;
                return Err(e);
            }
        }
    }

    /// Charge memory for the buffer to reach the file offset `end`. Without free memory, an
    /// append (`appending`) first sends the buffer as a part when it may be one, then waits.
    async fn hold_until(&mut self, end: u64, appending: bool, opts: &PutOptions) -> CosResult<()> {
        let want = |s: &Self| (end - s.buf_start).saturating_sub(s.held_room());
        if want(self) == 0 {
            return Ok(());
        }
        if let Some(more) = self.memory.try_charge(want(self), WriteUseKind::Buffer) {
            self.absorb(more);
            return Ok(());
        }
        if appending && self.buf.len() as u64 >= MIN_PART {
            let body = self.cut(self.buf.len());
            if let Err(e) = self.send_part(body, opts).await {
                self.fail(&e).await;
                return Err(e);
            }
            if want(self) == 0 {
                return Ok(());
            }
        }
        let more = self
            .memory
            .charge_waiting(want(self), WriteUseKind::Buffer)
            .await;
        self.absorb(more);
        Ok(())
    }

    /// The first `n` buffered bytes, to send as a part. What stays buffered moves to an
    /// allocation of its own: a part sharing one with the buffer would keep every page of it
    /// resident until the last sharer is gone, outside what the memory budget sees.
    fn cut(&mut self, n: usize) -> Bytes {
        let body = self.buf.split_to(n).freeze();
        if !self.buf.is_empty() || self.buf.capacity() > 0 {
            self.buf = BytesMut::from(&self.buf[..]);
        }
        body
    }

    fn held_room(&self) -> u64 {
        self.held.as_ref().map_or(0, WriteCharge::room)
    }

    fn absorb(&mut self, more: WriteCharge) {
        match &mut self.held {
            Some(h) => h.absorb(more),
            None => self.held = Some(more),
        }
    }

    /// Tell the charge how much of it the buffer uses now.
    fn note_held(&mut self) {
        let len = self.buf.len() as u64;
        if let Some(h) = &mut self.held {
            h.set_bytes(len.min(h.room()));
        }
    }

    /// A part's data is gone: abort the upload and refuse everything from now on.
    async fn fail(&mut self, e: &CosError) {
        self.abort().await;
        self.broken = Some(format!("upload of {} failed: {e}", self.key));
    }

    /// Cut the file to `size` (at or after `buf_start()`), or extend it with zeros.
    pub async fn truncate(&mut self, size: u64) {
        debug_assert!(size >= self.buf_start);
        let len = size - self.buf_start;
        if len > self.held_room() {
            let more = self
                .memory
                .charge_waiting(len - self.held_room(), WriteUseKind::Buffer)
                .await;
            self.absorb(more);
        }
        self.buf.resize(len as usize, 0);
        if let Some(h) = &mut self.held {
            h.shrink_to(len);
        }
    }

    async fn send_part(&mut self, body: Bytes, opts: &PutOptions) -> CosResult<()> {
        self.reap()?;
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.journal.initiate(&*self.store, &self.key, opts).await?;
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
        // The part's memory goes with it until COS has it.
        let charge = self
            .held
            .as_mut()
            .map(|h| h.split(body.len() as u64, WriteUseKind::Upload));
        let n = self.next_part;
        self.next_part += 1;
        let start = self.buf_start;
        self.keep_copy(start, &body);
        self.sent.push(start..start + body.len() as u64);
        self.buf_start += body.len() as u64;
        let (store, key) = (self.store.clone(), self.key.clone());
        self.tasks.spawn(async move {
            let r = store
                .upload_part(&Upload::new(&key, &upload_id), n, body)
                .await;
            drop(permit);
            drop(charge);
            r
        });
        Ok(())
    }

    /// Copy a part about to be sent into the kept staging file, if there is one and room.
    fn keep_copy(&mut self, at: u64, body: &[u8]) {
        if let Keep::Wanted(dir) = &self.keep {
            self.keep = match ScratchFile::create(dir) {
                Ok(f) => Keep::On(f),
                Err(_) => Keep::Lost,
            };
        }
        if let Keep::On(f) = &mut self.keep {
            let n = body.len() as u64;
            if f.charge_spare(n)
                .and_then(|_| f.write_at(at, body))
                .is_err()
            {
                tracing::debug!(key = %self.key, "no room to keep the sent parts of this overwrite");
                self.keep = Keep::Lost;
            }
        }
    }

    /// Hand over the sent parts without completing the upload: waits for the parts in flight
    /// and returns the open upload and the staging file holding the whole file so far (sent
    /// parts and the buffer). None when no copy was kept (or nothing was sent); the stream is
    /// then untouched. After Some, the stream holds nothing (it no longer owns the upload).
    pub async fn keep_parts(&mut self) -> CosResult<Option<(OpenUpload, ScratchFile, u64)>> {
        let (Some(id), Keep::On(_)) = (&self.upload_id, &self.keep) else {
            return Ok(None);
        };
        let id = id.clone();
        while let Some(done) = self.tasks.join_next().await {
            if let Err(e) = self.record(done) {
                self.fail(&e).await;
                return Err(e);
            }
        }
        let Keep::On(mut file) = std::mem::replace(&mut self.keep, Keep::Lost) else {
            unreachable!("checked above")
        };
        let tail = self.buf.len() as u64;
        if file
            .charge(tail)
            .and_then(|_| file.write_at(self.buf_start, &self.buf))
            .is_err()
        {
            return Ok(None); // no room for the buffer: fall back to completing the upload
        }
        let size = self.size();
        self.parts.sort_by_key(|p| p.part_number);
        let parts = std::mem::take(&mut self.parts)
            .into_iter()
            .map(|part| SentPart {
                range: self.sent[part.part_number as usize - 1].clone(),
                part,
                valid: true,
            })
            .collect();
        let open = OpenUpload {
            id,
            initiated_with: self.initiated_with.clone().unwrap_or_default(),
            parts,
        };
        self.upload_id = None;
        self.buf = BytesMut::new();
        self.held = None;
        Ok(Some((open, file, size)))
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

    /// Upload what is left and complete the object with `headers` as its metadata (all of
    /// them when it is one PUT; what the Initiate carried for a multipart upload).
    pub async fn finish(&mut self, headers: &Headers) -> CosResult<Finished> {
        let opts = &headers.streamed;
        if let Some(why) = &self.broken {
            return Err(CosError::Transport(why.clone()));
        }
        let size = self.size();
        let Some(upload_id) = self.upload_id.clone() else {
            // Handed over without a copy and taken back (copied only if still shared): the
            // buffer stays the whole file, for a later flush.
            let body = std::mem::take(&mut self.buf).freeze();
            let r = self
                .store
                .put_object(&self.key, body.clone(), &headers.full)
                .await;
            self.buf = body
                .try_into_mut()
                .unwrap_or_else(|b| BytesMut::from(&b[..]));
            let r = r?;
            return Ok(Finished {
                etag: r.etag,
                size,
                landed: Landed::Exact,
            });
        };
        let result = async {
            if !self.buf.is_empty() {
                let body = self.cut(self.buf.len());
                self.send_part(body, opts).await?;
            }
            while let Some(done) = self.tasks.join_next().await {
                self.record(done)?;
            }
            self.parts.sort_by_key(|p| p.part_number);
            self.store
                .complete_multipart(&Upload::new(&self.key, &upload_id), &self.parts)
                .await
        }
        .await;
        match result {
            Ok(done) => {
                self.upload_id = None;
                self.journal.ended(&upload_id);
                let landed = match &self.initiated_with {
                    Some(initiated) => headers.landed(initiated),
                    None => Landed::Stale,
                };
                Ok(Finished {
                    etag: done.etag,
                    size,
                    landed,
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
            abort_upload(&self.store, &self.journal, &self.key, &id).await;
        }
        self.broken.get_or_insert_with(|| "upload aborted".into());
    }
}
