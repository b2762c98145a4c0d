//! `cosfs mount BUCKET[:/prefix] MOUNTPOINT` and `cosfs unmount MOUNTPOINT`.
//!
//! Order of work, so that every usual mistake is reported before anything is mounted:
//! 1. arguments (bucket name, region/endpoint, sizes, modes) and the mountpoint (an existing,
//!    empty directory) are checked, credentials resolved;
//! 2. without `-f`, the process forks before any thread exists; the parent waits on a pipe
//!    and exits 0 once the child reports the mount live, or 1 with the child's reason;
//! 3. one LIST of the mount prefix proves the endpoint answers, the credentials work and the
//!    bucket exists (each failure gets its own message);
//! 4. the FUSE session is mounted and served on this thread; SIGINT/SIGTERM
//!    unmount (lazily if files are still open) and the process exits 0.
//!
//! Split by concern: `mount_args` (arguments and what they resolve to), `preflight` (the
//! store checked), `daemon` (forking), `mount_kernel` (mountpoint, readahead, unmount); this
//! module runs them in order and serves the FUSE session.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::fs::CosFs;
use crate::fuse::FuseAdapter;
use crate::object::ObjectStore;

use super::daemon::daemonise;
use super::mount_args::{prepare, MountArgs, Prepared, UnmountArgs};
use super::mount_kernel::{answers, raise_readahead, unmount};
use super::preflight::open_store;

/// `cosfs mount`: returns the exit code.
pub fn run(args: MountArgs) -> i32 {
    let prep = match prepare(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cosfs mount: {e}");
            return 1;
        }
    };
    if let Some(addr) = args.metrics_listen.filter(|a| !a.ip().is_loopback()) {
        // Said before daemonising, where the user sees it, and again in the log.
        eprintln!("cosfs mount: warning: {}", exposed_metrics(addr));
    }
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
    daemonise(&args, |log, ready| serve_mount(&args, prep, log, ready))
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
        // atime is not tracked (a copy per read): say so where tools look (/proc/mounts).
        fuser::MountOption::NoAtime,
    ];
    if args.read_only {
        options.push(fuser::MountOption::RO);
    }
    if args.noexec {
        options.push(fuser::MountOption::NoExec);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = if args.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    let threads = args
        .fuse_threads
        .unwrap_or_else(super::mount_args::default_fuse_threads);
    config.n_threads = Some(threads.into());
    // Each thread its own descriptor (FUSE_DEV_IOC_CLONE), so they do not queue on one.
    config.clone_fd = threads > 1;
    let session = match fuser::Session::new(adapter, &prep.mountpoint, &config) {
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
    let stats: Arc<dyn Fn() -> String + Send + Sync> = {
        let (client, fs) = (client.clone(), fs.clone());
        Arc::new(move || super::control::stats_line(client.as_deref(), &fs, started))
    };
    let socket = {
        let _enter = rt.enter();
        super::control::listen(&prep.mountpoint, stats.clone())
            .map_err(|e| tracing::warn!(error = %e, "no control socket: cosfs stats will not work"))
            .ok()
    };
    if !args.stats_interval.is_zero() {
        rt.spawn(super::control::log_stats_every(args.stats_interval, stats));
    }
    if let Some(addr) = args.metrics_listen {
        let (client, fs) = (client.clone(), fs.clone());
        let render: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || super::metrics::render(client.as_deref(), &fs, started));
        if !addr.ip().is_loopback() {
            tracing::warn!("{}", exposed_metrics(addr));
        }
        match rt.block_on(super::metrics::serve(addr, render)) {
            Ok(bound) => tracing::info!(%bound, "metrics at http://{bound}/metrics"),
            Err(e) => tracing::warn!(%addr, error = %e, "no metrics endpoint: cannot listen"),
        }
    }
    {
        // What gone mounts of this bucket left (uploads of a killed mount, interrupted
        // renames): done before the mount is announced, so that the mount's first requests
        // are the programs'; a long repair goes on in the background after 10 s.
        let fs = fs.clone();
        let task = rt.spawn(async move {
            let done = fs.recover().await;
            tracing::debug!(?done, "start-up recovery done");
        });
        rt.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        });
    }
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
    rt.block_on(super::lifecycle::send_last_deletes(&fs, args.stop_timeout));
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

/// What a metrics endpoint on a non-loopback address shows to whoever can reach it.
fn exposed_metrics(addr: std::net::SocketAddr) -> String {
    format!(
        "--metrics-listen {addr} is not a loopback address: anyone who can connect to it reads this \
         mount's request and error counts, bytes moved, memory use and open files (no keys, names \
         or credentials); bind it to 127.0.0.1 or keep the port behind a firewall"
    )
}

/// `cosfs unmount`: returns the exit code.
pub fn run_unmount(args: UnmountArgs) -> i32 {
    let target = args.mountpoint.canonicalize().unwrap_or_else(|_| {
        // A dead mount cannot be resolved: make it absolute as it is.
        std::env::current_dir()
            .map(|d| d.join(&args.mountpoint))
            .unwrap_or_else(|_| args.mountpoint.clone())
    });
    if let Err(e) = super::mount_kernel::check_is_cosfs_mount(&target) {
        eprintln!("cosfs unmount: {e}");
        return 1;
    }
    match unmount(&target, args.lazy) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("cosfs unmount: {e}");
            1
        }
    }
}
