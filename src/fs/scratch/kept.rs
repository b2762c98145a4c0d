//! Versions kept on local disk for handles still open on a file that a rename replaced.
//!
//! `rename(a, b)` over a file `b` that is open on this mount overwrites `b`'s object with a
//! copy of `a`, so the version the open handles of `b` read would be gone from COS. As on a
//! local filesystem they keep reading it: before the copy, that version is fetched whole into
//! an anonymous staging file (`KeptCopy`) and the handles' readers are pointed at it
//! (`reader::Source::Kept`). The copy is dropped with the last reader that uses it.
//!
//! - It is accounted against `--cache-dir-size` as a copy kept only while there is room (at
//!   most half of the cap, like the sent parts of an overwrite). When it does not fit, or the
//!   fetch fails, the rename still happens: the handles then keep the blocks they already
//!   read and get EIO for the rest ("changed while open"), and a warning says so.
//! - The fetch is pinned with `If-Match`: a version another client already replaced cannot be
//!   kept (its handles were failing already).

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use std::sync::Arc;

use crate::object::{GetOptions, ObjectStore};

use super::area::{ScratchArea, ScratchFile};
use crate::fs::error::{FsError, FsResult};

/// One object version, whole, in a staging file.
pub struct KeptCopy {
    file: ScratchFile,
    size: u64,
}

impl std::fmt::Debug for KeptCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptCopy")
            .field("size", &self.size)
            .finish()
    }
}

impl KeptCopy {
    /// Fetch `key` as `etag` (`size` bytes) into the staging area.
    pub async fn fetch<S: ObjectStore + ?Sized>(
        store: &S,
        dir: &Arc<ScratchArea>,
        key: &str,
        etag: &str,
        size: u64,
    ) -> FsResult<Self> {
        let mut file = ScratchFile::create(dir)?;
        file.charge_spare(size)?;
        let opts = GetOptions {
            if_match: Some(etag.to_string()),
            ..Default::default()
        };
        let mut out = store.get_object(key, &opts).await?;
        let mut at = 0u64;
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk?;
            file.write_at(at, &chunk)?;
            at += chunk.len() as u64;
        }
        if at != size {
            tracing::warn!(
                key,
                got = at,
                want = size,
                "object body of the wrong length"
            );
            return Err(FsError::WrongLength);
        }
        Ok(KeptCopy { file, size })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes of `offset..end` (clipped to the copy).
    pub fn read(&self, offset: u64, end: u64) -> FsResult<Bytes> {
        let end = end.min(self.size);
        let mut buf = BytesMut::zeroed(end.saturating_sub(offset) as usize);
        self.file.read_at(offset, &mut buf)?;
        Ok(buf.freeze())
    }
}
