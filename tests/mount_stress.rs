//! Suites we did not write, run on a real mount:
//! - `fsx` (the Rust port of the classic file system exerciser, `cargo install fsx`): 100,000
//!   random reads, writes, truncates and mapped I/O on one file, every byte read checked
//!   against its model;
//! - an fsstress-like random mix from Debian's `stress-ng`: the stressors of its
//!   `filesystem` class that apply to a bucket (no hard links, device nodes, fallocate,
//!   inotify, leases or file handles), each checking its own results (`--verify`); `hdd`
//!   writes and verifies 4 MiB rounds (see the stressor's comment below).
//!
//! `.ci/run` installs both; a missing tool fails the test.

mod common;

use std::process::Command;

use common::mount::{Backend, Mounted};

/// `name` on PATH or in cargo's bin directory.
fn tool(name: &str) -> std::path::PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .map(|d| d.join("bin").join(name));
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    });
    on_path
        .or(cargo_bin.filter(|c| c.is_file()))
        .unwrap_or_else(|| panic!("{name} is not installed (.ci/run installs it)"))
}

#[test]
fn fsx_runs_100000_operations_clean() {
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    let out = Command::new(tool("fsx"))
        .args(["-N", "100000", "-S", "20261202", "-P"])
        .arg(m.dir.path())
        .arg(m.p("fsx.data"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fsx failed:\n{text}");
    assert!(text.contains("All operations completed A-OK!"), "{text}");
    // What fsx left is on COS: its last size, readable by another client.
    let size = std::fs::metadata(m.p("fsx.data")).unwrap().len();
    assert_eq!(
        common::posix::head(&b, "fsx.data").map(|h| h.size),
        Some(size)
    );
}

/// The `filesystem`-class stressors that a bucket can serve.
const STRESSORS: &[&str] = &[
    "access",
    "chdir",
    "chmod",
    "chown",
    "copy-file",
    "dentry",
    "dir",
    "dirdeep",
    "dirmany",
    "dup",
    "fcntl",
    "filename",
    "fsize",
    "fstat",
    "getdent",
    "hdd",
    "io",
    "iomix",
    "lockf",
    "open",
    "rename",
    "symlink",
    "sync-file",
    "touch",
    "utime",
];

#[test]
fn stress_ng_filesystem_mix_passes_its_own_checks() {
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    let work = m.p("stress");
    std::fs::create_dir(&work).unwrap();
    let mut failed = Vec::new();
    for s in STRESSORS {
        let mut cmd = Command::new(tool("stress-ng"));
        cmd.arg(format!("--{s}")).arg("2");
        if *s == "hdd" {
            // hdd unlinks its file while writing it: an unlinked new file cannot read back what
            // it already sent as multipart parts (README, `unlink` of an open file), so each
            // write-and-verify round stays within one part.
            cmd.args(["--hdd-bytes", "4M"]);
        }
        let out = cmd
            .args(["--timeout", "3", "--verify", "--temp-path"])
            .arg(&work)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("successful run completed") {
            failed.push(format!("{s} ({:?}):\n{text}", out.status.code()));
        }
    }
    assert!(
        failed.is_empty(),
        "stressors failed:\n{}",
        failed.join("\n")
    );
    // Every stressor cleans up after itself: nothing is left below the work directory.
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
