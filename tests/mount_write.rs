//! Real mounts: every write operation, checked through the object client (bodies, headers,
//! which requests it cost), plus large and many-file writes and the failure paths.

mod common;

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::mount::{close, drop_kernel_caches, no_uploads_left, Backend, Mounted};
use common::pattern;
use common::posix::{body, cpath, errno, get_xattr, head, meta, set_xattr};
use cosfs::object::{ObjectStore, PutOptions};
use cosfs::server::FaultConfig;

const MIB: usize = 1024 * 1024;

fn keys(b: &Backend, prefix: &str) -> Vec<String> {
    let req = cosfs::object::ListRequest {
        prefix: prefix.into(),
        ..Default::default()
    };
    let page = b.block_on(b.client.list_objects(&req)).unwrap();
    page.entries.into_iter().map(|e| e.key).collect()
}

#[test]
fn files_are_objects_with_cosfs_metadata() {
    let b = Backend::start();
    let mut foreign = PutOptions::default();
    foreign.user_meta.insert("other".into(), "kept".into());
    b.put_with("keep.txt", "old", foreign);
    let m = Mounted::start(&b, &[]);

    // create
    std::fs::write(m.p("new.txt"), "hello").unwrap();
    assert_eq!(body(&b, "new.txt"), b"hello");
    let st = std::fs::metadata(m.p("new.txt")).unwrap();
    let mode: u32 = meta(&b, "new.txt", "mode").parse().unwrap();
    assert_eq!(mode, libc::S_IFREG | (st.permissions().mode() & 0o7777));
    // SAFETY: getuid cannot fail.
    assert_eq!(
        meta(&b, "new.txt", "uid"),
        unsafe { libc::getuid() }.to_string()
    );
    let mtime: f64 = meta(&b, "new.txt", "mtime").parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - mtime).abs() < 60.0, "mtime {mtime} is now, not 1970");

    // O_TRUNC keeps other tools' metadata
    std::fs::write(m.p("keep.txt"), "new content").unwrap();
    assert_eq!(body(&b, "keep.txt"), b"new content");
    assert_eq!(meta(&b, "keep.txt", "other"), "kept");

    // O_APPEND
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.p("keep.txt"))
        .unwrap();
    f.write_all(b"+tail").unwrap();
    close(f).unwrap();
    assert_eq!(body(&b, "keep.txt"), b"new content+tail");

    // chmod: one copy in place, body and other metadata untouched
    b.reset_counts();
    std::fs::set_permissions(m.p("keep.txt"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(b.count("CopyObject"), 1);
    assert_eq!(
        meta(&b, "keep.txt", "mode"),
        (libc::S_IFREG | 0o755).to_string()
    );
    assert_eq!(meta(&b, "keep.txt", "other"), "kept");
    assert_eq!(body(&b, "keep.txt"), b"new content+tail");
    let st = std::fs::metadata(m.p("keep.txt")).unwrap();
    assert_eq!(st.permissions().mode() & 0o7777, 0o755);

    // utimens
    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let f = OpenOptions::new()
        .write(true)
        .open(m.p("keep.txt"))
        .unwrap();
    f.set_modified(when).unwrap();
    close(f).unwrap();
    assert_eq!(meta(&b, "keep.txt", "mtime"), "1600000000");
    assert_eq!(
        std::fs::metadata(m.p("keep.txt"))
            .unwrap()
            .modified()
            .unwrap(),
        when
    );

    // truncate: shrink, then extend with zeros
    let f = OpenOptions::new()
        .write(true)
        .open(m.p("keep.txt"))
        .unwrap();
    f.set_len(3).unwrap();
    close(f).unwrap();
    assert_eq!(body(&b, "keep.txt"), b"new");
    OpenOptions::new()
        .write(true)
        .open(m.p("keep.txt"))
        .unwrap()
        .set_len(6)
        .unwrap();
    assert_eq!(body(&b, "keep.txt"), b"new\0\0\0");
    assert_eq!(
        meta(&b, "keep.txt", "mode"),
        (libc::S_IFREG | 0o755).to_string()
    );

    // symlink
    std::os::unix::fs::symlink("keep.txt", m.p("link")).unwrap();
    assert_eq!(body(&b, "link"), b"keep.txt");
    let mode: u32 = meta(&b, "link", "mode").parse().unwrap();
    assert_eq!(mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(std::fs::read(m.p("link")).unwrap(), b"new\0\0\0");

    // mkdir, rmdir (ENOTEMPTY, implicit directories), unlink
    std::fs::create_dir(m.p("dir")).unwrap();
    let marker = head(&b, "dir/").expect("a marker");
    assert_eq!(
        marker.content_type.as_deref(),
        Some("application/x-directory")
    );
    std::fs::write(m.p("dir/f"), "f").unwrap();
    assert_eq!(errno(std::fs::remove_dir(m.p("dir"))), libc::ENOTEMPTY);
    std::fs::remove_file(m.p("dir/f")).unwrap();
    m.sync_dir("dir");
    assert!(head(&b, "dir/f").is_none());
    std::fs::remove_dir(m.p("dir")).unwrap();
    m.sync_dir("");
    assert!(head(&b, "dir/").is_none());
    b.put("imp/x", "x");
    std::fs::remove_file(m.p("imp/x")).unwrap();
    assert!(
        m.p("imp").is_dir(),
        "an implicit dir survives losing its last file"
    );
    std::fs::remove_dir(m.p("imp")).unwrap();
    m.sync_dir("");
    assert!(keys(&b, "imp").is_empty());

    // link, O_EXCL (special files: tests/mount_special.rs)
    assert_eq!(
        errno(std::fs::hard_link(m.p("new.txt"), m.p("hard"))),
        libc::EPERM
    );
    let excl = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(m.p("new.txt"));
    assert_eq!(errno(excl), libc::EEXIST);
    no_uploads_left(&b);
}

fn renameat2(from: &Path, to: &Path, flags: u32) -> i32 {
    let (f, t) = (cpath(from), cpath(to));
    // SAFETY: valid C paths; AT_FDCWD with absolute paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

#[test]
fn rename_files_and_directories() {
    let b = Backend::start();
    b.put("src/a", "a");
    b.put("src/sub/b", "b");
    b.put("src/sub/c/d", "d");
    b.put("full/x", "x");
    b.put("other", "other");
    let m = Mounted::start(&b, &[]);

    std::fs::rename(m.p("src/a"), m.p("a2")).unwrap();
    assert_eq!(body(&b, "a2"), b"a");
    assert!(head(&b, "src/a").is_none());
    assert!(m.p("src/sub").is_dir());

    std::fs::rename(m.p("src"), m.p("dst")).unwrap();
    assert!(keys(&b, "src/").is_empty(), "no source keys left");
    let mut moved = keys(&b, "dst/");
    moved.sort();
    // src/ got a marker when its file a moved out (it was implicit).
    assert_eq!(moved, ["dst/", "dst/sub/b", "dst/sub/c/d"]);
    assert_eq!(std::fs::read_to_string(m.p("dst/sub/c/d")).unwrap(), "d");
    assert!(!m.p("src").exists());

    assert_eq!(renameat2(&m.p("a2"), &m.p("other"), 1), libc::EEXIST);
    assert_eq!(renameat2(&m.p("a2"), &m.p("other"), 2), libc::EINVAL);
    assert_eq!(body(&b, "other"), b"other");
    std::fs::rename(m.p("a2"), m.p("other")).unwrap();
    assert_eq!(body(&b, "other"), b"a");
    assert!(head(&b, "a2").is_none());

    assert_eq!(
        errno(std::fs::rename(m.p("dst"), m.p("full"))),
        libc::ENOTEMPTY
    );
    std::fs::create_dir(m.p("empty")).unwrap();
    std::fs::rename(m.p("dst"), m.p("empty")).unwrap();
    assert_eq!(std::fs::read_to_string(m.p("empty/sub/b")).unwrap(), "b");
    assert!(keys(&b, "dst/").is_empty());

    // a file still open for writing follows its rename
    let mut f = std::fs::File::create(m.p("open.txt")).unwrap();
    f.write_all(b"written before").unwrap();
    std::fs::rename(m.p("open.txt"), m.p("moved.txt")).unwrap();
    f.write_all(b" and after").unwrap();
    close(f).unwrap();
    assert_eq!(body(&b, "moved.txt"), b"written before and after");
    assert!(head(&b, "open.txt").is_none());
    no_uploads_left(&b);
}

#[test]
fn xattrs_unflushed_reads_and_fallocate() {
    let b = Backend::start();
    b.put("x.txt", "x");
    let m = Mounted::start(&b, &[]);
    let p = m.p("x.txt");
    assert_eq!(set_xattr(&p, "user.color", b"blue", 0), 0);
    assert_eq!(get_xattr(&p, "user.color").unwrap(), b"blue");
    assert!(meta(&b, "x.txt", "xattr").contains("user.color"));
    assert_eq!(
        set_xattr(&p, "user.color", b"red", libc::XATTR_CREATE),
        libc::EEXIST
    );
    assert_eq!(set_xattr(&p, "user.size", &[b'v'; 3000], 0), libc::E2BIG);
    assert_eq!(set_xattr(&p, "security.x", b"v", 0), libc::EOPNOTSUPP);
    let mut names = vec![0u8; 256];
    let cp = cpath(&p);
    // SAFETY: valid path and buffer.
    let n = unsafe { libc::listxattr(cp.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert_eq!(&names[..n as usize], b"user.color\0");
    let name = CString::new("user.color").unwrap();
    // SAFETY: valid C strings.
    assert_eq!(unsafe { libc::removexattr(cp.as_ptr(), name.as_ptr()) }, 0);
    assert_eq!(get_xattr(&p, "user.color"), Err(libc::ENODATA));
    assert_eq!(get_xattr(&p, "security.selinux"), Err(libc::ENODATA));
    assert_eq!(body(&b, "x.txt"), b"x");

    // Unflushed writes: visible through another handle and in the listing, not yet on COS.
    let mut w = std::fs::File::create(m.p("pending.txt")).unwrap();
    w.write_all(b"not yet uploaded").unwrap();
    assert!(head(&b, "pending.txt").is_none());
    assert_eq!(
        std::fs::read(m.p("pending.txt")).unwrap(),
        b"not yet uploaded"
    );
    let names: Vec<String> = std::fs::read_dir(&m.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"pending.txt".to_string()), "{names:?}");
    w.write_all_at(b"NOT", 0).unwrap();
    assert_eq!(
        std::fs::read(m.p("pending.txt")).unwrap(),
        b"NOT yet uploaded"
    );
    close(w).unwrap();
    assert_eq!(body(&b, "pending.txt"), b"NOT yet uploaded");

    // fallocate: plain allocation extends, hole punching is not offered.
    let f = OpenOptions::new()
        .write(true)
        .open(m.p("pending.txt"))
        .unwrap();
    // SAFETY: a valid fd.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 100) }, 0);
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: a valid fd.
    assert_eq!(unsafe { libc::fallocate(f.as_raw_fd(), punch, 0, 4) }, -1);
    close(f).unwrap();
    assert_eq!(body(&b, "pending.txt").len(), 100);

    // cp -p: mode and times ride along with the upload, no extra copy.
    let src = m.dir.path().join("local.txt");
    std::fs::write(&src, "local").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    let f = OpenOptions::new().write(true).open(&src).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(1_500_000_000))
        .unwrap();
    drop(f);
    b.reset_counts();
    let ok = std::process::Command::new("cp")
        .arg("-p")
        .arg(&src)
        .arg(m.p("copied.txt"))
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(b.count("CopyObject"), 0, "cp -p costs no copy");
    assert_eq!(b.count("PutObject"), 1);
    assert_eq!(
        meta(&b, "copied.txt", "mode"),
        (libc::S_IFREG | 0o640).to_string()
    );
    assert_eq!(meta(&b, "copied.txt", "mtime"), "1500000000");
}

#[test]
fn edits_of_large_files_reuse_unchanged_parts() {
    let b = Backend::start();
    let data = pattern(24 * MIB, 3);
    b.put_big("big.bin", &data);
    let m = Mounted::start(&b, &[]);
    b.reset_counts();
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.p("big.bin"))
        .unwrap();
    f.write_all(&[7u8; 1024]).unwrap();
    close(f).unwrap();
    assert_eq!(
        b.count("UploadPartCopy"),
        1,
        "the old 24 MiB are copied, not uploaded"
    );
    assert_eq!(b.count("UploadPart"), 1);
    assert_eq!(b.count("GetObject"), 0);
    let mut want = data.clone();
    want.extend_from_slice(&[7u8; 1024]);
    assert_eq!(body(&b, "big.bin"), want);

    // A write in the middle: copy, a 1 MiB data part, copy.
    b.reset_counts();
    let f = OpenOptions::new().write(true).open(m.p("big.bin")).unwrap();
    f.write_all_at(b"middle", 12 * MIB as u64).unwrap();
    close(f).unwrap();
    want[12 * MIB..12 * MIB + 6].copy_from_slice(b"middle");
    assert_eq!(b.count("UploadPartCopy"), 2);
    assert_eq!(b.count("UploadPart"), 1);
    assert_eq!(body(&b, "big.bin"), want);
    drop_kernel_caches();
    assert_eq!(std::fs::read(m.p("big.bin")).unwrap(), want);
    no_uploads_left(&b);
}

#[test]
fn a_300_mib_dd_and_1000_small_files() {
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    let data = pattern(300 * MIB, 11);
    let local = m.dir.path().join("local.bin");
    std::fs::write(&local, &data).unwrap();
    let st = std::process::Command::new("dd")
        .arg(format!("if={}", local.display()))
        .arg(format!("of={}", m.p("big.bin").display()))
        .args(["bs=1M", "conv=fsync", "status=none"])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(b.count("UploadPart") >= 37, "streamed in 8 MiB parts");
    assert_eq!(head(&b, "big.bin").unwrap().size, 300 * MIB as u64);
    drop_kernel_caches();
    assert!(
        std::fs::read(m.p("big.bin")).unwrap() == data,
        "bytes differ"
    );
    drop(data);

    std::fs::create_dir(m.p("many")).unwrap();
    for i in 0..1000 {
        std::fs::write(m.p(&format!("many/f{i:04}")), pattern(4096, i)).unwrap();
    }
    b.reset_counts();
    let listed = std::fs::read_dir(m.p("many")).unwrap().count();
    assert_eq!(listed, 1000);
    assert!(b.count("ListObjects") <= 3);
    assert_eq!(body(&b, "many/f0777"), pattern(4096, 777));
    no_uploads_left(&b);
}

#[test]
fn failed_uploads_surface_at_close_and_keep_the_old_object() {
    let b = Backend::start();
    b.put("keep.bin", "old contents");
    let m = Mounted::start(&b, &["--part-size", "1M"]);

    // A burst of 503s on PUTs is retried: the file lands.
    b.server.faults.set(FaultConfig {
        next_503: 4,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let data = pattern(5 * MIB, 9);
    std::fs::write(m.p("retried.bin"), &data).unwrap();
    assert_eq!(body(&b, "retried.bin"), data);
    assert!(b.count("InjectedFault") >= 4);

    // A server that keeps failing: close says EIO, the old object stays.
    b.server.faults.set(FaultConfig {
        rate_503: 1.0,
        methods: vec!["PUT".into(), "POST".into()],
        ..Default::default()
    });
    let mut f = std::fs::File::create(m.p("keep.bin")).unwrap();
    f.write_all(b"new contents that never land").unwrap();
    assert_eq!(close(f), Err(libc::EIO));
    b.server.faults.set(FaultConfig::default());
    assert_eq!(body(&b, "keep.bin"), b"old contents");
    no_uploads_left(&b);

    // kill -9 of the daemon halfway through a streamed write: the old object stays.
    let mut f = std::fs::File::create(m.p("keep.bin")).unwrap();
    f.write_all(&pattern(4 * MIB, 1)).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGKILL) };
    let _ = f.write_all(&pattern(MIB, 2));
    drop(f);
    assert_eq!(body(&b, "keep.bin"), b"old contents");
}

#[test]
fn a_full_cache_dir_is_enospc_and_loses_nothing() {
    let b = Backend::start();
    let data = pattern(3 * MIB, 4);
    b.put("f.bin", data.clone());
    let m = Mounted::start(&b, &["--cache-dir-size", "1M"]);
    let f = OpenOptions::new().write(true).open(m.p("f.bin")).unwrap();
    f.write_all_at(&[1u8; MIB], 0).unwrap();
    let err = f.write_all_at(&[2u8; 4096], 2 * MIB as u64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    f.write_all_at(&[3u8; 4096], 4096).unwrap(); // rewriting staged bytes needs no room
    close(f).unwrap();
    let mut want = data;
    want[..MIB].fill(1);
    want[4096..8192].fill(3);
    assert!(
        body(&b, "f.bin") == want,
        "the writes that fit landed, nothing else changed"
    );

    // chown (root only) is stored like chmod.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(m.p("f.bin"), Some(1234), Some(5678)).unwrap();
        assert_eq!(meta(&b, "f.bin", "uid"), "1234");
        assert_eq!(meta(&b, "f.bin", "gid"), "5678");
        assert!(body(&b, "f.bin") == want);
    }
}
