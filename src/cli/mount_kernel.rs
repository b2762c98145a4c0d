//! The kernel side of a mount: the mountpoint checked (and a dead cosfs mount on it cleared),
//! whether the mount answers, its readahead, and unmounting.

use std::path::Path;

pub(super) fn check_mountpoint(p: &Path, nonempty_ok: bool) -> Result<(), String> {
    let md = match std::fs::metadata(p) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            clear_stale_mount(p)?;
            std::fs::metadata(p)
        }
        other => other,
    }
    .map_err(|e| format!("mountpoint {}: {e}", p.display()))?;
    if !md.is_dir() {
        return Err(format!("mountpoint {} is not a directory", p.display()));
    }
    // A live cosfs mount there: a second one would stack on it (and hide it).
    let abs = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    if let Some((t, src)) = mount_type(&abs).filter(|(t, src)| is_cosfs(t, src)) {
        return Err(format!(
            "{} is already a cosfs mount ({} {src}); unmount it first: cosfs unmount {}",
            abs.display(),
            t,
            abs.display()
        ));
    }
    let mut entries =
        std::fs::read_dir(p).map_err(|e| format!("mountpoint {}: {e}", p.display()))?;
    if !nonempty_ok && entries.next().is_some() {
        return Err(format!(
            "mountpoint {} is not empty (is something already mounted there? --nonempty mounts anyway)",
            p.display()
        ));
    }
    Ok(())
}

/// The filesystem type and source of the mount on `p` (absolute, not canonicalised: a dead
/// mount cannot be resolved), from /proc/self/mountinfo; the last one mounted there wins.
fn mount_type(p: &Path) -> Option<(String, String)> {
    let want = p.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .filter_map(|l| {
            let mut f = l.split(" - ").nth(1)?.split(' ');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .next()
}

/// Whether a mount of type `t` from `src` is cosfs: `fuse.cosfs` through fusermount, or plain
/// `fuse` with our fsname as root.
fn is_cosfs(t: &str, src: &str) -> bool {
    t == "fuse.cosfs" || (t == "fuse" && src.starts_with("cosfs:"))
}

/// `cosfs unmount` takes cosfs mounts only: what else is mounted there (a tmpfs, a disk) is
/// not ours to take down.
pub(super) fn check_is_cosfs_mount(p: &Path) -> Result<(), String> {
    match mount_type(p) {
        Some((t, src)) if is_cosfs(&t, &src) => Ok(()),
        Some((t, src)) => Err(format!(
            "{} is not a cosfs mount (it is {t}, from {src}); unmount other filesystems with umount",
            p.display()
        )),
        None => Err(format!("{} is not a mount point", p.display())),
    }
}

/// A cosfs process died without unmounting (kill -9, OOM): its mountpoint answers ENOTCONN.
/// Detach that dead mount so this one can take its place; anything else is left alone.
fn clear_stale_mount(p: &Path) -> Result<(), String> {
    let abs = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    let found = mount_type(&abs);
    match &found {
        Some((t, src)) if is_cosfs(t, src) => {
            unmount(&abs, true)?;
            eprintln!(
                "cosfs mount: {} held a dead cosfs mount (its process had died); detached it",
                abs.display()
            );
            Ok(())
        }
        _ => Err(format!(
            "mountpoint {} is a dead mount ({}) whose process is gone; unmount it: umount -l {}",
            abs.display(),
            found.as_ref().map_or("unknown type", |(t, _)| t.as_str()),
            abs.display()
        )),
    }
}

/// Whether `mountpoint` is a mount that answers (its root is on another device than its
/// parent directory).
pub(super) fn answers(mountpoint: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| format!("the mount on {} does not answer: {e}", mountpoint.display()))?;
    let parent = mountpoint.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(parent) {
        Ok(p) if p.dev() == md.dev() => Err(format!("{} is not mounted", mountpoint.display())),
        _ => Ok(()),
    }
}

/// Ask the kernel for 1 MiB readahead on this mount (the default is 128 KiB), so sequential
/// reads arrive as large requests. Needs root; best effort. Runs beside the session: the
/// stat waits until the kernel's INIT is answered, which would otherwise reset the value.
pub(super) fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(mountpoint) else {
        return;
    };
    let (major, minor) = (libc::major(md.dev()), libc::minor(md.dev()));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, "1024") {
        tracing::debug!(path, error = %e, "could not raise readahead");
    }
}

/// How an unmount went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Clean,
    /// Busy, so detached lazily: open files keep their (now unreachable) connection.
    Detached,
}

/// Unmount `mountpoint`: umount(2) as root, else `fusermount3 -u`. With `lazy_if_busy`, a
/// busy mount is detached.
pub fn unmount(mountpoint: &Path, lazy_if_busy: bool) -> Result<Unmounted, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| "mountpoint contains NUL".to_string())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(Unmounted::Clean);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) if lazy_if_busy => {
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return Ok(Unmounted::Detached);
            }
            Err(std::io::Error::last_os_error().to_string())
        }
        Some(libc::EBUSY) => Err(format!(
            "{} is busy (files are open); close them or use --lazy",
            mountpoint.display()
        )),
        Some(libc::EINVAL) => Err(format!("{} is not a mount point", mountpoint.display())),
        Some(libc::EPERM) => fusermount_unmount(mountpoint, lazy_if_busy),
        _ => Err(format!("{}: {err}", mountpoint.display())),
    }
}

fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<Unmounted, String> {
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mountpoint)
        .output()
        .map_err(|e| format!("fusermount3: {e}"))?;
    if out.status.success() {
        Ok(if lazy {
            Unmounted::Detached
        } else {
            Unmounted::Clean
        })
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
