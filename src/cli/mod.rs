//! Command line: `cosfs mount`, `cosfs unmount`, `cosfs serve` (local COS-compatible server).
//! Parsing and wiring only; each subcommand hands plain config structs to the layer that does
//! the work.

mod accept;
pub mod check;
pub mod control;
mod daemon;
pub mod diagnose;
pub mod legacy;
mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod mount_args;
mod mount_kernel;
pub mod notify;
mod preflight;
pub mod process;
pub mod serve;
pub mod values;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cosfs",
    version,
    about = "Mount a Tencent Cloud COS bucket as a filesystem"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a bucket (or a prefix of one) on a directory.
    #[command(args_override_self = true)]
    Mount(Box<mount_args::MountArgs>),
    /// Unmount a cosfs mount.
    Unmount(mount_args::UnmountArgs),
    /// Check that a bucket can be mounted: endpoint, clock, credentials, permissions.
    Check(check::CheckArgs),
    /// Print one line of statistics of a running mount.
    Stats(control::StatsArgs),
    /// Run a local COS-compatible server on a directory (for tests and try-outs).
    Serve(serve::ServeArgs),
}

/// Logging to stderr at `level` (error, warn, info, debug, trace); `RUST_LOG` overrides it.
pub fn init_logging(level: &str) {
    let _ = logging::init(level, None);
}

/// Wait for SIGINT or SIGTERM (forever if the handlers cannot be installed).
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Mount(args) => {
            process::set_sigpipe(false);
            process::raise_open_file_limit();
            mount::run(*args)
        }
        Command::Unmount(args) => mount::run_unmount(args),
        Command::Check(args) => check::run(args),
        Command::Stats(args) => control::run_stats(args),
        Command::Serve(args) => {
            process::set_sigpipe(false);
            serve::run(args)
        }
    }
}
