//! Process-wide counters of the FUSE adapter for the metrics endpoint: requests by operation,
//! and errors by operation and errno. Process-wide because a process serves one mount and the
//! adapter's error paths are free functions; everything else the endpoint shows is read from
//! the layer that owns it (the COS client's request stats, the fs core's activity).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The FUSE operations cosfs answers, in the order metrics print them.
pub const FUSE_OPS: [&str; 30] = [
    "lookup",
    "forget",
    "getattr",
    "readlink",
    "open",
    "read",
    "release",
    "create",
    "mknod",
    "write",
    "flush",
    "fsync",
    "setattr",
    "fallocate",
    "mkdir",
    "symlink",
    "unlink",
    "rmdir",
    "rename",
    "link",
    "setxattr",
    "removexattr",
    "getxattr",
    "listxattr",
    "opendir",
    "readdir",
    "readdirplus",
    "releasedir",
    "fsyncdir",
    "statfs",
];

static OPS: [AtomicU64; FUSE_OPS.len()] = [const { AtomicU64::new(0) }; FUSE_OPS.len()];
static ERRORS: Mutex<BTreeMap<(&'static str, i32), u64>> = Mutex::new(BTreeMap::new());

/// A FUSE request of operation `op` arrived.
pub fn fuse_op(op: &'static str) {
    if let Some(i) = FUSE_OPS.iter().position(|o| *o == op) {
        OPS[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// A FUSE request of operation `op` was answered with `errno`.
pub fn fuse_error(op: &'static str, errno: i32) {
    *ERRORS.lock().unwrap().entry((op, errno)).or_default() += 1;
}

/// FUSE requests so far.
pub struct FuseCounts {
    /// (operation, requests) for every operation.
    pub ops: Vec<(&'static str, u64)>,
    /// (operation, errno, errors) for every pair seen.
    pub errors: Vec<(&'static str, i32, u64)>,
}

pub fn fuse_counts() -> FuseCounts {
    let ops = FUSE_OPS
        .iter()
        .zip(&OPS)
        .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
        .collect();
    let errors = ERRORS
        .lock()
        .unwrap()
        .iter()
        .map(|(&(o, e), &n)| (o, e, n))
        .collect();
    FuseCounts { ops, errors }
}
