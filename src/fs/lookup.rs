//! Finding one name in a directory: HEAD `key` and LIST `key/` (max-keys 1) run concurrently.
//!
//! - Anything under `key/` makes `name` a directory: a marker object `key/` gives its
//!   attributes (one more HEAD, marker directories only), otherwise it is implicit.
//! - When both `key` and `key/...` exist, the directory wins and the file is hidden (logged once
//!   per lookup at info level: the bucket holds both, which a filesystem cannot show).
//! - Neither: ENOENT. Names that cannot exist (over 255 bytes, `.`/`..`, a key over COS's 850
//!   bytes) fail before any request.

use crate::object::{ListRequest, ObjectStore};

use super::attr::{self, AttrDefaults, PosixAttr};
use super::error::{FsError, FsResult};
use super::names::{check_key, check_name, child_dir_prefix, child_key};

/// Look up `name` in the directory with key prefix `dir_prefix`.
pub async fn lookup<S: ObjectStore + ?Sized>(
    store: &S,
    dir_prefix: &str,
    name: &str,
    defaults: &AttrDefaults,
) -> FsResult<PosixAttr> {
    check_name(name)?;
    let key = child_key(dir_prefix, name);
    check_key(&key)?;
    let prefix = child_dir_prefix(dir_prefix, name);
    let list_req = ListRequest {
        prefix: prefix.clone(),
        max_keys: 1,
        ..Default::default()
    };
    let (head, list) = tokio::join!(store.head_object(&key), store.list_objects(&list_req));
    let page = list?;
    let file = match head {
        Ok(meta) => Some(meta),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let first = page
        .entries
        .first()
        .map(|e| (e.key.clone(), e.last_modified))
        .or_else(|| page.common_prefixes.first().map(|p| (p.clone(), None)));
    if let Some((first_key, first_mtime)) = first {
        if file.is_some() {
            tracing::info!(
                key,
                "both a file and a directory have this name; showing the directory"
            );
        }
        if first_key == prefix {
            match store.head_object(&prefix).await {
                Ok(meta) => return Ok(attr::from_object(&meta, true, defaults)),
                // Deleted between the LIST and the HEAD: still implicit if more keys remain.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mtime = first_mtime.unwrap_or_else(std::time::SystemTime::now);
        return Ok(attr::implicit_dir(defaults, mtime));
    }
    match file {
        Some(meta) => Ok(attr::from_object(&meta, false, defaults)),
        None => Err(FsError::NotFound),
    }
}
