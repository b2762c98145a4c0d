//! A server that never answers, or trickles: every FUSE operation comes back within its
//! documented bound (README, "When COS hangs") with an errno, and nothing is lost. The mounts
//! use a short `--op-timeout` so the bounds are seconds.

mod common;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::mount::{close, no_uploads_left, Backend, Mounted};
use common::{get_all, pattern};
use cosfs::server::FaultConfig;

const MIB: usize = 1024 * 1024;

fn hang(b: &Backend, methods: &[&str]) {
    b.server.faults.set(FaultConfig {
        hang_rate: 1.0,
        methods: methods.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    });
}

fn heal(b: &Backend) {
    b.server.faults.set(FaultConfig::default());
}

/// Run `op`, returning its errno and how long it took.
fn timed<T: std::fmt::Debug>(op: impl FnOnce() -> std::io::Result<T>) -> (i32, Duration) {
    let t = Instant::now();
    let r = op();
    let took = t.elapsed();
    match r {
        Ok(v) => panic!("expected an error, got {v:?} after {took:?}"),
        Err(e) => (e.raw_os_error().unwrap_or(0), took),
    }
}

fn within(what: &str, took: Duration, bound: Duration) {
    assert!(took <= bound, "{what} took {took:?}, bound {bound:?}");
}

#[test]
fn read_only_operations_time_out_at_the_op_timeout() {
    let b = Backend::start();
    b.put("f.bin", pattern(MIB, 1));
    b.put("d/x", "x");
    b.put("seen/y", "y");
    // 2 s per operation; attributes trusted for 1 s so getattr and open must ask again.
    let m = Mounted::start(&b, &["--op-timeout", "2", "--metadata-ttl", "1"]);
    let bound = Duration::from_millis(2900);
    let f = std::fs::File::open(m.p("f.bin")).unwrap();
    let seen = std::fs::read_dir(m.p("seen")).unwrap(); // opendir, no listing yet
    std::thread::sleep(Duration::from_millis(1100));

    hang(&b, &["GET", "HEAD"]);
    let (errno, took) = timed(|| std::fs::metadata(m.p("never-seen")));
    assert_eq!(errno, libc::ETIMEDOUT, "lookup");
    within("lookup", took, bound);
    let (errno, took) = timed(|| f.metadata());
    assert_eq!(errno, libc::ETIMEDOUT, "getattr");
    within("getattr", took, bound);
    let (errno, took) = timed(|| std::fs::File::open(m.p("f.bin")));
    assert_eq!(errno, libc::ETIMEDOUT, "open (its lookup or its HEAD)");
    within("open", took, bound);
    let t = Instant::now();
    let listed: Vec<_> = seen.collect();
    within("readdir", t.elapsed(), bound);
    assert!(
        listed
            .iter()
            .any(|e| e.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::ETIMEDOUT)),
        "readdir: {listed:?}"
    );
    let mut buf = vec![0u8; MIB];
    let (errno, took) = timed(|| f.read_at(&mut buf, 0));
    assert_eq!(errno, libc::ETIMEDOUT, "read");
    within("read", took, bound);

    // A trickle (64 bytes/s) is no better than silence.
    b.server.faults.set(FaultConfig {
        bandwidth: 64,
        ..Default::default()
    });
    let (errno, took) = timed(|| f.read_at(&mut buf[..65536], 512 * 1024));
    assert!([libc::ETIMEDOUT, libc::EIO].contains(&errno), "{errno}");
    within("trickled read", took, bound);

    // Healed: the same handle reads again, and the abandoned fetches left nothing stuck
    // (after the quarter second in which a timed-out read is answered from memory).
    heal(&b);
    std::thread::sleep(Duration::from_millis(300));
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf == pattern(MIB, 1));
    assert_eq!(std::fs::read_dir(m.p("d")).unwrap().count(), 1);
}

#[test]
fn writes_and_closes_fail_in_bounded_time_and_keep_the_old_object() {
    let b = Backend::start();
    b.put("small.txt", "old small");
    b.put("big.bin", "old big");
    // 2 s per request; 1 MiB parts, 2 in flight, so backpressure comes quickly.
    let m = Mounted::start(
        &b,
        &[
            "--op-timeout",
            "2",
            "--part-size",
            "1M",
            "--upload-concurrency",
            "2",
        ],
    );

    // A small file is one PUT at close: close fails once the PUT's 2 s are spent.
    let mut f = std::fs::File::create(m.p("small.txt")).unwrap();
    f.write_all(b"new small").unwrap();
    hang(&b, &["PUT"]);
    let t = Instant::now();
    let errno = close(f).unwrap_err();
    within(
        "close of a small file",
        t.elapsed(),
        Duration::from_millis(3500),
    );
    assert!([libc::ETIMEDOUT, libc::EIO].contains(&errno), "{errno}");

    // A big write: the parts in flight hang, the writer waits for room (backpressure) and
    // then gets the error, within a part's budget (2 s + 1 s per MiB) and then some.
    let mut f = std::fs::File::create(m.p("big.bin")).unwrap();
    let chunk = pattern(MIB, 2);
    let t = Instant::now();
    let failed = (0..64).find_map(|_| f.write_all(&chunk).err());
    let took = t.elapsed();
    let errno = failed.expect("writes must fail").raw_os_error().unwrap();
    assert!([libc::ETIMEDOUT, libc::EIO].contains(&errno), "{errno}");
    within("write under backpressure", took, Duration::from_secs(8));
    let t = Instant::now();
    assert!(close(f).is_err());
    within(
        "close after the failure",
        t.elapsed(),
        Duration::from_secs(4),
    );
    heal(&b);
    assert_eq!(
        b.block_on(get_all(&b.client, "small.txt")),
        &b"old small"[..]
    );
    assert_eq!(b.block_on(get_all(&b.client, "big.bin")), &b"old big"[..]);
    no_uploads_left(&b);
}

/// Complete Multipart Upload gets 20 times the op timeout (COS may merge for minutes).
#[test]
fn a_hung_complete_fails_fsync_within_its_long_bound() {
    let b = Backend::start();
    b.put("f.bin", "old");
    let m = Mounted::start(&b, &["--op-timeout", "1", "--part-size", "1M"]);
    let mut f = std::fs::File::create(m.p("f.bin")).unwrap();
    f.write_all(&pattern(3 * MIB, 3)).unwrap();
    hang(&b, &["POST"]);
    let t = Instant::now();
    let err = f.sync_all().unwrap_err();
    let took = t.elapsed();
    assert!(
        [libc::ETIMEDOUT, libc::EIO].contains(&err.raw_os_error().unwrap()),
        "{err}"
    );
    assert!(took >= Duration::from_secs(19), "{took:?}: not cut short");
    within("fsync", took, Duration::from_secs(25));
    heal(&b);
    drop(f);
    assert_eq!(b.block_on(get_all(&b.client, "f.bin")), &b"old"[..]);
}
