//! The crates.io `pjdfstest` POSIX suite on a real cosfs mount over `cosfs serve`.
//!
//! The run fails when a case outside `tests/pjdfstest/expected-failures.txt` fails, or when a
//! case of that list passes (pjdfstest reports it as "PASSED UNEXPECTEDLY"), so the list only
//! shrinks. `.ci/run` installs pjdfstest and the users it switches to (`nobody`, `tests`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::mount::{Backend, Mounted};

fn pjdfstest_binary() -> PathBuf {
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin/pjdfstest"));
    if let Some(p) = in_cargo_home.filter(|p| p.exists()) {
        return p;
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v pjdfstest"])
        .output()
        .expect("sh");
    let p = String::from_utf8_lossy(&on_path.stdout).trim().to_string();
    assert!(
        !p.is_empty(),
        "pjdfstest is not installed: `cargo install pjdfstest` (.ci/run does it), and create \
         the users nobody and tests"
    );
    PathBuf::from(p)
}

/// The expected failures: `NAME  # reason` lines.
fn expected_failures() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/pjdfstest/expected-failures.txt"
    );
    std::fs::read_to_string(path)
        .expect("expected-failures.txt")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, reason) = l.split_once('#').expect("every entry has a # reason");
            assert!(!reason.trim().is_empty(), "no reason given for {name}");
            name.trim().to_string()
        })
        .collect()
}

fn group_of(user: &str) -> String {
    let out = Command::new("id").args(["-gn", user]).output().expect("id");
    assert!(
        out.status.success(),
        "user {user} is missing (pjdfstest switches to it; .ci/run creates it)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One full run of the suite in `dir` (a directory of the mount); panics on any case outside
/// the expected failures, and on an expected failure that passes. No case is run twice: a
/// case that fails once fails the test.
fn run_suite(conf: &std::path::Path, dir: &std::path::Path, expected: usize) {
    let out = Command::new(pjdfstest_binary())
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(dir)
        .current_dir(dir)
        .output()
        .expect("run pjdfstest");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains("Summary"))
        .unwrap_or("no summary")
        .to_string();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("FAILED") || l.ends_with("PASSED UNEXPECTEDLY"))
        .collect();
    println!("pjdfstest on cosfs in {}: {summary}", dir.display());
    let passed: usize = summary
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" passed")?.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        bad.is_empty() && out.status.success(),
        "{summary}\nunexpected results in {} (fix them, or list them with a reason in \
         tests/pjdfstest/expected-failures.txt):\n{}\n\n{}",
        dir.display(),
        bad.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        passed >= 300 && summary.contains(&format!("{expected} expected failures")),
        "{passed} cases passed: {summary}"
    );
}

#[test]
fn pjdfstest_passes_but_for_what_cos_rules_out_at_the_root_and_in_a_subdirectory() {
    let b = Backend::start();
    // Other users must reach the mount: pjdfstest runs parts of its cases as nobody and tests.
    let m = Mounted::start(&b, &["--allow-other"]);
    let conf = m.dir.path().join("pjdfstest.toml");
    let expected = expected_failures();
    let list: Vec<String> = expected.iter().map(|n| format!("{n:?}")).collect();
    std::fs::write(
        &conf,
        format!(
            "[settings]\n\
             # Longer than the clock's granularity, so time-change checks are meaningful.\n\
             naptime = 0.05\n\
             allow_remount = false\n\
             expected_failures = [{}]\n\
             [dummy_auth]\n\
             entries = [[\"nobody\", \"{}\"], [\"tests\", \"{}\"]]\n",
            list.join(", "),
            group_of("nobody"),
            group_of("tests"),
        ),
    )
    .unwrap();
    run_suite(&conf, &m.path, expected.len());
    // The same suite in a directory made on the mount, as a user would run it there.
    let sub = m.p("pjd");
    std::fs::create_dir(&sub).unwrap();
    run_suite(&conf, &sub, expected.len());
}
