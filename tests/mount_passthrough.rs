//! Kernel passthrough of files the disk cache holds whole: the kernel reads them without
//! cosfs (the FUSE read counter does not move), a version replaced behind the mount is never
//! served to a new open, a writer on the same mount gets its own inode while a passthrough
//! reader keeps the version it opened, and where the kernel refuses passthrough (not root)
//! the chunked path serves the same bytes. The mounts run as root, as CI does.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mount::{Backend, Mounted};
use common::pattern;

const MIB: usize = 1024 * 1024;

/// The FUSE requests of `op` the mount with its metrics on `port` has answered.
fn fuse_requests(port: u16, op: &str) -> u64 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let want = format!("cosfs_fuse_requests_total{{operation=\"{op}\"}} ");
    raw.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Wait until the mount has made `n` whole files.
fn wait_whole(m: &Mounted, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = common::mount::stats_line(m);
        if common::mount::stats_figure(&s, "whole").unwrap_or(0) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "no whole file made: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mount(b: &Backend, disk: &Path, port: u16, extra: &[&str]) -> Mounted {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--disk-cache",
        disk.to_str().unwrap(),
        "--metrics-listen",
        &addr,
    ];
    args.extend_from_slice(extra);
    Mounted::start(b, &args)
}

/// Scattered reads of `f` checked against `data`.
fn scattered_reads(f: &std::fs::File, data: &[u8]) {
    for k in 0..200u64 {
        let at = (k * 7919 * 4099) % (data.len() as u64 - 8192);
        let mut buf = [0u8; 8192];
        f.read_exact_at(&mut buf, at).unwrap();
        assert!(buf[..] == data[at as usize..at as usize + 8192], "at {at}");
    }
}

#[test]
fn a_file_cached_whole_is_read_by_the_kernel_not_by_cosfs() {
    let b = Backend::start();
    let data = pattern(6 * MIB + 1000, 11);
    b.put_big("big", &data);
    let disk = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut m = mount(&b, disk.path(), port, &[]);
    assert!(std::fs::read(m.p("big")).unwrap() == data);
    wait_whole(&m, 1);
    common::mount::drop_kernel_caches();
    b.reset_counts();
    let reads = fuse_requests(port, "read");
    let f = std::fs::File::open(m.p("big")).unwrap();
    scattered_reads(&f, &data);
    let mut all = Vec::new();
    std::fs::File::open(m.p("big"))
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert!(all == data, "a sequential read through a second handle");
    assert_eq!(
        fuse_requests(port, "read"),
        reads,
        "no read reached cosfs: the kernel read the cache file"
    );
    assert_eq!(b.count("GetObject"), 0);
    drop(f);
    // O_DIRECT opens are never passthrough: their reads would each wait on the disk.
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(m.p("big"))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    direct.read_exact_at(&mut buf, 8192).unwrap();
    assert!(buf[..] == data[8192..8192 + 4096]);
    assert!(
        fuse_requests(port, "read") > reads,
        "the O_DIRECT read reached cosfs"
    );
    drop(direct);
    // After a remount the whole file is checked once, then served the same way.
    m.stop();
    let port = common::free_port();
    let m = mount(&b, disk.path(), port, &["--read-only"]);
    let reads = fuse_requests(port, "read");
    let f = std::fs::File::open(m.p("big")).unwrap();
    scattered_reads(&f, &data);
    assert_eq!(fuse_requests(port, "read"), reads, "after a remount");
    assert_eq!(b.count("GetObject"), 0);
}

/// The whole files under the disk cache `disk` (`<mount>/<subdir>/<version>-w`).
fn whole_files(disk: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for mount_dir in std::fs::read_dir(disk).unwrap().flatten() {
        for sub in std::fs::read_dir(mount_dir.path()).unwrap().flatten() {
            if sub.path().is_dir() {
                let files = std::fs::read_dir(sub.path()).unwrap().flatten();
                out.extend(
                    files
                        .map(|f| f.path())
                        .filter(|p| p.to_string_lossy().ends_with("-w")),
                );
            }
        }
    }
    out
}

#[test]
fn a_damaged_whole_file_is_never_handed_to_the_kernel() {
    let b = Backend::start();
    let data = pattern(3 * MIB + 9, 6);
    b.put_big("f", &data);
    let disk = tempfile::tempdir().unwrap();
    {
        let m = mount(&b, disk.path(), common::free_port(), &[]);
        assert!(std::fs::read(m.p("f")).unwrap() == data);
        wait_whole(&m, 1);
    }
    let files = whole_files(disk.path());
    assert_eq!(files.len(), 1, "one whole file, its chunks gone");
    let chunks = std::fs::read_dir(files[0].parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(chunks, 1, "only the whole file in its directory");
    // Bit rot in the middle, same length: only the checksum can tell.
    let mut raw = std::fs::read(&files[0]).unwrap();
    assert!(raw == data, "the whole file is exactly the object");
    raw[MIB + 17] ^= 0x40;
    std::fs::write(&files[0], &raw).unwrap();
    b.reset_counts();
    let port = common::free_port();
    let m = mount(&b, disk.path(), port, &[]);
    assert!(
        std::fs::read(m.p("f")).unwrap() == data,
        "never the damaged bytes"
    );
    assert!(b.count("GetObject") >= 1, "fetched again");
    assert!(!files[0].exists(), "the damaged file is deleted");
    let s = common::mount::stats_line(&m);
    assert_eq!(common::mount::stats_figure(&s, "damaged"), Some(1), "{s}");
}

#[test]
fn chunks_a_mount_left_become_a_whole_file_at_the_next_open() {
    let b = Backend::start();
    let data = pattern(4 * MIB + 3, 8);
    b.put_big("f", &data);
    let disk = tempfile::tempdir().unwrap();
    {
        // Chunks only: a mount without passthrough makes no whole files.
        let m = mount(&b, disk.path(), common::free_port(), &["--no-passthrough"]);
        assert!(std::fs::read(m.p("f")).unwrap() == data);
        let deadline = Instant::now() + Duration::from_secs(20);
        while common::mount::stats_figure(&common::mount::stats_line(&m), "written") < Some(5) {
            assert!(Instant::now() < deadline, "chunks not written");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(whole_files(disk.path()).is_empty());
    b.reset_counts();
    let port = common::free_port();
    let m = mount(&b, disk.path(), port, &[]);
    // This open reads through cosfs and asks for the whole file; the next is passthrough.
    assert!(std::fs::read(m.p("f")).unwrap() == data);
    wait_whole(&m, 1);
    common::mount::drop_kernel_caches();
    let reads = fuse_requests(port, "read");
    assert!(std::fs::read(m.p("f")).unwrap() == data);
    assert_eq!(fuse_requests(port, "read"), reads, "passthrough");
    assert_eq!(b.count("GetObject"), 0, "all from the disk cache");
}

#[test]
fn a_replaced_object_is_never_served_stale_to_a_new_open() {
    let b = Backend::start();
    let old = pattern(3 * MIB, 1);
    b.put_big("f", &old);
    let disk = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let m = mount(&b, disk.path(), port, &["--metadata-ttl", "1"]);
    assert!(std::fs::read(m.p("f")).unwrap() == old);
    wait_whole(&m, 1);
    // A reader holds a passthrough handle across the replacement.
    let held = std::fs::File::open(m.p("f")).unwrap();
    let mut first = vec![0u8; 4096];
    held.read_exact_at(&mut first, 0).unwrap();
    assert!(first[..] == old[..4096]);
    let new = pattern(2 * MIB + 5, 2);
    b.put_big("f", &new);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        std::fs::read(m.p("f")).unwrap() == new,
        "a new open after the TTL reads the new version"
    );
    let mut buf = vec![0u8; 4096];
    held.read_exact_at(&mut buf, MIB as u64).unwrap();
    assert!(
        buf[..] == old[MIB..MIB + 4096],
        "the handle open before keeps the version it opened"
    );
    assert_eq!(held.metadata().unwrap().len(), old.len() as u64);
    drop(held);
    assert!(std::fs::read(m.p("f")).unwrap() == new);
}

#[test]
fn writing_a_file_a_passthrough_reader_holds_works_and_the_reader_keeps_its_version() {
    let b = Backend::start();
    let old = pattern(2 * MIB, 3);
    b.put_big("f", &old);
    let disk = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let m = mount(&b, disk.path(), port, &[]);
    assert!(std::fs::read(m.p("f")).unwrap() == old);
    wait_whole(&m, 1);
    let held = std::fs::File::open(m.p("f")).unwrap();
    let reads = fuse_requests(port, "read");
    let mut buf = vec![0u8; 4096];
    held.read_exact_at(&mut buf, 4096).unwrap();
    assert_eq!(
        fuse_requests(port, "read"),
        reads,
        "the reader is passthrough"
    );
    // Shell redirection (O_WRONLY|O_CREAT|O_TRUNC) and an in-place update (O_RDWR).
    let new = pattern(MIB + 3, 4);
    std::fs::write(m.p("f"), &new).unwrap();
    assert!(common::posix::body(&b, "f") == new, "the write reached COS");
    assert!(std::fs::read(m.p("f")).unwrap() == new);
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("f"))
        .unwrap();
    rw.write_all_at(b"XYZ", 10).unwrap();
    drop(rw);
    let mut want = new.clone();
    want[10..13].copy_from_slice(b"XYZ");
    assert!(common::posix::body(&b, "f") == want);
    held.read_exact_at(&mut buf, 0).unwrap();
    assert!(
        buf[..] == old[..4096],
        "the reader still reads what it opened"
    );
}

/// Runs in a user namespace of its own as its root, which is no root to the kernel: the mount
/// asks for passthrough, and the kernel refuses its first backing file (EPERM).
const REFUSED: &str = r#"
set -e
cosfs mount "$BUCKET" "$MNT" --endpoint "$ENDPOINT" --cache-dir "$CACHE" \
    --metrics-listen "127.0.0.1:$PORT" --log-file "$LOG"
trap 'cosfs unmount "$MNT"' EXIT
# O_DIRECT: every read reaches the filesystem, and none is kept in the page cache.
dd if="$MNT/big" iflag=direct bs=1M status=none | cmp - "$WANT"
# Wait until the disk cache holds the file whole, then open it again.
for i in $(seq 100); do
    grep -q '^cosfs_disk_cache_whole_files_made_total 1' "$DIR/metrics" 2>/dev/null && break
    sleep 0.1
    curl -s "http://127.0.0.1:$PORT/metrics" > "$DIR/metrics" || true
done
echo before $(grep '^cosfs_fuse_requests_total{operation="read"}' "$DIR/metrics")
# A buffered open is offered passthrough (O_DIRECT ones never are); the page cache is empty,
# since the first read bypassed it.
cmp "$MNT/big" "$WANT"
curl -s "http://127.0.0.1:$PORT/metrics" > "$DIR/metrics"
echo after $(grep '^cosfs_fuse_requests_total{operation="read"}' "$DIR/metrics")
"#;

#[test]
fn where_the_kernel_refuses_passthrough_the_chunked_path_serves_the_same_bytes() {
    let b = Backend::start();
    let data = pattern(5 * MIB + 77, 5);
    b.put_big("big", &data);
    let dir = tempfile::tempdir().unwrap();
    let (mnt, want, log) = (
        dir.path().join("mnt"),
        dir.path().join("want"),
        dir.path().join("log"),
    );
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(&want, &data).unwrap();
    let _guard = common::mount::Unmounter::new(&mnt);
    let bin = Path::new(env!("CARGO_BIN_EXE_cosfs")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = common::free_port().to_string();
    let out = common::run_within(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c", REFUSED])
            .env_clear()
            .env("PATH", path)
            .env("HOME", dir.path())
            .env("COS_SECRET_ID", common::SECRET_ID)
            .env("COS_SECRET_KEY", common::SECRET_KEY)
            .env("BUCKET", common::BUCKET)
            .env("ENDPOINT", b.endpoint())
            .env("DIR", dir.path())
            .env("MNT", &mnt)
            .env("WANT", &want)
            .env("LOG", &log)
            .env("CACHE", dir.path().join("cache"))
            .env("PORT", &port),
        120,
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{out:?}\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reads = |when: &str| -> u64 {
        let line = stdout.lines().find(|l| l.starts_with(when)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(
        reads("after") > reads("before"),
        "the second read went through cosfs: {stdout}"
    );
    assert!(
        text.contains("the kernel refused passthrough"),
        "the log says so: {text}"
    );
}
