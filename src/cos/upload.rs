//! Whole-object multipart upload from memory, over any `ObjectStore`: parts go up with bounded
//! concurrency, and any failure aborts the upload so no billed, unfinished upload is left behind.
//! (The filesystem's streaming writer builds on the same rule; this is the simple form used by
//! tools and benchmarks.)

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use super::error::CosResult;
use super::store::{CompleteResult, ObjectStore, PutOptions, UploadedPart};

/// Upload `body` as `key` in parts of `part_size` with `concurrency` parts in flight.
/// On error the upload is aborted (best effort) and the first error is returned; an existing
/// object under `key` is untouched.
pub async fn put_multipart<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    body: Bytes,
    opts: &PutOptions,
    part_size: usize,
    concurrency: usize,
) -> CosResult<CompleteResult> {
    let part_size = part_size.max(1);
    let upload_id = store.initiate_multipart(key, opts).await?;
    let n_parts = body.len().div_ceil(part_size).max(1);
    let result = async {
        let mut parts: Vec<UploadedPart> = stream::iter((0..n_parts).map(|i| {
            let chunk = body.slice(i * part_size..((i + 1) * part_size).min(body.len()));
            let upload_id = &upload_id;
            async move { store.upload_part(key, upload_id, i as u32 + 1, chunk).await }
        }))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
        parts.sort_by_key(|p| p.part_number);
        store.complete_multipart(key, &upload_id, &parts).await
    }
    .await;
    if let Err(e) = &result {
        tracing::warn!(key, error = %e, "multipart upload failed; aborting it");
        if let Err(abort_err) = store.abort_multipart(key, &upload_id).await {
            tracing::warn!(key, upload_id, error = %abort_err, "abort of failed upload failed too");
        }
    }
    result
}
