//! Object and multipart operations on a `Bucket`, in COS terms and without HTTP: what a request
//! may do and what it answers. `cosfs serve` parses requests into these calls and renders their
//! results; `LocalStore` calls them directly, so both give the same answers.
//!
//! - Keys: at most 850 bytes (`KeyTooLong`); user metadata at most 2 KB together.
//! - Conditions: If-Match before If-Unmodified-Since (412), If-None-Match before
//!   If-Modified-Since (304), dates compared in whole seconds as HTTP dates are.
//! - Ranges: one `bytes=` range; several, or an inverted one, mean the whole object; a start past
//!   the end is 416.
//! - Copy: 5 GB at most in one copy; onto itself only with `Replaced` metadata; the storage class
//!   reverts to STANDARD unless given again; the ETag and CRC-64 are the source's.
//! - Append: an object first written by APPEND Object is appendable; `position` must be its
//!   length (409 PositionNotEqualToLength), a normal object refuses (409 ObjectNotAppendable),
//!   5 GB in all; appendable objects cannot be copied (400 InvalidObjectType; COS documents the
//!   refusal, not its code). A PUT, copy or Complete over one makes a normal object.
//! - Archive: GET and copy of an ARCHIVE/DEEP_ARCHIVE object need a restored copy (403
//!   InvalidObjectState); a restore is readable after the server's delay, for its days.
//! - Multipart: part numbers 1..10000; Complete takes parts ascending, contiguous from 1, with
//!   their ETags, every part but the last at least 1 MB; the ETag is the MD5 of the parts' MD5s
//!   plus `-N`, the CRC-64 is combined from the parts'.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use http::StatusCode;
use md5::{Digest, Md5};

use super::blob::copy_range;
use super::storage::{
    now_ms, Bucket, NewObjectHeaders, ObjectRecord, PartRecord, RestoreRecord, RestoreState,
    StandardHeaders, StoredBlob, UploadRecord,
};
use super::StoreError;
use crate::cos::integrity::crc64_combine;
use crate::object::STORAGE_CLASSES;

/// Largest single PUT / part / single copy: 5 GB.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// COS caps the `x-cos-meta-*` headers of an object at 2 KB together.
const MAX_USER_META: usize = 2048;
/// COS object keys are at most 850 bytes.
const MAX_KEY_LEN: usize = 850;
/// Smallest part that may be followed by another (1 MB).
pub const MIN_PART_SIZE: u64 = 1024 * 1024;
const MAX_PARTS: u32 = 10_000;

pub fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::bad_request(
            "KeyTooLong",
            format!(
                "object key is {} bytes; the limit is {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// The key of an object being written: within COS's limit, and not empty.
pub fn check_new_key(key: &str) -> Result<(), StoreError> {
    check_key(key)?;
    if key.is_empty() {
        return Err(StoreError::bad_request(
            "InvalidArgument",
            "empty object key",
        ));
    }
    Ok(())
}

/// The headers of a new object, checked: a known storage class (STANDARD if none), user
/// metadata within 2 KB (counted as `x-cos-meta-<name>` plus value, as COS does).
pub fn object_headers(
    content_type: Option<String>,
    standard: StandardHeaders,
    storage_class: Option<&str>,
    user_meta: BTreeMap<String, String>,
) -> Result<NewObjectHeaders, StoreError> {
    let storage_class = match storage_class {
        Some(c) => {
            let c = c.to_ascii_uppercase();
            if !STORAGE_CLASSES.contains(&c.as_str()) {
                return Err(StoreError::bad_request(
                    "InvalidArgument",
                    format!("unknown storage class {c}"),
                ));
            }
            c
        }
        None => "STANDARD".into(),
    };
    let meta_len: usize = user_meta
        .iter()
        .map(|(k, v)| "x-cos-meta-".len() + k.len() + v.len())
        .sum();
    if meta_len > MAX_USER_META {
        return Err(StoreError::bad_request(
            "MetadataTooLarge",
            format!("user metadata is {meta_len} bytes; the limit is {MAX_USER_META}"),
        ));
    }
    Ok(NewObjectHeaders {
        content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
        standard,
        acl: None,
        tags: Vec::new(),
        storage_class,
        user_meta,
    })
}

/// The conditional headers of a GET/HEAD (or the `x-cos-copy-source-If-*` of a copy).
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<SystemTime>,
    pub if_unmodified_since: Option<SystemTime>,
}

fn etag_matches(cond: &str, etag: &str) -> bool {
    cond.split(',')
        .map(|c| c.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|c| c == "*" || c == etag)
}

/// Err(412), or Ok(true) when the answer is 304 Not Modified.
pub fn check_conditions(c: &Conditions, rec: &ObjectRecord) -> Result<bool, StoreError> {
    // HTTP dates have whole seconds.
    let secs = |t: SystemTime| httpdate::HttpDate::from(t);
    let modified = secs(rec.last_modified());
    if let Some(m) = &c.if_match {
        if !etag_matches(m, &rec.etag) {
            return Err(StoreError::precondition());
        }
    } else if let Some(t) = c.if_unmodified_since {
        if secs(t) < modified {
            return Err(StoreError::precondition());
        }
    }
    if let Some(m) = &c.if_none_match {
        if etag_matches(m, &rec.etag) {
            return Ok(true);
        }
    } else if let Some(t) = c.if_modified_since {
        if modified <= secs(t) {
            return Ok(true);
        }
    }
    Ok(false)
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

/// The byte range a `Range` header asks of an object of `size` (None: all of it).
pub fn resolve_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, StoreError> {
    match header {
        Some(v) => parse_range(v, size).map_err(|_| {
            StoreError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            )
        }),
        None => Ok(None),
    }
}

/// The current version of `key`, and with `body` its data file opened (a concurrent overwrite
/// may delete the file between lookup and open: look again).
pub fn find_object(
    bucket: &Bucket,
    key: &str,
    body: bool,
) -> Result<(ObjectRecord, Option<File>), StoreError> {
    let mut tries = 0;
    loop {
        let rec = bucket.get(key).ok_or_else(StoreError::no_such_key)?;
        if !body {
            return Ok((rec, None));
        }
        match File::open(bucket.data_path(&rec.data)) {
            Ok(f) => return Ok((rec, Some(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// PUT Object: `blob` (received under `data/`) becomes `key`'s version; ETag = its MD5.
pub fn put(
    bucket: &Bucket,
    key: &str,
    blob: &StoredBlob,
    headers: NewObjectHeaders,
) -> Result<ObjectRecord, StoreError> {
    let received = Received::new(bucket, blob);
    check_new_key(key)?;
    let rec = bucket.commit(key, blob, hex::encode(blob.md5), headers)?;
    received.keep();
    Ok(rec)
}

/// A blob received under `data/` for a write: its data file is removed when the guard drops
/// unless `keep` says it became an object's or a part's data, so no failure path leaks it.
struct Received<'a> {
    bucket: &'a Bucket,
    data: &'a str,
    kept: bool,
}

impl<'a> Received<'a> {
    fn new(bucket: &'a Bucket, blob: &'a StoredBlob) -> Self {
        Received {
            bucket,
            data: &blob.data,
            kept: false,
        }
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Received<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.bucket.remove_data(self.data);
        }
    }
}

/// The source of a copy, its `x-cos-copy-source-If-*` conditions checked (a 304 is a 412 here).
/// Appendable objects cannot be copied; archived ones only once restored.
pub fn copy_source(bucket: &Bucket, key: &str, c: &Conditions) -> Result<ObjectRecord, StoreError> {
    let rec = bucket.get(key).ok_or_else(StoreError::no_such_key)?;
    if check_conditions(c, &rec)? {
        return Err(StoreError::precondition());
    }
    if rec.appendable {
        return Err(StoreError::new(
            StatusCode::BAD_REQUEST,
            "InvalidObjectType",
            "appendable objects cannot be the source of a copy",
        ));
    }
    check_readable(&rec)?;
    Ok(rec)
}

/// GET and copy of an archived object need a restored copy (403 InvalidObjectState).
pub fn check_readable(rec: &ObjectRecord) -> Result<(), StoreError> {
    if rec.readable(now_ms()) {
        return Ok(());
    }
    Err(StoreError::new(
        StatusCode::FORBIDDEN,
        "InvalidObjectState",
        format!(
            "The operation is not valid for the object's storage class {}: restore it first (POST Object restore)",
            rec.storage_class
        ),
    ))
}

/// APPEND Object: `blob` (received under `data/`) goes after the `position` bytes of `key`,
/// which must be that long and appendable; a missing key is created appendable (position 0)
/// with `headers`. The bytes are written into the object's data file past its length, then the
/// record moves its length: a crash in between leaves the shorter object.
pub fn append(
    bucket: &Bucket,
    key: &str,
    position: u64,
    blob: &StoredBlob,
    headers: NewObjectHeaders,
) -> Result<ObjectRecord, StoreError> {
    // The blob becomes a new object's data; appended to an existing one, it is copied.
    let received = Received::new(bucket, blob);
    check_new_key(key)?;
    let _one_at_a_time = bucket.append_lock.lock().unwrap();
    let mismatch = |len: u64| {
        StoreError::new(
            StatusCode::CONFLICT,
            "PositionNotEqualToLength",
            format!("position {position} is not the object's length {len}"),
        )
    };
    let Some(prev) = bucket.get(key) else {
        if position != 0 {
            return Err(mismatch(0));
        }
        let rec = ObjectRecord {
            appendable: true,
            ..ObjectRecord::new(key, blob, hex::encode(blob.md5), headers)
        };
        if !bucket.replace_record(None, &rec)? {
            return Err(mismatch(bucket.get(key).map_or(0, |r| r.size)));
        }
        received.keep();
        return Ok(rec);
    };
    if !prev.appendable {
        return Err(StoreError::new(
            StatusCode::CONFLICT,
            "ObjectNotAppendable",
            "the object was not written by APPEND Object",
        ));
    }
    if prev.size != position {
        return Err(mismatch(prev.size));
    }
    if prev.size + blob.size > MAX_SINGLE_PUT {
        return Err(StoreError::bad_request(
            "EntityTooLarge",
            "an appendable object may not exceed 5 GB",
        ));
    }
    super::blob::append_blocking(bucket, &prev.data, prev.size, &blob.data)?;
    let mut md5 = Md5::new();
    md5.update(prev.etag.as_bytes());
    md5.update(blob.md5);
    let next = ObjectRecord {
        size: prev.size + blob.size,
        etag: hex::encode(md5.finalize()),
        crc64: crc64_combine(prev.crc64, blob.crc64, blob.size),
        last_modified_ms: now_ms(),
        ..prev.clone()
    };
    if !bucket.replace_record(Some(&prev), &next)? {
        return Err(mismatch(bucket.get(key).map_or(0, |r| r.size)));
    }
    Ok(next)
}

/// POST Object restore of `key` for `days` at `tier`, readable after `delay_ms`: 202 when a
/// restore starts, 200 when a restored copy's days are renewed, 409 while one runs.
pub fn restore(
    bucket: &Bucket,
    key: &str,
    days: u32,
    tier: &str,
    delay_ms: u64,
) -> Result<StatusCode, StoreError> {
    let prev = bucket.get(key).ok_or_else(StoreError::no_such_key)?;
    let now = now_ms();
    let (ready_ms, status) = match prev.restore_state(now) {
        RestoreState::NotArchived => {
            return Err(StoreError::new(
                StatusCode::FORBIDDEN,
                "InvalidObjectState",
                format!(
                    "restore is only for ARCHIVE and DEEP_ARCHIVE objects; this one is {}",
                    prev.storage_class
                ),
            ))
        }
        RestoreState::Ongoing => {
            return Err(StoreError::new(
                StatusCode::CONFLICT,
                "RestoreAlreadyInProgress",
                "Object restore is already in progress",
            ))
        }
        // A restored copy's days are renewed from now.
        RestoreState::Restored { .. } => (now, StatusCode::OK),
        RestoreState::Archived => (now + delay_ms, StatusCode::ACCEPTED),
    };
    let next = ObjectRecord {
        restore: Some(RestoreRecord {
            days,
            tier: tier.to_string(),
            ready_ms,
        }),
        ..prev.clone()
    };
    if !bucket.replace_record(Some(&prev), &next)? {
        return Err(StoreError::new(
            StatusCode::CONFLICT,
            "OperationAborted",
            "the object changed during the restore request; try again",
        ));
    }
    Ok(status)
}

/// The `x-cos-restore` header of `rec` now, if a restore runs or its copy is readable.
pub fn restore_header(rec: &ObjectRecord) -> Option<String> {
    match rec.restore_state(now_ms()) {
        RestoreState::Ongoing => Some("ongoing-request=\"true\"".into()),
        RestoreState::Restored { expiry } => Some(format!(
            "ongoing-request=\"false\", expiry-date=\"{}\"",
            httpdate::fmt_http_date(expiry)
        )),
        RestoreState::NotArchived | RestoreState::Archived => None,
    }
}

/// The `Days` and `Tier` of a RestoreRequest document.
pub fn parse_restore_request(body: &[u8]) -> Result<(u32, String), StoreError> {
    let bad = |m: &str| StoreError::bad_request("MalformedXML", m.to_string());
    let root = crate::xml::parse(body).map_err(|_| bad("RestoreRequest is not XML"))?;
    if root.name != "RestoreRequest" {
        return Err(bad("expected a RestoreRequest document"));
    }
    let days: u32 = root
        .text_of(&["Days"])
        .and_then(|d| d.trim().parse().ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| bad("RestoreRequest needs Days, a whole number of at least 1"))?;
    let tier = root
        .child("CASJobParameters")
        .and_then(|j| j.text_of(&["Tier"]))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| "Standard".into());
    if !["Expedited", "Standard", "Bulk"].contains(&tier.as_str()) {
        return Err(bad("Tier must be Expedited, Standard or Bulk"));
    }
    Ok((days, tier))
}

/// What a copy does with the source's headers.
#[derive(Debug, Clone)]
pub enum Directive {
    Copy,
    Replaced(Box<NewObjectHeaders>),
}

/// PUT Object - Copy of `src` (from `src_bucket`) onto `key`; `storage_class` as sent.
pub async fn copy(
    bucket: &Arc<Bucket>,
    key: &str,
    src_bucket: &Arc<Bucket>,
    src: &ObjectRecord,
    directive: Directive,
    storage_class: Option<&str>,
) -> Result<ObjectRecord, StoreError> {
    check_key(key)?;
    if src.size > MAX_SINGLE_PUT {
        return Err(StoreError::bad_request(
            "InvalidRequest",
            "objects over 5 GB must be copied with Upload Part - Copy",
        ));
    }
    let same_bucket = Arc::ptr_eq(src_bucket, bucket);
    let mut headers = match directive {
        Directive::Copy if same_bucket && src.key == key => {
            return Err(StoreError::bad_request(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata.",
            ))
        }
        Directive::Copy => NewObjectHeaders {
            content_type: src.content_type.clone(),
            standard: src.standard.clone(),
            acl: None,
            tags: Vec::new(),
            storage_class: String::new(),
            user_meta: src.user_meta.clone(),
        },
        Directive::Replaced(h) => *h,
    };
    // Tags go with a copy (COS's `x-cos-tagging-directive` defaults to Copy); the ACL is the
    // one sent, else `default`.
    headers.tags = src.tags.clone();
    // Unless sent again, the storage class reverts to STANDARD (`docs/COS-NOTES.md` "Copy").
    headers.storage_class = storage_class
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_else(|| "STANDARD".into());
    let data = if same_bucket {
        bucket.clone_data(&src.data)?
    } else {
        let f = File::open(src_bucket.data_path(&src.data))?;
        copy_range(bucket.clone(), f, 0, src.size).await?.data
    };
    let blob = StoredBlob {
        data,
        size: src.size,
        md5: [0; 16],
        crc64: src.crc64,
    };
    Ok(bucket.commit(key, &blob, src.etag.clone(), headers)?)
}

/// DELETE Multiple: each key's outcome (`None`: deleted or absent, `Some(message)`: failed).
pub fn delete_many(bucket: &Bucket, keys: &[String]) -> Vec<(String, Option<String>)> {
    keys.iter()
        .map(|k| (k.clone(), bucket.delete(k).err().map(|e| e.to_string())))
        .collect()
}

pub fn initiate(
    bucket: &Bucket,
    key: &str,
    headers: NewObjectHeaders,
) -> Result<UploadRecord, StoreError> {
    check_key(key)?;
    Ok(bucket.create_upload(key, headers)?)
}

/// The upload `id` of `key`.
pub fn upload_of(bucket: &Bucket, key: &str, id: &str) -> Result<UploadRecord, StoreError> {
    bucket
        .upload(id)
        .filter(|u| u.key == key)
        .ok_or_else(StoreError::no_such_upload)
}

pub fn part_number(n: Option<u32>) -> Result<u32, StoreError> {
    n.filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| StoreError::bad_request("InvalidArgument", "partNumber must be 1..10000"))
}

/// `bytes=a-b` (inclusive) within an object of `size` (`x-cos-copy-source-range`).
pub fn parse_copy_range(v: &str, size: u64) -> Result<(u64, u64), StoreError> {
    let bad = || {
        StoreError::bad_request(
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

/// The body of an Upload Part - Copy: `range` (None: all) of `src` in `src_bucket`.
pub async fn part_copy_body(
    bucket: &Arc<Bucket>,
    src_bucket: &Bucket,
    src: &ObjectRecord,
    range: Option<(u64, u64)>,
) -> Result<StoredBlob, StoreError> {
    let (start, end) = range.unwrap_or((0, src.size));
    if end - start > MAX_SINGLE_PUT {
        return Err(StoreError::bad_request(
            "EntityTooLarge",
            "part copy over 5 GB",
        ));
    }
    let f = File::open(src_bucket.data_path(&src.data))?;
    Ok(copy_range(bucket.clone(), f, start, end - start).await?)
}

/// Upload Part (or Part - Copy): `blob` becomes part `n` of `up`; ETag = its MD5.
pub fn put_part(
    bucket: &Bucket,
    up: &UploadRecord,
    n: u32,
    blob: &StoredBlob,
) -> Result<PartRecord, StoreError> {
    let part = PartRecord {
        part_number: n,
        etag: hex::encode(blob.md5),
        size: blob.size,
        crc64: blob.crc64,
        last_modified_ms: now_ms(),
        data: blob.data.clone(),
    };
    let received = Received::new(bucket, blob);
    bucket.put_part(&up.upload_id, part.clone())?;
    received.keep();
    Ok(part)
}

/// A Complete whose part list passed COS's checks: what the object will be.
#[derive(Debug, Clone)]
pub struct CompletePlan {
    pub upload: UploadRecord,
    pub parts: Vec<PartRecord>,
    pub etag: String,
    pub crc64: u64,
}

/// Check the part list of a Complete (`(part number, ETag)` as sent).
pub fn plan_complete(
    bucket: &Bucket,
    up: &UploadRecord,
    wanted: &[(u32, String)],
) -> Result<CompletePlan, StoreError> {
    if wanted.is_empty() {
        return Err(StoreError::bad_request(
            "MalformedXML",
            "The XML you provided was not well-formed",
        ));
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(StoreError::bad_request(
            "InvalidPartOrder",
            "The list of parts was not in ascending order.",
        ));
    }
    let stored = bucket.parts(&up.upload_id)?;
    let invalid = |n: u32| {
        StoreError::bad_request(
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
        return Err(StoreError::bad_request(
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
    Ok(CompletePlan {
        upload: up.clone(),
        etag: format!("{}-{}", hex::encode(md5s.finalize()), parts.len()),
        crc64: crc,
        parts,
    })
}

/// Carry out a checked Complete: the parts are concatenated into the object (blocking I/O).
pub fn finish_complete(bucket: &Bucket, plan: &CompletePlan) -> std::io::Result<ObjectRecord> {
    let sources: Vec<_> = plan
        .parts
        .iter()
        .map(|p| bucket.data_path(&p.data))
        .collect();
    let (data, size) = super::blob::concat_blocking(bucket, &sources)?;
    let blob = StoredBlob {
        data,
        size,
        md5: [0; 16],
        crc64: plan.crc64,
    };
    let up = &plan.upload;
    let rec = bucket.commit(&up.key, &blob, plan.etag.clone(), up.headers.clone())?;
    bucket.remove_upload(&up.upload_id, false)?;
    Ok(rec)
}

pub fn abort(bucket: &Bucket, up: &UploadRecord) -> Result<(), StoreError> {
    match bucket.remove_upload(&up.upload_id, false) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::no_such_upload()),
        Err(e) => Err(e.into()),
    }
}

/// List Parts: up to `max` parts after `marker`, and whether more follow.
pub fn list_parts(
    bucket: &Bucket,
    up: &UploadRecord,
    marker: u32,
    max: usize,
) -> Result<(Vec<PartRecord>, bool), StoreError> {
    let parts = bucket.parts(&up.upload_id)?;
    let mut listed: Vec<PartRecord> = parts.range(marker + 1..).map(|(_, p)| p.clone()).collect();
    let truncated = listed.len() > max;
    listed.truncate(max);
    Ok((listed, truncated))
}

/// List Multipart Uploads: up to `max` uploads under `prefix` after the markers, and whether
/// more follow.
pub fn list_uploads(
    bucket: &Bucket,
    prefix: &str,
    key_marker: &str,
    id_marker: &str,
    max: usize,
) -> (Vec<UploadRecord>, bool) {
    let mut all: Vec<_> = bucket
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
    let truncated = all.len() > max;
    all.truncate(max);
    (all, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(bucket: &Bucket, body: &[u8]) -> StoredBlob {
        let name = super::super::storage::random_id();
        std::fs::write(bucket.tmp_dir().join(&name), body).unwrap();
        bucket.adopt_tmp(&name).unwrap();
        StoredBlob {
            data: name,
            size: body.len() as u64,
            md5: Md5::digest(body).into(),
            crc64: crate::cos::integrity::crc64(body),
        }
    }

    #[test]
    fn appends_stop_at_5_gb() {
        let dir = tempfile::tempdir().unwrap();
        let storage = super::super::storage::Storage::open(dir.path()).unwrap();
        let b = storage.create_bucket("b-1250000000").unwrap();
        let rec = append(&b, "log", 0, &blob(&b, b"abc"), Default::default()).unwrap();
        // Pretend it holds all but one byte of the cap (the data file is sparse past it).
        let near = ObjectRecord {
            size: MAX_SINGLE_PUT - 1,
            ..rec.clone()
        };
        assert!(b.replace_record(Some(&rec), &near).unwrap());
        let append_at_the_end = |body: &[u8]| {
            let body = blob(&b, body);
            append(&b, "log", MAX_SINGLE_PUT - 1, &body, Default::default())
        };
        let over = append_at_the_end(b"xy");
        assert_eq!(over.unwrap_err().code, "EntityTooLarge");
        let fits = append_at_the_end(b"z");
        assert_eq!(fits.unwrap().size, MAX_SINGLE_PUT);
    }

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
}
