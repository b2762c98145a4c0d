//! The fs core: POSIX semantics over objects (DESIGN.md "Mapping objects to files"). It knows
//! the object client, never `fuser`, so it is tested without a mount.
//!
//! - `names`: paths and keys, which listing names are representable;
//! - `attr`: POSIX attributes from `x-cos-meta-*` headers and listings, with defaults;
//! - `lookup`: one name in a directory (HEAD and LIST concurrently);
//! - `error`: the fs error type and the one errno mapping.

pub mod attr;
pub mod error;
pub mod lookup;
pub mod names;
