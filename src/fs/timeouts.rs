//! Operations that just timed out, answered again at once. The kernel follows some failures
//! with an immediate retry: a cached name whose revalidation failed is looked up again, and a
//! readahead page whose read failed is read again synchronously. Answering those retries from
//! here keeps a `stat`, `open` or `read` against a hung server at one `--op-timeout` instead of
//! two. Entries live for `ECHO`: the kernel's retry comes within microseconds, a person's or a
//! program's retry after the server recovered comes later and gets a real answer.
//!
//! - `TimedOutNames`: lookups by (directory, name), capped;
//! - `Echo`: one flag with a time, for a read handle;
//! - `within`: an operation run within `--op-timeout`, else ETIMEDOUT.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::{FsError, FsResult};

/// Run a read-only operation within `limit`, else fail it with ETIMEDOUT. Only for
/// operations that are safe to abandon at any await: they wait on requests and the block
/// cache, and record what they learned only once it has arrived.
pub async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = FsResult<T>>,
) -> FsResult<T> {
    tokio::time::timeout(limit, op)
        .await
        .unwrap_or(Err(FsError::TimedOut(limit)))
}

/// How long a timed-out operation is answered from memory.
const ECHO: Duration = Duration::from_millis(250);

/// When one thing last timed out.
#[derive(Default)]
pub struct Echo(Mutex<Option<Instant>>);

impl Echo {
    pub fn record(&self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }

    /// Whether it timed out less than `ECHO` ago.
    pub fn recent(&self) -> bool {
        self.0.lock().unwrap().is_some_and(|t| t.elapsed() < ECHO)
    }
}
/// Most names remembered; when full, the set is cleared.
const CAP: usize = 4096;

#[derive(Default)]
pub struct TimedOutNames(Mutex<HashMap<(u64, String), Instant>>);

impl TimedOutNames {
    /// The lookup of `name` in `parent` just timed out.
    pub fn record(&self, parent: u64, name: &str) {
        let mut m = self.0.lock().unwrap();
        if m.len() >= CAP {
            m.clear();
        }
        m.insert((parent, name.to_string()), Instant::now());
    }

    /// Whether the lookup of `name` in `parent` timed out less than `ECHO` ago.
    pub fn recent(&self, parent: u64, name: &str) -> bool {
        let mut m = self.0.lock().unwrap();
        let key = (parent, name.to_string());
        match m.get(&key) {
            Some(at) if at.elapsed() < ECHO => true,
            Some(_) => {
                m.remove(&key);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_briefly() {
        let t = TimedOutNames::default();
        assert!(!t.recent(1, "a"));
        t.record(1, "a");
        assert!(t.recent(1, "a"));
        assert!(!t.recent(1, "b"));
        assert!(!t.recent(2, "a"));
        let e = Echo::default();
        assert!(!e.recent());
        e.record();
        assert!(e.recent());
    }
}
