//! Multipart uploads in `cosfs serve`: Initiate, Upload Part (and Part - Copy), Complete, Abort,
//! List Parts, List Multipart Uploads. Complete checks the part list as COS does (ascending,
//! contiguous from 1, ETags matching, every part but the last at least 1 MB), then answers 200 at
//! once and streams whitespace while it concatenates the parts, ending with the result or an
//! `<Error>`, like COS. ETag = MD5 of the parts' binary MD5s + `-N`; CRC-64 combined from parts.

use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::objects::{self, new_object_headers, receive};
use super::request::{empty, error_xml, full, xml_response, Answer, Body, Ctx, StoreError};
use super::xmlout::XML_DECLARATION;
use super::xmlout::{quoted, XmlOut};
use super::State;
use crate::cos::encode::encode_path;
use crate::local::ops::{self, MAX_SINGLE_PUT};
use crate::local::storage::{Bucket, StoredBlob, UploadRecord};
use crate::timefmt::format_iso8601;

fn upload_of(bucket: &Bucket, ctx: &Ctx) -> Result<UploadRecord, StoreError> {
    ops::upload_of(bucket, &ctx.key, ctx.param("uploadId").unwrap_or_default())
}

pub fn initiate(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let up = ops::initiate(bucket, &ctx.key, new_object_headers(ctx)?)?;
    let mut x = XmlOut::new("InitiateMultipartUploadResult", "");
    x.elem("Bucket", &bucket.name)
        .elem("Key", &ctx.key)
        .elem("UploadId", &up.upload_id);
    Ok(xml_response(x.finish("InitiateMultipartUploadResult")))
}

pub async fn upload_part(st: &State, ctx: &Ctx, bucket: Arc<Bucket>, body: Incoming) -> Answer {
    let n = ops::part_number(ctx.param("partNumber").and_then(|n| n.parse().ok()))?;
    let up = upload_of(&bucket, ctx)?;
    let copy = ctx.headers.contains_key("x-cos-copy-source");
    let blob: StoredBlob = if copy {
        let (src_bucket, src) = objects::copy_source(st, ctx)?;
        let range = match ctx.header("x-cos-copy-source-range") {
            Some(r) => Some(ops::parse_copy_range(&r, src.size)?),
            None => None,
        };
        ops::part_copy_body(&bucket, &src_bucket, &src, range).await?
    } else {
        receive(st, ctx, &bucket, body, MAX_SINGLE_PUT).await?
    };
    let part = ops::put_part(&bucket, &up, n, &blob)?;
    let etag = part.etag;
    let mut b = Response::builder();
    if copy || !st.faults.get().omit_part_crc64 {
        b = b.header("x-cos-hash-crc64ecma", blob.crc64.to_string());
    }
    if copy {
        let mut x = XmlOut::new("CopyPartResult", "");
        x.elem("ETag", quoted(&etag))
            .elem("LastModified", format_iso8601(std::time::SystemTime::now()))
            .elem("CRC64", blob.crc64.to_string());
        Ok(b.header("content-type", "application/xml")
            .body(full(x.finish("CopyPartResult")))
            .expect("response"))
    } else {
        Ok(b.header("etag", quoted(&etag))
            .body(empty())
            .expect("response"))
    }
}

pub async fn complete(st: &State, ctx: &Ctx, bucket: Arc<Bucket>, body: Incoming) -> Answer {
    let delay = Duration::from_millis(st.faults.get().complete_delay_ms);
    let up = upload_of(&bucket, ctx)?;
    let raw = http_body_util::Limited::new(body, 4 << 20)
        .collect()
        .await
        .map_err(|_| StoreError::bad_request("MalformedXML", "Complete body too large or cut off"))?
        .to_bytes();
    let malformed =
        || StoreError::bad_request("MalformedXML", "The XML you provided was not well-formed");
    let doc = crate::xml::parse(&raw).map_err(|_| malformed())?;
    if doc.name != "CompleteMultipartUpload" {
        return Err(malformed());
    }
    let mut wanted = Vec::new();
    for p in doc.children_named("Part") {
        let n: u32 = p
            .text_of(&["PartNumber"])
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(malformed)?;
        let etag = crate::xml::unquote_etag(p.text_of(&["ETag"]).unwrap_or_default());
        wanted.push((n, etag));
    }
    let plan = ops::plan_complete(&bucket, &up, &wanted)?;
    let crc = plan.crc64;

    // Answer now: the XML declaration first, then whitespace each second while the parts are
    // merged (a parser reads it as the space between the declaration and the root, where
    // Tencent's SDK fails on whitespace before the declaration), then the result.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let _ = tx.try_send(Ok(bytes::Bytes::from_static(XML_DECLARATION.as_bytes())));
    let key = ctx.key.clone();
    let request_id = ctx.request_id.clone();
    tokio::spawn(async move {
        let b = bucket.clone();
        let mut merge = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            tokio::task::spawn_blocking(move || ops::finish_complete(&b, &plan))
                .await
                .map_err(std::io::Error::other)?
        });
        let result = loop {
            tokio::select! {
                r = &mut merge => break r.map_err(std::io::Error::other).and_then(|r| r),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    // If the client is gone the merge still completes: the upload is not lost.
                    let _ = tx.send(Ok(bytes::Bytes::from_static(b" "))).await;
                }
            }
        };
        let xml = match result {
            Ok(rec) => {
                let mut x = XmlOut::new(
                    "CompleteMultipartUploadResult",
                    "xmlns=\"http://www.qcloud.com/document/product/436/7751\"",
                );
                x.elem("Location", format!("{}/{}", bucket.name, encode_path(&key)))
                    .elem("Bucket", &bucket.name)
                    .elem("Key", &key)
                    .elem("ETag", quoted(&rec.etag));
                x.finish("CompleteMultipartUploadResult")
            }
            Err(e) => {
                tracing::error!(error = %e, key, "Complete Multipart Upload failed");
                error_xml("InternalError", &e.to_string(), &key, &request_id)
            }
        };
        let root = xml
            .strip_prefix(XML_DECLARATION)
            .unwrap_or(&xml)
            .to_string();
        let _ = tx.send(Ok(bytes::Bytes::from(root))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    let body: Body = http_body_util::StreamBody::new(stream).boxed();
    Ok(Response::builder()
        .header("content-type", "application/xml")
        .header("x-cos-hash-crc64ecma", crc.to_string())
        .body(body)
        .expect("response"))
}

pub fn abort(ctx: &Ctx, bucket: &Bucket) -> Answer {
    ops::abort(bucket, &upload_of(bucket, ctx)?)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .expect("response"))
}

pub fn list_parts(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let up = upload_of(bucket, ctx)?;
    let marker: u32 = ctx
        .param("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let max: usize = ctx
        .param("max-parts")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let (listed, truncated) = ops::list_parts(bucket, &up, marker, max)?;
    let mut x = XmlOut::new("ListPartsResult", "");
    x.elem("Bucket", &bucket.name)
        .elem("Key", &up.key)
        .elem("UploadId", &up.upload_id)
        .elem("StorageClass", &up.headers.storage_class)
        .elem("PartNumberMarker", marker.to_string())
        .elem("MaxParts", max.to_string());
    for p in &listed {
        x.open("Part")
            .elem("PartNumber", p.part_number.to_string())
            .elem(
                "LastModified",
                format_iso8601(std::time::UNIX_EPOCH + Duration::from_millis(p.last_modified_ms)),
            )
            .elem("ETag", quoted(&p.etag))
            .elem("Size", p.size.to_string())
            .close("Part");
    }
    x.elem("IsTruncated", truncated.to_string());
    if let Some(l) = listed.last().filter(|_| truncated) {
        x.elem("NextPartNumberMarker", l.part_number.to_string());
    }
    Ok(xml_response(x.finish("ListPartsResult")))
}

pub fn list_uploads(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let prefix = ctx.param("prefix").unwrap_or_default();
    let key_marker = ctx.param("key-marker").unwrap_or_default();
    let id_marker = ctx.param("upload-id-marker").unwrap_or_default();
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { encode_path(s) } else { s.to_string() };
    let max: usize = ctx
        .param("max-uploads")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let (all, truncated) = ops::list_uploads(bucket, prefix, key_marker, id_marker, max);
    let mut x = XmlOut::new("ListMultipartUploadsResult", "");
    x.elem("Bucket", &bucket.name);
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("Prefix", enc(prefix))
        .elem("KeyMarker", enc(key_marker))
        .elem("UploadIdMarker", id_marker)
        .elem("MaxUploads", max.to_string());
    for u in &all {
        x.open("Upload")
            .elem("Key", enc(&u.key))
            .elem("UploadId", &u.upload_id)
            .elem("StorageClass", &u.headers.storage_class)
            .elem(
                "Initiated",
                format_iso8601(std::time::UNIX_EPOCH + Duration::from_millis(u.initiated_ms)),
            )
            .close("Upload");
    }
    x.elem("IsTruncated", truncated.to_string());
    if let Some(last) = all.last().filter(|_| truncated) {
        x.elem("NextKeyMarker", enc(&last.key))
            .elem("NextUploadIdMarker", &last.upload_id);
    }
    Ok(xml_response(x.finish("ListMultipartUploadsResult")))
}
