//! What a bucket operation answers when it fails: COS's HTTP status, `<Code>` and message.
//! `cosfs serve` turns it into an `<Error>` document, `LocalStore` into the `CosError` the
//! client would have parsed from that document.

use std::io;

use http::StatusCode;

/// A COS error answer.
#[derive(Debug, Clone)]
pub struct StoreError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StoreError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn no_such_key() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
    }

    pub fn no_such_bucket() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        )
    }

    pub fn no_such_upload() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist.",
        )
    }

    pub fn precondition() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the preconditions you specified did not hold.",
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::internal(e)
    }
}
