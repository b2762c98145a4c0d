//! Request counters of one client, by kind of COS operation, for `cosfs stats`.
//! Counted once per logical request (retries are counted apart), with the bytes of request
//! bodies sent and of response bodies announced (`Content-Length` of successful answers).

use std::sync::atomic::{AtomicU64, Ordering};

use http::Method;

/// The kinds of requests cosfs sends, in the order stats print them.
pub const KINDS: [&str; 13] = [
    "head",
    "get",
    "list",
    "put",
    "copy",
    "delete",
    "delete_multiple",
    "initiate",
    "upload_part",
    "upload_part_copy",
    "complete",
    "abort",
    "other",
];

#[derive(Default)]
pub struct RequestStats {
    by_kind: [AtomicU64; KINDS.len()],
    failed: AtomicU64,
    retried: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// (kind, requests) for every kind with at least one request.
    pub by_kind: Vec<(&'static str, u64)>,
    pub failed: u64,
    pub retried: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// The kind of a request from its method, whether it names a key, its query parameters and
/// whether it copies.
pub fn kind_of(method: &Method, has_key: bool, params: &[(String, String)], copy: bool) -> usize {
    let has = |p: &str| params.iter().any(|(k, _)| k == p);
    let name = match *method {
        Method::HEAD => "head",
        Method::GET if has_key => "get",
        Method::GET => "list",
        Method::PUT if has("partNumber") && copy => "upload_part_copy",
        Method::PUT if has("partNumber") => "upload_part",
        Method::PUT if copy => "copy",
        Method::PUT => "put",
        Method::POST if has("uploads") => "initiate",
        Method::POST if has("uploadId") => "complete",
        Method::POST if has("delete") => "delete_multiple",
        Method::DELETE if has("uploadId") => "abort",
        Method::DELETE => "delete",
        _ => "other",
    };
    KINDS
        .iter()
        .position(|k| *k == name)
        .unwrap_or(KINDS.len() - 1)
}

impl RequestStats {
    pub fn request(&self, kind: usize, body_len: usize) {
        self.by_kind[kind].fetch_add(1, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(body_len as u64, Ordering::Relaxed);
    }

    pub fn retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self, bytes: u64) {
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RequestCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            by_kind: KINDS
                .iter()
                .zip(&self.by_kind)
                .map(|(k, n)| (*k, load(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            failed: load(&self.failed),
            retried: load(&self.retried),
            bytes_sent: load(&self.bytes_sent),
            bytes_received: load(&self.bytes_received),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), String::new()))
            .collect()
    }

    #[test]
    fn kinds() {
        let k = |m: Method, key: bool, params: &[&str], copy: bool| {
            KINDS[kind_of(&m, key, &p(params), copy)]
        };
        assert_eq!(k(Method::GET, false, &["prefix"], false), "list");
        assert_eq!(k(Method::GET, true, &[], false), "get");
        assert_eq!(
            k(Method::PUT, true, &["partNumber", "uploadId"], true),
            "upload_part_copy"
        );
        assert_eq!(
            k(Method::PUT, true, &["partNumber", "uploadId"], false),
            "upload_part"
        );
        assert_eq!(k(Method::PUT, true, &[], true), "copy");
        assert_eq!(k(Method::POST, true, &["uploads"], false), "initiate");
        assert_eq!(k(Method::POST, true, &["uploadId"], false), "complete");
        assert_eq!(
            k(Method::POST, false, &["delete"], false),
            "delete_multiple"
        );
        assert_eq!(k(Method::DELETE, true, &["uploadId"], false), "abort");
        let s = RequestStats::default();
        s.request(kind_of(&Method::PUT, true, &[], false), 10);
        s.request(kind_of(&Method::PUT, true, &[], false), 5);
        assert_eq!(s.snapshot().by_kind, vec![("put", 2)]);
        assert_eq!(s.snapshot().bytes_sent, 15);
    }
}
