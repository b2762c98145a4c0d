//! `cosfs check` against `cosfs serve`: a good setup passes every step (the probe object is
//! gone afterwards), and each usual mistake fails with its plain-words diagnosis.

mod common;

use std::process::{Command, Output};

use common::mount::Backend;
use common::{BUCKET, SECRET_ID, SECRET_KEY};
use cosfs::object::{ListRequest, ObjectStore};
use cosfs::server::FaultConfig;

fn check(b: &Backend, bucket: &str, secret_key: &str) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .args(["check", bucket, "--endpoint", &b.endpoint()])
        .env_clear()
        .env("HOME", home.path())
        .env("COS_SECRET_ID", SECRET_ID)
        .env("COS_SECRET_KEY", secret_key)
        .output()
        .unwrap()
}

fn says(out: &Output, code: i32, needle: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(code), "{text}");
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

#[test]
fn good_setup_passes_every_step() {
    let b = Backend::start();
    let out = check(&b, BUCKET, SECRET_KEY);
    says(&out, 0, "All checks passed");
    for step in [
        "endpoint",
        "clock",
        "list",
        "head bucket",
        "write",
        "unfinished uploads",
    ] {
        says(&out, 0, &format!("ok    {step}:"));
    }
    // The probe object is cleaned up.
    let page = b
        .block_on(b.client.list_objects(&ListRequest::default()))
        .unwrap();
    assert!(page.entries.is_empty(), "{:?}", page.entries);
}

#[test]
fn wrong_secret_wrong_bucket_and_a_fast_clock_are_named() {
    let b = Backend::start();
    says(
        &check(&b, BUCKET, "not-the-secret"),
        1,
        "SecretKey does not match SecretId AKID…0000",
    );
    says(
        &check(&b, "nosuch-1250000000", SECRET_KEY),
        1,
        "bucket nosuch-1250000000 does not exist",
    );
    says(
        &check(&b, "examplebucket", SECRET_KEY),
        1,
        "bucket name must end in -APPID",
    );
    // The server's clock 20 minutes behind ours: ours is 20 minutes fast.
    b.server.faults.set(FaultConfig {
        clock_offset_secs: -1200,
        ..Default::default()
    });
    says(&check(&b, BUCKET, SECRET_KEY), 1, "clock is 20 min fast");
}

/// `cosfs check ... | head -1`: the reader goes away; check ends quietly by SIGPIPE, like
/// other Unix tools, instead of panicking on the broken pipe.
#[test]
fn a_closed_pipe_ends_check_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let b = Backend::start();
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .args(["check", BUCKET, "--endpoint", &b.endpoint()])
        .env_clear()
        .env("HOME", home.path())
        .env("COS_SECRET_ID", SECRET_ID)
        .env("COS_SECRET_KEY", SECRET_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // the reader (and the pipe) is dropped here
    assert!(first.starts_with("ok    bucket name"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
