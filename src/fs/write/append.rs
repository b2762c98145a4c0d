//! `AppendTail`: a file open for writing over an appendable object (or created appendable
//! under `--appendable-logs`), while every write lands at its end.
//!
//! - The first `committed` bytes are the object on COS, read through the block cache at the
//!   ETag the last append left; the bytes after them wait in memory (`pending`, charged to the
//!   mount's memory budget) until a flush, fsync or close sends them as one APPEND Object at
//!   position `committed`. So each commit point costs one request carrying only the new
//!   bytes, and readers elsewhere see the growth as soon as it returns. A tail that reaches
//!   `APPEND_CHUNK` is sent without waiting for a commit point.
//! - APPEND is not idempotent, so a 409 PositionNotEqualToLength is looked into with one HEAD:
//!   an object that is exactly this tail longer, with the CRC-64 this tail gives, means an
//!   earlier attempt of the same request landed (its answer was lost): done. An appendable
//!   object that grew otherwise was appended to by someone else: the tail goes after their
//!   bytes (what `O_APPEND` means for writers on several machines), and the file grows by
//!   theirs too. Anything else is EIO and the tail stays for the next commit point.
//! - A write anywhere but the end, or a truncate, is not an append: the writer sends its tail
//!   and turns into a staged file over the object (`writer`), which is rewritten as a normal
//!   object when it is published.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::fs::error::{FsError, FsResult};
use crate::fs::memory::{WriteCharge, WriteUseKind};
use crate::fs::reader::ObjectReader;
use crate::object::{Append, ErrorKind, ObjectMeta, ObjectStore, PutOptions};

use super::ctx::WriteCtx;

/// A tail this long is sent at once, without waiting for a commit point.
pub const APPEND_CHUNK: usize = 8 * 1024 * 1024;
/// Times one send follows an end that other writers keep moving before it gives up (EIO).
const MAX_CHASES: u32 = 16;

pub(super) struct AppendTail {
    key: String,
    /// The object's length on COS: where the next APPEND goes.
    committed: u64,
    /// The ETag and CRC-64 of the object as the last append (or the HEAD at open) left it.
    etag: String,
    crc64: Option<u64>,
    reader: Arc<ObjectReader>,
    /// Bytes after `committed`, not sent yet.
    pending: BytesMut,
    charge: Option<WriteCharge>,
    /// No object yet: the first APPEND creates it with the file's metadata.
    create: bool,
}

impl AppendTail {
    /// Over the appendable object `meta` of `key`.
    pub fn over(key: &str, meta: &ObjectMeta) -> Self {
        AppendTail {
            key: key.to_string(),
            committed: meta.size,
            etag: meta.etag.clone(),
            crc64: meta.crc64,
            reader: Arc::new(ObjectReader::new_appendable(key, &meta.etag, meta.size)),
            pending: BytesMut::new(),
            charge: None,
            create: false,
        }
    }

    /// A new file that its first APPEND creates.
    pub fn new_file(key: &str) -> Self {
        AppendTail {
            key: key.to_string(),
            committed: 0,
            etag: String::new(),
            crc64: Some(0),
            reader: Arc::new(ObjectReader::new(key, "", 0)),
            pending: BytesMut::new(),
            charge: None,
            create: true,
        }
    }

    pub fn size(&self) -> u64 {
        self.committed + self.pending.len() as u64
    }

    /// No object yet: the first APPEND creates it (its metadata may still change).
    pub fn creates(&self) -> bool {
        self.create
    }

    /// The object as the last APPEND left it (its headers are the caller's to fill in).
    pub fn object(&self) -> Option<ObjectMeta> {
        self.is_clean().then(|| ObjectMeta {
            size: self.committed,
            etag: self.etag.clone(),
            crc64: self.crc64,
            appendable: true,
            ..Default::default()
        })
    }

    /// The bytes not sent yet, taken out (the object turned out not to be appendable).
    pub fn take_pending(&mut self) -> Bytes {
        self.charge = None;
        std::mem::take(&mut self.pending).freeze()
    }

    /// Bytes COS holds of this file.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Nothing to send: COS holds the whole file.
    pub fn is_clean(&self) -> bool {
        self.pending.is_empty() && !self.create
    }

    pub fn reader(&self) -> Arc<ObjectReader> {
        self.reader.clone()
    }

    /// The file was renamed before its first APPEND.
    pub fn set_key(&mut self, key: &str) {
        self.key = key.to_string();
    }

    /// Add `data` at the end (the caller checked that it is the end).
    pub async fn push<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        data: &[u8],
        opts: &PutOptions,
    ) -> FsResult<()> {
        let need = (self.pending.len() + data.len()) as u64;
        let room = self.charge.as_ref().map_or(0, WriteCharge::room);
        if need > room {
            let more = match ctx.memory.try_charge(need - room, WriteUseKind::Buffer) {
                Some(c) => c,
                None => {
                    // No free memory: what is held goes out first, then wait for room.
                    self.send(ctx, opts).await?;
                    ctx.memory
                        .charge_waiting(data.len() as u64, WriteUseKind::Buffer)
                        .await
                }
            };
            match &mut self.charge {
                Some(c) => c.absorb(more),
                None => self.charge = Some(more),
            }
        }
        self.pending.extend_from_slice(data);
        if let Some(c) = &mut self.charge {
            c.set_bytes((self.pending.len() as u64).min(c.room()));
        }
        if self.pending.len() >= APPEND_CHUNK {
            self.send(ctx, opts).await?;
        }
        Ok(())
    }

    /// Fill `buf` with the file's bytes from `offset` (all within its size).
    pub async fn read_into<S: ObjectStore + ?Sized>(
        &self,
        ctx: &WriteCtx<S>,
        offset: u64,
        buf: &mut [u8],
    ) -> FsResult<()> {
        let end = offset + buf.len() as u64;
        let sent = offset..end.min(self.committed);
        let sent = Some(sent).filter(|r| !r.is_empty());
        ctx.read_object_ranges(&self.reader, offset, sent, buf)
            .await?;
        if end > self.committed {
            let from = offset.max(self.committed);
            let tail =
                &self.pending[(from - self.committed) as usize..(end - self.committed) as usize];
            buf[(from - offset) as usize..].copy_from_slice(tail);
        }
        Ok(())
    }

    /// Send the tail as one APPEND Object (the first one creates the object with `opts`).
    pub async fn send<S: ObjectStore + ?Sized>(
        &mut self,
        ctx: &WriteCtx<S>,
        opts: &PutOptions,
    ) -> FsResult<()> {
        if self.is_clean() {
            return Ok(());
        }
        let body = Bytes::copy_from_slice(&self.pending);
        let ours = crate::cos::integrity::crc64(&body);
        let len = body.len() as u64;
        let expected_crc = self
            .crc64
            .map(|c| crate::cos::integrity::crc64_combine(c, ours, len));
        let mut position = self.committed;
        // Other writers appending as fast as this one could keep it chasing the end.
        let mut chases = 0;
        let (etag, next, crc) = loop {
            match ctx
                .store
                .append_object(
                    &self.key,
                    Append {
                        position,
                        body: body.clone(),
                        opts,
                    },
                )
                .await
            {
                Ok(r) => {
                    if let (Some(theirs), Some(want)) = (r.crc64, expected_crc) {
                        if position == self.committed && theirs != want {
                            return Err(FsError::Cos(crate::object::CosError::Integrity {
                                what: format!("APPEND to {}", self.key),
                                expected: want.to_string(),
                                actual: theirs.to_string(),
                            }));
                        }
                    }
                    break (r.etag, r.next_position, r.crc64);
                }
                Err(e) if e.kind() == Some(ErrorKind::AppendPositionMismatch) => {
                    let m = ctx.store.head_object(&self.key).await?;
                    let landed = m.appendable
                        && m.size == position + len
                        && (expected_crc.is_none() || m.crc64 == expected_crc)
                        && position == self.committed;
                    if landed {
                        break (m.etag, m.size, m.crc64);
                    }
                    if m.appendable && m.size > position && chases < MAX_CHASES {
                        chases += 1;
                        tracing::info!(
                            key = %self.key,
                            from = position,
                            to = m.size,
                            "appendable object grew elsewhere; appending after it"
                        );
                        position = m.size;
                        self.crc64 = m.crc64;
                        continue;
                    }
                    tracing::warn!(
                        key = %self.key,
                        position,
                        length = m.size,
                        appendable = m.appendable,
                        "APPEND refused: the object changed under this file"
                    );
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        };
        let grew_elsewhere = position != self.committed;
        self.crc64 = match (crc, grew_elsewhere) {
            (Some(c), _) => Some(c),
            (None, false) => expected_crc,
            (None, true) => None,
        };
        self.committed = next;
        self.etag = etag;
        self.reader = Arc::new(ObjectReader::new_appendable(&self.key, &self.etag, next));
        self.pending.clear();
        self.charge = None;
        self.create = false;
        Ok(())
    }
}
