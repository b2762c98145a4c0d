//! Where logs go, and in what shape.
//!
//! - `--log-file PATH`: appended to, with timestamps; SIGHUP reopens it (for logrotate). Logs
//!   name object keys, so the file is private: made with mode 0600, opened without following
//!   a symlink (a link planted in `/tmp` cannot make root append to another file), refused
//!   when another user owns it, and an existing file loses every permission for others (a
//!   group read bit an administrator set, for a log group such as `adm`, is kept). It must
//!   take a write when opened (`/dev/full` is refused at mount).
//! - stderr under systemd (`JOURNAL_STREAM` is set): one line per event prefixed with the
//!   syslog priority (`<3>` error ... `<7>` debug) that journald reads, no timestamps (the
//!   journal adds its own) and no colours.
//! - stderr otherwise: the usual timestamped lines.
//!
//! `RUST_LOG` overrides the level. Nothing here ever sees a secret: the client logs request
//! ids, keys and errors, never headers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An append-mode log file that can be reopened under the same path.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        })
    }

    /// Reopen the path (after logrotate moved the file away).
    pub fn reopen(&self) -> std::io::Result<()> {
        let f = open_append(&self.path)?;
        *self.file.lock().unwrap() = f;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if m.is_file() {
        let us = rustix::process::geteuid().as_raw();
        if m.uid() != us {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "it is owned by uid {}, not by this user (uid {us})",
                    m.uid()
                ),
            ));
        }
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o037 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o740))?;
        }
    }
    Ok(f)
}

/// A first line into the log, so that a file that takes no writes (`/dev/full`, a full
/// disk) is found at mount rather than when the first error has nowhere to go.
pub fn write_opening_line(log: &LogFile, what: &str) -> std::io::Result<()> {
    let mut w: &LogFile = log;
    let now = crate::timefmt::format_iso8601(std::time::SystemTime::now());
    writeln!(w, "{now} cosfs {}: {what}", env!("CARGO_PKG_VERSION"))?;
    w.flush()
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap().flush()
    }
}

/// Events prefixed with their syslog priority, for journald.
struct Journald(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// `level` for everything, except fuser's mount module: its drop tries a second unmount after
/// ours and logs the EINVAL as an error on every clean stop (our unmount reports real errors).
fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},fuser::mnt=off")))
}

/// Log to `file` if given, else to stderr (journald-shaped under systemd). Returns the file,
/// for SIGHUP.
pub fn init(level: &str, file: Option<&Path>) -> std::io::Result<Option<Arc<LogFile>>> {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(level));
    if let Some(path) = file {
        let log = Arc::new(LogFile::open(path)?);
        let _ = builder.with_ansi(false).with_writer(log.clone()).try_init();
        return Ok(Some(log));
    }
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        let format = Journald(Format::default().without_time().with_ansi(false));
        let _ = builder
            .with_ansi(false)
            .event_format(format)
            .with_writer(std::io::stderr)
            .try_init();
    } else {
        use std::io::IsTerminal;
        let _ = builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init();
    }
    Ok(None)
}
