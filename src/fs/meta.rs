//! Metadata mapping for writes (`docs/DESIGN.md` "Mapping objects to files"),
//! cosfs/s3fs-compatible.
//!
//! - The POSIX attributes cosfs owns are `x-cos-meta-mode`, `-uid`, `-gid`, the times (`-mtime`,
//!   `-ctime`, `-atime` and their exact `-cosfs-*` forms, `attr.rs`) and a device's `-rdev`;
//!   every other `x-cos-meta-*` header of an object (its xattrs, other tools' metadata) is kept
//!   as it was when the object is rewritten or its metadata changes.
//! - xattrs live in `x-cos-meta-xattr`: URL-encoded JSON mapping each name to its base64 value
//!   (the s3fs format). Only the `user.` namespace is stored; `security.*`/`system.*` reads
//!   answer ENODATA without a request, so `ls -l` never costs a HEAD per file.
//! - All `x-cos-meta-*` headers together must fit COS's 2 KB; a change that would not fit is
//!   E2BIG before anything is sent.
//! - A metadata change on a closed object is one PUT Object - Copy onto itself
//!   (`Replaced`, guarded by the ETag), re-sending every header the object has (its body
//!   headers, `content_type.rs`, its storage class and all `x-cos-meta-*`); objects
//!   over 5 GB take a multipart copy.

use std::collections::BTreeMap;

use base64::Engine;

use crate::cos::encode::{decode, encode_strict};
use crate::object::{
    ByteRange, CopyOptions, CopySource, CosResult, MetadataDirective, ObjectStore, PutOptions,
    Upload, UploadedPart, UserMeta, USER_META_LIMIT,
};

use super::attr::{to_user_meta, PosixAttr};
use super::content_type::BodyHeaders;
use super::error::{FsError, FsResult};
use super::write::parts::MAX_PART;

/// The `x-cos-meta-*` names whose values come from `PosixAttr`.
const OWNED: [&str; 10] = [
    "mode",
    "uid",
    "gid",
    "mtime",
    "ctime",
    "atime",
    "cosfs-mtime",
    "cosfs-ctime",
    "cosfs-atime",
    "rdev",
];
const XATTR_KEY: &str = "xattr";
const META_PREFIX_LEN: usize = "x-cos-meta-".len();

/// Content type of directory markers.
pub const DIR_CONTENT_TYPE: &str = "application/x-directory";

pub type Xattrs = BTreeMap<String, Vec<u8>>;

/// The headers of an object that are not cosfs's POSIX attributes (kept across rewrites).
pub fn foreign_meta(meta: &UserMeta) -> UserMeta {
    meta.iter()
        .filter(|(k, _)| !OWNED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What an object written by cosfs carries: `attr` plus the foreign headers.
pub fn put_options(
    attr: &PosixAttr,
    foreign: &UserMeta,
    body: &BodyHeaders,
    storage_class: Option<&str>,
) -> FsResult<PutOptions> {
    let mut user_meta = foreign.clone();
    user_meta.extend(to_user_meta(attr));
    check_meta_len(&user_meta)?;
    Ok(PutOptions {
        content_type: body.content_type.clone(),
        standard: body.standard.clone(),
        storage_class: storage_class.map(str::to_string),
        user_meta,
    })
}

pub fn check_meta_len(meta: &UserMeta) -> FsResult<()> {
    let len: usize = meta
        .iter()
        .map(|(k, v)| META_PREFIX_LEN + k.len() + v.len())
        .sum();
    if len > USER_META_LIMIT {
        return Err(FsError::Io(libc::E2BIG));
    }
    Ok(())
}

pub fn xattrs(meta: &UserMeta) -> Xattrs {
    let Some(raw) = meta.get(XATTR_KEY) else {
        return Xattrs::new();
    };
    let json = decode(raw).unwrap_or_else(|_| raw.clone());
    let map: BTreeMap<String, String> = serde_json::from_str(&json).unwrap_or_default();
    map.into_iter()
        .filter_map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
            Some((k, bytes))
        })
        .collect()
}

/// Store `x` in `meta` (removing the header when empty).
pub fn set_xattrs(meta: &mut UserMeta, x: &Xattrs) {
    if x.is_empty() {
        meta.remove(XATTR_KEY);
        return;
    }
    let map: BTreeMap<&str, String> = x
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                base64::engine::general_purpose::STANDARD.encode(v),
            )
        })
        .collect();
    let json = serde_json::to_string(&map).expect("a string map serialises");
    meta.insert(XATTR_KEY.into(), encode_strict(&json));
}

/// Whether an xattr name is one cosfs stores (the `user.` namespace).
pub fn stored_namespace(name: &str) -> bool {
    name.starts_with("user.") && name.len() > 5
}

/// Write the directory marker `key` (zero bytes, `application/x-directory`) carrying `attr`
/// and the `foreign` headers; returns its ETag.
pub async fn put_marker<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    attr: &PosixAttr,
    foreign: &UserMeta,
) -> FsResult<String> {
    let opts = put_options(attr, foreign, &BodyHeaders::typed(DIR_CONTENT_TYPE), None)?;
    Ok(store
        .put_object(key, bytes::Bytes::new(), &opts)
        .await?
        .etag)
}

/// Copy `source` (of `size` bytes, at `etag`, in storage class `class`) to `dest` with
/// `directive`; multipart above 5 GB. The copy keeps the class (COS would make it STANDARD).
pub async fn copy_object<S: ObjectStore + ?Sized>(
    store: &S,
    source: &str,
    dest: &str,
    (size, etag, class): (u64, &str, Option<&str>),
    directive: MetadataDirective,
) -> CosResult<String> {
    if size <= MAX_PART {
        let opts = CopyOptions {
            directive,
            storage_class: class.map(str::to_string),
            if_match: Some(etag.to_string()),
            if_none_match: None,
            source_size: Some(size),
        };
        return Ok(store.copy_object(source, dest, &opts).await?.etag);
    }
    let put = match directive {
        MetadataDirective::Replaced(p) => p,
        MetadataDirective::Copy => PutOptions::like(&store.head_object(source).await?),
    };
    let id = store.initiate_multipart(dest, &put).await?;
    let n = size.div_ceil(MAX_PART);
    let each = size.div_ceil(n);
    let result = async {
        let mut parts: Vec<UploadedPart> = Vec::new();
        for i in 0..n {
            let r = ByteRange::new(i * each, ((i + 1) * each).min(size));
            let p = store
                .upload_part_copy(
                    &Upload::new(dest, &id),
                    i as u32 + 1,
                    &CopySource {
                        key: source,
                        range: Some(r),
                        if_match: Some(etag),
                    },
                )
                .await?;
            parts.push(p);
        }
        store
            .complete_multipart(&Upload::new(dest, &id), &parts)
            .await
    }
    .await;
    match result {
        Ok(done) => Ok(done.etag),
        Err(e) => {
            let _ = store.abort_multipart(&Upload::new(dest, &id)).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_round_trip_in_the_s3fs_format() {
        let mut meta = UserMeta::new();
        meta.insert("mode".into(), "33188".into());
        meta.insert("other".into(), "kept".into());
        let mut x = Xattrs::new();
        x.insert("user.tag".into(), b"blue \x00\xff".to_vec());
        set_xattrs(&mut meta, &x);
        let raw = &meta["xattr"];
        assert!(raw.starts_with("%7B%22user.tag%22%3A%22"), "{raw}");
        assert_eq!(xattrs(&meta), x);
        assert_eq!(
            foreign_meta(&meta).len(),
            2,
            "mode is ours, other+xattr are kept"
        );
        set_xattrs(&mut meta, &Xattrs::new());
        assert!(!meta.contains_key("xattr"));
    }

    #[test]
    fn metadata_over_2kb_is_e2big() {
        let mut meta = UserMeta::new();
        meta.insert("xattr".into(), "v".repeat(2000));
        assert!(check_meta_len(&meta).is_ok());
        meta.insert("more".into(), "v".repeat(100));
        assert_eq!(check_meta_len(&meta).unwrap_err().errno(), libc::E2BIG);
        assert!(stored_namespace("user.a") && !stored_namespace("security.selinux"));
    }
}
