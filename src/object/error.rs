//! Errors of the object layer: what an `ObjectStore` operation can fail with, whichever store
//! answered (COS over HTTP, the local store, a wrapper).
//!
//! A `ServiceError` is what the service itself answered (status, `<Code>`, message, request
//! id); its `kind()` classifies it so callers match on meaning, not strings. Everything else is
//! a transport, integrity, credential or protocol failure. `is_retryable` is the one rule of
//! which failures may succeed when sent again; the HTTP client's retry loop asks it.

use std::fmt;

/// What a COS error means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// NoSuchKey, NoSuchBucket, NoSuchUpload, or a bodiless 404.
    NotFound,
    /// AccessDenied and friends (not the signature ones).
    AccessDenied,
    /// The secret key does not match (SignatureDoesNotMatch) or the id is unknown.
    BadCredentials,
    /// The signature's validity window has passed ("Request has expired").
    RequestExpired,
    /// Local clock too far from the server's.
    ClockSkew,
    /// Temporary credentials expired.
    ExpiredToken,
    /// 412: an If-Match / copy-source condition failed.
    PreconditionFailed,
    /// 304 for If-None-Match.
    NotModified,
    /// 416.
    InvalidRange,
    /// 503 SlowDown / ServiceUnavailable.
    Throttled,
    /// 500/502/504 and similar.
    ServerError,
    /// RequestTimeout (400): the server gave up waiting for our body.
    RequestTimeout,
    /// 409 PositionNotEqualToLength: an APPEND whose position is not the object's length.
    AppendPositionMismatch,
    /// 409 ObjectNotAppendable: an APPEND to an object not written by APPEND.
    NotAppendable,
    /// 409 RestoreAlreadyInProgress: a restore of the object is running.
    RestoreInProgress,
    /// 409 conflicts.
    Conflict,
    /// ARCHIVE objects not restored.
    InvalidObjectState,
    /// The key is over COS's 850-byte limit.
    KeyTooLong,
    /// Anything else (mostly 400s: bad arguments, bad digests, part errors).
    Other,
}

/// An error answered by the COS service.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub resource: String,
    pub request_id: String,
    pub trace_id: String,
    /// The server's `Date`, when it sent one (used for clock-skew correction).
    pub server_date: Option<std::time::SystemTime>,
}

impl ServiceError {
    pub fn kind(&self) -> ErrorKind {
        match (self.status, self.code.as_str()) {
            (_, "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload") | (404, _) => ErrorKind::NotFound,
            (_, "SignatureDoesNotMatch" | "InvalidAccessKeyId") => ErrorKind::BadCredentials,
            (_, "RequestTimeTooSkewed") => ErrorKind::ClockSkew,
            (_, "ExpiredToken") => ErrorKind::ExpiredToken,
            (_, "InvalidObjectState") => ErrorKind::InvalidObjectState,
            (_, "KeyTooLong") => ErrorKind::KeyTooLong,
            (403, "AccessDenied") if self.message.contains("expired") => ErrorKind::RequestExpired,
            (403, _) => ErrorKind::AccessDenied,
            (_, "RequestTimeout") => ErrorKind::RequestTimeout,
            (412, _) => ErrorKind::PreconditionFailed,
            (304, _) => ErrorKind::NotModified,
            (416, _) => ErrorKind::InvalidRange,
            (409, "PositionNotEqualToLength") => ErrorKind::AppendPositionMismatch,
            (409, "ObjectNotAppendable") => ErrorKind::NotAppendable,
            (409, "RestoreAlreadyInProgress") => ErrorKind::RestoreInProgress,
            (409, _) => ErrorKind::Conflict,
            (503, _) | (_, "SlowDown") => ErrorKind::Throttled,
            (500..=599, _) => ErrorKind::ServerError,
            _ => ErrorKind::Other,
        }
    }
}

impl fmt::Debug for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "(no error body)"
        } else {
            &self.code
        };
        write!(f, "COS answered {} {}", self.status, code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.request_id.is_empty() {
            write!(f, " (request id {})", self.request_id)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CosError {
    #[error("{0}")]
    Service(Box<ServiceError>),
    #[error("network error talking to COS: {0}")]
    Transport(String),
    #[error("COS request timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("integrity check failed for {what}: expected {expected}, got {actual}")]
    Integrity {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("unexpected response from COS: {0}")]
    InvalidResponse(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No credentials could be had (the client's `CredentialsError`, as text).
    #[error("{0}")]
    Credentials(String),
}

impl CosError {
    /// An answer of the service (or of something standing in for it: the local store, an
    /// injected fault) with no trace id or server date.
    pub fn service(
        status: u16,
        code: &str,
        message: impl Into<String>,
        resource: &str,
        request_id: &str,
    ) -> Self {
        CosError::Service(Box::new(ServiceError {
            status,
            code: code.to_string(),
            message: message.into(),
            resource: resource.to_string(),
            request_id: request_id.to_string(),
            trace_id: String::new(),
            server_date: None,
        }))
    }

    /// The service error kind, or `None` for non-service errors.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            CosError::Service(e) => Some(e.kind()),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }

    /// Transport errors, timeouts, 5xx, throttling and RequestTimeout may succeed when retried.
    /// Other 4xx never do.
    pub fn is_retryable(&self) -> bool {
        match self {
            CosError::Transport(_) | CosError::Timeout(_) => true,
            CosError::Service(e) => matches!(
                e.kind(),
                ErrorKind::Throttled | ErrorKind::ServerError | ErrorKind::RequestTimeout
            ),
            // A truncated or corrupted body can be fetched again.
            CosError::Integrity { .. } => true,
            _ => false,
        }
    }

    /// The COS request id, if the server sent one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            CosError::Service(e) if !e.request_id.is_empty() => Some(&e.request_id),
            _ => None,
        }
    }
}

pub type CosResult<T> = Result<T, CosError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, code: &str, message: &str) -> ServiceError {
        ServiceError {
            status,
            code: code.into(),
            message: message.into(),
            resource: String::new(),
            request_id: "rid".into(),
            trace_id: String::new(),
            server_date: None,
        }
    }

    #[test]
    fn classifies_codes() {
        assert_eq!(err(404, "NoSuchKey", "").kind(), ErrorKind::NotFound);
        assert_eq!(err(404, "", "").kind(), ErrorKind::NotFound);
        assert_eq!(
            err(403, "SignatureDoesNotMatch", "").kind(),
            ErrorKind::BadCredentials
        );
        assert_eq!(
            err(403, "AccessDenied", "Request has expired").kind(),
            ErrorKind::RequestExpired
        );
        assert_eq!(
            err(403, "AccessDenied", "no").kind(),
            ErrorKind::AccessDenied
        );
        assert_eq!(err(503, "SlowDown", "").kind(), ErrorKind::Throttled);
        assert_eq!(err(500, "InternalError", "").kind(), ErrorKind::ServerError);
        assert_eq!(
            err(400, "RequestTimeout", "").kind(),
            ErrorKind::RequestTimeout
        );
        assert_eq!(err(400, "InvalidPart", "").kind(), ErrorKind::Other);
        assert_eq!(
            err(409, "PositionNotEqualToLength", "").kind(),
            ErrorKind::AppendPositionMismatch
        );
        assert_eq!(
            err(409, "RestoreAlreadyInProgress", "").kind(),
            ErrorKind::RestoreInProgress
        );
    }

    #[test]
    fn retry_only_transient_failures() {
        assert!(CosError::Service(Box::new(err(503, "SlowDown", ""))).is_retryable());
        assert!(CosError::Service(Box::new(err(400, "RequestTimeout", ""))).is_retryable());
        assert!(CosError::Transport("reset".into()).is_retryable());
        assert!(!CosError::Service(Box::new(err(400, "InvalidDigest", ""))).is_retryable());
        assert!(!CosError::Service(Box::new(err(403, "AccessDenied", ""))).is_retryable());
        assert!(!CosError::Service(Box::new(err(404, "NoSuchKey", ""))).is_retryable());
    }
}
