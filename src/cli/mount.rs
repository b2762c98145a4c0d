//! `cosfs mount BUCKET[:/prefix] MOUNTPOINT` and `cosfs unmount MOUNTPOINT`.
//!
//! Order of work, so that every usual mistake is reported before anything is mounted:
//! 1. arguments (bucket name, region/endpoint, sizes, modes) and the mountpoint (an existing,
//!    empty directory) are checked, credentials resolved;
//! 2. without `-f`, the process forks before any thread exists; the parent waits on a pipe
//!    and exits 0 once the child reports the mount live, or 1 with the child's reason;
//! 3. one LIST of the mount prefix proves the endpoint answers, the credentials work and the
//!    bucket exists (each failure gets its own message);
//! 4. the FUSE session is mounted read-only and served on this thread; SIGINT/SIGTERM
//!    unmount (lazily if files are still open) and the process exits 0.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cos::config::TimeBudget;
use crate::cos::credentials::{self, CredentialSources};
use crate::cos::{ClientConfig, CosClient, Endpoint, ListRequest, ObjectStore};
use crate::fs::attr::AttrDefaults;
use crate::fs::names::normalize_prefix;
use crate::fs::{CosFs, FsConfig};
use crate::fuse::FuseAdapter;
use crate::store::LocalStore;

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
    #[arg(long)]
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
    /// Owner of objects without POSIX metadata (default: the mounting user).
    #[arg(long, value_parser = values::id, allow_negative_numbers = true)]
    pub uid: Option<u32>,
    /// Group of objects without POSIX metadata (default: the mounting user's group).
    #[arg(long, value_parser = values::id, allow_negative_numbers = true)]
    pub gid: Option<u32>,
    /// Permission bits (octal) of files without POSIX metadata.
    #[arg(long, default_value = "0644", value_parser = values::mode)]
    pub file_mode: u32,
    /// Permission bits (octal) of directories without POSIX metadata.
    #[arg(long, default_value = "0755", value_parser = values::mode)]
    pub dir_mode: u32,
    /// Seconds that attributes and "no such file" answers are trusted (0 to 86400, fractions
    /// allowed).
    #[arg(long, default_value = "1", value_parser = values::ttl, allow_negative_numbers = true)]
    pub metadata_ttl: Duration,
    /// Attributes of listed entries: `on` HEADs every entry of a listing (pipelined, see
    /// --listing-heads) so `ls -l`, `find` and `cp -a` see the modes, owners, times and
    /// symlinks Tencent cosfs and s3fs stored; `off` shows what the listing alone tells (the
    /// defaults above, Last-Modified as mtime, symlinks as files), for buckets that hold no
    /// POSIX metadata.
    #[arg(long, default_value = "on", value_parser = values::on_off, action = clap::ArgAction::Set)]
    pub listing_metadata: bool,
    /// HEADs of listed entries in flight for the whole mount (1..1024).
    #[arg(long, default_value = "128", value_parser = clap::value_parser!(u16).range(1..=1024), allow_negative_numbers = true)]
    pub listing_heads: u16,
    /// Memory budget of the block cache (bytes, or with K/M/G suffix; 4M up to the machine's
    /// memory).
    #[arg(long, default_value = "256M", value_parser = values::cache_size)]
    pub cache_size: u64,
    /// Directory for staging files of files modified in place (default: /var/cache/cosfs as
    /// root, else $XDG_CACHE_HOME/cosfs or ~/.cache/cosfs). Staging files are unlinked at
    /// once, so nothing is left there after a crash.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes staging files may hold together; past it writes fail with ENOSPC.
    #[arg(long, default_value = "4G", value_parser = values::cache_dir_size)]
    pub cache_dir_size: u64,
    /// Size of the first upload parts (1M..5G); it doubles every 100 parts of a big file.
    #[arg(long, default_value = "8M", value_parser = values::part_size)]
    pub part_size: u64,
    /// Part uploads in flight for the whole mount (1..256).
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u16).range(1..=256), allow_negative_numbers = true)]
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
    #[arg(long, default_value = "30", value_parser = values::op_timeout, allow_negative_numbers = true)]
    pub op_timeout: Duration,
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

/// `/var/cache/cosfs` for root, else the XDG cache directory.
fn default_cache_dir() -> PathBuf {
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
struct Prepared {
    bucket: String,
    prefix: String,
    mountpoint: PathBuf,
    backend: Backend,
    fs_cfg: FsConfig,
}

/// Where the bucket's objects are.
enum Backend {
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

/// `BUCKET[:/prefix]` as bucket and key prefix.
fn split_spec(spec: &str) -> (String, String) {
    match spec.split_once(':') {
        Some((b, p)) => (b.to_string(), normalize_prefix(p)),
        None => (spec.to_string(), String::new()),
    }
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
    let (bucket, prefix) = split_spec(spec);
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

fn prepare(a: &MountArgs) -> Result<Prepared, String> {
    let (bucket, prefix, backend) = match &a.local_store {
        Some(dir) => {
            let (bucket, prefix) = split_spec(&a.bucket);
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
        super::logging::LogFile::open(log)
            .map_err(|e| format!("cannot open log file {}: {e}", log.display()))?;
    }
    let cache_dir = a.cache_dir.clone().unwrap_or_else(default_cache_dir);
    if !a.read_only {
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| format!("cannot use {} as cache directory: {e}", cache_dir.display()))?;
    }
    let fs_cfg = FsConfig {
        prefix: prefix.clone(),
        defaults,
        metadata_ttl: a.metadata_ttl,
        cache_bytes: a.cache_size,
        read_only: a.read_only,
        cache_dir,
        cache_dir_bytes: a.cache_dir_size,
        part_size: a.part_size,
        upload_concurrency: a.upload_concurrency as usize,
        op_timeout: a.op_timeout,
        listing_metadata: a.listing_metadata,
        listing_heads: a.listing_heads as usize,
    };
    Ok(Prepared {
        bucket,
        prefix,
        mountpoint,
        backend,
        fs_cfg,
    })
}

fn check_mountpoint(p: &Path, nonempty_ok: bool) -> Result<(), String> {
    let md = match std::fs::metadata(p) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            clear_stale_mount(p)?;
            std::fs::metadata(p)
        }
        other => other,
    }
    .map_err(|e| format!("mountpoint {}: {e}", p.display()))?;
    if !md.is_dir() {
        return Err(format!("mountpoint {} is not a directory", p.display()));
    }
    let mut entries =
        std::fs::read_dir(p).map_err(|e| format!("mountpoint {}: {e}", p.display()))?;
    if !nonempty_ok && entries.next().is_some() {
        return Err(format!(
            "mountpoint {} is not empty (is something already mounted there? --nonempty mounts anyway)",
            p.display()
        ));
    }
    Ok(())
}

/// The filesystem type and source of the mount on `p` (absolute, not canonicalised: a dead
/// mount cannot be resolved), from /proc/self/mountinfo; the last one mounted there wins.
fn mount_type(p: &Path) -> Option<(String, String)> {
    let want = p.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .filter_map(|l| {
            let mut f = l.split(" - ").nth(1)?.split(' ');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .next()
}

/// A cosfs process died without unmounting (kill -9, OOM): its mountpoint answers ENOTCONN.
/// Detach that dead mount so this one can take its place; anything else is left alone.
fn clear_stale_mount(p: &Path) -> Result<(), String> {
    let abs = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    let found = mount_type(&abs);
    match &found {
        // Ours: fuse.cosfs through fusermount, or plain fuse with our fsname as root.
        Some((t, src)) if t == "fuse.cosfs" || (t == "fuse" && src.starts_with("cosfs:")) => {
            unmount(&abs, true)?;
            eprintln!(
                "cosfs mount: {} held a dead cosfs mount (its process had died); detached it",
                abs.display()
            );
            Ok(())
        }
        _ => Err(format!(
            "mountpoint {} is a dead mount ({}) whose process is gone; unmount it: umount -l {}",
            abs.display(),
            found.as_ref().map_or("unknown type", |(t, _)| t.as_str()),
            abs.display()
        )),
    }
}

/// One LIST of the prefix: the cheapest request that proves endpoint, credentials and bucket.
async fn preflight(client: &CosClient, bucket: &str, prefix: &str) -> Result<(), String> {
    let req = ListRequest {
        prefix: prefix.to_string(),
        delimiter: Some("/".into()),
        max_keys: 1,
        ..Default::default()
    };
    let endpoint = client.config().endpoint.base_url();
    let secret_id = client.secret_id().await.map(|id| super::check::mask(&id));
    client.list_objects(&req).await.map(|_| ()).map_err(|e| {
        let target = super::diagnose::Target {
            bucket,
            base_url: &endpoint,
            prefix,
            secret_id: secret_id.as_deref(),
        };
        super::diagnose::list_failure(&e, &target).to_string()
    })
}

/// `cosfs mount`: returns the exit code.
pub fn run(args: MountArgs) -> i32 {
    let prep = match prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cosfs mount: {e}");
            return 1;
        }
    };
    if args.foreground {
        let log = super::logging::init(&args.log_level, args.log_file.as_deref())
            .ok()
            .flatten();
        return serve_mount(&args, prep, log, |r| match r {
            Ok(msg) => {
                let mut out = std::io::stdout();
                let _ = writeln!(out, "{msg}");
                let _ = out.flush();
            }
            Err(e) => eprintln!("cosfs mount: {e}"),
        });
    }
    daemonise(&args, prep)
}

/// Fork; the parent waits for the child's "ready" or its reason for failing.
fn daemonise(args: &MountArgs, prep: Prepared) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds we then own; fork happens while this process has one thread.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("cosfs mount: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("cosfs mount: fork: {}", std::io::Error::last_os_error());
            1
        }
        0 => {
            drop(rd);
            unsafe { libc::setsid() };
            let mut report = std::fs::File::from(wr);
            let log = match &args.log_file {
                Some(path) => super::logging::init(&args.log_level, Some(path))
                    .ok()
                    .flatten(),
                None => None,
            };
            serve_mount(args, prep, log, move |r| {
                let line = match r {
                    Ok(_) => "OK\n".to_string(),
                    Err(e) => format!("ERR {e}\n"),
                };
                let _ = report.write_all(line.as_bytes());
                // The parent is gone after this; nothing of ours may write to its terminal.
                redirect_stdio_to_null();
            })
        }
        _child => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            match msg.strip_prefix("OK") {
                Some(_) => 0,
                None => {
                    let reason = msg.strip_prefix("ERR ").unwrap_or("").trim();
                    if reason.is_empty() {
                        eprintln!(
                            "cosfs mount: the mount process exited before the mount was ready"
                        );
                    } else {
                        eprintln!("cosfs mount: {reason}");
                    }
                    1
                }
            }
        }
    }
}

fn redirect_stdio_to_null() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors; `null` stays open until here.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Build the runtime, check the bucket, mount and serve until unmounted. `ready` is called
/// exactly once: with a message once the mount is live, or with the reason it is not.
fn serve_mount(
    args: &MountArgs,
    prep: Prepared,
    log: Option<Arc<super::logging::LogFile>>,
    ready: impl FnOnce(Result<String, String>) + Send + 'static,
) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ready(Err(format!("cannot start runtime: {e}")));
            return 1;
        }
    };
    let (store, client) = match open_store(&rt, &prep) {
        Ok(s) => s,
        Err(e) => {
            ready(Err(e));
            return 1;
        }
    };
    let fs: Arc<CosFs<dyn ObjectStore>> = Arc::new(CosFs::new(store, prep.fs_cfg.clone()));
    let adapter = FuseAdapter::new(fs.clone(), rt.handle().clone());
    let mut options = vec![
        fuser::MountOption::FSName(format!("cosfs:{}", prep.bucket)),
        fuser::MountOption::Subtype("cosfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    if args.read_only {
        options.push(fuser::MountOption::RO);
    }
    if args.noexec {
        options.push(fuser::MountOption::NoExec);
    }
    if args.allow_other {
        options.push(fuser::MountOption::AllowOther);
    }
    let mut session = match fuser::Session::new(adapter, &prep.mountpoint, &options) {
        Ok(s) => s,
        Err(e) => {
            ready(Err(format!(
                "cannot mount on {}: {e}",
                prep.mountpoint.display()
            )));
            return 1;
        }
    };
    let started = std::time::Instant::now();
    let socket = {
        let _enter = rt.enter();
        let (client, fs) = (client.clone(), fs.clone());
        let answer = Arc::new(move || super::control::stats_line(client.as_deref(), &fs, started));
        super::control::listen(&prep.mountpoint, answer)
            .map_err(|e| tracing::warn!(error = %e, "no control socket: cosfs stats will not work"))
            .ok()
    };
    rt.spawn(super::lifecycle::supervise(super::lifecycle::Running {
        fs: fs.clone(),
        mountpoint: prep.mountpoint.clone(),
        stop_timeout: args.stop_timeout,
        log,
        socket: socket.clone(),
    }));
    let message = format!(
        "cosfs: {}{} mounted on {}",
        prep.bucket,
        if prep.prefix.is_empty() {
            String::new()
        } else {
            format!(":/{}", prep.prefix.trim_end_matches('/'))
        },
        prep.mountpoint.display()
    );
    // Ready once the mount answers: the stat waits for the kernel's INIT and our getattr.
    let mountpoint = prep.mountpoint.clone();
    std::thread::spawn(move || match answers(&mountpoint) {
        Ok(()) => {
            raise_readahead(&mountpoint);
            super::notify::notify(&format!("READY=1\nSTATUS={message}"));
            ready(Ok(message));
        }
        Err(e) => ready(Err(e)),
    });
    let result = session.run();
    drop(session);
    // Unmounted from outside (umount, cosfs unmount): the control socket goes too.
    if let Some(p) = &socket {
        let _ = std::fs::remove_file(p);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "FUSE session failed");
            1
        }
    }
}

/// A mount's store, and the COS client behind it if there is one (for `cosfs stats`).
type OpenedStore = (Arc<dyn ObjectStore>, Option<Arc<CosClient>>);

/// The bucket's store, checked: for COS, a client whose preflight passed (and that client,
/// for `cosfs stats`); for `--local-store`, the store directory opened and locked.
fn open_store(rt: &tokio::runtime::Runtime, prep: &Prepared) -> Result<OpenedStore, String> {
    let (client_cfg, creds) = match &prep.backend {
        Backend::Local(dir) => {
            let store = LocalStore::open(dir, &prep.bucket)
                .map_err(|e| format!("local store {}: {e}", dir.display()))?;
            return Ok((Arc::new(store), None));
        }
        Backend::Cos { client_cfg, creds } => (client_cfg.as_ref(), creds),
    };
    let client =
        Arc::new(CosClient::new(client_cfg.clone(), creds.clone()).map_err(|e| e.to_string())?);
    // The preflight gives up sooner than file operations do (a typo should not take a
    // minute: refusals are not retried at all), yet rides out a passing 503 or dropped
    // connection: 4 attempts, under a second of backoff.
    let mut quick = client_cfg.clone();
    quick.retry.max_attempts = 4;
    let checker = CosClient::new(quick, creds.clone()).map_err(|e| e.to_string())?;
    rt.block_on(preflight(&checker, &prep.bucket, &prep.prefix))?;
    // A skewed clock found by the preflight is corrected before the first operation.
    client.adopt_clock_offset(checker.clock_offset_secs());
    Ok((client.clone(), Some(client)))
}

/// Whether `mountpoint` is a mount that answers (its root is on another device than its
/// parent directory).
fn answers(mountpoint: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| format!("the mount on {} does not answer: {e}", mountpoint.display()))?;
    let parent = mountpoint.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(parent) {
        Ok(p) if p.dev() == md.dev() => Err(format!("{} is not mounted", mountpoint.display())),
        _ => Ok(()),
    }
}

/// Ask the kernel for 1 MiB readahead on this mount (the default is 128 KiB), so sequential
/// reads arrive as large requests. Needs root; best effort. Runs beside the session: the
/// stat waits until the kernel's INIT is answered, which would otherwise reset the value.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(mountpoint) else {
        return;
    };
    let (major, minor) = (libc::major(md.dev()), libc::minor(md.dev()));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, "1024") {
        tracing::debug!(path, error = %e, "could not raise readahead");
    }
}

/// How an unmount went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Clean,
    /// Busy, so detached lazily: open files keep their (now unreachable) connection.
    Detached,
}

/// Unmount `mountpoint`: umount(2) as root, else `fusermount3 -u`. With `lazy_if_busy`, a
/// busy mount is detached.
pub fn unmount(mountpoint: &Path, lazy_if_busy: bool) -> Result<Unmounted, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| "mountpoint contains NUL".to_string())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(Unmounted::Clean);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) if lazy_if_busy => {
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return Ok(Unmounted::Detached);
            }
            Err(std::io::Error::last_os_error().to_string())
        }
        Some(libc::EBUSY) => Err(format!(
            "{} is busy (files are open); close them or use --lazy",
            mountpoint.display()
        )),
        Some(libc::EINVAL) => Err(format!("{} is not a mount point", mountpoint.display())),
        Some(libc::EPERM) => fusermount_unmount(mountpoint, lazy_if_busy),
        _ => Err(format!("{}: {err}", mountpoint.display())),
    }
}

fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<Unmounted, String> {
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(mountpoint)
        .output()
        .map_err(|e| format!("fusermount3: {e}"))?;
    if out.status.success() {
        Ok(if lazy {
            Unmounted::Detached
        } else {
            Unmounted::Clean
        })
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// `cosfs unmount`: returns the exit code.
pub fn run_unmount(args: UnmountArgs) -> i32 {
    let target = args
        .mountpoint
        .canonicalize()
        .unwrap_or_else(|_| args.mountpoint.clone());
    match unmount(&target, args.lazy) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("cosfs unmount: {e}");
            1
        }
    }
}
