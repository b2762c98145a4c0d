//! The Prometheus endpoint of a mount (`--metrics-listen ADDR`): `GET /metrics` answers the
//! text exposition format (version 0.0.4), built from the counters the layers keep: the COS
//! client's requests (by operation and outcome, latency histograms, retries, bytes), the fs
//! core's caches and memory budget, and the FUSE adapter's requests and errors
//! (`crate::metrics`). Names follow Prometheus conventions: `cosfs_` prefix, `_total` for
//! counters, base units (`_seconds`, `_bytes`). Nothing here sends a request to COS.

use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;

use crate::cos::stats::LATENCY_BUCKETS;
use crate::cos::CosClient;
use crate::fs::CosFs;
use crate::object::ObjectStore;

/// The exposition text of a mount now.
pub fn render(client: Option<&CosClient>, fs: &CosFs<dyn ObjectStore>, started: Instant) -> String {
    let mut out = Exposition::default();
    out.family(
        "cosfs_uptime_seconds",
        "gauge",
        "Seconds since the mount started.",
    );
    out.sample("cosfs_uptime_seconds", &[], started.elapsed().as_secs_f64());

    if let Some(r) = client.map(CosClient::request_counts) {
        let name = "cosfs_cos_requests_total";
        out.family(
            name,
            "counter",
            "COS requests that ended, by operation and outcome.",
        );
        for (op, outcome, n) in &r.outcomes {
            out.sample(name, &[("operation", op), ("outcome", outcome)], *n as f64);
        }
        let name = "cosfs_cos_request_duration_seconds";
        out.family(
            name,
            "histogram",
            "Time from a COS request's first attempt to its answer's headers, retries included.",
        );
        for (op, l) in &r.latency {
            let mut cumulative = 0;
            for (k, n) in l.buckets.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS
                    .get(k)
                    .map_or("+Inf".to_string(), |b| b.to_string());
                out.sample(
                    &format!("{name}_bucket"),
                    &[("operation", op), ("le", &le)],
                    cumulative as f64,
                );
            }
            out.sample(&format!("{name}_sum"), &[("operation", op)], l.sum_seconds);
            out.sample(
                &format!("{name}_count"),
                &[("operation", op)],
                l.count() as f64,
            );
        }
        out.counter(
            "cosfs_cos_retries_total",
            "COS request attempts that were retries.",
            r.retried,
        );
        out.counter(
            "cosfs_cos_sent_bytes_total",
            "Bytes of COS request bodies.",
            r.bytes_sent,
        );
        out.counter(
            "cosfs_cos_received_bytes_total",
            "Bytes of COS response bodies (as announced).",
            r.bytes_received,
        );
    }

    let a = fs.activity();
    out.counter(
        "cosfs_cache_hits_total",
        "Block cache lookups answered from memory.",
        a.cache_hits,
    );
    out.counter(
        "cosfs_cache_misses_total",
        "Block cache lookups that waited for or started a fetch.",
        a.cache_misses,
    );
    out.gauge(
        "cosfs_memory_limit_bytes",
        "The memory budget (--memory-limit).",
        a.memory_limit,
    );
    out.gauge(
        "cosfs_memory_used_bytes",
        "Memory budget in use.",
        a.memory_used,
    );
    let name = "cosfs_memory_use_bytes";
    out.family(name, "gauge", "Memory in use, by what holds it.");
    for (what, n) in [
        ("cache", a.cache_bytes),
        ("fetching", a.fetching_bytes),
        ("write_buffers", a.write_buffer_bytes),
        ("uploading", a.upload_bytes_in_flight),
    ] {
        out.sample(name, &[("use", what)], n as f64);
    }
    out.gauge(
        "cosfs_files_open_for_writing",
        "Files open for writing, whose uploads finish at close or fsync.",
        a.open_for_writing as u64,
    );
    out.gauge(
        "cosfs_deletes_pending",
        "Deletes of unlinked entries queued or in flight (sent as DELETE Multiple).",
        fs.pending_deletes() as u64,
    );
    out.gauge(
        "cosfs_upload_bytes_in_flight",
        "Bytes of parts handed to an upload and not yet acknowledged by COS.",
        a.upload_bytes_in_flight,
    );
    if let Some((d, cap)) = a.disk {
        out.gauge(
            "cosfs_disk_cache_bytes",
            "Bytes of chunk files in the disk cache.",
            d.bytes,
        );
        out.gauge(
            "cosfs_disk_cache_limit_bytes",
            "The disk cache's size (--disk-cache-size).",
            cap,
        );
        out.counter(
            "cosfs_disk_cache_hits_total",
            "Reads served by the disk cache.",
            d.hits,
        );
        out.counter(
            "cosfs_disk_cache_misses_total",
            "Disk cache chunks that turned out missing or damaged.",
            d.misses,
        );
        out.counter(
            "cosfs_disk_cache_written_chunks_total",
            "Chunks written.",
            d.written,
        );
        out.counter(
            "cosfs_disk_cache_dropped_chunks_total",
            "Chunks not written (the writer behind, or their blocks evicted first).",
            d.dropped,
        );
        out.counter(
            "cosfs_disk_cache_damaged_chunks_total",
            "Chunks found damaged, deleted and fetched again.",
            d.corrupt,
        );
        out.counter(
            "cosfs_disk_cache_whole_files_made_total",
            "Whole files made from complete versions' chunks (for passthrough).",
            d.whole,
        );
    }

    let crate::metrics::FuseCounts { ops, errors } = crate::metrics::fuse_counts();
    let name = "cosfs_fuse_requests_total";
    out.family(name, "counter", "FUSE requests, by operation.");
    for (op, n) in ops {
        out.sample(name, &[("operation", op)], n as f64);
    }
    let name = "cosfs_fuse_errors_total";
    out.family(
        name,
        "counter",
        "FUSE requests answered with an error, by operation and errno.",
    );
    for (op, errno, n) in errors {
        out.sample(
            name,
            &[("operation", op), ("errno", &errno_name(errno))],
            n as f64,
        );
    }
    out.text
}

/// The symbolic name of an errno cosfs answers with (its number for any other).
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EBUSY => "EBUSY",
        libc::ENXIO => "ENXIO",
        _ => return errno.to_string(),
    };
    name.to_string()
}

/// Text in the exposition format: a `# HELP` and `# TYPE` per family, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (k, (l, v)) in labels.iter().enumerate() {
                if k > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', r"\\")
                    .replace('"', "\\\"")
                    .replace('\n', r"\n");
                let _ = write!(self.text, "{l}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value as f64);
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value as f64);
    }
}

/// Serve `GET /metrics` on `addr` until the process ends, answering `render()`.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    super::accept::serve_forever(listener, move |stream| {
        let render = render.clone();
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let render = render.clone();
                async move { Ok::<_, Infallible>(answer(&req, &*render)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        }
    });
    Ok(bound)
}

fn answer<B>(req: &hyper::Request<B>, render: &dyn Fn() -> String) -> hyper::Response<Full<Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            (200, "text/plain; version=0.0.4; charset=utf-8", render())
        }
        (&hyper::Method::GET, _) => (
            404,
            "text/plain",
            "not found; metrics are at /metrics\n".into(),
        ),
        _ => (405, "text/plain", "only GET\n".into()),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
