//! Turning COS responses (headers and XML bodies) into `store` types. Pure functions, so every
//! quirk in `docs/COS-NOTES.md` "XML" is unit-tested without a server.

use std::time::SystemTime;

use http::HeaderMap;

use super::encode::decode;
use crate::object::*;
use crate::object::{CosError, CosResult};
use crate::timefmt::parse_iso8601;
use crate::xml::{self, unquote_etag, Element};

pub use crate::object::META_PREFIX;

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub fn request_id(h: &HeaderMap) -> String {
    header(h, "x-cos-request-id")
        .unwrap_or_default()
        .to_string()
}

pub fn crc64_header(h: &HeaderMap) -> Option<u64> {
    header(h, "x-cos-hash-crc64ecma").and_then(|v| v.trim().parse().ok())
}

pub fn http_date(h: &HeaderMap, name: &str) -> Option<SystemTime> {
    header(h, name).and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Object metadata from HEAD/GET headers. For a 206, `size` is the total from Content-Range.
pub fn object_meta(h: &HeaderMap) -> ObjectMeta {
    let content_length = header(h, "content-length").and_then(|v| v.parse::<u64>().ok());
    let total = header(h, "content-range")
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, t)| t.trim().parse::<u64>().ok());
    let user_meta = h
        .iter()
        .filter_map(|(name, value)| {
            let n = name.as_str().strip_prefix(META_PREFIX)?;
            Some((n.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    ObjectMeta {
        size: total.or(content_length).unwrap_or(0),
        etag: header(h, "etag").map(unquote_etag).unwrap_or_default(),
        last_modified: http_date(h, "last-modified"),
        content_type: header(h, "content-type").map(str::to_string),
        standard: StandardHeaders::from_lookup(|n| header(h, n).map(str::to_string)),
        storage_class: header(h, "x-cos-storage-class").map(|s| s.to_ascii_uppercase()),
        crc64: crc64_header(h),
        user_meta,
        appendable: header(h, "x-cos-object-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("appendable")),
        restore: header(h, "x-cos-restore").map(str::to_string),
    }
}

fn parse_doc(body: &[u8]) -> CosResult<Element> {
    xml::parse(body).map_err(|e| CosError::InvalidResponse(e.to_string()))
}

fn expect_root(body: &[u8], name: &str) -> CosResult<Element> {
    let root = parse_doc(body)?;
    if root.name != name {
        return Err(CosError::InvalidResponse(format!(
            "expected <{name}>, got <{}>",
            root.name
        )));
    }
    Ok(root)
}

fn decoded(text: &str, url_encoded: bool) -> CosResult<String> {
    if url_encoded {
        decode(text).map_err(|e| CosError::InvalidResponse(format!("{e} in {text:?}")))
    } else {
        Ok(text.to_string())
    }
}

fn truthy(el: &Element, name: &str) -> bool {
    el.text_of(&[name])
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("true"))
}

/// GET Bucket. `url_encoded`: we asked for `encoding-type=url`, so names are percent-decoded.
pub fn list_page(body: &[u8], url_encoded: bool) -> CosResult<ListPage> {
    let root = expect_root(body, "ListBucketResult")?;
    let mut page = ListPage {
        is_truncated: truthy(&root, "IsTruncated"),
        ..Default::default()
    };
    for c in root.children_named("Contents") {
        let key = decoded(c.text_of(&["Key"]).unwrap_or_default(), url_encoded)?;
        page.entries.push(ListEntry {
            key,
            size: c
                .text_of(&["Size"])
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            etag: unquote_etag(c.text_of(&["ETag"]).unwrap_or_default()),
            last_modified: c.text_of(&["LastModified"]).and_then(parse_iso8601),
            storage_class: c.text_of(&["StorageClass"]).map(|s| s.to_ascii_uppercase()),
        });
    }
    for p in root.children_named("CommonPrefixes") {
        if let Some(prefix) = p.text_of(&["Prefix"]) {
            page.common_prefixes.push(decoded(prefix, url_encoded)?);
        }
    }
    if page.is_truncated {
        page.next_marker = match root.text_of(&["NextMarker"]).filter(|s| !s.is_empty()) {
            Some(m) => Some(decoded(m, url_encoded)?),
            // COS omits NextMarker without a delimiter: continue after the last name returned.
            None => page
                .entries
                .last()
                .map(|e| e.key.clone())
                .into_iter()
                .chain(page.common_prefixes.last().cloned())
                .max(),
        };
    }
    Ok(page)
}

pub fn initiate_upload_id(body: &[u8]) -> CosResult<String> {
    let root = expect_root(body, "InitiateMultipartUploadResult")?;
    root.text_of(&["UploadId"])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| CosError::InvalidResponse("no UploadId".into()))
}

/// CopyObjectResult / CopyPartResult: ETag (mandatory) and LastModified.
pub fn copy_result(body: &[u8]) -> CosResult<(String, Option<SystemTime>)> {
    let root = parse_doc(body)?;
    let etag = root
        .text_of(&["ETag"])
        .map(unquote_etag)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| CosError::InvalidResponse(format!("<{}> without ETag", root.name)))?;
    Ok((
        etag,
        root.text_of(&["LastModified"]).and_then(parse_iso8601),
    ))
}

pub fn complete_etag(body: &[u8]) -> CosResult<String> {
    let root = expect_root(body, "CompleteMultipartUploadResult")?;
    root.text_of(&["ETag"])
        .map(unquote_etag)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| CosError::InvalidResponse("Complete result without ETag".into()))
}

pub fn delete_failures(body: &[u8]) -> CosResult<Vec<DeleteFailure>> {
    let root = expect_root(body, "DeleteResult")?;
    Ok(root
        .children_named("Error")
        .map(|e| DeleteFailure {
            key: e.text_of(&["Key"]).unwrap_or_default().to_string(),
            code: e.text_of(&["Code"]).unwrap_or_default().to_string(),
            message: e.text_of(&["Message"]).unwrap_or_default().to_string(),
        })
        .collect())
}

pub fn list_parts(body: &[u8]) -> CosResult<ListPartsPage> {
    let root = expect_root(body, "ListPartsResult")?;
    let parts = root
        .children_named("Part")
        .map(|p| PartInfo {
            part_number: p
                .text_of(&["PartNumber"])
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            etag: unquote_etag(p.text_of(&["ETag"]).unwrap_or_default()),
            size: p
                .text_of(&["Size"])
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            last_modified: p.text_of(&["LastModified"]).and_then(parse_iso8601),
        })
        .collect();
    Ok(ListPartsPage {
        parts,
        is_truncated: truthy(&root, "IsTruncated"),
        next_part_number_marker: root
            .text_of(&["NextPartNumberMarker"])
            .and_then(|s| s.trim().parse().ok()),
    })
}

pub fn list_uploads(body: &[u8], url_encoded: bool) -> CosResult<ListUploadsPage> {
    let root = expect_root(body, "ListMultipartUploadsResult")?;
    let mut uploads = Vec::new();
    for u in root.children_named("Upload") {
        uploads.push(UploadInfo {
            key: decoded(u.text_of(&["Key"]).unwrap_or_default(), url_encoded)?,
            upload_id: u.text_of(&["UploadId"]).unwrap_or_default().to_string(),
            initiated: u.text_of(&["Initiated"]).and_then(parse_iso8601),
        });
    }
    let next_key_marker = match root.text_of(&["NextKeyMarker"]).filter(|s| !s.is_empty()) {
        Some(k) => Some(decoded(k, url_encoded)?),
        None => None,
    };
    Ok(ListUploadsPage {
        uploads,
        is_truncated: truthy(&root, "IsTruncated"),
        next_key_marker,
        next_upload_id_marker: root
            .text_of(&["NextUploadIdMarker"])
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_decodes_names_and_tolerates_quirks() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://www.qcloud.com/">
  <Name>b-1</Name><Encoding-Type>url</Encoding-Type>
  <CommonPrefixes><Prefix>dir%20a/</Prefix></CommonPrefixes>
  <Contents><Key>a%2Bb%20c%E5%AD%90</Key><LastModified>2019-05-16T06:45:51.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>13</Size><Owner><ID>1</ID></Owner><StorageClass>standard_ia</StorageClass></Contents>
  <IsTruncated>true</IsTruncated><NextMarker>a%2Bb%20c%E5%AD%90</NextMarker><Extra/>
</ListBucketResult>"#;
        let p = list_page(body, true).unwrap();
        assert_eq!(p.entries[0].key, "a+b c子");
        assert_eq!(p.entries[0].etag, "abc");
        assert_eq!(p.entries[0].size, 13);
        assert_eq!(p.entries[0].storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(p.entries[0].last_modified.is_some());
        assert_eq!(p.common_prefixes, vec!["dir a/".to_string()]);
        assert!(p.is_truncated);
        assert_eq!(p.next_marker.as_deref(), Some("a+b c子"));
    }

    #[test]
    fn listing_without_next_marker_continues_after_last_name() {
        let body = b"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>\
            <Contents><Key>c</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>b/</Prefix>\
            </CommonPrefixes><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert_eq!(
            list_page(body, true).unwrap().next_marker.as_deref(),
            Some("c")
        );
        let body = b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(list_page(body, true).unwrap().next_marker, None);
    }

    #[test]
    fn complete_needs_an_etag() {
        let ok = b"\n\n  <CompleteMultipartUploadResult xmlns=\"x\"><ETag>\"e-3\"</ETag></CompleteMultipartUploadResult>";
        assert_eq!(complete_etag(ok).unwrap(), "e-3");
        let missing =
            b"<CompleteMultipartUploadResult><Key>k</Key></CompleteMultipartUploadResult>";
        assert!(complete_etag(missing).is_err());
    }

    #[test]
    fn object_meta_from_headers() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "10".parse().unwrap());
        h.insert("content-range", "bytes 5-14/100".parse().unwrap());
        h.insert("etag", "\"d41d\"".parse().unwrap());
        h.insert("x-cos-meta-mode", "33188".parse().unwrap());
        h.insert("x-cos-hash-crc64ecma", "123".parse().unwrap());
        h.insert(
            "last-modified",
            "Thu, 16 May 2019 06:45:51 GMT".parse().unwrap(),
        );
        let m = object_meta(&h);
        assert_eq!(m.size, 100);
        assert_eq!(m.etag, "d41d");
        assert_eq!(m.crc64, Some(123));
        assert_eq!(m.user_meta.get("mode").map(String::as_str), Some("33188"));
        assert!(m.last_modified.is_some());
    }
}
