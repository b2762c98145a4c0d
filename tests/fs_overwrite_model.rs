//! A randomized test of one overwrite at the fs-core level (no mount): an existing object is
//! opened with O_TRUNC and gets a seeded random mix of mostly sequential writes, writes and
//! reads back into bytes already streamed, truncates and extensions, each checked against a
//! model in memory. Until the commit COS must still hold the old object, byte for byte; after
//! it, exactly the model. Run against `cosfs serve` with 1 MiB parts, so seeking back into
//! sent parts (and the upload left open by it) happens in nearly every round.
//! `COSFS_OVERWRITE_ROUNDS` / `COSFS_OVERWRITE_SEED` control it.

mod common;

use std::sync::Arc;

use common::{client_config, client_with, get_all, pattern, Env, Mode, SECRET_KEY};
use cosfs::fs::files::{OpenFlags, SetAttr};
use cosfs::fs::{CosFs, FsConfig};
use cosfs::object::{ListRequest, ListUploadsRequest, ObjectStore, PutOptions};

const MIB: u64 = 1 << 20;

/// xorshift, so a seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_overwrites_keep_the_old_object_until_the_commit() {
    let rounds: u64 = std::env::var("COSFS_OVERWRITE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let first_seed: u64 = std::env::var("COSFS_OVERWRITE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let env = Env::new(Mode::Signed).await;
    let scratch = tempfile::tempdir().unwrap();
    let client = client_with(client_config(&env.server.endpoint()), SECRET_KEY);
    let fs = CosFs::new(
        Arc::new(client),
        FsConfig {
            cache_dir: scratch.path().join("staging"),
            part_size: MIB,
            upload_concurrency: 4,
            ..Default::default()
        },
    );
    let write = OpenFlags {
        write: true,
        truncate: true,
        ..Default::default()
    };
    for seed in first_seed..first_seed + rounds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let key = format!("f{seed}");
        let old = pattern(rng.below(6 * MIB) as usize + 1, seed);
        env.client
            .put_object(&key, old.clone().into(), &PutOptions::default())
            .await
            .unwrap();
        let ino = fs.lookup(1, &key).await.unwrap().ino;
        let fh = fs.open(ino, write, 0).await.unwrap().fh;
        let mut model: Vec<u8> = Vec::new();
        let mut log = Vec::new();
        for step in 0..40 {
            let choice = rng.below(100);
            if choice < 55 {
                // Mostly sequential: append up to 1.5 MiB.
                let data = pattern(rng.below(3 * MIB / 2) as usize + 1, seed * 1000 + step);
                let at = model.len() as u64;
                fs.write(fh, at, &data).await.unwrap();
                model.extend_from_slice(&data);
                log.push(format!("append {} at {at}", data.len()));
            } else if choice < 75 {
                // Back into what was written (a header patch), or a little past the end.
                let at = rng.below(model.len() as u64 + 1);
                let data = pattern(rng.below(64 * 1024) as usize + 1, seed * 1000 + step);
                fs.write(fh, at, &data).await.unwrap();
                let end = at as usize + data.len();
                if model.len() < end {
                    model.resize(end, 0);
                }
                model[at as usize..end].copy_from_slice(&data);
                log.push(format!("write {} at {at}", data.len()));
            } else if choice < 90 {
                let at = rng.below(model.len() as u64 + 1);
                let len = rng.below(256 * 1024) as u32 + 1;
                let got = fs.read(fh, at, len).await.unwrap();
                let end = (at as usize + len as usize).min(model.len());
                assert!(
                    got[..] == model[at as usize..end],
                    "seed {seed}: read {len} at {at} after {log:?}"
                );
                log.push(format!("read {len} at {at}"));
            } else {
                let size = rng.below(model.len() as u64 * 5 / 4 + 1);
                let set = SetAttr {
                    size: Some(size),
                    ..Default::default()
                };
                fs.setattr(ino, Some(fh), set).await.unwrap();
                model.resize(size as usize, 0);
                log.push(format!("truncate {size}"));
            }
            if step % 10 == 9 {
                let now = get_all(&env.client, &key).await;
                assert!(
                    now == old,
                    "seed {seed}: COS changed before the commit: {log:?}"
                );
            }
        }
        fs.fsync(fh).await.unwrap();
        fs.release(fh).await;
        let got = get_all(&env.client, &key).await;
        assert!(
            got == model,
            "seed {seed}: committed {} bytes, want {} after {log:?}",
            got.len(),
            model.len()
        );
    }
    let uploads = env
        .client
        .list_multipart_uploads(&ListUploadsRequest::under(""))
        .await
        .unwrap();
    assert!(
        uploads.uploads.is_empty(),
        "left behind: {:?}",
        uploads.uploads
    );
    let listed = env
        .client
        .list_objects(&ListRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.entries.len() as u64, rounds);
}
