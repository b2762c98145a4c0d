//! The randomized reference test: one seeded random sequence of file operations applied to a
//! mount and to a local directory must leave the same trees (names, kinds, sizes, modes,
//! owners, symlink targets, bytes, and the mtimes `utimensat` set), both on the live mount and
//! after a fresh remount (what reached COS). Runs as root (chown).
//!
//! `COSFS_MODEL_SEED=N` replays a seed; `COSFS_MODEL_OPS=N` sets the length (default 200: the fs-level `fs_model` runs the long sequences; this one is for what only the kernel shows, its caches, TTLs and readdirplus). A
//! failure prints the seed and the shortest failing sequence found by removing operations.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
    Symlink {
        path: String,
        target: String,
    },
    Mkfifo {
        path: String,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
    },
    /// utimensat of atime and mtime to `secs` (far in the past, so the tree can tell a time
    /// set on purpose from one a write set).
    SetTimes {
        path: String,
        secs: i64,
        nanos: i64,
    },
}

/// mtimes below this were set by `SetTimes`; later ones by writes (not compared).
const SET_TIMES_BEFORE: i64 = 1_600_000_000;

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
            match r.next(26) {
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
                18 | 19 => Op::Chmod {
                    path,
                    mode: [0o600, 0o644, 0o755, 0o640][r.next(4) as usize],
                },
                20 | 21 => Op::Symlink {
                    path,
                    // Relative to the link's directory, never above the root: some resolve,
                    // some dangle, some loop.
                    target: ["a", "b", "a/b", "d/c", "nowhere"][r.next(5) as usize].to_string(),
                },
                22 => Op::Mkfifo { path },
                23 => Op::Chown {
                    path,
                    uid: [0, 1000, 4242][r.next(3) as usize],
                    gid: [0, 100, 4343][r.next(3) as usize],
                },
                _ => Op::SetTimes {
                    path,
                    secs: 1_500_000_000 + r.next(1_000_000) as i64,
                    nanos: [0, 500_000_000, r.next(1_000_000_000) as i64][r.next(3) as usize],
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
                .custom_flags(libc::O_NONBLOCK)
                .open(p(path))?;
            f.write_all_at(&pattern(*len, *seed), *offset)?;
            close(f)
        })(),
        Op::Append { path, len, seed } => (|| {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p(path))?;
            f.write_all(&pattern(*len, *seed))?;
            close(f)
        })(),
        Op::Truncate { path, size } => (|| {
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p(path))?;
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
        Op::Symlink { path, target } => std::os::unix::fs::symlink(target, p(path)),
        Op::Mkfifo { path } => {
            // SAFETY: a valid C path.
            let rc = unsafe { libc::mkfifo(cpath(&p(path)).as_ptr(), 0o644) };
            os_result(rc)
        }
        Op::Chown { path, uid, gid } => std::os::unix::fs::lchown(p(path), Some(*uid), Some(*gid)),
        Op::SetTimes { path, secs, nanos } => {
            let t = libc::timespec {
                tv_sec: *secs,
                tv_nsec: *nanos,
            };
            // SAFETY: a valid C path and two timespecs.
            let rc = unsafe {
                libc::utimensat(libc::AT_FDCWD, cpath(&p(path)).as_ptr(), [t, t].as_ptr(), 0)
            };
            os_result(rc)
        }
    };
    r.map_err(errno)
}

fn cpath(p: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn os_result(rc: i32) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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

/// Owner of a node: uid, gid.
type Owner = (u32, u32);

#[derive(Debug, PartialEq)]
enum Node {
    Dir {
        mode: u32,
        owner: Owner,
    },
    File {
        mode: u32,
        owner: Owner,
        size: u64,
        /// Only an mtime set by `SetTimes` (seconds, nanoseconds).
        set_mtime: Option<(i64, i64)>,
        bytes: Vec<u8>,
    },
    Symlink {
        owner: Owner,
        target: String,
    },
    Fifo {
        mode: u32,
        owner: Owner,
        set_mtime: Option<(i64, i64)>,
    },
}

fn set_mtime(md: &std::fs::Metadata) -> Option<(i64, i64)> {
    (md.mtime() < SET_TIMES_BEFORE).then(|| (md.mtime(), md.mtime_nsec()))
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
            let owner = (md.uid(), md.gid());
            let t = md.file_type();
            let node = if t.is_dir() {
                stack.push(format!("{name}/"));
                Node::Dir { mode, owner }
            } else if t.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                Node::Symlink {
                    owner,
                    target: target.display().to_string(),
                }
            } else if t.is_fifo() {
                Node::Fifo {
                    mode,
                    owner,
                    set_mtime: set_mtime(&md),
                }
            } else {
                Node::File {
                    mode,
                    owner,
                    size: md.len(),
                    set_mtime: set_mtime(&md),
                    bytes: std::fs::read(e.path()).unwrap(),
                }
            };
            out.insert(name, node);
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
                Some(Node::File {
                    mode,
                    owner,
                    size,
                    set_mtime,
                    ..
                }) => format!("file {mode:o} {owner:?} {size} bytes mtime {set_mtime:?}"),
                Some(other) => format!("{other:?}"),
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
    for (i, op) in ops.iter().enumerate() {
        let (got, want) = (apply(&m.path, op), apply(reference.path(), op));
        if got != want {
            return Some(format!("op {i} {op:?}: mount {got:?}, reference {want:?}"));
        }
    }
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
        .unwrap_or(200);
    // The sequence must do real work, not mostly fail on missing parents: the first seed from
    // here whose sequence succeeds at least a quarter of the time on a local directory.
    let scratch = tempfile::tempdir().unwrap();
    let (seed, ops) = (seed..)
        .map(|s| (s, random_ops(s, n)))
        .take(50)
        .find(|(_, ops)| {
            let dir = scratch.path().join(format!("try-{}", ops.len()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            let ok = ops.iter().filter(|op| apply(&dir, op).is_ok()).count();
            n < 100 || ok * 4 >= n
        })
        .expect("a seed whose operations mostly do real work");
    eprintln!("model test: seed {seed}, {n} operations (COSFS_MODEL_SEED={seed} to replay)");
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
