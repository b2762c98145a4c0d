//! Symlink targets: a symlink is an object whose body is its target (`S_IFLNK` in
//! `x-cos-meta-mode`). A target longer than PATH_MAX cannot be handed to the kernel: reading
//! one is ENAMETOOLONG, logged with its key (listings still show the link).
//!
//! Used by `readlink` (`core/mod.rs`) and by the listing stage, which fetches the targets of
//! listed links with their attributes (`dir_meta.rs`).

use bytes::Bytes;

use crate::object::{GetOptions, ObjectStore};

use super::error::{FsError, FsResult};

/// Longest symlink target (PATH_MAX less its NUL): what the kernel can take from readlink.
const MAX_LINK: u64 = 4095;

/// The target of the symlink object `key` of `size` bytes, without a GET when it is too long.
pub async fn read_target<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    size: u64,
) -> FsResult<Bytes> {
    if size > MAX_LINK {
        return Err(link_too_long(key));
    }
    read_link(store, key).await
}

/// A symlink object whose target is longer than PATH_MAX: ENAMETOOLONG, logged with its key.
fn link_too_long(key: &str) -> FsError {
    tracing::warn!(
        key,
        "a symlink object whose target is longer than PATH_MAX: it cannot be read as a link"
    );
    FsError::NameTooLong
}

/// The target of the symlink object `key` (its body, at most PATH_MAX bytes; a longer one is
/// ENAMETOOLONG, logged with its key).
pub async fn read_link<S: ObjectStore + ?Sized>(store: &S, key: &str) -> FsResult<Bytes> {
    let opts = GetOptions {
        range: Some(crate::object::ByteRange::new(0, MAX_LINK + 1)),
        ..Default::default()
    };
    match store.get_object(key, &opts).await {
        Ok(o) => {
            let target = o.collect().await?;
            if target.len() as u64 > MAX_LINK {
                return Err(link_too_long(key));
            }
            Ok(target)
        }
        // A zero-byte object has no range to serve.
        Err(e) if e.kind() == Some(crate::object::ErrorKind::InvalidRange) => Ok(Bytes::new()),
        Err(e) => Err(e.into()),
    }
}
