//! Real mounts: a file unlinked, renamed or replaced by a rename while open keeps working for
//! its open handles, as on a local filesystem; an unlinked file's object goes at the last close
//! (not before, never republished).

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};

use common::mount::{no_uploads_left, Backend, Mounted};
use common::{get_all, pattern};
use cosfs::object::ObjectStore;

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
    // Bigger than a first read's prefetch (1 MiB), so the rest is not cached when it goes.
    let again = pattern(4 << 20, 2);
    b.put("again.bin", again.clone());
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

    // The name taken again while the unlinked file is open: the old handle reads on (its
    // version was kept on local disk before the new file landed on the key) and the deferred
    // DELETE leaves the new file alone.
    let mut old_handle = std::fs::File::open(m.p("again.bin")).unwrap();
    let mut head = vec![0; 100];
    old_handle.read_exact(&mut head).unwrap();
    std::fs::remove_file(m.p("again.bin")).unwrap();
    std::fs::write(m.p("again.bin"), "new\n").unwrap();
    assert_eq!(&b.block_on(get_all(&b.client, "again.bin"))[..], b"new\n");
    let mut rest = Vec::new();
    old_handle.read_to_end(&mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert!(
        head == again,
        "the unlinked file's handle reads the old content to its end"
    );
    drop(old_handle);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(&b.block_on(get_all(&b.client, "again.bin"))[..], b"new\n");
    assert_eq!(std::fs::read_to_string(m.p("again.bin")).unwrap(), "new\n");
    no_uploads_left(&b);
}

fn read_rest(f: &mut std::fs::File, mut head: Vec<u8>) -> Vec<u8> {
    f.read_to_end(&mut head).unwrap();
    head
}

fn read_head(f: &mut std::fs::File) -> Vec<u8> {
    let mut head = vec![0; 100];
    f.read_exact(&mut head).unwrap();
    head
}

#[test]
fn renamed_and_replaced_files_stay_readable_until_closed() {
    let b = Backend::start();
    // Bigger than a first read's prefetch (1 MiB), so the rest is not cached when it goes.
    let old = pattern(4 << 20, 3);
    let new = pattern(3 << 20, 4);
    b.put("dst.bin", old.clone());
    b.put("src.bin", new.clone());
    b.put("mv.bin", old.clone());
    b.put("d/x.bin", new.clone());
    let m = Mounted::start(&b, &[]);

    // rename over a file with a reader and a writer (an edit in place) open.
    let mut r = std::fs::File::open(m.p("dst.bin")).unwrap();
    let head = read_head(&mut r);
    let w = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("dst.bin"))
        .unwrap();
    w.write_all_at(b"EDIT", 0).unwrap();
    std::fs::rename(m.p("src.bin"), m.p("dst.bin")).unwrap();
    assert!(
        std::fs::read(m.p("dst.bin")).unwrap() == new,
        "the name shows the renamed file"
    );
    assert!(b.block_on(get_all(&b.client, "dst.bin")) == new);
    assert_eq!(
        r.metadata().unwrap().nlink(),
        0,
        "the replaced file is unlinked"
    );
    assert!(
        read_rest(&mut r, head) == old,
        "its reader reads the old content to its end"
    );
    let mut edited = vec![0; old.len()];
    w.read_exact_at(&mut edited, 0).unwrap();
    assert_eq!(&edited[..4], b"EDIT");
    assert!(
        edited[4..] == old[4..],
        "its writer reads its edit over the old content"
    );
    w.write_all_at(b"MORE", 8).unwrap();
    w.sync_all().unwrap();
    drop(w);
    drop(r);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        b.block_on(get_all(&b.client, "dst.bin")) == new,
        "the replaced file's writer never publishes over the renamed file"
    );
    assert!(!exists(&b, "src.bin"));

    // A reader of the renamed file follows it.
    let mut r = std::fs::File::open(m.p("mv.bin")).unwrap();
    let head = read_head(&mut r);
    std::fs::rename(m.p("mv.bin"), m.p("moved.bin")).unwrap();
    assert!(!exists(&b, "mv.bin"));
    assert!(
        read_rest(&mut r, head) == old,
        "a reader follows its file's rename"
    );

    // ... and a reader below a renamed directory.
    let mut r = std::fs::File::open(m.p("d/x.bin")).unwrap();
    let head = read_head(&mut r);
    std::fs::rename(m.p("d"), m.p("e")).unwrap();
    assert!(!exists(&b, "d/x.bin"));
    assert!(
        read_rest(&mut r, head) == new,
        "a reader follows its directory's rename"
    );
    no_uploads_left(&b);
}

/// When the replaced file's content does not fit the staging area (half of
/// `--cache-dir-size`), the rename still happens and its handles get EIO for what they had
/// not read, as documented.
#[test]
fn a_replaced_file_too_big_to_keep_fails_its_readers_not_the_rename() {
    let b = Backend::start();
    let big = pattern(6 << 20, 5);
    b.put("big.bin", big.clone());
    b.put("small.bin", "small\n");
    let m = Mounted::start(&b, &["--cache-dir-size", "1M"]);
    let mut r = std::fs::File::open(m.p("big.bin")).unwrap();
    read_head(&mut r);
    std::fs::rename(m.p("small.bin"), m.p("big.bin")).unwrap();
    assert_eq!(std::fs::read(m.p("big.bin")).unwrap(), b"small\n");
    let mut far = vec![0; 4096];
    let e = r.read_exact_at(&mut far, 5 << 20).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
}

#[test]
fn a_directory_whose_last_file_is_unlinked_but_open_can_be_removed() {
    // stress-ng's chmod and chown stressors do this with two processes sharing one file.
    let b = Backend::start();
    let m = Mounted::start(&b, &["--metadata-ttl", "30"]);
    // Made by another client: the mount has to LIST it to know it empty.
    b.put("d/", "");
    b.put("d/f", "held");
    let mut held = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.p("d/f"))
        .unwrap();
    std::fs::remove_file(m.p("d/f")).unwrap();
    assert!(exists(&b, "d/f"), "the object stays for the open handle");
    std::fs::remove_dir(m.p("d")).expect("rmdir: the directory holds no name");
    // The marker's DELETE is queued (sent within a round trip).
    eventually("the marker goes", || !exists(&b, "d/"));
    let names: Vec<_> = std::fs::read_dir(m.p(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "listed after rmdir: {names:?}");
    assert!(std::fs::metadata(m.p("d")).is_err());
    let mut s = String::new();
    held.read_to_string(&mut s).unwrap();
    assert_eq!(s, "held");
    drop(held);
    eventually("the object goes at the last close", || !exists(&b, "d/f"));
}
