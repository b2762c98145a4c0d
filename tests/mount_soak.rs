//! The fault soak: a mount writes a tree (a 64 MiB file and 200 small files in 10 directories)
//! and reads it back against `cosfs serve` answering 10 % of requests `503 SlowDown` and
//! dropping 1 % of connections (GETs halfway through the body). Every byte is checked through
//! the mount (after dropping the kernel's caches) and through the client, and no multipart
//! upload may be left behind. `scripts/soak.sh` is the long version (1 GiB, 10,000 files,
//! kill -9 rounds).

mod common;

use std::time::Instant;

use common::mount::{drop_kernel_caches, no_uploads_left, Backend, Mounted};
use common::{get_all, pattern};
use cosfs::server::FaultConfig;

const MIB: usize = 1024 * 1024;

fn small(i: u64) -> Vec<u8> {
    // 1 byte to 64 KiB, a different size and content per file.
    pattern(1 + (i as usize * 7919) % (64 * 1024), 100 + i)
}

#[test]
fn a_tree_survives_503s_and_dropped_connections() {
    let b = Backend::start();
    b.server.faults.set(FaultConfig {
        rate_503: 0.10,
        drop_rate: 0.01,
        ..Default::default()
    });
    let m = Mounted::start(&b, &[]);
    let started = Instant::now();
    let big = pattern(64 * MIB, 42);
    std::fs::write(m.p("big.bin"), &big).unwrap();
    for d in 0..10 {
        std::fs::create_dir(m.p(&format!("d{d}"))).unwrap();
    }
    for i in 0..200u64 {
        std::fs::write(m.p(&format!("d{}/f{i:03}", i % 10)), small(i)).unwrap();
    }
    let wrote = started.elapsed();

    drop_kernel_caches();
    let started = Instant::now();
    assert!(
        std::fs::read(m.p("big.bin")).unwrap() == big,
        "big.bin through the mount"
    );
    for d in 0..10 {
        assert_eq!(
            std::fs::read_dir(m.p(&format!("d{d}"))).unwrap().count(),
            20
        );
    }
    for i in 0..200u64 {
        let p = m.p(&format!("d{}/f{i:03}", i % 10));
        assert!(std::fs::read(&p).unwrap() == small(i), "{}", p.display());
    }
    let read = started.elapsed();
    let injected = b.count("InjectedFault");
    b.server.faults.set(FaultConfig::default());

    assert!(
        b.block_on(get_all(&b.client, "big.bin")) == big,
        "big.bin on COS"
    );
    for i in 0..200u64 {
        let key = format!("d{}/f{i:03}", i % 10);
        assert!(
            b.block_on(get_all(&b.client, &key)) == small(i),
            "{key} on COS"
        );
    }
    no_uploads_left(&b);
    assert!(injected > 20, "faults were injected ({injected} 503s)");
    println!("soak: wrote in {wrote:?}, read back in {read:?}, {injected} injected 503s");
}
