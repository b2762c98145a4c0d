//! Deletes that do not wait: `unlink` and `rmdir` queue their DELETE, and one task sends the
//! queue as DELETE Multiple, so `rm -r` of a tree costs a request per batch, not per entry.
//!
//! - Sending: the queue goes out as soon as nothing is in flight. The first delete goes alone;
//!   the ones that arrive while it is on the wire go together in the next request (up to 1,000
//!   keys). So a single `rm` reaches COS one round trip later, and a program deleting thousands
//!   of files sends about one request per round trip.
//! - The view stays exact. `DeferredDeletes` wraps the mount's store:
//!   - HEAD of a key queued or in flight is answered 404 without a request;
//!   - a LIST waits until nothing under its prefix is queued or in flight;
//!   - a write of a key (PUT, copy onto it, multipart initiate and complete) waits until the
//!     key's delete is done, so a delete never removes a newer object.
//! - Errors: the key a batch failed to delete (after the client's retries) is logged and kept
//!   as failed. Like a local filesystem, where an unlink is durable once its directory is
//!   fsynced, the commit points are `rmdir` of the directory, `fsync` of the directory and the
//!   unmount: they wait for the deletes under them and return EIO for any that failed. The
//!   key is still on COS then, and the name shows again once the metadata TTL has passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;

use super::error::{CosError, CosResult};
use super::store::{ObjectStore, StoreLayer};
use super::types::{
    Append, AppendResult, CompleteResult, CopyOptions, CopyResult, DeleteFailure, ListPage,
    ListRequest, ObjectMeta, PutOptions, PutResult, Upload, UploadedPart, MAX_DELETE_KEYS,
};

#[derive(Default)]
struct Queue {
    queued: BTreeSet<String>,
    in_flight: BTreeSet<String>,
    /// A task is sending (it runs until the queue is empty).
    sending: bool,
    /// Keys whose delete failed, with why; taken by the commit point that reports them.
    failed: BTreeMap<String, String>,
}

impl Queue {
    fn has(&self, key: &str) -> bool {
        self.queued.contains(key) || self.in_flight.contains(key)
    }

    fn has_under(&self, prefix: &str) -> bool {
        let under = |s: &BTreeSet<String>| {
            s.range(prefix.to_string()..)
                .next()
                .is_some_and(|k| k.starts_with(prefix))
        };
        under(&self.queued) || under(&self.in_flight)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Woken whenever a batch ends.
    batch_done: Notify,
}

/// The mount's store with deferred, batched deletes (see the module comment).
pub struct DeferredDeletes<S: ObjectStore + ?Sized> {
    inner: Arc<S>,
    shared: Arc<Shared>,
}

/// A commit point found deletes that failed: the keys, and the first error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDeletes {
    pub keys: Vec<String>,
    pub first_error: String,
}

impl<S: ObjectStore + ?Sized> DeferredDeletes<S> {
    pub fn new(inner: Arc<S>) -> Self {
        DeferredDeletes {
            inner,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                batch_done: Notify::new(),
            }),
        }
    }

    /// Queue the DELETE of `key`; it is sent within a round trip.
    pub fn delete_later(&self, key: &str) {
        let start = {
            let mut q = self.shared.queue.lock().unwrap();
            q.failed.remove(key);
            q.queued.insert(key.to_string());
            !std::mem::replace(&mut q.sending, true)
        };
        if start {
            let (inner, shared) = (self.inner.clone(), self.shared.clone());
            tokio::spawn(send_queue(inner, shared));
        }
    }

    /// Keys queued or in flight now.
    pub fn pending(&self) -> usize {
        let q = self.shared.queue.lock().unwrap();
        q.queued.len() + q.in_flight.len()
    }

    /// Wait until `done` holds of the queue (looked at again each time a batch ends).
    async fn wait_until(&self, done: impl Fn(&Queue) -> bool) {
        loop {
            let ended = self.shared.batch_done.notified();
            if done(&self.shared.queue.lock().unwrap()) {
                return;
            }
            ended.await;
        }
    }

    async fn wait_for_key(&self, key: &str) {
        self.wait_until(|q| !q.has(key)).await
    }

    /// A commit point for the deletes under `prefix` ("" for all): wait for them, and take
    /// the ones that failed.
    pub async fn settle(&self, prefix: &str) -> Result<(), FailedDeletes> {
        self.wait_until(|q| !q.has_under(prefix)).await;
        let mut q = self.shared.queue.lock().unwrap();
        let keys: Vec<String> = q
            .failed
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let first_error = q.failed[first].clone();
        for k in &keys {
            q.failed.remove(k);
        }
        Err(FailedDeletes { keys, first_error })
    }
}

/// The sending task: batches of the queue, one at a time, until it is empty.
async fn send_queue<S: ObjectStore + ?Sized>(inner: Arc<S>, shared: Arc<Shared>) {
    loop {
        let batch: Vec<String> = {
            let mut q = shared.queue.lock().unwrap();
            let batch: Vec<String> = std::iter::from_fn(|| q.queued.pop_first())
                .take(MAX_DELETE_KEYS)
                .collect();
            if batch.is_empty() {
                q.sending = false;
                break;
            }
            q.in_flight.extend(batch.iter().cloned());
            batch
        };
        let failures: Vec<DeleteFailure> = if let [key] = batch.as_slice() {
            match inner.delete_object(key).await {
                Ok(()) => Vec::new(),
                Err(e) => vec![failure(key, &e)],
            }
        } else {
            match inner.delete_objects(&batch).await {
                Ok(f) => f,
                Err(e) => batch.iter().map(|k| failure(k, &e)).collect(),
            }
        };
        {
            let mut q = shared.queue.lock().unwrap();
            for k in &batch {
                q.in_flight.remove(k);
            }
            for f in failures {
                let why = match f.code.as_str() {
                    "" => f.message,
                    code => format!("{code}: {}", f.message),
                };
                tracing::error!(key = %f.key, error = %why, "deleting an unlinked object failed; it is still on COS");
                q.failed.insert(f.key, why);
            }
        }
        shared.batch_done.notify_waiters();
    }
    shared.batch_done.notify_waiters();
}

fn failure(key: &str, e: &CosError) -> DeleteFailure {
    DeleteFailure {
        key: key.to_string(),
        code: String::new(),
        message: e.to_string(),
    }
}

/// The 404 a HEAD of a key being deleted gets, without asking COS.
fn deleted(key: &str) -> CosError {
    CosError::service(404, "NoSuchKey", "deleted on this mount", key, "")
}

/// Only the operations whose meaning the queue changes; the rest pass through.
#[async_trait]
impl<S: ObjectStore + ?Sized> StoreLayer for DeferredDeletes<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn list_objects(&self, req: &ListRequest) -> CosResult<ListPage> {
        self.wait_until(|q| !q.has_under(&req.prefix)).await;
        self.inner.list_objects(req).await
    }

    async fn head_object(&self, key: &str) -> CosResult<ObjectMeta> {
        if self.shared.queue.lock().unwrap().has(key) {
            return Err(deleted(key));
        }
        self.inner.head_object(key).await
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> CosResult<PutResult> {
        self.wait_for_key(key).await;
        self.inner.put_object(key, body, opts).await
    }

    async fn append_object(&self, key: &str, append: Append<'_>) -> CosResult<AppendResult> {
        self.wait_for_key(key).await;
        self.inner.append_object(key, append).await
    }

    async fn copy_object(
        &self,
        source: &str,
        dest: &str,
        opts: &CopyOptions,
    ) -> CosResult<CopyResult> {
        self.wait_for_key(dest).await;
        self.inner.copy_object(source, dest, opts).await
    }

    async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> CosResult<String> {
        self.wait_for_key(key).await;
        self.inner.initiate_multipart(key, opts).await
    }

    async fn complete_multipart(
        &self,
        up: &Upload<'_>,
        parts: &[UploadedPart],
    ) -> CosResult<CompleteResult> {
        self.wait_for_key(up.key).await;
        self.inner.complete_multipart(up, parts).await
    }
}
