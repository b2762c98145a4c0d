//! COS keys are at most 850 bytes. The fs core refuses every path whose key would be longer
//! with ENAMETOOLONG before it sends a request: lookup, create, mkdir (whose marker is
//! `key/`), symlink, mknod, link and rename, including a directory rename that would push a key below
//! it over the limit. Checked against `cosfs serve` without a mount, counting requests.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Env, Mode};
use cosfs::cos::CosClient;
use cosfs::fs::error::FsError;
use cosfs::fs::files::{OpenFlags, Owner};
use cosfs::fs::{CosFs, FsConfig};
use cosfs::object::{ObjectStore, PutOptions};

const ROOT: u64 = 1;

fn fs(env: &Env, dir: &std::path::Path) -> CosFs<CosClient> {
    let client = common::client_with(
        common::client_config(&env.server.endpoint()),
        common::SECRET_KEY,
    );
    CosFs::new(
        Arc::new(client),
        FsConfig {
            cache_dir: dir.join("staging"),
            ..Default::default()
        },
    )
}

fn too_long<T: std::fmt::Debug>(r: Result<T, FsError>) {
    match r {
        Err(FsError::NameTooLong) => {}
        other => panic!("expected ENAMETOOLONG, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_over_the_key_limit_fail_before_any_request() {
    let env = Env::new(Mode::Signed).await;
    // A directory 600 bytes deep ("aaa…/" three times) with a file and a subdirectory.
    let deep = format!("{0}/{0}/{0}/", "a".repeat(199));
    assert_eq!(deep.len(), 600);
    let put = |key: String| {
        let c = &env.client;
        async move {
            c.put_object(&key, Bytes::from_static(b"x"), &PutOptions::default())
                .await
                .unwrap()
        }
    };
    put(format!("{deep}f")).await;
    put(format!("{deep}{}/g", "s".repeat(200))).await; // key of 803 bytes
    let scratch = tempfile::tempdir().unwrap();
    let fs = fs(&env, scratch.path());
    let mut dir = ROOT;
    for _ in 0..3 {
        dir = fs.lookup(dir, &"a".repeat(199)).await.unwrap().ino;
    }

    env.server.stats.reset();
    // 600 + 250 = 850: fits as a file; as a directory its marker `…/` is 851.
    let fits = "n".repeat(250);
    let over = "n".repeat(251);
    too_long(fs.lookup(dir, &over).await);
    let write = OpenFlags {
        write: true,
        ..Default::default()
    };
    too_long(fs.create(dir, &over, 0o644, Owner::ROOT, write, 0).await);
    too_long(fs.mkdir(dir, &fits, 0o755, Owner::ROOT).await);
    too_long(fs.symlink(dir, &over, b"target", Owner::ROOT).await);
    too_long(
        fs.mknod(dir, &over, libc::S_IFIFO | 0o644, 0, Owner::ROOT)
            .await,
    );
    too_long(
        fs.mknod(dir, &over, libc::S_IFREG | 0o644, 0, Owner::ROOT)
            .await,
    );
    let f = fs.lookup(dir, "f").await; // one request pair, counted below
    assert_eq!(env.server.stats.total(), 2, "only the lookup of f was sent");
    let f = f.unwrap();
    too_long(fs.link(f.ino, dir, &over));
    too_long(fs.rename(dir, "f", dir, &over, 0).await);
    assert_eq!(
        env.server.stats.total(),
        2,
        "nothing else reached the server"
    );

    // A file of exactly 850 bytes of key is fine.
    let (_, o) = fs
        .create(dir, &fits, 0o644, Owner::ROOT, write, 0)
        .await
        .unwrap();
    fs.write(o.fh, 0, b"edge").await.unwrap();
    fs.fsync(o.fh).await.unwrap();
    fs.release(o.fh).await;
    let key = format!("{deep}{fits}");
    assert_eq!(key.len(), 850);
    assert_eq!(common::get_all(&env.client, &key).await, &b"edge"[..]);

    // Renaming the deep directory to a longer name would push "…/sss…/g" (803 bytes) over the
    // limit: refused after listing, before any copy; the source is untouched.
    let parent = fs.lookup(ROOT, &"a".repeat(199)).await.unwrap().ino;
    let parent = fs.lookup(parent, &"a".repeat(199)).await.unwrap().ino;
    env.server.stats.reset();
    too_long(
        fs.rename(parent, &"a".repeat(199), parent, &"b".repeat(249), 0)
            .await,
    );
    assert_eq!(env.server.stats.get("CopyObject"), 0);
    assert_eq!(env.server.stats.get("PutObject"), 0);
    assert_eq!(
        common::get_all(&env.client, &format!("{deep}f")).await,
        &b"x"[..]
    );
}

#[test]
fn errno_is_enametoolong() {
    assert_eq!(FsError::NameTooLong.errno(), libc::ENAMETOOLONG);
}
