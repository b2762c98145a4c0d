//! Small files at few round trips: the requests a shell redirection and `cp` send to create a
//! file in a directory this mount made (no lookup reaches COS: the mount knows the directory's
//! every name), counted by the server; and how a zero-byte new file appears, or fails to.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cosfs::object::ObjectStore;
use cosfs::server::FaultConfig;

use common::mount::{Backend, Mounted};

fn sh(script: &str) {
    let st = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(st.success(), "{script}");
}

#[test]
fn a_redirect_or_cp_into_a_fresh_directory_is_one_put_and_nothing_else() {
    let b = Backend::start();
    // Long enough that the test never outlives what the mount knows (the default is 1 s).
    let m = Mounted::start(&b, &["--metadata-ttl", "60"]);
    let src = m.dir.path().join("src.txt");
    std::fs::write(&src, vec![b'x'; 4096]).unwrap();
    std::fs::create_dir(m.p("fresh")).unwrap();

    b.reset_counts();
    sh(&format!("echo hello > '{}'", m.p("fresh/a").display()));
    let counts =
        ["HeadObject", "ListObjects", "PutObject", "GetObject"].map(|op| (op, b.count(op)));
    assert_eq!(
        counts,
        [
            ("HeadObject", 0),
            ("ListObjects", 0),
            ("PutObject", 1),
            ("GetObject", 0)
        ],
        "a shell redirection"
    );
    assert_eq!(std::fs::read(m.p("fresh/a")).unwrap(), b"hello\n");

    b.reset_counts();
    sh(&format!(
        "cp '{}' '{}'",
        src.display(),
        m.p("fresh/b").display()
    ));
    assert_eq!(b.count("HeadObject") + b.count("ListObjects"), 0, "cp");
    assert_eq!(b.count("PutObject"), 1, "cp");
    assert_eq!(b.server.stats.total(), 1, "only the PUT");
    assert_eq!(std::fs::read(m.p("fresh/b")).unwrap(), vec![b'x'; 4096]);
}

/// Wait up to 10 s for `cond`.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_zero_byte_new_file_is_one_empty_put_and_a_failure_reaches_touch_or_the_log() {
    let b = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cosfs.log");
    let m = Mounted::start(
        &b,
        // Short, so the kernel's entry for the lost name expires within the test.
        &["--metadata-ttl", "2", "--log-file", log.to_str().unwrap()],
    );
    std::fs::create_dir(m.p("d")).unwrap();
    b.reset_counts();
    for (script, key) in [("touch", "d/t"), (": >", "d/r")] {
        sh(&format!("{script} '{}'", m.p(key).display()));
        // Shown by this mount at once; on COS once the last descriptor is gone (FUSE release,
        // which the kernel sends just after close returns).
        assert_eq!(std::fs::metadata(m.p(key)).unwrap().len(), 0);
        eventually(&format!("{key} on COS"), || {
            b.block_on(b.client.head_object(key))
                .is_ok_and(|h| h.size == 0)
        });
    }
    assert_eq!(b.count("PutObject"), 2, "one empty PUT each");

    // The PUT fails. `touch` sets the file's times through its descriptor, which makes its
    // close a commit point: touch itself sees the error.
    b.server.faults.set(FaultConfig {
        rate_503: 1.0,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let st = Command::new("touch").arg(m.p("d/told")).status().unwrap();
    assert!(!st.success(), "touch sees the failed upload");
    // A redirection without a write: its closes are not commit points (`>` closes a descriptor
    // before any write), so the shell succeeds; the log says it, and the name goes.
    sh(&format!(": > '{}'", m.p("d/lost").display()));
    eventually("the failed upload logged", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("last close of a file could not upload it")
    });
    b.server.faults.set(FaultConfig::default());
    eventually("the name gone from the mount", || {
        std::fs::metadata(m.p("d/lost")).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
    });
    assert!(b.block_on(b.client.head_object("d/lost")).is_err());
    assert!(b.block_on(b.client.head_object("d/told")).is_err());
}
