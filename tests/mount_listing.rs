//! Real mounts over buckets written the way Tencent's cosfs and s3fs write them: right after a
//! listing (the first thing the mount does), `ls -l`, `stat`, `find -type l`, `test -x` and
//! `cp -a` see the stored modes, owners, mtimes and symlinks, and the requests behind them are
//! concurrent HEADs, reused while the listing shows the same version.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mount::{Backend, Mounted};
use cosfs::object::PutOptions;

fn meta(pairs: &[(&str, String)]) -> PutOptions {
    PutOptions {
        user_meta: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

fn posix(mode: u32, uid: u32, gid: u32, mtime: &str) -> PutOptions {
    meta(&[
        ("mode", mode.to_string()),
        ("uid", uid.to_string()),
        ("gid", gid.to_string()),
        ("mtime", mtime.to_string()),
    ])
}

/// A bucket as Tencent cosfs / s3fs leave it.
fn seed_cosfs_bucket(b: &Backend) {
    b.put_with(
        "run.sh",
        "#!/bin/sh\necho hi\n",
        posix(0o100755, 1234, 5678, "1600000000"),
    );
    b.put_with("su-tool", "elf", posix(0o104755, 0, 0, "1500000000.25"));
    b.put("plain.txt", "no metadata\n");
    b.put_with("link", "run.sh", posix(0o120777, 1234, 5678, "1600000001"));
    b.put_with("dir-link", "conf", posix(0o120777, 0, 0, "1600000002"));
    b.put_with("conf/", "", posix(0o040750, 1234, 5678, "1400000000"));
    b.put_with(
        "conf/app.ini",
        "k=v\n",
        posix(0o100640, 1234, 5678, "1400000001.5"),
    );
    b.put("implicit/x", "x\n");
}

/// mode, uid, gid, mtime (s, ns), symlink target.
type Seen = (u32, u32, u32, i64, i64, Option<String>);

/// What `lstat` and `readlink` show for every path below `root`.
fn tree(root: &Path) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let target = md
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(&p).unwrap().display().to_string());
            if md.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(
                rel,
                (
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.mtime(),
                    md.mtime_nsec(),
                    target,
                ),
            );
        }
    }
    out
}

/// `ls -l` output with its column padding squeezed to single spaces.
fn squeeze(ls: &str) -> String {
    ls.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
        .collect()
}

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn right_after_ls_every_tool_sees_the_stored_metadata() {
    let b = Backend::start();
    seed_cosfs_bucket(&b);
    // A long TTL: the kernel keeps what the listing handed it, so every check below sees the
    // readdirplus attributes, not a later lookup.
    let m = Mounted::start(&b, &["--metadata-ttl", "60"]);
    b.reset_counts();

    let (ok, ls) = sh(&format!("ls -ln --time-style=+%s {}", m.path.display()));
    assert!(ok, "{ls}");
    let ls = squeeze(&ls);
    let line = |name: &str| {
        ls.lines()
            .find(|l| {
                let before_target = l.split(" -> ").next().unwrap_or(l);
                before_target.ends_with(&format!(" {name}"))
            })
            .unwrap_or_else(|| panic!("{name} not in\n{ls}"))
            .to_string()
    };
    assert!(
        line("run.sh").starts_with("-rwxr-xr-x 1 1234 5678 "),
        "{ls}"
    );
    assert!(line("run.sh").contains(" 1600000000 "), "{ls}");
    assert!(line("su-tool").starts_with("-rwsr-xr-x 1 0 0 "), "{ls}");
    assert!(line("link").starts_with("lrwxrwxrwx 1 1234 5678 "), "{ls}");
    assert!(line("link").ends_with("link -> run.sh"), "{ls}");
    assert!(line("conf").starts_with("drwxr-x--- 2 1234 5678 "), "{ls}");
    assert!(line("conf").contains(" 1400000000 "), "{ls}");
    assert!(line("implicit").starts_with("drwxr-xr-x "), "{ls}");
    assert!(line("plain.txt").starts_with("-rw-r--r-- "), "{ls}");
    // One LIST of the root, one HEAD per entry (7 names), and the readlink of the two links.
    assert_eq!(b.count("HeadObject"), 7, "one HEAD per listed entry");

    let (_, st) = sh(&format!(
        "cd {} && stat -c '%n %a %u:%g %Y' run.sh su-tool conf conf/app.ini",
        m.path.display()
    ));
    assert_eq!(
        st,
        "run.sh 755 1234:5678 1600000000\nsu-tool 4755 0:0 1500000000\n\
         conf 750 1234:5678 1400000000\nconf/app.ini 640 1234:5678 1400000001\n"
    );
    let (ok, out) = sh(&format!(
        "cd {} && test -x run.sh && ./run.sh",
        m.path.display()
    ));
    assert!(ok && out == "hi\n", "the exec bit is there: {out}");
    let (_, links) = sh(&format!("cd {} && find . -type l | sort", m.path.display()));
    assert_eq!(links, "./dir-link\n./link\n");

    // cp -a to a local directory keeps types, modes, owners and times.
    let dest = tempfile::tempdir().unwrap();
    let (ok, out) = sh(&format!(
        "cp -a {}/. {}/",
        m.path.display(),
        dest.path().display()
    ));
    assert!(ok, "cp -a: {out}");
    let from_mount = tree(&m.path);
    let copied = tree(dest.path());
    assert_eq!(copied.len(), 9, "{copied:#?}");
    for (path, want) in &from_mount {
        let got = &copied[path];
        assert_eq!(got.5, want.5, "{path}: symlink target");
        assert_eq!((got.0, got.1, got.2), (want.0, want.1, want.2), "{path}");
        if want.5.is_none() {
            assert_eq!((got.3, got.4), (want.3, want.4), "{path}: mtime");
        }
    }
    assert_eq!(copied["conf/app.ini"].0, 0o100640);
    assert_eq!(copied["conf/app.ini"].4, 500_000_000, "fractional mtime");
    assert_eq!(copied["su-tool"].0, 0o104755);
    assert_eq!(copied["dir-link"].5.as_deref(), Some("conf"));
}

#[test]
fn listing_heads_run_concurrently_and_are_reused_for_the_same_version() {
    const N: usize = 300;
    const LATENCY_MS: u64 = 40;
    let b = Backend::start();
    for i in 0..N {
        b.put_with(
            &format!("many/f{i:04}"),
            "x",
            posix(0o100600, 42, 43, "1600000000"),
        );
    }
    // Let the objects' Last-Modified second pass, so a HEAD stands for their version.
    std::thread::sleep(Duration::from_millis(2100));
    let m = Mounted::start(&b, &["--metadata-ttl", "1", "--listing-heads", "64"]);
    b.server.faults.update(|f| f.latency_ms = LATENCY_MS);
    b.reset_counts();

    let t = Instant::now();
    let (ok, ls) = sh(&format!("ls -ln {}", m.p("many").display()));
    let took = t.elapsed();
    assert!(ok, "{ls}");
    assert_eq!(
        ls.lines()
            .filter(|l| l.starts_with("-rw------- 1 42 43 "))
            .count(),
        N,
        "{ls}"
    );
    let heads = b.count("HeadObject");
    assert!(
        (N as u64..=N as u64 + 4).contains(&heads),
        "{heads} HEADs for {N} entries"
    );
    let serial = Duration::from_millis(N as u64 * LATENCY_MS);
    assert!(
        took < serial / 4,
        "ls -l took {took:?}; one HEAD after another would take {serial:?}"
    );

    // The TTL runs out; the listing shows the same versions: no HEAD again.
    std::thread::sleep(Duration::from_millis(1200));
    b.reset_counts();
    let (ok, ls) = sh(&format!("ls -ln {}", m.p("many").display()));
    assert!(ok, "{ls}");
    // The one HEAD is the kernel's lookup of `many` itself (its entry expired too).
    assert_eq!(
        b.count("HeadObject"),
        1,
        "same ETag and Last-Modified: reused"
    );
    assert!(b.count("ListObjects") >= 1);

    // Another client changes one file's mode (same bytes, so the same ETag): the new
    // Last-Modified makes the next listing HEAD it, and only it.
    b.server.faults.update(|f| f.latency_ms = 0);
    b.put_with("many/f0007", "x", posix(0o100755, 42, 43, "1600000000"));
    std::thread::sleep(Duration::from_millis(1200));
    b.reset_counts();
    let (ok, ls) = sh(&format!("ls -ln {}", m.p("many").display()));
    assert!(ok, "{ls}");
    let ls = squeeze(&ls);
    let changed = ls.lines().find(|l| l.ends_with(" f0007")).unwrap();
    assert!(changed.starts_with("-rwxr-xr-x 1 42 43 "), "{changed}");
    assert_eq!(b.count("HeadObject"), 2, "the lookup of `many` and f0007");
}

#[test]
fn listing_metadata_off_shows_the_listing_alone() {
    let b = Backend::start();
    seed_cosfs_bucket(&b);
    let m = Mounted::start(&b, &["--metadata-ttl", "60", "--listing-metadata", "off"]);
    b.reset_counts();
    let (ok, ls) = sh(&format!("ls -ln {}", m.path.display()));
    assert!(ok, "{ls}");
    assert_eq!(b.count("HeadObject"), 0, "no HEAD per entry");
    let ls = squeeze(&ls);
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let run = ls.lines().find(|l| l.ends_with(" run.sh")).unwrap();
    assert!(
        run.starts_with(&format!("-rw-r--r-- 1 {uid} ")),
        "the defaults, as documented: {run}"
    );
    // Opening what the listing showed as a file still finds the symlink behind it.
    assert_eq!(
        std::fs::read_to_string(m.p("link")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
}
