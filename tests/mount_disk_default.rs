//! The disk cache out of the box: on by default under `--cache-dir`, sized from the free space
//! of its filesystem and never taking it below its reserve (a small tmpfs), and `--disk-cache
//! off` writes nothing to disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::mount::{stats_figure as figure, stats_line as stats, Backend, Mounted};
use common::pattern;

const MIB: u64 = 1024 * 1024;

/// Regular files under `dir` (recursively), with their sizes.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let md = e.metadata().unwrap();
        if md.is_dir() {
            out.extend(files_under(&e.path()));
        } else if md.is_file() {
            out.push((e.path(), md.len()));
        }
    }
    out
}

/// Chunk files: the disk cache keeps them in subdirectories of the mount's own directory.
fn chunk_bytes(cache_dir: &Path) -> u64 {
    let mut n = 0;
    for own in std::fs::read_dir(cache_dir).unwrap().flatten() {
        for sub in std::fs::read_dir(own.path()).unwrap().flatten() {
            if sub.path().is_dir() {
                n += files_under(&sub.path()).iter().map(|f| f.1).sum::<u64>();
            }
        }
    }
    n
}

/// Free bytes and size of the filesystem at `p`.
fn space(p: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    let unit = st.f_frsize as u64;
    (st.f_bavail as u64 * unit, st.f_blocks as u64 * unit)
}

/// Wait until the disk cache has written at least `n` chunks; the stats line then.
fn wait_written(m: &Mounted, n: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(m);
        if figure(&s, "written").unwrap_or(0) >= n {
            return s;
        }
        assert!(Instant::now() < deadline, "chunks not written: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the disk cache's writer has nothing queued: written + dropped stop moving.
fn settle(m: &Mounted) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let s = stats(m);
        let now = (figure(&s, "written"), figure(&s, "dropped"));
        if now == (figure(&last, "written"), figure(&last, "dropped")) {
            return s;
        }
        last = s;
    }
    last
}

#[test]
fn the_disk_cache_is_on_by_default_under_the_cache_dir() {
    let b = Backend::start();
    let data = pattern(4 * MIB as usize, 3);
    b.put_big("obj", &data);
    let m = Mounted::start(&b, &[]);
    assert!(std::fs::read(m.p("obj")).unwrap() == data);
    let s = wait_written(&m, 4);
    let cache_dir = m.dir.path().join("cache");
    assert!(
        chunk_bytes(&cache_dir) >= 4 * MIB,
        "chunks under --cache-dir: {:?} ({s})",
        files_under(&cache_dir)
    );
}

#[test]
fn disk_cache_off_writes_nothing_to_disk() {
    let b = Backend::start();
    let data = pattern(6 * MIB as usize, 5);
    b.put_big("obj", &data);
    let m = Mounted::start(&b, &["--disk-cache", "off"]);
    for _ in 0..2 {
        assert!(std::fs::read(m.p("obj")).unwrap() == data);
    }
    let s = stats(&m);
    assert!(figure(&s, "written").is_none(), "no disk cache: {s}");
    let cache_dir = m.dir.path().join("cache");
    let written: Vec<_> = files_under(&cache_dir)
        .into_iter()
        .filter(|(_, len)| *len > 0)
        .collect();
    assert!(written.is_empty(), "bytes on disk: {written:?}");
}

/// A tmpfs of `mib` MiB on a new temp dir, unmounted when dropped (also on panic).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(mib: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn the_default_disk_cache_keeps_its_reserve_on_a_small_filesystem() {
    let fs = Tmpfs::new(64);
    let (_, total) = space(fs.path());
    let reserve = total / 10;
    let cache_dir = fs.path().join("cache");
    // Others' files take most of it: 24 MiB stay free.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 40 * MIB as usize]).unwrap();
    let b = Backend::start();
    let one = pattern(32 * MIB as usize, 11);
    b.put_big("one", &one);
    let m = Mounted::start(&b, &["--cache-dir", cache_dir.to_str().unwrap()]);
    assert!(std::fs::read(m.p("one")).unwrap() == one);
    let s = settle(&m);
    let (free, _) = space(fs.path());
    let held = chunk_bytes(&cache_dir);
    // `auto`: half of what is free above the reserve, (24 MiB - 6.4 MiB) / 2.
    let cap = (24 * MIB - reserve) / 2;
    assert!(held > 0, "something is cached: {s}");
    assert!(held <= cap, "held {held} > cap {cap}: {s}");
    assert!(free >= reserve, "free {free} < reserve {reserve}: {s}");
    // Another program takes space, down to 3 MiB below the reserve: the cache's next writes
    // give its own space back until the reserve is free again.
    let (free_now, _) = space(fs.path());
    let more = fs.path().join("more");
    std::fs::write(&more, vec![2u8; (free_now - reserve + 3 * MIB) as usize]).unwrap();
    let two = pattern(16 * MIB as usize, 12);
    b.put_big("two", &two);
    assert!(std::fs::read(m.p("two")).unwrap() == two);
    let s = settle(&m);
    let (free, _) = space(fs.path());
    assert!(
        free >= reserve,
        "free {free} < reserve {reserve} after others took space: {s}"
    );
    assert!(
        chunk_bytes(&cache_dir) + 3 * MIB <= held,
        "the cache made room by deleting its own chunks: {s}"
    );
    // Reads never failed, and what is on disk is right: a remount reads the same bytes.
    drop(m);
    let m = Mounted::start(&b, &["--cache-dir", cache_dir.to_str().unwrap()]);
    assert!(std::fs::read(m.p("one")).unwrap() == one);
    assert!(std::fs::read(m.p("two")).unwrap() == two);
}
