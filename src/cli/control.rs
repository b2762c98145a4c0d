//! The control socket of a running mount, and `cosfs stats MOUNTPOINT` which reads it.
//!
//! Each mount listens on a unix socket named after its mountpoint in the runtime directory
//! (`/run/cosfs` as root, else `$XDG_RUNTIME_DIR/cosfs` or `/tmp/cosfs-UID`; the directory is
//! a `PrivateDir`, ours with mode 0700, so only the mounting user can ask, and one another
//! user prepared is refused). A client writes one command line and reads
//! the answer until EOF. The only command is `stats`: one line of request counts by kind,
//! bytes, block-cache hit rate and pending uploads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cos::CosClient;
use crate::fs::CosFs;
use crate::object::ObjectStore;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Where the bucket is mounted.
    pub mountpoint: PathBuf,
}

fn runtime_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/cosfs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("cosfs"),
        None => std::env::temp_dir().join(format!("cosfs-{uid}")),
    }
}

/// The socket of the mount on `mountpoint` (canonical path): its last component plus a hash
/// of the whole path, so it stays under the 108-byte limit of socket paths.
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let hash = Sha1::digest(mountpoint.as_os_str().as_bytes());
    let base: String = mountpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    runtime_dir().join(format!("{base}-{}.sock", hex::encode(&hash[..6])))
}

fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1 << 20) as f64)
}

/// The stats line of a mount; `client` counts the COS requests (a `--local-store` mount has none).
pub fn stats_line(
    client: Option<&CosClient>,
    fs: &CosFs<dyn ObjectStore>,
    started: Instant,
) -> String {
    let a = fs.activity();
    let lookups = a.cache_hits + a.cache_misses;
    let hit_rate = if lookups == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", a.cache_hits as f64 * 100.0 / lookups as f64)
    };
    let requests = match client.map(CosClient::request_counts) {
        Some(r) => {
            let total: u64 = r.by_kind.iter().map(|(_, n)| n).sum();
            let kinds: Vec<String> = r.by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect();
            format!(
                "requests={total} [{}] failed={} retried={} sent={} received={} ",
                kinds.join(" "),
                r.failed,
                r.retried,
                mib(r.bytes_sent),
                mib(r.bytes_received),
            )
        }
        None => "requests=0 (local store) ".to_string(),
    };
    let disk = match a.disk {
        Some((d, cap)) => format!(
            " disk_cache={}/{} [hits={} misses={} written={} dropped={} damaged={} whole={} queued={}]",
            mib(d.bytes),
            mib(cap),
            d.hits,
            d.misses,
            d.written,
            d.dropped,
            d.corrupt,
            d.whole,
            d.queued
        ),
        None => String::new(),
    };
    format!(
        "uptime={}s {requests}cache_hit_rate={hit_rate} ({}/{} blocks) \
         memory={}/{} [cache={} fetching={} write_buffers={} uploading={}] \
         open_for_writing={}{disk}",
        started.elapsed().as_secs(),
        a.cache_hits,
        lookups,
        mib(a.memory_used),
        mib(a.memory_limit),
        mib(a.cache_bytes),
        mib(a.fetching_bytes),
        mib(a.write_buffer_bytes),
        mib(a.upload_bytes_in_flight),
        a.open_for_writing,
    )
}

/// Log the stats line every `interval` (`--stats-interval`), until the process ends. Only
/// counters are read: it sends no request.
pub async fn log_stats_every(interval: Duration, stats: Arc<dyn Fn() -> String + Send + Sync>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        tracing::info!("stats: {}", stats());
    }
}

/// Listen on the control socket of `mountpoint` until the process ends; the socket file is
/// removed by `remove_socket` at exit. A stale socket of a dead mount is replaced.
pub fn listen(
    mountpoint: &Path,
    answer: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<PathBuf> {
    let path = socket_path(mountpoint);
    let dir = path.parent().expect("socket path has a directory");
    // A directory another user made (`/tmp/cosfs-UID` is predictable) is refused.
    crate::private_dir::PrivateDir::open(dir)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    super::accept::serve_forever(listener, move |conn| {
        let answer = answer.clone();
        async move {
            let (rd, mut wr) = conn.into_split();
            let mut line = String::new();
            let _ = BufReader::new(rd).read_line(&mut line).await;
            let reply = match line.trim() {
                "stats" => answer(),
                other => format!("unknown command {other:?}; known: stats"),
            };
            let _ = wr.write_all(format!("{reply}\n").as_bytes()).await;
        }
    });
    Ok(path)
}

/// `cosfs stats MOUNTPOINT`: returns the exit code.
pub fn run_stats(args: StatsArgs) -> i32 {
    let mnt = args
        .mountpoint
        .canonicalize()
        .unwrap_or_else(|_| args.mountpoint.clone());
    let path = socket_path(&mnt);
    let mut conn = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "cosfs stats: no cosfs mount answers for {} ({}: {e}); is it mounted, by this user?",
                mnt.display(),
                path.display()
            );
            return 1;
        }
    };
    let mut out = String::new();
    let sent = conn
        .write_all(b"stats\n")
        .and_then(|_| conn.read_to_string(&mut out));
    match sent {
        Ok(_) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("cosfs stats: {}: {e}", path.display());
            1
        }
    }
}
