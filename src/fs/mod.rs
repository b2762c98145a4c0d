//! The fs core: POSIX semantics over objects (`docs/DESIGN.md` "Mapping objects to files").
//! It knows the object client, never `fuser`, so it is tested without a mount.
//!
//! - `names`: paths and keys, which listing names are representable;
//! - `caller`: the process behind a request (commit points are per process);
//! - `attr`: POSIX attributes from `x-cos-meta-*` headers and listings, with defaults;
//! - `lookup`: one name in a directory (HEAD and LIST concurrently);
//! - `error`: the fs error type and the one errno mapping;
//! - `inode`: inode numbers, kernel references, attribute freshness;
//! - `known_dirs`, `relist`: directories whose every name this mount knows (a miss there needs
//!   no request), and the one LIST that renews that knowledge;
//! - `dir`, `dir_handle`: directory streams over listing pages, and an open directory's
//!   listings and offsets;
//! - `dir_meta`: the exact attributes of listed entries, fetched by pipelined HEADs;
//! - `memory`: the one memory budget of the mount;
//! - `block`: the block size both cache tiers use;
//! - `cache`, `reader`: the shared block cache and per-handle reads with prefetch;
//! - `disk_cache`: the persistent second tier under the block cache (`--disk-cache`);
//! - `scratch`: the local files that are not a cache, below both paths: staging files of
//!   files modified in place, sent-part copies, and versions a rename replaced (`scratch::kept`);
//! - `symlink`: reading a symlink object's target;
//! - `meta`: `x-cos-meta-*` headers written back (PUT options, copies onto itself, markers);
//! - `content_type`: the body headers every copy keeps, and the Content-Type of a new file;
//! - `archive`, `storage_class`: archived objects and their restore, and the storage class as
//!   the xattr `user.cos.storage_class`;
//! - `write`: streaming uploads, staging files and rebuild plans of files being written;
//! - `files`, `namespace`, `xattr_ops`: the file, namespace and xattr operations of `CosFs`;
//! - `orphans`: files unlinked while open (their DELETE waits for the last close);
//! - `open_rename`: what a rename does to handles open on the renamed or the replaced file;
//! - `commit`: when a written file reaches COS (flush, fsync, release) and shutdown;
//! - `timeouts`: names whose lookup just timed out (the kernel's immediate second lookup);
//! - `upload_journal`: the multipart uploads under way, kept locally for the next mount;
//! - `rename_journal`: directory renames written down on COS, finished or undone after a crash;
//! - `recovery`: what a mount cleans up at its start (uploads a killed mount left, renames a
//!   crash interrupted);
//! - `core`: `CosFs`, the operations the FUSE adapter calls.

pub mod attr;
pub mod block;
pub mod cache;
pub mod caller;
pub mod content_type;
pub mod core;
pub mod dir;
pub mod dir_handle;
pub mod dir_meta;
pub mod disk_cache;
pub mod error;
pub mod lookup;
pub mod memory;
pub mod meta;
pub mod names;
pub mod namespace;
pub mod orphans;
pub mod reader;
pub mod rename_journal;
pub mod scratch;
pub mod symlink;
pub mod timeouts;
pub mod upload_journal;
pub mod write;

pub use self::core::files;
pub use self::core::{CosFs, Entry, FsConfig, FsStats, ListedEntry, Opened};
