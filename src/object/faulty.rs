//! `FaultyStore`: any `ObjectStore` with faults and latency injected, and every operation
//! counted, for tests of the fs core (no HTTP needed).
//!
//! Faults are drawn per operation from a seeded generator, so a run replays:
//! - `rate_503`: answered 503 SlowDown (as COS throttling);
//! - `timeout_rate`: no answer: after `timeout_after`, the `CosError::Timeout` the HTTP client
//!   reports when its budget runs out;
//! - `drop_rate`: GET bodies end halfway with a transport error (a cut connection);
//! - `latency`: added before every operation.
//!
//! `only` limits faults to the named operations (e.g. `["CompleteMultipart"]` for a failed
//! Complete); counts are kept for every operation whether faulted or not (requests sent).
//! The wrapper does not retry: the client's retry policy is `CosClient`'s, not the store's.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::error::{CosError, CosResult};
use super::store::{ObjectStore, Operation, StoreLayer};
use super::types::{GetObjectOutput, GetOptions};

/// What to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub rate_503: f64,
    pub timeout_rate: f64,
    pub timeout_after: Duration,
    pub drop_rate: f64,
    pub latency: Duration,
    /// Operations faults apply to (names as counted); empty: all.
    pub only: Vec<&'static str>,
}

enum Injected {
    Throttled,
    TimedOut(Duration),
    DropBody,
}

pub struct FaultyStore<S: ObjectStore + ?Sized> {
    inner: std::sync::Arc<S>,
    faults: Mutex<Faults>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    rng: Mutex<u64>,
}

impl<S: ObjectStore + ?Sized> FaultyStore<S> {
    pub fn new(inner: std::sync::Arc<S>, seed: u64) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(Faults::default()),
            counts: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(seed | 1),
        }
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }

    /// How many times `op` was called.
    pub fn count(&self, op: &str) -> u64 {
        self.counts.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Every operation's count.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn reset_counts(&self) {
        self.counts.lock().unwrap().clear();
    }

    /// A number in [0, 1) from the seeded xorshift.
    fn draw(&self) -> f64 {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Count `op`, wait the latency, and decide its fault.
    async fn enter(&self, op: &'static str) -> Option<Injected> {
        *self.counts.lock().unwrap().entry(op).or_default() += 1;
        let f = self.faults.lock().unwrap().clone();
        if !f.latency.is_zero() {
            tokio::time::sleep(f.latency).await;
        }
        if !f.only.is_empty() && !f.only.contains(&op) {
            return None;
        }
        if self.draw() < f.rate_503 {
            return Some(Injected::Throttled);
        }
        if self.draw() < f.timeout_rate {
            return Some(Injected::TimedOut(f.timeout_after));
        }
        if op == "GetObject" && self.draw() < f.drop_rate {
            return Some(Injected::DropBody);
        }
        None
    }

    /// Fail `op` now if a 503 or a timeout is due; a dropped body is the caller's business.
    async fn gate(&self, op: &'static str) -> CosResult<bool> {
        match self.enter(op).await {
            None => Ok(false),
            Some(Injected::DropBody) => Ok(true),
            Some(Injected::Throttled) => Err(throttled()),
            Some(Injected::TimedOut(d)) => {
                tokio::time::sleep(d).await;
                Err(CosError::Timeout(d))
            }
        }
    }
}

fn throttled() -> CosError {
    CosError::service(
        503,
        "SlowDown",
        "injected fault: please reduce your request rate",
        "",
        "injected",
    )
}

/// Every operation counted and gated in `before`; GET also cuts bodies.
#[async_trait]
impl<S: ObjectStore + ?Sized> StoreLayer for FaultyStore<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn before(&self, op: Operation) -> CosResult<()> {
        self.gate(op.name()).await.map(|_| ())
    }

    async fn get_object(&self, key: &str, opts: &GetOptions) -> CosResult<GetObjectOutput> {
        let drop_body = self.gate(Operation::GetObject.name()).await?;
        let mut out = self.inner.get_object(key, opts).await?;
        if drop_body {
            // Half the body, then the connection is cut.
            let keep = out.content_length / 2;
            let body = out.body;
            out.body = futures_util::stream::unfold((body, 0u64, false), move |state| async move {
                let (mut body, sent, done) = state;
                if done {
                    return None;
                }
                if sent >= keep {
                    let cut = CosError::Transport("injected fault: body cut off".into());
                    return Some((Err(cut), (body, sent, true)));
                }
                match body.next().await? {
                    Err(e) => Some((Err(e), (body, sent, true))),
                    Ok(chunk) => {
                        let take = ((keep - sent) as usize).min(chunk.len());
                        Some((Ok(chunk.slice(..take)), (body, sent + take as u64, false)))
                    }
                }
            })
            .boxed();
        }
        Ok(out)
    }
}
