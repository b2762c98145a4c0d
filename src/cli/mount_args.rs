//! The arguments of `cosfs mount` / `cosfs unmount` and what they resolve to before anything
//! is mounted: the bucket and prefix, where its objects are (COS with credentials, or a local
//! store directory), and the fs configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cos::config::TimeBudget;
use crate::cos::credentials::{self, CredentialSources};
use crate::cos::{ClientConfig, Endpoint};
use crate::fs::attr::AttrDefaults;
use crate::fs::content_type::ContentTypeRule;
use crate::fs::names::normalize_prefix;
use crate::fs::FsConfig;
use crate::private_dir::{PrivateDir, PrivateDirError};

use super::mount_kernel::check_mountpoint;
use super::values;

#[derive(Debug, Args)]
pub struct MountArgs {
    /// Bucket to mount (`name-appid`), optionally with a key prefix: `BUCKET:/some/prefix`.
    pub bucket: String,
    /// Directory to mount on (must exist and be empty).
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Serve the bucket from this store directory inside the mount process: no server, no
    /// credentials, no network. Same layout as `cosfs serve --root DIR` (either can open what
    /// the other wrote, one at a time); the bucket is created there if missing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["region", "endpoint", "passwd_file", "cam_role", "anonymous"])]
    pub local_store: Option<PathBuf>,
    /// Stay in the foreground (for systemd and debugging); otherwise daemonise once mounted.
    #[arg(short, long)]
    pub foreground: bool,
    /// Read the bucket, mountpoint and options from a `key = value` file (e.g.
    /// /etc/cosfs/NAME.conf for systemd's cosfs@NAME); flags after it override the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Mount read-only: every change is EROFS.
    #[arg(long, conflicts_with = "appendable_logs")]
    pub read_only: bool,
    /// Allow mounting over a directory that is not empty (its files are hidden meanwhile).
    #[arg(long)]
    pub nonempty: bool,
    /// Do not allow programs on the mount to be executed.
    #[arg(long)]
    pub noexec: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root).
    #[arg(long)]
    pub allow_other: bool,
    /// Threads reading FUSE requests from the kernel, each with its own /dev/fuse descriptor
    /// (1..64; default: one per CPU, at most 4). The fs work itself runs on the async
    /// runtime's threads either way.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub fuse_threads: Option<u16>,
    /// Owner of objects without POSIX metadata (default: the mounting user).
    #[arg(long, value_parser = values::id, allow_negative_numbers = true)]
    pub uid: Option<u32>,
    /// Group of objects without POSIX metadata (default: the mounting user's group).
    #[arg(long, value_parser = values::id, allow_negative_numbers = true)]
    pub gid: Option<u32>,
    /// Permission bits (octal) of files without POSIX metadata.
    #[arg(long, default_value = values::mount_defaults().file_mode.as_str(), value_parser = values::mode)]
    pub file_mode: u32,
    /// Permission bits (octal) of directories without POSIX metadata.
    #[arg(long, default_value = values::mount_defaults().dir_mode.as_str(), value_parser = values::mode)]
    pub dir_mode: u32,
    /// Seconds that attributes and "no such file" answers are trusted (0 to 86400, fractions
    /// allowed).
    #[arg(long, default_value = values::mount_defaults().metadata_ttl.as_str(), value_parser = values::ttl, allow_negative_numbers = true)]
    pub metadata_ttl: Duration,
    /// Attributes of listed entries: `on` HEADs every entry of a listing (pipelined, see
    /// --listing-heads) so `ls -l`, `find` and `cp -a` see the modes, owners, times and
    /// symlinks Tencent cosfs and s3fs stored; `off` shows what the listing alone tells (the
    /// defaults above, Last-Modified as mtime, symlinks as files), for buckets that hold no
    /// POSIX metadata.
    #[arg(long, default_value = values::mount_defaults().listing_metadata.as_str(), value_parser = values::on_off, action = clap::ArgAction::Set)]
    pub listing_metadata: bool,
    /// HEADs of listed entries in flight for the whole mount (1..1024).
    #[arg(long, default_value = values::mount_defaults().listing_heads.as_str(), value_parser = clap::value_parser!(u16).range(1..=1024), allow_negative_numbers = true)]
    pub listing_heads: u16,
    /// Most memory the block cache holds (bytes, or with K/M/G suffix; 4M up to the
    /// machine's memory; never more than --memory-limit).
    #[arg(long, default_value = values::mount_defaults().cache_size.as_str(), value_parser = values::cache_size)]
    pub cache_size: u64,
    /// Memory budget of the whole mount: block cache, prefetch, write buffers and parts being
    /// uploaded (16M up to the machine's memory). Past it, writers wait and readers evict or
    /// fetch less; the process stays within it plus a fixed overhead (README).
    #[arg(long, default_value = values::mount_defaults().memory_limit.as_str(), value_parser = values::memory_limit)]
    pub memory_limit: u64,
    /// Keep fetched data on local disk across remounts, in a directory of this mount's own
    /// under DIR (mode 0700), or `off`. Default: under the --cache-dir directory.
    #[arg(long, value_name = "DIR|off", value_parser = values::disk_cache)]
    pub disk_cache: Option<values::DiskCacheAt>,
    /// Most bytes the disk cache holds, or `auto`: half the free space of its filesystem, at
    /// most 10G. Either way it leaves a tenth of that filesystem (at most 5G) free.
    #[arg(long, default_value = values::mount_defaults().disk_cache_size.as_str(), value_parser = values::disk_cache_size)]
    pub disk_cache_size: crate::fs::disk_cache::DiskSize,
    /// Never let the kernel read cached files directly (passthrough). By default, as root on
    /// Linux 6.9 or later, a file the disk cache holds whole is opened in passthrough mode and
    /// read at local-disk speed; without it every read goes through cosfs.
    #[arg(long)]
    pub no_passthrough: bool,
    /// Directory under which the mount keeps a private directory of its own (mode 0700) for
    /// staging files of files modified in place (anonymous: a crash leaves none) and its
    /// upload journal (default: /var/cache/cosfs as root, else $XDG_CACHE_HOME/cosfs or
    /// ~/.cache/cosfs). One another user could have prepared is refused.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes staging files may hold together; past it writes fail with ENOSPC.
    #[arg(long, default_value = values::mount_defaults().cache_dir_size.as_str(), value_parser = values::cache_dir_size)]
    pub cache_dir_size: u64,
    /// Size of the first upload parts (1M..5G); it doubles every 100 parts of a big file.
    #[arg(long, default_value = values::mount_defaults().part_size.as_str(), value_parser = values::part_size)]
    pub part_size: u64,
    /// Storage class of new files (STANDARD, STANDARD_IA, ARCHIVE, ...; default: the bucket's,
    /// STANDARD). A file written over an object keeps that object's class.
    #[arg(long, value_parser = values::storage_class)]
    pub storage_class: Option<String>,
    /// Content-Type of new files: `auto` takes it from the name's extension, as Tencent's
    /// cosfs and s3fs do (style.css is text/css; unknown: application/octet-stream); a MIME
    /// type gives every new file that type. Files written over an object keep its type.
    #[arg(long, default_value = "auto", value_parser = ContentTypeRule::parse)]
    pub content_type: ContentTypeRule,
    /// Create new files opened with O_APPEND (logs: `>>`, loggers) as COS appendable objects:
    /// each flush or fsync sends only the new bytes (APPEND Object). Such files cannot be
    /// renamed (EXDEV), have their metadata changed (EOPNOTSUPP), exceed 5 GB, or be versioned.
    #[arg(long)]
    pub appendable_logs: bool,
    /// Part uploads in flight for the whole mount (1..256).
    #[arg(long, default_value = values::mount_defaults().upload_concurrency.as_str(), value_parser = clap::value_parser!(u16).range(1..=256), allow_negative_numbers = true)]
    pub upload_concurrency: u16,
    /// Log level.
    #[arg(long, default_value = "warn", value_parser = values::LOG_LEVELS)]
    pub log_level: String,
    /// Append logs to this file; SIGHUP reopens it. Without it, logs go to stderr with -f
    /// (journald-shaped under systemd) and nowhere in daemon mode.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Longest wait on COS, in seconds: a stat, ls, open or read that gets no answer fails
    /// with ETIMEDOUT after it; each request, retries included, gets this long (plus 1 s per
    /// MiB it moves; Complete and Copy get 20 times it).
    #[arg(long, default_value = values::mount_defaults().op_timeout.as_str(), value_parser = values::op_timeout, allow_negative_numbers = true)]
    pub op_timeout: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Log the `cosfs stats` line every this many seconds (0: never).
    #[arg(long, default_value = "0", value_parser = values::stats_interval)]
    pub stats_interval: Duration,
    /// On SIGTERM/SIGINT, how long files open for writing may still be finished and closed
    /// before they are given up (their programs get EIO; COS keeps the previous version).
    #[arg(long, default_value = "30", value_parser = values::stop_timeout, allow_negative_numbers = true)]
    pub stop_timeout: Duration,
}

/// Where a bucket is and how to sign for it (`mount` and `check`).
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// COS region, e.g. ap-guangzhou (uses https://BUCKET.cos.REGION.myqcloud.com).
    #[arg(long, conflicts_with = "endpoint")]
    pub region: Option<String>,
    /// Endpoint URL instead of a region, e.g. http://127.0.0.1:9100 for `cosfs serve`.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Credentials file (`bucket:SecretId:SecretKey` lines, mode 600), used alone when given.
    #[arg(long)]
    pub passwd_file: Option<PathBuf>,
    /// CVM instance role to take temporary credentials from.
    #[arg(long)]
    pub cam_role: Option<String>,
    /// Send unsigned requests (public-read buckets, or `cosfs serve --anonymous`).
    #[arg(long, conflicts_with_all = ["passwd_file", "cam_role"])]
    pub anonymous: bool,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// Where the bucket is mounted.
    pub mountpoint: PathBuf,
    /// Detach now even if files are open (they keep working until closed).
    #[arg(long)]
    pub lazy: bool,
}

/// `--fuse-threads` by default: one per CPU, at most 4. On 2 cores, 1 to 8 threads serve
/// cached 4 KiB reads alike (within the run-to-run noise, README "Benchmarks"); more threads
/// than cores only add switches, and 4 keep a large machine's kernel queue drained.
pub(super) fn default_fuse_threads() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u16)
}

/// `/var/cache/cosfs` for root, else the XDG cache directory.
pub(super) fn default_cache_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/cosfs");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cosfs")
}

/// Everything checked and resolved before forking.
pub(super) struct Prepared {
    pub bucket: String,
    pub prefix: String,
    pub mountpoint: PathBuf,
    pub backend: Backend,
    pub fs_cfg: FsConfig,
}

/// Where the bucket's objects are.
pub(super) enum Backend {
    /// COS (or `cosfs serve`) over HTTP.
    Cos {
        client_cfg: Box<ClientConfig>,
        creds: Option<Arc<dyn credentials::CredentialProvider>>,
    },
    /// A store directory, served in this process (`--local-store`).
    Local(PathBuf),
}

/// A bucket to talk to, shared by `mount` and `check`.
pub(super) struct Target {
    pub bucket: String,
    pub prefix: String,
    pub client_cfg: ClientConfig,
    pub creds: Option<Arc<dyn credentials::CredentialProvider>>,
}

/// `BUCKET[:/prefix]` as bucket and key prefix. A prefix with `.`, `..` or empty segments is
/// refused: COS would take them as part of the keys, which no path can then name.
pub(super) fn split_spec(spec: &str) -> Result<(String, String), String> {
    let Some((b, p)) = spec.split_once(':') else {
        return Ok((spec.to_string(), String::new()));
    };
    let trimmed = p.trim_matches('/');
    if !trimmed.is_empty()
        && trimmed
            .split('/')
            .any(|seg| crate::fs::names::check_name(seg).is_err())
    {
        return Err(format!(
            "prefix {p:?} of {spec}: every part between slashes must be a file name (no empty part, \
             no '.' or '..', at most 255 bytes); COS would take such parts literally into the keys"
        ));
    }
    Ok((b.to_string(), normalize_prefix(p)))
}

/// Where `BUCKET[:/prefix]` is and which keys sign for it (None: anonymous).
pub(super) fn target(spec: &str, access: &AccessArgs) -> Result<Target, String> {
    let AccessArgs {
        region,
        endpoint,
        passwd_file,
        cam_role,
        anonymous,
    } = access;
    let (bucket, prefix) = split_spec(spec)?;
    let endpoint = match (region, endpoint) {
        (Some(r), None) => Endpoint::for_region(&bucket, r),
        (None, Some(u)) => Endpoint::from_url(&bucket, u),
        _ => return Err("say where the bucket is: --region REGION or --endpoint URL".into()),
    }
    .map_err(|e| e.to_string())?;
    let client_cfg = ClientConfig::new(&bucket, endpoint).map_err(|e| e.to_string())?;
    let creds = if *anonymous {
        None
    } else {
        let sources = CredentialSources {
            passwd_file: passwd_file.clone(),
            cam_role: cam_role.clone(),
            cam_role_endpoint: None,
        };
        Some(
            credentials::resolve(&bucket, &sources).map_err(|e| match e {
                credentials::CredentialsError::NotFound => format!(
                    "no credentials for bucket {bucket}: set COS_SECRET_ID and COS_SECRET_KEY, \
                 write {bucket}:SecretId:SecretKey to ~/.passwd-cosfs (chmod 600), pass \
                 --passwd-file FILE, or use --anonymous for a public bucket"
                ),
                other => other.to_string(),
            })?,
        )
    };
    Ok(Target {
        bucket,
        prefix,
        client_cfg,
        creds,
    })
}

/// The name of this mount's own directory under `--cache-dir` and `--disk-cache`: the bucket
/// and the user for people, and a hash of where the bucket is served and the prefix, so that
/// different mounts never share cached data or journals.
fn mount_dir_name(bucket: &str, prefix: &str, backend: &Backend) -> String {
    use sha1::{Digest, Sha1};
    let origin = match backend {
        Backend::Cos { client_cfg, .. } => client_cfg.endpoint.base_url(),
        Backend::Local(dir) => format!("local:{}", dir.display()),
    };
    let mut h = Sha1::new();
    h.update(origin.as_bytes());
    h.update([0]);
    h.update(prefix.as_bytes());
    let hash = hex::encode(&h.finalize()[..6]);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    format!("{bucket}-{uid}-{hash}")
}

pub(super) fn prepare(a: &MountArgs) -> Result<Prepared, String> {
    let (bucket, prefix, backend) = match &a.local_store {
        Some(dir) => {
            let (bucket, prefix) = split_spec(&a.bucket)?;
            if !crate::cos::config::valid_bucket_name(&bucket) {
                return Err(format!(
                    "bucket name {bucket:?} must look like name-APPID (e.g. examplebucket-1250000000)"
                ));
            }
            (bucket, prefix, Backend::Local(dir.clone()))
        }
        None => {
            let Target {
                bucket,
                prefix,
                mut client_cfg,
                creds,
            } = target(&a.bucket, &a.access)?;
            client_cfg.time = TimeBudget::from_op(a.op_timeout);
            let client_cfg = Box::new(client_cfg);
            (bucket, prefix, Backend::Cos { client_cfg, creds })
        }
    };
    check_mountpoint(&a.mountpoint, a.nonempty)?;
    let mountpoint = a
        .mountpoint
        .canonicalize()
        .map_err(|e| format!("{}: {e}", a.mountpoint.display()))?;
    let mut defaults = AttrDefaults::for_current_user();
    defaults.uid = a.uid.unwrap_or(defaults.uid);
    defaults.gid = a.gid.unwrap_or(defaults.gid);
    defaults.file_mode = a.file_mode;
    defaults.dir_mode = a.dir_mode;
    if let Some(log) = &a.log_file {
        let file = super::logging::LogFile::open(log)
            .map_err(|e| format!("cannot open log file {}: {e}", log.display()))?;
        super::logging::write_opening_line(
            &file,
            &format!("mounting {} on {}", a.bucket, a.mountpoint.display()),
        )
        .map_err(|e| format!("cannot write to log file {}: {e}", log.display()))?;
    }
    let own = mount_dir_name(&bucket, &prefix, &backend);
    let cache_root = a.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let cache_dir = cache_root.join(&own);
    if !a.read_only {
        PrivateDir::open(&cache_dir)
            .map_err(|e| format!("cannot use the cache directory (--cache-dir): {e}"))?;
    }
    let disk_cache = match &a.disk_cache {
        Some(values::DiskCacheAt::Off) => None,
        Some(values::DiskCacheAt::Under(root)) => Some(root.join(&own)),
        None => Some(cache_root.join(&own)),
    };
    if let Some(dir) = &disk_cache {
        // Refuse what another user could have prepared; a directory that merely cannot be
        // made (a full disk, a file in the way) means no disk cache, with a warning.
        match PrivateDir::open(dir) {
            Ok(_) | Err(PrivateDirError::Io { .. } | PrivateDirError::NotDirectory { .. }) => {}
            Err(e) => return Err(format!("cannot use the disk cache (--disk-cache): {e}")),
        }
    }
    let fs_cfg = FsConfig {
        prefix: prefix.clone(),
        defaults,
        metadata_ttl: a.metadata_ttl,
        cache_bytes: a.cache_size,
        memory_bytes: a.memory_limit,
        disk_cache,
        disk_cache_size: a.disk_cache_size,
        read_only: a.read_only,
        cache_dir,
        cache_dir_bytes: a.cache_dir_size,
        part_size: a.part_size,
        storage_class: a.storage_class.clone(),
        content_type: a.content_type.clone(),
        appendable_logs: a.appendable_logs,
        upload_concurrency: a.upload_concurrency as usize,
        op_timeout: a.op_timeout,
        listing_metadata: a.listing_metadata,
        listing_heads: a.listing_heads as usize,
        passthrough: !a.no_passthrough,
    };
    Ok(Prepared {
        bucket,
        prefix,
        mountpoint,
        backend,
        fs_cfg,
    })
}
