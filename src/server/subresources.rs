//! The subresources of `cosfs serve`: object and bucket ACLs (canned), object tagging, bucket
//! location and the version listing of a bucket without versioning; and the refusal of every
//! other one.
//!
//! - A request is routed by its query parameters. One that names a subresource this server
//!   does not implement (`?cors`, `?lifecycle`, `?symlink`, any parameter it does not know) is
//!   refused with COS's `501 NotImplemented`: never taken for the plain operation, which would
//!   read, replace or delete the object instead.
//! - ACLs are canned ones (`private`, `public-read`; a bucket's also `public-read-write`,
//!   an object's `default`: the bucket's), from `x-cos-acl` or an `AccessControlPolicy` whose
//!   grants are those of a canned ACL. Grants to other accounts are refused (501). The owner is
//!   the account of the bucket's APPID. The ACLs are stored, reported and enforced nowhere else:
//!   this server's access control is its signature check.
//! - Tags: at most 10 per object, keys up to 128 and values up to 256 characters, as COS has
//!   them; HEAD and GET report their count (`x-cos-tagging-count`). PUT Object, Initiate and
//!   APPEND take them from `x-cos-tagging`; a copy keeps its source's unless it says
//!   `x-cos-tagging-directive: Replaced` (then `x-cos-tagging`'s, or none).
//! - `GET /?versions` lists every object as its one version `null`, as COS answers for a bucket
//!   that never had versioning; `versionId=null` addresses the object, any other id is
//!   `NoSuchVersion`.

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::request::{empty, xml_response, Answer, Ctx, StoreError};
use super::xmlout::{quoted, XmlOut};
use crate::cos::encode::encode_path;
use crate::local::listing::{list, ListParams};
use crate::local::storage::Bucket;
use crate::timefmt::format_iso8601;

/// Parameters of the plain operations, and of the subresources this server implements.
const KNOWN_PARAMS: &[&str] = &[
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "part-number-marker",
    "max-parts",
    "uploads",
    "uploadId",
    "partNumber",
    "append",
    "position",
    "restore",
    "delete",
    "versionId",
    "acl",
    "tagging",
    "location",
    "versions",
    "x-cos-security-token",
];

const ALL_USERS: &str = "http://cam.qcloud.com/groups/global/AllUsers";
const MAX_TAGS: usize = 10;

pub fn not_implemented(what: &str) -> StoreError {
    StoreError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        format!("cosfs serve does not implement {what}"),
    )
}

/// Refuse a request naming a parameter (a subresource) this server does not know.
pub fn check_params(ctx: &Ctx) -> Result<(), StoreError> {
    for (k, _) in &ctx.params {
        let known =
            KNOWN_PARAMS.contains(&k.as_str()) || k.starts_with("response-") || k.starts_with("q-");
        if !known {
            return Err(not_implemented(&format!("the ?{k} subresource")));
        }
    }
    match ctx.param("versionId") {
        Some(v) if v != "null" => Err(StoreError::new(
            StatusCode::NOT_FOUND,
            "NoSuchVersion",
            "The specified version does not exist. (this bucket has no versioning)",
        )),
        _ => Ok(()),
    }
}

/// The owner of everything in `bucket`: the account of its APPID.
fn owner_id(bucket: &Bucket) -> String {
    let appid = bucket.name.rsplit('-').next().unwrap_or_default();
    format!("qcs::cam::uin/{appid}:uin/{appid}")
}

fn owner(x: &mut XmlOut, bucket: &Bucket) {
    let id = owner_id(bucket);
    x.open("Owner")
        .elem("ID", &id)
        .elem("DisplayName", &id)
        .close("Owner");
}

fn acl_document(bucket: &Bucket, canned: &str) -> String {
    let id = owner_id(bucket);
    let mut x = XmlOut::new("AccessControlPolicy", "");
    owner(&mut x, bucket);
    x.open("AccessControlList");
    let grant = |x: &mut XmlOut, grantee: &str, permission: &str| {
        x.raw(&format!("<Grant>{grantee}"))
            .elem("Permission", permission)
            .close("Grant");
    };
    let user = format!(
        "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{id}</ID><DisplayName>{id}</DisplayName></Grantee>"
    );
    let all = format!(
        "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>{ALL_USERS}</URI></Grantee>"
    );
    grant(&mut x, &user, "FULL_CONTROL");
    if canned.starts_with("public-read") {
        grant(&mut x, &all, "READ");
    }
    if canned == "public-read-write" {
        grant(&mut x, &all, "WRITE");
    }
    x.close("AccessControlList");
    x.finish("AccessControlPolicy")
}

/// A canned ACL from `x-cos-acl`, checked against those a bucket or an object may have.
pub fn canned_acl(ctx: &Ctx, for_bucket: bool) -> Result<Option<String>, StoreError> {
    if let Some((name, _)) = ctx
        .headers
        .iter()
        .find(|(n, _)| n.as_str().starts_with("x-cos-grant-"))
    {
        return Err(not_implemented(&format!("{name} (grants to accounts)")));
    }
    let Some(acl) = ctx.header("x-cos-acl") else {
        return Ok(None);
    };
    let acl = acl.trim().to_ascii_lowercase();
    let allowed: &[&str] = if for_bucket {
        &["private", "public-read", "public-read-write"]
    } else {
        &["default", "private", "public-read"]
    };
    if !allowed.contains(&acl.as_str()) {
        return Err(StoreError::bad_request(
            "InvalidArgument",
            format!("x-cos-acl {acl:?} is not one of {}", allowed.join(", ")),
        ));
    }
    Ok(Some(acl))
}

async fn body_of(body: Incoming) -> Result<bytes::Bytes, StoreError> {
    Ok(http_body_util::Limited::new(body, 64 << 10)
        .collect()
        .await
        .map_err(|_| StoreError::bad_request("MalformedXML", "body too large or cut off"))?
        .to_bytes())
}

fn malformed() -> StoreError {
    StoreError::bad_request("MalformedXML", "The XML you provided was not well-formed")
}

/// The canned ACL an `AccessControlPolicy` amounts to: its grants besides the owner's are to
/// all users (READ, WRITE) or it is refused.
fn canned_of_policy(raw: &[u8], for_bucket: bool) -> Result<String, StoreError> {
    let doc = crate::xml::parse(raw).map_err(|_| malformed())?;
    if doc.name != "AccessControlPolicy" {
        return Err(malformed());
    }
    let (mut read, mut write) = (false, false);
    let grants = doc.child("AccessControlList").ok_or_else(malformed)?;
    for g in grants.children_named("Grant") {
        let permission = g.text_of(&["Permission"]).unwrap_or_default().trim();
        let grantee = g.child("Grantee").ok_or_else(malformed)?;
        match grantee.text_of(&["URI"]).map(str::trim) {
            Some(ALL_USERS) if permission == "READ" => read = true,
            Some(ALL_USERS) if permission == "WRITE" && for_bucket => write = true,
            None if permission == "FULL_CONTROL" => {} // the owner's own grant
            _ => return Err(not_implemented("grants other than a canned ACL's")),
        }
    }
    Ok(match (read, write) {
        (true, true) => "public-read-write",
        (true, false) => "public-read",
        (false, true) => return Err(not_implemented("write without read for all users")),
        (false, false) => "private",
    }
    .to_string())
}

/// `PUT ?acl`: the canned ACL from `x-cos-acl`, else from the body.
async fn acl_to_put(ctx: &Ctx, body: Incoming, for_bucket: bool) -> Result<String, StoreError> {
    let raw = body_of(body).await?;
    match canned_acl(ctx, for_bucket)? {
        Some(acl) => Ok(acl),
        None if raw.iter().all(u8::is_ascii_whitespace) => Err(StoreError::bad_request(
            "InvalidRequest",
            "PUT ?acl needs x-cos-acl or an AccessControlPolicy",
        )),
        None => canned_of_policy(&raw, for_bucket),
    }
}

pub fn get_bucket_acl(bucket: &Bucket) -> Answer {
    Ok(xml_response(acl_document(bucket, &bucket.acl())))
}

pub async fn put_bucket_acl(ctx: &Ctx, bucket: &Bucket, body: Incoming) -> Answer {
    let acl = acl_to_put(ctx, body, true).await?;
    bucket.set_acl(&acl)?;
    Ok(Response::builder().body(empty()).expect("response"))
}

pub fn get_object_acl(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let rec = bucket.get(&ctx.key).ok_or_else(StoreError::no_such_key)?;
    let (canned, inherited) = match &rec.acl {
        Some(a) if a != "default" => (a.clone(), false),
        _ => (bucket.acl(), true),
    };
    let mut r = xml_response(acl_document(bucket, &canned));
    if inherited {
        r.headers_mut()
            .insert("x-cos-acl", http::HeaderValue::from_static("default"));
    }
    Ok(r)
}

pub async fn put_object_acl(ctx: &Ctx, bucket: &Bucket, body: Incoming) -> Answer {
    let acl = acl_to_put(ctx, body, false).await?;
    if !bucket.update_record(&ctx.key, |r| r.acl = Some(acl))? {
        return Err(StoreError::no_such_key());
    }
    Ok(Response::builder().body(empty()).expect("response"))
}

pub fn get_tagging(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let rec = bucket.get(&ctx.key).ok_or_else(StoreError::no_such_key)?;
    let mut x = XmlOut::new("Tagging", "");
    x.open("TagSet");
    for (k, v) in &rec.tags {
        x.open("Tag").elem("Key", k).elem("Value", v).close("Tag");
    }
    x.close("TagSet");
    Ok(xml_response(x.finish("Tagging")))
}

pub async fn put_tagging(ctx: &Ctx, bucket: &Bucket, body: Incoming) -> Answer {
    let raw = body_of(body).await?;
    let doc = crate::xml::parse(&raw).map_err(|_| malformed())?;
    if doc.name != "Tagging" {
        return Err(malformed());
    }
    let mut pairs = Vec::new();
    for t in doc
        .child("TagSet")
        .ok_or_else(malformed)?
        .children_named("Tag")
    {
        let k = t.text_of(&["Key"]).ok_or_else(malformed)?.to_string();
        let v = t.text_of(&["Value"]).unwrap_or_default().to_string();
        pairs.push((k, v));
    }
    let tags = checked_tags(pairs)?;
    if !bucket.update_record(&ctx.key, |r| r.tags = tags)? {
        return Err(StoreError::no_such_key());
    }
    Ok(Response::builder().body(empty()).expect("response"))
}

/// The tags of `x-cos-tagging` (`k1=v1&k2=v2`, URL-encoded), as PUT Object and Copy take them.
pub fn tagging_header(ctx: &Ctx) -> Result<Option<Vec<(String, String)>>, StoreError> {
    let Some(h) = ctx.header("x-cos-tagging") else {
        return Ok(None);
    };
    let bad = || StoreError::bad_request("InvalidTag", "x-cos-tagging is not k=v&k=v");
    let decode = |s: &str| crate::cos::encode::decode(&s.replace('+', " ")).map_err(|_| bad());
    let mut pairs = Vec::new();
    for part in h.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    checked_tags(pairs).map(Some)
}

/// Tags as COS allows them: at most 10, keys 1 to 128 characters, values up to 256, no key
/// twice.
fn checked_tags(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, StoreError> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(StoreError::bad_request(
                "InvalidTag",
                "tag keys are 1 to 128 characters, values up to 256",
            ));
        }
        if tags.iter().any(|(have, _)| *have == k) {
            return Err(StoreError::bad_request(
                "InvalidTag",
                format!("tag {k:?} is given twice"),
            ));
        }
        tags.push((k, v));
    }
    if tags.len() > MAX_TAGS {
        return Err(StoreError::bad_request(
            "BadRequest",
            format!("an object has at most {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

pub fn delete_tagging(ctx: &Ctx, bucket: &Bucket) -> Answer {
    if !bucket.update_record(&ctx.key, |r| r.tags.clear())? {
        return Err(StoreError::no_such_key());
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .expect("response"))
}

pub fn get_location(region: &str) -> Answer {
    let mut x = XmlOut::new("LocationConstraint", "");
    x.raw(&crate::xml::escape(region));
    Ok(xml_response(x.finish("LocationConstraint")))
}

/// `GET /?versions`: every object as its one version, `null`.
pub fn list_versions(ctx: &Ctx, bucket: &Bucket) -> Answer {
    let max_keys = super::bucket_ops::max_keys(ctx)?;
    let nonempty = |n: &str| ctx.param(n).filter(|v| !v.is_empty()).map(str::to_string);
    let p = ListParams {
        prefix: ctx.param("prefix").unwrap_or_default().to_string(),
        delimiter: nonempty("delimiter"),
        marker: nonempty("key-marker"),
        max_keys,
    };
    let url = ctx.param("encoding-type") == Some("url");
    let enc = |s: &str| if url { encode_path(s) } else { s.to_string() };
    let l = list(bucket, &p);
    let mut x = XmlOut::new("ListVersionsResult", "");
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("Name", &bucket.name)
        .elem("Prefix", enc(&p.prefix))
        .elem("KeyMarker", enc(p.marker.as_deref().unwrap_or_default()))
        .elem(
            "VersionIdMarker",
            ctx.param("version-id-marker").unwrap_or_default(),
        )
        .elem("MaxKeys", max_keys.to_string());
    if let Some(d) = &p.delimiter {
        x.elem("Delimiter", enc(d));
    }
    x.elem("IsTruncated", l.truncated.to_string());
    if let Some(m) = l.next_marker.as_deref().filter(|_| l.truncated) {
        x.elem("NextKeyMarker", enc(m))
            .elem("NextVersionIdMarker", "null");
    }
    super::bucket_ops::common_prefixes(&mut x, &l.prefixes, enc);
    for r in &l.contents {
        x.open("Version")
            .elem("Key", enc(&r.key))
            .elem("VersionId", "null")
            .elem("IsLatest", "true")
            .elem("LastModified", format_iso8601(r.last_modified()))
            .elem("ETag", quoted(&r.etag))
            .elem("Size", r.size.to_string())
            .elem("StorageClass", &r.storage_class);
        owner(&mut x, bucket);
        x.close("Version");
    }
    Ok(xml_response(x.finish("ListVersionsResult")))
}
