//! A mount's life as a service: readiness to systemd, SIGTERM during writes (finish, or give
//! up with an errno and the old object intact), a second signal, SIGHUP and the log file,
//! request ids in logs and no secrets, and `cosfs stats`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mount::{close, is_mounted, no_uploads_left, Backend, Mounted};
use common::{get_all, pattern, SECRET_KEY};
use cosfs::server::FaultConfig;

const MIB: usize = 1 << 20;

/// Writes 6 MiB to argv[1] and says "written"; after a line on stdin writes again and fsyncs,
/// then says "ok" or "errno N".
const WRITER: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.write(fd, os.urandom(6 << 20))
print("written", flush=True)
sys.stdin.readline()
try:
    os.write(fd, b"x" * 4096)
    os.fsync(fd)
    print("ok", flush=True)
except OSError as e:
    print("errno", e.errno, flush=True)
"#;

fn body(b: &Backend, key: &str) -> Vec<u8> {
    b.block_on(get_all(&b.client, key)).to_vec()
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[test]
fn sigterm_during_a_large_write_lets_it_finish_and_refuses_new_writes() {
    let b = Backend::start();
    let mut m = Mounted::start(&b, &["--part-size", "1M"]);
    let data = pattern(48 * MIB, 3);
    let path = m.p("big.bin");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&path)?;
            for (i, chunk) in data.chunks(MIB).enumerate() {
                f.write_all(chunk)?;
                if i == 4 {
                    started_tx.send(()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            f.sync_all()?;
            close(f).map_err(std::io::Error::from_raw_os_error)
        })
    };
    started_rx.recv().unwrap();
    m.signal(libc::SIGTERM);
    // Stopping: a new file is refused while the one in progress goes on.
    std::thread::sleep(Duration::from_millis(200));
    let refused = std::fs::File::create(m.p("late.txt")).unwrap_err();
    assert_eq!(errno(&refused), libc::EROFS);
    let written = writer.join().unwrap();
    let (code, gone) = m.wait_exit(Duration::from_secs(60));
    assert!(written.is_ok(), "the writer was told {written:?}");
    assert_eq!(code, Some(0));
    assert!(gone, "mountpoint left mounted");
    assert!(std::fs::read_dir(&m.path).unwrap().next().is_none());
    let got = body(&b, "big.bin");
    assert!(
        got == data,
        "object is {} bytes, not the 48 MiB written",
        got.len()
    );
    no_uploads_left(&b);
}

#[test]
fn files_left_open_past_the_stop_timeout_get_eio_and_the_old_object_stays() {
    let b = Backend::start();
    b.put("keep.bin", "old contents");
    let mut m = Mounted::start(&b, &["--part-size", "1M", "--stop-timeout", "1"]);
    // The writer is a process of its own: a file descriptor of this (multithreaded) test
    // process would be duplicated by other tests' fork+exec, and each such close is a flush,
    // which uploads.
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(WRITER)
        .arg(m.p("keep.bin"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "written"); // parts are on their way
    let t0 = Instant::now();
    m.signal(libc::SIGTERM);
    let (code, gone) = m.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0));
    assert!(gone);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // The program learns: its next write fails (EIO, or ENOTCONN once the process is gone).
    writeln!(writer.stdin.take().unwrap(), "go").unwrap();
    let told = lines.next().unwrap().unwrap();
    assert!(
        told == format!("errno {}", libc::EIO) || told == format!("errno {}", libc::ENOTCONN),
        "{told}"
    );
    writer.wait().unwrap();
    let got = body(&b, "keep.bin");
    assert!(
        got == b"old contents",
        "object replaced by {} bytes",
        got.len()
    );
    no_uploads_left(&b);
}

#[test]
fn a_second_signal_forces_the_stop() {
    let b = Backend::start();
    let mut m = Mounted::start(&b, &["--stop-timeout", "300"]);
    let mut f = std::fs::File::create(m.p("open.txt")).unwrap();
    f.write_all(b"never closed").unwrap();
    m.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        is_mounted(&m.path),
        "the first signal waits for the open file"
    );
    m.signal(libc::SIGINT);
    let (code, gone) = m.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(1), "a forced stop says so");
    assert!(gone);
    drop(f);
    no_uploads_left(&b);
}

/// A fake systemd: the datagrams the mount sends to $NOTIFY_SOCKET.
struct Notifications(UnixDatagram);

impl Notifications {
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.0.recv(&mut buf).expect("no notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[test]
fn systemd_hears_ready_only_once_the_mount_answers_and_stopping_on_sigterm() {
    let b = Backend::start();
    b.put("hello.txt", "hi");
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let notes = Notifications(sock);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let child = common::mount::mount_command(common::BUCKET, &mnt, &b.endpoint())
        .args(["-f", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("JOURNAL_STREAM", "8:1234")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = common::mount::Unmounter::new(&mnt);
    let ready = notes.next();
    assert!(ready.contains("READY=1"), "{ready}");
    // At READY the mount answers at once.
    assert!(is_mounted(&mnt));
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello.txt")).unwrap(),
        "hi"
    );
    // SAFETY: kill has no memory effects; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = notes.next();
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!is_mounted(&mnt));
    drop(guard);
    // Under journald (JOURNAL_STREAM set), stderr lines carry syslog priorities.
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines().filter(|l| !l.is_empty()) {
        assert!(line.starts_with('<'), "not journald-shaped: {line}");
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn stats_log_file_sighup_and_request_ids_without_secrets() {
    let b = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cosfs.log");
    let log_arg = log.to_str().unwrap();
    let m = Mounted::start(&b, &["--log-file", log_arg, "--log-level", "trace"]);

    std::fs::write(m.p("a.txt"), "stats me").unwrap();
    assert_eq!(std::fs::read_to_string(m.p("a.txt")).unwrap(), "stats me");
    let out = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .arg("stats")
        .arg(&m.path)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{line} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.contains(" put=1"), "{line}");
    assert!(line.contains("open_for_writing=0"), "{line}");
    assert!(line.contains("cache_hit_rate="), "{line}");

    // A failing COS call is logged with the request id COS gave it.
    b.server.faults.set(FaultConfig {
        rate_500: 1.0,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let mut f = std::fs::File::create(m.p("fails.txt")).unwrap();
    f.write_all(b"x").unwrap();
    assert_eq!(close(f), Err(libc::EIO));
    b.server.faults.set(FaultConfig::default());
    let text = log_text(&log);
    let failed = text
        .lines()
        .find(|l| l.contains("COS request failed") && l.contains("PUT"))
        .unwrap_or_else(|| panic!("no failure logged:\n{text}"));
    assert!(
        failed.contains("request_id=") && !failed.contains("request_id=-"),
        "{failed}"
    );

    // logrotate: move the file away, SIGHUP, and logging continues in a new file.
    let rotated = dir.path().join("cosfs.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    m.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_text(&log).contains("log file reopened") {
        assert!(Instant::now() < deadline, "no new log file after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_dir(&m.path).unwrap().for_each(drop);
    drop(m);
    // Not even trace logging shows the secret or a signature.
    for p in [&log, &rotated] {
        let t = log_text(p);
        assert!(!t.contains(SECRET_KEY), "secret key in {}", p.display());
        assert!(!t.contains("q-signature"), "signature in {}", p.display());
    }
}
