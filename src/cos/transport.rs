//! HTTP transport of the object client: a pooled hyper client (HTTP/1.1, rustls with the
//! webpki roots, TCP_NODELAY) that sends the request target exactly as we encoded it.
//!
//! Timeouts (`AttemptLimits`): connecting is bounded by the connect timeout; sending the
//! request and waiting for the response head by `head`; every later gap between body chunks by
//! `idle`, and the whole body by `deadline`. So a server that hangs or trickles turns into
//! `CosError::Timeout` at a known time instead of a hung reader.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::object::{CosError, CosResult};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct Transport {
    client: Client<Connector, Full<Bytes>>,
}

/// How long one attempt may take.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Longest wait for the response head, sending the request body included.
    pub head: Duration,
    /// Longest silence between body chunks.
    pub idle: Duration,
    /// When the whole response body must have arrived.
    pub deadline: Instant,
    /// The whole request's budget, for the error message.
    pub budget: Duration,
}

impl AttemptLimits {
    /// Everything (head and body) within `d` from now.
    pub fn within(d: Duration) -> Self {
        AttemptLimits {
            head: d,
            idle: d,
            deadline: Instant::now() + d,
            budget: d,
        }
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    limits: AttemptLimits,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}

impl Transport {
    pub fn new(connect_timeout: Duration) -> CosResult<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            // COS closes idle connections after about 60 s; drop ours first.
            .pool_idle_timeout(Duration::from_secs(50))
            .pool_max_idle_per_host(64)
            .build(https);
        Ok(Transport { client })
    }

    /// Send `req` within `limits`.
    pub async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        limits: AttemptLimits,
    ) -> CosResult<Response> {
        let head_by = limits.deadline.min(Instant::now() + limits.head);
        match tokio::time::timeout_at(head_by, self.client.request(req)).await {
            Err(_) => Err(CosError::Timeout(limits.head.min(limits.budget))),
            Ok(Err(e)) => Err(CosError::Transport(error_chain(&e))),
            Ok(Ok(resp)) => {
                let (parts, body) = resp.into_parts();
                Ok(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    limits,
                })
            }
        }
    }
}

impl Response {
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    /// Give the body `extra` more time (a whole-object GET, whose size the head told).
    pub fn extend_deadline(&mut self, extra: Duration) {
        self.limits.deadline = self.limits.deadline.max(Instant::now() + extra);
    }

    /// The body as a stream of chunks, each awaited at most `idle`, all by the deadline.
    pub fn into_stream(self) -> BoxStream<'static, CosResult<Bytes>> {
        let limits = self.limits;
        futures_util::stream::unfold(Some(self.body), move |body| async move {
            let mut body = body?;
            loop {
                let by = limits.deadline.min(Instant::now() + limits.idle);
                match tokio::time::timeout_at(by, body.frame()).await {
                    Err(_) => {
                        let waited = if by == limits.deadline {
                            limits.budget
                        } else {
                            limits.idle
                        };
                        return Some((Err(CosError::Timeout(waited)), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        return Some((Err(CosError::Transport(error_chain(&e))), None))
                    }
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some(body)));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// Read the whole body.
    pub async fn bytes(self) -> CosResult<Bytes> {
        let mut out = bytes::BytesMut::new();
        let mut s = self.into_stream();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}
