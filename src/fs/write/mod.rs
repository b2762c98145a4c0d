//! The write path (`docs/DESIGN.md` "Write path"): streaming uploads for files written from their
//! start, staging files for files modified in place, and the plans that rebuild an object from
//! copied and uploaded parts.
//!
//! - `append`: the tail of a file over an appendable object, sent as APPEND Object;
//! - `cleanup`: aborts of uploads that will never complete, retried in the background;
//! - `ctx`: `WriteCtx`, what every writer of the mount shares;
//! - `headers`: the headers a publish gives the object, and what an upload left on it;
//! - `open_upload`: the upload a streamed overwrite leaves open when it turns staged (pure);
//! - `parts`: part sizes and rebuild plans (pure);
//! - `ranges`: byte-range sets (dirty bytes);
//! - `staged`: a file modified in place and how it is rebuilt;
//! - `stream`: the background multipart upload of a sequentially written file;
//! - `writer`: `FileWriter`, the state of one file open for writing.

pub mod append;
pub mod cleanup;
pub mod ctx;
pub mod headers;
pub mod open_upload;
pub mod parts;
pub mod ranges;
pub mod staged;
pub mod stream;
pub mod writer;

pub use ctx::WriteCtx;
pub use writer::FileWriter;
