//! The fs core: POSIX semantics over objects (`docs/DESIGN.md` "Mapping objects to files").
//! It knows the object layer, never `fuser`, so it is tested without a mount.
//! `docs/ARCHITECTURE.md` has the rooms below, what each owns, and the path of a read, a
//! write and a listing through them.
//!
//! - `core`: `CosFs`, the facade the FUSE adapter calls. Its state is private; its operations
//!   are its submodules (`open_file`, `files`, `name_ops`, `commit`, `open_rename`, `archive`,
//!   `storage_class`, `xattr_ops`, `recovery`) and its tables of handles and writers (`tables`);
//! - `namespace`: the inode table (numbers, attributes, kernel references, negative entries,
//!   directory times), directories known whole, and the lookup, getattr and LIST that renew
//!   them;
//! - `dir`, `dir_handle`, `dir_meta`: directory streams over listing pages, an open
//!   directory's offsets, and the exact attributes of listed entries by pipelined HEADs;
//! - `reader`, `cache`, `disk_cache`, `block`, `memory`: per-handle reads with prefetch, the
//!   shared block cache, its persistent tier (`--disk-cache`), their block size, and the one
//!   memory budget of the mount;
//! - `scratch`: the local files that are not a cache, below both paths: staging files,
//!   sent-part copies, and versions a rename replaced;
//! - `write`: streaming uploads, staged edits and appends of files being written;
//! - `names`, `caller`, `attr`, `lookup`, `symlink`: paths and keys, the process behind a
//!   request, POSIX attributes from headers and listings, one name's lookup (HEAD and LIST at
//!   once), a symlink's target;
//! - `meta`, `content_type`: headers written back (PUT options, copies onto itself, markers),
//!   the body headers every copy keeps and a new file's Content-Type;
//! - `orphans`, `upload_journal`, `rename_journal`: files unlinked while open, the multipart
//!   uploads under way (for the next mount), directory renames written down on COS;
//! - `timeouts`: operations within `--op-timeout`, and the kernel's immediate retries of one
//!   that timed out;
//! - `error`: the fs error type and the one errno mapping.

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
