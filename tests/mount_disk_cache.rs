//! The persistent disk cache (`--disk-cache`): what a remount re-reads costs no GET, a
//! replaced object is never served from old chunks, a damaged chunk is fetched again, and a
//! cache directory that is full or unusable never fails a read.
//! These mounts use `--no-passthrough`, so the chunk files stay as they are (what a mount that
//! is not root has); whole files and passthrough are `mount_passthrough.rs`'s.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::{Backend, Mounted};
use common::pattern;

const MIB: usize = 1024 * 1024;

fn stats(m: &Mounted) -> String {
    common::mount::stats_line(m)
}

/// A number after `name=` in the stats line.
fn figure(line: &str, name: &str) -> u64 {
    common::mount::stats_figure(line, name).unwrap_or_else(|| panic!("{name} in {line}"))
}

/// Wait until the disk cache has written `n` chunks.
fn wait_written(m: &Mounted, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(m);
        if figure(&s, "written") >= n {
            return;
        }
        assert!(Instant::now() < deadline, "chunks not written: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mount_with_disk(b: &Backend, disk: &Path) -> Mounted {
    Mounted::start(
        b,
        &["--disk-cache", disk.to_str().unwrap(), "--no-passthrough"],
    )
}

/// Read `key` (expecting `data`) on a mount with the disk cache `disk`, wait until its
/// `chunks` chunks are written, and unmount.
fn read_into_disk_cache(b: &Backend, disk: &Path, key: &str, data: &[u8], chunks: u64) {
    let m = mount_with_disk(b, disk);
    assert!(std::fs::read(m.p(key)).unwrap() == data);
    wait_written(&m, chunks);
}

/// Chunk files in the disk cache (not the lock file).
fn chunk_files(disk: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for mount_dir in std::fs::read_dir(disk).unwrap().flatten() {
        for sub in std::fs::read_dir(mount_dir.path()).unwrap().flatten() {
            if sub.path().is_dir() {
                out.extend(
                    std::fs::read_dir(sub.path())
                        .unwrap()
                        .flatten()
                        .map(|f| f.path()),
                );
            }
        }
    }
    out
}

#[test]
fn a_reread_after_a_remount_makes_no_get() {
    let b = Backend::start();
    let data = pattern(6 * MIB + 1000, 1);
    b.put_big("big", &data);
    let disk = tempfile::tempdir().unwrap();
    read_into_disk_cache(&b, disk.path(), "big", &data, 7);
    b.reset_counts();
    // A read-only mount uses the disk cache as well.
    let m = Mounted::start(
        &b,
        &[
            "--disk-cache",
            disk.path().to_str().unwrap(),
            "--read-only",
            "--no-passthrough",
        ],
    );
    assert!(
        std::fs::read(m.p("big")).unwrap() == data,
        "bytes from disk"
    );
    assert_eq!(
        b.count("GetObject"),
        0,
        "every block came from the disk cache"
    );
    let s = stats(&m);
    assert!(figure(&s, "hits") >= 7, "every chunk came from disk: {s}");
    // Per-mount files are the mounting user's alone.
    use std::os::unix::fs::PermissionsExt;
    for mount_dir in std::fs::read_dir(disk.path()).unwrap().flatten() {
        let mode = mount_dir.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", mount_dir.path().display());
    }
    for f in chunk_files(disk.path()) {
        let mode = f.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
}

#[test]
fn random_reads_of_a_cached_object_come_from_disk_not_through_memory() {
    let b = Backend::start();
    let data = pattern(8 * MIB, 7);
    b.put_big("big", &data);
    let disk = tempfile::tempdir().unwrap();
    read_into_disk_cache(&b, disk.path(), "big", &data, 8);
    b.reset_counts();
    let m = mount_with_disk(&b, disk.path());
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(m.p("big")).unwrap();
    // Scattered 4 KiB reads, enough to start a whole-object fetch if one were needed.
    for k in 0..64u64 {
        let at = (k * 7919 * 4096) % (data.len() as u64 - 4096);
        let mut buf = [0u8; 4096];
        f.read_exact_at(&mut buf, at).unwrap();
        assert!(buf[..] == data[at as usize..at as usize + 4096], "at {at}");
        // Now and then from a cold page cache: read on the blocking pool.
        if k % 8 == 0 {
            common::mount::drop_kernel_caches();
        }
    }
    assert_eq!(
        b.count("GetObject"),
        0,
        "every read came from the disk cache"
    );
    let s = stats(&m);
    // The chunks are not copied into the memory cache as well.
    assert_eq!(figure(&s, "cache"), 0, "{s}");
}

#[test]
fn an_object_replaced_behind_the_mount_is_fetched_again() {
    let b = Backend::start();
    let old = pattern(3 * MIB, 2);
    b.put_big("f", &old);
    let disk = tempfile::tempdir().unwrap();
    read_into_disk_cache(&b, disk.path(), "f", &old, 3);
    // Another client replaces it with data of the same size while nothing is mounted.
    let new = pattern(3 * MIB, 3);
    b.put_big("f", &new);
    b.reset_counts();
    let m = mount_with_disk(&b, disk.path());
    assert!(
        std::fs::read(m.p("f")).unwrap() == new,
        "never the old chunks"
    );
    assert!(b.count("GetObject") > 0);
    // And while mounted: once the metadata TTL (1 s) has passed, an open sees the new ETag.
    let newer = pattern(3 * MIB, 4);
    b.put_big("f", &newer);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(std::fs::read(m.p("f")).unwrap() == newer);
}

#[test]
fn a_damaged_chunk_is_detected_and_fetched_again() {
    let b = Backend::start();
    let data = pattern(2 * MIB, 5);
    b.put_big("f", &data);
    let disk = tempfile::tempdir().unwrap();
    read_into_disk_cache(&b, disk.path(), "f", &data, 2);
    let files = chunk_files(disk.path());
    assert_eq!(files.len(), 2);
    // A torn write: the second half of one chunk is zeros.
    let raw = std::fs::read(&files[0]).unwrap();
    let mut torn = raw.clone();
    let half = torn.len() / 2;
    torn[half..].fill(0);
    std::fs::write(&files[0], &torn).unwrap();
    b.reset_counts();
    let m = mount_with_disk(&b, disk.path());
    assert!(
        std::fs::read(m.p("f")).unwrap() == data,
        "never the damaged bytes"
    );
    assert!(b.count("GetObject") >= 1, "the damaged chunk was fetched");
    let s = stats(&m);
    assert_eq!(figure(&s, "damaged"), 1, "{s}");
    assert!(
        figure(&s, "hits") >= 1,
        "the intact chunk still served: {s}"
    );
}

#[test]
fn a_full_or_unusable_cache_directory_keeps_reads_working() {
    let b = Backend::start();
    let data = pattern(3 * MIB, 6);
    b.put_big("f", &data);

    // Unusable: the directory cannot be made (a file is in the way). The mount works without.
    let tmp = tempfile::tempdir().unwrap();
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let m = mount_with_disk(&b, &blocked.join("cache"));
    assert!(std::fs::read(m.p("f")).unwrap() == data);
    assert!(!stats(&m).contains("disk_cache="), "no disk cache");
    drop(m);

    // Full: a 512 KiB tmpfs holds no 1 MiB chunk. Every write fails with ENOSPC; reads go on.
    let small = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(small.path())
        .status()
        .expect("mount(8)");
    assert!(
        status.success(),
        "mounting a tmpfs needs root, as FUSE tests do"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(small.path());
    let m = mount_with_disk(&b, small.path());
    for _ in 0..2 {
        assert!(std::fs::read(m.p("f")).unwrap() == data);
        common::mount::drop_kernel_caches();
    }
    let s = stats(&m);
    assert_eq!(figure(&s, "written"), 0, "{s}");
    let leftovers: Vec<_> = chunk_files(small.path());
    assert!(leftovers.is_empty(), "no partial files left: {leftovers:?}");
}
