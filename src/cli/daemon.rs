//! Daemonising `cosfs mount`: fork before any thread exists; the parent waits on a pipe and
//! exits 0 once the child reports the mount live, or 1 with the child's reason.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use super::mount_args::MountArgs;

/// How the child says the mount is live (`Ok`) or why it is not: called exactly once.
pub(super) type Ready = Box<dyn FnOnce(Result<String, String>) + Send>;

/// Fork; the child runs `serve` (with its log and the way to report readiness) and the parent
/// waits for the child's "ready" or its reason for failing.
pub(super) fn daemonise(
    args: &MountArgs,
    serve: impl FnOnce(Option<std::sync::Arc<super::logging::LogFile>>, Ready) -> i32,
) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds we then own; fork happens while this process has one thread.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        eprintln!("cosfs mount: pipe: {}", std::io::Error::last_os_error());
        return 1;
    }
    // SAFETY: pipe just returned these two descriptors; nothing else owns them.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no thread has been started yet (the runtime is built after the fork), so the
    // child is a complete copy of this single-threaded process.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("cosfs mount: fork: {}", std::io::Error::last_os_error());
            1
        }
        0 => {
            drop(rd);
            // SAFETY: setsid has no memory effects; it only detaches from the terminal.
            unsafe { libc::setsid() };
            let mut report = std::fs::File::from(wr);
            let log = match &args.log_file {
                Some(path) => super::logging::init(&args.log_level, Some(path))
                    .ok()
                    .flatten(),
                None => None,
            };
            serve(
                log,
                Box::new(move |r| {
                    let line = match r {
                        Ok(_) => "OK\n".to_string(),
                        Err(e) => format!("ERR {e}\n"),
                    };
                    let _ = report.write_all(line.as_bytes());
                    // The parent is gone after this; nothing of ours may write to its terminal.
                    redirect_stdio_to_null();
                }),
            )
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
