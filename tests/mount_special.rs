//! Real mounts: FIFOs, sockets and devices are zero-byte objects with their type (and device
//! number) in `x-cos-meta-mode` / `x-cos-meta-rdev`, as s3fs writes them; they are listed,
//! stat'ed, renamed, chmod'ed and unlinked like files, and opening a FIFO is the kernel's
//! business (no byte goes to COS).

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::mount::{Backend, Mounted};
use cosfs::object::{ObjectStore, PutOptions};

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn head(b: &Backend, key: &str) -> cosfs::object::ObjectMeta {
    b.block_on(b.client.head_object(key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"))
}

#[test]
fn special_files_are_objects_with_their_type() {
    let b = Backend::start();
    // A FIFO written by s3fs / Tencent cosfs.
    b.put_with(
        "seeded.fifo",
        "",
        PutOptions {
            user_meta: [("mode".to_string(), (0o010_640).to_string())].into(),
            ..Default::default()
        },
    );
    let m = Mounted::start(&b, &[]);

    // mkfifo, mknod of a character device, a unix socket.
    // SAFETY: valid C paths; mknod/mkfifo only create directory entries.
    unsafe {
        libc::umask(0o022);
        assert_eq!(libc::mkfifo(cpath(&m.p("pipe")).as_ptr(), 0o644), 0);
        let dev = libc::makedev(1, 3);
        assert_eq!(
            libc::mknod(cpath(&m.p("null")).as_ptr(), libc::S_IFCHR | 0o600, dev),
            0,
            "mknod c 1 3 as root"
        );
        assert_eq!(
            libc::mknod(
                cpath(&m.p("disk")).as_ptr(),
                libc::S_IFBLK | 0o660,
                libc::makedev(8, 1)
            ),
            0
        );
    }
    let sock = std::os::unix::net::UnixListener::bind(m.p("sock")).expect("bind a socket");
    drop(sock);

    let md = std::fs::symlink_metadata(m.p("pipe")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(md.mode(), 0o010_644);
    let null = std::fs::symlink_metadata(m.p("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    let disk = std::fs::symlink_metadata(m.p("disk")).unwrap();
    assert!(disk.file_type().is_block_device());
    assert_eq!(disk.rdev(), libc::makedev(8, 1));
    assert!(std::fs::symlink_metadata(m.p("sock"))
        .unwrap()
        .file_type()
        .is_socket());

    // On COS: zero bytes, the type in the mode, the device number in rdev.
    let o = head(&b, "pipe");
    assert_eq!(o.size, 0);
    assert_eq!(o.user_meta["mode"], (0o010_644).to_string());
    let o = head(&b, "null");
    assert_eq!(o.user_meta["mode"], (0o020_600).to_string());
    assert_eq!(o.user_meta["rdev"], "259", "the kernel's encoding of 1:3");
    assert_eq!(
        head(&b, "sock").user_meta["mode"],
        (0o140_755 & !0o022).to_string()
    );

    // A FIFO carries data between two processes through the kernel, not through COS.
    b.reset_counts();
    let fifo = m.p("seeded.fifo");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(echo through-the-pipe > '{0}') & cat '{0}'; wait",
            fifo.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through-the-pipe\n");
    assert_eq!(b.count("PutObject") + b.count("GetObject"), 0);
    assert_eq!(
        std::fs::symlink_metadata(&fifo).unwrap().mode(),
        0o010_640,
        "the s3fs-written FIFO"
    );

    // chmod, rename, unlink like any file.
    std::fs::set_permissions(m.p("pipe"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(head(&b, "pipe").user_meta["mode"], (0o010_600).to_string());
    std::fs::rename(m.p("null"), m.p("null2")).unwrap();
    let moved = head(&b, "null2");
    assert_eq!(moved.user_meta["rdev"], "259");
    assert!(b
        .block_on(b.client.head_object("null"))
        .is_err_and(|e| e.is_not_found()));
    std::fs::remove_file(m.p("sock")).unwrap();
    // The DELETE is queued; fsync of the directory is the point where it has reached COS.
    m.sync_dir("");
    assert!(b
        .block_on(b.client.head_object("sock"))
        .is_err_and(|e| e.is_not_found()));

    // A fresh mount lists them with their types right away.
    drop(m);
    let m = Mounted::start(&b, &[]);
    let ls = Command::new("ls").arg("-l").arg(&m.path).output().unwrap();
    let ls = String::from_utf8(ls.stdout).unwrap();
    for (start, name) in [
        ("prw-------", "pipe"),
        ("crw-------", "null2"),
        ("brw-r-----", "disk"),
        ("prw-r-----", "seeded.fifo"),
    ] {
        assert!(
            ls.lines()
                .any(|l| l.starts_with(start) && l.ends_with(name)),
            "{name}: {ls}"
        );
    }
    assert!(
        ls.contains("1, 3") && ls.contains("8, 1"),
        "device numbers: {ls}"
    );
}

#[test]
fn set_group_id_directories_give_their_group() {
    use std::os::unix::fs::symlink;
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    let d = m.p("shared");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, None, Some(4321)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2775)).unwrap();

    std::fs::write(d.join("file"), "x").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    symlink("file", d.join("link")).unwrap();
    // SAFETY: a valid C path.
    assert_eq!(
        unsafe { libc::mkfifo(cpath(&d.join("pipe")).as_ptr(), 0o644) },
        0
    );
    for name in ["file", "sub", "link", "pipe"] {
        let md = std::fs::symlink_metadata(d.join(name)).unwrap();
        assert_eq!(md.gid(), 4321, "{name} takes the directory's group");
    }
    let sub = std::fs::metadata(d.join("sub")).unwrap();
    assert_eq!(
        sub.mode() & 0o2000,
        0o2000,
        "a subdirectory inherits S_ISGID"
    );
    assert_eq!(head(&b, "shared/file").user_meta["gid"], "4321");
    assert_eq!(head(&b, "shared/sub/").user_meta["gid"], "4321");
    // Outside it, the caller's group as before.
    std::fs::write(m.p("plain"), "x").unwrap();
    // SAFETY: getgid cannot fail and touches no memory.
    assert_eq!(std::fs::metadata(m.p("plain")).unwrap().gid(), unsafe {
        libc::getgid()
    });
}

/// S_ISGID of a file whose creator is not in its group is dropped, at create and at chmod (the
/// kernel does it before cosfs sees the mode; checked here end to end, on COS too).
#[test]
fn set_group_id_is_dropped_for_non_members() {
    use std::os::unix::process::CommandExt;
    let b = Backend::start();
    let m = Mounted::start(&b, &["--allow-other"]);
    let d = m.p("shared");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, None, Some(4321)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2777)).unwrap();
    let script = "import os, sys\n\
        os.umask(0)\n\
        d = sys.argv[1]\n\
        os.close(os.open(d + '/made', os.O_CREAT | os.O_WRONLY, 0o2775))\n\
        os.close(os.open(d + '/chmoded', os.O_CREAT | os.O_WRONLY, 0o644))\n\
        os.chmod(d + '/chmoded', 0o2775)\n";
    // As nobody, in no supplementary group (std drops them when it changes the uid).
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&d)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["made", "chmoded"] {
        let md = std::fs::metadata(d.join(name)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 4321), "{name}");
        assert_eq!(md.mode() & 0o7777, 0o775, "{name}: S_ISGID dropped");
        let stored: u32 = head(&b, &format!("shared/{name}")).user_meta["mode"]
            .parse()
            .unwrap();
        assert_eq!(stored & 0o7777, 0o775, "{name} on COS");
    }
}
