//! `cosfs serve`: a single-node COS-compatible server on a local directory.
//!
//! It exists so that every test, benchmark and first-time user has a real COS endpoint on this
//! machine. It speaks the XML API as COS does (signatures, listings, ranges, conditions, copy,
//! multipart limits, CRC-64, errors) over HTTP/1.1, stores objects durably (`storage.rs`), streams
//! bodies both ways (`blob.rs`), and can inject faults (`faults.rs`). Its answers are what
//! Tencent's own clients expect (header spellings, `header_case.rs`); the subresources it
//! implements (canned ACLs, tagging, location, versions) and its refusal of all others are in
//! `subresources.rs`. It is a test and try-out server, not a production object store: one
//! directory, ACLs stored but not enforced, no versioning.
//!
//! Admin endpoints (no bucket can be named `-`): `GET /-/stats` (JSON request counts),
//! `GET /-/faults` and `PUT /-/faults` (JSON `FaultConfig`).

mod auth;
mod bucket_ops;
pub mod faults;
mod header_case;
mod multipart;
mod objects;
mod request;
mod subresources;
mod xmlout;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub use auth::AuthMode;
pub use faults::{FaultConfig, Faults, Stats};
use request::{full, Answer, Ctx, ErrorResponse, Resp, StoreError};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory holding one subdirectory per bucket.
    pub root: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    pub auth: AuthMode,
    /// Buckets to create at start (in addition to those already under `root`).
    pub buckets: Vec<String>,
    pub faults: FaultConfig,
    /// What `GET /?location` answers (`--region`).
    pub region: String,
}

/// The region `cosfs serve` says its buckets are in unless told otherwise.
pub const DEFAULT_REGION: &str = "ap-guangzhou";

pub struct State {
    storage: crate::local::storage::Storage,
    auth: AuthMode,
    spelling: header_case::HeaderSpelling,
    region: String,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    next_request: AtomicU64,
}

/// A server running on the current tokio runtime. Dropping it stops accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    pub stats: Arc<Stats>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting new connections (connections in progress finish on their own).
    pub fn stop(&self) {
        self.accept_task.abort();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Open the store, bind, and start serving in the background.
pub async fn start(cfg: ServerConfig) -> std::io::Result<RunningServer> {
    let storage = crate::local::storage::Storage::open(&cfg.root)?;
    for b in &cfg.buckets {
        if !crate::cos::config::valid_bucket_name(b) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "bucket name {b:?} must look like name-APPID (e.g. examplebucket-1250000000)"
                ),
            ));
        }
        storage.create_bucket(b)?;
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State {
        storage,
        auth: cfg.auth,
        spelling: header_case::HeaderSpelling::learn().await?,
        region: cfg.region,
        faults: Arc::new(Faults::new(cfg.faults)),
        stats: Arc::new(Stats::default()),
        next_request: AtomicU64::new(1),
    });
    let (faults, stats) = (state.faults.clone(), state.stats.clone());
    let accept_task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let st = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    Ok(RunningServer {
        addr,
        faults,
        stats,
        accept_task,
    })
}

/// Outcome of one request: an answer, or (injected fault) a dropped connection.
async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    if req.uri().path().starts_with("/-/") {
        return Ok(admin(&st, req).await);
    }
    let cfg = st.faults.get();
    let now = offset_now(cfg.clock_offset_secs);
    let request_id = format!(
        "{:x}-{:06}",
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
        st.next_request.fetch_add(1, Ordering::Relaxed)
    );
    if cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
    }
    let method = req.method().clone();
    let resource = req.uri().path().to_string();
    let injected = st.faults.pick(method.as_str());
    let fault_err = match injected {
        faults::Injected::SlowDown => Some(StoreError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate. (injected fault)",
        )),
        faults::Injected::InternalError => Some(StoreError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again. (injected fault)",
        )),
        faults::Injected::Hang => {
            st.stats.count("InjectedHang");
            std::future::pending::<()>().await;
            None
        }
        faults::Injected::Drop if method != Method::GET => {
            return Err(std::io::Error::other("injected fault: connection dropped"));
        }
        _ => None,
    };
    let mut resp = match fault_err {
        Some(e) => {
            st.stats.count("InjectedFault");
            e.response(&method, &resource, &request_id)
        }
        None => match route(
            &st,
            req,
            now,
            &request_id,
            injected == faults::Injected::Drop,
        )
        .await
        {
            Ok(r) if injected == faults::Injected::LoseAnswer => {
                // Carried out to its end (a Complete merges while its answer streams), then
                // the connection is cut instead of the answer.
                let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                st.stats.count("InjectedLostAnswer");
                return Err(std::io::Error::other("injected fault: answer lost"));
            }
            Ok(r) => r,
            Err(e) => e.response(&method, &resource, &request_id),
        },
    };
    let h = resp.headers_mut();
    h.insert("x-cos-request-id", request_id.parse().expect("ascii id"));
    h.insert(
        "date",
        httpdate::fmt_http_date(now).parse().expect("ascii date"),
    );
    h.insert("server", http::HeaderValue::from_static("tencent-cos"));
    st.spelling.apply(&mut resp);
    Ok(resp)
}

fn offset_now(offset_secs: i64) -> SystemTime {
    let now = SystemTime::now();
    if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs as u64)
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    }
}

async fn route(
    st: &State,
    req: Request<Incoming>,
    now: SystemTime,
    request_id: &str,
    drop_mid_body: bool,
) -> Answer {
    let (parts, body) = req.into_parts();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok());
    let Some(request::Target {
        bucket,
        key,
        params,
    }) = request::parse_target(host, parts.uri.path(), parts.uri.query())?
    else {
        return Err(StoreError::bad_request(
            "InvalidRequest",
            "this server has no GET Service; name a bucket",
        ));
    };
    let ctx = Ctx {
        method: parts.method,
        bucket,
        key,
        params,
        headers: parts.headers,
        request_id: request_id.to_string(),
        now,
    };
    let op = op_name(&ctx)?;
    st.stats.count(op);
    auth::verify(&st.auth, &ctx)?;
    subresources::check_params(&ctx)?;
    match op {
        "PutBucket" => return bucket_ops::put_bucket(st, &ctx),
        "DeleteBucket" => return bucket_ops::delete_bucket(st, &ctx),
        _ => {}
    }
    let b = st
        .storage
        .bucket(&ctx.bucket)
        .ok_or_else(StoreError::no_such_bucket)?;
    match op {
        "HeadBucket" => Ok(Response::builder()
            .body(request::empty())
            .expect("response")),
        "GetBucketAcl" => subresources::get_bucket_acl(&b),
        "PutBucketAcl" => subresources::put_bucket_acl(&ctx, &b, body).await,
        "GetBucketLocation" => subresources::get_location(&st.region),
        "ListObjectVersions" => subresources::list_versions(&ctx, &b),
        "GetObjectAcl" => subresources::get_object_acl(&ctx, &b),
        "PutObjectAcl" => subresources::put_object_acl(&ctx, &b, body).await,
        "GetObjectTagging" => subresources::get_tagging(&ctx, &b),
        "PutObjectTagging" => subresources::put_tagging(&ctx, &b, body).await,
        "DeleteObjectTagging" => subresources::delete_tagging(&ctx, &b),
        "ListMultipartUploads" => multipart::list_uploads(&ctx, &b),
        "ListObjects" => bucket_ops::list_objects(&ctx, &b),
        "DeleteMultiple" => bucket_ops::delete_multiple(&ctx, &b, body).await,
        "HeadObject" => objects::get(st, &ctx, &b, true, false).await,
        "GetObject" => objects::get(st, &ctx, &b, false, drop_mid_body).await,
        "ListParts" => multipart::list_parts(&ctx, &b),
        "UploadPartCopy" | "UploadPart" => multipart::upload_part(st, &ctx, b, body).await,
        "CopyObject" => objects::copy(st, &ctx, b).await,
        "PutObject" => objects::put(st, &ctx, b, body).await,
        "AppendObject" => objects::append(st, &ctx, b, body).await,
        "PostObjectRestore" => objects::restore(st, &ctx, &b, body).await,
        "InitiateMultipartUpload" => multipart::initiate(&ctx, &b),
        "CompleteMultipartUpload" => multipart::complete(st, &ctx, b, body).await,
        "AbortMultipartUpload" => multipart::abort(&ctx, &b),
        "DeleteObject" => objects::delete(&b, &ctx),
        other => Err(subresources::not_implemented(other)),
    }
}

/// The COS operation a request is (also the name it is counted under in the stats).
fn op_name(ctx: &Ctx) -> Result<&'static str, StoreError> {
    let unsupported = || {
        StoreError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "unsupported operation",
        )
    };
    let m = &ctx.method;
    let acl = ctx.has_param("acl");
    let tagging = ctx.has_param("tagging");
    if ctx.key.is_empty() {
        return Ok(match *m {
            _ if tagging => return Err(subresources::not_implemented("bucket tagging")),
            Method::GET if acl => "GetBucketAcl",
            Method::PUT if acl => "PutBucketAcl",
            _ if acl => return Err(unsupported()),
            Method::GET if ctx.has_param("location") => "GetBucketLocation",
            Method::GET if ctx.has_param("versions") => "ListObjectVersions",
            Method::PUT => "PutBucket",
            Method::DELETE => "DeleteBucket",
            Method::HEAD => "HeadBucket",
            Method::GET if ctx.has_param("uploads") => "ListMultipartUploads",
            Method::GET => "ListObjects",
            Method::POST if ctx.has_param("delete") => "DeleteMultiple",
            _ => return Err(unsupported()),
        });
    }
    let upload = ctx.has_param("uploadId");
    let copy = ctx.headers.contains_key("x-cos-copy-source");
    Ok(match *m {
        Method::GET if acl => "GetObjectAcl",
        Method::PUT if acl => "PutObjectAcl",
        _ if acl => return Err(unsupported()),
        Method::GET if tagging => "GetObjectTagging",
        Method::PUT if tagging => "PutObjectTagging",
        Method::DELETE if tagging => "DeleteObjectTagging",
        _ if tagging => return Err(unsupported()),
        Method::HEAD => "HeadObject",
        Method::GET if upload => "ListParts",
        Method::GET => "GetObject",
        Method::PUT if upload && copy => "UploadPartCopy",
        Method::PUT if upload => "UploadPart",
        Method::PUT if copy => "CopyObject",
        Method::PUT => "PutObject",
        Method::POST if ctx.has_param("uploads") => "InitiateMultipartUpload",
        Method::POST if ctx.has_param("append") => "AppendObject",
        Method::POST if ctx.has_param("restore") => "PostObjectRestore",
        Method::POST if upload => "CompleteMultipartUpload",
        Method::DELETE if upload => "AbortMultipartUpload",
        Method::DELETE => "DeleteObject",
        _ => return Err(unsupported()),
    })
}

async fn admin(st: &State, req: Request<Incoming>) -> Resp {
    let json = |status: StatusCode, v: String| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(v))
            .expect("response")
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/-/stats") => {
            let v = serde_json::json!({
                "requests": st.stats.snapshot(),
                "bytes_in": st.stats.bytes_in.load(Ordering::Relaxed),
                "bytes_out": st.stats.bytes_out.load(Ordering::Relaxed),
            });
            json(StatusCode::OK, v.to_string())
        }
        (Method::DELETE, "/-/stats") => {
            st.stats.reset();
            json(StatusCode::OK, "{}".into())
        }
        (Method::GET, "/-/faults") => json(
            StatusCode::OK,
            serde_json::to_string(&st.faults.get()).unwrap_or_default(),
        ),
        (Method::PUT, "/-/faults") => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            match body
                .ok()
                .and_then(|b| serde_json::from_slice::<FaultConfig>(&b).ok())
            {
                Some(cfg) => {
                    st.faults.set(cfg);
                    json(StatusCode::OK, "{}".into())
                }
                None => json(
                    StatusCode::BAD_REQUEST,
                    "{\"error\":\"expected a FaultConfig JSON object\"}".into(),
                ),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            "{\"error\":\"unknown admin endpoint\"}".into(),
        ),
    }
}
