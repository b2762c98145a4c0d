//! Real mounts: reading bytes back (random offsets, concurrent readers, a large object), what
//! the block cache saves, and the error paths (deleted objects, a dead server, writes).

mod common;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::mount::{drop_kernel_caches, Backend, Mounted};
use common::pattern;

const MIB: usize = 1024 * 1024;

/// xorshift offsets/lengths, reproducible per seed.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed | 1;
    move |bound| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % bound
    }
}

#[test]
fn random_and_concurrent_reads_match_the_source() {
    let b = Backend::start();
    let data = pattern(64 * MIB + 12345, 7);
    b.put_big("big.bin", &data);
    let m = Mounted::start(&b, &["--cache-size", "32M"]);
    let path = m.p("big.bin");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);

    // One reader, random offsets and sizes (some crossing blocks, some past the end).
    let f = std::fs::File::open(&path).unwrap();
    let mut next = rng(42);
    for _ in 0..200 {
        let off = next(data.len() as u64 + 1000);
        let len = 1 + next(300_000) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).unwrap();
        let want = &data[(off as usize).min(data.len())..((off as usize) + len).min(data.len())];
        assert_eq!(&buf[..n], want, "read_at({off}, {len})");
    }

    // Eight concurrent readers: four sequential end to end, four random.
    std::thread::scope(|s| {
        for r in 0..8u64 {
            let (path, data) = (&path, &data);
            s.spawn(move || {
                let mut f = std::fs::File::open(path).unwrap();
                if r < 4 {
                    let mut all = Vec::new();
                    f.seek(SeekFrom::Start(0)).unwrap();
                    f.read_to_end(&mut all).unwrap();
                    assert!(all == *data, "sequential reader {r} got different bytes");
                } else {
                    let mut next = rng(100 + r);
                    for _ in 0..100 {
                        let off = next(data.len() as u64);
                        let len = 1 + next(200_000) as usize;
                        let mut buf = vec![0u8; len];
                        let n = f.read_at(&mut buf, off).unwrap();
                        let end = (off as usize + len).min(data.len());
                        assert_eq!(&buf[..n], &data[off as usize..end], "reader {r}");
                    }
                }
            });
        }
    });
}

#[test]
fn large_object_reads_whole() {
    let b = Backend::start();
    let data = pattern(300 * MIB, 9);
    b.put_big("huge.bin", &data);
    let m = Mounted::start(&b, &[]);
    b.reset_counts();
    let got = std::fs::read(m.p("huge.bin")).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "300 MiB read back differs");
    // Prefetch fetches in large ranges: far fewer GETs than 256 KiB blocks.
    let gets = b.count("GetObject");
    assert!(gets < 300, "{gets} GETs for 300 MiB");
}

#[test]
fn cached_reread_makes_no_get() {
    let b = Backend::start();
    let data = pattern(5 * MIB, 3);
    b.put("f.bin", data.clone());
    let m = Mounted::start(&b, &["--metadata-ttl", "60"]);
    assert!(std::fs::read(m.p("f.bin")).unwrap() == data);
    assert!(b.count("GetObject") > 0);
    b.reset_counts();
    drop_kernel_caches();
    assert!(std::fs::read(m.p("f.bin")).unwrap() == data);
    assert_eq!(
        b.count("GetObject"),
        0,
        "the block cache served the re-read"
    );
}

#[test]
fn deleted_object_is_enoent_after_the_ttl() {
    let b = Backend::start();
    b.put("gone.txt", "here\n");
    let m = Mounted::start(&b, &["--metadata-ttl", "0.3"]);
    assert_eq!(std::fs::read_to_string(m.p("gone.txt")).unwrap(), "here\n");
    b.block_on(async {
        use cosfs::object::ObjectStore;
        b.client.delete_object("gone.txt").await.unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    let err = std::fs::metadata(m.p("gone.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let err = std::fs::File::open(m.p("gone.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(!std::fs::read_dir(&m.path)
        .unwrap()
        .any(|e| e.unwrap().file_name() == "gone.txt"));
}

#[test]
fn replaced_object_never_mixes_versions() {
    let b = Backend::start();
    let v1 = pattern(4 * MIB, 1);
    let v2 = pattern(4 * MIB, 2);
    b.put("v.bin", v1.clone());
    let m = Mounted::start(&b, &["--metadata-ttl", "0.2"]);
    let f = std::fs::File::open(m.p("v.bin")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, v1[..4096]);
    b.put("v.bin", v2.clone());
    // The open handle reads v1 or fails; it never returns v2 bytes.
    let mut rest = vec![0u8; MIB];
    match f.read_exact_at(&mut rest, 3 * MIB as u64) {
        Ok(()) => assert_eq!(rest, v1[3 * MIB..4 * MIB]),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO)),
    }
    drop(f);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::fs::read(m.p("v.bin")).unwrap() == v2,
        "a new open reads v2"
    );
}

#[test]
fn read_only_mount_refuses_every_change() {
    let b = Backend::start();
    b.put("a.txt", "a");
    b.put("d/x", "x");
    let m = Mounted::start(&b, &["--read-only"]);
    let erofs =
        |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    erofs(std::fs::write(m.p("new.txt"), "n"));
    erofs(
        std::fs::OpenOptions::new()
            .append(true)
            .open(m.p("a.txt"))
            .map(|_| ()),
    );
    erofs(std::fs::create_dir(m.p("newdir")));
    erofs(std::fs::remove_file(m.p("a.txt")));
    erofs(std::fs::rename(m.p("a.txt"), m.p("b.txt")));
    erofs(std::fs::remove_dir_all(m.p("d")));
    use std::os::unix::fs::PermissionsExt;
    erofs(std::fs::set_permissions(
        m.p("a.txt"),
        std::fs::Permissions::from_mode(0o600),
    ));
    assert_eq!(std::fs::read_to_string(m.p("a.txt")).unwrap(), "a");
}

#[test]
fn dead_server_gives_eio_not_a_hang() {
    let mut b = Backend::start();
    b.put("f.bin", pattern(2 * MIB, 5));
    b.put("dir/x", "x");
    let m = Mounted::start(&b, &["--metadata-ttl", "0"]);
    assert!(m.p("f.bin").exists());
    let f = std::fs::File::open(m.p("f.bin")).unwrap();
    b.kill();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let err = f.read_exact_at(&mut buf, MIB as u64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    let err = std::fs::read_dir(m.p("dir")).map(|_| ()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "errors took {took:?}");
}
