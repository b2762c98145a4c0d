//! The randomized reference test at the fs-core level: no mount, no HTTP. `proptest` generates
//! sequences of file operations; each runs on `CosFs` over an in-process `LocalStore` (through a
//! `FaultyStore`) and on a local directory (the reference), and must give the same outcome
//! (success, or the same errno) and leave the same tree: names, kinds, sizes, modes, owners,
//! symlink targets, bytes, the mtimes `SetTimes` set and a user xattr. At the end the tree is
//! compared again through a second `CosFs` over the same store (what a remount would show).
//!
//! - What the kernel's VFS does before calling a filesystem is done here by `Vfs` (path walk,
//!   EEXIST for an existing name, EINVAL for a rename into its own subtree, ELOOP for
//!   O_NOFOLLOW on a symlink), so outcomes compare to the reference.
//! - About one operation in ten runs with the store refusing every write (PUT, copy, multipart)
//!   with 503. When it fails with EIO (what a mount returns once retries are spent) the store
//!   must be as it was (a fresh `CosFs` shows the reference tree); otherwise it must do what the
//!   reference did (it failed for its own reason, or needed no write).
//! - `COSFS_FS_MODEL_CASES` sets the number of sequences (default 500, 1 to 100 operations
//!   each; about 25,000 in all). Shrunk failures are kept as named cases at the bottom.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::pattern;
use cosfs::fs::files::{OpenFlags, Owner, SetAttr};
use cosfs::fs::{CosFs, FsConfig};
use cosfs::local::LocalStore;
use cosfs::object::faulty::{Faults, FaultyStore};
use proptest::prelude::*;

const ROOT: u64 = 1;
/// mtimes below this were set by `SetTimes`; later ones by writes (not compared).
const SET_TIMES_BEFORE: i64 = 1_600_000_000;
const XATTR: &str = "user.model";
const PATHS: &[&str] = &[
    "x", "y", "a", "b", "a/x", "a/y", "a/c", "a/c/x", "b/x", "b/a",
];
/// Relative targets inside the tree (a target climbing out of the root would resolve outside
/// the reference directory).
const TARGETS: &[&str] = &["x", "a/y", "a", "nowhere"];
const WRITES: &[&str] = &[
    "PutObject",
    "CopyObject",
    "InitiateMultipart",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipart",
];

#[derive(Debug, Clone)]
enum Op {
    Write {
        path: usize,
        offset: u64,
        len: usize,
        seed: u64,
        truncate: bool,
    },
    /// Two handles open on one file at once, writing in turn, closed in turn.
    TwoWriters {
        path: usize,
        first: (u64, usize),
        second: (u64, usize),
        seed: u64,
    },
    Read {
        path: usize,
        offset: u64,
        len: usize,
    },
    Truncate {
        path: usize,
        size: u64,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Unlink {
        path: usize,
    },
    Mkdir {
        path: usize,
    },
    Rmdir {
        path: usize,
    },
    Chmod {
        path: usize,
        mode: u32,
    },
    Chown {
        path: usize,
        uid: u32,
        gid: u32,
    },
    SetTimes {
        path: usize,
        secs: i64,
    },
    Symlink {
        path: usize,
        target: usize,
    },
    SetXattr {
        path: usize,
        value: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = || 0..PATHS.len();
    prop_oneof![
        // Mostly small writes; one in ten big enough (with 1 MiB parts) for multipart uploads
        // and part copies.
        4 => (p(), write_span(), any::<u64>(), any::<bool>()).prop_map(
            |(path, (offset, len), seed, truncate)| Op::Write { path, offset, len, seed, truncate }
        ),
        1 => (p(), (0u64..5000, 1usize..5000), (0u64..5000, 1usize..5000), any::<u64>())
            .prop_map(|(path, first, second, seed)| Op::TwoWriters { path, first, second, seed }),
        2 => (p(), 0u64..60_000, 1usize..50_000)
            .prop_map(|(path, offset, len)| Op::Read { path, offset, len }),
        1 => (p(), 0u64..80_000).prop_map(|(path, size)| Op::Truncate { path, size }),
        2 => (p(), p()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => p().prop_map(|path| Op::Unlink { path }),
        2 => p().prop_map(|path| Op::Mkdir { path }),
        1 => p().prop_map(|path| Op::Rmdir { path }),
        // No sticky bit: what a sticky directory forbids (protected_symlinks, protected_regular)
        // the kernel decides before any filesystem is asked.
        1 => (p(), 0u32..0o7777).prop_map(|(path, mode)| Op::Chmod { path, mode: mode & !0o1000 }),
        1 => (p(), 0u32..3, 0u32..3).prop_map(|(path, uid, gid)| Op::Chown {
            path,
            uid: 1000 + uid,
            gid: 1000 + gid
        }),
        1 => (p(), 1_000_000i64..1_500_000_000)
            .prop_map(|(path, secs)| Op::SetTimes { path, secs }),
        1 => (p(), 0..TARGETS.len()).prop_map(|(path, target)| Op::Symlink { path, target }),
        1 => (p(), any::<u8>()).prop_map(|(path, value)| Op::SetXattr { path, value }),
    ]
}

/// Where a write goes and how long it is.
fn write_span() -> impl Strategy<Value = (u64, usize)> {
    prop_oneof![
        9 => (0u64..40_000, 0usize..20_000),
        1 => (0u64..2_500_000, 0usize..1_500_000),
    ]
}

type Outcome = Result<Option<Vec<u8>>, i32>;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn libc_result(rc: i32) -> Result<(), i32> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// The reference: the same operation on a local directory.
fn reference(root: &Path, op: &Op) -> Outcome {
    let at = |i: usize| root.join(PATHS[i]);
    let nofollow = |write: bool, create: bool, truncate: bool, p: &Path| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .create(create)
            .truncate(truncate)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
    };
    match op {
        Op::Write {
            path,
            offset,
            len,
            seed,
            truncate,
        } => {
            let f = nofollow(true, true, *truncate, &at(*path)).map_err(errno)?;
            f.write_all_at(&pattern(*len, *seed), *offset)
                .map_err(errno)?;
            Ok(None)
        }
        Op::TwoWriters {
            path,
            first,
            second,
            seed,
        } => {
            let a = nofollow(true, true, false, &at(*path)).map_err(errno)?;
            let b = nofollow(true, false, false, &at(*path)).map_err(errno)?;
            a.write_all_at(&pattern(first.1, *seed), first.0)
                .map_err(errno)?;
            b.write_all_at(&pattern(second.1, seed + 1), second.0)
                .map_err(errno)?;
            Ok(None)
        }
        Op::Read { path, offset, len } => {
            let f = nofollow(false, false, false, &at(*path)).map_err(errno)?;
            let mut buf = vec![0; *len];
            let n = f.read_at(&mut buf, *offset).map_err(errno)?;
            buf.truncate(n);
            Ok(Some(buf))
        }
        Op::Truncate { path, size } => {
            let f = nofollow(true, false, false, &at(*path)).map_err(errno)?;
            f.set_len(*size).map_err(errno)?;
            Ok(None)
        }
        Op::Rename { from, to } => std::fs::rename(at(*from), at(*to))
            .map(|_| None)
            .map_err(errno),
        Op::Unlink { path } => std::fs::remove_file(at(*path)).map(|_| None).map_err(errno),
        Op::Mkdir { path } => {
            // SAFETY: a valid C path.
            libc_result(unsafe { libc::mkdir(cpath(&at(*path)).as_ptr(), 0o755) })?;
            Ok(None)
        }
        Op::Rmdir { path } => std::fs::remove_dir(at(*path)).map(|_| None).map_err(errno),
        Op::Chmod { path, mode } => {
            if is_symlink(&at(*path)) {
                return Ok(None); // not modelled: chmod follows links
            }
            std::fs::set_permissions(at(*path), std::fs::Permissions::from_mode(*mode))
                .map(|_| None)
                .map_err(errno)
        }
        Op::Chown { path, uid, gid } => {
            std::os::unix::fs::lchown(at(*path), Some(*uid), Some(*gid))
                .map(|_| None)
                .map_err(errno)
        }
        Op::SetTimes { path, secs } => {
            let t = libc::timespec {
                tv_sec: *secs,
                tv_nsec: 0,
            };
            let times = [t, t];
            // SAFETY: a valid C path and two timespecs.
            libc_result(unsafe {
                libc::utimensat(
                    libc::AT_FDCWD,
                    cpath(&at(*path)).as_ptr(),
                    times.as_ptr(),
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })?;
            Ok(None)
        }
        Op::Symlink { path, target } => std::os::unix::fs::symlink(TARGETS[*target], at(*path))
            .map(|_| None)
            .map_err(errno),
        Op::SetXattr { path, value } => {
            if is_symlink(&at(*path)) {
                return Ok(None); // user xattrs are not allowed on links
            }
            let name = CString::new(XATTR).unwrap();
            // SAFETY: valid C strings and a one-byte value.
            libc_result(unsafe {
                libc::lsetxattr(
                    cpath(&at(*path)).as_ptr(),
                    name.as_ptr(),
                    (value as *const u8).cast(),
                    1,
                    0,
                )
            })?;
            Ok(None)
        }
    }
}

/// What the kernel does before it calls the filesystem: path walks and the checks the VFS
/// makes itself.
struct Vfs<'a, S: cosfs::object::ObjectStore + ?Sized> {
    fs: &'a CosFs<S>,
    pid: u32,
}

impl<S: cosfs::object::ObjectStore + ?Sized> Vfs<'_, S> {
    /// The directory holding `path` and the last name, following symlinks on the way as
    /// the kernel does (relative targets; 40 hops at most, then ELOOP).
    async fn parent(&self, path: &str) -> Result<(u64, String), i32> {
        let (ino, _, name) = self.walk(path).await?;
        Ok((ino, name))
    }

    /// `parent`, with the directory's path from the root once symlinks are resolved.
    async fn walk(&self, path: &str) -> Result<(u64, String, String), i32> {
        use cosfs::fs::attr::FileKind;
        let mut comps: std::collections::VecDeque<String> =
            path.split('/').map(str::to_string).collect();
        let last = comps.pop_back().unwrap();
        let mut dirs = vec![ROOT];
        let mut names: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = comps.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    if dirs.len() > 1 {
                        dirs.pop();
                        names.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let e = self
                .fs
                .lookup(*dirs.last().unwrap(), &c)
                .await
                .map_err(|e| e.errno())?;
            match e.attr.kind {
                FileKind::Directory => {
                    dirs.push(e.ino);
                    names.push(c);
                }
                FileKind::Symlink => {
                    hops += 1;
                    if hops > 40 {
                        return Err(libc::ELOOP);
                    }
                    let target = self.fs.readlink(e.ino).await.map_err(|e| e.errno())?;
                    let target = String::from_utf8_lossy(&target).into_owned();
                    for t in target.split('/').rev() {
                        comps.push_front(t.to_string());
                    }
                }
                _ => return Err(libc::ENOTDIR),
            }
        }
        Ok((*dirs.last().unwrap(), names.join("/"), last))
    }

    async fn lookup(&self, path: &str) -> Result<cosfs::fs::Entry, i32> {
        let (dir, name) = self.parent(path).await?;
        self.fs.lookup(dir, &name).await.map_err(|e| e.errno())
    }

    async fn exists(&self, path: &str) -> Result<Option<cosfs::fs::Entry>, i32> {
        match self.lookup(path).await {
            Ok(e) => Ok(Some(e)),
            Err(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// open(O_WRONLY [|O_CREAT] [|O_TRUNC] | O_NOFOLLOW): a handle.
    async fn open_write(&self, path: &str, create: bool, truncate: bool) -> Result<u64, i32> {
        let flags = OpenFlags {
            write: true,
            truncate,
            ..Default::default()
        };
        match self.exists(path).await? {
            Some(e) => {
                self.check_file(&e)?;
                let o = self.fs.open(e.ino, flags, self.pid).await;
                Ok(o.map_err(|e| e.errno())?.fh)
            }
            None if create => {
                let (dir, name) = self.parent(path).await?;
                let (_, o) = self
                    .fs
                    .create(dir, &name, 0o644, Owner::ROOT, flags, self.pid)
                    .await
                    .map_err(|e| e.errno())?;
                Ok(o.fh)
            }
            None => Err(libc::ENOENT),
        }
    }

    fn check_file(&self, e: &cosfs::fs::Entry) -> Result<(), i32> {
        use cosfs::fs::attr::FileKind;
        match e.attr.kind {
            FileKind::Directory => Err(libc::EISDIR),
            FileKind::Symlink => Err(libc::ELOOP),
            _ => Ok(()),
        }
    }

    /// close(2): flush, then release; the flush's error is close's.
    async fn close(&self, fh: u64) -> Result<(), i32> {
        let r = self.fs.flush(fh, self.pid).await.map_err(|e| e.errno());
        self.fs.release(fh).await;
        r
    }

    async fn apply(&self, op: &Op) -> Outcome {
        let fs = self.fs;
        let e = |e: cosfs::fs::error::FsError| e.errno();
        match op {
            Op::Write {
                path,
                offset,
                len,
                seed,
                truncate,
            } => {
                let fh = self.open_write(PATHS[*path], true, *truncate).await?;
                let w = fs
                    .write(fh, *offset, &pattern(*len, *seed))
                    .await
                    .map_err(e);
                let c = self.close(fh).await;
                w.and(c).map(|_| None)
            }
            Op::TwoWriters {
                path,
                first,
                second,
                seed,
            } => {
                let a = self.open_write(PATHS[*path], true, false).await?;
                let b = match self.open_write(PATHS[*path], false, false).await {
                    Ok(b) => b,
                    Err(err) => {
                        let _ = self.close(a).await;
                        return Err(err);
                    }
                };
                let w1 = fs.write(a, first.0, &pattern(first.1, *seed)).await;
                let w2 = fs.write(b, second.0, &pattern(second.1, seed + 1)).await;
                let c1 = self.close(a).await;
                let c2 = self.close(b).await;
                w1.map_err(e)?;
                w2.map_err(e)?;
                c1.and(c2).map(|_| None)
            }
            Op::Read { path, offset, len } => {
                let entry = self.lookup(PATHS[*path]).await?;
                self.check_file(&entry)?;
                let o = fs
                    .open(entry.ino, OpenFlags::default(), self.pid)
                    .await
                    .map_err(e)?;
                let mut out = Vec::new();
                let mut at = *offset;
                let r = loop {
                    if out.len() >= *len {
                        break Ok(());
                    }
                    let want = (*len - out.len()).min(1 << 20) as u32;
                    match fs.read(o.fh, at, want).await {
                        Ok(b) if b.is_empty() => break Ok(()),
                        Ok(b) => {
                            at += b.len() as u64;
                            out.extend_from_slice(&b);
                        }
                        Err(err) => break Err(e(err)),
                    }
                };
                fs.release(o.fh).await;
                r.map(|_| Some(out))
            }
            Op::Truncate { path, size } => {
                let fh = self.open_write(PATHS[*path], false, false).await?;
                let ino = self.lookup(PATHS[*path]).await?.ino;
                let set = SetAttr {
                    size: Some(*size),
                    ..Default::default()
                };
                let t = fs.setattr(ino, Some(fh), set).await.map_err(e);
                let c = self.close(fh).await;
                t.and(c).map(|_| None)
            }
            Op::Rename { from, to } => {
                let (sd, sp, sn) = self.walk(PATHS[*from]).await?;
                let (dd, dp, dn) = self.walk(PATHS[*to]).await?;
                self.lookup(PATHS[*from]).await?;
                // The VFS compares the resolved places: into its own subtree is EINVAL,
                // onto one of its ancestors ENOTEMPTY.
                let full = |dir: &str, name: &str| {
                    if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    }
                };
                let (src, dst) = (full(&sp, &sn), full(&dp, &dn));
                if src != dst && dst.starts_with(&format!("{src}/")) {
                    return Err(libc::EINVAL);
                }
                if src.starts_with(&format!("{dst}/")) {
                    return Err(libc::ENOTEMPTY);
                }
                fs.rename(sd, &sn, dd, &dn, 0)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::Unlink { path } => {
                let (d, n) = self.parent(PATHS[*path]).await?;
                fs.unlink(d, &n).await.map_err(e).map(|_| None)
            }
            Op::Mkdir { path } => {
                if self.exists(PATHS[*path]).await?.is_some() {
                    return Err(libc::EEXIST);
                }
                let (d, n) = self.parent(PATHS[*path]).await?;
                fs.mkdir(d, &n, 0o755, Owner::ROOT)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::Rmdir { path } => {
                let (d, n) = self.parent(PATHS[*path]).await?;
                fs.rmdir(d, &n).await.map_err(e).map(|_| None)
            }
            Op::Chmod { path, mode } => {
                let entry = self.lookup(PATHS[*path]).await?;
                if entry.attr.kind == cosfs::fs::attr::FileKind::Symlink {
                    return Ok(None);
                }
                let set = SetAttr {
                    mode: Some(*mode),
                    ..Default::default()
                };
                fs.setattr(entry.ino, None, set)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::Chown { path, uid, gid } => {
                let entry = self.lookup(PATHS[*path]).await?;
                // The kernel's chown of a non-directory also drops S_ISUID, and S_ISGID when
                // the group may execute (notify_change), in the same setattr.
                let perm = entry.attr.perm;
                let killed = if entry.attr.kind == cosfs::fs::attr::FileKind::Directory {
                    perm
                } else if perm & 0o010 != 0 {
                    perm & !0o6000
                } else {
                    perm & !0o4000
                };
                let set = SetAttr {
                    uid: Some(*uid),
                    gid: Some(*gid),
                    mode: (killed != perm).then_some(killed),
                    ..Default::default()
                };
                fs.setattr(entry.ino, None, set)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::SetTimes { path, secs } => {
                let entry = self.lookup(PATHS[*path]).await?;
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*secs as u64);
                let set = SetAttr {
                    atime: Some(t),
                    mtime: Some(t),
                    ..Default::default()
                };
                fs.setattr(entry.ino, None, set)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::Symlink { path, target } => {
                if self.exists(PATHS[*path]).await?.is_some() {
                    return Err(libc::EEXIST);
                }
                let (d, n) = self.parent(PATHS[*path]).await?;
                fs.symlink(d, &n, TARGETS[*target].as_bytes(), Owner::ROOT)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
            Op::SetXattr { path, value } => {
                let entry = self.lookup(PATHS[*path]).await?;
                if entry.attr.kind == cosfs::fs::attr::FileKind::Symlink {
                    return Ok(None);
                }
                fs.setxattr(entry.ino, XATTR, Some(&[*value]), 0)
                    .await
                    .map_err(e)
                    .map(|_| None)
            }
        }
    }
}

/// One entry of a tree as both sides can show it.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: char,
    size: u64,
    perm: u32,
    owner: (u32, u32),
    /// Only times `SetTimes` set (far in the past).
    set_mtime: Option<i64>,
    target: Option<String>,
    bytes: Option<Content>,
    xattr: Option<Vec<u8>>,
}

/// A file's bytes: compared whole, shown short (length and MD5) in a failure message.
#[derive(PartialEq, Eq)]
struct Content(Vec<u8>);

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&self.0));
        write!(f, "{} bytes, md5 {md5}", self.0.len())
    }
}

fn reference_tree(root: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let p = root.join(&rel);
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                stack.push(rel.clone());
                'd'
            } else if ft.is_symlink() {
                'l'
            } else {
                'f'
            };
            let mut buf = [0u8; 16];
            let name = CString::new(XATTR).unwrap();
            // SAFETY: valid C strings and a buffer of its stated size.
            let n = unsafe {
                libc::lgetxattr(
                    cpath(&p).as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            out.insert(
                rel.to_string_lossy().into_owned(),
                Seen {
                    kind,
                    size: if kind == 'd' { 0 } else { md.size() },
                    perm: if kind == 'l' { 0 } else { md.mode() & 0o7777 },
                    owner: (md.uid(), md.gid()),
                    set_mtime: Some(md.mtime()).filter(|t| *t < SET_TIMES_BEFORE),
                    target: (kind == 'l').then(|| {
                        std::fs::read_link(&p)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                    }),
                    bytes: (kind == 'f').then(|| Content(std::fs::read(&p).unwrap())),
                    xattr: (n > 0).then(|| buf[..n as usize].to_vec()),
                },
            );
        }
    }
    out
}

async fn fs_tree<S: cosfs::object::ObjectStore + ?Sized>(fs: &CosFs<S>) -> BTreeMap<String, Seen> {
    use cosfs::fs::attr::FileKind;
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT, String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let fh = fs.opendir(dir).unwrap();
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            let page = fs.readdir(fh, offset, 100).await.unwrap();
            if page.is_empty() {
                break;
            }
            offset = page.last().unwrap().offset;
            entries.extend(page);
        }
        fs.releasedir(fh);
        for le in entries {
            if le.name == "." || le.name == ".." {
                continue;
            }
            let path = if rel.is_empty() {
                le.name.clone()
            } else {
                format!("{rel}/{}", le.name)
            };
            let e = fs.lookup(dir, &le.name).await.unwrap();
            let a = &e.attr;
            let kind = match a.kind {
                FileKind::Directory => 'd',
                FileKind::Symlink => 'l',
                _ => 'f',
            };
            if kind == 'd' {
                stack.push((e.ino, path.clone()));
            }
            let bytes = if kind == 'f' {
                let o = fs.open(e.ino, OpenFlags::default(), 0).await.unwrap();
                let mut all = Vec::new();
                loop {
                    let b = fs.read(o.fh, all.len() as u64, 1 << 20).await.unwrap();
                    if b.is_empty() {
                        break;
                    }
                    all.extend_from_slice(&b);
                }
                fs.release(o.fh).await;
                Some(Content(all))
            } else {
                None
            };
            let mtime = a
                .mtime
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let target = if kind == 'l' {
                let t = fs.readlink(e.ino).await.unwrap();
                Some(String::from_utf8_lossy(&t).into_owned())
            } else {
                None
            };
            let xattr = if kind == 'l' {
                None
            } else {
                fs.getxattr(e.ino, XATTR).await.ok()
            };
            out.insert(
                path,
                Seen {
                    kind,
                    size: if kind == 'd' { 0 } else { a.size },
                    perm: if kind == 'l' { 0 } else { a.perm & 0o7777 },
                    owner: (a.uid, a.gid),
                    set_mtime: Some(mtime).filter(|t| *t < SET_TIMES_BEFORE),
                    target,
                    bytes,
                    xattr,
                },
            );
        }
    }
    out
}

fn tmp_dir() -> tempfile::TempDir {
    // tmpfs when there is one: the store's fsyncs are then free.
    if Path::new("/dev/shm").is_dir() {
        if let Ok(d) = tempfile::tempdir_in("/dev/shm") {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn new_fs(store: Arc<FaultyStore<LocalStore>>, cache: &Path) -> CosFs<FaultyStore<LocalStore>> {
    CosFs::new(
        store,
        FsConfig {
            cache_dir: cache.join("staging"),
            // Small parts, so files of a few hundred KiB are multipart uploads too.
            part_size: 1 << 20,
            upload_concurrency: 4,
            metadata_ttl: std::time::Duration::from_secs(3600),
            ..Default::default()
        },
    )
}

/// Operations run so far by this test binary (printed, so the CI log shows how many).
static OPS_RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Run `ops` (each with a flag: under faults); panics at the first divergence.
async fn run(ops: &[(Op, bool)]) {
    let total = OPS_RUN.fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed) + ops.len();
    if total / 5000 != (total - ops.len()) / 5000 {
        eprintln!("fs_model: {total} operations run");
    }
    let reference_dir = tmp_dir();
    let store_dir = tmp_dir();
    let cache = tmp_dir();
    let local = Arc::new(LocalStore::open(store_dir.path(), common::BUCKET).unwrap());
    let store = Arc::new(FaultyStore::new(local, 7));
    let fs = new_fs(store.clone(), cache.path());
    let vfs = Vfs {
        fs: &fs,
        pid: std::process::id(),
    };
    let mut refused = false;
    for (i, (op, faulted)) in ops.iter().enumerate() {
        if *faulted {
            store.set_faults(Faults {
                rate_503: 1.0,
                only: WRITES.to_vec(),
                ..Default::default()
            });
        }
        let got = vfs.apply(op).await;
        // Deletes are deferred: the op's own (unlink, rmdir) are sent under its faults, and
        // the commit point (as an rmdir, a directory fsync or the unmount would) reports them.
        let settled = fs.settle_deletes("").await;
        store.set_faults(Faults::default());
        let got = match (got, settled) {
            (Ok(_), Err(e)) => Err(e.errno()),
            (got, _) => got,
        };
        if *faulted && got == Err(libc::EIO) {
            // A create that succeeded before its upload failed moved its directory's mtime.
            refused = true;
            // Refused by the store (other errors are the operation's own, checked below):
            // nothing changed, so a fresh fs over the store shows the reference tree.
            let fresh = new_fs(store.clone(), cache.path());
            let want = without_dir_mtimes(reference_tree(reference_dir.path()));
            let seen = without_dir_mtimes(fs_tree(&fresh).await);
            assert_eq!(seen, want, "after failed op {i} {op:?}");
            continue;
        }
        let want = reference(reference_dir.path(), op);
        assert_eq!(got, want, "op {i}: {op:?}");
    }
    let want = reference_tree(reference_dir.path());
    let live = fs_tree(&fs).await;
    if refused {
        assert_eq!(
            without_dir_mtimes(live),
            without_dir_mtimes(reference_tree(reference_dir.path())),
            "the tree on this fs"
        );
    } else {
        assert_eq!(live, want, "the tree on this fs");
    }
    let fresh = new_fs(store, cache.path());
    assert_eq!(
        without_dir_mtimes(fs_tree(&fresh).await),
        without_dir_mtimes(want),
        "the tree a remount shows"
    );
}

/// A directory's mtime moves on this mount when entries come and go, but its marker on COS is
/// not rewritten for that (README, semantics): a remount shows the mtime last set on purpose.
fn without_dir_mtimes(mut t: BTreeMap<String, Seen>) -> BTreeMap<String, Seen> {
    for s in t.values_mut().filter(|s| s.kind == 'd') {
        s.set_mtime = None;
    }
    t
}

fn cases() -> u32 {
    std::env::var("COSFS_FS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_match_a_local_directory(
        ops in proptest::collection::vec((op(), proptest::bool::weighted(0.1)), 1..100)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(&ops));
    }
}

// Shrunk failures the generator found, kept as named cases (`ok`: run normally; `refused`:
// with the store refusing every write).

fn ok(op: Op) -> (Op, bool) {
    (op, false)
}

fn refused(op: Op) -> (Op, bool) {
    (op, true)
}

/// A write of no bytes at `offset` (at 0 it creates an empty file).
fn empty_write(path: usize, offset: u64) -> Op {
    Op::Write {
        path,
        offset,
        len: 0,
        seed: 0,
        truncate: false,
    }
}

/// Two handles of a new file, each writing one byte at 0.
fn two_writers(path: usize) -> Op {
    Op::TwoWriters {
        path,
        first: (0, 1),
        second: (0, 1),
        seed: 0,
    }
}

fn set_times(path: usize, secs: i64) -> Op {
    Op::SetTimes { path, secs }
}

/// After two writers of a new file both failed to publish, the name must be gone (nothing
/// reached COS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failed_writers_of_a_new_file_leave_no_name() {
    run(&[
        refused(two_writers(2)),
        ok(Op::SetXattr { path: 4, value: 0 }),
    ])
    .await;
}

/// A path through a symlink (here one that points at itself: ELOOP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_through_a_symlink_to_a_file() {
    run(&[
        ok(Op::Symlink { path: 2, target: 2 }),
        ok(two_writers(0)),
        ok(empty_write(4, 0)),
    ])
    .await;
}

/// Creating an entry in a directory moves the directory's mtime on this mount, also after a
/// utimens set it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_entry_moves_its_directory_mtime() {
    run(&[
        ok(Op::Mkdir { path: 3 }),
        ok(set_times(3, 1_000_000)),
        ok(empty_write(8, 0)),
    ])
    .await;
}

/// A chown drops S_ISGID from a group-executable file (done by the kernel in the same
/// setattr) and cosfs keeps what it is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chown_of_a_set_group_id_file() {
    run(&[
        ok(two_writers(0)),
        ok(Op::Chmod {
            path: 0,
            mode: 0o2270,
        }),
        ok(Op::Chown {
            path: 0,
            uid: 1000,
            gid: 1000,
        }),
    ])
    .await;
}

/// An xattr change of a directory (a marker rewrite) keeps the mtime that entries made in it
/// gave it on this mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_xattr_change_keeps_its_later_mtime() {
    run(&[
        ok(Op::Mkdir { path: 3 }),
        ok(set_times(3, 1_000_000)),
        ok(empty_write(8, 0)),
        ok(Op::SetXattr { path: 3, value: 0 }),
    ])
    .await;
}

/// A rename into its own subtree through a symlink is EINVAL (the VFS compares resolved
/// places, not the strings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_into_its_own_subtree_through_a_symlink() {
    run(&[
        ok(Op::Mkdir { path: 2 }),
        ok(Op::Mkdir { path: 5 }),
        ok(Op::Symlink { path: 3, target: 1 }),
        ok(Op::Rename { from: 2, to: 8 }),
    ])
    .await;
}

/// A file created in a directory whose upload is then refused moved the directory's mtime on
/// this mount (the create itself succeeded), so directory mtimes are not compared once a
/// refused operation ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_new_file_in_a_directory_with_a_set_mtime() {
    run(&[
        ok(Op::Mkdir { path: 3 }),
        ok(set_times(3, 1_000_000)),
        refused(empty_write(8, 0)),
    ])
    .await;
}

/// Writing no bytes past the end of a new file leaves it empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_write_past_the_end_does_not_grow_the_file() {
    run(&[ok(empty_write(3, 1))]).await;
}

/// A file chmod'ed 000 is still 000 after a remount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chmod_000_survives_a_remount() {
    run(&[ok(empty_write(2, 0)), ok(Op::Chmod { path: 2, mode: 0 })]).await;
}
