//! Real mounts with `--local-store`: the bucket is served from a store directory inside the
//! mount process (no server, no credentials, no network), and what it wrote is what
//! `cosfs serve --root` then serves, and the other way round.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::mount::Mounted;
use common::{
    client_config, client_with, get_all, pattern, start_server, Mode, BUCKET, SECRET_KEY,
};
use cosfs::object::{ObjectStore, PutOptions};

#[test]
fn a_local_store_mount_round_trips_with_cosfs_serve() {
    let store = tempfile::tempdir().unwrap();
    let big = pattern(20 << 20, 9);
    {
        let m = Mounted::start_local(store.path(), BUCKET, &[]);
        std::fs::create_dir(m.p("docs")).unwrap();
        std::fs::write(m.p("docs/hello.txt"), "hello\n").unwrap();
        std::fs::write(m.p("big.bin"), &big).unwrap();
        std::os::unix::fs::symlink("docs/hello.txt", m.p("link")).unwrap();
        std::fs::rename(m.p("docs/hello.txt"), m.p("docs/hi.txt")).unwrap();
        assert_eq!(
            std::fs::read_link(m.p("link")).unwrap().to_str(),
            Some("docs/hello.txt")
        );
        assert!(std::fs::read(m.p("big.bin")).unwrap() == big);
        let names: Vec<String> = std::fs::read_dir(m.path.clone())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        // The directory is this mount's while it runs: a second one is refused, clearly.
        let other = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cosfs"))
            .arg("mount")
            .arg(BUCKET)
            .arg(other.path())
            .arg("--local-store")
            .arg(store.path())
            .args(["-f", "--cache-dir"])
            .arg(other.path().join("cache"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use by another cosfs process"), "{err}");
    }

    // cosfs serve on the same directory serves what the mount wrote ...
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = start_server(store.path(), Mode::Signed).await;
        let client = client_with(client_config(&server.endpoint()), SECRET_KEY);
        assert_eq!(&get_all(&client, "docs/hi.txt").await[..], b"hello\n");
        assert!(get_all(&client, "big.bin").await == big);
        let link = client.head_object("link").await.unwrap();
        assert_eq!(
            link.user_meta["mode"].parse::<u32>().unwrap() & 0o170000,
            0o120000
        );
        // ... and takes writes the next mount shows.
        client
            .put_object("from-serve.txt", "served\n".into(), &PutOptions::default())
            .await
            .unwrap();
    });
    drop(rt);
    let m = Mounted::start_local(store.path(), BUCKET, &[]);
    assert_eq!(
        std::fs::read_to_string(m.p("from-serve.txt")).unwrap(),
        "served\n"
    );
    assert_eq!(
        std::fs::symlink_metadata(m.p("link")).unwrap().mode() & 0o170000,
        0o120000
    );
}
