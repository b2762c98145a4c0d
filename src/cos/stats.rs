//! Request counters of one client, by kind of COS operation, for `cosfs stats` and the metrics
//! endpoint. Counted once per logical request (retries are counted apart), with the bytes of
//! request bodies sent and of response bodies announced (`Content-Length` of successful
//! answers). Each logical request also ends in an outcome (ok, not found, error) and a latency:
//! from the first attempt to the answer's headers (or the final error), retries included, in
//! the buckets of `LATENCY_BUCKETS`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;

/// The kinds of requests cosfs sends, in the order stats print them.
pub const KINDS: [&str; 15] = [
    "head",
    "get",
    "list",
    "put",
    "append",
    "copy",
    "delete",
    "delete_multiple",
    "initiate",
    "upload_part",
    "upload_part_copy",
    "complete",
    "abort",
    "restore",
    "other",
];

/// How a logical request ended, in the order metrics print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    /// 404: routine for lookups of names that do not exist.
    NotFound = 1,
    Error = 2,
}

pub const OUTCOMES: [&str; 3] = ["ok", "not_found", "error"];

/// Upper bounds of the latency buckets, in seconds (a last bucket, +Inf, takes the rest).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// A latency histogram: counts per bucket (not cumulative; the last is +Inf) and the sum.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A copy of one histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Requests per bucket of `LATENCY_BUCKETS`, then those slower than the last bound.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl Latency {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[derive(Default)]
pub struct RequestStats {
    by_kind: [AtomicU64; KINDS.len()],
    outcomes: [[AtomicU64; OUTCOMES.len()]; KINDS.len()],
    latency: [Histogram; KINDS.len()],
    failed: AtomicU64,
    retried: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// (kind, requests) for every kind with at least one request.
    pub by_kind: Vec<(&'static str, u64)>,
    /// (kind, outcome, requests) for every pair with at least one request that has ended.
    pub outcomes: Vec<(&'static str, &'static str, u64)>,
    /// (kind, latency) for every kind with at least one request that has ended.
    pub latency: Vec<(&'static str, Latency)>,
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
        Method::POST if has("append") => "append",
        Method::POST if has("restore") => "restore",
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

    /// A logical request of `kind` ended, `took` after it started.
    pub fn ended(&self, kind: usize, outcome: Outcome, took: Duration) {
        self.outcomes[kind][outcome as usize].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        let h = &self.latency[kind];
        h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        h.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
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
            outcomes: KINDS
                .iter()
                .zip(&self.outcomes)
                .flat_map(|(k, by)| OUTCOMES.iter().zip(by).map(move |(o, n)| (*k, *o, load(n))))
                .filter(|(_, _, n)| *n > 0)
                .collect(),
            latency: KINDS
                .iter()
                .zip(&self.latency)
                .map(|(k, h)| {
                    let l = Latency {
                        buckets: h.buckets.iter().map(load).collect(),
                        sum_seconds: load(&h.sum_micros) as f64 / 1e6,
                    };
                    (*k, l)
                })
                .filter(|(_, l)| l.count() > 0)
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
        assert_eq!(
            k(Method::POST, true, &["append", "position"], false),
            "append"
        );
        assert_eq!(k(Method::POST, true, &["restore"], false), "restore");
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
        let get = kind_of(&Method::GET, true, &[], false);
        s.ended(get, Outcome::Ok, Duration::from_millis(12));
        s.ended(get, Outcome::NotFound, Duration::from_millis(3));
        s.ended(get, Outcome::Ok, Duration::from_secs(60));
        let snap = s.snapshot();
        assert_eq!(
            snap.outcomes,
            vec![("get", "ok", 2), ("get", "not_found", 1)]
        );
        let (kind, l) = &snap.latency[0];
        assert_eq!(*kind, "get");
        assert_eq!(l.count(), 3);
        assert_eq!(l.buckets[2], 1, "3 ms: up to 5 ms");
        assert_eq!(l.buckets[4], 1, "12 ms: up to 25 ms");
        assert_eq!(l.buckets[13], 1, "60 s: past the last bound");
        assert!((l.sum_seconds - 60.015).abs() < 1e-6);
    }
}
