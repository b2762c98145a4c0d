//! `--memory-limit` holds under many readers and writers at once: the mount process's peak
//! RSS (VmHWM) stays near the limit while 16 programs read big files and 16 write big files,
//! and every byte read or written is right.

mod common;

use std::io::{Read, Write};

use common::mount::{Backend, Mounted};
use common::pattern;

const MIB: usize = 1024 * 1024;
const FILE: usize = 24 * MIB;
const LIMIT_MIB: u64 = 64;
/// What the process may hold beyond the limit: the README's fixed overhead (64 MiB) plus a
/// generous margin for a debug build's allocator slack. Without the limit the writers alone
/// hold 16 buffers of 8 MiB and 8 parts in flight (192 MiB) next to the 64 MiB cache.
const MARGIN_MIB: u64 = 96;

fn vm_hwm_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number of kB");
    kib / 1024
}

#[test]
fn memory_limit_holds_with_16_readers_and_16_writers() {
    let backend = Backend::start();
    for i in 0..16 {
        backend.put_big(&format!("in/{i}"), &pattern(FILE, i));
    }
    let limit = format!("{LIMIT_MIB}M");
    let m = Mounted::start(
        &backend,
        &["--memory-limit", &limit, "--cache-size", &limit],
    );
    let pid = m.pid().expect("mount process");
    let before = vm_hwm_mib(pid);
    std::fs::create_dir(m.p("out")).unwrap();

    std::thread::scope(|s| {
        let m = &m;
        for i in 0..16u64 {
            s.spawn(move || {
                let mut f = std::fs::File::open(m.p(&format!("in/{i}"))).unwrap();
                let mut got = Vec::with_capacity(FILE);
                f.read_to_end(&mut got).unwrap();
                assert!(got == pattern(FILE, i), "in/{i} read back wrong");
            });
            s.spawn(move || {
                let data = pattern(FILE, 100 + i);
                let mut f = std::fs::File::create(m.p(&format!("out/{i}"))).unwrap();
                for chunk in data.chunks(128 * 1024) {
                    f.write_all(chunk).unwrap();
                }
                f.sync_all().unwrap();
            });
        }
    });

    let peak = vm_hwm_mib(pid);
    for i in 0..16u64 {
        let got = std::fs::read(m.p(&format!("out/{i}"))).unwrap();
        assert!(got == pattern(FILE, 100 + i), "out/{i} read back wrong");
    }
    let stats = common::run_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_cosfs"))
            .arg("stats")
            .arg(&m.path),
        30,
    );
    let stats = String::from_utf8_lossy(&stats.stdout);
    // The budget is the limit less a sixteenth (at least 4 MiB) kept for request buffers.
    assert!(
        stats.contains(&format!("/{}.0MiB [cache=", LIMIT_MIB - 4)),
        "stats show the budget: {stats}"
    );
    eprintln!("VmHWM before {before} MiB, after {peak} MiB; {stats}");
    assert!(
        peak <= LIMIT_MIB + MARGIN_MIB,
        "peak RSS {peak} MiB is over the limit ({LIMIT_MIB} MiB) + {MARGIN_MIB} MiB"
    );
}
