//! Object operations of `cosfs serve`: PUT, GET (ranges, conditions), HEAD, DELETE, Copy.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::blob::{read_body, BlobWriter, StreamFaults};
use super::request::{empty, full, Body, CosErr, Ctx, Resp};
use super::storage::{Bucket, NewObjectHeaders, ObjectRecord, StoredBlob};
use super::xmlout::{quoted, XmlOut};
use super::State;
use crate::cos::encode::decode;
use crate::timefmt::format_iso8601;

/// Largest single PUT / part / single copy: 5 GB.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// COS caps the `x-cos-meta-*` headers of an object at 2 KB together.
const MAX_USER_META: usize = 2048;
/// COS object keys are at most 850 bytes.
const MAX_KEY_LEN: usize = 850;
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "MAZ_STANDARD",
    "MAZ_STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING",
];

pub fn check_key(key: &str) -> Result<(), CosErr> {
    if key.len() > MAX_KEY_LEN {
        return Err(CosErr::bad_request(
            "KeyTooLong",
            format!(
                "object key is {} bytes; the limit is {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Content-Type, storage class and user metadata of a new object, from request headers.
pub fn new_object_headers(ctx: &Ctx) -> Result<NewObjectHeaders, CosErr> {
    let storage_class = match ctx.header("x-cos-storage-class") {
        Some(c) => {
            let c = c.to_ascii_uppercase();
            if !STORAGE_CLASSES.contains(&c.as_str()) {
                return Err(CosErr::bad_request(
                    "InvalidArgument",
                    format!("unknown storage class {c}"),
                ));
            }
            c
        }
        None => "STANDARD".into(),
    };
    let mut user_meta = std::collections::BTreeMap::new();
    let mut meta_len = 0;
    for (name, value) in &ctx.headers {
        if let Some(n) = name.as_str().strip_prefix("x-cos-meta-") {
            meta_len += name.as_str().len() + value.len();
            user_meta.insert(
                n.to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
    }
    if meta_len > MAX_USER_META {
        return Err(CosErr::bad_request(
            "MetadataTooLarge",
            format!("user metadata is {meta_len} bytes; the limit is {MAX_USER_META}"),
        ));
    }
    Ok(NewObjectHeaders {
        content_type: ctx
            .header("content-type")
            .unwrap_or_else(|| "application/octet-stream".into()),
        storage_class,
        user_meta,
    })
}

/// Receive a request body into a new blob, honouring the bandwidth cap and checking
/// Content-Length and Content-MD5.
pub async fn receive(
    st: &State,
    ctx: &Ctx,
    bucket: &Bucket,
    mut body: Incoming,
    max_size: u64,
) -> Result<StoredBlob, CosErr> {
    let declared: Option<u64> = ctx.header("content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > max_size) {
        return Err(CosErr::bad_request(
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
                    CosErr::bad_request("InvalidDigest", "Content-MD5 is not a base64 MD5")
                })?,
        ),
        None => None,
    };
    let bandwidth = st.faults.get().bandwidth;
    let began = Instant::now();
    let mut w = BlobWriter::create(bucket)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            CosErr::bad_request("IncompleteBody", format!("request body was cut off: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            w.write(&data).await?;
            st.stats
                .bytes_in
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            if w.size() > max_size {
                return Err(CosErr::bad_request("EntityTooLarge", "body too large"));
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
        return Err(CosErr::bad_request(
            "IncompleteBody",
            "body length differs from Content-Length",
        ));
    }
    let blob = w.finish(bucket).await?;
    if let Some(md5) = want_md5 {
        if md5.as_slice() != blob.md5 {
            bucket.remove_data(&blob.data);
            return Err(CosErr::bad_request(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(blob)
}

pub async fn put(
    st: &State,
    ctx: &Ctx,
    bucket: Arc<Bucket>,
    body: Incoming,
) -> Result<Resp, CosErr> {
    check_key(&ctx.key)?;
    if ctx.key.is_empty() {
        return Err(CosErr::bad_request("InvalidArgument", "empty object key"));
    }
    let headers = new_object_headers(ctx)?;
    let blob = receive(st, ctx, &bucket, body, MAX_SINGLE_PUT).await?;
    let etag = hex::encode(blob.md5);
    let rec = bucket.commit(&ctx.key, &blob, etag, headers)?;
    Ok(Response::builder()
        .header("etag", quoted(&rec.etag))
        .header("x-cos-hash-crc64ecma", rec.crc64.to_string())
        .body(empty())
        .expect("response"))
}

fn etag_matches(cond: &str, etag: &str) -> bool {
    cond.split(',')
        .map(|c| c.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|c| c == "*" || c == etag)
}

fn http_time(v: &str) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(v.trim()).ok()
}

/// GET/HEAD conditions: Err(412) or Ok(true) for 304.
fn check_conditions(ctx: &Ctx, rec: &ObjectRecord, prefix: &str) -> Result<bool, CosErr> {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let modified = rec.last_modified();
    // HTTP dates have whole seconds.
    let modified_secs = httpdate::HttpDate::from(modified);
    if let Some(c) = h("if-match") {
        if !etag_matches(&c, &rec.etag) {
            return Err(CosErr::precondition());
        }
    } else if let Some(t) = h("if-unmodified-since").as_deref().and_then(http_time) {
        if httpdate::HttpDate::from(t) < modified_secs {
            return Err(CosErr::precondition());
        }
    }
    if let Some(c) = h("if-none-match") {
        if etag_matches(&c, &rec.etag) {
            return Ok(true);
        }
    } else if let Some(t) = h("if-modified-since").as_deref().and_then(http_time) {
        if modified_secs <= httpdate::HttpDate::from(t) {
            return Ok(true);
        }
    }
    Ok(false)
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
    if rec.storage_class != "STANDARD" {
        b = b.header("x-cos-storage-class", &rec.storage_class);
    }
    for (k, v) in &rec.user_meta {
        b = b.header(format!("x-cos-meta-{k}"), v.as_bytes());
    }
    b
}

/// Parse a single `bytes=` range against `size`: Ok(None) = whole object, Err = 416.
fn parse_range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: COS serves the whole object
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            let e: u64 = b.parse().map_err(|_| ())?;
            if e < start {
                return Ok(None);
            }
            (e + 1).min(size)
        };
        (start, end)
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub async fn get(
    st: &State,
    ctx: &Ctx,
    bucket: &Bucket,
    head: bool,
    drop_mid_body: bool,
) -> Result<Resp, CosErr> {
    // A concurrent overwrite may delete the data file between lookup and open: look again.
    // A HEAD needs the record only.
    let (rec, file) = {
        let mut tries = 0;
        loop {
            let rec = bucket.get(&ctx.key).ok_or_else(CosErr::no_such_key)?;
            if head {
                break (rec, None);
            }
            match std::fs::File::open(bucket.data_path(&rec.data)) {
                Ok(f) => break (rec, Some(f)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    };
    if check_conditions(ctx, &rec, "")? {
        return Ok(object_response(&rec)
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .expect("response"));
    }
    let range = match ctx.header("range") {
        Some(v) => parse_range(&v, rec.size).map_err(|_| {
            CosErr::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            )
        })?,
        None => None,
    };
    let (start, end) = range.unwrap_or((0, rec.size));
    let len = end - start;
    let mut b = object_response(&rec).header("content-length", len);
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

pub fn delete(bucket: &Bucket, ctx: &Ctx) -> Result<Resp, CosErr> {
    bucket.delete(&ctx.key)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .expect("response"))
}

/// `x-cos-copy-source: <bucket>.<host>/<key>` (or `<bucket>/<key>`): (bucket, decoded key).
pub fn parse_copy_source(v: &str) -> Result<(String, String), CosErr> {
    let bad = || CosErr::bad_request("InvalidArgument", "x-cos-copy-source is malformed");
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
pub fn copy_source(st: &State, ctx: &Ctx) -> Result<(Arc<Bucket>, ObjectRecord), CosErr> {
    let (sb, sk) = parse_copy_source(&ctx.header("x-cos-copy-source").unwrap_or_default())?;
    let src_bucket = st.storage.bucket(&sb).ok_or_else(CosErr::no_such_bucket)?;
    let rec = src_bucket.get(&sk).ok_or_else(CosErr::no_such_key)?;
    if check_conditions(ctx, &rec, "x-cos-copy-source-")? {
        return Err(CosErr::precondition());
    }
    Ok((src_bucket, rec))
}

pub async fn copy(st: &State, ctx: &Ctx, bucket: Arc<Bucket>) -> Result<Resp, CosErr> {
    check_key(&ctx.key)?;
    let (src_bucket, src) = copy_source(st, ctx)?;
    if src.size > MAX_SINGLE_PUT {
        return Err(CosErr::bad_request(
            "InvalidRequest",
            "objects over 5 GB must be copied with Upload Part - Copy",
        ));
    }
    let directive = ctx
        .header("x-cos-metadata-directive")
        .unwrap_or_else(|| "Copy".into());
    let replaced = match directive.to_ascii_lowercase().as_str() {
        "copy" => false,
        "replaced" => true,
        _ => {
            return Err(CosErr::bad_request(
                "InvalidArgument",
                "x-cos-metadata-directive must be Copy or Replaced",
            ))
        }
    };
    let same = Arc::ptr_eq(&src_bucket, &bucket) && src.key == ctx.key;
    if same && !replaced {
        return Err(CosErr::bad_request(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata.",
        ));
    }
    let mut headers = if replaced {
        new_object_headers(ctx)?
    } else {
        NewObjectHeaders {
            content_type: src.content_type.clone(),
            storage_class: String::new(),
            user_meta: src.user_meta.clone(),
        }
    };
    // Unless sent again, the storage class reverts to STANDARD (COS-NOTES "Copy").
    headers.storage_class = ctx
        .header("x-cos-storage-class")
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_else(|| "STANDARD".into());
    let data = if Arc::ptr_eq(&src_bucket, &bucket) {
        bucket.clone_data(&src.data)?
    } else {
        let f = std::fs::File::open(src_bucket.data_path(&src.data))?;
        super::blob::copy_range(bucket.clone(), f, 0, src.size)
            .await?
            .data
    };
    let blob = StoredBlob {
        data,
        size: src.size,
        md5: [0; 16],
        crc64: src.crc64,
    };
    let rec = bucket.commit(&ctx.key, &blob, src.etag.clone(), headers)?;
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
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Ok(Some((0, 1))));
        assert_eq!(parse_range("bytes=5-", 10), Ok(Some((5, 10))));
        assert_eq!(parse_range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(parse_range("bytes=8-100", 10), Ok(Some((8, 10))));
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=0-", 0), Err(()));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Ok(None));
    }

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
