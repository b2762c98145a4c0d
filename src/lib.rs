//! cosfs: mount a Tencent Cloud COS bucket as a filesystem.
//!
//! Layers (each knows only those below it; `docs/ARCHITECTURE.md` draws them):
//! - `cli` parses the command line and runs a mount or a server; `fuse` is the thin adapter
//!   from the kernel's requests to `fs`;
//! - `fs` is the filesystem: POSIX semantics over objects, testable without a mount;
//! - `object` is the object layer `fs` is written against (the `ObjectStore` trait, its types
//!   and errors, and the wrappers);
//! - `cos` (the HTTP client of COS) and `local` (buckets on a local directory) answer it;
//!   `server` is `cosfs serve`, COS's XML API over `local`;
//! - `xml`, `timefmt`, `private_dir` and `metrics` are shared helpers.

pub mod cli;
pub mod cos;
pub mod fs;
pub mod fuse;
pub mod local;
pub mod metrics;
pub mod object;
pub mod private_dir;
pub mod server;
pub mod timefmt;
pub mod xml;
