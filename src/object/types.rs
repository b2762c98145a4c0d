//! What the object operations take and give: metadata, listings, byte ranges, the options of
//! PUT, copy and multipart, their results, and COS's limits on them.
//!
//! All keys are decoded UTF-8 object keys without a leading `/`. ETags are unquoted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::error::CosResult;

/// User metadata: `x-cos-meta-<name>` headers, names lowercased and without the prefix.
pub type UserMeta = BTreeMap<String, String>;

/// What HEAD/GET tell about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub content_type: Option<String>,
    /// Cache-Control, Content-Encoding and the other standard headers stored with it.
    pub standard: StandardHeaders,
    pub storage_class: Option<String>,
    /// Whole-object CRC-64 (`x-cos-hash-crc64ecma`), when COS sent it.
    pub crc64: Option<u64>,
    pub user_meta: UserMeta,
    /// Written by APPEND Object (`x-cos-object-type: appendable`).
    pub appendable: bool,
    /// The `x-cos-restore` header of an archived object being or having been restored.
    pub restore: Option<String>,
}

impl ObjectMeta {
    /// ARCHIVE or DEEP_ARCHIVE: a GET needs a restored copy.
    pub fn is_archived(&self) -> bool {
        self.storage_class.as_deref().is_some_and(is_archive_class)
    }

    /// Where the restore of this object stands.
    pub fn restore_status(&self) -> RestoreStatus {
        if !self.is_archived() {
            return RestoreStatus::NotArchived;
        }
        let Some(h) = &self.restore else {
            return RestoreStatus::Archived;
        };
        // ASCII lowercasing keeps byte offsets, so positions found in `lower` index `h`.
        let lower = h.to_ascii_lowercase();
        if lower.contains("ongoing-request=\"true\"") {
            return RestoreStatus::Ongoing;
        }
        let expiry = lower.find("expiry-date=").map(|at| {
            let rest = h[at + "expiry-date=".len()..].trim_start_matches('"');
            rest.split('"').next().unwrap_or(rest).to_string()
        });
        RestoreStatus::Restored { expiry }
    }
}

/// Where an object's restore stands, from HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreStatus {
    NotArchived,
    /// Archived, no restored copy: GET fails with InvalidObjectState.
    Archived,
    Ongoing,
    /// Readable; the copy expires then (as COS wrote the date).
    Restored {
        expiry: Option<String>,
    },
}

/// ARCHIVE and DEEP_ARCHIVE must be restored before a GET.
pub fn is_archive_class(class: &str) -> bool {
    class.eq_ignore_ascii_case("ARCHIVE") || class.eq_ignore_ascii_case("DEEP_ARCHIVE")
}

/// What APPEND Object answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub etag: String,
    /// The object's length now (`x-cos-next-append-position`).
    pub next_position: u64,
    /// The whole object's CRC-64, when COS sent it.
    pub crc64: Option<u64>,
}

/// How fast a restore should run (`CASJobParameters/Tier`).
pub const RESTORE_TIERS: &[&str] = &["Expedited", "Standard", "Bulk"];

/// One object of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub marker: Option<String>,
    /// 1..=1000; 0 means the COS default (1000).
    pub max_keys: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts (NextMarker, or the last key/prefix when COS omitted it).
    pub next_marker: Option<String>,
}

/// Byte range `start..end` (end exclusive; `None` = to the end of the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    pub fn new(start: u64, end: u64) -> Self {
        ByteRange {
            start,
            end: Some(end),
        }
    }

    /// The `Range` header value (`bytes=a-b`, inclusive end).
    pub fn header(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{}", self.start, end.saturating_sub(1)),
            None => format!("bytes={}-", self.start),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    pub range: Option<ByteRange>,
    /// Fail with PreconditionFailed unless the object still has this ETag.
    pub if_match: Option<String>,
    /// Answer NotModified if the object has this ETag.
    pub if_none_match: Option<String>,
}

/// A GET in progress: metadata plus the body as a stream of chunks.
pub struct GetObjectOutput {
    pub meta: ObjectMeta,
    /// Length of this response's body (the range length for a ranged GET).
    pub content_length: u64,
    pub body: BoxStream<'static, CosResult<Bytes>>,
}

impl GetObjectOutput {
    /// Read the whole body into memory.
    pub async fn collect(self) -> CosResult<Bytes> {
        use futures_util::StreamExt;
        let mut body = self.body;
        let mut out = bytes::BytesMut::with_capacity(self.content_length as usize);
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}

/// Headers set when an object is created (PUT or Initiate Multipart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub standard: StandardHeaders,
    pub storage_class: Option<String>,
    pub user_meta: UserMeta,
}

impl PutOptions {
    /// Every header `m` has (type, standard headers, class, user metadata): what a `Replaced`
    /// copy of it must send to keep them.
    pub fn like(m: &ObjectMeta) -> Self {
        PutOptions {
            content_type: m.content_type.clone(),
            standard: m.standard.clone(),
            storage_class: m.storage_class.clone(),
            user_meta: m.user_meta.clone(),
        }
    }
}

/// The standard HTTP headers COS stores with an object besides Content-Type, and returns on
/// HEAD and GET. A `Replaced` copy keeps none that it does not send again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StandardHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl StandardHeaders {
    /// Their names, as COS spells them on the wire.
    pub const NAMES: [&'static str; 5] = [
        "Cache-Control",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Expires",
    ];

    fn slot(&mut self, i: usize) -> &mut Option<String> {
        match i {
            0 => &mut self.cache_control,
            1 => &mut self.content_disposition,
            2 => &mut self.content_encoding,
            3 => &mut self.content_language,
            _ => &mut self.expires,
        }
    }

    fn value(&self, i: usize) -> Option<&str> {
        match i {
            0 => self.cache_control.as_deref(),
            1 => self.content_disposition.as_deref(),
            2 => self.content_encoding.as_deref(),
            3 => self.content_language.as_deref(),
            _ => self.expires.as_deref(),
        }
    }

    /// Each header `lookup` finds by its name (lower-cased, as `http` names are).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut h = StandardHeaders::default();
        for (i, name) in Self::NAMES.iter().enumerate() {
            *h.slot(i) = lookup(&name.to_ascii_lowercase());
        }
        h
    }

    /// Set the header `name` (any case); false if it is not one of them.
    pub fn set(&mut self, name: &str, value: String) -> bool {
        match Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                *self.slot(i) = Some(value);
                true
            }
            None => false,
        }
    }

    /// The headers present, with their wire names.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        Self::NAMES
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((*n, self.value(i)?)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub etag: String,
    pub crc64: Option<u64>,
}

/// How PUT Object - Copy treats metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's headers (`x-cos-metadata-directive: Copy`).
    Copy,
    /// Replace them with these (required when source = destination).
    Replaced(PutOptions),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub directive: MetadataDirective,
    /// `x-cos-storage-class` of the copy when the metadata is copied (with `Replaced`, the
    /// class in its `PutOptions` counts). COS makes a copy STANDARD unless a class is sent.
    pub storage_class: Option<String>,
    /// `x-cos-copy-source-If-Match`.
    pub if_match: Option<String>,
    /// `x-cos-copy-source-If-None-Match`.
    pub if_none_match: Option<String>,
    /// The size of the source, when known: the copy's time budget grows with it (else it
    /// gets the long budget of a request of unknown length).
    pub source_size: Option<u64>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            directive: MetadataDirective::Copy,
            storage_class: None,
            if_match: None,
            if_none_match: None,
            source_size: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub crc64: Option<u64>,
}

/// One key DELETE Multiple could not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// A part as Upload Part / Upload Part - Copy reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub etag: String,
    pub crc64: Option<u64>,
    /// Bytes in the part, when known (needed to derive the object CRC from part CRCs).
    pub size: Option<u64>,
}

/// A part as List Parts reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartsPage {
    pub parts: Vec<PartInfo>,
    pub is_truncated: bool,
    pub next_part_number_marker: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
}

/// One multipart upload: the key it writes and the id Initiate gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload<'a> {
    pub key: &'a str,
    pub upload_id: &'a str,
}

impl<'a> Upload<'a> {
    pub fn new(key: &'a str, upload_id: &'a str) -> Self {
        Upload { key, upload_id }
    }
}

/// APPEND Object's arguments: `body` goes after the first `position` bytes; `opts` are the
/// headers of the object a first append (position 0) creates.
#[derive(Debug, Clone)]
pub struct Append<'a> {
    pub position: u64,
    pub body: Bytes,
    pub opts: &'a PutOptions,
}

/// The source of Upload Part - Copy: an object of the same bucket, all of it or `range`,
/// and only while its ETag is `if_match` when that is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySource<'a> {
    pub key: &'a str,
    pub range: Option<ByteRange>,
    pub if_match: Option<&'a str>,
}

/// One page of List Multipart Uploads: the uploads under `prefix`, after the markers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsRequest {
    pub prefix: String,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
}

impl ListUploadsRequest {
    /// The first page of the uploads under `prefix`.
    pub fn under(prefix: &str) -> Self {
        ListUploadsRequest {
            prefix: prefix.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsPage {
    pub uploads: Vec<UploadInfo>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteResult {
    pub etag: String,
    pub crc64: Option<u64>,
}

/// Most keys DELETE Multiple takes at once.
pub const MAX_DELETE_KEYS: usize = 1000;
/// The header prefix of user metadata.
pub const META_PREFIX: &str = "x-cos-meta-";
/// COS caps the `x-cos-meta-*` headers of an object at 2 KB together.
pub const USER_META_LIMIT: usize = 2048;

/// The checks every `ObjectStore` makes of new-object headers before sending anything (so an
/// in-process store refuses what the HTTP client would not send).
pub fn check_put_options(opts: &PutOptions) -> CosResult<()> {
    let meta_len: usize = opts
        .user_meta
        .iter()
        .map(|(k, v)| META_PREFIX.len() + k.len() + v.len())
        .sum();
    if meta_len > USER_META_LIMIT {
        return Err(super::CosError::InvalidRequest(format!(
            "user metadata is {meta_len} bytes; COS allows {USER_META_LIMIT}"
        )));
    }
    Ok(())
}

/// COS's storage classes (as `x-cos-storage-class` spells them).
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "MAZ_STANDARD",
    "MAZ_STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING",
];

/// The check of a DELETE Multiple's keys: `Ok(false)` when there is nothing to send.
pub fn check_delete_keys(keys: &[String]) -> CosResult<bool> {
    if keys.len() > MAX_DELETE_KEYS {
        return Err(super::CosError::InvalidRequest(format!(
            "DELETE Multiple takes at most {MAX_DELETE_KEYS} keys, got {}",
            keys.len()
        )));
    }
    Ok(!keys.is_empty())
}
