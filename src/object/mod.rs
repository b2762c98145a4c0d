//! The object layer: what cosfs asks of a bucket, independent of how it is answered.
//!
//! - `types`: what the operations take and give (metadata, listings, options, results, limits);
//! - `error`: what they fail with (`CosError`, `ServiceError`, `ErrorKind`), and which failures
//!   may be retried;
//! - `store`: the `ObjectStore` trait, and `StoreLayer` for wrappers that change a few
//!   operations and pass the rest through;
//! - `deferred_deletes`: a layer that queues DELETEs and sends them in batches, keeping the
//!   view exact (the mount's store);
//! - `faulty` (tests, `test-doubles` feature): a layer injecting faults and latency, counting
//!   every operation.
//!
//! The stores that answer are beside this module, not in it: `crate::cos::CosClient` speaks
//! COS's XML API over HTTP, and `crate::local::LocalStore` keeps buckets on a local directory.
//! Both depend on this module; it depends on neither.

pub mod deferred_deletes;
pub mod error;
#[cfg(any(test, feature = "test-doubles"))]
pub mod faulty;
pub mod store;
pub mod types;

pub use deferred_deletes::DeferredDeletes;
pub use error::{CosError, CosResult, ErrorKind, ServiceError};
pub use store::{ObjectStore, Operation, StoreLayer};
pub use types::*;
