//! `CosClient`: the HTTP transport of the object client.
//!
//! Every request is described by a `Request` (method, key, decoded params, headers, body) and
//! goes through `call`, which builds the URL with our strict encoder, signs each attempt afresh,
//! sends it, and classifies the outcome. Retries follow `docs/COS-NOTES.md`: transport errors,
//! 5xx, SlowDown and RequestTimeout back off with jitter; a clock-skew or expired-signature
//! answer corrects the clock offset from the server's `Date` and retries once; ExpiredToken
//! refreshes temporary credentials and retries once; other 4xx fail at once. The operations
//! themselves are in `ops.rs`.
//!
//! Requests that change something (PUT, POST, DELETE: uploads above all) and could not reach
//! the server (refused, reset, unanswered) are retried for as long as their budget lasts, with
//! a backoff that always waits at least half its step, so a server that is gone for ten
//! seconds (a restart) delays an upload instead of failing it. Reads, and changes the server
//! answered with a 5xx, keep the short series, so `stat` on a dead server fails in seconds.
//!
//! Time: each request has one budget (`TimeBudget`: the op budget, or the long one for
//! Complete/Copy, plus one second per MiB it moves) that every attempt, backoff and the body
//! share; when it is spent the request fails with the last error (a timeout says the budget).
//! An attempt is given up after `silence` without an answer, so a server that dropped one
//! request is retried instead of waited on for the whole budget.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::Full;

use super::config::{Addressing, ClientConfig};
use super::credentials::CredentialProvider;
use super::encode::{encode_path, encode_strict};
use super::error::parse_error_body;
use super::parse;
use super::sign::{authorization, sign, SignInput};
use super::stats::Outcome;
use super::transport::{AttemptLimits, Response, Transport};
use crate::object::{CosError, CosResult, ErrorKind, ServiceError};

/// One logical request; `call` may send it several times.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// `None` for bucket operations.
    pub key: Option<String>,
    /// Decoded query parameters; valueless ones (`uploads`) have value `""`.
    pub params: Vec<(String, String)>,
    /// Headers to send and sign (lowercase names). Empty values are neither sent nor signed.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Bytes the answer is expected to carry (a ranged GET), for the time allowance.
    pub expect_bytes: u64,
    /// Use the long budget (Complete, and copies of unknown size).
    pub long: bool,
    /// Bytes COS copies for this request (a copy of known size): its budget is the op
    /// budget and time for those bytes, and the answer may come only at its end.
    pub copies: Option<u64>,
    /// A 200 answer may carry an `<Error>` body (Complete, Copy, Upload Part - Copy).
    pub error_in_200: bool,
}

impl Request {
    pub fn new(method: Method, key: Option<&str>) -> Self {
        Request {
            method,
            key: key.map(str::to_string),
            params: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            expect_bytes: 0,
            long: false,
            copies: None,
            error_in_200: false,
        }
    }

    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        let v = value.into();
        if !v.is_empty() {
            self.headers.push((name.to_ascii_lowercase(), v));
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
}

pub struct CosClient {
    pub(crate) cfg: ClientConfig,
    creds: Option<Arc<dyn CredentialProvider>>,
    transport: Transport,
    /// Server time minus local time, in seconds, learned from skew errors.
    clock_offset: AtomicI64,
    stats: super::stats::RequestStats,
    /// The server has answered Upload Part with the part's CRC-64 (as COS does), so parts are
    /// checked by it and need no Content-MD5 (see `upload_part`).
    pub(crate) parts_carry_crc: std::sync::atomic::AtomicBool,
    /// Uploads whose Initiate had an attempt go unanswered. See `note_unheard_initiate`.
    unheard_initiates: std::sync::Mutex<std::collections::HashMap<String, UnheardInitiate>>,
}

/// An upload id -> the key, and when (local clock) its Initiate was in flight.
type UnheardInitiate = (String, (SystemTime, SystemTime));

impl std::fmt::Debug for CosClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosClient")
            .field("bucket", &self.cfg.bucket)
            .field("endpoint", &self.cfg.endpoint)
            .finish()
    }
}

impl CosClient {
    /// A client; `creds = None` sends unsigned requests (public buckets, `--anonymous` servers).
    pub fn new(cfg: ClientConfig, creds: Option<Arc<dyn CredentialProvider>>) -> CosResult<Self> {
        Ok(CosClient {
            transport: Transport::new(cfg.time.connect)?,
            cfg,
            creds,
            clock_offset: AtomicI64::new(0),
            stats: Default::default(),
            parts_carry_crc: std::sync::atomic::AtomicBool::new(false),
            unheard_initiates: Default::default(),
        })
    }

    /// Requests sent so far, by kind.
    pub fn request_counts(&self) -> super::stats::RequestCounts {
        self.stats.snapshot()
    }

    /// One signed HEAD of the bucket, sent once (no retries, no clock correction): how long
    /// the answer took, the server's clock from its `Date` header, and the outcome.
    /// `cosfs check` reads the endpoint and the clock from it.
    pub async fn probe(&self) -> (std::time::Duration, Option<SystemTime>, CosResult<()>) {
        let t0 = std::time::Instant::now();
        let req = Request::new(Method::HEAD, None);
        let r = self
            .send_once(&req, self.limits(&req, self.budget(&req)))
            .await;
        let took = t0.elapsed();
        match r {
            Ok(resp) => (took, parse::http_date(&resp.headers, "date"), Ok(())),
            Err(CosError::Service(e)) => (took, e.server_date, Err(CosError::Service(e))),
            Err(e) => (took, None, Err(e)),
        }
    }

    /// The SecretId requests are signed with (None: anonymous, or credentials not available).
    pub async fn secret_id(&self) -> Option<String> {
        let provider = self.creds.as_ref()?;
        provider.credentials().await.ok().map(|c| c.secret_id)
    }

    /// Server time minus local time in seconds, as learned from clock-skew answers.
    pub fn clock_offset_secs(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Start from an offset another client learned (the mount's preflight), so the first
    /// real request is signed with the server's time.
    pub fn adopt_clock_offset(&self, secs: i64) {
        self.clock_offset.store(secs, Ordering::Relaxed);
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The `x-cos-copy-source` value for a key of this bucket.
    pub(crate) fn copy_source(&self, key: &str) -> String {
        let host = match self.cfg.endpoint.addressing {
            Addressing::VirtualHosted => self.cfg.endpoint.host.clone(),
            Addressing::PathStyle => format!("{}.{}", self.cfg.bucket, self.cfg.endpoint.host),
        };
        format!("{host}/{}", encode_path(key))
    }

    fn url(&self, req: &Request) -> String {
        let ep = &self.cfg.endpoint;
        let key_path = req.key.as_deref().map(encode_path).unwrap_or_default();
        let mut url = match ep.addressing {
            Addressing::VirtualHosted => format!("{}://{}/{}", ep.scheme, ep.host, key_path),
            Addressing::PathStyle => format!(
                "{}://{}/{}/{}",
                ep.scheme, ep.host, self.cfg.bucket, key_path
            ),
        };
        for (i, (k, v)) in req.params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_strict(k));
            if !v.is_empty() {
                url.push('=');
                url.push_str(&encode_strict(v));
            }
        }
        url
    }

    async fn authorization(&self, req: &Request) -> CosResult<Option<(String, Option<String>)>> {
        let Some(provider) = &self.creds else {
            return Ok(None);
        };
        let creds = provider.credentials().await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64
            + self.clock_offset.load(Ordering::Relaxed);
        let start = now - 60;
        let end = now + self.cfg.signature_validity.as_secs() as i64;
        let key_time = format!("{start};{end}");
        let mut headers = req.headers.clone();
        headers.push(("host".into(), self.cfg.endpoint.host.clone()));
        if let Some(t) = &creds.token {
            headers.push(("x-cos-security-token".into(), t.clone()));
        }
        let path = format!("/{}", req.key.as_deref().unwrap_or_default());
        let sig = sign(
            &SignInput {
                method: req.method.as_str(),
                path: &path,
                params: &req.params,
                headers: &headers,
                key_time: &key_time,
            },
            &creds.secret_key,
        );
        Ok(Some((
            authorization(&creds.secret_id, &key_time, &sig),
            creds.token,
        )))
    }

    /// The time budget of `req` (all its attempts).
    fn budget(&self, req: &Request) -> std::time::Duration {
        let t = &self.cfg.time;
        if let Some(n) = req.copies {
            return t.op + t.copy_allowance(n);
        }
        let base = if req.long { t.long_op } else { t.op };
        base + t.transfer_allowance(req.body.len() as u64 + req.expect_bytes)
    }

    /// Limits of one attempt of `req` with `remaining` of its budget left.
    fn limits(&self, req: &Request, remaining: std::time::Duration) -> AttemptLimits {
        let t = &self.cfg.time;
        let silence = match req.copies {
            // COS answers a copy when it is done: the whole budget may pass in silence.
            Some(_) => self.budget(req),
            None if req.long => t.long_silence,
            None => t.silence,
        };
        let send = t.transfer_allowance(req.body.len() as u64);
        AttemptLimits {
            head: remaining.min(silence + send),
            idle: remaining.min(silence),
            deadline: tokio::time::Instant::now() + remaining,
            budget: self.budget(req),
        }
    }

    /// Send once; Ok only for a 2xx answer.
    async fn send_once(&self, req: &Request, limits: AttemptLimits) -> CosResult<Response> {
        let bad = |e: http::Error| CosError::InvalidRequest(format!("cannot build request: {e}"));
        let mut rb = http::Request::builder()
            .method(req.method.clone())
            .uri(self.url(req));
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        if let Some((auth, token)) = self.authorization(req).await? {
            rb = rb.header("authorization", auth);
            if let Some(t) = token {
                rb = rb.header("x-cos-security-token", t);
            }
        }
        if matches!(req.method, Method::PUT | Method::POST) {
            rb = rb.header("content-length", req.body.len());
        }
        let http_req = rb.body(Full::new(req.body.clone())).map_err(bad)?;
        let resp = self.transport.send(http_req, limits).await?;
        let status = resp.status;
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers.clone();
        let body = if req.method == Method::HEAD {
            Bytes::new()
        } else {
            resp.bytes().await.unwrap_or_default()
        };
        Err(CosError::Service(Box::new(service_error(
            status.as_u16(),
            &headers,
            &body,
        ))))
    }

    /// Send `req` (with retries) and hand each 2xx answer to `handle`; errors from `handle`
    /// (a truncated body, an `<Error>` inside a 200) are retried like any other.
    pub(crate) async fn call<T, F, Fut>(&self, req: Request, handle: F) -> CosResult<T>
    where
        F: Fn(Response) -> Fut,
        Fut: Future<Output = CosResult<T>>,
    {
        self.call_noting(req, handle, &mut None).await
    }

    /// `call`, noting in `unheard` when the first attempt was sent whose answer never came
    /// (a timeout or a broken connection): the server may have carried it out. A request that
    /// is not idempotent (Initiate) uses it to find what such an attempt made.
    pub(crate) async fn call_noting<T, F, Fut>(
        &self,
        req: Request,
        handle: F,
        unheard: &mut Option<SystemTime>,
    ) -> CosResult<T>
    where
        F: Fn(Response) -> Fut,
        Fut: Future<Output = CosResult<T>>,
    {
        let mut attempt = 0u32;
        let mut skew_fixed = false;
        let mut token_refreshed = false;
        let copy = req.headers.iter().any(|(k, _)| k == "x-cos-copy-source");
        let kind = super::stats::kind_of(&req.method, req.key.is_some(), &req.params, copy);
        self.stats.request(kind, req.body.len());
        let started = std::time::Instant::now();
        let budget = self.budget(&req);
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.stats.retry();
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let signed_with = self.clock_offset.load(Ordering::Relaxed);
            let sent_at = SystemTime::now();
            let result = match self.send_once(&req, self.limits(&req, remaining)).await {
                Ok(resp) => {
                    if req.method != Method::HEAD {
                        self.stats.received(content_length(&resp.headers));
                    }
                    handle(resp).await
                }
                Err(e) => Err(e),
            };
            let err = match result {
                Ok(v) => {
                    self.stats.ended(kind, Outcome::Ok, started.elapsed());
                    tracing::trace!(
                        method = %req.method, key = req.key.as_deref().unwrap_or("/"), copy,
                        elapsed = ?started.elapsed(), "COS request done"
                    );
                    return Ok(v);
                }
                Err(e) => e,
            };
            if matches!(err, CosError::Timeout(_) | CosError::Transport(_)) {
                unheard.get_or_insert(sent_at);
            }
            match err.kind() {
                Some(
                    ErrorKind::ClockSkew | ErrorKind::RequestExpired | ErrorKind::AccessDenied,
                ) if !skew_fixed => {
                    skew_fixed = true;
                    // A skew answer, or any 403 (HEAD errors have no body to name the cause)
                    // from a server whose Date is more than 5 min from ours: adopt its clock.
                    if let Some(offset) = self.skew_from(&err) {
                        tracing::warn!(offset_secs = offset, "clock skew against COS; correcting");
                        self.clock_offset.store(offset, Ordering::Relaxed);
                        continue;
                    }
                    // Signed before a concurrent request corrected the clock: sign again.
                    if self.clock_offset.load(Ordering::Relaxed) != signed_with {
                        continue;
                    }
                }
                Some(ErrorKind::ExpiredToken) if !token_refreshed => {
                    token_refreshed = true;
                    if let Some(c) = &self.creds {
                        c.invalidate();
                        continue;
                    }
                }
                _ => {}
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A change that could not reach the server (refused, reset, unanswered) rides
            // out the outage; one the server answered 5xx keeps the short series.
            let changes = !matches!(req.method, Method::GET | Method::HEAD)
                && matches!(err, CosError::Transport(_) | CosError::Timeout(_));
            let attempts = if changes {
                self.cfg.retry.change_attempts
            } else {
                self.cfg.retry.max_attempts
            };
            if err.is_retryable() && attempt < attempts && !left.is_zero() {
                let delay = if changes {
                    self.cfg.retry.steady_delay(attempt)
                } else {
                    self.cfg.retry.delay(attempt)
                }
                .min(left);
                tracing::debug!(
                    method = %req.method, key = req.key.as_deref().unwrap_or("/"),
                    attempt, ?delay, error = %err, "retrying COS request"
                );
                tokio::time::sleep(delay).await;
                if tokio::time::Instant::now() < deadline {
                    continue;
                }
            }
            // The budget is spent: a timeout says the whole budget, not the last attempt's.
            let err = match err {
                CosError::Timeout(_) if left.is_zero() || attempt > 1 => CosError::Timeout(budget),
                other => other,
            };
            if err.is_not_found() {
                self.stats.ended(kind, Outcome::NotFound, started.elapsed());
            } else {
                self.stats.failure();
                self.stats.ended(kind, Outcome::Error, started.elapsed());
            }
            let key = req.key.as_deref().unwrap_or("/");
            let request_id = err.request_id().unwrap_or("-");
            if err.is_not_found() {
                // Lookups of names that do not exist: routine.
                tracing::debug!(method = %req.method, key, request_id, error = %err, "COS request failed");
            } else {
                tracing::warn!(method = %req.method, key, request_id, attempts = attempt, error = %err, "COS request failed");
            }
            return Err(err);
        }
    }

    /// The clock offset a skew-looking error implies, if the server's Date is far from ours.
    fn skew_from(&self, err: &CosError) -> Option<i64> {
        let CosError::Service(e) = err else {
            return None;
        };
        let d = e.server_date.as_ref()?;
        let secs =
            |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let offset = secs(*d) - secs(SystemTime::now());
        let known = self.clock_offset.load(Ordering::Relaxed);
        let explicit = matches!(
            err.kind(),
            Some(ErrorKind::ClockSkew | ErrorKind::RequestExpired)
        );
        ((offset - known).abs() > 300 || (explicit && offset != known)).then_some(offset)
    }

    /// `call` that reads the whole body; with `error_in_200` a 200 `<Error>` body is an error.
    pub(crate) async fn call_read(&self, req: Request) -> CosResult<(HeaderMap, Bytes)> {
        self.call_read_noting(req, &mut None).await
    }

    /// `call_read`, noting when an attempt went unanswered (see `call_noting`).
    pub(crate) async fn call_read_noting(
        &self,
        req: Request,
        unheard: &mut Option<SystemTime>,
    ) -> CosResult<(HeaderMap, Bytes)> {
        let error_in_200 = req.error_in_200;
        self.call_noting(
            req,
            |resp| async move {
                let status = resp.status.as_u16();
                let headers = resp.headers.clone();
                let body = resp.bytes().await?;
                if error_in_200 {
                    if let Some(mut e) = parse_error_body(status, &body) {
                        // An error reported inside a 200: classify it by its code, as if it were
                        // the status COS would have used.
                        e.status = match e.code.as_str() {
                            "InternalError" => 500,
                            "SlowDown" | "ServiceUnavailable" => 503,
                            "PreconditionFailed" => 412,
                            "NoSuchKey" | "NoSuchUpload" => 404,
                            _ => 400,
                        };
                        return Err(CosError::Service(Box::new(e)));
                    }
                }
                Ok((headers, body))
            },
            unheard,
        )
        .await
    }

    /// An Initiate of `key` whose answer may have been lost between `from` and `to`: the
    /// uploads it may have made are swept when `upload_id` (the one we got) ends, or now when
    /// we got none.
    pub(crate) async fn note_unheard_initiate(
        &self,
        key: &str,
        upload_id: Option<&str>,
        from: SystemTime,
    ) {
        let window = (from, SystemTime::now());
        match upload_id {
            Some(id) => {
                self.unheard_initiates
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), (key.to_string(), window));
            }
            None => self.sweep_window(key, None, window).await,
        }
    }

    /// Upload `upload_id` of `key` ended (completed or aborted): abort what Initiates whose
    /// answers were lost made beside it.
    pub(crate) async fn sweep_unheard(&self, upload_id: &str) {
        let found = self.unheard_initiates.lock().unwrap().remove(upload_id);
        if let Some((key, window)) = found {
            self.sweep_window(&key, Some(upload_id), window).await;
        }
    }

    async fn sweep_window(&self, key: &str, keep: Option<&str>, window: (SystemTime, SystemTime)) {
        let left = super::upload::LeftUploads {
            known: None,
            window: Some(window),
            keep,
        };
        match super::upload::abort_left_uploads(self, key, &left).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                key,
                aborted = n,
                "an Initiate whose answer was lost had made an upload; aborted it"
            ),
            Err(e) => tracing::warn!(
                key, error = %e,
                "could not look for uploads a lost Initiate answer made; the mount's journal keeps it for its next start"
            ),
        }
    }
}

fn service_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ServiceError {
    let mut e = parse_error_body(status, body).unwrap_or_else(|| ServiceError {
        status,
        code: String::new(),
        message: String::new(),
        resource: String::new(),
        request_id: String::new(),
        trace_id: String::new(),
        server_date: None,
    });
    if e.request_id.is_empty() {
        e.request_id = parse::request_id(headers);
    }
    if e.trace_id.is_empty() {
        e.trace_id = headers
            .get("x-cos-trace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
    }
    e.server_date = parse::http_date(headers, "date");
    e
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
