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
use md5::{Digest, Md5};

use super::objects::{self, check_key, new_object_headers, receive, MAX_SINGLE_PUT};
use super::request::{empty, error_xml, full, xml_response, Body, CosErr, Ctx, Resp};
use super::storage::{now_ms, Bucket, PartRecord, StoredBlob};
use super::xmlout::{quoted, XmlOut};
use super::State;
use crate::cos::encode::encode_path;
use crate::cos::integrity::crc64_combine;
use crate::timefmt::format_iso8601;

/// Smallest part that may be followed by another (1 MB).
pub const MIN_PART_SIZE: u64 = 1024 * 1024;
const MAX_PARTS: u32 = 10_000;

fn upload_of(bucket: &Bucket, ctx: &Ctx) -> Result<super::storage::UploadRecord, CosErr> {
    let id = ctx.param("uploadId").unwrap_or_default();
    bucket
        .upload(id)
        .filter(|u| u.key == ctx.key)
        .ok_or_else(CosErr::no_such_upload)
}

pub fn initiate(ctx: &Ctx, bucket: &Bucket) -> Result<Resp, CosErr> {
    check_key(&ctx.key)?;
    let up = bucket.create_upload(&ctx.key, new_object_headers(ctx)?)?;
    let mut x = XmlOut::new("InitiateMultipartUploadResult", "");
    x.elem("Bucket", &bucket.name)
        .elem("Key", &ctx.key)
        .elem("UploadId", &up.upload_id);
    Ok(xml_response(x.finish("InitiateMultipartUploadResult")))
}

fn part_number(ctx: &Ctx) -> Result<u32, CosErr> {
    ctx.param("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| CosErr::bad_request("InvalidArgument", "partNumber must be 1..10000"))
}

pub async fn upload_part(
    st: &State,
    ctx: &Ctx,
    bucket: Arc<Bucket>,
    body: Incoming,
) -> Result<Resp, CosErr> {
    let n = part_number(ctx)?;
    let up = upload_of(&bucket, ctx)?;
    let copy = ctx.headers.contains_key("x-cos-copy-source");
    let blob: StoredBlob = if copy {
        let (src_bucket, src) = objects::copy_source(st, ctx)?;
        let (start, end) = match ctx.header("x-cos-copy-source-range") {
            Some(r) => parse_copy_range(&r, src.size)?,
            None => (0, src.size),
        };
        if end - start > MAX_SINGLE_PUT {
            return Err(CosErr::bad_request("EntityTooLarge", "part copy over 5 GB"));
        }
        let f = std::fs::File::open(src_bucket.data_path(&src.data))?;
        super::blob::copy_range(bucket.clone(), f, start, end - start).await?
    } else {
        receive(st, ctx, &bucket, body, MAX_SINGLE_PUT).await?
    };
    let etag = hex::encode(blob.md5);
    let part = PartRecord {
        part_number: n,
        etag: etag.clone(),
        size: blob.size,
        crc64: blob.crc64,
        last_modified_ms: now_ms(),
        data: blob.data.clone(),
    };
    if let Err(e) = bucket.put_part(&up.upload_id, part) {
        bucket.remove_data(&blob.data);
        return Err(e.into());
    }
    let b = Response::builder().header("x-cos-hash-crc64ecma", blob.crc64.to_string());
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

/// `bytes=a-b` (inclusive) within an object of `size`.
fn parse_copy_range(v: &str, size: u64) -> Result<(u64, u64), CosErr> {
    let bad = || {
        CosErr::bad_request(
            "InvalidArgument",
            "x-cos-copy-source-range must be bytes=first-last within the source",
        )
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let start: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if last < start || last >= size {
        return Err(bad());
    }
    Ok((start, last + 1))
}

pub async fn complete(ctx: &Ctx, bucket: Arc<Bucket>, body: Incoming) -> Result<Resp, CosErr> {
    let up = upload_of(&bucket, ctx)?;
    let raw = http_body_util::Limited::new(body, 4 << 20)
        .collect()
        .await
        .map_err(|_| CosErr::bad_request("MalformedXML", "Complete body too large or cut off"))?
        .to_bytes();
    let malformed =
        || CosErr::bad_request("MalformedXML", "The XML you provided was not well-formed");
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
    if wanted.is_empty() {
        return Err(malformed());
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(CosErr::bad_request(
            "InvalidPartOrder",
            "The list of parts was not in ascending order.",
        ));
    }
    let stored = bucket.parts(&up.upload_id)?;
    let invalid = |n: u32| {
        CosErr::bad_request(
            "InvalidPart",
            format!("part {n} was not uploaded, or its ETag does not match"),
        )
    };
    let mut parts = Vec::new();
    for (i, (n, etag)) in wanted.iter().enumerate() {
        if *n as usize != i + 1 {
            return Err(invalid(i as u32 + 1));
        }
        let p = stored
            .get(n)
            .filter(|p| p.etag == *etag)
            .ok_or_else(|| invalid(*n))?;
        parts.push(p.clone());
    }
    if let Some(small) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(CosErr::bad_request(
            "EntityTooSmall",
            format!(
                "part {} is {} bytes; every part but the last must be at least 1 MB",
                small.part_number, small.size
            ),
        ));
    }
    let mut md5s = Md5::new();
    let mut crc = 0u64;
    for p in &parts {
        md5s.update(hex::decode(&p.etag).unwrap_or_default());
        crc = crc64_combine(crc, p.crc64, p.size);
    }
    let etag = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());

    // Answer now; keep the connection alive with whitespace while the parts are merged.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let key = ctx.key.clone();
    let request_id = ctx.request_id.clone();
    tokio::spawn(async move {
        let b = bucket.clone();
        let sources: Vec<_> = parts.iter().map(|p| b.data_path(&p.data)).collect();
        let mut merge =
            tokio::task::spawn_blocking(move || super::blob::concat_blocking(&b, &sources));
        let merged = loop {
            tokio::select! {
                r = &mut merge => break r.map_err(std::io::Error::other).and_then(|r| r),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    // If the client is gone the merge still completes: the upload is not lost.
                    let _ = tx.send(Ok(bytes::Bytes::from_static(b" "))).await;
                }
            }
        };
        let result = merged.and_then(|(data, size)| {
            let blob = StoredBlob {
                data,
                size,
                md5: [0; 16],
                crc64: crc,
            };
            let rec = bucket.commit(&key, &blob, etag.clone(), up.headers.clone())?;
            bucket.remove_upload(&up.upload_id, false)?;
            Ok(rec)
        });
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
        let _ = tx.send(Ok(bytes::Bytes::from(xml))).await;
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

pub fn abort(ctx: &Ctx, bucket: &Bucket) -> Result<Resp, CosErr> {
    let up = upload_of(bucket, ctx)?;
    match bucket.remove_upload(&up.upload_id, false) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CosErr::no_such_upload()),
        Err(e) => return Err(e.into()),
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .expect("response"))
}

pub fn list_parts(ctx: &Ctx, bucket: &Bucket) -> Result<Resp, CosErr> {
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
    let parts = bucket.parts(&up.upload_id)?;
    let mut listed = parts.range(marker + 1..).map(|(_, p)| p).peekable();
    let mut x = XmlOut::new("ListPartsResult", "");
    x.elem("Bucket", &bucket.name)
        .elem("Key", &up.key)
        .elem("UploadId", &up.upload_id)
        .elem("StorageClass", &up.headers.storage_class)
        .elem("PartNumberMarker", marker.to_string())
        .elem("MaxParts", max.to_string());
    let mut last = None;
    for _ in 0..max {
        let Some(p) = listed.next() else { break };
        x.open("Part")
            .elem("PartNumber", p.part_number.to_string())
            .elem(
                "LastModified",
                format_iso8601(std::time::UNIX_EPOCH + Duration::from_millis(p.last_modified_ms)),
            )
            .elem("ETag", quoted(&p.etag))
            .elem("Size", p.size.to_string())
            .close("Part");
        last = Some(p.part_number);
    }
    let truncated = listed.peek().is_some();
    x.elem("IsTruncated", truncated.to_string());
    if let Some(l) = last.filter(|_| truncated) {
        x.elem("NextPartNumberMarker", l.to_string());
    }
    Ok(xml_response(x.finish("ListPartsResult")))
}

pub fn list_uploads(ctx: &Ctx, bucket: &Bucket) -> Result<Resp, CosErr> {
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
    let all: Vec<_> = bucket
        .uploads()
        .into_iter()
        .filter(|u| u.key.starts_with(prefix))
        .filter(|u| {
            key_marker.is_empty()
                || u.key.as_str() > key_marker
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && u.upload_id.as_str() > id_marker)
        })
        .collect();
    let mut x = XmlOut::new("ListMultipartUploadsResult", "");
    x.elem("Bucket", &bucket.name);
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("Prefix", enc(prefix))
        .elem("KeyMarker", enc(key_marker))
        .elem("UploadIdMarker", id_marker)
        .elem("MaxUploads", max.to_string());
    let truncated = all.len() > max;
    for u in all.iter().take(max) {
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
    if truncated {
        let last = &all[max - 1];
        x.elem("NextKeyMarker", enc(&last.key))
            .elem("NextUploadIdMarker", &last.upload_id);
    }
    Ok(xml_response(x.finish("ListMultipartUploadsResult")))
}
