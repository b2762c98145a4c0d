//! Who is calling: the kernel names the thread behind each request, but the commit rule of
//! `files` (when a close publishes) is about processes, so a thread id is mapped to its thread
//! group (the process) through `/proc/<tid>/status`; and a close by a process a signal killed
//! is told apart (`killed_by`), because what it left half written must not be published.
//!
//! The lookup happens while the caller is inside the system call (open, write, close), so the
//! thread is alive and its `/proc` entry exists, also for a process that is exiting (its files
//! are closed before it is reaped). When the entry cannot be read (another pid namespace, no
//! `/proc`), the thread id stands for the process: threads other than the opener then count
//! as other processes, so their closes publish nothing and the file goes up at the last close
//! (release) instead; nothing is lost.

/// The signal thread `tid` is dying of, if it is exiting because one killed it (`kill -9`,
/// an unhandled SIGTERM): read from `/proc/<tid>/stat` while the kernel closes its files
/// (PF_EXITING is set and the exit code is the signal by then). None for a live thread, a
/// normal exit, or when the kernel does not tell us (another user's process when cosfs is
/// not root: the fields read as 0).
pub fn killed_by(tid: u32) -> Option<i32> {
    const PF_EXITING: u64 = 0x4;
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field 9 (flags) and field 52 (exit_code), counted from 1 with the state as field 3.
    let flags: u64 = fields.get(6)?.parse().ok()?;
    let code: i32 = fields.get(49)?.parse().ok()?;
    let signal = code & 0x7f;
    (flags & PF_EXITING != 0 && signal != 0).then_some(signal)
}

/// The process (thread group id) of kernel thread `tid`; `tid` itself when unknown.
pub fn process_of(tid: u32) -> u32 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return tid;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tid)
}

#[cfg(test)]
mod tests {
    use super::process_of;

    #[test]
    fn threads_map_to_their_process() {
        let me = std::process::id();
        assert_eq!(process_of(me), me);
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            done_rx.recv().unwrap();
        });
        let live = rx.recv().unwrap();
        assert_ne!(live, me);
        assert_eq!(
            process_of(live),
            me,
            "a live thread belongs to this process"
        );
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(process_of(u32::MAX - 7), u32::MAX - 7, "unknown: itself");
    }

    #[test]
    fn a_live_thread_is_not_killed() {
        assert_eq!(super::killed_by(std::process::id()), None);
        assert_eq!(super::killed_by(u32::MAX - 7), None);
    }
}
