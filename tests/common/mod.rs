//! Shared test scaffolding: a `cosfs serve` instance in a temp dir on a random loopback port,
//! and a client for it. The server runs on the test's own runtime and stops when dropped.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cosfs::cos::{ClientConfig, CosClient, Credentials, Endpoint, StaticProvider};
use cosfs::server::{self, AuthMode, FaultConfig, RunningServer, ServerConfig};

pub const BUCKET: &str = "test-1250000000";
pub const SECRET_ID: &str = "AKIDtestsecretid0000000000000000";
pub const SECRET_KEY: &str = "testsecretkey0000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Signed,
    Anonymous,
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub client: CosClient,
    pub mode: Mode,
}

pub async fn start_server(dir: &std::path::Path, mode: Mode) -> RunningServer {
    let auth = match mode {
        Mode::Signed => AuthMode::Keys(vec![Credentials::new(SECRET_ID, SECRET_KEY)]),
        Mode::Anonymous => AuthMode::Anonymous,
    };
    server::start(ServerConfig {
        root: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        auth,
        buckets: vec![BUCKET.to_string()],
        faults: FaultConfig::default(),
        region: cosfs::server::DEFAULT_REGION.into(),
    })
    .await
    .expect("start server")
}

/// A client config for `endpoint` with fast retries (tests should not sleep seconds).
pub fn client_config(endpoint: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(BUCKET, Endpoint::from_url(BUCKET, endpoint).unwrap()).unwrap();
    cfg.retry.base_delay = Duration::from_millis(5);
    cfg.retry.max_delay = Duration::from_millis(50);
    cfg
}

pub fn client_with(cfg: ClientConfig, secret_key: &str) -> CosClient {
    CosClient::new(
        cfg,
        Some(Arc::new(StaticProvider(Credentials::new(
            SECRET_ID, secret_key,
        )))),
    )
    .unwrap()
}

impl Env {
    pub async fn new(mode: Mode) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let server = start_server(dir.path(), mode).await;
        // In anonymous mode the client still signs: the server must simply not check.
        let client = client_with(client_config(&server.endpoint()), SECRET_KEY);
        Env {
            dir,
            server,
            client,
            mode,
        }
    }
}

/// Run a command to completion, its output captured; kills it and panics after `secs`.
pub fn run_within(cmd: &mut std::process::Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {secs} s")
        })
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Read a whole object into memory.
pub async fn get_all(c: &CosClient, key: &str) -> bytes::Bytes {
    use cosfs::object::{GetOptions, ObjectStore};
    c.get_object(key, &GetOptions::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

/// A minimal HTTP/1.1 server on a random loopback port for fakes (a misbehaving COS, a CVM
/// metadata service): `answer` gets the request head and returns (status line, body); every
/// answer closes the connection. Returns the base URL and a count of requests answered.
pub async fn fake_http<F>(answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(&str) -> (&'static str, String) + Send + Sync + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, answer) = (hits.clone(), Arc::new(answer));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (h, answer) = (h.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read the head and the (small) body it announces.
                let head = loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len {
                            break text[..end].to_string();
                        }
                    }
                };
                h.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answer(&head);
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}
pub mod mount;
pub mod posix;
pub mod serve;

/// A loopback port nothing listens on now (for endpoints that must refuse, or a listener the
/// mount opens itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
