//! How the kernel reads each open file of an inode: through cosfs (plain handles) or straight
//! from a local file (passthrough handles, over one `Backing`), and the kernel's rule that an
//! inode is never both at once.
//!
//! - Linux fails with EIO an open of an inode that has passthrough handles unless it is a
//!   passthrough open over the same backing, and a passthrough open of an inode that has plain
//!   handles. `IoMode` counts both kinds per inode, so cosfs never asks for a mix. The kernel
//!   forgets a handle before cosfs sees its release, so these counts are never below the
//!   kernel's: cosfs may decline passthrough that would have worked, never the reverse.
//! - An inode with passthrough handles is pinned to the version its backing holds. A new
//!   version of its name (a HEAD or a listing that finds another ETag, or an open for writing
//!   on this mount) gets a new inode (`InodeTable::upsert`, `open_handle`), and the pinned
//!   inode keeps serving its handles, as a local file replaced by a rename serves the
//!   descriptors open on it. The open that found the new version fails with ESTALE, on which
//!   the kernel looks the name up again (getting the new inode) and retries the open once.
//! - Handles cosfs opens for itself (a `truncate` of a closed file) are not the kernel's and
//!   are not counted.

use std::any::Any;
use std::fs::File;
use std::sync::{Arc, OnceLock};

/// The local file passthrough handles of one inode read: one object version, complete.
pub struct Backing {
    file: File,
    etag: Arc<str>,
    /// The kernel's id for it, made by the FUSE adapter at the first passthrough open and
    /// reused by the inode's later ones (the kernel wants one backing per inode).
    kernel_id: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backing").field("etag", &self.etag).finish()
    }
}

impl Backing {
    pub fn new(file: File, etag: &str) -> Self {
        Backing {
            file,
            etag: Arc::from(etag),
            kernel_id: OnceLock::new(),
        }
    }

    /// The kernel's id of this backing (of the adapter's type `T`), made by `make` the first
    /// time. Two opens racing may both make one; the later one is dropped unused.
    pub fn kernel_id<T: Any + Send + Sync, E>(
        &self,
        make: impl FnOnce(&File) -> Result<T, E>,
    ) -> Result<&T, E> {
        if self.kernel_id.get().is_none() {
            let id = make(&self.file)?;
            let _ = self.kernel_id.set(Box::new(id));
        }
        Ok(self
            .kernel_id
            .get()
            .and_then(|b| b.downcast_ref::<T>())
            .expect("one adapter type"))
    }
}

/// How a handle the kernel holds reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleIo {
    /// Not the kernel's (cosfs's own).
    Internal,
    /// Reads come to cosfs.
    Plain,
    /// The kernel reads the inode's backing file.
    Through,
}

/// The handles of one inode the kernel holds, by kind.
#[derive(Debug, Clone, Default)]
pub struct IoMode {
    plain: u32,
    through: u32,
    backing: Option<Arc<Backing>>,
}

/// An open that would mix the kinds: the inode is pinned to another version.
#[derive(Debug)]
pub struct Pinned;

impl IoMode {
    /// The version passthrough handles pin the inode to.
    pub fn pinned_to(&self) -> Option<&str> {
        self.backing
            .as_ref()
            .filter(|_| self.through > 0)
            .map(|b| &*b.etag)
    }

    /// A new handle of the version `etag`: passthrough over the inode's backing if it has
    /// one of that version, or over `offer` if it has no handles of the other kind; plain
    /// otherwise. `Pinned` when plain is needed and passthrough handles are open.
    pub fn open(
        &mut self,
        etag: &str,
        offer: Option<Arc<Backing>>,
        write: bool,
    ) -> Result<Option<Arc<Backing>>, Pinned> {
        if self.through > 0 {
            return match &self.backing {
                Some(b) if !write && *b.etag == *etag => {
                    self.through += 1;
                    Ok(Some(b.clone()))
                }
                _ => Err(Pinned),
            };
        }
        match offer {
            Some(b) if !write && self.plain == 0 && *b.etag == *etag => {
                self.through = 1;
                self.backing = Some(b.clone());
                Ok(Some(b))
            }
            _ => {
                self.plain += 1;
                Ok(None)
            }
        }
    }

    /// A handle of kind `io` was released.
    pub fn closed(&mut self, io: HandleIo) {
        match io {
            HandleIo::Internal => {}
            HandleIo::Plain => self.plain = self.plain.saturating_sub(1),
            HandleIo::Through => {
                self.through = self.through.saturating_sub(1);
                if self.through == 0 {
                    self.backing = None;
                }
            }
        }
    }

    /// The kernel would not take a passthrough handle: it is plain after all.
    pub fn refused(&mut self) {
        self.closed(HandleIo::Through);
        self.plain += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing(etag: &str) -> Arc<Backing> {
        Arc::new(Backing::new(tempfile::tempfile().unwrap(), etag))
    }

    #[test]
    fn never_a_mix_of_kinds() {
        let mut m = IoMode::default();
        let b = backing("e1");
        let first = m.open("e1", Some(b.clone()), false).unwrap();
        assert!(first.is_some_and(|got| Arc::ptr_eq(&got, &b)));
        // Another reader of the same version shares the backing, even with no offer.
        assert!(m.open("e1", None, false).unwrap().is_some());
        assert_eq!(m.pinned_to(), Some("e1"));
        // A writer, or a reader of another version, cannot be plain now.
        assert!(m.open("e1", None, true).is_err());
        assert!(m.open("e2", Some(backing("e2")), false).is_err());
        m.closed(HandleIo::Through);
        m.closed(HandleIo::Through);
        assert_eq!(m.pinned_to(), None);
        // Plain handles open: no passthrough for the next, even if offered.
        assert!(m.open("e1", None, true).unwrap().is_none());
        assert!(m.open("e1", Some(b.clone()), false).unwrap().is_none());
        m.closed(HandleIo::Plain);
        m.closed(HandleIo::Plain);
        assert!(m.open("e1", Some(b), false).unwrap().is_some());
        m.refused();
        assert_eq!(m.pinned_to(), None, "a refused handle is plain");
        assert!(m.open("e1", None, true).unwrap().is_none());
    }

    #[test]
    fn the_kernel_id_is_made_once() {
        let b = backing("e");
        let mut made = 0;
        for _ in 0..3 {
            let id: &u32 = b
                .kernel_id(|_| {
                    made += 1;
                    Ok::<u32, ()>(7)
                })
                .unwrap();
            assert_eq!(*id, 7);
        }
        assert_eq!(made, 1);
        assert!(backing("e")
            .kernel_id(|_| Err::<u32, &str>("refused"))
            .is_err());
    }
}
