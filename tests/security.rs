//! Safe on a shared machine: what another local user can do to a root mount's local files.
//! Runs as root and switches to the users `tests` (a victim with a private file) and
//! `nobody` (the attacker), as `.ci/run` creates them.
//!
//! - the staging file of an in-place edit and the disk cache's chunks cannot be read by
//!   another user (private directories, anonymous staging files);
//! - a cache directory another user prepared in a shared directory (`-o use_cache=/tmp`),
//!   with symlinks planted for the lock and a chunk's temporary file, is refused, and nothing
//!   is written where the links point;
//! - a log file planted as a symlink, a credentials file owned by another user and a metrics
//!   endpoint on every address are refused or warned about.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::mount::{is_mounted, mount_command, Backend, Mounted, Unmounter};
use common::{pattern, BUCKET};

const NOBODY: u32 = 65534;

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(
        out.status.success(),
        "user {user} must exist (.ci/run makes it)"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Run `script` with `sh -c` as `uid`/`gid`; returns (exit code, stdout+stderr).
fn sh_as(uid: u32, gid: u32, script: &str) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Every regular file under `root` (as root sees them).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The mode of a file that may be gone meanwhile (a chunk's temporary file, renamed into
/// place by the disk cache's writer while the test looks).
fn mode_if_there(p: &Path) -> Option<u32> {
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// A directory every user may create entries in, as `/tmp` is (sticky, 1777).
fn shared_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    t
}

/// The name of a mount's own directory under `--cache-dir`/`--disk-cache`, as an attacker
/// who knows the bucket and endpoint can compute it.
fn predicted_dir_name(endpoint: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(endpoint.as_bytes());
    h.update([0]);
    format!("{BUCKET}-0-{}", hex::encode(&h.finalize()[..6]))
}

#[test]
fn another_user_cannot_read_edits_in_place_or_cached_blocks() {
    let b = Backend::start();
    let victim = uid_of("tests");
    let secret = b"EDIT-0000-TOPSECRET";
    let cache_root = shared_dir();
    let m = Mounted::start(
        &b,
        &[
            "--allow-other",
            "--cache-dir",
            cache_root.path().to_str().unwrap(),
            "--disk-cache",
            cache_root.path().to_str().unwrap(),
        ],
    );
    std::fs::create_dir(m.p("home")).unwrap();
    std::os::unix::fs::chown(m.p("home"), Some(victim), Some(victim)).unwrap();
    // The victim's 0600 file, then an in-place edit of it held open (a staging file exists).
    let (code, out) = sh_as(
        victim,
        victim,
        &format!(
            "umask 077 && printf 'base-content-%.0s' $(seq 1 100) > {0} && ls -l {0}",
            m.p("home/private").display()
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("-rw-------"), "{out}");
    // As the victim: open without O_TRUNC, write the secret in the middle, keep it open
    // (a staging file holds the edit) until told to close.
    let mut editor = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import os,sys\nfd=os.open({path:?},os.O_RDWR)\nos.pwrite(fd,{secret:?}.encode(),40)\n\
             print('edited',flush=True)\nsys.stdin.readline()\nos.close(fd)",
            path = m.p("home/private").to_str().unwrap(),
            secret = std::str::from_utf8(secret).unwrap()
        ))
        .uid(victim)
        .gid(victim)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(editor.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "edited");

    // The attacker tries every name under the cache root, and the staging files' own names.
    let listing = files_under(cache_root.path());
    let (code, out) = sh_as(
        NOBODY,
        NOBODY,
        &format!(
            "ls -la {root}/*/ 2>&1; for f in $(find {root} 2>/dev/null); do cat \"$f\" 2>/dev/null; done; true",
            root = cache_root.path().display()
        ),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("Permission denied"),
        "the mount's directory is closed: {out}"
    );
    assert!(
        !out.contains("TOPSECRET"),
        "another user read the edit: {out}"
    );
    let own = cache_root.path().join(predicted_dir_name(&b.endpoint()));
    assert!(own.is_dir(), "{listing:?}");
    assert_eq!(mode(&own), 0o700);
    assert_eq!(std::fs::metadata(&own).unwrap().uid(), 0);
    // Staging files have no name: nothing under the cache root holds the edit.
    for f in &listing {
        let bytes = std::fs::read(f).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{} holds the edit",
            f.display()
        );
        if let Some(m) = mode_if_there(f) {
            assert_eq!(m & 0o077, 0, "{} is open to others", f.display());
        }
    }
    // The mount's open staging file is 0600.
    let pid = m.pid().unwrap();
    let mut staging = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        if target.starts_with(&own) {
            let md = std::fs::metadata(fd.path()).unwrap();
            if md.is_file() {
                staging += 1;
                assert_eq!(md.mode() & 0o777, 0o600, "{}", target.display());
            }
        }
    }
    assert!(staging >= 1, "the edit is staged in the mount's directory");
    drop(editor.stdin.take()); // the editor closes its file now
    assert!(editor.wait().unwrap().success());

    // Cached chunks: read a 3 MiB file so whole chunks land on disk, then try them.
    b.put_big("pub/big.bin", &pattern(3 << 20, 7));
    let mut f = std::fs::File::open(m.p("pub/big.bin")).unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    drop(f);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while files_under(&own).iter().all(|p| p.ends_with(".lock")) {
        assert!(std::time::Instant::now() < deadline, "no chunk was written");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for f in files_under(&own) {
        let Some(m) = mode_if_there(&f) else {
            continue;
        };
        assert_eq!(m, 0o600, "{}", f.display());
        let (code, out) = sh_as(NOBODY, NOBODY, &format!("cat {} > /dev/null", f.display()));
        assert_ne!(code, 0, "nobody read {}: {out}", f.display());
    }
    // What the victim wrote is intact on COS.
    let got = common::get_all(&b.client, "home/private");
    let got = b.block_on(got);
    assert_eq!(&got[40..40 + secret.len()], secret);
}

#[test]
fn a_cache_directory_another_user_prepared_is_refused_and_nothing_is_written_through_it() {
    let b = Backend::start();
    let shared = shared_dir();
    let victims = tempfile::tempdir().unwrap();
    let victim_file = victims.path().join("crontab");
    std::fs::write(&victim_file, b"# root's own\n").unwrap();
    let created = victims.path().join("created-by-root");
    let name = predicted_dir_name(&b.endpoint());
    let planted = shared.path().join(&name);
    // As nobody: the mount's directory made in advance, open to all, with the lock and a
    // chunk's temporary file pointing at files of the attacker's choice.
    let (code, out) = sh_as(
        NOBODY,
        NOBODY,
        &format!(
            "mkdir -m 777 {d} && chmod 777 {d} && ln -s {victim} {d}/.lock && mkdir -m 777 {d}/00 \
             && ln -s {created} {d}/00/chunk.tmp && ls -la {d}",
            d = planted.display(),
            victim = victim_file.display(),
            created = created.display()
        ),
    );
    assert_eq!(code, 0, "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = Unmounter::new(&mnt);
    // The s3fs-style option, as users coming from s3fs and Tencent cosfs write it.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    cmd.arg(BUCKET)
        .arg(&mnt)
        .arg("-o")
        .arg(format!(
            "url={},use_cache={}",
            b.endpoint(),
            shared.path().display()
        ))
        .arg("-f")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tmp.path())
        .env("COS_SECRET_ID", common::SECRET_ID)
        .env("COS_SECRET_KEY", common::SECRET_KEY);
    let out = common::run_within(&mut cmd, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {err}");
    assert!(
        err.contains(&planted.display().to_string()) && err.contains("owned by uid 65534"),
        "the message names the directory and its owner: {err}"
    );
    assert!(!is_mounted(&mnt));
    assert_eq!(std::fs::read(&victim_file).unwrap(), b"# root's own\n");
    assert!(
        !created.exists(),
        "root created a file where the attacker pointed"
    );
    assert_eq!(mode(&planted), 0o777, "left as the attacker made it");

    // A symlink in the attacker's name, pointing at a directory root owns: refused too.
    std::fs::remove_file(planted.join(".lock")).unwrap();
    std::fs::remove_file(planted.join("00/chunk.tmp")).unwrap();
    std::fs::remove_dir(planted.join("00")).unwrap();
    std::fs::remove_dir(&planted).unwrap();
    let roots = tempfile::tempdir().unwrap();
    let (code, out) = sh_as(
        NOBODY,
        NOBODY,
        &format!("ln -s {} {}", roots.path().display(), planted.display()),
    );
    assert_eq!(code, 0, "{out}");
    let out = common::run_within(&mut cmd, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "refused: {err}");
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(
        std::fs::read_dir(roots.path()).unwrap().count(),
        0,
        "nothing written there"
    );

    // Without an attacker the same command mounts, in a directory of its own, 0700.
    std::fs::remove_file(&planted).unwrap();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("mounted on"), "{line}");
    assert_eq!(mode(&planted), 0o700);
    assert_eq!(std::fs::metadata(&planted).unwrap().uid(), 0);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
}

#[test]
fn logs_credentials_and_metrics_are_not_open_to_other_users() {
    let b = Backend::start();
    let tmp = tempfile::tempdir().unwrap();
    let shared = shared_dir();

    // A new log file is 0600.
    let log = tmp.path().join("cosfs.log");
    let mut m = Mounted::start(&b, &["--log-file", log.to_str().unwrap()]);
    std::fs::write(m.p("k"), b"x").unwrap();
    m.stop();
    assert_eq!(mode(&log), 0o600);
    assert!(std::fs::read_to_string(&log).unwrap().contains("mounting"));

    // A log path another user planted as a symlink to root's file: refused, file untouched.
    let target = tmp.path().join("shadow");
    std::fs::write(&target, b"root:x:0\n").unwrap();
    let planted = shared.path().join("cosfs.log");
    let (code, out) = sh_as(
        NOBODY,
        NOBODY,
        &format!("ln -s {} {}", target.display(), planted.display()),
    );
    assert_eq!(code, 0, "{out}");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = Unmounter::new(&mnt);
    let mut cmd = mount_command(BUCKET, &mnt, &b.endpoint());
    cmd.args(["-f", "--cache-dir"])
        .arg(tmp.path().join("cache"))
        .arg("--log-file")
        .arg(&planted);
    let out = common::run_within(&mut cmd, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot open log file"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"root:x:0\n");

    // A 0600 credentials file owned by nobody: root does not take keys another user wrote.
    let passwd = shared.path().join("passwd-cosfs");
    std::fs::write(
        &passwd,
        format!("{BUCKET}:{}:{}\n", common::SECRET_ID, common::SECRET_KEY),
    )
    .unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&passwd, Some(NOBODY), Some(NOBODY)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    cmd.arg("mount")
        .arg(BUCKET)
        .arg(&mnt)
        .args(["--endpoint", &b.endpoint(), "-f", "--passwd-file"])
        .arg(&passwd)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let out = common::run_within(&mut cmd, 30);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("owned by uid 65534"), "{err}");
    assert!(!is_mounted(&mnt));

    // Metrics on every address: the mount says what that exposes.
    let port = common::free_port();
    let mut m = Mounted::start(&b, &["--metrics-listen", &format!("0.0.0.0:{port}")]);
    let log = m.stop_with_log();
    assert!(
        log.contains("not a loopback address") && log.contains("firewall"),
        "{log}"
    );

    // An existing log file readable by others loses that; a group's read bit is kept.
    let log = tmp.path().join("old.log");
    std::fs::write(&log, b"old line\n").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut m = Mounted::start(&b, &["--log-file", log.to_str().unwrap()]);
    m.stop();
    assert_eq!(mode(&log), 0o640);
    let mut f = std::fs::File::open(&log).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    f.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("old line\n"), "appended to: {text}");
    let _ = std::io::stdout().flush();
}
