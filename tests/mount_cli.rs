//! `cosfs mount` / `cosfs unmount` as a user runs them: the errors reported before anything is
//! mounted, daemon mode, and clean stops.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::mount::{force_unmount, is_mounted, mount_command, Backend, Mounted};
use common::BUCKET;

/// Run `cosfs mount` to completion (daemon mode unless `-f` is in `extra`) with a deadline.
fn run_mount(cmd: &mut Command) -> Output {
    common::run_within(cmd, 60)
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

fn mountpoint() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("mnt");
    std::fs::create_dir(&p).unwrap();
    (d, p)
}

#[test]
fn clear_errors_before_mounting() {
    let b = Backend::start();
    let (_d, mnt) = mountpoint();

    // Missing credentials (nothing in the environment, no passwd files under HOME).
    let out = run_mount(
        mount_command(BUCKET, &mnt, &b.endpoint())
            .env_remove("COS_SECRET_ID")
            .env_remove("COS_SECRET_KEY"),
    );
    fails_with(&out, "no credentials for bucket");

    // Wrong secret.
    let out = run_mount(mount_command(BUCKET, &mnt, &b.endpoint()).env("COS_SECRET_KEY", "wrong"));
    fails_with(&out, "SecretKey does not match SecretId");

    // Missing bucket.
    let out = run_mount(&mut mount_command("nosuch-1250000000", &mnt, &b.endpoint()));
    fails_with(&out, "does not exist");

    // Unreachable endpoint: a port nobody listens on.
    let port = common::free_port();
    let out = run_mount(&mut mount_command(
        BUCKET,
        &mnt,
        &format!("http://127.0.0.1:{port}"),
    ));
    fails_with(&out, "nothing listens at");

    // Mountpoint not empty, and not a directory.
    std::fs::write(mnt.join("file"), "x").unwrap();
    let out = run_mount(&mut mount_command(BUCKET, &mnt, &b.endpoint()));
    fails_with(&out, "is not empty");
    let out = run_mount(&mut mount_command(BUCKET, &mnt.join("file"), &b.endpoint()));
    fails_with(&out, "is not a directory");
    assert!(!is_mounted(&mnt));
}

#[test]
fn daemon_mode_returns_once_mounted_and_unmount_stops_it() {
    let b = Backend::start();
    b.put("hello.txt", "hi\n");
    let (_d, mnt) = mountpoint();
    let out = run_mount(&mut mount_command(BUCKET, &mnt, &b.endpoint()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The mount is live when the command returns: no waiting, no retry loop.
    let read = std::fs::read_to_string(mnt.join("hello.txt"));
    let unmount = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .arg("unmount")
        .arg(&mnt)
        .output()
        .unwrap();
    if !unmount.status.success() {
        force_unmount(&mnt);
    }
    assert_eq!(read.unwrap(), "hi\n");
    assert!(
        unmount.status.success(),
        "{}",
        String::from_utf8_lossy(&unmount.stderr)
    );
    assert!(!is_mounted(&mnt));
    // The daemon exits after the unmount.
    let deadline = Instant::now() + Duration::from_secs(10);
    let daemon_alive = || {
        let ps = Command::new("pgrep")
            .args(["-f", &format!("mount {BUCKET} {}", mnt.display())])
            .output()
            .unwrap();
        !ps.stdout.is_empty()
    };
    while daemon_alive() {
        assert!(Instant::now() < deadline, "daemon still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Unmounting again is a clear error.
    let again = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .arg("unmount")
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not a mount point"));
}

#[test]
fn sigterm_unmounts_cleanly_even_with_a_file_open() {
    let b = Backend::start();
    b.put("f", "data");
    let mut m = Mounted::start(&b, &[]);
    let open = std::fs::File::open(m.p("f")).unwrap();
    let (code, gone) = m.stop();
    assert_eq!(code, Some(0));
    assert!(gone, "mount left behind after SIGTERM");
    drop(open);
    // No "Transport endpoint is not connected" left: the directory is usable again.
    assert!(std::fs::read_dir(&m.path).unwrap().next().is_none());
}

#[test]
fn a_dead_mount_left_by_kill_9_is_replaced_by_the_next_mount() {
    let b = Backend::start();
    b.put("hello.txt", "hi\n");
    let (d, mnt) = mountpoint();
    let cache = d.path().join("cache");
    let mount = || {
        let out = run_mount(
            mount_command(BUCKET, &mnt, &b.endpoint())
                .arg("--cache-dir")
                .arg(&cache),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let _guard = common::mount::Unmounter::new(&mnt);
    mount();
    let ps = Command::new("pgrep")
        .args(["-f", &format!("mount {BUCKET} {}", mnt.display())])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&ps.stdout).trim().parse().unwrap();
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        match std::fs::metadata(&mnt) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => break true,
            _ if Instant::now() > deadline => break false,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(dead, "the killed mount should answer ENOTCONN");
    let out = mount();
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead cosfs mount"));
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello.txt")).unwrap(),
        "hi\n"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .arg("unmount")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
}
