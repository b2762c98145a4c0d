//! Private local directories: where cosfs keeps files on this machine (staging files, the disk
//! cache, the upload journal), safe on a machine other users share (`docs/DESIGN.md` "Not alone").
//!
//! - `PrivateDir::open(path)` walks `path` from `/` one component at a time with
//!   `openat(O_NOFOLLOW)`, so no component can be swapped for a symlink behind our back. Every
//!   directory on the way must be owned by root or by us; one that group or others may write
//!   must be sticky (like `/tmp`), and the entry looked up in it must then be ours or root's
//!   (the sticky bit keeps others from renaming or removing it). A symlink on the way is
//!   followed only when the same rules trust it (root's `/var/run -> /run`), never one another
//!   user could have made. Missing components are made with mode 0700.
//! - The directory itself must be owned by the effective user with no access for group or
//!   others: made 0700 when missing, else refused as it is (never `chmod`ed: a path given by
//!   mistake, such as a home directory, is not ours to change).
//! - Everything inside is reached relative to the verified directory's descriptor, with
//!   `O_NOFOLLOW` on every component: files are created `O_EXCL` with mode 0600 (or
//!   anonymous, `O_TMPFILE`), subdirectories 0700. Temporary names carry 64 random bits.
//!
//! Errors say which path failed which rule, so that a refused mount tells the user what to fix.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// How many symlinks a walk follows at most (the kernel's own limit is 40).
const MAX_LINKS: usize = 32;

/// Why a directory cannot be used as a private directory.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is owned by uid {owner}, not by uid {us} (this user) or root: another user could change what is in it")]
    NotOurs { path: PathBuf, owner: u32, us: u32 },
    #[error("{path} (mode {mode:04o}) may be written by other users and is not sticky: another user could replace what is in it")]
    OthersMayWrite { path: PathBuf, mode: u32 },
    #[error("{path} has mode {mode:04o}: group and others must have no access (chmod 700, or name a new directory)")]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("{path} is not a directory")]
    NotDirectory { path: PathBuf },
    #[error("{path} is a symlink another user could have made")]
    UntrustedSymlink { path: PathBuf },
    #[error("{path}: too many symlinks")]
    TooManyLinks { path: PathBuf },
}

/// A directory only this user can reach, and a descriptor of it.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    fd: OwnedFd,
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn io_err(path: &Path, e: impl Into<std::io::Error>) -> PrivateDirError {
    PrivateDirError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Whether a directory may hold the next component of a walk: owned by root or us, and not
/// writable by others unless sticky. Returns whether it is shared (sticky and writable by
/// others), in which case the entry found in it must be ours or root's.
fn check_ancestor(path: &Path, st: &Stat) -> Result<bool, PrivateDirError> {
    check_entry_owner(path, st)?;
    let mode = st.st_mode & 0o7777;
    let others_write = mode & 0o022 != 0;
    if others_write && mode & 0o1000 == 0 {
        return Err(PrivateDirError::OthersMayWrite {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(others_write)
}

/// Owned by root or by us.
fn check_entry_owner(path: &Path, st: &Stat) -> Result<(), PrivateDirError> {
    let us = euid();
    if st.st_uid != 0 && st.st_uid != us {
        return Err(PrivateDirError::NotOurs {
            path: path.to_path_buf(),
            owner: st.st_uid,
            us,
        });
    }
    Ok(())
}

/// The components of an absolute form of `path`, `.` dropped (`..` kept: it is resolved by
/// the walk against the real parent).
fn components(path: &Path) -> Result<Vec<PathBuf>, PrivateDirError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| io_err(path, e))?
            .join(path)
    };
    Ok(abs
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect())
}

impl PrivateDir {
    /// `path` as a private directory of this user: made (0700, missing parents too) if
    /// missing, else verified. See the module comment for the rules.
    pub fn open(path: &Path) -> Result<PrivateDir, PrivateDirError> {
        let mut todo: Vec<PathBuf> = components(path)?;
        todo.reverse();
        let root = Path::new("/");
        let mut fd =
            rustix::fs::open(root, dir_flags(), Mode::empty()).map_err(|e| io_err(root, e))?;
        // The directories walked so far (for `..` and for messages).
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut here = PathBuf::from("/");
        let mut links = 0;
        let mut created_last = false;
        while let Some(name) = todo.pop() {
            if name.as_os_str() == ".." {
                if let Some(parent) = stack.pop() {
                    fd = parent;
                    here.pop();
                }
                continue;
            }
            let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&here, e))?;
            let shared = check_ancestor(&here, &st)?;
            let next = here.join(&name);
            let last = todo.is_empty();
            created_last = false;
            let child = match rustix::fs::openat(&fd, &name, dir_flags(), Mode::empty()) {
                Ok(c) => c,
                Err(rustix::io::Errno::NOENT) => {
                    match rustix::fs::mkdirat(&fd, &name, Mode::from_raw_mode(0o700)) {
                        Ok(()) => created_last = true,
                        Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(io_err(&next, e)),
                    }
                    rustix::fs::openat(&fd, &name, dir_flags(), Mode::empty())
                        .map_err(|e| io_err(&next, e))?
                }
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    let lst = rustix::fs::statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| io_err(&next, e))?;
                    if FileType::from_raw_mode(lst.st_mode) != FileType::Symlink {
                        return Err(PrivateDirError::NotDirectory { path: next });
                    }
                    // A link is trusted like a directory entry: root's or ours, and then
                    // only in a directory nobody else could have put it in.
                    if lst.st_uid != 0 && lst.st_uid != euid() {
                        return Err(PrivateDirError::UntrustedSymlink { path: next });
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(PrivateDirError::TooManyLinks { path: next });
                    }
                    let target = rustix::fs::readlinkat(&fd, &name, Vec::new())
                        .map_err(|e| io_err(&next, e))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                    let mut parts: Vec<PathBuf> = if target.is_absolute() {
                        fd = rustix::fs::open(root, dir_flags(), Mode::empty())
                            .map_err(|e| io_err(root, e))?;
                        stack.clear();
                        here = PathBuf::from("/");
                        components(&target)?
                    } else {
                        target
                            .components()
                            .filter_map(|c| match c {
                                Component::Normal(n) => Some(PathBuf::from(n)),
                                Component::ParentDir => Some(PathBuf::from("..")),
                                _ => None,
                            })
                            .collect()
                    };
                    parts.reverse();
                    todo.extend(parts);
                    continue;
                }
                Err(e) => return Err(io_err(&next, e)),
            };
            let cst = rustix::fs::fstat(&child).map_err(|e| io_err(&next, e))?;
            if shared || last {
                check_entry_owner(&next, &cst)?;
            }
            stack.push(std::mem::replace(&mut fd, child));
            here = next;
        }
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&here, e))?;
        let us = euid();
        if st.st_uid != us {
            return Err(PrivateDirError::NotOurs {
                path: here,
                owner: st.st_uid,
                us,
            });
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            if created_last {
                // Made just now by us: the umask cannot widen 0700, but be exact anyway.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
                    .map_err(|e| io_err(&here, e))?;
            } else {
                return Err(PrivateDirError::NotPrivate { path: here, mode });
            }
        }
        Ok(PrivateDir {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> std::io::Result<PrivateDir> {
        Ok(PrivateDir {
            path: self.path.clone(),
            fd: self.fd.try_clone()?,
        })
    }

    /// The path it was opened by (for messages; files are reached through the descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The private subdirectory `name` (one component), made 0700 if missing.
    pub fn subdir(&self, name: &str) -> Result<PrivateDir, PrivateDirError> {
        let path = self.path.join(name);
        check_component(name).map_err(|e| io_err(&path, e))?;
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_err(&path, e)),
        }
        let fd = rustix::fs::openat(&self.fd, name, dir_flags(), Mode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                PrivateDirError::NotDirectory { path: path.clone() }
            } else {
                io_err(&path, e)
            }
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&path, e))?;
        let us = euid();
        if st.st_uid != us {
            return Err(PrivateDirError::NotOurs {
                path,
                owner: st.st_uid,
                us,
            });
        }
        if st.st_mode & 0o077 != 0 {
            return Err(PrivateDirError::NotPrivate {
                path,
                mode: st.st_mode & 0o7777,
            });
        }
        Ok(PrivateDir { path, fd })
    }

    /// A new anonymous file (0600): it has no name, so nobody can open it and a crash leaves
    /// nothing behind. Where the filesystem has no `O_TMPFILE`, a file under a random name
    /// made with `O_EXCL` and unlinked at once.
    pub fn anonymous_file(&self) -> std::io::Result<File> {
        let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, ".", flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL,
            ) => {}
            Err(e) => return Err(e.into()),
        }
        let name = temp_name(".stage", "");
        let f = self.create_new(&name)?;
        self.remove_file(&name)?;
        Ok(f)
    }

    /// Create `rel` (components below this directory, each reached without following a
    /// symlink) exclusively, mode 0600, for writing.
    pub fn create_new(&self, rel: &str) -> std::io::Result<File> {
        let (dir, name) = self.parent_of(rel)?;
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    /// Open the existing file `rel`, without following a symlink anywhere on the way.
    pub fn open_file(&self, rel: &str, write: bool) -> std::io::Result<File> {
        let (dir, name) = self.parent_of(rel)?;
        let access = if write { OFlags::RDWR } else { OFlags::RDONLY };
        let fd = rustix::fs::openat(
            dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            name,
            access | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{rel} is not a regular file"),
            ));
        }
        Ok(f)
    }

    /// Open `rel` for writing, made (0600) if missing; never through a symlink.
    pub fn open_or_create(&self, rel: &str) -> std::io::Result<File> {
        match self.create_new(rel) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.open_file(rel, true),
            other => other,
        }
    }

    /// Make the subdirectory `rel` (0700) if missing.
    pub fn make_dir(&self, rel: &str) -> std::io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        match rustix::fs::mkdirat(
            dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            name,
            Mode::from_raw_mode(0o700),
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Rename `from` to `to` (both below this directory).
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let (fdir, fname) = self.parent_of(from)?;
        let (tdir, tname) = self.parent_of(to)?;
        rustix::fs::renameat(
            fdir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            fname,
            tdir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            tname,
        )?;
        Ok(())
    }

    /// Remove the file `rel`.
    pub fn remove_file(&self, rel: &str) -> std::io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        rustix::fs::unlinkat(
            dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
            name,
            AtFlags::empty(),
        )?;
        Ok(())
    }

    /// The names in the subdirectory `rel` (`""`: this directory), with what each is.
    pub fn entries(&self, rel: &str) -> std::io::Result<Vec<(String, FileType)>> {
        let fd = if rel.is_empty() {
            rustix::fs::openat(&self.fd, ".", dir_flags(), Mode::empty())?
        } else {
            let (dir, name) = self.parent_of(rel)?;
            rustix::fs::openat(
                dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
                name,
                dir_flags(),
                Mode::empty(),
            )?
        };
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match e.file_type() {
                // Filesystems that do not fill in d_type: ask the inode.
                FileType::Unknown => {
                    rustix::fs::statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode))
                        .unwrap_or(FileType::Unknown)
                }
                known => known,
            };
            out.push((name, kind));
        }
        Ok(out)
    }

    /// The descriptor of the directory holding `rel`'s last component (None: this one), each
    /// directory on the way opened without following a symlink, and that last component.
    fn parent_of<'a>(&self, rel: &'a str) -> std::io::Result<(Option<OwnedFd>, &'a str)> {
        let mut parts: Vec<&str> = rel.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        check_component(name)?;
        let mut dir: Option<OwnedFd> = None;
        for p in parts {
            check_component(p)?;
            let next = rustix::fs::openat(
                dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd()),
                p,
                dir_flags(),
                Mode::empty(),
            )?;
            dir = Some(next);
        }
        Ok((dir, name))
    }
}

/// A name of one component that stays inside the directory.
fn check_component(name: &str) -> std::io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(())
}

/// `prefix` + 16 random hex digits + `suffix`: a name nobody can guess ahead.
pub fn temp_name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}.{:016x}{suffix}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_missing_directory_is_made_private_with_its_parents() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a/b/c");
        let d = PrivateDir::open(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        let mut f = d.create_new("x").unwrap();
        std::io::Write::write_all(&mut f, b"hi").unwrap();
        assert_eq!(mode(&p.join("x")), 0o600);
        assert!(d.create_new("x").is_err(), "exclusive");
        assert_eq!(d.entries("").unwrap().len(), 1);
        d.make_dir("sub").unwrap();
        d.create_new("sub/y").unwrap();
        d.rename("sub/y", "sub/z").unwrap();
        assert!(p.join("sub/z").exists());
        d.remove_file("sub/z").unwrap();
        let anon = d.anonymous_file().unwrap();
        assert_eq!(anon.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            d.entries("sub").unwrap().len(),
            0,
            "anonymous files have no name"
        );
        assert!(d.create_new("../escape").is_err());
    }

    #[test]
    fn an_existing_directory_open_to_others_is_refused_not_changed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("loose");
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = PrivateDir::open(&p).unwrap_err();
        assert!(matches!(e, PrivateDirError::NotPrivate { .. }), "{e}");
        assert_eq!(mode(&p), 0o755, "left as it was");
    }

    #[test]
    fn symlinks_inside_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = PrivateDir::open(&t.path().join("d")).unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        symlink(&victim, t.path().join("d/link")).unwrap();
        assert!(d.open_or_create("link").is_err());
        assert!(d.open_file("link", true).is_err());
        symlink(t.path(), t.path().join("d/dirlink")).unwrap();
        assert!(d.create_new("dirlink/victim2").is_err());
        assert!(!t.path().join("victim2").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A symlink as the directory itself is fine when it is ours, in a directory of ours.
        symlink(t.path().join("d"), t.path().join("alias")).unwrap();
        PrivateDir::open(&t.path().join("alias")).unwrap();
    }

    #[test]
    fn a_shared_sticky_parent_is_fine_when_the_entry_is_ours() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        PrivateDir::open(&shared.join("mine")).unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PrivateDir::open(&open.join("mine")).unwrap_err();
        assert!(matches!(e, PrivateDirError::OthersMayWrite { .. }), "{e}");
    }
}
