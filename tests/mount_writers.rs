//! Not alone on the key: other writers of the same object, answers COS carried out but never
//! sent, a server restarted mid-upload, and a mount killed with uploads under way. Each case
//! is checked through the client: the bytes the object holds, its headers, the uploads left.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mount::{force_unmount, mount_command, no_uploads_left, Backend, Mounted};
use common::serve::ServeProcess;
use common::{get_all, pattern, BUCKET};
use cosfs::object::{ListUploadsRequest, ObjectStore};
use cosfs::server::FaultConfig;

const MIB: usize = 1 << 20;

fn dd(src: &Path, dst: &Path) -> Child {
    Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", dst.display()))
        .args(["bs=1M", "conv=fsync", "status=none"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(c: Child) -> (bool, String) {
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Wait up to `secs` for `cond`.
fn eventually(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_mounts_writing_one_key_leave_one_writers_whole_object_and_a_third_stands() {
    let b = Backend::start();
    // Small parts, so that every file is a multipart upload of a few parts.
    let args = ["--part-size", "1M"];
    let m1 = Mounted::start(&b, &args);
    let m2 = Mounted::start(&b, &args);
    let local = tempfile::tempdir().unwrap();
    let len = 3 * MIB + 12345;
    for round in 0..8u64 {
        let key = format!("f{round}");
        let existing = round % 2 == 1;
        if existing {
            b.put(&key, pattern(2 * MIB, 1000 + round));
        }
        let (a, bb) = (pattern(len, 2 * round), pattern(len, 2 * round + 1));
        let (pa, pb) = (local.path().join("a"), local.path().join("b"));
        std::fs::write(&pa, &a).unwrap();
        std::fs::write(&pb, &bb).unwrap();
        b.reset_counts();
        let (d1, d2) = (dd(&pa, &m1.p(&key)), dd(&pb, &m2.p(&key)));
        let (r1, r2) = (finish(d1), finish(d2));
        // Both uploads land, one after the other: the last Complete wins, and neither writer
        // was told its data was lost (it was not: it was the object until the other landed).
        assert!(r1.0 && r2.0, "round {round}: {r1:?} {r2:?}");
        let got = b.block_on(get_all(&b.client, &key));
        assert!(
            got[..] == a[..] || got[..] == bb[..],
            "round {round} (existing: {existing}): the object is {} bytes, neither writer's",
            got.len()
        );
        let h = b.block_on(b.client.head_object(&key)).unwrap();
        assert!(
            h.user_meta.contains_key("mode"),
            "the headers came with the upload: {h:?}"
        );
        assert_eq!(
            b.count("CopyObject") + b.count("PutObject"),
            0,
            "round {round}: a multipart write needs no copy and no PUT after its Complete"
        );
        // A third client writes once both closes returned: nothing of the mounts' may follow.
        let c = pattern(1000, 3000 + round);
        b.put(&key, c.clone());
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            b.block_on(get_all(&b.client, &key))[..],
            c[..],
            "round {round}: the third writer's object was overwritten"
        );
    }
    no_uploads_left(&b);
}

#[test]
fn lost_answers_to_initiate_and_complete_cost_nothing() {
    let b = Backend::start();
    let m = Mounted::start(&b, &["--part-size", "1M"]);
    let local = tempfile::tempdir().unwrap();
    // Initiate and Complete are the POSTs of a multipart upload: half of them are carried
    // out and their answer cut off.
    b.server.faults.set(FaultConfig {
        lose_answer_rate: 0.5,
        methods: vec!["POST".into()],
        ..Default::default()
    });
    let mut lost = 0;
    for i in 0..8u64 {
        let data = pattern(2 * MIB + 777, 50 + i);
        let src = local.path().join(format!("s{i}"));
        std::fs::write(&src, &data).unwrap();
        let before = b.count("InjectedLostAnswer");
        let out = Command::new("cp")
            .arg(&src)
            .arg(m.p(&format!("f{i}")))
            .output()
            .unwrap();
        lost += b.count("InjectedLostAnswer") - before;
        assert!(
            out.status.success(),
            "file {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            b.block_on(get_all(&b.client, &format!("f{i}")))[..],
            data[..]
        );
    }
    b.server.faults.set(FaultConfig::default());
    assert!(lost >= 4, "the faults were injected: {lost}");
    no_uploads_left(&b);
}

/// `cosfs serve` as a process on a port of our choosing, so that it can be restarted there.
fn serve_on(root: &Path, port: u16) -> ServeProcess {
    let listen = format!("127.0.0.1:{port}");
    ServeProcess::start(
        root,
        &[
            "--listen",
            &listen,
            "--secret-id",
            common::SECRET_ID,
            "--secret-key",
            common::SECRET_KEY,
            "--log-level",
            "error",
        ],
    )
}

#[test]
fn a_server_gone_for_ten_seconds_mid_upload_delays_it_without_failing_it() {
    let root = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut server = serve_on(root.path(), port);
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut cmd = mount_command(BUCKET, &mnt, &endpoint);
    let mut mount = cmd
        .args(["-f", "--part-size", "1M", "--cache-dir"])
        .arg(tmp.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = common::mount::Unmounter::new(&mnt);
    let mut line = String::new();
    BufReader::new(mount.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("mounted on"), "{line}");
    let data = pattern(40 * MIB, 9);
    let src = tmp.path().join("src");
    std::fs::write(&src, &data).unwrap();
    let writer = dd(&src, &mnt.join("big"));
    std::thread::sleep(Duration::from_millis(700));
    // The server dies mid-upload and comes back 10 s later, on the same port and store.
    drop(server);
    std::thread::sleep(Duration::from_secs(10));
    server = serve_on(root.path(), port);
    let (ok, err) = finish(writer);
    assert!(ok, "the upload failed: {err}");
    let client = common::client_with(common::client_config(&endpoint), common::SECRET_KEY);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(get_all(&client, "big"))[..], data[..]);
    let left = rt
        .block_on(client.list_multipart_uploads(&ListUploadsRequest::under("")))
        .unwrap();
    assert!(left.uploads.is_empty(), "{:?}", left.uploads);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(mount.id() as i32, libc::SIGTERM) };
    let _ = mount.wait();
    drop(server);
}

#[test]
fn the_uploads_a_killed_mount_left_are_aborted_by_the_next_mount() {
    let b = Backend::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().join("c");
    let cache_arg = cache_arg.to_str().unwrap();
    b.put("big", pattern(1000, 1));
    let m = Mounted::start(&b, &["--part-size", "1M", "--cache-dir", cache_arg]);
    // Slow parts, so the writes are mid-upload when the mount dies.
    b.server.faults.set(FaultConfig {
        latency_ms: 300,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("s");
    std::fs::write(&src, pattern(30 * MIB, 2)).unwrap();
    let writers: Vec<Child> = ["big", "new"].iter().map(|k| dd(&src, &m.p(k))).collect();
    eventually(20, "both uploads under way", || {
        b.block_on(
            b.client
                .list_multipart_uploads(&ListUploadsRequest::under("")),
        )
        .unwrap()
        .uploads
        .len()
            >= 2
    });
    // SAFETY: signalling the mount process.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGKILL) };
    for w in writers {
        assert!(!finish(w).0, "a writer of a killed mount cannot succeed");
    }
    force_unmount(&m.path);
    b.server.faults.set(FaultConfig::default());
    assert_eq!(
        b.block_on(
            b.client
                .list_multipart_uploads(&ListUploadsRequest::under(""))
        )
        .unwrap()
        .uploads
        .len(),
        2,
        "the killed mount left its uploads"
    );
    drop(m);
    // The next mount of the bucket with the same cache directory aborts them.
    let _m2 = Mounted::start(&b, &["--cache-dir", cache_arg]);
    no_uploads_left(&b);
    assert_eq!(
        b.block_on(get_all(&b.client, "big"))[..],
        pattern(1000, 1)[..]
    );
    assert!(b.block_on(b.client.head_object("new")).is_err());
}

fn keys_under(b: &Backend, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = b
            .block_on(b.client.list_objects(&cosfs::object::ListRequest {
                prefix: prefix.into(),
                marker: marker.clone(),
                ..Default::default()
            }))
            .unwrap();
        out.extend(page.entries.into_iter().map(|e| e.key));
        if !page.is_truncated {
            return out;
        }
        marker = page.next_marker;
    }
}

/// A rename journal as a mount of another, dead process would have left it.
fn dead_journal(b: &Backend, from: &str, to: &str, state: &str) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let body = format!(
        r#"{{"from":"{from}","to":"{to}","state":"{state}","owner":"{}/4194000/1","started":1}}"#,
        boot.trim()
    );
    b.put(".cosfs/renames/00000000deadbeef", body);
}

#[test]
fn a_directory_rename_cut_by_kill_9_is_undone_or_finished_by_the_next_mount_or_check() {
    let b = Backend::start();
    let n = 300;
    let body = |i: usize| format!("file {i}\n");
    b.block_on(async {
        let puts = (0..n).map(|i| {
            let c = b.client.clone();
            async move {
                c.put_object(&format!("src/f{i:04}"), body(i).into(), &Default::default())
                    .await
                    .unwrap()
            }
        });
        futures_util::future::join_all(puts).await;
    });
    let m = Mounted::start(&b, &[]);
    // Slow copies, so that the mount dies with some made and others not.
    b.server.faults.set(FaultConfig {
        latency_ms: 40,
        methods: vec!["PUT".into()],
        ..Default::default()
    });
    let mut mv = Command::new("mv")
        .arg(m.p("src"))
        .arg(m.p("dst"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(30, "copies under way", || {
        keys_under(&b, "dst/").len() >= 30
    });
    // SAFETY: signalling the mount process.
    unsafe { libc::kill(m.pid().unwrap() as i32, libc::SIGKILL) };
    let _ = mv.wait();
    force_unmount(&m.path);
    drop(m);
    b.server.faults.set(FaultConfig::default());
    let copied = keys_under(&b, "dst/").len();
    assert!(copied > 0 && copied < n, "cut midway: {copied} copies");
    assert_eq!(
        keys_under(&b, ".cosfs/renames/").len(),
        1,
        "the journal is there"
    );

    // The next mount undoes it before it answers: the source is whole, the copies are gone.
    let m = Mounted::start(&b, &[]);
    assert_eq!(keys_under(&b, "dst/"), Vec::<String>::new());
    assert_eq!(keys_under(&b, "src/").len(), n);
    assert!(keys_under(&b, ".cosfs/").is_empty(), "the journal went");
    let listed = std::fs::read_dir(m.p("src")).unwrap().count();
    assert_eq!(listed, n);
    for i in [0, n / 2, n - 1] {
        assert_eq!(
            std::fs::read_to_string(m.p(&format!("src/f{i:04}"))).unwrap(),
            body(i)
        );
    }
    drop(m);

    // Cut while deleting the sources: all copies landed, some sources are gone. Finished.
    b.block_on(async {
        for i in 0..n {
            let (from, to) = (format!("src/f{i:04}"), format!("dst/f{i:04}"));
            b.client
                .copy_object(&from, &to, &Default::default())
                .await
                .unwrap();
            if i % 3 == 0 {
                b.client.delete_object(&from).await.unwrap();
            }
        }
    });
    dead_journal(&b, "src/", "dst/", "deleting");
    let m = Mounted::start(&b, &[]);
    assert!(keys_under(&b, "src/").is_empty());
    assert_eq!(keys_under(&b, "dst/").len(), n);
    assert!(keys_under(&b, ".cosfs/").is_empty());
    assert_eq!(std::fs::read_dir(m.p("dst")).unwrap().count(), n);
    drop(m);

    // Without a mount: `cosfs check` reports it, `cosfs check --repair` undoes it.
    b.block_on(async {
        for i in 0..10 {
            let (from, to) = (format!("dst/f{i:04}"), format!("again/f{i:04}"));
            b.client
                .copy_object(&from, &to, &Default::default())
                .await
                .unwrap();
        }
    });
    dead_journal(&b, "dst/", "again/", "copying");
    let check = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosfs"));
        cmd.args(["check", BUCKET, "--endpoint", &b.endpoint(), "--read-only"])
            .args(extra)
            .env_clear()
            .env("COS_SECRET_ID", common::SECRET_ID)
            .env("COS_SECRET_KEY", common::SECRET_KEY);
        let out = common::run_within(&mut cmd, 60);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = check(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("was interrupted (copying)") && out.contains("--repair"),
        "{out}"
    );
    assert_eq!(keys_under(&b, "again/").len(), 10, "only reported");
    let (code, out) = check(&["--repair"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("undid the interrupted rename of dst/ to again/: removed 10 copies"),
        "{out}"
    );
    assert!(keys_under(&b, "again/").is_empty());
    assert_eq!(keys_under(&b, "dst/").len(), n);
    assert!(keys_under(&b, ".cosfs/").is_empty());
}

#[test]
fn a_writer_killed_midway_publishes_nothing_and_one_that_exits_publishes_all() {
    let b = Backend::start();
    let m = Mounted::start(&b, &["--part-size", "1M"]);
    b.put("small", "OLD CONTENT");
    let big = pattern(3 * MIB, 5);
    b.put_big("big", &big);
    std::thread::sleep(Duration::from_millis(1200));
    // Writers that write part of a file, then wait to be killed (small, multipart, new).
    let writer = |key: &str, len: usize| {
        Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import os,sys,time\nfd=os.open({:?},os.O_WRONLY|os.O_CREAT|os.O_TRUNC)\n\
                 os.write(fd,b'n'*{len})\nprint('written',flush=True)\ntime.sleep(60)",
                m.p(key).to_str().unwrap()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for (key, len, signal) in [
        ("small", 5, libc::SIGKILL),
        ("big", 2 * MIB + 3, libc::SIGKILL),
        ("new", 100, libc::SIGTERM),
    ] {
        let mut w = writer(key, len);
        let mut line = String::new();
        BufReader::new(w.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "written");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(w.id() as i32, signal) };
        let _ = w.wait();
    }
    std::thread::sleep(Duration::from_millis(1500)); // the releases, and past the TTL
    assert_eq!(
        b.block_on(get_all(&b.client, "small"))[..],
        b"OLD CONTENT"[..]
    );
    assert_eq!(b.block_on(get_all(&b.client, "big"))[..], big[..]);
    assert!(b.block_on(b.client.head_object("new")).is_err());
    assert_eq!(std::fs::read(m.p("small")).unwrap(), b"OLD CONTENT");
    assert!(
        !m.p("new").exists(),
        "a killed writer's new file never reached COS"
    );
    no_uploads_left(&b);
    // A program that exits without closing its file (the kernel closes it) publishes it all.
    let st = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import os\nfd=os.open({:?},os.O_WRONLY|os.O_TRUNC)\nos.write(fd,b'NEW')\nos._exit(0)",
            m.p("small").to_str().unwrap()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    eventually(10, "the exited writer's file published", || {
        b.block_on(get_all(&b.client, "small"))[..] == b"NEW"[..]
    });
}
