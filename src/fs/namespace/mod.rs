//! The namespace: what this mount knows of names and inodes, and the one place that changes
//! it. It owns the inode table (`inode`: numbers, attributes, kernel references, negative
//! entries, directory times), the directories whose every name is known (`known_dirs`), and
//! the requests that renew that knowledge: a lookup (HEAD and LIST at once, `fs::lookup`), a
//! getattr past the TTL, and the one LIST that knows a small directory again (`relist`).
//!
//! - Every change is a method of `InodeTable` named for the transition (`upsert`,
//!   `referenced`, `forget`, `begin_writing`, `end_writing`, `mark_unlinked`, ...); no caller
//!   gets a mutable inode.
//! - The table's lock is taken only through `table()`, and its guard cannot be held across
//!   an await: it is not `Send`, and every operation of the fs core runs in a spawned task,
//!   so such code does not compile. The lock is a leaf: the fs core takes its maps (open
//!   files, writers, directory handles) before it and never while holding it.
//! - It also counts the kernel's open handles of each inode by how the kernel reads them, plain
//!   or passthrough (`io_mode`), since that decides which inode a new version gets.
//! - What only the fs core knows comes in as arguments: the names of files open for writing
//!   in a directory (`OpenHere`), which count as present when a LIST renews the directory.

mod inode;
mod io_mode;
mod known_dirs;
mod relist;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::object::{DeferredDeletes, ObjectStore};

use super::attr::{self, AttrDefaults, FileKind, PosixAttr};
use super::error::{FsError, FsResult};
use super::lookup::lookup;
use super::names::check_name;
use super::timeouts::{within, TimedOutNames};

pub use inode::{key_for, Inode, InodeTable, ROOT_INO};
pub use io_mode::{Backing, HandleIo, Pinned};

/// An inode and its attributes, as replied to the kernel.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ino: u64,
    pub attr: PosixAttr,
}

/// One readdir entry; `offset` is where the next readdir resumes after it.
#[derive(Debug, Clone)]
pub struct ListedEntry {
    pub ino: u64,
    pub offset: u64,
    pub name: String,
    pub attr: PosixAttr,
}

/// The names of the files open for writing in a directory (by its inode): they are present
/// whatever a LIST says.
pub type OpenHere<'a> = &'a (dyn Fn(u64) -> Vec<String> + Sync);

/// How the namespace trusts what it knows.
#[derive(Debug, Clone, Copy)]
pub struct Trust {
    /// How long attributes, negative entries and complete directories are trusted.
    pub ttl: Duration,
    /// How long a lookup or getattr may take before ETIMEDOUT.
    pub op_timeout: Duration,
    pub defaults: AttrDefaults,
}

pub struct Namespace<S: ObjectStore + ?Sized> {
    table: Arc<Mutex<InodeTable>>,
    store: Arc<DeferredDeletes<S>>,
    ttl: Duration,
    op_timeout: Duration,
    defaults: AttrDefaults,
    /// Names whose lookup just timed out (the kernel's immediate second lookup).
    timed_out: TimedOutNames,
}

impl<S: ObjectStore + ?Sized> Namespace<S> {
    /// The namespace of a mount of `prefix`, whose root has `root` until its marker says
    /// otherwise.
    pub fn new(
        store: Arc<DeferredDeletes<S>>,
        prefix: &str,
        root: PosixAttr,
        trust: Trust,
    ) -> Self {
        Namespace {
            table: Arc::new(Mutex::new(InodeTable::new(prefix, root))),
            store,
            ttl: trust.ttl,
            op_timeout: trust.op_timeout,
            defaults: trust.defaults,
            timed_out: TimedOutNames::default(),
        }
    }

    /// The inode table, locked for one step (see the module comment).
    pub fn table(&self) -> MutexGuard<'_, InodeTable> {
        self.table.lock().unwrap()
    }

    /// The table for the listing's attribute stage (`dir_meta`), which reads the attributes
    /// of names open for writing here and records what its HEADs find.
    pub fn shared_table(&self) -> Arc<Mutex<InodeTable>> {
        self.table.clone()
    }

    pub fn node(&self, ino: u64) -> FsResult<Inode> {
        self.table().get(ino).cloned().ok_or(FsError::NotFound)
    }

    pub fn dir_node(&self, ino: u64) -> FsResult<Inode> {
        let n = self.node(ino)?;
        if n.attr.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        Ok(n)
    }

    /// Find `name` in directory `parent`; takes one kernel reference on the result.
    pub async fn lookup(&self, parent: u64, name: &str, open: OpenHere<'_>) -> FsResult<Entry> {
        if self.timed_out.recent(parent, name) {
            return Err(FsError::TimedOut(self.op_timeout));
        }
        let r = within(self.op_timeout, self.resolve(parent, name, open)).await;
        if r.as_ref().is_err_and(FsError::is_timeout) {
            self.timed_out.record(parent, name);
        }
        r
    }

    /// `lookup` without its time limit and its memory of timeouts (for readdir, which has
    /// both of its own).
    pub async fn resolve(&self, parent: u64, name: &str, open: OpenHere<'_>) -> FsResult<Entry> {
        check_name(name)?;
        let dir = self.dir_node(parent)?;
        let ttl = self.ttl;
        {
            let mut t = self.table();
            if let Some(c) = t
                .child(parent, name)
                .filter(|c| c.is_exact_and_fresh(ttl) || c.local)
            {
                let ino = c.ino;
                let attr = t.referenced(ino).expect("child is live");
                return Ok(Entry { ino, attr });
            }
            if t.is_negative(parent, name, ttl) {
                return Err(FsError::NotFound);
            }
        }
        if self.relist(&dir, open).await? && self.table().is_negative(parent, name, ttl) {
            return Err(FsError::NotFound);
        }
        match lookup(&*self.store, &dir.key, name, &self.defaults).await {
            Ok(attr) => {
                let n = self.table().upsert(parent, name, attr, 1, false);
                Ok(Entry {
                    ino: n.ino,
                    attr: n.attr,
                })
            }
            Err(e) => {
                if matches!(e, FsError::NotFound) {
                    let mut t = self.table();
                    t.unlink_name(parent, name);
                    t.set_negative(parent, name, ttl);
                }
                Err(e)
            }
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.table().forget(ino, n);
    }

    /// Attributes of `ino`, refreshed when older than the TTL.
    pub async fn getattr(&self, ino: u64) -> FsResult<Entry> {
        within(self.op_timeout, self.getattr_now(ino)).await
    }

    async fn getattr_now(&self, ino: u64) -> FsResult<Entry> {
        let node = self.node(ino)?;
        if ino == ROOT_INO && !node.key.is_empty() && !node.is_fresh(self.ttl) {
            return self.refresh_root(&node).await;
        }
        if ino == ROOT_INO || node.local || node.attr.unlinked || node.is_exact_and_fresh(self.ttl)
        {
            return Ok(Entry {
                ino,
                attr: node.attr,
            });
        }
        let found = lookup(
            &*self.store,
            parent_prefix(&node.key),
            &node.name,
            &self.defaults,
        )
        .await;
        let mut t = self.table();
        match found {
            Ok(attr) if attr.kind == node.attr.kind => {
                let n = t.upsert(node.parent, &node.name, attr, 0, false);
                Ok(Entry {
                    ino: n.ino,
                    attr: n.attr,
                })
            }
            // Deleted, or replaced by another kind: this inode is gone.
            Ok(_) | Err(FsError::NotFound) => {
                t.unlink_name(node.parent, &node.name);
                Err(FsError::NotFound)
            }
            Err(e) => Err(e),
        }
    }

    /// The root of a prefix mount from its marker (`prefix/`), when it has one.
    async fn refresh_root(&self, root: &Inode) -> FsResult<Entry> {
        let found = match self.store.head_object(&root.key).await {
            Ok(m) => Some(attr::from_object(&m, true, &self.defaults)),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let n = self.table().refresh_root(found);
        Ok(Entry {
            ino: ROOT_INO,
            attr: n.attr,
        })
    }

    /// Give back the references of entries `readdir` returned but the reply could not hold.
    pub fn unsent(&self, entries: &[ListedEntry]) {
        let mut t = self.table();
        for e in entries.iter().filter(|e| e.name != "." && e.name != "..") {
            t.forget(e.ino, 1);
        }
    }
}

/// The key prefix of the directory holding `key` (a file key or a directory prefix).
fn parent_prefix(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    match trimmed.rfind('/') {
        Some(i) => &trimmed[..=i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::parent_prefix;

    #[test]
    fn parents() {
        assert_eq!(parent_prefix("a"), "");
        assert_eq!(parent_prefix("a/"), "");
        assert_eq!(parent_prefix("p/a/b"), "p/a/");
        assert_eq!(parent_prefix("p/a/b/"), "p/a/");
    }
}
