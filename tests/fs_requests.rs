//! The reader, the writer and the directory stream at the fs-core level, over `LocalStore`
//! through `FaultyStore`: the requests they send are the assertions (a cached re-read makes
//! no GET, an append to a big object is one part copy plus the new bytes, a listing is one LIST
//! per 1000 entries and one HEAD per entry, once).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{pattern, BUCKET};
use cosfs::fs::files::{OpenFlags, Owner};
use cosfs::fs::{CosFs, FsConfig};
use cosfs::local::LocalStore;
use cosfs::object::faulty::{Faults, FaultyStore};
use cosfs::object::{ObjectStore, PutOptions};

const ROOT: u64 = 1;
const MIB: usize = 1 << 20;

struct World {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    store: Arc<FaultyStore<LocalStore>>,
    fs: CosFs<FaultyStore<LocalStore>>,
}

fn world() -> World {
    world_with(256 << 20)
}

/// A world whose block cache holds `cache_bytes`.
fn world_with(cache_bytes: u64) -> World {
    let (data, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = Arc::new(LocalStore::open(data.path(), BUCKET).unwrap());
    let store = Arc::new(FaultyStore::new(local, 1));
    let fs = CosFs::new(
        store.clone(),
        FsConfig {
            cache_dir: cache.path().join("staging"),
            metadata_ttl: std::time::Duration::from_secs(3600),
            cache_bytes,
            ..Default::default()
        },
    );
    World {
        _dirs: (data, cache),
        store,
        fs,
    }
}

impl World {
    async fn put(&self, key: &str, body: Vec<u8>) {
        self.store
            .put_object(key, Bytes::from(body), &PutOptions::default())
            .await
            .unwrap();
    }

    async fn read_all(&self, name: &str) -> Vec<u8> {
        let e = self.fs.lookup(ROOT, name).await.unwrap();
        let o = self.fs.open(e.ino, OpenFlags::default(), 0).await.unwrap();
        let mut out = Vec::new();
        loop {
            let b = self
                .fs
                .read(o.fh, out.len() as u64, MIB as u32)
                .await
                .unwrap();
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        self.fs.release(o.fh).await;
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_re_read_sends_no_get() {
    let w = world();
    let body = pattern(3 * MIB, 1);
    w.put("f", body.clone()).await;
    w.store.reset_counts();
    assert!(w.read_all("f").await == body);
    let first = w.store.count("GetObject");
    assert!(
        (1..=4).contains(&first),
        "a sequential 3 MiB read: {first} GETs"
    );
    assert!(w.read_all("f").await == body);
    assert_eq!(
        w.store.count("GetObject"),
        first,
        "the re-read is served from the cache"
    );
    assert_eq!(
        w.store.count("HeadObject"),
        1,
        "one HEAD, at the first lookup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_a_big_object_copies_it_in_one_part() {
    let w = world();
    let body = pattern(12 * MIB, 2);
    w.put("log", body.clone()).await;
    let e = w.fs.lookup(ROOT, "log").await.unwrap();
    w.store.reset_counts();
    let flags = OpenFlags {
        write: true,
        append: true,
        ..Default::default()
    };
    let pid = std::process::id();
    let o = w.fs.open(e.ino, flags, pid).await.unwrap();
    w.fs.write(o.fh, 0, b"one more line\n").await.unwrap();
    w.fs.flush(o.fh, pid).await.unwrap();
    w.fs.release(o.fh).await;
    let c = w.store.counts();
    assert_eq!(c.get("UploadPartCopy"), Some(&1), "{c:?}");
    assert_eq!(
        c.get("UploadPart"),
        Some(&1),
        "only the new bytes are sent: {c:?}"
    );
    assert_eq!(c.get("CompleteMultipart"), Some(&1), "{c:?}");
    assert_eq!(c.get("GetObject"), None, "nothing is read back: {c:?}");
    let mut want = body;
    want.extend_from_slice(b"one more line\n");
    assert!(w.read_all("log").await == want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_a_list_per_thousand_and_a_head_per_entry_once() {
    let w = world();
    for i in 0..2500 {
        w.put(&format!("d/f{i:05}"), vec![b'x'; 3]).await;
    }
    let d = w.fs.lookup(ROOT, "d").await.unwrap();
    async fn list(w: &World, ino: u64) -> usize {
        let fh = w.fs.opendir(ino).unwrap();
        let (mut n, mut offset) = (0, 0);
        loop {
            let page = w.fs.readdir(fh, offset, 300).await.unwrap();
            let Some(last) = page.last() else { break };
            offset = last.offset;
            n += page
                .iter()
                .filter(|e| e.name != "." && e.name != "..")
                .count();
        }
        w.fs.releasedir(fh);
        n
    }
    w.store.reset_counts();
    assert_eq!(list(&w, d.ino).await, 2500);
    assert_eq!(w.store.count("ListObjects"), 3, "{:?}", w.store.counts());
    assert_eq!(w.store.count("HeadObject"), 2500, "{:?}", w.store.counts());
    w.store.reset_counts();
    assert_eq!(list(&w, d.ino).await, 2500);
    assert_eq!(w.store.count("ListObjects"), 3);
    assert_eq!(
        w.store.count("HeadObject"),
        0,
        "metadata fetched within the TTL is reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_fails_close_and_keeps_the_old_object() {
    let w = world();
    w.put("doc", b"old".to_vec()).await;
    let e = w.fs.lookup(ROOT, "doc").await.unwrap();
    let flags = OpenFlags {
        write: true,
        truncate: true,
        ..Default::default()
    };
    let pid = std::process::id();
    let o = w.fs.open(e.ino, flags, pid).await.unwrap();
    w.fs.write(o.fh, 0, b"new content").await.unwrap();
    w.store.set_faults(Faults {
        rate_503: 1.0,
        only: vec!["PutObject"],
        ..Default::default()
    });
    let err = w.fs.flush(o.fh, pid).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    w.fs.release(o.fh).await;
    w.store.set_faults(Faults::default());
    assert_eq!(
        w.store.count("PutObject"),
        2,
        "the flush and no upload at release"
    );
    assert_eq!(w.read_all("doc").await, b"old");
}

/// Reads of one handle at scattered offsets (64 KiB each).
async fn scattered_reads(w: &World, name: &str, offsets: &[u64], len: u32) -> Vec<Vec<u8>> {
    let e = w.fs.lookup(ROOT, name).await.unwrap();
    let o = w.fs.open(e.ino, OpenFlags::default(), 0).await.unwrap();
    let mut out = Vec::new();
    for &at in offsets {
        out.push(w.fs.read(o.fh, at, len).await.unwrap().to_vec());
    }
    w.fs.release(o.fh).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reads_of_an_object_that_fits_the_cache_fetch_it_whole_once() {
    let w = world();
    let body = pattern(16 * MIB, 5);
    w.put("r", body.clone()).await;
    w.fs.lookup(ROOT, "r").await.unwrap();
    w.store.reset_counts();
    // Scattered offsets, never following each other.
    let offsets: Vec<u64> = (0..40u64)
        .map(|i| (i * 7_919 * 4096) % (15 * MIB as u64))
        .collect();
    let got = scattered_reads(&w, "r", &offsets[..6], 65536).await;
    for (at, b) in offsets.iter().zip(&got) {
        assert!(b[..] == body[*at as usize..*at as usize + 65536]);
    }
    // The background fetch of the rest: 8 MiB GETs, finishing on their own.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after_start = w.store.count("GetObject");
    assert!(
        after_start <= 6 + 2,
        "the demand reads plus two 8 MiB GETs for the rest: {after_start}"
    );
    let got = scattered_reads(&w, "r", &offsets[6..], 65536).await;
    for (at, b) in offsets[6..].iter().zip(&got) {
        assert!(b[..] == body[*at as usize..*at as usize + 65536]);
    }
    assert_eq!(
        w.store.count("GetObject"),
        after_start,
        "random reads after the whole object came in are served from memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reads_of_a_big_object_fetch_only_what_they_read() {
    // 16 MiB object, 8 MiB cache: it does not fit in half, so no whole-object fetch.
    let w = world_with(8 << 20);
    w.put("big", pattern(16 * MIB, 6)).await;
    w.fs.lookup(ROOT, "big").await.unwrap();
    w.store.reset_counts();
    let offsets: Vec<u64> = (0..20u64).map(|i| i * 800 * 1024).collect();
    scattered_reads(&w, "big", &offsets, 4096).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        w.store.count("GetObject"),
        20,
        "one 64 KiB block per sparse read, nothing more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_reads_that_come_back_to_a_region_fetch_all_of_it() {
    // 16 MiB object, 8 MiB cache (no whole-object fetch): random 4 KiB reads confined to two
    // 1 MiB regions, [4 MiB, 5 MiB) and [9 MiB, 10 MiB).
    let w = world_with(8 << 20);
    let body = pattern(16 * MIB, 7);
    w.put("big", body.clone()).await;
    w.fs.lookup(ROOT, "big").await.unwrap();
    w.store.reset_counts();
    let mut rng = 12345u64;
    let offsets: Vec<u64> = (0..60u64)
        .map(|i| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let region = if i % 2 == 0 { 4 } else { 9 };
            region * MIB as u64 + (rng >> 33) % (MIB as u64 - 4096)
        })
        .collect();
    let got = scattered_reads(&w, "big", &offsets, 4096).await;
    for (at, b) in offsets.iter().zip(&got) {
        assert!(b[..] == body[*at as usize..*at as usize + 4096]);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let gets = w.store.count("GetObject");
    // Block by block, 60 reads over 32 blocks would be about 27 GETs. Here each region costs
    // its first three reads' blocks (the third one first, for its latency) and one GET for the
    // rest of it.
    assert!(
        gets <= 2 * 4,
        "three reads of each region by block, then one GET for the rest of it: {gets}"
    );
    // And nothing outside the two regions was fetched: one more read elsewhere is a GET.
    scattered_reads(&w, "big", &[12 * MIB as u64], 4096).await;
    assert_eq!(w.store.count("GetObject"), gets + 1);
}

/// A world whose metadata TTL is `ttl`.
fn world_with_ttl(ttl: std::time::Duration) -> World {
    let w = world();
    let fs = CosFs::new(
        w.store.clone(),
        FsConfig {
            cache_dir: w._dirs.1.path().join("staging"),
            metadata_ttl: ttl,
            ..Default::default()
        },
    );
    World { fs, ..w }
}

/// Requests that ask COS whether a name exists.
fn name_requests(w: &World) -> u64 {
    w.store.count("HeadObject") + w.store.count("ListObjects")
}

async fn absent(w: &World, dir: u64, name: &str) -> bool {
    matches!(
        w.fs.lookup(dir, name).await,
        Err(cosfs::fs::error::FsError::NotFound)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_a_mount_knows_are_absent_cost_no_request() {
    let w = world();
    let write = OpenFlags {
        write: true,
        ..Default::default()
    };
    // A directory this mount made: its new files are created without asking COS about them.
    let d = w.fs.mkdir(ROOT, "made", 0o755, Owner::ROOT).await.unwrap();
    w.store.reset_counts();
    for i in 0..20 {
        let name = format!("f{i}");
        assert!(absent(&w, d.ino, &name).await);
        let (_, o) =
            w.fs.create(d.ino, &name, 0o644, Owner::ROOT, write, 0)
                .await
                .unwrap();
        w.fs.write(o.fh, 0, b"data").await.unwrap();
        w.fs.release(o.fh).await;
    }
    assert_eq!(name_requests(&w), 0, "{:?}", w.store.counts());
    assert_eq!(w.fs.lookup(d.ino, "f7").await.unwrap().attr.size, 4);
    // Unlinked, it is absent again, still without asking.
    w.fs.unlink(d.ino, "f7").await.unwrap();
    w.store.reset_counts();
    assert!(absent(&w, d.ino, "f7").await);
    assert_eq!(name_requests(&w), 0, "{:?}", w.store.counts());

    // A directory listed to its end: names it did not list are absent, listed ones are there.
    w.put("listed/a", b"1".to_vec()).await;
    w.put("listed/sub/b", b"2".to_vec()).await;
    let l = w.fs.lookup(ROOT, "listed").await.unwrap();
    let fh = w.fs.opendir(l.ino).unwrap();
    let mut offset = 0;
    loop {
        let page = w.fs.readdir(fh, offset, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        offset = last.offset;
    }
    w.fs.releasedir(fh);
    w.store.reset_counts();
    assert!(absent(&w, l.ino, "nope").await);
    assert!(w.fs.lookup(l.ino, "a").await.is_ok());
    assert!(w.fs.lookup(l.ino, "sub").await.is_ok());
    assert_eq!(name_requests(&w), 0, "{:?}", w.store.counts());

    // A listing read only in part tells nothing: a lookup there still asks.
    for i in 0..50 {
        w.put(&format!("partial/f{i:02}"), b"x".to_vec()).await;
    }
    let p = w.fs.lookup(ROOT, "partial").await.unwrap();
    let fh = w.fs.opendir(p.ino).unwrap();
    w.fs.readdir(fh, 0, 10).await.unwrap();
    w.fs.releasedir(fh);
    w.store.reset_counts();
    assert!(!absent(&w, p.ino, "f49").await, "not listed yet, but there");
    assert!(absent(&w, p.ino, "zz").await);
    assert!(name_requests(&w) >= 2, "{:?}", w.store.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_new_name_is_seen_once_the_ttl_passes() {
    let ttl = std::time::Duration::from_millis(300);
    let w = world_with_ttl(ttl);
    let d = w.fs.mkdir(ROOT, "d", 0o755, Owner::ROOT).await.unwrap();
    assert!(absent(&w, d.ino, "theirs").await);
    // Another client writes into the directory this mount made.
    w.put("d/theirs", b"hello".to_vec()).await;
    assert!(absent(&w, d.ino, "theirs").await, "within the TTL");
    tokio::time::sleep(ttl).await;
    assert_eq!(w.fs.lookup(d.ino, "theirs").await.unwrap().attr.size, 5);
}

/// Read the directory `ino` to its end, as `rm -r` does before removing its entries.
async fn list_to_end(w: &World, ino: u64) -> Vec<String> {
    let fh = w.fs.opendir(ino).unwrap();
    let (mut names, mut offset) = (Vec::new(), 0);
    loop {
        let page = w.fs.readdir(fh, offset, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        offset = last.offset;
        names.extend(
            page.into_iter()
                .map(|e| e.name)
                .filter(|n| n != "." && n != ".."),
        );
    }
    w.fs.releasedir(fh);
    names
}

async fn keys_under(w: &World, prefix: &str) -> Vec<String> {
    let req = cosfs::object::ListRequest {
        prefix: prefix.to_string(),
        max_keys: 1000,
        ..Default::default()
    };
    let page = w.store.list_objects(&req).await.unwrap();
    page.entries
        .into_iter()
        .map(|e| e.key.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_r_sends_its_deletes_in_batches() {
    let w = world();
    for i in 0..300 {
        w.put(&format!("tree/d{}/f{i:03}", i % 3), b"x".to_vec())
            .await;
    }
    // 2 ms a request, as a nearby COS: unlinks come faster than deletes are answered.
    w.store.set_faults(Faults {
        latency: std::time::Duration::from_millis(2),
        ..Default::default()
    });
    let tree = w.fs.lookup(ROOT, "tree").await.unwrap();
    for d in list_to_end(&w, tree.ino).await {
        let dir = w.fs.lookup(tree.ino, &d).await.unwrap();
        for f in list_to_end(&w, dir.ino).await {
            w.fs.unlink(dir.ino, &f).await.unwrap();
        }
        w.fs.rmdir(tree.ino, &d).await.unwrap();
    }
    w.fs.rmdir(ROOT, "tree").await.unwrap();
    w.fs.settle_deletes("").await.unwrap();
    let deletes = w.store.count("DeleteObject") + w.store.count("DeleteMultiple");
    assert!(
        deletes <= 30,
        "303 entries removed with {deletes} delete requests: {:?}",
        w.store.counts()
    );
    assert!(keys_under(&w, "tree/").await.is_empty());
    assert!(absent(&w, ROOT, "tree").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_fails_the_rmdir_and_the_file_stays() {
    let w = world_with_ttl(std::time::Duration::from_millis(300));
    w.put("keep/a", b"a".to_vec()).await;
    w.put("keep/b", b"b".to_vec()).await;
    let d = w.fs.lookup(ROOT, "keep").await.unwrap();
    list_to_end(&w, d.ino).await;
    w.store.set_faults(Faults {
        rate_503: 1.0,
        only: vec!["DeleteObject", "DeleteMultiple"],
        ..Default::default()
    });
    w.fs.unlink(d.ino, "a").await.unwrap();
    w.fs.unlink(d.ino, "b").await.unwrap();
    assert!(absent(&w, d.ino, "a").await, "gone from this mount at once");
    let err = w.fs.rmdir(ROOT, "keep").await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    w.store.set_faults(Faults::default());
    // (The implicit directory got a marker when its last file went, so it stays.)
    assert_eq!(keys_under(&w, "keep/").await, ["keep/", "keep/a", "keep/b"]);
    // Once the TTL has passed the mount shows what COS holds again.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let d = w.fs.lookup(ROOT, "keep").await.unwrap();
    assert_eq!(list_to_end(&w, d.ino).await, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_made_again_right_after_its_unlink_keeps_the_new_object() {
    let w = world();
    w.put("again", b"old".to_vec()).await;
    w.store.set_faults(Faults {
        latency: std::time::Duration::from_millis(20),
        only: vec!["DeleteObject", "DeleteMultiple"],
        ..Default::default()
    });
    w.fs.lookup(ROOT, "again").await.unwrap();
    w.fs.unlink(ROOT, "again").await.unwrap();
    let write = OpenFlags {
        write: true,
        ..Default::default()
    };
    let pid = std::process::id();
    let (_, o) =
        w.fs.create(ROOT, "again", 0o644, Owner::ROOT, write, pid)
            .await
            .unwrap();
    w.fs.write(o.fh, 0, b"new").await.unwrap();
    w.fs.flush(o.fh, pid).await.unwrap();
    w.fs.release(o.fh).await;
    w.fs.settle_deletes("").await.unwrap();
    w.store.set_faults(Faults::default());
    assert_eq!(keys_under(&w, "again").await, ["again"]);
    assert_eq!(w.read_all("again").await, b"new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_changes_of_a_directory_made_here_send_no_head() {
    use cosfs::fs::files::SetAttr;
    let w = world();
    let d = w.fs.mkdir(ROOT, "x", 0o700, Owner::ROOT).await.unwrap();
    w.store.reset_counts();
    // What tar does to a directory it extracted: utimens, chown, chmod.
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    let changes = [
        SetAttr {
            mtime: Some(mtime),
            ..Default::default()
        },
        SetAttr {
            uid: Some(7),
            gid: Some(8),
            ..Default::default()
        },
        SetAttr {
            mode: Some(0o755),
            ..Default::default()
        },
    ];
    for set in changes {
        w.fs.setattr(d.ino, None, set).await.unwrap();
    }
    assert_eq!(w.store.count("HeadObject"), 0, "{:?}", w.store.counts());
    assert_eq!(w.store.count("PutObject"), 3, "{:?}", w.store.counts());
    // And the marker holds all three.
    let m = w.store.head_object("x/").await.unwrap();
    assert_eq!(m.user_meta["mode"], (libc::S_IFDIR | 0o755).to_string());
    assert_eq!(m.user_meta["uid"], "7");
    assert_eq!(m.user_meta["gid"], "8");
    assert_eq!(m.user_meta["mtime"], "1500000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_directory_past_its_ttl_is_listed_once_not_asked_name_by_name() {
    let ttl = std::time::Duration::from_millis(300);
    let w = world_with_ttl(ttl);
    let write = OpenFlags {
        write: true,
        ..Default::default()
    };
    let d = w.fs.mkdir(ROOT, "fill", 0o755, Owner::ROOT).await.unwrap();
    for i in 0..5 {
        let (_, o) =
            w.fs.create(d.ino, &format!("f{i}"), 0o644, Owner::ROOT, write, 0)
                .await
                .unwrap();
        w.fs.write(o.fh, 0, b"data").await.unwrap();
        w.fs.release(o.fh).await;
    }
    tokio::time::sleep(ttl + std::time::Duration::from_millis(50)).await;
    // Another client adds a name meanwhile.
    w.put("fill/theirs", b"t".to_vec()).await;
    w.store.reset_counts();
    for i in 5..25 {
        assert!(absent(&w, d.ino, &format!("f{i}")).await);
    }
    assert_eq!(w.store.count("ListObjects"), 1, "{:?}", w.store.counts());
    assert_eq!(w.store.count("HeadObject"), 0, "{:?}", w.store.counts());
    // The names the LIST found are there, theirs included.
    assert_eq!(w.fs.lookup(d.ino, "theirs").await.unwrap().attr.size, 1);
    assert_eq!(w.fs.lookup(d.ino, "f3").await.unwrap().attr.size, 4);
}
