//! A running mount's life after it is ready: signals and shutdown.
//!
//! - SIGHUP reopens `--log-file` (logrotate).
//! - SIGTERM / SIGINT stop: no new writes (opening for writing, creating and namespace
//!   changes get EROFS), files already open for writing may be finished and closed for up to
//!   `--stop-timeout`, each close uploading as usual and reporting its errno. Files still open
//!   after that are given up: their unfinished uploads are aborted (COS keeps them as of their
//!   last close or fsync) and their programs get EIO. Then the mount is unmounted (lazily if
//!   readers still hold files) and the process exits 0.
//! - A second SIGTERM / SIGINT while stopping forces: uploads in progress are abandoned, the
//!   mount is detached, and the process exits 1.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::logging::LogFile;
use super::mount_kernel::{unmount, Unmounted};
use super::notify::notify;
use crate::fs::CosFs;
use crate::object::ObjectStore;

pub(crate) struct Running {
    pub fs: Arc<CosFs<dyn ObjectStore>>,
    pub mountpoint: PathBuf,
    pub stop_timeout: Duration,
    pub log: Option<Arc<LogFile>>,
    pub socket: Option<PathBuf>,
}

/// Handle signals until the mount is stopped. Returns only when the unmount was clean (the
/// FUSE session then ends and the caller exits 0); otherwise exits the process itself.
pub(crate) async fn supervise(run: Running) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop this mount with cosfs unmount");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reopen_log(&run),
        }
    }
    let mnt = run.mountpoint.display().to_string();
    notify("STOPPING=1\nSTATUS=stopping: finishing files open for writing");
    run.fs.begin_stop();
    let open = run.fs.open_for_writing();
    tracing::info!(mountpoint = %mnt, open_for_writing = open, timeout = ?run.stop_timeout, "stopping");
    let second = async {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    };
    tokio::pin!(second);
    let drained = tokio::select! {
        _ = drained(&run.fs) => true,
        _ = tokio::time::sleep(run.stop_timeout) => false,
        _ = &mut second => return force(&run).await,
    };
    if !drained {
        tokio::select! {
            given_up = run.fs.abort_writers(true) => tracing::warn!(
                mountpoint = %mnt, files = ?given_up,
                "stop timeout: gave up on files still open for writing; COS keeps them as of \
                 their last close or fsync, their programs get EIO"
            ),
            _ = &mut second => return force(&run).await,
        }
    }
    remove_socket(&run);
    match unmount(&run.mountpoint, true) {
        Ok(Unmounted::Clean) => {} // the session sees the unmount and returns
        Ok(Unmounted::Detached) => {
            tracing::info!(mountpoint = %mnt, "detached while files are open; they now fail with ENOTCONN");
            send_last_deletes(&run.fs, run.stop_timeout).await;
            std::process::exit(0);
        }
        Err(e) => {
            tracing::error!(mountpoint = %mnt, error = %e, "unmount failed");
            std::process::exit(1);
        }
    }
}

/// The deletes still queued (`rm` just before the unmount) reach COS before the process goes,
/// within `limit`; what failed or did not make it is logged.
pub async fn send_last_deletes(fs: &CosFs<dyn ObjectStore>, limit: Duration) {
    match tokio::time::timeout(limit, fs.settle_deletes("")).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "at unmount"),
        Err(_) => tracing::error!(
            deletes = fs.pending_deletes(),
            "stop timeout: deletes of unlinked entries not sent; their keys stay on COS"
        ),
    }
}

async fn drained(fs: &CosFs<dyn ObjectStore>) {
    while fs.open_for_writing() > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The second signal: abandon what is in flight and go.
async fn force(run: &Running) {
    let given_up = run.fs.abort_writers(false).await;
    tracing::warn!(mountpoint = %run.mountpoint.display(), files = ?given_up, "second signal: stopping now; unfinished uploads abandoned");
    remove_socket(run);
    let _ = unmount(&run.mountpoint, true);
    std::process::exit(1);
}

fn reopen_log(run: &Running) {
    if let Some(log) = &run.log {
        match log.reopen() {
            Ok(()) => tracing::info!(path = %log.path().display(), "log file reopened"),
            Err(e) => eprintln!("cosfs: cannot reopen {}: {e}", log.path().display()),
        }
    }
}

fn remove_socket(run: &Running) {
    if let Some(p) = &run.socket {
        let _ = std::fs::remove_file(p);
    }
}
