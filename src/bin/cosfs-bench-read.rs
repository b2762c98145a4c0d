//! cosfs-bench-read: the raw-client and file-side halves of `scripts/bench-read.sh`.
//!
//! Raw client (what the mount is compared against): `seed` uploads an object, `get` reads it
//! with parallel ranged GETs, `rand-get` does random ranged GETs from N workers, `fill` creates
//! many small objects carrying POSIX metadata as Tencent cosfs writes it (every tenth a
//! symlink), `list` pages through a prefix. File side: `rand-pread` does the same random reads
//! with pread(2) on a mounted file from N threads; `check-ls` reads `ls -ln --time-style=+%s`
//! of the filled directory and counts the entries showing exactly the stored metadata. Each
//! prints one line ending in `= <figure> <unit>` for the script to pick up.

#[path = "common/mod.rs"]
mod common;
use common::data;

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Subcommand;
use cosfs::cos::*;
use cosfs::object::*;
use futures_util::{stream, StreamExt};

type Args = common::Args<Cmd>;

#[derive(Subcommand)]
enum Cmd {
    /// Upload SIZE_MIB of pseudo-random bytes as KEY (multipart, 8 MiB parts).
    Seed { key: String, size_mib: usize },
    /// Read KEY with parallel ranged GETs of PART_MIB, CONC in flight; bytes are discarded.
    Get {
        key: String,
        #[arg(long, default_value_t = 8)]
        part_mib: usize,
        #[arg(long, default_value_t = 8)]
        conc: usize,
    },
    /// Random ranged GETs of SIZE bytes from WORKERS workers, OPS each.
    RandGet {
        key: String,
        size: u64,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        #[arg(long, default_value_t = 500)]
        ops: usize,
    },
    /// Random preads of SIZE bytes on FILE from WORKERS threads, OPS each.
    RandPread {
        file: std::path::PathBuf,
        size: u64,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        #[arg(long, default_value_t = 500)]
        ops: usize,
    },
    /// Create COUNT small objects PREFIX/f00000... with POSIX metadata (see `stored`).
    Fill { prefix: String, count: usize },
    /// Read `ls -ln --time-style=+%s` of a filled directory from stdin; count right entries.
    CheckLs { count: usize },
    /// List PREFIX/ with delimiter, all pages.
    List { prefix: String },
}

/// What object `i` of `fill` stores: mode, uid, gid, mtime (whole seconds), symlink target.
fn stored(i: usize) -> (u32, u32, u32, u64, Option<String>) {
    let (uid, gid, mtime) = (
        1000 + (i % 7) as u32,
        2000 + (i % 5) as u32,
        1_600_000_000 + i as u64,
    );
    if i % 10 == 9 {
        return (0o120_777, uid, gid, mtime, Some(format!("f{:05}", i - 1)));
    }
    let perm = [0o644, 0o755, 0o600, 0o4755][i % 4];
    (0o100_000 | perm, uid, gid, mtime, None)
}

/// `ls -l`'s rendering of a mode, e.g. `-rwsr-xr-x`.
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170_000 {
        0o120_000 => 'l',
        0o040_000 => 'd',
        _ => '-',
    };
    let mut s = String::from(kind);
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => special_char,
            (false, true) => special_char.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |bound| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % bound.max(1)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse_with("Read-path benchmark helpers for scripts/bench-read.sh");
    match &a.cmd {
        Cmd::Seed { key, size_mib } => {
            let c = a.client()?;
            let body = data(size_mib << 20);
            upload::put_multipart(&c, key, body, &PutOptions::default(), 8 << 20, 4).await?;
            println!("seeded {key} = {size_mib} MiB");
        }
        Cmd::Get {
            key,
            part_mib,
            conc,
        } => {
            let c = a.client()?;
            let size = c.head_object(key).await?.size;
            let part = (*part_mib as u64) << 20;
            let t = Instant::now();
            let c = &c;
            let got: u64 = stream::iter((0..size.div_ceil(part)).map(|i| async move {
                let r = ByteRange::new(i * part, ((i + 1) * part).min(size));
                let opts = GetOptions {
                    range: Some(r),
                    ..Default::default()
                };
                let mut body = c.get_object(key, &opts).await?.body;
                let mut n = 0u64;
                while let Some(chunk) = body.next().await {
                    n += chunk?.len() as u64;
                }
                Ok::<u64, CosError>(n)
            }))
            .buffer_unordered(*conc)
            .fold(
                Ok::<u64, CosError>(0),
                |acc, r| async move { Ok(acc? + r?) },
            )
            .await?;
            let s = t.elapsed().as_secs_f64();
            if got != size {
                return Err(format!("read {got} of {size} bytes").into());
            }
            let mib = size as f64 / 1048576.0;
            println!("raw get: {mib:.0} MiB in {s:.2} s = {:.1} MiB/s", mib / s);
        }
        Cmd::RandGet {
            key,
            size,
            workers,
            ops,
        } => {
            let c = Arc::new(a.client()?);
            let obj = c.head_object(key).await?.size;
            let t = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..*workers {
                let (c, key, size, ops) = (c.clone(), key.clone(), *size, *ops);
                tasks.push(tokio::spawn(async move {
                    let mut next = rng(w as u64 + 1);
                    for _ in 0..ops {
                        let off = next(obj - size);
                        let opts = GetOptions {
                            range: Some(ByteRange::new(off, off + size)),
                            ..Default::default()
                        };
                        let b = c.get_object(&key, &opts).await?.collect().await?;
                        assert_eq!(b.len() as u64, size);
                    }
                    Ok::<(), CosError>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            report_rand(
                "raw rand-get",
                *size,
                workers * ops,
                t.elapsed().as_secs_f64(),
            );
        }
        Cmd::RandPread {
            file,
            size,
            workers,
            ops,
        } => {
            let len = std::fs::metadata(file)?.len();
            let t = Instant::now();
            std::thread::scope(|s| -> Result<(), std::io::Error> {
                let handles: Vec<_> = (0..*workers)
                    .map(|w| {
                        s.spawn(move || -> Result<(), std::io::Error> {
                            let f = std::fs::File::open(file)?;
                            let mut next = rng(w as u64 + 1);
                            let mut buf = vec![0u8; *size as usize];
                            for _ in 0..*ops {
                                f.read_exact_at(&mut buf, next(len - size))?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("reader thread")?;
                }
                Ok(())
            })?;
            report_rand(
                "fs rand-pread",
                *size,
                workers * ops,
                t.elapsed().as_secs_f64(),
            );
        }
        Cmd::Fill { prefix, count } => {
            let c = &a.client()?;
            let t = Instant::now();
            let results: Vec<CosResult<PutResult>> = stream::iter(0..*count)
                .map(|i| async move {
                    let (mode, uid, gid, mtime, target) = stored(i);
                    let body = Bytes::from(target.unwrap_or_else(|| format!("object {i}\n")));
                    let opts = PutOptions {
                        user_meta: [
                            ("mode", mode.to_string()),
                            ("uid", uid.to_string()),
                            ("gid", gid.to_string()),
                            ("mtime", mtime.to_string()),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                        ..Default::default()
                    };
                    c.put_object(&format!("{prefix}/f{i:05}"), body, &opts)
                        .await
                })
                .buffer_unordered(32)
                .collect()
                .await;
            for r in results {
                r?;
            }
            println!(
                "filled {count} objects = {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::CheckLs { count } => {
            let mut right = 0;
            for line in std::io::stdin().lines() {
                let line = line?;
                let f: Vec<&str> = line.split_whitespace().collect();
                // perms links uid gid size time name [-> target]
                let Some(i) = f
                    .get(6)
                    .and_then(|n| n.strip_prefix('f'))
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                let (mode, uid, gid, mtime, target) = stored(i);
                let want_target = target.map(|t| format!("-> {t}"));
                let got_target = (f.len() > 7).then(|| f[7..].join(" "));
                if f[0] == mode_string(mode)
                    && f[2] == uid.to_string()
                    && f[3] == gid.to_string()
                    && f[5] == mtime.to_string()
                    && got_target == want_target
                {
                    right += 1;
                }
            }
            println!("ls -ln shows the stored metadata of {right} of {count} entries = {right}");
        }
        Cmd::List { prefix } => {
            let c = a.client()?;
            let t = Instant::now();
            let (mut marker, mut n, mut pages) = (None, 0usize, 0);
            loop {
                let req = ListRequest {
                    prefix: format!("{prefix}/"),
                    delimiter: Some("/".into()),
                    marker: marker.clone(),
                    max_keys: 1000,
                };
                let page = c.list_objects(&req).await?;
                pages += 1;
                n += page.entries.len() + page.common_prefixes.len();
                if !page.is_truncated {
                    break;
                }
                marker = page.next_marker;
            }
            println!(
                "raw list: {n} entries in {pages} pages = {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

fn report_rand(what: &str, size: u64, n: usize, s: f64) {
    println!(
        "{what}: {n} reads of {size} B in {s:.2} s ({:.1} MiB/s) = {:.0} reads/s",
        (n as u64 * size) as f64 / 1048576.0 / s,
        n as f64 / s
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_as_ls_does() {
        assert_eq!(mode_string(0o100_644), "-rw-r--r--");
        assert_eq!(mode_string(0o104_755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o120_777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o041_777), "drwxrwxrwt");
        assert_eq!(mode_string(0o102_640), "-rw-r-S---");
    }
}
