//! `WriteCtx`: what every writer of the mount shares (the store, the caches, the staging area,
//! the upload limits and journal). It sits below the writer and its bodies (`append`,
//! `staged`, `stream`), so that they take it without importing the writer.

use std::ops::Range;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::fs::cache::BlockCache;
use crate::fs::content_type::ContentTypeRule;
use crate::fs::error::FsResult;
use crate::fs::memory::MemoryBudget;
use crate::fs::reader::ObjectReader;
use crate::fs::upload_journal::UploadJournal;
use crate::object::ObjectStore;

use crate::fs::scratch::ScratchArea;

/// What writers share: the store, caches and upload limits of the mount.
pub struct WriteCtx<S: ObjectStore + ?Sized> {
    pub store: Arc<S>,
    pub cache: Arc<BlockCache>,
    pub scratch: Arc<ScratchArea>,
    /// Upload bytes in flight mount-wide, in MiB units.
    pub permits: Arc<Semaphore>,
    /// The size of `permits`.
    pub budget_mib: u32,
    pub part_size: u64,
    /// Storage class of new files (`--storage-class`).
    pub storage_class: Option<String>,
    /// Content-Type of new files (`--content-type`).
    pub content_type: ContentTypeRule,
    /// The mount's memory budget: write buffers and parts being uploaded are charged to it.
    pub memory: Arc<MemoryBudget>,
    /// The multipart uploads under way, for the next mount if this one is killed.
    pub journal: Arc<UploadJournal>,
}

impl<S: ObjectStore + ?Sized> WriteCtx<S> {
    /// Fill `buf`, which holds the file from byte `offset` on, with the `ranges` of the object
    /// `reader` reads (through the block cache).
    pub async fn read_object_ranges(
        &self,
        reader: &Arc<ObjectReader>,
        offset: u64,
        ranges: impl IntoIterator<Item = Range<u64>>,
        buf: &mut [u8],
    ) -> FsResult<()> {
        for r in ranges {
            let into = &mut buf[(r.start - offset) as usize..(r.end - offset) as usize];
            reader.read_exact(&self.store, &self.cache, r, into).await?;
        }
        Ok(())
    }
}
