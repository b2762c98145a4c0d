//! `cosfs serve` as a process: port-0 endpoint printing, durability across restarts, and crash
//! safety (kill -9 in the middle of an upload leaves the previous object intact).

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::serve::ServeProcess;
use common::{client_config, get_all, pattern, BUCKET};
use cosfs::cos::*;
use cosfs::object::*;

/// An anonymous server on a free port, with `extra` flags.
fn start(root: &std::path::Path, extra: &[&str]) -> ServeProcess {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--anonymous",
        "--log-level",
        "warn",
    ];
    args.extend_from_slice(extra);
    let srv = ServeProcess::start(root, &args);
    assert!(
        !srv.endpoint.ends_with(":0"),
        "port 0 must be resolved: {}",
        srv.endpoint
    );
    srv
}

fn client(srv: &ServeProcess) -> CosClient {
    CosClient::new(client_config(&srv.endpoint), None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_uploads_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = pattern(300_000, 1);
    let upload_id;
    {
        let srv = start(dir.path(), &[]);
        let c = client(&srv);
        let mut opts = PutOptions::default();
        opts.user_meta.insert("mode".into(), "33188".into());
        c.put_object("dir/obj", Bytes::from(v1.clone()), &opts)
            .await
            .unwrap();
        upload_id = c
            .initiate_multipart("pending", &PutOptions::default())
            .await
            .unwrap();
        c.upload_part(
            &Upload::new("pending", &upload_id),
            1,
            Bytes::from(pattern(1 << 20, 2)),
        )
        .await
        .unwrap();
    }
    let srv = start(dir.path(), &[]);
    let c = client(&srv);
    assert_eq!(get_all(&c, "dir/obj").await, v1);
    assert_eq!(
        c.head_object("dir/obj")
            .await
            .unwrap()
            .user_meta
            .get("mode")
            .unwrap(),
        "33188"
    );
    let ups = c
        .list_multipart_uploads(&ListUploadsRequest::under(""))
        .await
        .unwrap();
    assert_eq!(ups.uploads.len(), 1);
    assert_eq!(ups.uploads[0].upload_id, upload_id);
    let parts = c
        .list_parts(&Upload::new("pending", &upload_id), None)
        .await
        .unwrap();
    assert_eq!(parts.parts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_leaves_previous_object_intact() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = pattern(64 * 1024, 11);
    // 1 MiB/s: the 4 MiB replacement is still arriving when the server is killed.
    let mut srv = start(dir.path(), &["--fault-bandwidth", "1048576"]);
    let c = client(&srv);
    c.put_object("victim", Bytes::from(v1.clone()), &PutOptions::default())
        .await
        .unwrap();
    let c2 = client(&srv);
    let writer = tokio::spawn(async move {
        c2.put_object(
            "victim",
            Bytes::from(pattern(4 << 20, 12)),
            &PutOptions::default(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    srv.kill9();
    assert!(
        writer.await.unwrap().is_err(),
        "the interrupted upload must fail"
    );

    let srv = start(dir.path(), &[]);
    let c = client(&srv);
    assert_eq!(get_all(&c, "victim").await, v1, "previous version intact");
    // The half-written body was cleaned up at start: tmp/ is empty, data/ holds only v1.
    let bucket_dir = dir.path().join(BUCKET);
    assert_eq!(
        std::fs::read_dir(bucket_dir.join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(bucket_dir.join("data")).unwrap().count(),
        1
    );
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .args([
            "serve",
            "--root",
            "/tmp/never-used-cosfs",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--anonymous"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .args([
            "serve",
            "--root",
            "/tmp/never-used-cosfs",
            "--anonymous",
            "--fault-503-rate",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a fraction from 0 to 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwd_file_keys_are_accepted_and_loose_permissions_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd-cosfs");
    std::fs::write(&pw, "# keys\nother-1:AKIDone:keyone\nAKIDtwo:keytwo\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cosfs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("store"))
        .arg("--passwd-file")
        .arg(&pw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pw_arg = pw.to_str().unwrap();
    let srv = ServeProcess::start(
        &dir.path().join("store"),
        &["--listen", "127.0.0.1:0", "--passwd-file", pw_arg],
    );
    for (id, key) in [("AKIDone", "keyone"), ("AKIDtwo", "keytwo")] {
        let c = CosClient::new(
            client_config(&srv.endpoint),
            Some(std::sync::Arc::new(StaticProvider(Credentials::new(
                id, key,
            )))),
        )
        .unwrap();
        c.put_object(id, Bytes::from_static(b"k"), &PutOptions::default())
            .await
            .unwrap();
    }
    let wrong = CosClient::new(
        client_config(&srv.endpoint),
        Some(std::sync::Arc::new(StaticProvider(Credentials::new(
            "AKIDone", "keytwo",
        )))),
    )
    .unwrap();
    let err = wrong
        .list_objects(&ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::BadCredentials), "{err}");
}
