//! Buckets on a local directory, with COS's semantics: the storage behind `cosfs serve` and
//! behind `cosfs mount --local-store` (`LocalStore`, an `ObjectStore` in the same process).
//!
//! - `storage`: the on-disk layout, crash-safe commits, the in-memory index;
//! - `blob`: bodies written to and read from `data/`;
//! - `listing`: GET Bucket (prefix, delimiter, marker, max-keys);
//! - `ops`: every object and multipart operation in COS terms (conditions, ranges, copy rules,
//!   part rules, ETags, CRC-64), shared by the HTTP server and `LocalStore`;
//! - `error`: COS's error answers (status, code, message);
//! - `object_store`: `LocalStore`, the object layer's `ObjectStore` over a bucket here.

pub mod blob;
pub mod error;
pub mod listing;
pub mod object_store;
pub mod ops;
pub mod storage;

pub use error::StoreError;
pub use object_store::LocalStore;
