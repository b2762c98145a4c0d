//! The metrics endpoint (`--metrics-listen`): `GET /metrics` answers the Prometheus text
//! format, checked with the reference parser (prometheus_client, tests/metrics_parse.py), and
//! its figures follow what the mount did: COS requests by operation and outcome with latency
//! histograms, bytes, FUSE requests and errors by errno, memory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::mount::{Backend, Mounted};
use serde_json::Value;

/// (status line, content type, body) of `GET path`.
fn get(port: u16, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole HTTP answer");
    let status = head.lines().next().unwrap().to_string();
    let kind = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, kind, body.to_string())
}

/// The exposition parsed by prometheus_client: {"types": {family: type}, "samples": [...]}.
fn parse(text: &str) -> Value {
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/metrics_parse.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`, if there is one.
fn value(m: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m["samples"].as_array().unwrap().iter().find_map(|s| {
        let matches = s["name"] == name
            && labels
                .iter()
                .all(|(k, v)| s["labels"][*k].as_str() == Some(*v));
        matches.then(|| s["value"].as_f64().unwrap())
    })
}

#[test]
fn metrics_parse_with_the_reference_parser_and_follow_what_the_mount_did() {
    let b = Backend::start();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let m = Mounted::start(&b, &["--metrics-listen", &addr]);

    let data = vec![7u8; 300_000];
    std::fs::write(m.p("f"), &data).unwrap();
    common::mount::drop_kernel_caches();
    assert_eq!(std::fs::read(m.p("f")).unwrap(), data);
    for _ in 0..3 {
        let e = std::fs::metadata(m.p("missing")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    let (status, kind, body) = get(port, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let metrics = parse(&body);
    let types = &metrics["types"];
    // prometheus_client names counter families without `_total` and histograms by their base.
    assert_eq!(types["cosfs_cos_requests"], "counter", "{types}");
    assert_eq!(types["cosfs_cos_request_duration_seconds"], "histogram");
    assert_eq!(types["cosfs_fuse_requests"], "counter");
    assert_eq!(types["cosfs_memory_used_bytes"], "gauge");

    let ok_puts = value(
        &metrics,
        "cosfs_cos_requests_total",
        &[("operation", "put"), ("outcome", "ok")],
    )
    .unwrap_or(0.0);
    assert!(ok_puts >= 1.0, "the file's PUT:\n{body}");
    let gets = value(
        &metrics,
        "cosfs_cos_requests_total",
        &[("operation", "get"), ("outcome", "ok")],
    );
    assert!(gets >= Some(1.0), "the read's GET:\n{body}");
    // The histogram counts every GET that ended, in cumulative buckets up to +Inf.
    let count = value(
        &metrics,
        "cosfs_cos_request_duration_seconds_count",
        &[("operation", "get")],
    );
    let inf = value(
        &metrics,
        "cosfs_cos_request_duration_seconds_bucket",
        &[("operation", "get"), ("le", "+Inf")],
    );
    assert_eq!(count, inf);
    assert!(count >= gets, "{body}");
    assert!(
        value(&metrics, "cosfs_cos_sent_bytes_total", &[]) >= Some(data.len() as f64),
        "{body}"
    );
    assert!(
        value(&metrics, "cosfs_cos_received_bytes_total", &[]) >= Some(data.len() as f64),
        "{body}"
    );
    assert!(
        value(
            &metrics,
            "cosfs_fuse_requests_total",
            &[("operation", "write")]
        ) >= Some(1.0)
    );
    assert!(
        value(
            &metrics,
            "cosfs_fuse_requests_total",
            &[("operation", "read")]
        ) >= Some(1.0)
    );
    assert!(
        value(
            &metrics,
            "cosfs_fuse_errors_total",
            &[("operation", "lookup"), ("errno", "ENOENT")]
        ) >= Some(1.0),
        "the failed stats:\n{body}"
    );
    assert!(value(&metrics, "cosfs_memory_limit_bytes", &[]) > Some(0.0));

    let (status, _, _) = get(port, "/other");
    assert!(status.contains(" 404 "), "{status}");
}
