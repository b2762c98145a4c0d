//! fs core lookup over the real client and `cosfs serve`: files, marker and implicit
//! directories, directory-shadows-file, cosfs metadata, names that cannot exist, and what it costs
//! in requests.

mod common;

use bytes::Bytes;
use common::{Env, Mode};
use cosfs::fs::attr::{AttrDefaults, AttrSource, FileKind};
use cosfs::fs::error::FsError;
use cosfs::fs::lookup::lookup;
use cosfs::object::{ObjectStore, PutOptions};

const D: AttrDefaults = AttrDefaults {
    uid: 1234,
    gid: 5678,
    file_mode: 0o644,
    dir_mode: 0o755,
};

async fn put(env: &Env, key: &str, body: &'static [u8], meta: &[(&str, &str)]) {
    let mut opts = PutOptions::default();
    for (k, v) in meta {
        opts.user_meta.insert(k.to_string(), v.to_string());
    }
    env.client
        .put_object(key, Bytes::from_static(body), &opts)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_maps_objects_to_files_and_directories() {
    let env = Env::new(Mode::Signed).await;
    put(&env, "m/plain.txt", b"hello", &[]).await;
    put(
        &env,
        "m/cosfs-file",
        b"x",
        &[
            ("mode", "33261"),
            ("uid", "0"),
            ("gid", "0"),
            ("mtime", "1700000000"),
        ],
    )
    .await;
    put(&env, "m/link", b"plain.txt", &[("mode", "41471")]).await; // S_IFLNK | 0777
    put(&env, "m/marker/", b"", &[("mode", "16832")]).await; // S_IFDIR | 0700
    put(&env, "m/implicit/deep/file", b"1", &[]).await;
    put(&env, "m/both", b"file", &[]).await;
    put(&env, "m/both/child", b"c", &[]).await;
    let c = &env.client;

    env.server.stats.reset();
    let f = lookup(c, "m/", "plain.txt", &D).await.unwrap();
    assert_eq!(
        (f.kind, f.size, f.st_mode(), f.uid, f.gid),
        (FileKind::File, 5, 0o100644, 1234, 5678)
    );
    assert_eq!(f.source, AttrSource::Head);
    // A file costs exactly one HEAD and one LIST.
    assert_eq!(env.server.stats.get("HeadObject"), 1);
    assert_eq!(env.server.stats.get("ListObjects"), 1);

    let f = lookup(c, "m/", "cosfs-file", &D).await.unwrap();
    assert_eq!((f.st_mode(), f.uid, f.gid), (0o100755, 0, 0));
    assert_eq!(
        f.mtime,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
    );

    let l = lookup(c, "m/", "link", &D).await.unwrap();
    assert_eq!(l.kind, FileKind::Symlink);
    assert_eq!(l.size, "plain.txt".len() as u64);

    let d = lookup(c, "m/", "marker", &D).await.unwrap();
    assert_eq!((d.kind, d.st_mode()), (FileKind::Directory, 0o040700));

    let d = lookup(c, "m/", "implicit", &D).await.unwrap();
    assert_eq!(
        (d.kind, d.st_mode(), d.source),
        (FileKind::Directory, 0o040755, AttrSource::Implicit)
    );
    let d = lookup(c, "m/implicit/", "deep", &D).await.unwrap();
    assert_eq!(d.kind, FileKind::Directory);

    // A name that is both a file and a directory is the directory.
    let d = lookup(c, "m/", "both", &D).await.unwrap();
    assert_eq!(d.kind, FileKind::Directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_errors_are_the_right_errno() {
    let env = Env::new(Mode::Signed).await;
    let c = &env.client;
    let err = lookup(c, "", "missing", &D).await.unwrap_err();
    assert!(matches!(err, FsError::NotFound));
    assert_eq!(err.errno(), libc::ENOENT);

    env.server.stats.reset();
    let long = "n".repeat(256);
    let err = lookup(c, "", &long, &D).await.unwrap_err();
    assert_eq!(err.errno(), libc::ENAMETOOLONG);
    assert_eq!(
        env.server.stats.total(),
        0,
        "no request for a name that cannot exist"
    );

    // A server that keeps failing is EIO, not ENOENT.
    env.server.faults.update(|f| f.rate_500 = 1.0);
    let err = lookup(c, "", "anything", &D).await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    assert!(!err.is_routine());
}
