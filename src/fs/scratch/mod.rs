//! The scratch room: the mount's local files that are not a cache, below both the read and
//! the write path.
//!
//! - `ScratchArea`: the mount's private directory under `--cache-dir` and the one byte budget
//!   (`--cache-dir-size`) of everything in it;
//! - `ScratchFile`: one anonymous file in it. The write path stages files modified in place in
//!   them and keeps the sent parts of an overwrite (`write::stream`); the read path keeps
//!   versions a rename replaced for the handles still reading them (`kept`).

pub mod area;
pub mod kept;

pub use area::{ScratchArea, ScratchFile};
pub use kept::KeptCopy;
