//! cosfs: mount a Tencent Cloud COS bucket as a filesystem.
//!
//! Layers (each knows only those below it): `cos` is the object client, `server` a local
//! COS-compatible server for tests and try-outs; `xml` and `timefmt` are shared wire helpers.

pub mod cli;
pub mod cos;
pub mod fs;
pub mod fuse;
pub mod metrics;
pub mod private_dir;
pub mod server;
pub mod store;
pub mod timefmt;
pub mod xml;
