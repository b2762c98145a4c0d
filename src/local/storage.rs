//! Durable object storage for `cosfs serve`, on a local directory.
//!
//! Layout of `ROOT/<bucket>/`:
//! - `data/<id>`: immutable object bodies (a random id per version);
//! - `meta/<xx>/<sha1(key)>.json`: one `ObjectRecord` per key, naming its data file;
//! - `uploads/<upload id>/`: `upload.json` plus `part-<n>.json` records naming `data/` files;
//! - `tmp/`: files being written.
//!
//! Invariant (crash safety): a body is fully written and fsynced under `tmp/`, renamed into
//! `data/`, and only then is its record written to `tmp/` and renamed over `meta/...json`. The
//! rename is the commit point, so a crash leaves either the old object or the new one, never a
//! torn one. Startup rebuilds the in-memory index from `meta/`, deletes data files no record names
//! (orphans of a crash) and empties `tmp/`.
//!
//! One process at a time: `Storage::open` flocks `ROOT/.lock` (a second `cosfs serve` or
//! `cosfs mount --local-store` on the same directory is refused, not allowed to diverge).
//!
//! Concurrency: each bucket has an index (`BTreeMap` ordered by key bytes, as COS lists) behind a
//! `std::sync::RwLock` held only for in-memory work and the commit rename, never across an await.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::object::StandardHeaders;
use sha1::{Digest, Sha1};

/// What we know about one object (persisted as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRecord {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub crc64: u64,
    /// Milliseconds since the epoch.
    pub last_modified_ms: u64,
    pub content_type: String,
    /// Cache-Control, Content-Encoding and the other standard headers it was given.
    #[serde(default)]
    pub standard: StandardHeaders,
    pub storage_class: String,
    pub user_meta: BTreeMap<String, String>,
    /// File name under `data/`.
    pub data: String,
    /// Written by APPEND Object (`x-cos-object-type: appendable`); appends write into `data`
    /// past `size` and then move `size` (see `ops::append`).
    #[serde(default)]
    pub appendable: bool,
    /// The restore of an archived object, once one was asked for.
    #[serde(default)]
    pub restore: Option<RestoreRecord>,
    /// Its canned ACL (`private`, `public-read`); none: `default`, the bucket's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// Its tags (object tagging), in the order they were put.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// A POST Object restore: the temporary copy is readable from `ready_ms` for `days` days.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreRecord {
    pub days: u32,
    pub tier: String,
    pub ready_ms: u64,
}

/// Where the restore of an archived object stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreState {
    /// Not an archive class: readable.
    NotArchived,
    /// Archived, and no restored copy: GET is refused.
    Archived,
    /// A restore is running.
    Ongoing,
    /// Restored, readable until then.
    Restored { expiry: SystemTime },
}

const DAY_MS: u64 = 24 * 3600 * 1000;

impl ObjectRecord {
    pub fn last_modified(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(self.last_modified_ms)
    }

    /// A new object `key` of `blob`, written now.
    pub fn new(key: &str, blob: &StoredBlob, etag: String, headers: NewObjectHeaders) -> Self {
        ObjectRecord {
            key: key.to_string(),
            size: blob.size,
            etag,
            crc64: blob.crc64,
            last_modified_ms: now_ms(),
            content_type: headers.content_type,
            standard: headers.standard,
            storage_class: headers.storage_class,
            user_meta: headers.user_meta,
            data: blob.data.clone(),
            appendable: false,
            restore: None,
            acl: headers.acl,
            tags: headers.tags,
        }
    }

    pub fn is_archived(&self) -> bool {
        matches!(self.storage_class.as_str(), "ARCHIVE" | "DEEP_ARCHIVE")
    }

    /// The restore state at `now_ms`.
    pub fn restore_state(&self, now_ms: u64) -> RestoreState {
        if !self.is_archived() {
            return RestoreState::NotArchived;
        }
        match &self.restore {
            Some(r) if now_ms < r.ready_ms => RestoreState::Ongoing,
            Some(r) if now_ms < r.ready_ms + r.days as u64 * DAY_MS => RestoreState::Restored {
                expiry: UNIX_EPOCH
                    + std::time::Duration::from_millis(r.ready_ms + r.days as u64 * DAY_MS),
            },
            _ => RestoreState::Archived,
        }
    }

    /// GET (or copying it) may read the body now.
    pub fn readable(&self, now_ms: u64) -> bool {
        matches!(
            self.restore_state(now_ms),
            RestoreState::NotArchived | RestoreState::Restored { .. }
        )
    }
}

/// Headers given when an object is created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewObjectHeaders {
    pub content_type: String,
    #[serde(default)]
    pub standard: StandardHeaders,
    /// `x-cos-acl` (canned).
    #[serde(default)]
    pub acl: Option<String>,
    /// Tags it starts with (a copy's, from its source).
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    pub storage_class: String,
    pub user_meta: BTreeMap<String, String>,
}

/// A body written to `data/`, with its digests.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub data: String,
    pub size: u64,
    pub md5: [u8; 16],
    pub crc64: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub headers: NewObjectHeaders,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub crc64: u64,
    pub last_modified_ms: u64,
    pub data: String,
}

pub struct Bucket {
    pub name: String,
    dir: PathBuf,
    index: RwLock<BTreeMap<String, ObjectRecord>>,
    uploads: RwLock<BTreeMap<String, UploadRecord>>,
    /// Appends run one at a time (each checks the length it writes after).
    pub append_lock: std::sync::Mutex<()>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

pub fn random_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

fn write_json_atomic(tmp_dir: &Path, dest: &Path, value: &impl Serialize) -> io::Result<()> {
    let tmp = tmp_dir.join(format!("{}.json", random_id()));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(io::Error::other)?)?;
    f.sync_all()?;
    drop(f);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::rename(&tmp, dest)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

impl Bucket {
    fn open(name: &str, dir: PathBuf) -> io::Result<Bucket> {
        for sub in ["data", "meta", "uploads", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        // Anything in tmp/ is an unfinished write from before a crash.
        for e in fs::read_dir(dir.join("tmp"))? {
            let _ = fs::remove_file(e?.path());
        }
        let mut index = BTreeMap::new();
        for shard in fs::read_dir(dir.join("meta"))? {
            for e in fs::read_dir(shard?.path())? {
                let path = e?.path();
                match read_json::<ObjectRecord>(&path) {
                    Ok(r) => {
                        index.insert(r.key.clone(), r);
                    }
                    Err(err) => {
                        tracing::warn!(path = %path.display(), %err, "skipping unreadable object record")
                    }
                }
            }
        }
        let mut uploads = BTreeMap::new();
        let mut referenced: std::collections::HashSet<String> =
            index.values().map(|r| r.data.clone()).collect();
        for e in fs::read_dir(dir.join("uploads"))? {
            let udir = e?.path();
            match read_json::<UploadRecord>(&udir.join("upload.json")) {
                Ok(u) => {
                    for p in fs::read_dir(&udir)? {
                        let p = p?.path();
                        if p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
                        {
                            if let Ok(pr) = read_json::<PartRecord>(&p) {
                                referenced.insert(pr.data);
                            }
                        }
                    }
                    uploads.insert(u.upload_id.clone(), u);
                }
                Err(_) => {
                    let _ = fs::remove_dir_all(&udir);
                }
            }
        }
        for e in fs::read_dir(dir.join("data"))? {
            let e = e?;
            if !referenced.contains(e.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(Bucket {
            name: name.to_string(),
            dir,
            index: RwLock::new(index),
            uploads: RwLock::new(uploads),
            append_lock: std::sync::Mutex::new(()),
        })
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn data_path(&self, data: &str) -> PathBuf {
        self.dir.join("data").join(data)
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        let h = hex::encode(Sha1::digest(key.as_bytes()));
        self.dir
            .join("meta")
            .join(&h[..2])
            .join(format!("{h}.json"))
    }

    fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.dir.join("uploads").join(upload_id)
    }

    pub fn get(&self, key: &str) -> Option<ObjectRecord> {
        self.index.read().unwrap().get(key).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.index.read().unwrap().is_empty()
    }

    /// Run `f` over the index from `start` on (in key order) while it returns true.
    pub fn scan_from(
        &self,
        start: std::ops::Bound<&str>,
        mut f: impl FnMut(&ObjectRecord) -> std::ops::ControlFlow<(), Option<String>>,
    ) {
        let index = self.index.read().unwrap();
        let mut bound: std::ops::Bound<String> = start.map(str::to_string);
        'outer: loop {
            let range = index.range::<String, _>((bound.as_ref(), std::ops::Bound::Unbounded));
            for (_, rec) in range {
                match f(rec) {
                    std::ops::ControlFlow::Break(()) => break 'outer,
                    std::ops::ControlFlow::Continue(Some(skip_to)) => {
                        bound = std::ops::Bound::Included(skip_to);
                        continue 'outer;
                    }
                    std::ops::ControlFlow::Continue(None) => {}
                }
            }
            break;
        }
    }

    /// Make `blob` (already under `data/`) the current version of `key`. Returns the record.
    pub fn commit(
        &self,
        key: &str,
        blob: &StoredBlob,
        etag: String,
        headers: NewObjectHeaders,
    ) -> io::Result<ObjectRecord> {
        self.commit_record(ObjectRecord::new(key, blob, etag, headers))
    }

    /// Make `rec` the current record of its key (its data already under `data/`), removing the
    /// data file of the record it replaces, unless shared.
    pub fn commit_record(&self, rec: ObjectRecord) -> io::Result<ObjectRecord> {
        let key = rec.key.as_str();
        let old = {
            let mut index = self.index.write().unwrap();
            write_json_atomic(&self.tmp_dir(), &self.meta_path(key), &rec)?;
            index.insert(key.to_string(), rec.clone())
        };
        if let Some(old) = old {
            if old.data != rec.data {
                let _ = fs::remove_file(self.data_path(&old.data));
            }
        }
        Ok(rec)
    }

    /// Make `next` the record of its key only if the key's record is still `prev` (None: no
    /// object): false when another write got there first. The data file is `prev`'s, or new.
    pub fn replace_record(
        &self,
        prev: Option<&ObjectRecord>,
        next: &ObjectRecord,
    ) -> io::Result<bool> {
        let mut index = self.index.write().unwrap();
        if index.get(&next.key) != prev {
            return Ok(false);
        }
        write_json_atomic(&self.tmp_dir(), &self.meta_path(&next.key), next)?;
        index.insert(next.key.clone(), next.clone());
        Ok(true)
    }

    /// The bucket's canned ACL (`private` until one is put).
    pub fn acl(&self) -> String {
        fs::read_to_string(self.dir.join("acl"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "private".into())
    }

    pub fn set_acl(&self, acl: &str) -> io::Result<()> {
        let tmp = self.tmp_dir().join(format!("{}.acl", random_id()));
        fs::write(&tmp, acl)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join("acl"))
    }

    /// Change the record of `key` in place with `f` (its ACL, its tags): false if there is no
    /// such object.
    pub fn update_record(&self, key: &str, f: impl FnOnce(&mut ObjectRecord)) -> io::Result<bool> {
        let mut index = self.index.write().unwrap();
        let Some(mut rec) = index.get(key).cloned() else {
            return Ok(false);
        };
        f(&mut rec);
        write_json_atomic(&self.tmp_dir(), &self.meta_path(key), &rec)?;
        index.insert(key.to_string(), rec);
        Ok(true)
    }

    /// Delete `key`; deleting a missing key succeeds (COS answers 204 either way).
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let old = {
            let mut index = self.index.write().unwrap();
            let old = index.remove(key);
            if old.is_some() {
                match fs::remove_file(self.meta_path(key)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        index.insert(key.to_string(), old.clone().unwrap());
                        return Err(e);
                    }
                }
            }
            old
        };
        if let Some(old) = old {
            let _ = fs::remove_file(self.data_path(&old.data));
        }
        Ok(())
    }

    /// A new `data/` file sharing the body of `data` (hard link; copy if links are refused).
    pub fn clone_data(&self, data: &str) -> io::Result<String> {
        let id = random_id();
        let src = self.data_path(data);
        let dst = self.data_path(&id);
        if fs::hard_link(&src, &dst).is_err() {
            let tmp = self.tmp_dir().join(&id);
            fs::copy(&src, &tmp)?;
            File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &dst)?;
        }
        Ok(id)
    }

    /// Move a finished temp file into `data/`.
    pub fn adopt_tmp(&self, tmp_name: &str) -> io::Result<()> {
        fs::rename(self.tmp_dir().join(tmp_name), self.data_path(tmp_name))
    }

    pub fn remove_data(&self, data: &str) {
        let _ = fs::remove_file(self.data_path(data));
    }

    // ---- multipart uploads ----

    pub fn create_upload(&self, key: &str, headers: NewObjectHeaders) -> io::Result<UploadRecord> {
        let rec = UploadRecord {
            key: key.to_string(),
            upload_id: format!("{}{}", now_ms(), random_id()),
            initiated_ms: now_ms(),
            headers,
        };
        let dir = self.upload_dir(&rec.upload_id);
        fs::create_dir_all(&dir)?;
        write_json_atomic(&self.tmp_dir(), &dir.join("upload.json"), &rec)?;
        self.uploads
            .write()
            .unwrap()
            .insert(rec.upload_id.clone(), rec.clone());
        Ok(rec)
    }

    pub fn upload(&self, upload_id: &str) -> Option<UploadRecord> {
        self.uploads.read().unwrap().get(upload_id).cloned()
    }

    pub fn uploads(&self) -> Vec<UploadRecord> {
        let mut v: Vec<_> = self.uploads.read().unwrap().values().cloned().collect();
        v.sort_by(|a, b| {
            (&a.key, a.initiated_ms, &a.upload_id).cmp(&(&b.key, b.initiated_ms, &b.upload_id))
        });
        v
    }

    /// Record a part (its body already under `data/`); replaces an earlier part of that number.
    pub fn put_part(&self, upload_id: &str, part: PartRecord) -> io::Result<()> {
        let path = self
            .upload_dir(upload_id)
            .join(format!("part-{}.json", part.part_number));
        let old = read_json::<PartRecord>(&path).ok();
        write_json_atomic(&self.tmp_dir(), &path, &part)?;
        if let Some(old) = old.filter(|o| o.data != part.data) {
            self.remove_data(&old.data);
        }
        Ok(())
    }

    pub fn parts(&self, upload_id: &str) -> io::Result<BTreeMap<u32, PartRecord>> {
        let mut parts = BTreeMap::new();
        for e in fs::read_dir(self.upload_dir(upload_id))? {
            let p = e?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            {
                let pr: PartRecord = read_json(&p)?;
                parts.insert(pr.part_number, pr);
            }
        }
        Ok(parts)
    }

    /// Forget an upload. With `keep_data`, part bodies listed there survive (Complete moved them).
    pub fn remove_upload(&self, upload_id: &str, keep_data: bool) -> io::Result<()> {
        if self.uploads.write().unwrap().remove(upload_id).is_none() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such upload"));
        }
        let parts = if keep_data {
            None
        } else {
            self.parts(upload_id).ok()
        };
        // The record goes first: a process killed after this point restarts without the
        // upload (a directory without its record is dropped at open, and part data nothing
        // references is swept), never with an upload whose part data is half gone.
        fs::remove_file(self.upload_dir(upload_id).join("upload.json"))?;
        for p in parts.iter().flat_map(|p| p.values()) {
            self.remove_data(&p.data);
        }
        fs::remove_dir_all(self.upload_dir(upload_id))
    }
}

/// All buckets under the root directory.
pub struct Storage {
    root: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
    /// `ROOT/.lock`, flocked: one process at a time keeps an index of the directory.
    _lock: File,
}

/// Take the directory's lock, or say who holds it.
fn lock_root(root: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let path = root.join(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "store directory {} is in use by another cosfs process (serve or mount --local-store)",
                root.display()
            ),
        ));
    }
    Ok(f)
}

impl Storage {
    /// Open `root`, loading every subdirectory whose name is a valid bucket name.
    pub fn open(root: &Path) -> io::Result<Storage> {
        fs::create_dir_all(root)?;
        let lock = lock_root(root)?;
        let mut buckets = BTreeMap::new();
        for e in fs::read_dir(root)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() && crate::cos::config::valid_bucket_name(&name) {
                buckets.insert(name.clone(), Arc::new(Bucket::open(&name, e.path())?));
            }
        }
        Ok(Storage {
            root: root.to_path_buf(),
            buckets: RwLock::new(buckets),
            _lock: lock,
        })
    }

    pub fn bucket(&self, name: &str) -> Option<Arc<Bucket>> {
        self.buckets.read().unwrap().get(name).cloned()
    }

    /// Create a bucket (idempotent).
    pub fn create_bucket(&self, name: &str) -> io::Result<Arc<Bucket>> {
        let mut buckets = self.buckets.write().unwrap();
        if let Some(b) = buckets.get(name) {
            return Ok(b.clone());
        }
        let b = Arc::new(Bucket::open(name, self.root.join(name))?);
        buckets.insert(name.to_string(), b.clone());
        Ok(b)
    }

    /// Delete an empty bucket.
    pub fn delete_bucket(&self, name: &str) -> io::Result<bool> {
        let mut buckets = self.buckets.write().unwrap();
        match buckets.get(name) {
            Some(b) if b.is_empty() && b.uploads.read().unwrap().is_empty() => {
                fs::remove_dir_all(&b.dir)?;
                buckets.remove(name);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such bucket")),
        }
    }
}
