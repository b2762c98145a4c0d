//! Overwriting an existing object the way programs really do it, through a real mount:
//! `dd`, a shell redirection, `cp`, a writer that forks a child halfway, and a writer that
//! dups its descriptor and closes the original before writing. Each one reads its data from a
//! pipe the test feeds, so the test can look at COS halfway: the old object must still be
//! there (not the empty file `O_TRUNC` left, not half of the new one). Then the write either
//! completes (the new bytes land) or its final upload fails (the program sees the error and
//! COS keeps the old object). `kill -9` of the mount halfway keeps the old object too.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mount::{no_uploads_left, Backend, Mounted};
use common::{get_all, pattern};
use cosfs::server::FaultConfig;

const MIB: usize = 1024 * 1024;
const OLD_LEN: usize = 4 * MIB;
const NEW_LEN: usize = 6 * MIB;

/// Python writers: read the new content from stdin in two halves and do their trick in
/// between (after the first half, before the second), printing "ready" once it is done.
const FORK_WRITER: &str = r#"
import subprocess, sys
half, path = int(sys.argv[1]), sys.argv[2]
f = open(path, "wb")
f.write(sys.stdin.buffer.read(half)); f.flush()
subprocess.run(["true"], check=True)   # the child's exec closes the inherited descriptor
print("ready", flush=True)
f.write(sys.stdin.buffer.read()); f.close()
"#;

const DUP_WRITER: &str = r#"
import os, sys
half, path = int(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
out = os.dup(fd); os.close(fd)          # what dd and the shell do before writing
print("ready", flush=True)
def put(b):
    while b:
        b = b[os.write(out, b):]
put(sys.stdin.buffer.read(half))
put(sys.stdin.buffer.read())
os.close(out)
"#;

#[derive(Debug, Clone, Copy)]
enum Writer {
    Dd,
    ShellRedirect,
    Cp,
    ForkingPython,
    DupPython,
}

/// How the final upload ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Final {
    Lands,
    Fails,
}

struct Running {
    child: Child,
    /// Where the new bytes go in: the writer's stdin, or a FIFO `cp` reads.
    feed: Box<dyn Write>,
}

fn spawn(w: Writer, target: &Path, scratch: &Path) -> Running {
    let t = target.display().to_string();
    let half = (NEW_LEN / 2).to_string();
    let mut cmd = match w {
        Writer::Dd => {
            let mut c = Command::new("dd");
            c.arg(format!("of={t}"))
                .args(["bs=64K", "iflag=fullblock", "status=none"]);
            c
        }
        Writer::ShellRedirect => {
            let mut c = Command::new("bash");
            c.args(["-c", "cat > \"$1\"", "bash", &t]);
            c
        }
        Writer::Cp => {
            let fifo = scratch.join("source.fifo");
            let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid C path.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
            let mut c = Command::new("cp");
            c.arg(&fifo).arg(target);
            c
        }
        Writer::ForkingPython => {
            let mut c = Command::new("python3");
            c.args(["-c", FORK_WRITER, &half, &t]);
            c
        }
        Writer::DupPython => {
            let mut c = Command::new("python3");
            c.args(["-c", DUP_WRITER, &half, &t]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {w:?}: {e}"));
    let feed: Box<dyn Write> = match w {
        // Opening the FIFO for writing waits until cp opened it for reading.
        Writer::Cp => Box::new(std::fs::File::create(scratch.join("source.fifo")).unwrap()),
        _ => Box::new(child.stdin.take().unwrap()),
    };
    Running { child, feed }
}

impl Running {
    /// Wait until a Python writer says its trick is done, if `w` is that writer.
    fn wait_ready(&mut self, w: Writer, which: Writer) {
        if std::mem::discriminant(&w) == std::mem::discriminant(&which) {
            let mut line = String::new();
            BufReader::new(self.child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "{w:?} did not get halfway");
        }
    }

    /// Close the input and wait (at most a minute) for the writer; (exit code, stderr).
    fn finish(mut self) -> (Option<i32>, String) {
        drop(self.feed);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("writer did not finish within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
        (status.code(), err)
    }
}

fn body(b: &Backend, key: &str) -> Vec<u8> {
    b.block_on(get_all(&b.client, key)).to_vec()
}

/// Wait until the server has taken `n` parts of the upload in progress.
fn wait_parts(b: &Backend, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.count("UploadPart") < n {
        assert!(Instant::now() < deadline, "no parts arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One overwrite: old object, the writer halfway, then the final upload lands or fails.
fn overwrite(w: Writer, end: Final) {
    let b = Backend::start();
    let old = pattern(OLD_LEN, 1);
    let new = pattern(NEW_LEN, 2);
    b.put("f.bin", old.clone());
    // 1 MiB parts: the new content is on its way to COS while the writer is halfway.
    let m = Mounted::start(&b, &["--part-size", "1M"]);
    b.reset_counts();
    let mut run = spawn(w, &m.p("f.bin"), m.dir.path());
    // The dup writer has opened with O_TRUNC and closed the original descriptor.
    run.wait_ready(w, Writer::DupPython);
    assert!(
        body(&b, "f.bin") == old,
        "{w:?}: old object gone before any write"
    );
    run.feed.write_all(&new[..NEW_LEN / 2]).unwrap();
    run.feed.flush().unwrap();
    // The forking writer has written half and its child has come and gone.
    run.wait_ready(w, Writer::ForkingPython);
    wait_parts(&b, 2);
    assert!(
        body(&b, "f.bin") == old,
        "{w:?}: halfway, COS must still hold the old object"
    );
    assert_eq!(b.count("PutObject"), 0, "{w:?}: nothing published halfway");
    assert_eq!(b.count("CompleteMultipartUpload"), 0, "{w:?}");
    if end == Final::Fails {
        // The parts still go up; the Complete that would publish them fails.
        b.server.faults.set(FaultConfig {
            rate_503: 1.0,
            methods: vec!["POST".into()],
            ..Default::default()
        });
    }
    run.feed.write_all(&new[NEW_LEN / 2..]).unwrap();
    let (code, stderr) = run.finish();
    b.server.faults.set(FaultConfig::default());
    match end {
        Final::Lands => {
            assert_eq!(code, Some(0), "{w:?} failed: {stderr}");
            assert!(body(&b, "f.bin") == new, "{w:?}: new bytes on COS");
            assert!(std::fs::read(m.p("f.bin")).unwrap() == new, "{w:?}");
        }
        Final::Fails => {
            assert_ne!(code, Some(0), "{w:?} must see the failed upload");
            assert!(
                stderr.contains("Input/output error") || stderr.contains("OSError"),
                "{w:?} says why: {stderr}"
            );
            assert!(body(&b, "f.bin") == old, "{w:?}: old object intact");
        }
    }
    no_uploads_left(&b);
}

#[test]
fn dd_overwrites_atomically() {
    overwrite(Writer::Dd, Final::Lands);
    overwrite(Writer::Dd, Final::Fails);
}

#[test]
fn shell_redirection_overwrites_atomically() {
    overwrite(Writer::ShellRedirect, Final::Lands);
    overwrite(Writer::ShellRedirect, Final::Fails);
}

#[test]
fn cp_overwrites_atomically() {
    overwrite(Writer::Cp, Final::Lands);
    overwrite(Writer::Cp, Final::Fails);
}

#[test]
fn a_writer_that_forks_midway_publishes_only_at_its_close() {
    overwrite(Writer::ForkingPython, Final::Lands);
    overwrite(Writer::ForkingPython, Final::Fails);
}

#[test]
fn a_writer_that_dups_and_closes_publishes_only_at_the_last_close() {
    overwrite(Writer::DupPython, Final::Lands);
    overwrite(Writer::DupPython, Final::Fails);
}

/// Small files are one PUT at close: a shell builtin's redirection (whose close error bash
/// cannot see) and `cp` of a small file keep the old object when that PUT fails.
#[test]
fn small_overwrites_keep_the_old_object_when_the_put_fails() {
    let b = Backend::start();
    b.put("small.txt", "old small");
    let m = Mounted::start(&b, &[]);
    let t = m.p("small.txt").display().to_string();
    let sh = |script: &str| {
        Command::new("bash")
            .args(["-c", script, "bash", &t])
            .output()
            .unwrap()
    };
    assert!(sh("echo new small > \"$1\"").status.success());
    assert_eq!(body(&b, "small.txt"), b"new small\n");

    b.server.faults.set(FaultConfig {
        rate_503: 1.0,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let _ = sh("echo lost > \"$1\""); // bash drops the close error of its own redirections
    let src = m.dir.path().join("src.txt");
    std::fs::write(&src, "also lost").unwrap();
    let cp = Command::new("cp").arg(&src).arg(&t).output().unwrap();
    b.server.faults.set(FaultConfig::default());
    assert!(!cp.status.success());
    assert!(
        String::from_utf8_lossy(&cp.stderr).contains("Input/output error"),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    assert_eq!(body(&b, "small.txt"), b"new small\n", "old object intact");
}

/// `open(O_TRUNC)` and `close` with no write still empty the file: the kernel's release
/// publishes it just after `close` returns. A `: > f` in the shell is the same.
#[test]
fn truncating_open_without_writes_still_empties_the_object() {
    let b = Backend::start();
    b.put("t.txt", "some content");
    b.put("u.txt", "more content");
    let m = Mounted::start(&b, &[]);
    let script = "import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC))";
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(m.p("t.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("bash")
        .args(["-c", ": > \"$1\"", "bash"])
        .arg(m.p("u.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    // This mount shows the empty files at once.
    assert_eq!(std::fs::metadata(m.p("t.txt")).unwrap().len(), 0);
    assert_eq!(std::fs::read(m.p("u.txt")).unwrap(), b"");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(body(&b, "t.txt").is_empty() && body(&b, "u.txt").is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the empty files never reached COS"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -9` of the mount while `dd` is halfway through an overwrite: after a remount the old
/// object is there, byte for byte.
#[test]
fn kill_9_of_the_mount_mid_overwrite_keeps_the_old_object() {
    let b = Backend::start();
    let old = pattern(OLD_LEN, 5);
    b.put("f.bin", old.clone());
    let mut m = Mounted::start(&b, &["--part-size", "1M"]);
    b.reset_counts();
    let mut run = spawn(Writer::Dd, &m.p("f.bin"), m.dir.path());
    run.feed.write_all(&pattern(3 * MIB, 6)).unwrap();
    wait_parts(&b, 2);
    m.signal(libc::SIGKILL);
    let _ = m.wait_exit(Duration::from_secs(10));
    let (code, _) = run.finish();
    assert_ne!(code, Some(0), "dd must fail when its filesystem dies");
    drop(m);
    assert!(body(&b, "f.bin") == old, "old object intact on COS");
    let m = Mounted::start(&b, &[]);
    assert!(
        std::fs::read(m.p("f.bin")).unwrap() == old,
        "and through a new mount"
    );
}

/// An overwrite that reads back and rewrites bytes it already streamed (a header patched at the
/// end, as video and archive writers do), and one that cuts its file short: COS keeps the old
/// object until the close, which completes the same upload and sends again only the parts
/// that changed. When that Complete fails, the old object stays.
#[test]
fn seeking_back_into_sent_parts_keeps_the_old_object() {
    use std::os::unix::fs::FileExt;
    let b = Backend::start();
    let old = pattern(OLD_LEN, 11);
    let m = Mounted::start(&b, &["--part-size", "1M"]);
    for end in [Final::Lands, Final::Fails] {
        b.put("v.bin", old.clone());
        b.reset_counts();
        let mut want = pattern(NEW_LEN, 12);
        let mut f = std::fs::File::create(m.p("v.bin")).unwrap();
        f.write_all(&want).unwrap();
        wait_parts(&b, 5);
        // Read back the start through another handle, then patch the header.
        let mut head = vec![0u8; 4096];
        std::fs::File::open(m.p("v.bin"))
            .unwrap()
            .read_exact_at(&mut head, 0)
            .unwrap();
        assert!(head == want[..4096], "reads see what was written");
        f.write_all_at(b"HEADER", 10).unwrap();
        want[10..16].copy_from_slice(b"HEADER");
        assert!(
            body(&b, "v.bin") == old,
            "still the old object after the seek back"
        );
        assert_eq!(b.count("CompleteMultipartUpload"), 0);
        assert_eq!(b.count("PutObject"), 0);
        let sent = b.count("UploadPart");
        if end == Final::Fails {
            b.server.faults.set(FaultConfig {
                rate_503: 1.0,
                methods: vec!["POST".into()],
                ..Default::default()
            });
        }
        let closed = common::mount::close(f);
        b.server.faults.set(FaultConfig::default());
        match end {
            Final::Lands => {
                closed.unwrap();
                assert!(body(&b, "v.bin") == want, "the new bytes, header patched");
                // Part 1 (the header) and the unsent tail go up; parts 2..5 are reused.
                assert!(
                    b.count("UploadPart") - sent <= 2,
                    "{}",
                    b.count("UploadPart") - sent
                );
                assert_eq!(b.count("CompleteMultipartUpload"), 1);
            }
            Final::Fails => {
                assert_eq!(closed, Err(libc::EIO));
                assert!(body(&b, "v.bin") == old, "old object intact");
            }
        }
        no_uploads_left(&b);
    }

    // Cut short into the sent parts: the old object until the close, then the prefix.
    b.put("v.bin", old.clone());
    b.reset_counts();
    let data = pattern(NEW_LEN, 13);
    let mut f = std::fs::File::create(m.p("v.bin")).unwrap();
    f.write_all(&data).unwrap();
    wait_parts(&b, 5);
    f.set_len(2_500_000).unwrap();
    assert!(body(&b, "v.bin") == old);
    common::mount::close(f).unwrap();
    assert!(body(&b, "v.bin") == data[..2_500_000]);
    no_uploads_left(&b);
}

/// Under a tight `--memory-limit` a streamed overwrite is cut into smaller parts (writers may
/// hold 8 MiB of a 16M limit, less than one 16 MiB part, so the writer sends what it has): `dd` still publishes only at its
/// close, and a failed Complete leaves the old object intact.
#[test]
fn dd_overwrites_atomically_under_a_tight_memory_limit() {
    const LEN: usize = 24 * MIB;
    for fails in [false, true] {
        let b = Backend::start();
        let old = pattern(OLD_LEN, 3);
        let new = pattern(LEN, 4);
        b.put("f.bin", old.clone());
        let m = Mounted::start(&b, &["--part-size", "16M", "--memory-limit", "16M"]);
        let src = m.dir.path().join("src");
        std::fs::write(&src, &new).unwrap();
        b.reset_counts();
        if fails {
            b.server.faults.set(FaultConfig {
                rate_503: 1.0,
                methods: vec!["POST".into()],
                ..Default::default()
            });
        }
        let out = common::run_within(
            Command::new("dd")
                .arg(format!("if={}", src.display()))
                .arg(format!("of={}", m.p("f.bin").display()))
                .args(["bs=1M", "conv=fsync"]),
            120,
        );
        b.server.faults.set(FaultConfig::default());
        let parts = b.count("UploadPart");
        if fails {
            assert!(!out.status.success(), "dd must see the failed upload");
            assert!(body(&b, "f.bin") == old, "old object intact");
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "dd failed: {stderr}");
            assert!(body(&b, "f.bin") == new, "new bytes on COS");
            assert!(
                parts > (LEN / (16 * MIB)) as u64,
                "memory pressure cut smaller parts: {parts}"
            );
        }
        no_uploads_left(&b);
    }
}
