//! Fault injection and request statistics for `cosfs serve`.
//!
//! Faults are off by default and can be changed while the server runs (tests flip them between
//! steps; the `/-/faults` admin endpoint does the same for an out-of-process server). Each request
//! draws once: answered 503 SlowDown, 500 InternalError, dropped (mid-body for GET, before the
//! answer otherwise), hung (never answered), or served normally — after the added latency and
//! under the bandwidth cap. Stats count requests by operation name, for tests and benchmarks that
//! assert how many requests a piece of work cost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Added to every request before it is handled.
    pub latency_ms: u64,
    /// Per-stream body bandwidth cap in bytes/s (0 = none), both directions.
    pub bandwidth: u64,
    /// Fraction (0..=1) of requests answered 503 SlowDown.
    pub rate_503: f64,
    /// The next this-many requests (matching `methods`) are answered 503 SlowDown, then the
    /// count runs out: deterministic bursts for tests.
    pub next_503: u64,
    /// Fraction of requests answered 500 InternalError.
    pub rate_500: f64,
    /// Fraction of requests whose connection is dropped (GET: halfway through the body).
    pub drop_rate: f64,
    /// Fraction of requests never answered.
    pub hang_rate: f64,
    /// Fraction of requests carried out whose successful answer is lost (the connection is
    /// cut instead): what a retried request that is not idempotent (APPEND) must cope with.
    pub lose_answer_rate: f64,
    /// Only inject into these methods (e.g. `["PUT"]`); empty = all.
    pub methods: Vec<String>,
    /// Seconds added to the server's clock (simulates client clock skew).
    pub clock_offset_secs: i64,
    /// Answer Upload Part without `x-cos-hash-crc64ecma`, as a COS-compatible server that
    /// does not report part checksums would.
    pub omit_part_crc64: bool,
    /// How long a POST Object restore takes before the archived object can be read (COS
    /// takes minutes to hours; tests want a moment).
    pub restore_delay_ms: u64,
    /// Added to the merge of every Complete Multipart Upload (a big object's merge on COS takes
    /// seconds, and its answer streams keep-alive spaces meanwhile).
    pub complete_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    SlowDown,
    InternalError,
    Drop,
    Hang,
    /// Carry the request out, then cut the connection instead of a successful answer.
    LoseAnswer,
}

#[derive(Debug, Default)]
pub struct Faults(RwLock<FaultConfig>);

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        Faults(RwLock::new(cfg))
    }

    pub fn get(&self) -> FaultConfig {
        self.0.read().unwrap().clone()
    }

    pub fn set(&self, cfg: FaultConfig) {
        *self.0.write().unwrap() = cfg;
    }

    pub fn update(&self, f: impl FnOnce(&mut FaultConfig)) {
        f(&mut self.0.write().unwrap());
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.0.read().unwrap().latency_ms)
    }

    /// Draw the fault for one request.
    pub fn pick(&self, method: &str) -> Injected {
        let mut c = self.0.write().unwrap();
        if !c.methods.is_empty() && !c.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Injected::None;
        }
        if c.next_503 > 0 {
            c.next_503 -= 1;
            return Injected::SlowDown;
        }
        let r: f64 = rand::random();
        let mut acc = 0.0;
        for (rate, what) in [
            (c.rate_503, Injected::SlowDown),
            (c.rate_500, Injected::InternalError),
            (c.drop_rate, Injected::Drop),
            (c.hang_rate, Injected::Hang),
            (c.lose_answer_rate, Injected::LoseAnswer),
        ] {
            acc += rate;
            if r < acc {
                return what;
            }
        }
        Injected::None
    }
}

/// Requests by operation, and body bytes in each direction.
#[derive(Debug, Default)]
pub struct Stats {
    ops: Mutex<BTreeMap<String, u64>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Stats {
    pub fn count(&self, op: &str) {
        *self.ops.lock().unwrap().entry(op.to_string()).or_default() += 1;
    }

    /// Requests of this operation so far (e.g. "GetObject", "HeadObject", "ListObjects").
    pub fn get(&self, op: &str) -> u64 {
        self.ops.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.ops.lock().unwrap().clone()
    }

    pub fn total(&self) -> u64 {
        self.ops.lock().unwrap().values().sum()
    }

    pub fn reset(&self) {
        self.ops.lock().unwrap().clear();
        self.bytes_in.store(0, Ordering::Relaxed);
        self.bytes_out.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_method_filter() {
        let f = Faults::new(FaultConfig {
            rate_503: 1.0,
            methods: vec!["PUT".into()],
            ..Default::default()
        });
        assert_eq!(f.pick("PUT"), Injected::SlowDown);
        assert_eq!(f.pick("GET"), Injected::None);
        f.update(|c| {
            c.rate_503 = 0.0;
            c.methods.clear();
        });
        assert!((0..1000).all(|_| f.pick("GET") == Injected::None));
        f.update(|c| c.rate_500 = 0.5);
        let n = (0..2000)
            .filter(|_| f.pick("GET") == Injected::InternalError)
            .count();
        assert!((800..1200).contains(&n), "{n}");
        f.set(FaultConfig {
            next_503: 2,
            ..Default::default()
        });
        assert_eq!(f.pick("GET"), Injected::SlowDown);
        assert_eq!(f.pick("PUT"), Injected::SlowDown);
        assert_eq!(f.pick("GET"), Injected::None);
    }
}
