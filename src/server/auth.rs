//! Signature verification for `cosfs serve`, with the client's own signer (`cos::sign`) so the
//! two can never drift apart silently: the raw-HTTP script in `tests/` checks the server against
//! an independent implementation. Answers are those of COS: AccessDenied for a missing or
//! malformed Authorization (or, for a presigned URL, its `q-sign-*` query parameters), InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied "Request has
//! expired", RequestTimeTooSkewed for a signature that starts too far in the future.

use std::time::UNIX_EPOCH;

use http::StatusCode;

use super::request::{Ctx, StoreError};
use crate::cos::credentials::Credentials;
use crate::cos::encode::encode_strict;
use crate::cos::sign::{sign, ParsedAuthorization, SignInput};

#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Accept unsigned (and any signed) requests.
    Anonymous,
    /// Require a valid signature by one of these keys.
    Keys(Vec<Credentials>),
}

/// How far in the future a signature may start before we call the clock skewed (COS: 15 min).
const MAX_FUTURE_SKEW_SECS: i64 = 900;

fn denied(code: &'static str, msg: &str) -> StoreError {
    StoreError::new(StatusCode::FORBIDDEN, code, msg)
}

/// The signature of a presigned URL: its `q-*` parameters, as an Authorization value.
fn presigned(ctx: &Ctx) -> Option<String> {
    ctx.param("q-signature")?;
    let fields: Vec<String> = ctx
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("q-"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Some(fields.join("&"))
}

pub fn verify(mode: &AuthMode, ctx: &Ctx) -> Result<(), StoreError> {
    let AuthMode::Keys(keys) = mode else {
        return Ok(());
    };
    let Some(value) = ctx.header("authorization").or_else(|| presigned(ctx)) else {
        return Err(denied(
            "AccessDenied",
            "Access Denied. (no Authorization header)",
        ));
    };
    let auth = ParsedAuthorization::parse(&value)
        .filter(|a| a.algorithm == "sha1")
        .ok_or_else(|| denied("AccessDenied", "Authorization header is malformed"))?;
    let creds = keys
        .iter()
        .find(|c| c.secret_id == auth.secret_id)
        .ok_or_else(|| {
            denied(
                "InvalidAccessKeyId",
                "The SecretId you provided does not exist.",
            )
        })?;
    let (start, end) = auth
        .validity()
        .ok_or_else(|| denied("AccessDenied", "q-key-time is malformed"))?;
    let now = ctx
        .now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    if now > end {
        return Err(denied("AccessDenied", "Request has expired"));
    }
    if start > now + MAX_FUTURE_SKEW_SECS {
        return Err(denied(
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        ));
    }
    if let Some(token) = &creds.token {
        let sent = ctx
            .header("x-cos-security-token")
            .or_else(|| ctx.param("x-cos-security-token").map(str::to_string));
        if sent.as_deref() != Some(token) {
            return Err(StoreError::bad_request(
                "ExpiredToken",
                "The provided token has expired or is invalid.",
            ));
        }
    }
    let mut headers = Vec::new();
    for name in &auth.header_list {
        let v = ctx.header(name).ok_or_else(|| {
            denied(
                "SignatureDoesNotMatch",
                &format!("signed header {name} was not sent"),
            )
        })?;
        headers.push((name.clone(), v));
    }
    let mut params = Vec::new();
    for name in &auth.param_list {
        let (k, v) = ctx
            .params
            .iter()
            .find(|(k, _)| encode_strict(k).to_ascii_lowercase() == *name)
            .ok_or_else(|| {
                denied(
                    "SignatureDoesNotMatch",
                    &format!("signed parameter {name} was not sent"),
                )
            })?;
        params.push((k.clone(), v.clone()));
    }
    let path = format!("/{}", ctx.key);
    let sig = sign(
        &SignInput {
            method: ctx.method.as_str(),
            path: &path,
            params: &params,
            headers: &headers,
            key_time: &auth.key_time,
        },
        &creds.secret_key,
    );
    if sig.signature != auth.signature {
        return Err(denied(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your SecretKey and signing method.",
        ));
    }
    Ok(())
}
