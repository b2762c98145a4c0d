//! Whole-object multipart upload from memory, over any `ObjectStore`: parts go up with bounded
//! concurrency, and any failure aborts the upload so no billed, unfinished upload is left behind.
//! (The filesystem's streaming writer builds on the same rule; this is the simple form used by
//! tools and benchmarks.)
//!
//! `abort_left_uploads` finds the unfinished uploads of a key that are ours although we hold
//! no handle on them: one we know and gave up, and those an Initiate whose answer was lost
//! created (identified by when they began and by holding no part).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

use crate::object::{
    CompleteResult, CosResult, ListUploadsRequest, ObjectStore, PutOptions, Upload, UploadedPart,
};

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
            async move {
                store
                    .upload_part(&Upload::new(key, upload_id), i as u32 + 1, chunk)
                    .await
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
        parts.sort_by_key(|p| p.part_number);
        store
            .complete_multipart(&Upload::new(key, &upload_id), &parts)
            .await
    }
    .await;
    if let Err(e) = &result {
        tracing::warn!(key, error = %e, "multipart upload failed; aborting it");
        if let Err(abort_err) = store.abort_multipart(&Upload::new(key, &upload_id)).await {
            tracing::warn!(key, upload_id, error = %abort_err, "abort of failed upload failed too");
        }
    }
    result
}

/// How long around an Initiate's window an upload counts as possibly its own: COS's
/// `Initiated` has one-second resolution and our clock is only as good as the skew we learned.
const WINDOW_SLACK: Duration = Duration::from_secs(2);

/// What `abort_left_uploads` may take as ours among the unfinished uploads of a key.
#[derive(Debug, Clone, Default)]
pub struct LeftUploads<'a> {
    /// An upload id we know is ours and will never complete: aborted whatever it holds.
    pub known: Option<&'a str>,
    /// When (local clock) Initiates of ours were in flight whose answers we may not have
    /// heard: uploads initiated then that hold no part are ours too (nobody else knows them).
    pub window: Option<(SystemTime, SystemTime)>,
    /// An upload of ours still in use: never touched.
    pub keep: Option<&'a str>,
}

/// Abort the unfinished uploads of `key` that `left` says are ours (see `LeftUploads`);
/// returns how many were aborted. Another writer's upload of the same key is left alone
/// unless it began within the window and still holds no part, which a writer that has been
/// sending its parts all along does not.
pub async fn abort_left_uploads<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    left: &LeftUploads<'_>,
) -> CosResult<usize> {
    let offset = store.clock_offset_secs();
    let server_time = |t: SystemTime| {
        if offset >= 0 {
            t + Duration::from_secs(offset as u64)
        } else {
            t - Duration::from_secs(offset.unsigned_abs())
        }
    };
    let window = left.window.map(|(from, to)| {
        (
            server_time(from) - WINDOW_SLACK,
            server_time(to) + WINDOW_SLACK,
        )
    });
    let mut aborted = 0;
    let mut req = ListUploadsRequest::under(key);
    loop {
        let page = store.list_multipart_uploads(&req).await?;
        for u in page.uploads.iter().filter(|u| u.key == key) {
            if Some(u.upload_id.as_str()) == left.keep {
                continue;
            }
            let ours = if Some(u.upload_id.as_str()) == left.known {
                true
            } else {
                let within = match (window, u.initiated) {
                    (Some((from, to)), Some(at)) => at >= from && at <= to,
                    _ => false,
                };
                within
                    && store
                        .list_parts(&Upload::new(key, &u.upload_id), None)
                        .await?
                        .parts
                        .is_empty()
            };
            if ours {
                store
                    .abort_multipart(&Upload::new(key, &u.upload_id))
                    .await?;
                tracing::info!(key, upload_id = %u.upload_id, "aborted an unfinished upload of ours");
                aborted += 1;
            }
        }
        if !page.is_truncated {
            return Ok(aborted);
        }
        req.key_marker = page.next_key_marker;
        req.upload_id_marker = page.next_upload_id_marker;
        if req.key_marker.as_deref().is_some_and(|k| k > key) {
            return Ok(aborted);
        }
    }
}
