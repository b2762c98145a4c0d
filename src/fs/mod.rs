//! The fs core: POSIX semantics over objects (DESIGN.md "Mapping objects to files"). It knows
//! the object client, never `fuser`, so it is tested without a mount.
//!
//! - `names`: paths and keys, which listing names are representable;
//! - `attr`: POSIX attributes from `x-cos-meta-*` headers and listings, with defaults.

pub mod attr;
pub mod names;
