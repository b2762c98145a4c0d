//! Aborting multipart uploads that will never be completed. Unfinished uploads are billed
//! until aborted, so an abort that fails (the server is failing too, or slow) is not given up:
//! it is retried in the background for about two minutes, then logged as left behind (for
//! `cosfs check --abort-stale-uploads` or a lifecycle rule; the upload journal keeps it for the
//! next mount too). The caller never waits for more than the first attempt.

use std::sync::Arc;
use std::time::Duration;

use crate::fs::upload_journal::UploadJournal;
use crate::object::{ObjectStore, Upload};

/// Background retries after a failed abort, 2 s doubling to 64 s apart.
const RETRIES: u32 = 6;

/// Abort upload `id` of `key`; a failure is retried in the background. The journal learns
/// when it is gone (an upload left behind stays in it, for the next mount to abort).
pub async fn abort_upload<S: ObjectStore + ?Sized>(
    store: &Arc<S>,
    journal: &Arc<UploadJournal>,
    key: &str,
    id: &str,
) {
    let e = match store.abort_multipart(&Upload::new(key, id)).await {
        Ok(()) => return journal.ended(id),
        Err(e) if e.is_not_found() => return journal.ended(id), // already gone
        Err(e) => e,
    };
    tracing::debug!(key, error = %e, "abort failed; retrying in the background");
    let (store, journal, key, id) = (
        store.clone(),
        journal.clone(),
        key.to_string(),
        id.to_string(),
    );
    tokio::spawn(async move {
        for attempt in 1..=RETRIES {
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            match store.abort_multipart(&Upload::new(&key, &id)).await {
                Ok(()) => return journal.ended(&id),
                Err(e) if e.is_not_found() => return journal.ended(&id),
                Err(e) if attempt == RETRIES => tracing::warn!(
                    %key, error = %e,
                    "could not abort an unfinished upload; it is left behind (cosfs check --abort-stale-uploads removes it)"
                ),
                Err(_) => {}
            }
        }
    });
}
