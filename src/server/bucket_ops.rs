//! Bucket-level operations of `cosfs serve`: GET Bucket (list objects), HEAD/PUT/DELETE Bucket,
//! DELETE Multiple, and GET Service.

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::request::{empty, xml_response, Answer, Ctx, StoreError};
use super::xmlout::{quoted, XmlOut};
use super::State;
use crate::cos::encode::encode_path;
use crate::cos::integrity::content_md5;
use crate::local::listing::{list, ListParams};
use crate::local::ops;
use crate::local::storage::Bucket;
use crate::timefmt::format_iso8601;

/// A listing's `max-keys` (at most 1000, the default; empty as if not sent).
pub fn max_keys(ctx: &Ctx) -> Result<usize, StoreError> {
    match ctx.param("max-keys").filter(|v| !v.is_empty()) {
        Some(v) => Ok(v
            .parse::<usize>()
            .map_err(|_| StoreError::bad_request("InvalidArgument", "max-keys must be a number"))?
            .min(1000)),
        None => Ok(1000),
    }
}

/// The `CommonPrefixes` of a listing, each through `enc`.
pub fn common_prefixes(x: &mut XmlOut, prefixes: &[String], enc: impl Fn(&str) -> String) {
    for cp in prefixes {
        x.open("CommonPrefixes")
            .elem("Prefix", enc(cp))
            .close("CommonPrefixes");
    }
}

pub fn list_objects(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let max_keys = max_keys(ctx)?;
    let p = ListParams {
        prefix: ctx.param("prefix").unwrap_or_default().to_string(),
        delimiter: ctx.param("delimiter").map(str::to_string),
        marker: ctx.param("marker").map(str::to_string),
        max_keys,
    };
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { encode_path(s) } else { s.to_string() };
    let l = list(bucket, &p);
    let mut x = XmlOut::new("ListBucketResult", "");
    x.elem("Name", &bucket.name);
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("Prefix", enc(&p.prefix))
        .elem("Marker", enc(p.marker.as_deref().unwrap_or_default()))
        .elem("MaxKeys", max_keys.to_string());
    if let Some(d) = &p.delimiter {
        x.elem("Delimiter", enc(d));
    }
    x.elem("IsTruncated", l.truncated.to_string());
    if let Some(m) = &l.next_marker {
        x.elem("NextMarker", enc(m));
    }
    common_prefixes(&mut x, &l.prefixes, enc);
    for r in &l.contents {
        x.open("Contents")
            .elem("Key", enc(&r.key))
            .elem("LastModified", format_iso8601(r.last_modified()))
            .elem("ETag", quoted(&r.etag))
            .elem("Size", r.size.to_string())
            .open("Owner")
            .elem("ID", "1250000000")
            .elem("DisplayName", "1250000000")
            .close("Owner")
            .elem("StorageClass", &r.storage_class)
            .close("Contents");
    }
    Ok(xml_response(x.finish("ListBucketResult")))
}

pub async fn delete_multiple(ctx: &Ctx, bucket: &Bucket, body: Incoming) -> Answer {
    let raw = http_body_util::Limited::new(body, 4 << 20)
        .collect()
        .await
        .map_err(|_| StoreError::bad_request("MalformedXML", "body too large or cut off"))?
        .to_bytes();
    let Some(md5) = ctx.header("content-md5") else {
        return Err(StoreError::bad_request(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    };
    if md5.trim() != content_md5(&raw) {
        return Err(StoreError::bad_request(
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        ));
    }
    let malformed =
        || StoreError::bad_request("MalformedXML", "The XML you provided was not well-formed");
    let doc = crate::xml::parse(&raw).map_err(|_| malformed())?;
    if doc.name != "Delete" {
        return Err(malformed());
    }
    let quiet = doc
        .text_of(&["Quiet"])
        .is_some_and(|q| q.trim().eq_ignore_ascii_case("true"));
    let keys: Vec<String> = doc
        .children_named("Object")
        .map(|o| o.text_of(&["Key"]).unwrap_or_default().to_string())
        .collect();
    if keys.is_empty() || keys.len() > 1000 {
        return Err(malformed());
    }
    let mut x = XmlOut::new("DeleteResult", "");
    for (k, failed) in ops::delete_many(bucket, &keys) {
        match failed {
            None if quiet => {}
            None => {
                x.open("Deleted").elem("Key", &k).close("Deleted");
            }
            Some(message) => {
                x.open("Error")
                    .elem("Key", &k)
                    .elem("Code", "InternalError")
                    .elem("Message", message)
                    .close("Error");
            }
        }
    }
    Ok(xml_response(x.finish("DeleteResult")))
}

pub fn put_bucket(st: &State, ctx: &Ctx) -> Answer {
    if !crate::cos::config::valid_bucket_name(&ctx.bucket) {
        return Err(StoreError::bad_request(
            "InvalidBucketName",
            "bucket names are name-APPID",
        ));
    }
    st.storage.create_bucket(&ctx.bucket)?;
    Ok(Response::builder().body(empty()).expect("response"))
}

pub fn delete_bucket(st: &State, ctx: &Ctx) -> Answer {
    match st.storage.delete_bucket(&ctx.bucket) {
        Ok(true) => Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(empty())
            .expect("response")),
        Ok(false) => Err(StoreError::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty.",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::no_such_bucket()),
        Err(e) => Err(e.into()),
    }
}
