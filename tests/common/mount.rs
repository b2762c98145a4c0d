//! Real FUSE mounts for tests: a `cosfs serve` on its own runtime (so test code can block in
//! std::fs calls) and a `cosfs mount -f` child process on a temp dir. The mount is taken down
//! on every path, panics included: SIGTERM, then a lazy unmount and SIGKILL if that did not
//! work. Every test has its own temp dirs and ports, so tests run in parallel and a stale
//! mount of an earlier run can never be in the way.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosfs::cos::CosClient;
use cosfs::object::ObjectStore;
use cosfs::server::RunningServer;

use super::{client_with, start_server, Mode, BUCKET, SECRET_ID, SECRET_KEY};

/// A server in a temp dir, running on a runtime of its own.
pub struct Backend {
    rt: Option<tokio::runtime::Runtime>,
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub client: Arc<CosClient>,
}

impl Backend {
    pub fn start() -> Backend {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server = rt.block_on(start_server(dir.path(), Mode::Signed));
        let client = Arc::new(client_with(
            super::client_config(&server.endpoint()),
            SECRET_KEY,
        ));
        Backend {
            rt: Some(rt),
            dir,
            server,
            client,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("server is running").block_on(f)
    }

    /// Take the server down hard: every connection closes, nothing answers any more.
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Requests of operation `op` ("GetObject", "HeadObject", "ListObjects") since the last
    /// reset.
    pub fn count(&self, op: &str) -> u64 {
        self.server.stats.get(op)
    }

    pub fn reset_counts(&self) {
        self.server.stats.reset();
    }

    pub fn put(&self, key: &str, body: impl Into<bytes::Bytes>) {
        self.put_with(key, body, Default::default());
    }

    /// Upload `data` as a multipart object (8 MiB parts), as big objects from other tools are.
    pub fn put_big(&self, key: &str, data: &[u8]) {
        let body = bytes::Bytes::copy_from_slice(data);
        self.block_on(cosfs::cos::upload::put_multipart(
            &*self.client,
            key,
            body,
            &cosfs::object::PutOptions::default(),
            8 * 1024 * 1024,
            4,
        ))
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    pub fn put_with(
        &self,
        key: &str,
        body: impl Into<bytes::Bytes>,
        opts: cosfs::object::PutOptions,
    ) {
        use cosfs::object::ObjectStore;
        self.block_on(self.client.put_object(key, body.into(), &opts))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
}

/// A running `cosfs mount -f`.
pub struct Mounted {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    child: Option<Child>,
}

/// The command line of a mount of `spec` on `mnt` against `endpoint`, signed with the test
/// keys from the environment (and no other credential source).
pub fn mount_command(spec: &str, mnt: &Path, endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosfs"));
    cmd.arg("mount")
        .arg(spec)
        .arg(mnt)
        .args(["--endpoint", endpoint])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", mnt.parent().unwrap())
        .env("COS_SECRET_ID", SECRET_ID)
        .env("COS_SECRET_KEY", SECRET_KEY);
    cmd
}

impl Mounted {
    /// Mount the test bucket with extra flags; panics with the mount's stderr if it fails.
    pub fn start(backend: &Backend, extra: &[&str]) -> Mounted {
        Self::start_spec(backend, BUCKET, extra)
    }

    pub fn start_spec(backend: &Backend, spec: &str, extra: &[&str]) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let cmd = mount_command(spec, &path, &backend.endpoint());
        Self::run(cmd, dir, path, extra)
    }

    /// Mount bucket `spec` of the store directory `store` in process (`--local-store`): no
    /// server, no credentials.
    pub fn start_local(store: &Path, spec: &str, extra: &[&str]) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosfs"));
        cmd.arg("mount")
            .arg(spec)
            .arg(&path)
            .arg("--local-store")
            .arg(store)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path());
        Self::run(cmd, dir, path, extra)
    }

    fn run(mut cmd: Command, dir: tempfile::TempDir, path: PathBuf, extra: &[&str]) -> Mounted {
        let mut child = cmd
            .arg("-f")
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cosfs mount");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.contains("mounted on") {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("mount failed: {line}{err}");
        }
        Mounted {
            dir,
            path,
            child: Some(child),
        }
    }

    /// The mount process (for tests that kill it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// fsync the directory `rel`: the point where its entries' deletes have reached COS.
    #[allow(dead_code)]
    pub fn sync_dir(&self, rel: &str) {
        std::fs::File::open(self.p(rel))
            .and_then(|d| d.sync_all())
            .unwrap_or_else(|e| panic!("fsync of directory {rel:?}: {e}"));
    }

    /// Send `sig` to the mount process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill has no memory effects; the pid is our child's.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Stop with SIGTERM as a user would; returns the exit status and whether the mount is
    /// gone from the mount table.
    pub fn stop(&mut self) -> (Option<i32>, bool) {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(10))
    }

    /// Stop the mount (SIGTERM) and return what it logged on stderr.
    pub fn stop_with_log(&mut self) -> String {
        let stderr = self.child.as_mut().and_then(|c| c.stderr.take());
        self.stop();
        let mut log = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut log);
        }
        log
    }

    /// Wait up to `timeout` for the mount process to exit (then kill it); returns the exit
    /// status and whether the mount is gone from the mount table.
    pub fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, bool) {
        let Some(mut child) = self.child.take() else {
            return (None, !is_mounted(&self.path));
        };
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.and_then(|s| s.code()), !is_mounted(&self.path))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let (_, gone) = self.stop();
        if !gone {
            force_unmount(&self.path);
        }
    }
}

/// Unmounts `path` on drop if it is still mounted (tests that run `cosfs mount` themselves).
pub struct Unmounter(PathBuf);

impl Unmounter {
    pub fn new(path: &Path) -> Unmounter {
        Unmounter(path.to_path_buf())
    }
}

impl Drop for Unmounter {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            force_unmount(&self.0);
        }
    }
}

/// Whether `path` is a mount point now (from /proc/self/mounts, which never blocks on FUSE).
pub fn is_mounted(path: &Path) -> bool {
    let want = path.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
}

pub fn force_unmount(path: &Path) {
    let _ = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(path)
        .stderr(Stdio::null())
        .status();
    let _ = Command::new("umount")
        .arg("-l")
        .arg(path)
        .stderr(Stdio::null())
        .status();
}

/// close(2) of `f`, returning its errno (where a failed upload shows).
pub fn close(f: std::fs::File) -> Result<(), i32> {
    use std::os::fd::IntoRawFd;
    // SAFETY: the fd is owned by `f` and closed exactly once here.
    let rc = unsafe { libc::close(f.into_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

/// Panics if any multipart upload is left unfinished on the server. An abort that failed is
/// retried by the mount in the background (2 s later, then 4 s after that), so this waits up
/// to 15 s for the list to empty: under a loaded CI machine an abort may miss its budget twice.
pub fn no_uploads_left(b: &Backend) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = b
            .block_on(
                b.client
                    .list_multipart_uploads(&cosfs::object::ListUploadsRequest::under("")),
            )
            .unwrap();
        if page.uploads.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {:?}", page.uploads);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Drop the kernel's page cache, so the next read reaches the filesystem.
pub fn drop_kernel_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
}

/// The `cosfs stats` line of the mount `m`.
#[allow(dead_code)]
pub fn stats_line(m: &Mounted) -> String {
    let out = super::run_within(
        Command::new(env!("CARGO_BIN_EXE_cosfs"))
            .arg("stats")
            .arg(&m.path),
        30,
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `name=` in a `cosfs stats` line, if the line has it.
#[allow(dead_code)]
pub fn stats_figure(line: &str, name: &str) -> Option<u64> {
    let at = line
        .find(&format!(" {name}="))
        .or_else(|| line.find(&format!("[{name}=")))?;
    line[at + name.len() + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}
