//! Times and link counts the way xfstests looks at them (`generic/003`, `258`, `035`, `317`),
//! on a real mount:
//! - a directory's mtime and ctime move only when an entry is made, removed or renamed in it,
//!   and never go back when its attributes expire (marker and implicit directories);
//! - a time before 1970, fraction included, is stored and read back exactly, also by a new
//!   mount;
//! - the inode a rename replaced has `st_nlink` 0 for whoever holds it open;
//! - `chmod`/`chown`/`utimens` of a prefix mount's root land in the prefix's marker.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::mount::{Backend, Mounted};
use common::posix::{cpath, errno, meta};

/// (mtime s, mtime ns, ctime s, ctime ns)
fn times(p: &Path) -> (i64, i64, i64, i64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
}

/// Wait until header `name` of `key` is stored as `want`: a change made while the kernel's
/// release of the file is still running goes up with that release, just after.
fn stored_eventually(b: &Backend, key: &str, name: &str, want: &str) {
    let t = std::time::Instant::now();
    loop {
        let got = meta(b, key, name);
        if got == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "x-cos-meta-{name} of {key}: {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Past the mount's metadata TTL (1 s in these tests).
fn past_ttl() {
    std::thread::sleep(Duration::from_millis(1600));
}

#[test]
fn directory_times_move_with_entries_only_and_never_go_back() {
    let b = Backend::start();
    b.put("implicit/seen.txt", "x");
    let m = Mounted::start(&b, &["--metadata-ttl", "1"]);
    // atime is not kept: the mount says noatime where tools look.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(m.path.to_str().unwrap()))
        .expect("the mount is listed");
    assert!(
        line.split(' ')
            .nth(3)
            .unwrap()
            .split(',')
            .any(|o| o == "noatime"),
        "{line}"
    );
    let dir = m.p("dir2");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("file"), "one").unwrap();
    let made = times(&dir);
    std::thread::sleep(Duration::from_millis(50));

    // Reading and writing a file in it is no change of the directory.
    assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"one");
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("file"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"two"))
        .unwrap();
    assert_eq!(times(&dir), made, "after file access");
    past_ttl();
    assert_eq!(times(&dir), made, "after the metadata TTL");
    let listed: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(times(&dir), made, "after a listing");

    // An entry removed moves both, and they stay moved.
    std::fs::remove_file(dir.join("file")).unwrap();
    let removed = times(&dir);
    assert!(removed > made, "{removed:?} after {made:?}");
    past_ttl();
    std::fs::read_dir(m.p("")).unwrap().for_each(drop);
    assert_eq!(
        times(&dir),
        removed,
        "after the TTL and a listing of the parent"
    );

    // A directory with no marker: no stored time, so the first one shown stays ...
    let imp = m.p("implicit");
    let first = times(&imp);
    past_ttl();
    assert_eq!(std::fs::read(imp.join("seen.txt")).unwrap(), b"x");
    std::fs::read_dir(&imp).unwrap().for_each(drop);
    std::fs::read_dir(m.p("")).unwrap().for_each(drop);
    assert_eq!(times(&imp), first, "implicit directory after the TTL");
    // ... until an entry is made in it.
    std::fs::write(imp.join("new"), "n").unwrap();
    let grown = times(&imp);
    assert!(grown > first);
    past_ttl();
    assert_eq!(
        times(&imp),
        grown,
        "implicit directory after a create and the TTL"
    );
}

#[test]
fn utimens_of_a_directory_sets_its_times_even_back() {
    let b = Backend::start();
    let m = Mounted::start(&b, &["--metadata-ttl", "1"]);
    let dir = m.p("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("f"), "x").unwrap();
    let st = std::process::Command::new("touch")
        .args(["-m", "-d", "2001-02-03 04:05:06"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(times(&dir).0, 981_173_106);
    past_ttl();
    assert_eq!(
        times(&dir).0,
        981_173_106,
        "a set time is not this mount's to move"
    );
    assert_eq!(meta(&b, "d/", "mtime"), "981173106");
}

#[test]
fn a_1969_timestamp_round_trips_exactly() {
    let b = Backend::start();
    let mut m = Mounted::start(&b, &["--metadata-ttl", "1"]);
    let f = m.p("old");
    std::fs::write(&f, "x").unwrap();
    // 1969-12-31 00:00:00 minus a quarter second: tv_sec -86401, tv_nsec 750000000.
    let ts = [
        libc::timespec {
            tv_sec: -86_401,
            tv_nsec: 750_000_000,
        },
        libc::timespec {
            tv_sec: -86_401,
            tv_nsec: 750_000_000,
        },
    ];
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, cpath(&f).as_ptr(), ts.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat: {}", std::io::Error::last_os_error());
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (-86_401, 750_000_000));
    // Whole seconds, floored, where Tencent's cosfs and s3fs read it; the exact value beside.
    stored_eventually(&b, "old", "mtime", "-86401");
    stored_eventually(&b, "old", "cosfs-mtime", "-86400.25");
    past_ttl();
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (-86_401, 750_000_000));
    assert_eq!(md.atime(), -86_401);
    // Another mount reads what is stored.
    m.stop();
    let again = Mounted::start(&b, &[]);
    let md = std::fs::metadata(again.p("old")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (-86_401, 750_000_000));
    // A whole-second time before 1970 too (what `touch -d 1969-...` sets).
    let st = std::process::Command::new("touch")
        .args(["-m", "-d", "@-1"])
        .arg(again.p("old"))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::metadata(again.p("old")).unwrap().mtime(), -1);
    stored_eventually(&b, "old", "mtime", "-1");
}

#[test]
fn the_inode_a_rename_replaced_has_no_links() {
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    std::fs::write(m.p("src"), "new").unwrap();
    std::fs::write(m.p("dst"), "old").unwrap();
    let held = std::fs::File::open(m.p("dst")).unwrap();
    assert_eq!(held.metadata().unwrap().nlink(), 1);
    std::fs::rename(m.p("src"), m.p("dst")).unwrap();
    assert_eq!(held.metadata().unwrap().nlink(), 0, "the replaced file");
    assert_eq!(std::fs::metadata(m.p("dst")).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(m.p("dst")).unwrap(), b"new");

    std::fs::create_dir(m.p("d1")).unwrap();
    std::fs::create_dir(m.p("d2")).unwrap();
    let held_dir = std::fs::File::open(m.p("d2")).unwrap();
    assert_eq!(held_dir.metadata().unwrap().nlink(), 2);
    std::fs::rename(m.p("d1"), m.p("d2")).unwrap();
    assert_eq!(
        held_dir.metadata().unwrap().nlink(),
        0,
        "the replaced directory"
    );
    assert_eq!(std::fs::metadata(m.p("d2")).unwrap().nlink(), 2);

    // An unlinked file and a removed directory held open: no links either.
    let f = std::fs::File::open(m.p("dst")).unwrap();
    std::fs::remove_file(m.p("dst")).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    let d = std::fs::File::open(m.p("d2")).unwrap();
    std::fs::remove_dir(m.p("d2")).unwrap();
    assert_eq!(d.metadata().unwrap().nlink(), 0);
}

#[test]
fn the_root_of_a_prefix_mount_keeps_chmod_chown_and_utimens_in_its_marker() {
    let b = Backend::start();
    b.put("data/x", "x");
    let spec = format!("{}:/data", common::BUCKET);
    let mut m = Mounted::start_spec(&b, &spec, &["--metadata-ttl", "1"]);
    let root = m.p("");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&root, Some(1234), Some(5678)).unwrap();
    let st = std::process::Command::new("touch")
        .args(["-m", "-d", "2002-02-02 02:02:02"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let md = std::fs::metadata(&root).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o750, 1234, 5678, 1_012_615_322)
    );
    assert_eq!(meta(&b, "data/", "mode"), format!("{}", 0o040750));
    m.stop();
    let again = Mounted::start_spec(&b, &spec, &[]);
    let md = std::fs::metadata(again.p("")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o750, 1234, 5678, 1_012_615_322),
        "a new mount reads the root's marker"
    );

    // The bucket's own root has no key to keep them: EPERM, said so in the README.
    let whole = Mounted::start(&b, &[]);
    let e = std::fs::set_permissions(whole.p(""), std::fs::Permissions::from_mode(0o700));
    assert_eq!(errno(e), libc::EPERM);
}

/// (atime, mtime, ctime) in whole seconds.
fn amc(p: &Path) -> (i64, i64, i64) {
    let m = std::fs::metadata(p).unwrap();
    (m.atime(), m.mtime(), m.ctime())
}

#[test]
fn file_times_follow_posix_on_a_noatime_mount() {
    let b = Backend::start();
    let mut m = Mounted::start(&b, &["--metadata-ttl", "1"]);
    let f = m.p("f");
    std::fs::write(&f, "x").unwrap();
    let touch = |args: &[&str]| {
        let st = std::process::Command::new("touch")
            .args(args)
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success());
    };
    touch(&["-a", "-d", "2003-03-03 03:03:03"]);
    touch(&["-m", "-d", "2004-04-04 04:04:04"]);
    let (a, mt) = (1_046_660_583, 1_081_051_444);
    let (atime, mtime, ctime) = amc(&f);
    assert_eq!((atime, mtime), (a, mt));
    assert!(ctime > mt, "utimens moves ctime to now");
    stored_eventually(&b, "f", "atime", &a.to_string());
    // Reading never moves atime (noatime); the TTL brings back what is stored.
    assert_eq!(std::fs::read(&f).unwrap(), b"x");
    past_ttl();
    assert_eq!(amc(&f), (a, mt, ctime));
    // chmod moves ctime only.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let after_chmod = amc(&f);
    assert_eq!((after_chmod.0, after_chmod.1), (a, mt));
    assert!(after_chmod.2 > ctime);
    // A write moves mtime and ctime, not atime.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .and_then(|mut h| std::io::Write::write_all(&mut h, b"y"))
        .unwrap();
    let written = amc(&f);
    assert_eq!(written.0, a, "a write leaves atime");
    assert!(written.1 > mt && written.2 >= written.1);
    past_ttl();
    assert_eq!(amc(&f), written, "after the TTL");
    m.stop();
    let again = Mounted::start(&b, &[]);
    assert_eq!(amc(&again.p("f")), written, "a new mount");
}
