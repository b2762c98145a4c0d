//! Errors only the HTTP client has: credentials that cannot be had, and COS's `<Error>`
//! document parsed into the object layer's `ServiceError`.

use std::path::PathBuf;

use crate::object::{CosError, ServiceError};

/// Why no credentials could be had (defined here, not in `credentials`: `credentials` uses the
/// transport, which converts these into `CosError`).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no COS credentials found: pass --passwd-file, set COS_SECRET_ID and COS_SECRET_KEY, or create ~/.passwd-cosfs or /etc/passwd-cosfs with a line bucket:SecretId:SecretKey")]
    NotFound,
    #[error("cannot read credentials file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} is accessible by group or others (mode {mode:o}); run: chmod 600 {path}")]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("credentials file {path} is owned by uid {owner}, not by this user (uid {us}) or root: another user could have put their keys in it; run: chown {us} {path}")]
    ForeignOwner { path: PathBuf, owner: u32, us: u32 },
    #[error("credentials file {path} line {line}: expected bucket:SecretId:SecretKey or SecretId:SecretKey")]
    Malformed { path: PathBuf, line: usize },
    #[error("credentials file {path} has no line for bucket {bucket} and no default SecretId:SecretKey line")]
    NoEntryForBucket { path: PathBuf, bucket: String },
    #[error("instance role credentials unavailable from {endpoint}: {reason}")]
    InstanceRole { endpoint: String, reason: String },
}

impl From<CredentialsError> for CosError {
    fn from(e: CredentialsError) -> Self {
        CosError::Credentials(e.to_string())
    }
}

/// Parse an `<Error>` document; `None` if the body is not one.
pub fn parse_error_body(status: u16, body: &[u8]) -> Option<ServiceError> {
    let root = crate::xml::parse(body).ok()?;
    if root.name != "Error" {
        return None;
    }
    let t = |n: &str| root.text_of(&[n]).unwrap_or_default().to_string();
    Some(ServiceError {
        status,
        code: t("Code"),
        message: t("Message"),
        resource: t("Resource"),
        request_id: t("RequestId"),
        trace_id: t("TraceId"),
        server_date: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_body_with_leading_whitespace() {
        let body =
            b"   \n<?xml version='1.0'?><Error><Code>InternalError</Code><Message>m</Message>\
            <RequestId>NjQ</RequestId><TraceId>t</TraceId></Error>";
        let e = parse_error_body(200, body).unwrap();
        assert_eq!(e.code, "InternalError");
        assert_eq!(e.request_id, "NjQ");
        assert!(parse_error_body(200, b"<CopyObjectResult/>").is_none());
    }
}
