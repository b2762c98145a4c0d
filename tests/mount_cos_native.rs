//! COS-native objects through a real mount: appendable objects (APPEND Object at each commit
//! point, and what a change that is not an append does), storage classes, and archived
//! objects (the errno of an unrestored one, restore by xattr, then the bytes).

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::{Duration, Instant};

use common::mount::{close, Backend, Mounted};
use common::posix::{body, cpath, errno, get_xattr, head, meta, set_xattr};
use cosfs::object::{Append, ObjectStore, PutOptions};
use cosfs::server::FaultConfig;

/// An appendable object made the way another COS client makes one.
fn append(b: &Backend, key: &str, at: u64, data: &str) {
    b.block_on(b.client.append_object(
        key,
        Append {
            position: at,
            body: data.to_string().into(),
            opts: &PutOptions::default(),
        },
    ))
    .unwrap_or_else(|e| panic!("append {key}: {e}"));
}

/// Requests that rewrite or copy an object instead of appending to it.
fn rewrites(b: &Backend) -> u64 {
    [
        "PutObject",
        "CopyObject",
        "InitiateMultipartUpload",
        "UploadPart",
    ]
    .iter()
    .map(|op| b.count(op))
    .sum()
}

fn sh(script: &str) -> std::process::Output {
    common::run_within(std::process::Command::new("sh").args(["-c", script]), 60)
}

#[test]
fn appends_to_an_appendable_object_send_only_the_new_bytes() {
    let b = Backend::start();
    append(&b, "app.log", 0, "line 0\n");
    let m = Mounted::start(&b, &[]);
    // A second mount holds the file open from before the appends: reading what it saw must
    // keep working although every append changes the ETag.
    let other = Mounted::start(&b, &[]);
    let early = File::open(other.p("app.log")).unwrap();

    let mut want = b"line 0\n".to_vec();
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.p("app.log"))
        .unwrap();
    b.reset_counts();
    for i in 1..=3u64 {
        let line = format!("line {i}\n");
        f.write_all(line.as_bytes()).unwrap();
        f.sync_all().unwrap();
        want.extend_from_slice(line.as_bytes());
        // One APPEND per fsync, carrying only the new bytes; COS has them at once.
        assert_eq!(b.count("AppendObject"), i);
        let h = head(&b, "app.log").expect("the object");
        assert!(h.appendable, "still appendable");
        assert_eq!(h.size, want.len() as u64);
        assert_eq!(body(&b, "app.log"), want);
        // A reader on the same mount sees the growth.
        assert_eq!(std::fs::read(m.p("app.log")).unwrap(), want);
    }
    // Bytes not sent yet are read back with the sent ones.
    f.write_all(b"unsent\n").unwrap();
    let mut seen = want.clone();
    seen.extend_from_slice(b"unsent\n");
    assert_eq!(std::fs::read(m.p("app.log")).unwrap(), seen);
    let mut part = [0u8; 10];
    File::open(m.p("app.log"))
        .unwrap()
        .read_exact_at(&mut part, want.len() as u64 - 3)
        .unwrap();
    assert_eq!(&part, b" 3\nunsent\n");
    f.sync_all().unwrap();
    want = seen;
    assert_eq!(b.count("AppendObject"), 4);
    assert_eq!(rewrites(&b), 0, "no PUT, copy or multipart");
    let bytes_in = b
        .server
        .stats
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(bytes_in, 28, "only the appended bytes went up");

    // Sequential writes from the end without O_APPEND are appends too.
    let mut g = OpenOptions::new().write(true).open(m.p("app.log")).unwrap();
    g.seek(SeekFrom::End(0)).unwrap();
    g.write_all(b"tail\n").unwrap();
    assert_eq!(close(g), Ok(()));
    close(f).unwrap();
    want.extend_from_slice(b"tail\n");
    assert_eq!(b.count("AppendObject"), 5);
    assert_eq!(body(&b, "app.log"), want);
    assert_eq!(rewrites(&b), 0);

    // The early reader reads the bytes it opened (not pinned to the old ETag: no EIO), and a
    // new open on that mount, once its metadata TTL has passed, sees the growth.
    let mut first = [0u8; 7];
    early.read_exact_at(&mut first, 0).unwrap();
    assert_eq!(&first, b"line 0\n");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(std::fs::read(other.p("app.log")).unwrap(), want);

    // A concurrent reader process polling while a shell appends sees every line arrive.
    let out = sh(&format!(
        "for i in 1 2 3 4 5; do echo more $i >> {p}; done",
        p = m.p("app.log").display()
    ));
    assert!(out.status.success());
    assert_eq!(b.count("AppendObject"), 10);
    assert!(String::from_utf8(body(&b, "app.log"))
        .unwrap()
        .ends_with("more 4\nmore 5\n"));
}

#[test]
fn appendable_logs_creates_appendable_files_for_o_append() {
    let b = Backend::start();
    let m = Mounted::start(&b, &["--appendable-logs"]);
    let log = m.p("service.log");
    let out = sh(&format!(
        "echo started >> {p}; echo serving >> {p}; echo plain > {q}",
        p = log.display(),
        q = m.p("plain.txt").display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(b.count("AppendObject"), 2);
    assert_eq!(b.count("PutObject"), 1, "only the file written with >");
    let h = head(&b, "service.log").unwrap();
    assert!(h.appendable);
    assert_eq!(body(&b, "service.log"), b"started\nserving\n");
    assert_eq!(
        meta(&b, "service.log", "mode"),
        "33188",
        "created with its mode"
    );
    assert!(!head(&b, "plain.txt").unwrap().appendable);
    let md = std::fs::metadata(&log).unwrap();
    assert_eq!(md.len(), 16);
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
}

#[test]
fn appends_within_the_ttl_cost_one_request_and_survive_lost_answers_and_other_writers() {
    let b = Backend::start();
    let m = Mounted::start(&b, &["--appendable-logs", "--metadata-ttl", "60"]);
    let log = m.p("busy.log");
    let echo = |text: &str| {
        let out = sh(&format!("echo {text} >> {}", log.display()));
        assert!(out.status.success(), "{out:?}");
    };
    echo("first");
    b.reset_counts();
    for i in 0..5 {
        echo(&format!("line{i}"));
    }
    // This mount appended last: it knows the length, so each line is one APPEND, no HEAD.
    assert_eq!(b.count("AppendObject"), 5);
    assert_eq!(b.count("HeadObject") + b.count("ListObjects"), 0);
    assert_eq!(
        body(&b, "busy.log"),
        b"first\nline0\nline1\nline2\nline3\nline4\n"
    );

    // An APPEND carried out whose answer is lost: the retry is refused (the position moved),
    // one HEAD finds this very tail there (length and CRC-64), and the line is not doubled.
    b.server.faults.set(FaultConfig {
        lose_answer_rate: 1.0,
        methods: vec!["POST".into()],
        ..Default::default()
    });
    b.reset_counts();
    echo("lost");
    b.server.faults.set(FaultConfig::default());
    assert_eq!(b.count("InjectedLostAnswer"), 1);
    assert_eq!(b.count("AppendObject"), 2, "the APPEND and its retry");
    assert_eq!(b.count("HeadObject"), 1);
    assert_eq!(
        body(&b, "busy.log"),
        b"first\nline0\nline1\nline2\nline3\nline4\nlost\n"
    );

    // Another client appends: the next line goes after theirs (one HEAD to find the end).
    append(&b, "busy.log", 41, "theirs\n");
    echo("mine");
    assert_eq!(
        body(&b, "busy.log"),
        b"first\nline0\nline1\nline2\nline3\nline4\nlost\ntheirs\nmine\n"
    );
    // Another client replaces it with a normal object: the line is appended by a rebuild.
    b.put("busy.log", "replaced\n");
    echo("after");
    assert_eq!(body(&b, "busy.log"), b"replaced\nafter\n");
    assert!(!head(&b, "busy.log").unwrap().appendable);
}

#[test]
fn changes_that_are_not_appends_are_refused_or_rewrite_the_object() {
    let b = Backend::start();
    for k in ["a.log", "b.log", "c.log", "d.log"] {
        append(&b, k, 0, "0123456789");
    }
    let m = Mounted::start(&b, &[]);
    let etag = head(&b, "a.log").unwrap().etag;

    // Metadata changes would need a copy, which COS refuses for appendable objects.
    let perm = std::fs::Permissions::from_mode(0o600);
    assert_eq!(
        errno(std::fs::set_permissions(m.p("a.log"), perm)),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        set_xattr(&m.p("a.log"), "user.tag", b"x", 0),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        set_xattr(&m.p("a.log"), "user.cos.storage_class", b"STANDARD_IA", 0),
        libc::EOPNOTSUPP
    );
    let p = cpath(&m.p("a.log"));
    // SAFETY: a valid C string; a null times pointer means "now".
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), std::ptr::null(), 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    assert_eq!(head(&b, "a.log").unwrap().etag, etag, "nothing changed");

    // rename(2) is EXDEV, so mv copies the file (the copy is a normal object).
    assert_eq!(
        errno(std::fs::rename(m.p("a.log"), m.p("moved.log"))),
        libc::EXDEV
    );
    let out = sh(&format!(
        "mv {} {}",
        m.p("a.log").display(),
        m.p("moved.log").display()
    ));
    assert!(out.status.success(), "{out:?}");
    m.sync_dir("");
    assert!(head(&b, "a.log").is_none());
    assert_eq!(body(&b, "moved.log"), b"0123456789");
    assert!(!head(&b, "moved.log").unwrap().appendable);

    // So is the rename of a directory holding one (nothing is left half-moved), and mv
    // copies the tree instead.
    b.put("logs/plain.txt", "plain");
    append(&b, "logs/app.log", 0, "appended");
    assert_eq!(
        errno(std::fs::rename(m.p("logs"), m.p("old-logs"))),
        libc::EXDEV
    );
    assert_eq!(body(&b, "logs/app.log"), b"appended");
    assert!(
        head(&b, "old-logs/plain.txt").is_none(),
        "copies made were removed"
    );
    let out = sh(&format!(
        "mv {} {}",
        m.p("logs").display(),
        m.p("old-logs").display()
    ));
    assert!(out.status.success(), "{out:?}");
    m.sync_dir("");
    assert_eq!(body(&b, "old-logs/app.log"), b"appended");
    assert_eq!(body(&b, "old-logs/plain.txt"), b"plain");
    assert!(head(&b, "logs/app.log").is_none());

    // A truncate, a write before the end, and O_TRUNC rewrite it as a normal object.
    b.reset_counts();
    OpenOptions::new()
        .write(true)
        .open(m.p("b.log"))
        .unwrap()
        .set_len(4)
        .unwrap();
    let f = OpenOptions::new().write(true).open(m.p("c.log")).unwrap();
    f.write_all_at(b"AB", 2).unwrap();
    f.write_all_at(b"!", 10).unwrap();
    assert_eq!(close(f), Ok(()));
    std::fs::write(m.p("d.log"), "fresh").unwrap();
    assert_eq!(b.count("AppendObject"), 0);
    assert_eq!(b.count("CopyObject") + b.count("UploadPartCopy"), 0);
    for (k, want) in [
        ("b.log", &b"0123"[..]),
        ("c.log", b"01AB456789!"),
        ("d.log", b"fresh"),
    ] {
        assert_eq!(body(&b, k), want, "{k}");
        assert!(!head(&b, k).unwrap().appendable, "{k} is normal now");
    }
    // Once normal, metadata changes work again.
    let perm = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(m.p("b.log"), perm).unwrap();
    assert_eq!(meta(&b, "b.log", "mode"), "33152");
}

#[test]
fn storage_classes_of_new_files_are_kept_and_changed_by_xattr() {
    let b = Backend::start();
    b.put("old.txt", "made elsewhere");
    let m = Mounted::start(&b, &["--storage-class", "standard_ia"]);
    let class = |key: &str| head(&b, key).expect("the object").storage_class;

    // New files take the mount's class; a file written over an object keeps that object's.
    std::fs::write(m.p("new.txt"), "new").unwrap();
    assert_eq!(class("new.txt").as_deref(), Some("STANDARD_IA"));
    std::fs::write(m.p("old.txt"), "rewritten").unwrap();
    assert_eq!(class("old.txt"), None, "still STANDARD");

    // chmod and rename are copies: the class goes along.
    std::fs::set_permissions(m.p("new.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(class("new.txt").as_deref(), Some("STANDARD_IA"));
    std::fs::rename(m.p("new.txt"), m.p("moved.txt")).unwrap();
    assert_eq!(class("moved.txt").as_deref(), Some("STANDARD_IA"));
    assert_eq!(meta(&b, "moved.txt", "mode"), "33152");

    // The xattr reads the class without a GET, and setting it moves the object.
    let name = "user.cos.storage_class";
    b.reset_counts();
    assert_eq!(get_xattr(&m.p("moved.txt"), name).unwrap(), b"STANDARD_IA");
    assert_eq!(get_xattr(&m.p("old.txt"), name).unwrap(), b"STANDARD");
    assert_eq!(b.count("GetObject"), 0);
    assert_eq!(
        set_xattr(&m.p("old.txt"), name, b"intelligent_tiering", 0),
        0
    );
    assert_eq!(class("old.txt").as_deref(), Some("INTELLIGENT_TIERING"));
    assert_eq!(
        get_xattr(&m.p("old.txt"), name).unwrap(),
        b"INTELLIGENT_TIERING"
    );
    assert_eq!(body(&b, "old.txt"), b"rewritten");
    assert!(
        meta(&b, "old.txt", "mode").parse::<u32>().is_ok(),
        "headers kept"
    );
    assert_eq!(set_xattr(&m.p("old.txt"), name, b"GOLD", 0), libc::EINVAL);
    let p = cpath(&m.p("old.txt"));
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
    std::fs::create_dir(m.p("d")).unwrap();
    assert_eq!(get_xattr(&m.p("d"), name), Err(libc::ENODATA));
}

#[test]
fn archived_objects_fail_open_until_restored_by_xattr() {
    let b = Backend::start();
    b.server.faults.set(FaultConfig {
        restore_delay_ms: 1500,
        ..Default::default()
    });
    let class = |c: &str| PutOptions {
        storage_class: Some(c.into()),
        ..Default::default()
    };
    b.put_with("cold.txt", "kept in the archive", class("ARCHIVE"));
    b.put_with("deep.txt", "deeper", class("DEEP_ARCHIVE"));
    b.put("warm.txt", "warm");
    let mut m = Mounted::start(&b, &[]);

    // Listing and stat work as for any object.
    let mut names: Vec<String> = std::fs::read_dir(m.p(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cold.txt", "deep.txt", "warm.txt"]);
    assert_eq!(std::fs::metadata(m.p("cold.txt")).unwrap().len(), 19);

    // Opening an unrestored one fails at once with ENODATA, before any GET.
    b.reset_counts();
    assert_eq!(errno(File::open(m.p("cold.txt"))), libc::ENODATA);
    assert_eq!(errno(File::open(m.p("deep.txt"))), libc::ENODATA);
    assert_eq!(b.count("GetObject"), 0);
    let status = "user.cos.restore_status";
    assert_eq!(get_xattr(&m.p("cold.txt"), status).unwrap(), b"archived");
    assert_eq!(
        get_xattr(&m.p("warm.txt"), status).unwrap(),
        b"not archived"
    );
    // chmod needs a copy, which COS refuses too.
    let perm = std::fs::Permissions::from_mode(0o600);
    assert_eq!(
        errno(std::fs::set_permissions(m.p("deep.txt"), perm)),
        libc::ENODATA
    );

    // Setting user.cos.restore starts the restore; bad values and a second restore are refused.
    let restore = "user.cos.restore";
    assert_eq!(
        set_xattr(&m.p("cold.txt"), restore, b"days=0", 0),
        libc::EINVAL
    );
    assert_eq!(
        set_xattr(&m.p("cold.txt"), restore, b"days=1,tier=Expedited", 0),
        0
    );
    assert_eq!(b.count("PostObjectRestore"), 1);
    assert_eq!(get_xattr(&m.p("cold.txt"), status).unwrap(), b"restoring");
    assert_eq!(errno(File::open(m.p("cold.txt"))), libc::EAGAIN);
    assert_eq!(set_xattr(&m.p("cold.txt"), restore, b"1", 0), libc::EBUSY);
    assert_eq!(
        set_xattr(&m.p("cold.txt"), status, b"restored", 0),
        libc::EPERM
    );

    // Once the server has restored it, it reads.
    let began = Instant::now();
    loop {
        let s = get_xattr(&m.p("cold.txt"), status).unwrap();
        if s.starts_with(b"restored until ") {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "still {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut text = String::new();
    File::open(m.p("cold.txt"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "kept in the archive");
    assert_eq!(
        head(&b, "cold.txt").unwrap().storage_class.as_deref(),
        Some("ARCHIVE")
    );
    // The log says which object is archived and how to restore it.
    let log = m.stop_with_log();
    let line = log
        .lines()
        .find(|l| l.contains("deep.txt") && l.contains("archived"))
        .unwrap_or_else(|| panic!("no log line for deep.txt in:\n{log}"));
    assert!(line.contains("setfattr -n user.cos.restore"), "{line}");
}

#[test]
fn failed_appends_and_rewrites_leave_the_appendable_object_intact() {
    let b = Backend::start();
    append(&b, "f.log", 0, "base\n");
    append(&b, "g.log", 0, "kept\n");
    let mut m = Mounted::start(&b, &[]);
    let intact = |want: &[u8]| {
        assert_eq!(body(&b, "f.log"), want);
        assert!(head(&b, "f.log").unwrap().appendable, "still appendable");
    };
    let failing = || {
        b.server.faults.set(FaultConfig {
            rate_503: 1.0,
            methods: vec!["PUT".into(), "POST".into()],
            ..Default::default()
        })
    };

    // A server that keeps failing: fsync and close say EIO, and nothing is appended.
    failing();
    let mut f = OpenOptions::new().append(true).open(m.p("f.log")).unwrap();
    f.write_all(b"lost\n").unwrap();
    assert_eq!(errno(f.sync_all()), libc::EIO);
    assert_eq!(close(f), Err(libc::EIO));
    // A writer that forks (the subshell writes through the descriptor it inherited).
    sh(&format!("(echo a; echo b) >> {}", m.p("f.log").display()));
    // dd over it (O_TRUNC: a rewrite as a normal object) fails the same way.
    let out = sh(&format!(
        "printf 'new contents' | dd of={} status=none",
        m.p("f.log").display()
    ));
    assert!(!out.status.success(), "dd must see the failed upload");
    b.server.faults.set(FaultConfig::default());
    intact(b"base\n");

    // Once the server is back, the forking writer appends, and dd rewrites the object.
    let out = sh(&format!("(echo a; echo b) >> {}", m.p("f.log").display()));
    assert!(out.status.success(), "{out:?}");
    intact(b"base\na\nb\n");
    let out = sh(&format!(
        "printf 'new contents' | dd of={} status=none",
        m.p("f.log").display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(body(&b, "f.log"), b"new contents");
    assert!(!head(&b, "f.log").unwrap().appendable);

    // kill -9 of the mount with bytes not yet appended: the object is as it was.
    let mut g = OpenOptions::new().append(true).open(m.p("g.log")).unwrap();
    g.write_all(b"never committed\n").unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGKILL) };
    let _ = g.write_all(b"more\n");
    drop(g);
    m.wait_exit(Duration::from_secs(5));
    assert_eq!(body(&b, "g.log"), b"kept\n");
    assert!(head(&b, "g.log").unwrap().appendable);
}
