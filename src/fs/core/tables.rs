//! The fs core's tables: open handles (files and directories, numbered from one counter) and
//! the writers of the files open for writing, by inode.
//!
//! Each table's lock is private to it and taken only inside one of its methods, which returns
//! owned values (clones of `Arc`s, numbers) and calls nothing outside the table. So no guard
//! of these tables exists anywhere else, none is ever held while another lock is taken, and
//! code holding the namespace's table (`Namespace::table`) may call them without an order to
//! keep: the lock order of `docs/ARCHITECTURE.md` "Locks" holds by construction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::fs::dir_handle::DirHandle;
use crate::fs::error::{FsError, FsResult};
use crate::fs::write::FileWriter;
use crate::object::ObjectStore;

use super::open_file::{OpenFile, SharedWriter, Store};

/// An open directory: its listing, shared by the readdirs of the handle.
pub(super) type SharedDir<S> = Arc<tokio::sync::Mutex<DirHandle<Store<S>>>>;

/// Open file and directory handles.
pub(super) struct Handles<S: ObjectStore + ?Sized> {
    next: AtomicU64,
    files: Mutex<HashMap<u64, Arc<OpenFile<S>>>>,
    /// By handle: the directory's inode, and its listing.
    dirs: Mutex<HashMap<u64, (u64, SharedDir<S>)>>,
}

impl<S: ObjectStore + ?Sized> Handles<S> {
    pub fn new() -> Self {
        Handles {
            next: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new file handle; its number.
    pub fn add_file(&self, h: OpenFile<S>) -> u64 {
        let fh = self.number();
        self.files.lock().unwrap().insert(fh, Arc::new(h));
        fh
    }

    pub fn file(&self, fh: u64) -> FsResult<Arc<OpenFile<S>>> {
        let files = self.files.lock().unwrap();
        files.get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// The handle, taken out of the table (its release).
    pub fn remove_file(&self, fh: u64) -> Option<Arc<OpenFile<S>>> {
        self.files.lock().unwrap().remove(&fh)
    }

    /// The handles open on `ino`.
    pub fn files_of(&self, ino: u64) -> Vec<Arc<OpenFile<S>>> {
        let files = self.files.lock().unwrap();
        files.values().filter(|h| h.ino() == ino).cloned().collect()
    }

    /// Every open file handle.
    pub fn all_files(&self) -> Vec<Arc<OpenFile<S>>> {
        self.files.lock().unwrap().values().cloned().collect()
    }

    /// A new directory handle on `ino`; its number.
    pub fn add_dir(&self, ino: u64, listing: DirHandle<Store<S>>) -> u64 {
        let fh = self.number();
        let listing = Arc::new(tokio::sync::Mutex::new(listing));
        self.dirs.lock().unwrap().insert(fh, (ino, listing));
        fh
    }

    pub fn dir(&self, fh: u64) -> FsResult<SharedDir<S>> {
        let dirs = self.dirs.lock().unwrap();
        dirs.get(&fh)
            .map(|(_, d)| d.clone())
            .ok_or(FsError::BadHandle)
    }

    /// The directory handle, taken out of the table; the directory's inode.
    pub fn remove_dir(&self, fh: u64) -> Option<u64> {
        self.dirs.lock().unwrap().remove(&fh).map(|(ino, _)| ino)
    }
}

/// The one writer of each file open for writing, by inode.
pub(super) struct Writers<S: ObjectStore + ?Sized> {
    by_ino: Mutex<HashMap<u64, SharedWriter<S>>>,
}

impl<S: ObjectStore + ?Sized> Writers<S> {
    pub fn new() -> Self {
        Writers {
            by_ino: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, ino: u64) -> Option<SharedWriter<S>> {
        self.by_ino.lock().unwrap().get(&ino).cloned()
    }

    /// `w` becomes `ino`'s writer unless it has one (two opens racing keep the first).
    pub fn add_unless_present(&self, ino: u64, w: FileWriter<Store<S>>) {
        let mut by_ino = self.by_ino.lock().unwrap();
        by_ino
            .entry(ino)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(w)));
    }

    /// `w` is the writer of the new file `ino`.
    pub fn add(&self, ino: u64, w: FileWriter<Store<S>>) -> SharedWriter<S> {
        let w = Arc::new(tokio::sync::Mutex::new(w));
        self.by_ino.lock().unwrap().insert(ino, w.clone());
        w
    }

    /// The last writing handle of `ino` is gone.
    pub fn remove(&self, ino: u64) {
        self.by_ino.lock().unwrap().remove(&ino);
    }

    pub fn count(&self) -> usize {
        self.by_ino.lock().unwrap().len()
    }

    /// Every writer, with its file's inode.
    pub fn all(&self) -> Vec<(u64, SharedWriter<S>)> {
        let by_ino = self.by_ino.lock().unwrap();
        by_ino.iter().map(|(ino, w)| (*ino, w.clone())).collect()
    }
}
