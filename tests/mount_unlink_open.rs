//! Real mounts: a file unlinked while open keeps working for its open handles, as on a local
//! filesystem, and its object goes at the last close (not before, never republished).

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use common::mount::{no_uploads_left, Backend, Mounted};
use common::{get_all, pattern};
use cosfs::cos::ObjectStore;

fn exists(b: &Backend, key: &str) -> bool {
    match b.block_on(b.client.head_object(key)) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("HEAD {key}: {e}"),
    }
}

/// The kernel sends release after close returns: wait for its effect.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unlinked_files_stay_readable_and_writable_until_closed() {
    let b = Backend::start();
    let old = pattern(300 * 1024, 1);
    b.put("r.bin", old.clone());
    b.put("rw.bin", old.clone());
    b.put("again.txt", "old\n");
    let m = Mounted::start(&b, &[]);

    // A reader: the name goes at once, the bytes stay until the last close.
    let mut r = std::fs::File::open(m.p("r.bin")).unwrap();
    let mut head = vec![0; 100];
    r.read_exact(&mut head).unwrap();
    std::fs::remove_file(m.p("r.bin")).unwrap();
    assert!(!m.p("r.bin").exists(), "the name is gone for this mount");
    assert_eq!(r.metadata().unwrap().nlink(), 0);
    assert!(exists(&b, "r.bin"), "the DELETE waits for the last close");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert!(head == old, "the open reader reads the whole old content");
    drop(r);
    eventually("r.bin deleted at the last close", || !exists(&b, "r.bin"));

    // A new file being written: writes and reads go on; nothing is ever published.
    let w = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.p("w.txt"))
        .unwrap();
    w.write_all_at(b"hello", 0).unwrap();
    std::fs::remove_file(m.p("w.txt")).unwrap();
    assert_eq!(w.metadata().unwrap().nlink(), 0);
    w.write_all_at(b" world", 5).unwrap();
    let mut buf = [0u8; 11];
    w.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello world");
    w.sync_all().unwrap();
    drop(w);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!exists(&b, "w.txt"), "an unlinked file is never published");

    // An existing object edited in place, then unlinked: the edit reads back over the old
    // bytes; at the last close the object goes and nothing is uploaded.
    let mut rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("rw.bin"))
        .unwrap();
    rw.write_all(b"EDIT").unwrap();
    std::fs::remove_file(m.p("rw.bin")).unwrap();
    rw.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    rw.read_to_end(&mut all).unwrap();
    assert_eq!(&all[..4], b"EDIT");
    assert!(all[4..] == old[4..], "the rest is the old object's");
    drop(rw);
    eventually("rw.bin deleted at the last close", || !exists(&b, "rw.bin"));

    // The name taken again while the unlinked file is open: the deferred DELETE leaves the
    // new file alone. (The new object replaces the old one on COS, so the old handle keeps
    // only what it had read: README, `unlink`.)
    let mut old_handle = std::fs::File::open(m.p("again.txt")).unwrap();
    let mut s = String::new();
    old_handle.read_to_string(&mut s).unwrap();
    assert_eq!(s, "old\n");
    std::fs::remove_file(m.p("again.txt")).unwrap();
    std::fs::write(m.p("again.txt"), "new\n").unwrap();
    drop(old_handle);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(&b.block_on(get_all(&b.client, "again.txt"))[..], b"new\n");
    assert_eq!(std::fs::read_to_string(m.p("again.txt")).unwrap(), "new\n");
    no_uploads_left(&b);
}
