//! The randomized reference test: one seeded random sequence of file operations applied to a
//! mount and to a local directory must leave the same trees (names, kinds, sizes, modes and
//! bytes), both on the live mount and after a fresh remount (what reached COS).
//!
//! `COSFS_MODEL_SEED=N` replays a seed; `COSFS_MODEL_OPS=N` sets the length (default 500). A
//! failure prints the seed and the shortest failing sequence found by removing operations.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::mount::{Backend, Mounted};
use common::pattern;

#[derive(Debug, Clone)]
enum Op {
    Write {
        path: String,
        offset: u64,
        len: usize,
        seed: u64,
        truncate: bool,
    },
    Append {
        path: String,
        len: usize,
        seed: u64,
    },
    Truncate {
        path: String,
        size: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
    },
    Mkdir {
        path: String,
    },
    Rmdir {
        path: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
}

struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn random_path(r: &mut Rng) -> String {
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    let depth = 1 + r.next(2);
    (0..depth)
        .map(|_| NAMES[r.next(NAMES.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join("/")
}

fn random_ops(seed: u64, n: usize) -> Vec<Op> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n)
        .map(|_| {
            let path = random_path(&mut r);
            match r.next(20) {
                0..=5 => {
                    // Mostly small writes; now and then a big one that crosses parts.
                    let big = r.next(20) == 0;
                    let len = if big {
                        (1 << 20) + r.next(2 << 20) as usize
                    } else {
                        1 + r.next(5000) as usize
                    };
                    let offset = if big { r.next(3 << 20) } else { r.next(20_000) };
                    Op::Write {
                        path,
                        offset,
                        len,
                        seed: r.next(1 << 30),
                        truncate: r.next(4) == 0,
                    }
                }
                6 | 7 => Op::Append {
                    path,
                    len: 1 + r.next(3000) as usize,
                    seed: r.next(1 << 30),
                },
                8 | 9 => Op::Truncate {
                    path,
                    size: r.next(30_000),
                },
                10..=12 => Op::Rename {
                    from: path,
                    to: random_path(&mut r),
                },
                13 => Op::Unlink { path },
                14..=16 => Op::Mkdir { path },
                17 => Op::Rmdir { path },
                _ => Op::Chmod {
                    path,
                    mode: [0o600, 0o644, 0o755, 0o640][r.next(4) as usize],
                },
            }
        })
        .collect()
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// Apply `op` under `root`; the errno on failure.
fn apply(root: &Path, op: &Op) -> Result<(), i32> {
    let p = |rel: &str| root.join(rel);
    let r: std::io::Result<()> = match op {
        Op::Write {
            path,
            offset,
            len,
            seed,
            truncate,
        } => (|| {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(*truncate)
                .open(p(path))?;
            f.write_all_at(&pattern(*len, *seed), *offset)?;
            close(f)
        })(),
        Op::Append { path, len, seed } => (|| {
            let mut f = OpenOptions::new().append(true).create(true).open(p(path))?;
            f.write_all(&pattern(*len, *seed))?;
            close(f)
        })(),
        Op::Truncate { path, size } => (|| {
            let f = OpenOptions::new().write(true).open(p(path))?;
            f.set_len(*size)?;
            close(f)
        })(),
        Op::Rename { from, to } => std::fs::rename(p(from), p(to)),
        Op::Unlink { path } => std::fs::remove_file(p(path)),
        Op::Mkdir { path } => std::fs::create_dir(p(path)),
        Op::Rmdir { path } => std::fs::remove_dir(p(path)),
        Op::Chmod { path, mode } => {
            std::fs::set_permissions(p(path), std::fs::Permissions::from_mode(*mode))
        }
    };
    r.map_err(errno)
}

/// close(2) with its error (std ignores it): a failed upload must show here.
fn close(f: std::fs::File) -> std::io::Result<()> {
    use std::os::unix::io::IntoRawFd;
    // SAFETY: the fd is owned by `f` and closed exactly once.
    if unsafe { libc::close(f.into_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[derive(Debug, PartialEq)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        bytes: Vec<u8>,
    },
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            if md.is_dir() {
                stack.push(format!("{name}/"));
                out.insert(name, Node::Dir { mode });
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.insert(
                    name,
                    Node::File {
                        mode,
                        size: md.len(),
                        bytes,
                    },
                );
            }
        }
    }
    out
}

fn describe(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> String {
    let mut out = String::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            let short = |n: Option<&Node>| match n {
                None => "missing".to_string(),
                Some(Node::Dir { mode }) => format!("dir {mode:o}"),
                Some(Node::File { mode, size, .. }) => format!("file {mode:o} {size} bytes"),
            };
            out += &format!("  {k}: mount {} / reference {}\n", short(x), short(y));
        }
    }
    out
}

/// Run `ops` on a fresh mount and reference dir; the first difference found, if any.
fn run(ops: &[Op]) -> Option<String> {
    let b = Backend::start();
    let reference = tempfile::tempdir().unwrap();
    let mut m = Mounted::start(&b, &["--part-size", "1M"]);
    let mut succeeded = 0;
    for (i, op) in ops.iter().enumerate() {
        let (got, want) = (apply(&m.path, op), apply(reference.path(), op));
        if got != want {
            return Some(format!("op {i} {op:?}: mount {got:?}, reference {want:?}"));
        }
        succeeded += got.is_ok() as usize;
    }
    // The sequence must do real work, not mostly fail on missing parents.
    assert!(
        ops.len() < 100 || succeeded * 4 >= ops.len(),
        "only {succeeded} of {} operations succeeded",
        ops.len()
    );
    let want = tree(reference.path());
    let live = tree(&m.path);
    if live != want {
        return Some(format!("live mount differs:\n{}", describe(&live, &want)));
    }
    m.stop();
    // TTL 0: nothing is trusted from memory, so every stat of the walk reaches COS (the
    // listing's HEADs, then lookups).
    let m2 = Mounted::start(&b, &["--metadata-ttl", "0"]);
    let again = tree(&m2.path);
    if again != want {
        return Some(format!("after remount:\n{}", describe(&again, &want)));
    }
    None
}

/// Remove operations while the failure stays (chunks, then single ops), within a time budget.
fn shrink(mut ops: Vec<Op>, budget: Duration) -> Vec<Op> {
    let start = Instant::now();
    let mut chunk = ops.len() / 2;
    while chunk >= 1 && start.elapsed() < budget {
        let mut i = 0;
        while i < ops.len() && start.elapsed() < budget {
            let mut candidate = ops.clone();
            candidate.drain(i..(i + chunk).min(ops.len()));
            if run(&candidate).is_some() {
                ops = candidate;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    ops
}

#[test]
fn random_operations_match_a_local_directory() {
    let seed: u64 = std::env::var("COSFS_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let n: usize = std::env::var("COSFS_MODEL_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    eprintln!("model test: seed {seed}, {n} operations (COSFS_MODEL_SEED={seed} to replay)");
    let ops = random_ops(seed, n);
    if let Some(diff) = run(&ops) {
        let short = shrink(ops, Duration::from_secs(180));
        let last = run(&short).unwrap_or_else(|| "(not reproduced)".into());
        panic!(
            "seed {seed}: {diff}\nshortest failing sequence ({} ops):\n{}\nits failure: {last}",
            short.len(),
            short
                .iter()
                .map(|o| format!("  {o:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
