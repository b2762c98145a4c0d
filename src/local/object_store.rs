//! `LocalStore`: one bucket of a store directory as an `ObjectStore` in this process, for
//! `cosfs mount --local-store DIR` and for tests of the fs core without HTTP.
//!
//! - Same directory layout as `cosfs serve --root DIR` (`storage`), so either can open what the
//!   other wrote, and the same rules (`ops`), so both answer alike. A store directory is used by
//!   one process at a time: `Storage::open` locks it.
//! - Arguments the HTTP client refuses before sending (`cos::store::check_*`) are refused alike.
//! - Errors are the `CosError::Service` the HTTP client would have parsed from the server's
//!   `<Error>` answer (same status and code), so callers cannot tell the two apart.
//! - Work that touches the disk beyond the in-memory index (writing bodies, commits with their
//!   fsyncs, part records) runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::blob::{read_body, BlobWriter, StreamFaults};
use super::listing::{list, ListParams};
use super::ops::{self, Conditions, Directive};
use super::storage::{Bucket, NewObjectHeaders, ObjectRecord, Storage, StoredBlob, UploadRecord};
use super::StoreError;
use crate::object::{check_delete_keys, check_put_options, Append, Upload};
use crate::object::{
    AppendResult, CompleteResult, CopyOptions, CopyResult, CopySource, CosError, CosResult,
    DeleteFailure, GetObjectOutput, GetOptions, ListEntry, ListPage, ListPartsPage, ListRequest,
    ListUploadsPage, ListUploadsRequest, MetadataDirective, ObjectMeta, ObjectStore, PartInfo,
    PutOptions, PutResult, UploadInfo, UploadedPart,
};

pub struct LocalStore {
    bucket: Arc<Bucket>,
    /// Holds the directory's lock for as long as the store lives.
    _storage: Storage,
}

impl LocalStore {
    /// Bucket `bucket` of the store directory `root`, created if it does not exist yet.
    pub fn open(root: &Path, bucket: &str) -> std::io::Result<LocalStore> {
        if !crate::cos::config::valid_bucket_name(bucket) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bucket name {bucket:?} must look like name-APPID (e.g. examplebucket-1250000000)"),
            ));
        }
        let storage = Storage::open(root)?;
        let bucket = storage.create_bucket(bucket)?;
        Ok(LocalStore {
            bucket,
            _storage: storage,
        })
    }

    /// Run disk work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Bucket) -> Result<T, StoreError> + Send + 'static,
    ) -> CosResult<T> {
        let b = self.bucket.clone();
        tokio::task::spawn_blocking(move || f(&b))
            .await
            .map_err(|e| CosError::Transport(format!("local store task failed: {e}")))?
            .map_err(|e| service_error(e, ""))
    }

    /// Write `body` as a new blob (not yet any object's).
    async fn store_body(&self, body: &[u8]) -> CosResult<StoredBlob> {
        if body.len() as u64 > ops::MAX_SINGLE_PUT {
            return Err(service_error(
                StoreError::bad_request("EntityTooLarge", "body exceeds the 5 GB limit"),
                "",
            ));
        }
        let mut w = BlobWriter::create(&self.bucket).map_err(io_error)?;
        w.write(body).await.map_err(io_error)?;
        w.finish(&self.bucket).await.map_err(io_error)
    }
}

fn service_error(e: StoreError, resource: &str) -> CosError {
    CosError::service(e.status.as_u16(), e.code, e.message, resource, "local")
}

fn io_error(e: std::io::Error) -> CosError {
    service_error(StoreError::from(e), "")
}

fn meta_of(r: &ObjectRecord) -> ObjectMeta {
    ObjectMeta {
        size: r.size,
        etag: r.etag.clone(),
        last_modified: Some(r.last_modified()),
        content_type: Some(r.content_type.clone()),
        standard: r.standard.clone(),
        // COS sends x-cos-storage-class only for classes other than STANDARD.
        storage_class: Some(r.storage_class.clone()).filter(|c| c != "STANDARD"),
        crc64: Some(r.crc64),
        user_meta: r.user_meta.clone(),
        appendable: r.appendable,
        restore: ops::restore_header(r),
    }
}

/// The headers of a new object; what the HTTP client would refuse to send is refused alike.
fn checked_headers(o: &PutOptions, key: &str) -> CosResult<NewObjectHeaders> {
    check_put_options(o)?;
    headers_of(o).map_err(|e| service_error(e, key))
}

fn headers_of(o: &PutOptions) -> Result<NewObjectHeaders, StoreError> {
    ops::object_headers(
        o.content_type.clone(),
        o.standard.clone(),
        o.storage_class.as_deref(),
        o.user_meta.clone(),
    )
}

impl LocalStore {
    /// Part `n` of upload `up` is `blob` (received under `data/`).
    async fn put_part(
        &self,
        up: UploadRecord,
        n: u32,
        blob: StoredBlob,
    ) -> CosResult<UploadedPart> {
        let (crc64, size) = (blob.crc64, blob.size);
        let part = self
            .blocking(move |bk| ops::put_part(bk, &up, n, &blob))
            .await?;
        Ok(UploadedPart {
            part_number: n,
            etag: part.etag,
            crc64: Some(crc64),
            size: Some(size),
        })
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn head_bucket(&self) -> CosResult<()> {
        Ok(())
    }

    async fn list_objects(&self, req: &ListRequest) -> CosResult<ListPage> {
        let l = list(
            &self.bucket,
            &ListParams {
                prefix: req.prefix.clone(),
                delimiter: req.delimiter.clone(),
                marker: req.marker.clone(),
                max_keys: if req.max_keys == 0 {
                    1000
                } else {
                    req.max_keys.min(1000) as usize
                },
            },
        );
        Ok(ListPage {
            entries: l
                .contents
                .iter()
                .map(|r| ListEntry {
                    key: r.key.clone(),
                    size: r.size,
                    etag: r.etag.clone(),
                    last_modified: Some(r.last_modified()),
                    storage_class: Some(r.storage_class.clone()),
                })
                .collect(),
            common_prefixes: l.prefixes,
            is_truncated: l.truncated,
            next_marker: l.next_marker,
        })
    }

    async fn head_object(&self, key: &str) -> CosResult<ObjectMeta> {
        // A HEAD answer has no body, so over HTTP its error has a status but no code.
        let bodiless = |e: StoreError| service_error(StoreError::new(e.status, "", ""), key);
        let (rec, _) = ops::find_object(&self.bucket, key, false).map_err(bodiless)?;
        Ok(meta_of(&rec))
    }

    async fn get_object(&self, key: &str, opts: &GetOptions) -> CosResult<GetObjectOutput> {
        let fail = |e| service_error(e, key);
        let (rec, file) = ops::find_object(&self.bucket, key, true).map_err(fail)?;
        ops::check_readable(&rec).map_err(fail)?;
        let conditions = Conditions {
            if_match: opts.if_match.clone(),
            if_none_match: opts.if_none_match.clone(),
            ..Default::default()
        };
        if ops::check_conditions(&conditions, &rec).map_err(fail)? {
            // A 304 has no body, so the HTTP client sees no code either.
            let not_modified = StoreError::new(http::StatusCode::NOT_MODIFIED, "", "");
            return Err(fail(not_modified));
        }
        let header = opts.range.map(|r| r.header());
        let range = ops::resolve_range(header.as_deref(), rec.size).map_err(fail)?;
        let (start, end) = range.unwrap_or((0, rec.size));
        let file = file.expect("find_object opens the body when asked");
        let rx = read_body(file, start, end - start, StreamFaults::default());
        let body = tokio_stream_of(rx)
            .map(|r| r.map_err(|e| CosError::Transport(e.to_string())))
            .boxed();
        Ok(GetObjectOutput {
            meta: meta_of(&rec),
            content_length: end - start,
            body,
        })
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> CosResult<PutResult> {
        let headers = checked_headers(opts, key)?;
        ops::check_key(key).map_err(|e| service_error(e, key))?;
        let blob = self.store_body(&body).await?;
        let k = key.to_string();
        let rec = self
            .blocking(move |b| ops::put(b, &k, &blob, headers))
            .await?;
        Ok(PutResult {
            etag: rec.etag,
            crc64: Some(rec.crc64),
        })
    }

    async fn append_object(&self, key: &str, append: Append<'_>) -> CosResult<AppendResult> {
        let Append {
            position,
            body,
            opts,
        } = append;
        let headers = checked_headers(opts, key)?;
        let blob = self.store_body(&body).await?;
        let k = key.to_string();
        let rec = self
            .blocking(move |b| ops::append(b, &k, position, &blob, headers))
            .await?;
        Ok(AppendResult {
            etag: rec.etag,
            next_position: rec.size,
            crc64: Some(rec.crc64),
        })
    }

    async fn restore_object(&self, key: &str, days: u32, tier: &str) -> CosResult<()> {
        // In process, a restore is done at once (`cosfs serve` has `--restore-delay-ms`).
        let (k, tier) = (key.to_string(), tier.to_string());
        self.blocking(move |b| ops::restore(b, &k, days, &tier, 0).map(|_| ()))
            .await
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        opts: &CopyOptions,
    ) -> CosResult<CopyResult> {
        let conditions = Conditions {
            if_match: opts.if_match.clone(),
            if_none_match: opts.if_none_match.clone(),
            ..Default::default()
        };
        let src = ops::copy_source(&self.bucket, source_key, &conditions)
            .map_err(|e| service_error(e, source_key))?;
        let (directive, class) = match &opts.directive {
            MetadataDirective::Copy => (Directive::Copy, opts.storage_class.clone()),
            MetadataDirective::Replaced(o) => (
                Directive::Replaced(Box::new(checked_headers(o, dest_key)?)),
                o.storage_class.clone(),
            ),
        };
        let rec = ops::copy(
            &self.bucket,
            dest_key,
            &self.bucket,
            &src,
            directive,
            class.as_deref(),
        )
        .await
        .map_err(|e| service_error(e, dest_key))?;
        Ok(CopyResult {
            etag: rec.etag.clone(),
            last_modified: Some(rec.last_modified()),
            crc64: Some(rec.crc64),
        })
    }

    async fn delete_object(&self, key: &str) -> CosResult<()> {
        let k = key.to_string();
        self.blocking(move |b| Ok(b.delete(&k)?)).await
    }

    async fn delete_objects(&self, keys: &[String]) -> CosResult<Vec<DeleteFailure>> {
        if !check_delete_keys(keys)? {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        let outcomes = self
            .blocking(move |b| Ok(ops::delete_many(b, &keys)))
            .await?;
        Ok(outcomes
            .into_iter()
            .filter_map(|(key, failed)| {
                failed.map(|message| DeleteFailure {
                    key,
                    code: "InternalError".into(),
                    message,
                })
            })
            .collect())
    }

    async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> CosResult<String> {
        let headers = checked_headers(opts, key)?;
        let k = key.to_string();
        let up = self
            .blocking(move |b| ops::initiate(b, &k, headers))
            .await?;
        Ok(up.upload_id)
    }

    async fn upload_part(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        body: Bytes,
    ) -> CosResult<UploadedPart> {
        let (key, upload_id) = (up.key, up.upload_id);
        let fail = |e| service_error(e, key);
        let n = ops::part_number(Some(part_number)).map_err(fail)?;
        let up = ops::upload_of(&self.bucket, key, upload_id).map_err(fail)?;
        let blob = self.store_body(&body).await?;
        self.put_part(up, n, blob).await
    }

    async fn upload_part_copy(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        source: &CopySource<'_>,
    ) -> CosResult<UploadedPart> {
        let (key, upload_id) = (up.key, up.upload_id);
        let (source_key, range) = (source.key, source.range);
        let fail = |e| service_error(e, key);
        let n = ops::part_number(Some(part_number)).map_err(fail)?;
        let up = ops::upload_of(&self.bucket, key, upload_id).map_err(fail)?;
        let conditions = Conditions {
            if_match: source.if_match.map(str::to_string),
            ..Default::default()
        };
        let src = ops::copy_source(&self.bucket, source_key, &conditions)
            .map_err(|e| service_error(e, source_key))?;
        // The same rule as the header `x-cos-copy-source-range: bytes=first-last`.
        let range = match range {
            Some(r) => {
                let last = r.end.unwrap_or(src.size).saturating_sub(1);
                let spec = format!("bytes={}-{last}", r.start);
                Some(ops::parse_copy_range(&spec, src.size).map_err(fail)?)
            }
            None => None,
        };
        let blob = ops::part_copy_body(&self.bucket, &self.bucket, &src, range)
            .await
            .map_err(fail)?;
        self.put_part(up, n, blob).await
    }

    async fn complete_multipart(
        &self,
        up: &Upload<'_>,
        parts: &[UploadedPart],
    ) -> CosResult<CompleteResult> {
        let (key, upload_id) = (up.key, up.upload_id);
        let fail = |e| service_error(e, key);
        let up = ops::upload_of(&self.bucket, key, upload_id).map_err(fail)?;
        let wanted: Vec<(u32, String)> = parts
            .iter()
            .map(|p| (p.part_number, p.etag.clone()))
            .collect();
        let rec = self
            .blocking(move |b| {
                let plan = ops::plan_complete(b, &up, &wanted)?;
                Ok(ops::finish_complete(b, &plan)?)
            })
            .await?;
        Ok(CompleteResult {
            etag: rec.etag,
            crc64: Some(rec.crc64),
        })
    }

    async fn abort_multipart(&self, up: &Upload<'_>) -> CosResult<()> {
        let (key, upload_id) = (up.key, up.upload_id);
        let up = ops::upload_of(&self.bucket, key, upload_id).map_err(|e| service_error(e, key))?;
        self.blocking(move |b| ops::abort(b, &up)).await
    }

    async fn list_parts(
        &self,
        up: &Upload<'_>,
        part_number_marker: Option<u32>,
    ) -> CosResult<ListPartsPage> {
        let (key, upload_id) = (up.key, up.upload_id);
        let up = ops::upload_of(&self.bucket, key, upload_id).map_err(|e| service_error(e, key))?;
        let (parts, truncated) = self
            .blocking(move |b| ops::list_parts(b, &up, part_number_marker.unwrap_or(0), 1000))
            .await?;
        Ok(ListPartsPage {
            next_part_number_marker: parts.last().filter(|_| truncated).map(|p| p.part_number),
            is_truncated: truncated,
            parts: parts
                .into_iter()
                .map(|p| PartInfo {
                    part_number: p.part_number,
                    etag: p.etag,
                    size: p.size,
                    last_modified: Some(UNIX_EPOCH + Duration::from_millis(p.last_modified_ms)),
                })
                .collect(),
        })
    }

    async fn list_multipart_uploads(&self, lr: &ListUploadsRequest) -> CosResult<ListUploadsPage> {
        let (uploads, truncated) = ops::list_uploads(
            &self.bucket,
            &lr.prefix,
            lr.key_marker.as_deref().unwrap_or(""),
            lr.upload_id_marker.as_deref().unwrap_or(""),
            1000,
        );
        let last = uploads.last().filter(|_| truncated);
        Ok(ListUploadsPage {
            next_key_marker: last.map(|u| u.key.clone()),
            next_upload_id_marker: last.map(|u| u.upload_id.clone()),
            is_truncated: truncated,
            uploads: uploads
                .into_iter()
                .map(|u| UploadInfo {
                    key: u.key,
                    upload_id: u.upload_id,
                    initiated: Some(UNIX_EPOCH + Duration::from_millis(u.initiated_ms)),
                })
                .collect(),
        })
    }
}

/// The chunks a `read_body` task sends, as a stream.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
}
