//! Response header names spelled as COS spells them (`ETag`, `Content-Length`,
//! `x-cos-request-id`): Tencent's SDKs read some of them case-sensitively, and fail on hyper's
//! lower-case names (`KeyError: 'Content-Length'`).
//!
//! hyper writes a response's header names in the spellings of a `HeaderCaseMap` found in the
//! response's extensions. It does not export that type, but it makes one for each request it
//! parses with `preserve_header_case`. So at start the server feeds hyper, over an in-memory
//! pipe, one request that carries every name below in COS's spelling, and keeps that request's
//! extensions; every response gets a copy. Names not in the table (`x-cos-meta-*`) stay
//! lower-case, as COS sends them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Extensions, Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// COS's spellings of the names this server sends.
const SPELLINGS: &[&str] = &[
    "Accept-Ranges",
    "Cache-Control",
    "Connection",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "Date",
    "ETag",
    "Expires",
    "Last-Modified",
    "Server",
    "x-cos-hash-crc64ecma",
    "x-cos-next-append-position",
    "x-cos-object-type",
    "x-cos-request-id",
    "x-cos-restore",
    "x-cos-storage-class",
    "x-cos-tagging-count",
    "x-cos-trace-id",
];

/// The extensions that make hyper spell response headers as COS does.
#[derive(Clone)]
pub struct HeaderSpelling(Extensions);

impl HeaderSpelling {
    /// Learn the spellings by having hyper parse a request that uses them.
    pub async fn learn() -> std::io::Result<Self> {
        let mut request = String::from("GET / HTTP/1.1\r\nHost: spelling\r\n");
        for name in SPELLINGS {
            let value = match *name {
                "Content-Length" => "0",
                "Connection" => "close",
                _ => "x",
            };
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let seen: Arc<Mutex<Option<Extensions>>> = Arc::default();
        let keep = seen.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            *keep.lock().unwrap() = Some(req.extensions().clone());
            async {
                Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .preserve_header_case(true)
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
        let talk = async {
            client.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(())
        };
        let (served, talked) = tokio::join!(conn, talk);
        served.map_err(std::io::Error::other)?;
        talked?;
        let ext = seen.lock().unwrap().take();
        ext.map(HeaderSpelling)
            .ok_or_else(|| std::io::Error::other("hyper parsed no request"))
    }

    /// Spell `resp`'s header names as COS does.
    pub fn apply<B>(&self, resp: &mut Response<B>) {
        resp.extensions_mut().extend(self.0.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn responses_carry_cos_spellings() {
        let spelling = HeaderSpelling::learn().await.unwrap();
        let (mut client, server) = tokio::io::duplex(16 * 1024);
        let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let spelling = spelling.clone();
            async move {
                let mut r = Response::builder()
                    .header("etag", "\"e\"")
                    .header("x-cos-request-id", "id")
                    .header("x-cos-meta-mode", "33188")
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")))
                    .unwrap();
                spelling.apply(&mut r);
                Ok::<_, Infallible>(r)
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
        let talk = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            String::from_utf8(answer).unwrap()
        };
        let (_, answer) = tokio::join!(conn, talk);
        for line in [
            "\r\nETag: \"e\"",
            "\r\nx-cos-request-id: id",
            "\r\nContent-Length: 2",
            "\r\nx-cos-meta-mode: 33188",
        ] {
            assert!(answer.contains(line), "{line:?} in {answer}");
        }
    }
}
