//! The `ObjectStore` operations of `CosClient`: how each COS API call is built and its answer
//! checked. Uploads are checked against the CRC-64 COS reports, and PUTs also carry Content-MD5,
//! so that COS refuses a damaged body before it replaces an object. Parts carry Content-MD5
//! only until the server has shown that it reports their CRC-64: a part is checked by it before
//! Complete makes anything of it, and MD5 was half of the mount's CPU in a sequential write. A
//! part answered without a CRC-64 is sent again with Content-MD5 (and so are the next ones).
//! Whole-object GETs are checked against the CRC-64 too, and every GET body for truncation.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;

use super::client::{CosClient, Request};
use super::integrity::{content_md5, crc64, crc64_combine, Crc64Digest};
use super::parse::{self, META_PREFIX};
use crate::object::*;
use crate::object::{CosError, CosResult, ErrorKind};
use crate::xml::escape;

fn check_crc(what: &str, ours: u64, theirs: Option<u64>) -> CosResult<()> {
    match theirs {
        Some(t) if t != ours => Err(CosError::Integrity {
            what: what.to_string(),
            expected: ours.to_string(),
            actual: t.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Headers that describe a new object (PUT, Initiate, Copy with `Replaced`).
fn with_object_headers(mut req: Request, opts: &PutOptions) -> CosResult<Request> {
    check_put_options(opts)?;
    req = req.header(
        "content-type",
        opts.content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
    );
    for (name, value) in opts.standard.iter() {
        req = req.header(&name.to_ascii_lowercase(), value.to_string());
    }
    if let Some(class) = &opts.storage_class {
        req = req.header("x-cos-storage-class", class.to_ascii_uppercase());
    }
    for (k, v) in &opts.user_meta {
        req = req.header(
            &format!("{META_PREFIX}{}", k.to_ascii_lowercase()),
            v.clone(),
        );
    }
    Ok(req)
}

fn xml_body(req: Request, xml: String) -> Request {
    let body = Bytes::from(xml);
    req.header("content-type", "application/xml")
        .header("content-md5", content_md5(&body))
        .body(body)
}

#[async_trait]
impl ObjectStore for CosClient {
    async fn head_bucket(&self) -> CosResult<()> {
        self.call(Request::new(Method::HEAD, None), |_| async { Ok(()) })
            .await
    }

    async fn list_objects(&self, lr: &ListRequest) -> CosResult<ListPage> {
        let mut req = Request::new(Method::GET, None).param("encoding-type", "url");
        if !lr.prefix.is_empty() {
            req = req.param("prefix", lr.prefix.clone());
        }
        if let Some(d) = lr.delimiter.as_ref().filter(|d| !d.is_empty()) {
            req = req.param("delimiter", d.clone());
        }
        if let Some(m) = lr.marker.as_ref().filter(|m| !m.is_empty()) {
            req = req.param("marker", m.clone());
        }
        let max = if lr.max_keys == 0 {
            1000
        } else {
            lr.max_keys.min(1000)
        };
        req = req.param("max-keys", max.to_string());
        let (_, body) = self.call_read(req).await?;
        parse::list_page(&body, true)
    }

    async fn head_object(&self, key: &str) -> CosResult<ObjectMeta> {
        self.call(Request::new(Method::HEAD, Some(key)), |resp| async move {
            Ok(parse::object_meta(resp.headers()))
        })
        .await
    }

    async fn get_object(&self, key: &str, opts: &GetOptions) -> CosResult<GetObjectOutput> {
        let mut req = Request::new(Method::GET, Some(key));
        if let Some(r) = &opts.range {
            req = req.header("range", r.header());
        }
        if let Some(e) = &opts.if_match {
            req = req.header("if-match", format!("\"{e}\""));
        }
        if let Some(e) = &opts.if_none_match {
            req = req.header("if-none-match", format!("\"{e}\""));
        }
        let ranged = opts.range.is_some();
        if let Some(ByteRange {
            start,
            end: Some(end),
        }) = opts.range
        {
            req.expect_bytes = end.saturating_sub(start);
        }
        let mut resp = self.call(req, |resp| async move { Ok(resp) }).await?;
        let meta = parse::object_meta(resp.headers());
        let content_length = resp
            .content_length()
            .unwrap_or(if ranged { 0 } else { meta.size });
        if !ranged {
            // Only now is the size known: the body gets its transfer allowance.
            resp.extend_deadline(
                self.cfg.time.op + self.cfg.time.transfer_allowance(content_length),
            );
        }
        // A ranged GET carries the whole object's CRC, so only whole reads can be checked.
        let expected_crc = if ranged { None } else { meta.crc64 };
        let key = key.to_string();
        let state = (resp.into_stream(), 0u64, Crc64Digest::new(), false);
        let body = futures_util::stream::unfold(state, move |(mut s, got, mut digest, done)| {
            let key = key.clone();
            async move {
                if done {
                    return None;
                }
                match s.next().await {
                    Some(Ok(chunk)) => {
                        if expected_crc.is_some() {
                            digest.update(&chunk);
                        }
                        let got = got + chunk.len() as u64;
                        Some((Ok(chunk), (s, got, digest, false)))
                    }
                    Some(Err(e)) => Some((Err(e), (s, got, digest, true))),
                    None if got != content_length => Some((
                        Err(CosError::Transport(format!(
                            "body of {key} ended after {got} of {content_length} bytes"
                        ))),
                        (s, got, digest, true),
                    )),
                    None => {
                        let ours = digest.finalize();
                        match check_crc(&key, ours, expected_crc) {
                            Ok(()) => None,
                            Err(e) => Some((Err(e), (s, got, Crc64Digest::new(), true))),
                        }
                    }
                }
            }
        });
        Ok(GetObjectOutput {
            meta,
            content_length,
            body: body.boxed(),
        })
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> CosResult<PutResult> {
        let ours = crc64(&body);
        let req = with_object_headers(Request::new(Method::PUT, Some(key)), opts)?
            .header("content-md5", content_md5(&body))
            .body(body);
        self.call(req, |resp| async move {
            let h = resp.headers();
            let theirs = parse::crc64_header(h);
            check_crc("PUT body", ours, theirs)?;
            Ok(PutResult {
                etag: parse::object_meta(h).etag,
                crc64: Some(ours),
            })
        })
        .await
    }

    async fn append_object(&self, key: &str, append: Append<'_>) -> CosResult<AppendResult> {
        let Append {
            position,
            body,
            opts,
        } = append;
        let mut req = Request::new(Method::POST, Some(key))
            .param("append", "")
            .param("position", position.to_string());
        if position == 0 {
            req = with_object_headers(req, opts)?;
        }
        let len = body.len() as u64;
        let req = req.header("content-md5", content_md5(&body)).body(body);
        self.call(req, |resp| async move {
            let h = resp.headers();
            let next_position = parse::header(h, "x-cos-next-append-position")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(position + len);
            Ok(AppendResult {
                etag: parse::object_meta(h).etag,
                next_position,
                crc64: parse::crc64_header(h),
            })
        })
        .await
    }

    async fn restore_object(&self, key: &str, days: u32, tier: &str) -> CosResult<()> {
        let xml = format!(
            "<RestoreRequest><Days>{days}</Days><CASJobParameters><Tier>{}</Tier></CASJobParameters></RestoreRequest>",
            escape(tier)
        );
        let req = xml_body(
            Request::new(Method::POST, Some(key)).param("restore", ""),
            xml,
        );
        self.call(req, |_| async { Ok(()) }).await
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        opts: &CopyOptions,
    ) -> CosResult<CopyResult> {
        let mut req = Request::new(Method::PUT, Some(dest_key))
            .header("x-cos-copy-source", self.copy_source(source_key));
        req = match &opts.directive {
            MetadataDirective::Copy => {
                let req = req.header("x-cos-metadata-directive", "Copy");
                match &opts.storage_class {
                    Some(class) => req.header("x-cos-storage-class", class.to_ascii_uppercase()),
                    None => req,
                }
            }
            MetadataDirective::Replaced(put) => {
                with_object_headers(req.header("x-cos-metadata-directive", "Replaced"), put)?
            }
        };
        if let Some(e) = &opts.if_match {
            req = req.header("x-cos-copy-source-if-match", format!("\"{e}\""));
        }
        if let Some(e) = &opts.if_none_match {
            req = req.header("x-cos-copy-source-if-none-match", format!("\"{e}\""));
        }
        let (etag, last_modified, crc64) = self.send_copy(req, opts.source_size).await?;
        Ok(CopyResult {
            etag,
            last_modified,
            crc64,
        })
    }

    async fn delete_object(&self, key: &str) -> CosResult<()> {
        self.call(Request::new(Method::DELETE, Some(key)), |_| async {
            Ok(())
        })
        .await
    }

    async fn delete_objects(&self, keys: &[String]) -> CosResult<Vec<DeleteFailure>> {
        if !check_delete_keys(keys)? {
            return Ok(Vec::new());
        }
        let mut xml = String::from("<Delete><Quiet>true</Quiet>");
        for k in keys {
            xml.push_str(&format!("<Object><Key>{}</Key></Object>", escape(k)));
        }
        xml.push_str("</Delete>");
        let req = xml_body(Request::new(Method::POST, None).param("delete", ""), xml);
        let (_, body) = self.call_read(req).await?;
        parse::delete_failures(&body)
    }

    async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> CosResult<String> {
        let req = with_object_headers(
            Request::new(Method::POST, Some(key)).param("uploads", ""),
            opts,
        )?;
        let mut unheard = None;
        let r = self.call_read_noting(req, &mut unheard).await;
        let id = r.and_then(|(_, body)| parse::initiate_upload_id(&body));
        if let Some(from) = unheard {
            self.note_unheard_initiate(key, id.as_ref().ok().map(String::as_str), from)
                .await;
        }
        id
    }

    async fn upload_part(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        body: Bytes,
    ) -> CosResult<UploadedPart> {
        let (key, upload_id) = (up.key, up.upload_id);
        use std::sync::atomic::Ordering::Relaxed;
        let ours = crc64(&body);
        let with_md5 = !self.parts_carry_crc.load(Relaxed);
        match self
            .upload_part_once(key, upload_id, part_number, body.clone(), ours, with_md5)
            .await
        {
            Err(CosError::InvalidResponse(why)) if why == NO_PART_CRC => {
                self.parts_carry_crc.store(false, Relaxed);
                self.upload_part_once(key, upload_id, part_number, body, ours, true)
                    .await
            }
            other => other,
        }
    }

    async fn upload_part_copy(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        source: &CopySource<'_>,
    ) -> CosResult<UploadedPart> {
        let (key, upload_id) = (up.key, up.upload_id);
        let range = source.range;
        let mut req = Request::new(Method::PUT, Some(key))
            .param("partNumber", part_number.to_string())
            .param("uploadId", upload_id)
            .header("x-cos-copy-source", self.copy_source(source.key));
        if let Some(r) = range {
            req = req.header("x-cos-copy-source-range", r.header());
        }
        if let Some(e) = source.if_match {
            req = req.header("x-cos-copy-source-if-match", format!("\"{e}\""));
        }
        let copied = range.and_then(|r| r.end.map(|e| e - r.start));
        let (etag, _, crc64) = self.send_copy(req, copied).await?;
        Ok(UploadedPart {
            part_number,
            etag,
            crc64,
            size: range.and_then(|r| r.end.map(|e| e - r.start)),
        })
    }

    async fn complete_multipart(
        &self,
        up: &Upload<'_>,
        parts: &[UploadedPart],
    ) -> CosResult<CompleteResult> {
        let (key, upload_id) = (up.key, up.upload_id);
        let mut xml = String::from("<CompleteMultipartUpload>");
        for p in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{}\"</ETag></Part>",
                p.part_number,
                escape(&p.etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut req = xml_body(
            Request::new(Method::POST, Some(key)).param("uploadId", upload_id),
            xml,
        );
        req.long = true;
        req.error_in_200 = true;
        // The object's CRC follows from the parts' CRCs when we know them all.
        let expected = parts
            .iter()
            .try_fold(0u64, |acc, p| Some(crc64_combine(acc, p.crc64?, p.size?)));
        let mut unheard = None;
        let r = match self.call_read_noting(req, &mut unheard).await {
            Ok((headers, body)) => parse::complete_etag(&body).and_then(|etag| {
                let theirs = parse::crc64_header(&headers);
                if let Some(ours) = expected {
                    check_crc("completed object", ours, theirs)?;
                }
                Ok(CompleteResult {
                    etag,
                    crc64: theirs.or(expected),
                })
            }),
            // A retry of a Complete that landed finds no upload any more: if the object is
            // the one our parts make, it was ours.
            Err(e) if unheard.is_some() && e.kind() == Some(ErrorKind::NotFound) => {
                match self.completed_as(key, parts, expected).await {
                    Some(done) => {
                        tracing::info!(
                            key,
                            upload_id,
                            "the answer to Complete was lost; the object is the one our parts make"
                        );
                        Ok(done)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        self.sweep_unheard(upload_id).await;
        r
    }

    async fn abort_multipart(&self, up: &Upload<'_>) -> CosResult<()> {
        let (key, upload_id) = (up.key, up.upload_id);
        let req = Request::new(Method::DELETE, Some(key)).param("uploadId", upload_id);
        let r = self.call(req, |_| async { Ok(()) }).await;
        self.sweep_unheard(upload_id).await;
        r
    }

    fn clock_offset_secs(&self) -> i64 {
        CosClient::clock_offset_secs(self)
    }

    async fn list_parts(
        &self,
        up: &Upload<'_>,
        part_number_marker: Option<u32>,
    ) -> CosResult<ListPartsPage> {
        let (key, upload_id) = (up.key, up.upload_id);
        let mut req = Request::new(Method::GET, Some(key))
            .param("uploadId", upload_id)
            .param("max-parts", "1000");
        if let Some(m) = part_number_marker {
            req = req.param("part-number-marker", m.to_string());
        }
        let (_, body) = self.call_read(req).await?;
        parse::list_parts(&body)
    }

    async fn list_multipart_uploads(&self, lr: &ListUploadsRequest) -> CosResult<ListUploadsPage> {
        let mut req = Request::new(Method::GET, None)
            .param("uploads", "")
            .param("encoding-type", "url");
        if !lr.prefix.is_empty() {
            req = req.param("prefix", lr.prefix.as_str());
        }
        if let Some(m) = &lr.key_marker {
            req = req.param("key-marker", m.as_str());
        }
        if let Some(m) = &lr.upload_id_marker {
            req = req.param("upload-id-marker", m);
        }
        let (_, body) = self.call_read(req).await?;
        parse::list_uploads(&body, true)
    }
}

impl CosClient {
    /// Send a copy (PUT Object - Copy or Upload Part - Copy) of `size` bytes (unknown: the
    /// long timeout), whose error may come in a 200; its ETag, Last-Modified and CRC-64.
    async fn send_copy(
        &self,
        mut req: Request,
        size: Option<u64>,
    ) -> CosResult<(String, Option<std::time::SystemTime>, Option<u64>)> {
        match size {
            Some(n) => req.copies = Some(n),
            None => req.long = true,
        }
        req.error_in_200 = true;
        let (headers, body) = self.call_read(req).await?;
        let (etag, last_modified) = parse::copy_result(&body)?;
        Ok((etag, last_modified, parse::crc64_header(&headers)))
    }

    /// Whether `key` now holds the object `parts` make (by its CRC-64 when every part's is
    /// known, else by the multipart ETag: the MD5 of the parts' MD5s and their count).
    async fn completed_as(
        &self,
        key: &str,
        parts: &[UploadedPart],
        crc: Option<u64>,
    ) -> Option<CompleteResult> {
        let m = self.head_object(key).await.ok()?;
        let ours = match (crc, m.crc64) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => multipart_etag(parts).is_some_and(|e| e == m.etag),
        };
        ours.then(|| CompleteResult {
            etag: m.etag,
            crc64: m.crc64.or(crc),
        })
    }
}

/// The ETag COS gives an object completed from `parts` whose ETags are MD5s.
fn multipart_etag(parts: &[UploadedPart]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        let mut raw = [0u8; 16];
        hex::decode_to_slice(p.etag.trim_matches('"'), &mut raw).ok()?;
        h.update(raw);
    }
    Some(format!("{}-{}", hex::encode(h.finalize()), parts.len()))
}

/// A part answered without a CRC-64 when it was sent without Content-MD5: nothing checked it.
const NO_PART_CRC: &str =
    "Upload Part answered without a CRC-64 to a part sent without Content-MD5";

impl CosClient {
    /// One Upload Part (with its retries), with or without Content-MD5. Without it, the
    /// answer must carry the part's CRC-64, or the part counts as unchecked (`NO_PART_CRC`).
    async fn upload_part_once(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
        ours: u64,
        with_md5: bool,
    ) -> CosResult<UploadedPart> {
        let size = body.len() as u64;
        let mut req = Request::new(Method::PUT, Some(key))
            .param("partNumber", part_number.to_string())
            .param("uploadId", upload_id);
        if with_md5 {
            req = req.header("content-md5", content_md5(&body));
        }
        let req = req.body(body);
        self.call(req, |resp| async move {
            let h = resp.headers();
            let what = format!("part {part_number}");
            match parse::crc64_header(h) {
                Some(theirs) => {
                    check_crc(&what, ours, Some(theirs))?;
                    self.parts_carry_crc
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                // Not retried as such (an answer, not a failure): sent again with MD5.
                None if !with_md5 => return Err(CosError::InvalidResponse(NO_PART_CRC.into())),
                None => {}
            }
            let etag = parse::object_meta(h).etag;
            if etag.is_empty() {
                return Err(CosError::InvalidResponse("Upload Part without ETag".into()));
            }
            Ok(UploadedPart {
                part_number,
                etag,
                crc64: Some(ours),
                size: Some(size),
            })
        })
        .await
    }
}
