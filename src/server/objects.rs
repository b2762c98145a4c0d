//! Object operations of `cosfs serve`: PUT, GET (ranges, conditions), HEAD, DELETE, Copy; HTTP
//! in front of `local::ops`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::request::{empty, full, Answer, Body, Ctx, StoreError};
use super::xmlout::{quoted, XmlOut};
use super::State;
use crate::cos::encode::decode;
use crate::local::blob::{read_body, BlobWriter, StreamFaults};
use crate::local::ops::{self, Conditions, Directive, MAX_SINGLE_PUT};
use crate::local::storage::{Bucket, NewObjectHeaders, ObjectRecord, StandardHeaders, StoredBlob};
use crate::timefmt::format_iso8601;

/// Content-Type, storage class and user metadata of a new object, from request headers.
pub fn new_object_headers(ctx: &Ctx) -> Result<NewObjectHeaders, StoreError> {
    let acl = super::subresources::canned_acl(ctx, false)?;
    let user_meta = ctx
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let n = name.as_str().strip_prefix("x-cos-meta-")?;
            Some((
                n.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ))
        })
        .collect();
    let mut headers = ops::object_headers(
        ctx.header("content-type"),
        StandardHeaders::from_lookup(|n| ctx.header(n)),
        ctx.header("x-cos-storage-class").as_deref(),
        user_meta,
    )?;
    headers.acl = acl;
    headers.tags = super::subresources::tagging_header(ctx)?.unwrap_or_default();
    Ok(headers)
}

/// The conditions of a request, from `prefix`-ed headers (`x-cos-copy-source-` for a copy).
fn conditions(ctx: &Ctx, prefix: &str) -> Conditions {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let date = |n: &str| h(n).and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    Conditions {
        if_match: h("if-match"),
        if_none_match: h("if-none-match"),
        if_modified_since: date("if-modified-since"),
        if_unmodified_since: date("if-unmodified-since"),
    }
}

/// Receive a request body into a new blob, honouring the bandwidth cap and checking
/// Content-Length and Content-MD5.
pub async fn receive(
    st: &State,
    ctx: &Ctx,
    bucket: &Bucket,
    mut body: Incoming,
    max_size: u64,
) -> Result<StoredBlob, StoreError> {
    let declared: Option<u64> = ctx.header("content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > max_size) {
        return Err(StoreError::bad_request(
            "EntityTooLarge",
            format!("body exceeds the {max_size}-byte limit"),
        ));
    }
    let want_md5 = match ctx.header("content-md5") {
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    StoreError::bad_request("InvalidDigest", "Content-MD5 is not a base64 MD5")
                })?,
        ),
        None => None,
    };
    let bandwidth = st.faults.get().bandwidth;
    let began = Instant::now();
    let mut w = BlobWriter::create(bucket)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            StoreError::bad_request("IncompleteBody", format!("request body was cut off: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            w.write(&data).await?;
            st.stats
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if w.size() > max_size {
                return Err(StoreError::bad_request("EntityTooLarge", "body too large"));
            }
            if bandwidth > 0 {
                let due = Duration::from_secs_f64(w.size() as f64 / bandwidth as f64);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    if declared.is_some_and(|n| n != w.size()) {
        return Err(StoreError::bad_request(
            "IncompleteBody",
            "body length differs from Content-Length",
        ));
    }
    let blob = w.finish(bucket).await?;
    if let Some(md5) = want_md5 {
        if md5.as_slice() != blob.md5 {
            bucket.remove_data(&blob.data);
            return Err(StoreError::bad_request(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(blob)
}

pub async fn put(st: &State, ctx: &Ctx, bucket: Arc<Bucket>, body: Incoming) -> Answer {
    ops::check_new_key(&ctx.key)?;
    let headers = new_object_headers(ctx)?;
    let blob = receive(st, ctx, &bucket, body, MAX_SINGLE_PUT).await?;
    let rec = ops::put(&bucket, &ctx.key, &blob, headers)?;
    Ok(Response::builder()
        .header("etag", quoted(&rec.etag))
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string())
        .body(empty())
        .expect("response"))
}

/// APPEND Object: `POST /<key>?append&position=N`.
pub async fn append(st: &State, ctx: &Ctx, bucket: Arc<Bucket>, body: Incoming) -> Answer {
    ops::check_new_key(&ctx.key)?;
    let position: u64 = ctx
        .param("position")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| {
            StoreError::bad_request("InvalidArgument", "append needs position=<current length>")
        })?;
    let headers = new_object_headers(ctx)?;
    let blob = receive(st, ctx, &bucket, body, MAX_SINGLE_PUT).await?;
    let rec = ops::append(&bucket, &ctx.key, position, &blob, headers)?;
    Ok(Response::builder()
        .header("etag", quoted(&rec.etag))
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string())
        .header("x-cos-next-append-position", rec.size)
        .body(empty())
        .expect("response"))
}

/// POST Object restore: `POST /<key>?restore` with a RestoreRequest document.
pub async fn restore(st: &State, ctx: &Ctx, bucket: &Bucket, body: Incoming) -> Answer {
    let body = body
        .collect()
        .await
        .map_err(|e| StoreError::bad_request("IncompleteBody", e.to_string()))?
        .to_bytes();
    let (days, tier) = ops::parse_restore_request(&body)?;
    let delay = st.faults.get().restore_delay_ms;
    let status = ops::restore(bucket, &ctx.key, days, &tier, delay)?;
    Ok(Response::builder()
        .status(status)
        .body(empty())
        .expect("response"))
}

fn object_response(rec: &ObjectRecord) -> http::response::Builder {
    let mut b = Response::builder()
        .header("etag", quoted(&rec.etag))
        .header(
            "last-modified",
            httpdate::fmt_http_date(rec.last_modified()),
        )
        .header("content-type", &rec.content_type)
        .header("accept-ranges", "bytes")
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string());
    for (name, value) in rec.standard.iter() {
        b = b.header(name, value);
    }
    if !rec.tags.is_empty() {
        b = b.header("x-cos-tagging-count", rec.tags.len());
    }
    if rec.storage_class != "STANDARD" {
        b = b.header("x-cos-storage-class", &rec.storage_class);
    }
    if rec.appendable {
        b = b
            .header("x-cos-object-type", "appendable")
            .header("x-cos-next-append-position", rec.size);
    }
    if let Some(r) = ops::restore_header(rec) {
        b = b.header("x-cos-restore", r);
    }
    for (k, v) in &rec.user_meta {
        b = b.header(format!("x-cos-meta-{k}"), v.as_bytes());
    }
    b
}

/// GET's `response-*` parameters: headers of this answer only, the object keeps its own.
const OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

fn with_overrides(
    ctx: &Ctx,
    mut b: http::response::Builder,
) -> Result<http::response::Builder, StoreError> {
    for (param, header) in OVERRIDES {
        let Some(v) = ctx.param(param) else { continue };
        let value = http::HeaderValue::from_str(v).map_err(|_| {
            StoreError::bad_request("InvalidArgument", format!("{param} is not a header value"))
        })?;
        if let Some(h) = b.headers_mut() {
            h.insert(header, value);
        }
    }
    Ok(b)
}

pub async fn get(
    st: &State,
    ctx: &Ctx,
    bucket: &Bucket,
    head: bool,
    drop_mid_body: bool,
) -> Answer {
    let (rec, file) = ops::find_object(bucket, &ctx.key, !head)?;
    if !head {
        ops::check_readable(&rec)?;
    }
    if ops::check_conditions(&conditions(ctx, ""), &rec)? {
        return Ok(object_response(&rec)
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .expect("response"));
    }
    let range = ops::resolve_range(ctx.header("range").as_deref(), rec.size)?;
    let (start, end) = range.unwrap_or((0, rec.size));
    let len = end - start;
    let mut b = object_response(&rec).header("content-length", len);
    if !head {
        b = with_overrides(ctx, b)?;
    }
    if range.is_some() {
        b = b.status(StatusCode::PARTIAL_CONTENT).header(
            "content-range",
            format!("bytes {}-{}/{}", start, end - 1, rec.size),
        );
    }
    let Some(file) = file else {
        return Ok(b.body(empty()).expect("response")); // HEAD
    };
    st.stats.bytes_out.fetch_add(len, Ordering::Relaxed);
    let faults = StreamFaults {
        bandwidth: Some(st.faults.get().bandwidth).filter(|b| *b > 0),
        drop_after: drop_mid_body.then_some(len / 2),
    };
    let rx = read_body(file, start, len, faults);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    let body: Body = http_body_util::StreamBody::new(stream).boxed();
    Ok(b.body(body).expect("response"))
}

pub fn delete(bucket: &Bucket, ctx: &Ctx) -> Answer {
    bucket.delete(&ctx.key)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .expect("response"))
}

/// `x-cos-copy-source: <bucket>.<host>/<key>` (or `<bucket>/<key>`): (bucket, decoded key).
pub fn parse_copy_source(v: &str) -> Result<(String, String), StoreError> {
    let bad = || StoreError::bad_request("InvalidArgument", "x-cos-copy-source is malformed");
    let v = v.trim().trim_start_matches('/');
    let v = v.split_once('?').map_or(v, |(a, _)| a);
    let v = v.split_once("://").map_or(v, |(_, rest)| rest);
    let (host, key) = v.split_once('/').ok_or_else(bad)?;
    let bucket = host.split('.').next().unwrap_or(host).to_string();
    let key = decode(key).map_err(|_| bad())?;
    if bucket.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok((bucket, key))
}

/// Source object of a copy, with the `x-cos-copy-source-If-*` conditions checked.
pub fn copy_source(st: &State, ctx: &Ctx) -> Result<(Arc<Bucket>, ObjectRecord), StoreError> {
    let (sb, sk) = parse_copy_source(&ctx.header("x-cos-copy-source").unwrap_or_default())?;
    let src_bucket = st
        .storage
        .bucket(&sb)
        .ok_or_else(StoreError::no_such_bucket)?;
    let rec = ops::copy_source(&src_bucket, &sk, &conditions(ctx, "x-cos-copy-source-"))?;
    Ok((src_bucket, rec))
}

pub async fn copy(st: &State, ctx: &Ctx, bucket: Arc<Bucket>) -> Answer {
    ops::check_key(&ctx.key)?;
    let (src_bucket, src) = copy_source(st, ctx)?;
    let directive = ctx
        .header("x-cos-metadata-directive")
        .unwrap_or_else(|| "Copy".into());
    let directive = match directive.to_ascii_lowercase().as_str() {
        "copy" => Directive::Copy,
        "replaced" => Directive::Replaced(Box::new(new_object_headers(ctx)?)),
        _ => {
            return Err(StoreError::bad_request(
                "InvalidArgument",
                "x-cos-metadata-directive must be Copy or Replaced",
            ))
        }
    };
    let class = ctx.header("x-cos-storage-class");
    // The copy has its source's tags (`ops::copy`) unless told to replace them.
    let replaced_tags = match ctx.header("x-cos-tagging-directive").as_deref() {
        None | Some("Copy") => None,
        Some("Replaced") => Some(super::subresources::tagging_header(ctx)?.unwrap_or_default()),
        Some(_) => {
            return Err(StoreError::bad_request(
                "InvalidArgument",
                "x-cos-tagging-directive must be Copy or Replaced",
            ))
        }
    };
    let rec = ops::copy(
        &bucket,
        &ctx.key,
        &src_bucket,
        &src,
        directive,
        class.as_deref(),
    )
    .await?;
    if let Some(tags) = replaced_tags {
        bucket.update_record(&ctx.key, |r| r.tags = tags)?;
    }
    let mut x = XmlOut::new("CopyObjectResult", "");
    x.elem("ETag", quoted(&rec.etag))
        .elem("LastModified", format_iso8601(rec.last_modified()))
        .elem("CRC64", rec.crc64.to_string());
    Ok(Response::builder()
        .header("content-type", "application/xml")
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string())
        .body(full(x.finish("CopyObjectResult")))
        .expect("response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources() {
        assert_eq!(
            parse_copy_source("b-1.cos.ap-x.myqcloud.com/a%20b/c").unwrap(),
            ("b-1".to_string(), "a b/c".to_string())
        );
        assert_eq!(
            parse_copy_source("/b-1.127.0.0.1:9/k").unwrap(),
            ("b-1".to_string(), "k".to_string())
        );
        assert!(parse_copy_source("nokey").is_err());
    }
}
