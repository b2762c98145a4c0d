//! The bad-input table: what a new user gets wrong and what a server does wrong, each case
//! checked for the exit code or errno, the message, and that nothing was lost (the bucket's
//! objects, read through the client, are as they were). `cargo test --test bad_input --
//! --nocapture` prints the table with each result.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::mount::{is_mounted, mount_command, no_uploads_left, Backend, Mounted};
use common::{fake_http, get_all, pattern, BUCKET, SECRET_ID, SECRET_KEY};
use cosfs::object::{ListRequest, ObjectStore};
use cosfs::server::FaultConfig;

/// Every object of the bucket with its ETag: equal snapshots mean nothing was written.
fn snapshot(b: &Backend) -> BTreeMap<String, String> {
    let page = b
        .block_on(b.client.list_objects(&ListRequest::default()))
        .unwrap();
    assert!(!page.is_truncated, "test buckets stay small");
    page.entries.into_iter().map(|e| (e.key, e.etag)).collect()
}

fn seed(b: &Backend) {
    b.put("keep.txt", "precious");
    b.put("dir/inner.txt", "inner");
    b.put_big("big.bin", &pattern(3 << 20, 1));
}

/// Run a command to completion within a minute.
fn run(cmd: &mut Command) -> Output {
    common::run_within(cmd, 60)
}

struct Table {
    rows: Vec<String>,
}

impl Table {
    fn row(&mut self, case: &str, got: &str) {
        println!("| {case} | {got} |");
        self.rows.push(case.to_string());
    }
}

/// A mount attempt that must fail before mounting anything.
struct Refused<'a> {
    case: &'a str,
    cmd: Command,
    code: i32,
    says: &'a str,
}

/// Run `r` (with the server's `faults` on while it runs) and check it was refused.
fn refused_under(t: &mut Table, b: &Backend, mnt: &Path, faults: FaultConfig, mut r: Refused) {
    let before = snapshot(b);
    b.server.faults.set(faults);
    let started = Instant::now();
    let out = run(&mut r.cmd);
    let took = started.elapsed();
    b.server.faults.set(FaultConfig::default());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(r.code), "{}: {err}", r.case);
    assert!(
        err.contains(r.says),
        "{}: expected {:?} in {err}",
        r.case,
        r.says
    );
    assert!(!is_mounted(mnt), "{}: nothing may be mounted", r.case);
    assert_eq!(snapshot(b), before, "{}: the bucket changed", r.case);
    let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    t.row(
        r.case,
        &format!(
            "exit {}, {:.1} s: `{}`",
            r.code,
            took.as_secs_f64(),
            first.trim()
        ),
    );
}

fn refused(t: &mut Table, b: &Backend, mnt: &Path, r: Refused) {
    refused_under(t, b, mnt, FaultConfig::default(), r)
}

fn mountpoint(dir: &Path) -> PathBuf {
    let p = dir.join("mnt");
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn mount_time_inputs_are_refused_with_a_reason() {
    let b = Backend::start();
    seed(&b);
    let tmp = tempfile::tempdir().unwrap();
    let mnt = mountpoint(tmp.path());
    let ep = b.endpoint();
    let mut t = Table { rows: Vec::new() };
    println!("| mount-time case | result |\n| --- | --- |");
    let base = |spec: &str, endpoint: &str| {
        let mut c = mount_command(spec, &mnt, endpoint);
        c.arg("--cache-dir").arg(tmp.path().join("cache"));
        c
    };
    let with = |args: &[&str]| {
        let mut c = base(BUCKET, &ep);
        c.args(args);
        c
    };
    let mut cases: Vec<Refused> = Vec::new();
    let mut c = base(BUCKET, &ep);
    c.env("COS_SECRET_KEY", "wrong-secret-key-000000000000000");
    cases.push(Refused {
        case: "wrong SecretKey",
        cmd: c,
        code: 1,
        says: "SecretKey does not match SecretId AKID…0000",
    });
    let mut c = base(BUCKET, &ep);
    c.env("COS_SECRET_ID", "AKIDunknown00000000000000000000");
    cases.push(Refused {
        case: "unknown SecretId",
        cmd: c,
        code: 1,
        says: "is not known to COS",
    });
    cases.push(Refused {
        case: "bucket that does not exist",
        cmd: base("nosuch-1250000000", &ep),
        code: 1,
        says: "bucket nosuch-1250000000 does not exist at",
    });
    cases.push(Refused {
        case: "bucket name without APPID",
        cmd: base("examplebucket", &ep),
        code: 1,
        says: "must look like name-APPID",
    });
    let mut c = base(BUCKET, &ep);
    c.env_remove("COS_SECRET_ID").env_remove("COS_SECRET_KEY");
    cases.push(Refused {
        case: "no credentials anywhere",
        cmd: c,
        code: 1,
        says: "no credentials for bucket",
    });
    let loose = tmp.path().join("passwd-loose");
    std::fs::write(&loose, format!("{BUCKET}:{SECRET_ID}:{SECRET_KEY}\n")).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = base(BUCKET, &ep);
    c.env_remove("COS_SECRET_ID")
        .env_remove("COS_SECRET_KEY")
        .arg("--passwd-file")
        .arg(&loose);
    cases.push(Refused {
        case: "passwd file readable by others",
        cmd: c,
        code: 1,
        says: "chmod 600",
    });
    let mut c = base(BUCKET, &ep);
    c.env_remove("COS_SECRET_ID")
        .env_remove("COS_SECRET_KEY")
        .args(["--passwd-file", "/nonexistent/passwd-cosfs"]);
    cases.push(Refused {
        case: "passwd file missing",
        cmd: c,
        code: 1,
        says: "cannot read credentials file /nonexistent/passwd-cosfs",
    });
    let free_port = common::free_port();
    cases.push(Refused {
        case: "endpoint where nothing listens",
        cmd: base(BUCKET, &format!("http://127.0.0.1:{free_port}")),
        code: 1,
        says: "nothing listens at",
    });
    let (web, _) = b.block_on(fake_http(|_| ("404 Not Found", "<html>no</html>".into())));
    cases.push(Refused {
        case: "endpoint is a web server, not COS",
        cmd: base(BUCKET, &web),
        code: 1,
        says: "answers HTTP 404 but not the COS API",
    });
    cases.push(Refused {
        case: "https:// for a plain-HTTP port",
        cmd: base(BUCKET, &ep.replace("http://", "https://")),
        code: 1,
        says: "speaks plain HTTP, not HTTPS",
    });
    cases.push(Refused {
        case: "endpoint that is not a URL",
        cmd: base(BUCKET, "ftp://example.com"),
        code: 1,
        says: "must be http://host[:port] or https://host[:port]",
    });
    cases.push(Refused {
        case: "--region and --endpoint together",
        cmd: with(&["--region", "ap-guangzhou"]),
        code: 2,
        says: "cannot be used with",
    });
    let mut c = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    c.args(["mount", BUCKET]).arg(&mnt).args(["--anonymous"]);
    cases.push(Refused {
        case: "neither --region nor --endpoint",
        cmd: c,
        code: 1,
        says: "--region REGION or --endpoint URL",
    });
    let mut c = mount_command(BUCKET, &tmp.path().join("missing"), &ep);
    c.arg("-f");
    cases.push(Refused {
        case: "mountpoint does not exist",
        cmd: c,
        code: 1,
        says: "No such file or directory",
    });
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    cases.push(Refused {
        case: "mountpoint is a file",
        cmd: mount_command(BUCKET, &file, &ep),
        code: 1,
        says: "is not a directory",
    });
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    cases.push(Refused {
        case: "mountpoint not empty",
        cmd: mount_command(BUCKET, &full, &ep),
        code: 1,
        says: "is not empty",
    });
    for (case, args, says) in [
        (
            "--metadata-ttl 99999999999999999999",
            &["--metadata-ttl=99999999999999999999"][..],
            "from 0 to 86400",
        ),
        (
            "--metadata-ttl -1",
            &["--metadata-ttl", "-1"][..],
            "from 0 to 86400",
        ),
        (
            "--log-level loud",
            &["--log-level", "loud"][..],
            "[possible values: error, warn, info, debug, trace]",
        ),
        (
            "--uid 4294967295",
            &["--uid", "4294967295"][..],
            "means \"none\"",
        ),
        ("--gid -1", &["--gid", "-1"][..], "not a user or group id"),
        (
            "--part-size 100K",
            &["--part-size", "100K"][..],
            "between 1M and 5G",
        ),
        (
            "--part-size 6G",
            &["--part-size", "6G"][..],
            "between 1M and 5G",
        ),
        (
            "--upload-concurrency 0",
            &["--upload-concurrency", "0"][..],
            "0 is not in 1..=256",
        ),
        (
            "--cache-size 1M",
            &["--cache-size", "1M"][..],
            "at least 4M",
        ),
        (
            "--cache-size 1024T",
            &["--cache-size", "1024T"][..],
            "this machine's memory",
        ),
        (
            "--file-mode 0999",
            &["--file-mode", "0999"][..],
            "not an octal mode",
        ),
        (
            "--op-timeout 0",
            &["--op-timeout", "0"][..],
            "from 1 to 3600",
        ),
        (
            "--stop-timeout 1e9",
            &["--stop-timeout", "1e9"][..],
            "from 0 to 86400",
        ),
    ] {
        cases.push(Refused {
            case,
            cmd: with(args),
            code: 2,
            says,
        });
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    c.arg(BUCKET)
        .arg(&mnt)
        .args(["-o", &format!("url={ep},frobnicate")]);
    cases.push(Refused {
        case: "legacy -o with an unknown option",
        cmd: c,
        code: 1,
        says: "unknown option \"frobnicate\" in -o",
    });
    let mut c = mount_command(BUCKET, &mnt, &ep);
    c.arg("--cache-dir").arg(&file);
    cases.push(Refused {
        case: "--cache-dir is a file",
        cmd: c,
        code: 1,
        says: "cannot use",
    });
    cases.push(Refused {
        case: "--log-file in a missing directory",
        cmd: with(&["--log-file", "/nonexistent/dir/cosfs.log"]),
        code: 1,
        says: "cannot open log file /nonexistent/dir/cosfs.log",
    });
    cases.push(Refused {
        case: "--log-file /dev/full (takes no write)",
        cmd: with(&["--log-file", "/dev/full"]),
        code: 1,
        says: "cannot write to log file /dev/full",
    });
    cases.push(Refused {
        case: "--read-only --appendable-logs",
        cmd: with(&["--read-only", "--appendable-logs"]),
        code: 2,
        says: "cannot be used with",
    });
    cases.push(Refused {
        case: "--disk-cache-size 0",
        cmd: with(&["--disk-cache", "/tmp", "--disk-cache-size", "0"]),
        code: 2,
        says: "the disk cache must hold at least 1M (to have none: --disk-cache off)",
    });
    cases.push(Refused {
        case: "--disk-cache ''",
        cmd: with(&["--disk-cache", ""]),
        code: 2,
        says: "give a directory, or off",
    });
    cases.push(Refused {
        case: "BUCKET:/a/../b",
        cmd: base(&format!("{BUCKET}:/a/../b"), &ep),
        code: 1,
        says: "every part between slashes must be a file name",
    });
    let conf = tmp.path().join("m.conf");
    std::fs::write(
        &conf,
        format!(
            "bucket = {BUCKET}\nmountpoint = {}\nfrobnicate = 1\n",
            mnt.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    c.arg("mount").arg("--config").arg(&conf);
    cases.push(Refused {
        case: "--config with an unknown option",
        cmd: c,
        code: 1,
        says: "line 3: unknown option \"frobnicate\"",
    });
    let conf2 = tmp.path().join("flag.conf");
    std::fs::write(
        &conf2,
        format!(
            "bucket = {BUCKET}\nmountpoint = {}\nread-only = yes\n",
            mnt.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    c.arg("mount").arg("--config").arg(&conf2);
    cases.push(Refused {
        case: "--config with `flag = yes`",
        cmd: c,
        code: 1,
        says: "line 3: read-only is on or off",
    });
    for r in cases {
        refused(&mut t, &b, &mnt, r);
    }

    // The server misbehaves at mount time.
    let started = Instant::now();
    refused_under(
        &mut t,
        &b,
        &mnt,
        FaultConfig {
            hang_rate: 1.0,
            ..Default::default()
        },
        Refused {
            case: "server never answers (--op-timeout 1)",
            cmd: with(&["--op-timeout", "1"]),
            code: 1,
            says: "did not answer within 1 s",
        },
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    refused_under(
        &mut t,
        &b,
        &mnt,
        FaultConfig {
            rate_503: 1.0,
            ..Default::default()
        },
        Refused {
            case: "server answers 503 to everything",
            cmd: with(&[]),
            code: 1,
            says: "COS is failing at",
        },
    );

    // A clock 20 minutes off is corrected before the first operation, which works.
    b.server.faults.set(FaultConfig {
        clock_offset_secs: -1200,
        ..Default::default()
    });
    let m = Mounted::start(&b, &[]);
    let out = run(Command::new("bash")
        .args(["-c", "echo made > \"$1\" && cat \"$1\"", "bash"])
        .arg(m.p("skew.txt")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.block_on(get_all(&b.client, "skew.txt")), &b"made\n"[..]);
    assert_eq!(b.block_on(get_all(&b.client, "keep.txt")), &b"precious"[..]);
    t.row(
        "server clock 20 min behind",
        "mounted; the first create and read work (exit 0)",
    );
    drop(m);
    assert!(t.rows.len() >= 30, "{} cases", t.rows.len());
}

/// Runtime faults, on one mount with a short op timeout, a small staging area and a log.
#[test]
fn runtime_faults_give_an_errno_and_lose_nothing() {
    let b = Backend::start();
    seed(&b);
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_path_buf();
    let m = Mounted::start(
        &b,
        &[
            "--op-timeout",
            "2",
            "--cache-dir-size",
            "1M",
            "--part-size",
            "1M",
            "--log-file",
            log_path.to_str().unwrap(),
        ],
    );
    let mut t = Table { rows: Vec::new() };
    println!("| runtime case | result |\n| --- | --- |");
    let sh = |script: &str| {
        run(Command::new("bash")
            .args(["-c", script, "bash"])
            .arg(&m.path)
            .current_dir(&m.path))
    };
    // One case: with the server's `faults` on, a shell script that must fail with `says` on
    // stderr; the bucket unchanged.
    let case_under = |t: &mut Table, faults: FaultConfig, name: &str, script: &str, says: &str| {
        let before = snapshot(&b);
        b.server.faults.set(faults);
        let started = Instant::now();
        let out = sh(script);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{name}: must fail");
        assert!(err.contains(says), "{name}: expected {says:?} in {err}");
        b.server.faults.set(FaultConfig::default());
        assert_eq!(snapshot(&b), before, "{name}: the bucket changed");
        no_uploads_left(&b);
        t.row(
            name,
            &format!(
                "exit {}, {:.1} s: `{}`",
                out.status.code().unwrap_or(-1),
                took.as_secs_f64(),
                err.lines().next().unwrap_or("").trim()
            ),
        );
    };
    let case = |t: &mut Table, name: &str, script: &str, says: &str| {
        case_under(t, FaultConfig::default(), name, script, says)
    };
    let long = "n".repeat(256);
    case(
        &mut t,
        "file name over 255 bytes",
        &format!("touch {long}"),
        "File name too long",
    );
    // dir/ + 4 x 200 + 4 slashes + 50 = 858 bytes of key.
    let deep = format!("dir/{0}/{0}/{0}/{0}", "d".repeat(200));
    b.put(&format!("{deep}/x"), "x");
    let past = format!("{deep}/{}", "p".repeat(50));
    b.reset_counts();
    case(
        &mut t,
        "path over COS's 850-byte key limit (echo > path)",
        &format!("ls {deep} >/dev/null && echo hi > {past}"),
        "File name too long",
    );
    assert_eq!(b.count("PutObject"), 0, "no request for an impossible key");
    case(
        &mut t,
        "mkdir over the key limit",
        &format!("mkdir {past}"),
        "File name too long",
    );
    case(
        &mut t,
        "symlink over the key limit",
        &format!("ln -s keep.txt {past}"),
        "File name too long",
    );
    case(
        &mut t,
        "rename onto a path over the key limit",
        &format!("mv keep.txt {past}"),
        "File name too long",
    );
    case(
        &mut t,
        "hard link",
        "ln keep.txt hard",
        "Operation not permitted",
    );
    case(
        &mut t,
        "rmdir of a directory with files",
        "rmdir dir",
        "Directory not empty",
    );

    // A full staging area: the write that does not fit is ENOSPC; what fitted is kept.
    let out = sh(
        "head -c 2097152 /dev/zero | dd of=big.bin bs=1M iflag=fullblock conv=notrunc status=none",
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && err.contains("No space left on device"),
        "{err}"
    );
    let mut want = pattern(3 << 20, 1);
    want[..1 << 20].fill(0);
    assert!(
        b.block_on(get_all(&b.client, "big.bin")) == want,
        "the first MiB landed, nothing else changed"
    );
    t.row(
        "in-place edit past a full staging area (--cache-dir-size 1M)",
        &format!(
            "exit 1: `{}`; the MiB that fitted landed, the rest of the object unchanged",
            err.trim()
        ),
    );

    // Uploads that fail: the program sees it, COS keeps the old object.
    let fault = |rate_503: f64, hang_rate: f64, method: &str| FaultConfig {
        rate_503,
        hang_rate,
        methods: vec![method.into()],
        ..Default::default()
    };
    for (name, method, script) in [
        (
            "503 on every PUT: cp of a small file",
            "PUT",
            "cp /etc/hostname keep.txt",
        ),
        (
            "503 on every POST (Initiate, Complete): dd of a 3 MiB overwrite",
            "POST",
            "head -c 3145728 /dev/zero | dd of=big.bin bs=1M iflag=fullblock status=none",
        ),
        (
            "503 on every POST: shell redirection of 3 MiB",
            "POST",
            "head -c 3145728 /dev/zero > big.bin",
        ),
    ] {
        case_under(
            &mut t,
            fault(1.0, 0.0, method),
            name,
            script,
            "Input/output error",
        );
    }
    // Only the Complete fails: the parts went up, the commit at close does not.
    let mut w = std::fs::File::create(m.p("big.bin")).unwrap();
    w.write_all(&pattern(3 << 20, 7)).unwrap();
    let before = snapshot(&b);
    b.server.faults.set(fault(1.0, 0.0, "POST"));
    let errno = common::mount::close(w).unwrap_err();
    b.server.faults.set(FaultConfig::default());
    assert_eq!(errno, libc::EIO);
    assert_eq!(snapshot(&b), before);
    no_uploads_left(&b);
    t.row(
        "503 on Complete only: close of a streamed 3 MiB overwrite",
        "close: EIO; old object intact, upload aborted",
    );
    case_under(
        &mut t,
        fault(0.0, 1.0, "PUT"),
        "server hangs on PUT: cp of a small file",
        "cp /etc/hostname keep.txt",
        "Connection timed out",
    );

    // A hung server: read-only operations come back after --op-timeout (2 s).
    for (name, method, script) in [
        (
            "server hangs: stat of a new name",
            "HEAD",
            "stat never-seen",
        ),
        (
            "server hangs: ls of an unlisted directory",
            "GET",
            "ls -l dir",
        ),
        (
            "server hangs: cat of a file",
            "GET",
            "cat big.bin > /dev/null",
        ),
    ] {
        std::thread::sleep(Duration::from_millis(300)); // past the kernel-retry echo
        let started = Instant::now();
        case_under(
            &mut t,
            fault(0.0, 1.0, method),
            name,
            script,
            "Connection timed out",
        );
        assert!(started.elapsed() < Duration::from_millis(4500), "{name}");
    }
    std::thread::sleep(Duration::from_millis(300)); // past the kernel-retry echo
    b.server.faults.set(FaultConfig {
        bandwidth: 64,
        methods: vec!["GET".into()],
        ..Default::default()
    });
    let mut f = std::fs::File::open(m.p("big.bin")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let err = std::io::Read::read(&mut f, &mut buf).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
    assert!(took < Duration::from_millis(4500), "{took:?}");
    b.server.faults.set(FaultConfig::default());
    t.row(
        "server trickles (64 B/s): read of an open file",
        &format!("ETIMEDOUT after {:.1} s", took.as_secs_f64()),
    );
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logged.contains("no answer from COS within"),
        "the log says why"
    );

    // A child closing an inherited descriptor publishes nothing.
    let before = snapshot(&b);
    let out = sh(r#"python3 -c '
import subprocess, time
f = open("keep.txt", "w"); f.write("half"); f.flush()
subprocess.run(["true"])
print(open("keep.txt").read()); f.close()'"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "half");
    assert_ne!(snapshot(&b), before);
    assert_eq!(b.block_on(get_all(&b.client, "keep.txt")), &b"half"[..]);
    t.row(
        "a child closes an inherited descriptor mid-write",
        "nothing published until the parent's close, then the whole file",
    );

    // The server goes away: EIO after the retries, nothing to lose.
    let mut b = b;
    let before = snapshot(&b);
    b.kill();
    // Past the metadata TTL (1 s), so the lookup must ask: python just listed the directory
    // (its imports scan the working directory), and a fully listed directory answers names
    // it did not list without a request while the TTL lasts.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let out = sh("stat another-new-name");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("Input/output error") || err.contains("Connection timed out"),
        "{err}"
    );
    t.row(
        "server gone (connections refused): stat",
        &format!("exit {}: `{}`", out.status.code().unwrap_or(-1), err.trim()),
    );
    drop(m);
    let _ = before;
    let _ = log.as_file().flush();
}

/// `kill -9` of the mount while a file is overwritten: after a remount the old object is there.
#[test]
fn kill_9_mid_overwrite_loses_nothing() {
    let b = Backend::start();
    seed(&b);
    let before = snapshot(&b);
    let mut m = Mounted::start(&b, &["--part-size", "1M"]);
    let mut w = Command::new("dd")
        .arg(format!("of={}", m.p("big.bin").display()))
        .args(["bs=64K", "status=none"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = w.stdin.take().unwrap();
    input.write_all(&pattern(2 << 20, 9)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.count("UploadPart") < 1 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    m.signal(libc::SIGKILL);
    let _ = m.wait_exit(Duration::from_secs(10));
    drop(input);
    let status = w.wait().unwrap();
    assert!(!status.success());
    drop(m);
    assert_eq!(snapshot(&b), before, "every object as it was");
    let m = Mounted::start(&b, &[]);
    assert!(std::fs::read(m.p("big.bin")).unwrap() == pattern(3 << 20, 1));
    println!("| kill -9 of the mount mid-overwrite | dd fails; after a remount every object is as it was |");
}

/// The weak cases of the shared-machine probe, each with an errno, a message or its
/// documented rule, and the bucket checked through the client.
#[test]
fn odd_buckets_and_operator_mistakes_get_an_errno_or_a_message() {
    let b = Backend::start();
    seed(&b);
    let mut t = Table { rows: Vec::new() };
    println!("| probe case | result |\n| --- | --- |");
    let mut link = cosfs::object::PutOptions::default();
    link.user_meta.insert("mode".into(), (0o120777).to_string());
    b.put_with("longlink", "t".repeat(5000), link);
    b.put("odd/../../b", "unreachable");
    b.put("both", "the file");
    b.put("both/x", "inner");
    let mut m = Mounted::start(&b, &["--op-timeout", "5"]);
    let sh = |script: &str| {
        run(Command::new("bash")
            .args(["-c", script, "bash"])
            .current_dir(&m.path))
    };
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).trim().to_string();

    // A symlink object with a target longer than PATH_MAX: ENAMETOOLONG, the listing works.
    let o = sh("ls -l >/dev/null && readlink longlink");
    assert_eq!(
        o.status.code(),
        Some(1),
        "ls works, readlink fails: {}",
        err(&o)
    );
    let e = std::fs::read_link(m.p("longlink")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    t.row(
        "symlink object with a 5,000-byte target",
        "readlink: ENAMETOOLONG (`ls -l` works); the log names the key",
    );

    // A directory that exists only through a key no path can name.
    let o = sh("ls -a odd && rmdir odd");
    assert!(!o.status.success());
    assert!(err(&o).contains("Directory not empty"), "{}", err(&o));
    assert!(b.block_on(b.client.head_object("odd/../../b")).is_ok());
    let o2 = sh("rm -r odd");
    assert!(err(&o2).contains("Directory not empty"), "{}", err(&o2));
    t.row(
        "rmdir / rm -r of a directory holding only `odd/../../b`",
        &format!("exit 1: `{}`; the key stays; the log names it", err(&o)),
    );

    // A file and a directory with one name: rm -r removes the directory it shows; the file
    // it hid is then shown (documented: the mount never showed it, so it is not removed).
    // (The name shows the file once this mount's "no such name" entry expires: 1 s.)
    let o = sh("rm -r both && sleep 1.2 && test -f both && cat both");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "the file");
    assert!(b.block_on(b.client.head_object("both/x")).is_err());
    t.row(
        "rm -r of `both` (keys `both` and `both/x`)",
        "exit 0; the directory goes, then the file it hid shows (the documented rule)",
    );

    // A rename whose copy hangs fails in about --op-timeout, not 20 times it.
    b.put("six.txt", "6bytes");
    std::thread::sleep(Duration::from_millis(1200)); // past the TTL of the root's listing
    b.server.faults.set(FaultConfig {
        hang_rate: 1.0,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let started = Instant::now();
    let o = sh("mv six.txt seven.txt");
    let took = started.elapsed();
    b.server.faults.set(FaultConfig::default());
    assert!(!o.status.success());
    assert!(err(&o).contains("Connection timed out"), "{}", err(&o));
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(b.block_on(get_all(&b.client, "six.txt")), &b"6bytes"[..]);
    t.row(
        "mv of a 6-byte file while COS hangs on the copy (--op-timeout 5)",
        &format!("exit 1 after {:.1} s: `{}`", took.as_secs_f64(), err(&o)),
    );

    // A second mount on a live cosfs mount is refused, even with --nonempty.
    let mut c = mount_command(BUCKET, &m.path, &b.endpoint());
    c.args(["--nonempty", "-f"]);
    let o = run(&mut c);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("is already a cosfs mount"), "{}", err(&o));
    t.row(
        "a second cosfs mount on a live cosfs mount (--nonempty)",
        &format!("exit 1: `{}`", err(&o)),
    );

    // `cosfs unmount` takes cosfs mounts only.
    let other = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(other.path())
        .status()
        .unwrap();
    assert!(st.success());
    let o = run(Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .arg("unmount")
        .arg(other.path()));
    let still = is_mounted(other.path());
    let _ = Command::new("umount").arg(other.path()).status();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("is not a cosfs mount (it is tmpfs"),
        "{}",
        err(&o)
    );
    assert!(still, "the tmpfs was unmounted");
    t.row(
        "cosfs unmount of a tmpfs",
        &format!("exit 1: `{}`; the tmpfs stays", err(&o)),
    );

    let log = m.stop_with_log();
    assert!(
        log.contains("longer than PATH_MAX") && log.contains("longlink"),
        "{log}"
    );
    assert!(
        log.contains("no file name can show") && log.contains("odd/../../b"),
        "{log}"
    );
    drop(m);

    // Two mounts appending to one log: with --appendable-logs every line is kept (each
    // close is one APPEND at the end COS has); without it, the documented rule is that
    // each close rebuilds the whole file, so one mount's lines can replace the other's.
    let (m1, m2) = (
        Mounted::start(&b, &["--appendable-logs"]),
        Mounted::start(&b, &["--appendable-logs"]),
    );
    let writers: Vec<_> = [(&m1, "a"), (&m2, "b")]
        .into_iter()
        .map(|(m, tag)| {
            Command::new("bash")
                .args([
                    "-c",
                    &format!("for i in $(seq 1 50); do echo {tag}$i >> \"$1\"; done"),
                    "bash",
                ])
                .arg(m.p("shared.log"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    let text = String::from_utf8(b.block_on(get_all(&b.client, "shared.log")).to_vec()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 100, "every line kept: {text}");
    t.row(
        "two mounts appending 50 lines each with `>>` (--appendable-logs)",
        "all 100 lines kept; without --appendable-logs lines can be lost (the documented rule)",
    );
}
