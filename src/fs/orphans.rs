//! Files unlinked while open on this mount, kept as a local filesystem keeps them:
//! - the name is gone for this mount at once (lookups answer ENOENT, listings skip it) and the
//!   open file shows `st_nlink` 0;
//! - its open handles keep reading, and writing when open for writing, the old contents until
//!   they close: the object's DELETE waits for the last close of the file on this mount, and a
//!   writer of an unlinked file never publishes it;
//! - other clients see the object until that last close; if cosfs dies before it, the object
//!   stays on COS;
//! - the directory it was in counts as empty for `rmdir` (as on a local filesystem): the
//!   marker goes, and the object goes at the last close;
//! - the deferred DELETE is skipped when the name was taken again meanwhile: by this mount (a
//!   new file under that name), or by anyone (a HEAD shows another ETag);
//! - when this mount puts something new on the key (a file published or renamed there), the
//!   open handles' version is kept on local disk first (`open_rename::keep_orphan_at`), so
//!   they read on; another client's overwrite cannot be foreseen, and then they get EIO for
//!   what they had not read.

use std::collections::HashMap;
use std::sync::Mutex;

/// An object whose name this mount unlinked while the file was open.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub parent: u64,
    pub name: String,
    pub key: String,
    /// The version that was unlinked (`None`: delete whatever is there).
    pub etag: Option<String>,
}

/// Orphans by inode number.
#[derive(Debug, Default)]
pub struct Orphans(Mutex<HashMap<u64, Orphan>>);

impl Orphans {
    pub fn add(&self, ino: u64, o: Orphan) {
        self.0.lock().unwrap().insert(ino, o);
    }

    pub fn contains(&self, ino: u64) -> bool {
        self.0.lock().unwrap().contains_key(&ino)
    }

    /// The orphan whose object is `key`, other than `except`.
    pub fn at_key(&self, key: &str, except: u64) -> Option<u64> {
        let m = self.0.lock().unwrap();
        m.iter()
            .find(|(&ino, o)| ino != except && o.key == key)
            .map(|(&ino, _)| ino)
    }

    /// The keys of orphans below the key prefix `prefix`.
    pub fn keys_under(&self, prefix: &str) -> std::collections::HashSet<String> {
        let m = self.0.lock().unwrap();
        m.values()
            .filter(|o| o.key.starts_with(prefix))
            .map(|o| o.key.clone())
            .collect()
    }

    pub fn take(&self, ino: u64) -> Option<Orphan> {
        self.0.lock().unwrap().remove(&ino)
    }
}
