//! Request context and COS-style error answers for `cosfs serve`.
//!
//! A request names its bucket either by Host (`<bucket>.<anything>`, virtual-hosted, as real COS)
//! or by the first path segment (path-style, for loopback endpoints without DNS). The key is the
//! rest of the path, percent-decoded (`+` stays `+`); query parameters are decoded too, with `+` read
//! as a space, as COS reads it.

use std::io;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

use crate::cos::config::valid_bucket_name;
use crate::cos::encode::decode;
pub use crate::local::StoreError;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Resp = Response<Body>;
/// What a handler answers: a response, or the COS error to send instead.
pub type Answer = Result<Resp, StoreError>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A 200 answer with an XML document.
pub fn xml_response(xml: String) -> Resp {
    Response::builder()
        .header("content-type", "application/xml")
        .body(full(xml))
        .expect("response")
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Everything a handler needs to know about the request, decoded.
#[derive(Debug)]
pub struct Ctx {
    pub method: Method,
    pub bucket: String,
    /// Decoded key; empty for bucket operations.
    pub key: String,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub request_id: String,
    /// The server's idea of now (real time plus any injected clock offset).
    pub now: SystemTime,
}

impl Ctx {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.params.iter().any(|(k, _)| k == name)
    }

    /// A header as text (raw UTF-8 allowed, as COS meta values may carry it).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// What a request addresses.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Decoded key; empty for bucket operations.
    pub key: String,
    /// Decoded query parameters.
    pub params: Vec<(String, String)>,
}

/// Split the request target. `None` if it names no bucket.
pub fn parse_target(
    host: Option<&str>,
    path: &str,
    query: Option<&str>,
) -> Result<Option<Target>, StoreError> {
    let bad = |what: &str| StoreError::new(StatusCode::BAD_REQUEST, "InvalidURI", what);
    let mut params = Vec::new();
    // A `+` in a query is a space (form encoding, as Tencent's SDKs send it), in names and
    // values alike; `%2B` is a plus.
    let param = |s: &str| decode(&s.replace('+', " ")).map_err(|_| bad("bad query parameter"));
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        params.push((param(k)?, param(v)?));
    }
    let raw = path.strip_prefix('/').unwrap_or(path);
    let host_label = host
        .map(|h| h.rsplit_once(':').map_or(h, |(a, _)| a))
        .and_then(|h| h.split_once('.').map(|(first, _)| first))
        .filter(|first| valid_bucket_name(first));
    let (bucket, key_raw) = match host_label {
        Some(b) => (b.to_string(), raw),
        None => {
            let (b, rest) = raw.split_once('/').unwrap_or((raw, ""));
            if b.is_empty() {
                return Ok(None);
            }
            (b.to_string(), rest)
        }
    };
    let key = decode(key_raw).map_err(|_| bad("bad key encoding"))?;
    Ok(Some(Target {
        bucket,
        key,
        params,
    }))
}

/// The `<Error>` answer of a failed request.
pub trait ErrorResponse {
    fn response(&self, ctx_method: &Method, resource: &str, request_id: &str) -> Resp;
}

impl ErrorResponse for StoreError {
    /// The `<Error>` document (no body for HEAD).
    fn response(&self, ctx_method: &Method, resource: &str, request_id: &str) -> Resp {
        let body = if ctx_method == Method::HEAD {
            empty()
        } else {
            full(error_xml(self.code, &self.message, resource, request_id))
        };
        Response::builder()
            .status(self.status)
            .header("content-type", "application/xml")
            .header("x-cos-request-id", request_id)
            .header("x-cos-trace-id", request_id)
            .body(body)
            .expect("valid response")
    }
}

pub fn error_xml(code: &str, message: &str, resource: &str, request_id: &str) -> String {
    use crate::xml::escape;
    format!(
        "{}<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId><TraceId>{}</TraceId></Error>",
        super::xmlout::XML_DECLARATION,
        escape(code),
        escape(message),
        escape(resource),
        escape(request_id),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_and_virtual_hosted_targets() {
        let Target {
            bucket: b,
            key: k,
            params: p,
        } = parse_target(
            Some("127.0.0.1:9000"),
            "/b-1/a%20b/../%3F%23+",
            Some("uploads&prefix=x%2Fy+z%2B"),
        )
        .unwrap()
        .unwrap();
        assert_eq!((b.as_str(), k.as_str()), ("b-1", "a b/../?#+"));
        assert_eq!(
            p,
            vec![
                ("uploads".into(), "".into()),
                ("prefix".into(), "x/y z+".into())
            ]
        );
        let t = parse_target(Some("b-1.cos.ap-x.myqcloud.com"), "/k", None)
            .unwrap()
            .unwrap();
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("b-1", "k"));
        let t = parse_target(Some("localhost:1"), "/b-1", None)
            .unwrap()
            .unwrap();
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("b-1", ""));
        assert!(parse_target(Some("localhost"), "/", None)
            .unwrap()
            .is_none());
    }
}
