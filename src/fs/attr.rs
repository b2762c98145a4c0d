//! POSIX attributes of objects, compatible with buckets written by Tencent's cosfs and s3fs.
//!
//! Sources, per attribute (first that is present and valid wins):
//! - type: a key ending in `/` is a directory; otherwise the file-type bits of
//!   `x-cos-meta-mode` (symlink, directory, FIFO, socket, character or block device), else a
//!   regular file; a device's number is `x-cos-meta-rdev` (decimal, the kernel's encoding, as
//!   s3fs keeps it in `x-amz-meta-rdev`);
//! - permission bits: `x-cos-meta-mode & 0o7777` when non-zero, else the mount's defaults
//!   (files 0644, directories 0755), so an object from another tool is never `---------`;
//! - owner: `x-cos-meta-uid` / `-gid`, else the mount's uid/gid;
//! - mtime: `x-cos-meta-mtime`, else the object's Last-Modified, else now: never a 1970 date;
//!   ctime/atime: their own headers or mtime. atime is written only when it differs from mtime.
//!
//! Times on the wire (`TimeHeaders`): `x-cos-meta-mtime`, `-ctime` and `-atime` hold integer
//! seconds (floored; negative before 1970), which is all Tencent's cosfs and s3fs can read:
//! their parser stops at a `.` and returns 0, so a fractional value reads as 1970 there. A time
//! with a fraction also gets `x-cos-meta-cosfs-mtime` (and `-ctime`, `-atime`) with the exact
//! value (`1796192815.752181361`, `-1.5`). cosfs reads the exact header first, but only while
//! its whole seconds are those of the plain header: a tool that rewrote the plain header and
//! carried ours along unread (s3fs's chmod keeps every header) wins. A fractional plain header,
//! as cosfs wrote until 0.x, is still read exactly.
//!
//! Listing entries carry no user metadata, so attributes built from a listing alone use the
//! defaults for type, mode and owner and Last-Modified for mtime (`AttrSource::Listing`). They
//! are only handed out under `--listing-metadata=off`; otherwise a HEAD (`dir_meta`) or a
//! lookup gives the full set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::object::{ListEntry, ObjectMeta, UserMeta};

pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFIFO: u32 = 0o010_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFBLK: u32 = 0o060_000;
pub const S_IFSOCK: u32 = 0o140_000;
/// S_ISGID: on a directory, new entries take its group.
pub const SET_GROUP_ID: u32 = 0o2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind the file-type bits of a mode say (`None` for bits that name no kind).
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & S_IFMT {
            S_IFREG => FileKind::File,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            S_IFIFO => FileKind::Fifo,
            S_IFSOCK => FileKind::Socket,
            S_IFCHR => FileKind::CharDevice,
            S_IFBLK => FileKind::BlockDevice,
            _ => return None,
        })
    }

    pub fn type_bits(self) -> u32 {
        match self {
            FileKind::File => S_IFREG,
            FileKind::Directory => S_IFDIR,
            FileKind::Symlink => S_IFLNK,
            FileKind::Fifo => S_IFIFO,
            FileKind::Socket => S_IFSOCK,
            FileKind::CharDevice => S_IFCHR,
            FileKind::BlockDevice => S_IFBLK,
        }
    }

    /// FIFOs, sockets and devices: zero-byte objects whose opening is the kernel's business.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice
        )
    }

    pub fn is_device(self) -> bool {
        matches!(self, FileKind::CharDevice | FileKind::BlockDevice)
    }
}

/// Values for objects that carry no POSIX metadata (`--uid/--gid/--file-mode/--dir-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrDefaults {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits of files (default 0644: what `touch` gives under a 022 umask).
    pub file_mode: u32,
    /// Permission bits of directories (default 0755).
    pub dir_mode: u32,
}

impl AttrDefaults {
    /// Owned by the mounting user, 0644 files and 0755 directories.
    pub fn for_current_user() -> Self {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        AttrDefaults {
            uid,
            gid,
            file_mode: 0o644,
            dir_mode: 0o755,
        }
    }
}

/// Where a set of attributes came from: a listing knows less than a HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrSource {
    Listing,
    Head,
    /// A directory that exists only because keys start with its prefix.
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixAttr {
    pub kind: FileKind,
    /// Permission bits only (no file-type bits).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Device number of character and block devices (the kernel's encoding), else 0.
    pub rdev: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub atime: SystemTime,
    /// The object's ETag (None for implicit directories).
    pub etag: Option<String>,
    /// The object's Last-Modified as COS reported it with these attributes (None when this
    /// mount changed the object since, or for implicit directories).
    pub last_modified: Option<SystemTime>,
    /// When the HEAD that gave these attributes was answered (None unless `source` is Head).
    pub checked: Option<SystemTime>,
    pub source: AttrSource,
    /// The name was unlinked while the file is open on this mount (`st_nlink` 0).
    pub unlinked: bool,
    /// A symlink's target, when it was fetched with these attributes (same version).
    pub target: Option<bytes::Bytes>,
    /// In ARCHIVE or DEEP_ARCHIVE storage (from the listing or HEAD): opening it for reading
    /// checks its restore first.
    pub archived: bool,
    /// An appendable object (known from HEAD only): readers do not pin its ETag.
    pub appendable: bool,
}

impl PosixAttr {
    /// This mount wrote the object (now `etag`): these attributes are the truth, and its new
    /// Last-Modified is not known, so no listing can stand in for a HEAD of it.
    pub fn changed_here(&mut self, etag: Option<String>) {
        self.etag = etag;
        self.last_modified = None;
        self.checked = None;
        self.source = AttrSource::Head;
    }

    /// `st_nlink`: objects have no hard links; a directory counts 2 (its subdirectories are
    /// not counted: that would take a LIST per stat); a file unlinked while open, 0.
    pub fn nlink(&self) -> u32 {
        match (self.unlinked, self.kind) {
            (true, _) => 0,
            (false, FileKind::Directory) => 2,
            (false, _) => 1,
        }
    }

    /// `st_mode`: file-type bits plus permission bits.
    pub fn st_mode(&self) -> u32 {
        self.kind.type_bits() | self.perm
    }
}

/// Seconds since the epoch, integer or fractional, negative before 1970 (`-1.5` is
/// 1969-12-31 23:59:58.5); `None` for garbage and for zero (what broken writers leave).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (before, magnitude) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let d = parse_magnitude(magnitude)?;
    if d.is_zero() {
        return None;
    }
    if before {
        UNIX_EPOCH.checked_sub(d)
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

/// A non-negative number of seconds.
fn parse_magnitude(s: &str) -> Option<Duration> {
    // Decimal digits are read exactly (an f64 keeps only ~100 ns of a current time); other
    // spellings (exponents) go through f64.
    if let Some((int, frac)) = s.split_once('.').or(Some((s, ""))) {
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if !int.is_empty() && digits(int) && digits(frac) {
            let secs: u64 = int.parse().ok()?;
            let mut nanos: u32 = 0;
            for (i, b) in frac.bytes().take(9).enumerate() {
                nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
            }
            return Some(Duration::new(secs, nanos));
        }
    }
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return None;
    }
    let secs = v.trunc() as u64;
    let nanos = ((v - v.trunc()) * 1e9).round().min(999_999_999.0) as u32;
    Some(Duration::new(secs, nanos))
}

/// Format a time the way cosfs reads it back (fractional seconds only when needed, a minus
/// sign before 1970).
pub fn format_time(t: SystemTime) -> String {
    let (sign, d) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ("", d),
        Err(e) => ("-", e.duration()),
    };
    if d.subsec_nanos() == 0 {
        format!("{sign}{}", d.as_secs())
    } else {
        format!("{sign}{}.{:09}", d.as_secs(), d.subsec_nanos())
            .trim_end_matches('0')
            .to_string()
    }
}

/// One of the three times an object's headers hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    Modified,
    Changed,
    Accessed,
}

impl Time {
    pub const ALL: [Time; 3] = [Time::Modified, Time::Changed, Time::Accessed];

    /// The `x-cos-meta-` name of its whole seconds, as Tencent's cosfs and s3fs read it.
    pub fn plain_header(self) -> &'static str {
        match self {
            Time::Modified => "mtime",
            Time::Changed => "ctime",
            Time::Accessed => "atime",
        }
    }

    /// The `x-cos-meta-` name of its exact value, when it has a fraction.
    pub fn exact_header(self) -> &'static str {
        match self {
            Time::Modified => "cosfs-mtime",
            Time::Changed => "cosfs-ctime",
            Time::Accessed => "cosfs-atime",
        }
    }
}

/// Remove every time header (plain and exact) from `m`.
pub fn remove_times(m: &mut UserMeta) {
    for t in Time::ALL {
        m.remove(t.plain_header());
        m.remove(t.exact_header());
    }
}

/// Whole seconds since the epoch, floored (so -1.5 is -2, as `st_mtime` has it).
pub fn whole_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            let s = -(d.as_secs() as i64);
            if d.subsec_nanos() > 0 {
                s - 1
            } else {
                s
            }
        }
    }
}

/// Write `t` as `which`: integer seconds in the plain header, the exact value beside it when
/// it has a fraction.
fn store_time(m: &mut UserMeta, which: Time, t: SystemTime) {
    m.insert(which.plain_header().into(), whole_seconds(t).to_string());
    if !is_whole(t) {
        m.insert(which.exact_header().into(), format_time(t));
    }
}

fn is_whole(t: SystemTime) -> bool {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.subsec_nanos() == 0,
        Err(e) => e.duration().subsec_nanos() == 0,
    }
}

/// The time `which` an object's headers hold: the exact header while it agrees with the plain
/// one to the second (or the plain one is missing), else the plain one.
pub fn stored_time(m: &UserMeta, which: Time) -> Option<SystemTime> {
    let plain = m.get(which.plain_header()).and_then(|v| parse_time(v));
    let exact = m.get(which.exact_header()).and_then(|v| parse_time(v));
    match (plain, exact) {
        (Some(p), Some(e)) if whole_seconds(p) == whole_seconds(e) => Some(e),
        (None, Some(e)) => Some(e),
        (p, _) => p,
    }
}

fn meta_u32(meta: &UserMeta, name: &str) -> Option<u32> {
    meta.get(name)?.trim().parse().ok()
}

/// Attributes of an object seen by HEAD. `key_is_dir`: the key ends in `/` (a marker).
pub fn from_object(meta: &ObjectMeta, key_is_dir: bool, d: &AttrDefaults) -> PosixAttr {
    let um = &meta.user_meta;
    let mode = meta_u32(um, "mode");
    let kind = if key_is_dir {
        FileKind::Directory
    } else {
        mode.and_then(FileKind::from_mode).unwrap_or(FileKind::File)
    };
    let default_perm = if kind == FileKind::Directory {
        d.dir_mode
    } else {
        d.file_mode
    };
    // A stored mode is what someone set, `chmod 000` included; only a mode of 0 (no type, no
    // bits: not a mode at all) falls back to the default.
    let perm = mode
        .filter(|m| *m != 0)
        .map(|m| m & 0o7777)
        .unwrap_or(default_perm);
    let mut mtime = stored_time(um, Time::Modified)
        .or(meta.last_modified)
        .unwrap_or_else(SystemTime::now);
    // An appendable object keeps the headers it was created with while appends move its
    // Last-Modified: the later of the two is when its content last changed.
    let grown = meta.appendable.then_some(meta.last_modified).flatten();
    if let Some(lm) = grown {
        mtime = mtime.max(lm);
    }
    let other = |which: Time| {
        let t = stored_time(um, which).unwrap_or(mtime);
        grown.map_or(t, |lm| t.max(lm))
    };
    PosixAttr {
        kind,
        perm,
        uid: meta_u32(um, "uid").unwrap_or(d.uid),
        gid: meta_u32(um, "gid").unwrap_or(d.gid),
        size: if kind == FileKind::Directory {
            0
        } else {
            meta.size
        },
        rdev: if kind.is_device() {
            meta_u32(um, "rdev").unwrap_or(0)
        } else {
            0
        },
        mtime,
        ctime: other(Time::Changed),
        atime: other(Time::Accessed),
        etag: Some(meta.etag.clone()),
        last_modified: meta.last_modified,
        checked: Some(SystemTime::now()),
        source: AttrSource::Head,
        unlinked: false,
        target: None,
        archived: meta.is_archived(),
        appendable: meta.appendable,
    }
}

/// Attributes of a file known only from a listing entry.
pub fn from_listing(e: &ListEntry, d: &AttrDefaults) -> PosixAttr {
    let mtime = e.last_modified.unwrap_or_else(SystemTime::now);
    PosixAttr {
        kind: FileKind::File,
        perm: d.file_mode,
        uid: d.uid,
        gid: d.gid,
        size: e.size,
        rdev: 0,
        mtime,
        ctime: mtime,
        atime: mtime,
        etag: Some(e.etag.clone()),
        last_modified: e.last_modified,
        checked: None,
        source: AttrSource::Listing,
        unlinked: false,
        target: None,
        archived: e
            .storage_class
            .as_deref()
            .is_some_and(crate::object::is_archive_class),
        appendable: false,
    }
}

/// A directory that has no marker object, only keys below it.
pub fn implicit_dir(d: &AttrDefaults, mtime: SystemTime) -> PosixAttr {
    PosixAttr {
        kind: FileKind::Directory,
        perm: d.dir_mode,
        uid: d.uid,
        gid: d.gid,
        size: 0,
        rdev: 0,
        mtime,
        ctime: mtime,
        atime: mtime,
        etag: None,
        last_modified: None,
        checked: None,
        source: AttrSource::Implicit,
        unlinked: false,
        archived: false,
        appendable: false,
        target: None,
    }
}

/// The `x-cos-meta-*` headers that store `attr` (cosfs-compatible).
pub fn to_user_meta(attr: &PosixAttr) -> UserMeta {
    let mut m = UserMeta::new();
    m.insert("mode".into(), attr.st_mode().to_string());
    m.insert("uid".into(), attr.uid.to_string());
    m.insert("gid".into(), attr.gid.to_string());
    store_time(&mut m, Time::Modified, attr.mtime);
    store_time(&mut m, Time::Changed, attr.ctime);
    // atime is kept only when set apart from mtime (touch -a, cp -p, tar): reads never move
    // it (the mount is noatime), and one missing reads as mtime.
    if attr.atime != attr.mtime {
        store_time(&mut m, Time::Accessed, attr.atime);
    }
    if attr.kind.is_device() {
        m.insert("rdev".into(), attr.rdev.to_string());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: AttrDefaults = AttrDefaults {
        uid: 1000,
        gid: 1001,
        file_mode: 0o644,
        dir_mode: 0o755,
    };

    fn meta(pairs: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            size: 42,
            etag: "e".into(),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(1_600_000_000)),
            user_meta: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_objects_get_defaults_and_last_modified() {
        let a = from_object(&meta(&[]), false, &D);
        assert_eq!(a.kind, FileKind::File);
        assert_eq!(a.st_mode(), 0o100644);
        assert_eq!((a.uid, a.gid, a.size), (1000, 1001, 42));
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        let dir = from_object(&meta(&[]), true, &D);
        assert_eq!(dir.st_mode(), 0o040755);
        assert_eq!(dir.size, 0);
    }

    #[test]
    fn cosfs_metadata_is_honoured() {
        let a = from_object(
            &meta(&[
                ("mode", "33261"),
                ("uid", "0"),
                ("gid", "5"),
                ("mtime", "1700000000.25"),
            ]),
            false,
            &D,
        );
        assert_eq!(a.st_mode(), 0o100755);
        assert_eq!((a.uid, a.gid), (0, 5));
        assert_eq!(
            a.mtime,
            UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000)
        );
        assert_eq!(a.ctime, a.mtime);
        let link = from_object(
            &meta(&[("mode", &(S_IFLNK | 0o777).to_string())]),
            false,
            &D,
        );
        assert_eq!(link.kind, FileKind::Symlink);
        assert_eq!(link.st_mode(), 0o120777);
        let dir = from_object(&meta(&[("mode", "16877")]), true, &D);
        assert_eq!(dir.st_mode(), 0o040755);
    }

    #[test]
    fn special_files_as_s3fs_stores_them() {
        let fifo = from_object(
            &meta(&[("mode", &(S_IFIFO | 0o644).to_string())]),
            false,
            &D,
        );
        assert_eq!(
            (fifo.kind, fifo.st_mode(), fifo.rdev),
            (FileKind::Fifo, 0o010644, 0)
        );
        let sock = from_object(
            &meta(&[("mode", &(S_IFSOCK | 0o755).to_string())]),
            false,
            &D,
        );
        assert_eq!(sock.kind, FileKind::Socket);
        let chr = from_object(
            &meta(&[("mode", &(S_IFCHR | 0o600).to_string()), ("rdev", "259")]),
            false,
            &D,
        );
        assert_eq!((chr.kind, chr.rdev), (FileKind::CharDevice, 259));
        let m = to_user_meta(&chr);
        assert_eq!(m.get("rdev").map(String::as_str), Some("259"));
        assert_eq!(m.get("mode").map(String::as_str), Some("8576"));
        let again = from_object(&meta_from(m), false, &D);
        assert_eq!(
            (again.kind, again.rdev, again.perm),
            (FileKind::CharDevice, 259, 0o600)
        );
        assert!(!to_user_meta(&fifo).contains_key("rdev"));
    }

    #[test]
    fn never_1970_and_modes_as_stored() {
        let a = from_object(&meta(&[("mtime", "0"), ("mode", "0")]), true, &D);
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert_eq!(a.st_mode(), 0o040755, "a mode of 0 is no mode: the default");
        let a = from_object(&meta(&[("mode", "16384")]), true, &D);
        assert_eq!(a.st_mode(), 0o040000, "a directory chmod'ed 000 stays so");
        let mut m = meta(&[("mtime", "garbage")]);
        m.last_modified = None;
        assert!(from_object(&m, false, &D).mtime > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    }

    #[test]
    fn times_are_whole_seconds_for_other_tools_and_exact_for_cosfs() {
        let t = UNIX_EPOCH + Duration::new(1_796_192_815, 752_181_361);
        let mut a = from_object(&meta(&[]), false, &D);
        (a.mtime, a.ctime, a.atime) = (t, t, UNIX_EPOCH - Duration::new(1, 500_000_000));
        let m = to_user_meta(&a);
        let get = |k: &str| m.get(k).map(String::as_str);
        assert_eq!(
            get("mtime"),
            Some("1796192815"),
            "Tencent's cosfs reads digits only"
        );
        assert_eq!(get("cosfs-mtime"), Some("1796192815.752181361"));
        assert_eq!(get("atime"), Some("-2"), "floored, as st_atime is");
        assert_eq!(get("cosfs-atime"), Some("-1.5"));
        let back = from_object(&meta_from(m.clone()), false, &D);
        assert_eq!(
            (back.mtime, back.ctime, back.atime),
            (a.mtime, a.ctime, a.atime)
        );
        // A whole second needs no exact header.
        a.mtime = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        assert!(!to_user_meta(&a).contains_key("cosfs-mtime"));
        // Another tool rewrote the plain header and kept ours unread: its value wins.
        let mut other = m.clone();
        other.insert("mtime".into(), "1500000000".into());
        assert_eq!(
            from_object(&meta_from(other), false, &D).mtime,
            UNIX_EPOCH + Duration::from_secs(1_500_000_000)
        );
        // What cosfs wrote before: a fractional plain header, read exactly.
        let old = from_object(&meta(&[("mtime", "1700000000.25")]), false, &D);
        assert_eq!(
            old.mtime,
            UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000)
        );
        let mut stripped = m.clone();
        remove_times(&mut stripped);
        assert_eq!(stripped.keys().collect::<Vec<_>>(), ["gid", "mode", "uid"]);
        assert_eq!(whole_seconds(UNIX_EPOCH - Duration::from_secs(3)), -3);
    }

    #[test]
    fn user_meta_round_trips() {
        let a = from_object(
            &meta(&[
                ("mode", "33188"),
                ("uid", "7"),
                ("gid", "8"),
                ("mtime", "1700000000.5"),
            ]),
            false,
            &D,
        );
        let again = from_object(&meta_from(to_user_meta(&a)), false, &D);
        assert_eq!(
            (again.st_mode(), again.uid, again.gid, again.mtime),
            (a.st_mode(), 7, 8, a.mtime)
        );
        assert_eq!(format_time(UNIX_EPOCH + Duration::from_secs(5)), "5");
        let precise = UNIX_EPOCH + Duration::new(1_500_936_710, 104_398_054);
        assert_eq!(
            parse_time(&format_time(precise)),
            Some(precise),
            "nanoseconds survive"
        );
        assert_eq!(
            parse_time("1e9"),
            Some(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        );
        let before = UNIX_EPOCH - Duration::new(86_400, 250_000_000);
        assert_eq!(format_time(before), "-86400.25");
        assert_eq!(parse_time("-86400.25"), Some(before), "1969 round trip");
        assert_eq!(parse_time("-5"), Some(UNIX_EPOCH - Duration::from_secs(5)));
        assert_eq!(parse_time("0"), None);
        assert_eq!(parse_time("-"), None);
        assert_eq!(parse_time("--5"), None);
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::new(5, 500_000_000)),
            "5.5"
        );
    }

    fn meta_from(um: UserMeta) -> ObjectMeta {
        ObjectMeta {
            user_meta: um,
            ..meta(&[])
        }
    }
}
