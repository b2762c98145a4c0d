//! Request hygiene: a mount left alone sends nothing. After the usual activity (writes, `ls -l`,
//! reads, a file and a directory left open), the server counts no request while the mount
//! idles, and `--stats-interval` logs the stats line meanwhile without sending any.

mod common;

use std::io::Read;
use std::time::Duration;

use common::mount::{Backend, Mounted};

#[test]
fn an_idle_mount_sends_no_request_and_logs_its_stats_line() {
    let b = Backend::start();
    b.put("old/x", "from another client");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cosfs.log");
    let m = Mounted::start(
        &b,
        &[
            "--metadata-ttl",
            "1",
            "--stats-interval",
            "0.5",
            "--log-file",
            log.to_str().unwrap(),
            "--log-level",
            "info",
        ],
    );
    std::fs::create_dir(m.p("d")).unwrap();
    for i in 0..5 {
        std::fs::write(m.p(&format!("d/f{i}")), vec![i as u8; 100_000]).unwrap();
    }
    for e in std::fs::read_dir(m.p("d")).unwrap() {
        e.unwrap().metadata().unwrap();
    }
    assert_eq!(std::fs::read(m.p("old/x")).unwrap(), b"from another client");
    // Left open while the mount idles: a file being read and a directory being listed.
    let mut reading = std::fs::File::open(m.p("d/f3")).unwrap();
    let mut some = [0u8; 4096];
    reading.read_exact(&mut some).unwrap();
    let listing = std::fs::read_dir(m.p("d")).unwrap();
    // Past the metadata TTL, so that nothing could be waiting to be refreshed.
    std::thread::sleep(Duration::from_millis(1500));
    b.reset_counts();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        b.server.stats.total(),
        0,
        "an idle mount sent requests: {:?}",
        ["HeadObject", "GetObject", "ListObjects", "PutObject"].map(|op| (op, b.count(op)))
    );
    drop((reading, listing));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text.matches("stats: uptime=").count();
    assert!(lines >= 4, "{lines} stats lines in 5.5 s at 0.5 s:\n{text}");
    assert!(text.contains("memory="), "the whole stats line: {text}");
}
