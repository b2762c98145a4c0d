//! Plain words for why a bucket cannot be reached or listed, each with its fix. `cosfs mount`
//! says it before mounting nothing, `cosfs check` in its endpoint and list steps, so both give
//! the same sentence for the same mistake.
//!
//! The cause is read from the error itself: the TLS and socket errors of the transport (an
//! `https://` URL for a plain-HTTP port, nothing listening, no DNS name), the COS error code of
//! an answer, and whether the answer came from COS at all (an `<Error>` body or a request id:
//! a web server that is not COS has neither).

use crate::object::{CosError, ErrorKind};

/// What went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub detail: String,
    pub fix: String,
}

impl Diagnosis {
    fn new(detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Diagnosis {
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n  fix: {}", self.detail, self.fix)
    }
}

/// Who is asking: the bucket, the endpoint's base URL, the mount prefix and the SecretId (masked).
pub struct Target<'a> {
    pub bucket: &'a str,
    pub base_url: &'a str,
    pub prefix: &'a str,
    pub secret_id: Option<&'a str>,
}

const ENDPOINT_FIX: &str = "point --endpoint (url= in fstab) at the bucket's COS endpoint, e.g. \
     https://cos.ap-guangzhou.myqcloud.com, or give --region REGION";

/// Why the endpoint could not be talked to (no HTTP answer at all), if that is the case.
pub fn unreachable(e: &CosError, t: &Target) -> Option<Diagnosis> {
    let base = t.base_url;
    let d = match e {
        CosError::Transport(msg) => {
            let m = msg.to_ascii_lowercase();
            if m.contains("invalidcontenttype") || m.contains("corrupt message") {
                let plain = base.replacen("https://", "http://", 1);
                Diagnosis::new(
                    format!("{base} speaks plain HTTP, not HTTPS (the TLS handshake got an HTTP answer)"),
                    format!("use {plain}"),
                )
            } else if m.contains("invalid http version") || m.contains("wrong version number") {
                Diagnosis::new(
                    format!("{base} does not speak plain HTTP (it is probably an HTTPS port)"),
                    format!("use {}", base.replacen("http://", "https://", 1)),
                )
            } else if m.contains("connection refused") {
                Diagnosis::new(
                    format!("nothing listens at {base} (connection refused)"),
                    "check the host and port of --endpoint; for cosfs serve, that it runs and its --listen address",
                )
            } else if m.contains("dns error") || m.contains("failed to lookup address") {
                Diagnosis::new(
                    format!("the host of {base} has no DNS name"),
                    "check the spelling of --region or --endpoint, and /etc/resolv.conf",
                )
            } else {
                Diagnosis::new(
                    format!("cannot reach {base}: {e}"),
                    "check the network path: firewall (outbound 443), proxy, routes",
                )
            }
        }
        CosError::Timeout(d) => Diagnosis::new(
            format!("{base} did not answer within {}", human(*d)),
            "check the network path to COS; on a slow link raise --op-timeout",
        ),
        _ => return None,
    };
    Some(d)
}

/// Why a LIST of the bucket failed, in words, with the fix.
pub fn list_failure(e: &CosError, t: &Target) -> Diagnosis {
    if let Some(d) = unreachable(e, t) {
        return d;
    }
    let (bucket, base) = (t.bucket, t.base_url);
    let id = t.secret_id.unwrap_or("(none)");
    let service = match e {
        CosError::Service(s) => s,
        CosError::InvalidResponse(why) => {
            return Diagnosis::new(
                format!("{base} answers HTTP but not the COS API (not a bucket listing: {why})"),
                ENDPOINT_FIX,
            )
        }
        other => return Diagnosis::new(other.to_string(), "see the error above"),
    };
    if service.code.is_empty() && service.request_id.is_empty() {
        return Diagnosis::new(
            format!(
                "{base} answers HTTP {} but not the COS API (no COS error, no request id)",
                service.status
            ),
            ENDPOINT_FIX,
        );
    }
    match (e.kind(), service.code.as_str()) {
        (_, "SignatureDoesNotMatch") => Diagnosis::new(
            format!("SecretKey does not match SecretId {id}"),
            "copy the SecretKey of that SecretId again from the CAM console (API keys); look for \
             stray spaces or a second line for this bucket in the passwd file",
        ),
        (_, "InvalidAccessKeyId") => Diagnosis::new(
            format!("SecretId {id} is not known to COS (deleted or mistyped)"),
            "create or copy an API key in the CAM console and update the credentials",
        ),
        (Some(ErrorKind::NotFound), _) => Diagnosis::new(
            format!("bucket {bucket} does not exist at {base}"),
            "check the bucket name, its APPID and its region (--region must be the bucket's region)",
        ),
        (Some(ErrorKind::ClockSkew | ErrorKind::RequestExpired), _) => Diagnosis::new(
            format!("COS refused the request's time: {e}"),
            "sync the clock: timedatectl set-ntp true (or chronyc makestep)",
        ),
        (Some(ErrorKind::AccessDenied), _) => Diagnosis::new(
            format!("SecretId {id} may not list bucket {bucket}: {e}"),
            format!(
                "grant cos:GetBucket on {bucket} (prefix {:?}) to this key in CAM",
                t.prefix
            ),
        ),
        (Some(ErrorKind::Throttled | ErrorKind::ServerError), _) => Diagnosis::new(
            format!("COS is failing at {base}: {e}"),
            "try again in a minute; if it persists, check the COS service status",
        ),
        _ => Diagnosis::new(e.to_string(), "see the error above"),
    }
}

/// `30s`, `1.5s`.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Target<'static> {
        Target {
            bucket: "b-1",
            base_url: "https://127.0.0.1:9100",
            prefix: "",
            secret_id: Some("AKID…0000"),
        }
    }

    fn service(status: u16, code: &str, request_id: &str) -> CosError {
        CosError::service(status, code, "", "", request_id)
    }

    #[test]
    fn causes_in_plain_words() {
        let tls = CosError::Transport(
            "client error (Connect): received corrupt message of type InvalidContentType".into(),
        );
        let d = list_failure(&tls, &t());
        assert!(d.detail.contains("plain HTTP"), "{d}");
        assert_eq!(d.fix, "use http://127.0.0.1:9100");
        let refused =
            CosError::Transport("tcp connect error: Connection refused (os error 111)".into());
        assert!(list_failure(&refused, &t())
            .detail
            .contains("nothing listens"));
        let foreign = service(404, "", "");
        assert!(list_failure(&foreign, &t())
            .detail
            .contains("not the COS API"));
        let missing = service(404, "NoSuchBucket", "NjQ");
        assert!(list_failure(&missing, &t())
            .detail
            .contains("does not exist"));
        let key = service(403, "SignatureDoesNotMatch", "NjQ");
        assert!(list_failure(&key, &t())
            .detail
            .contains("SecretKey does not match"));
        let slow = CosError::Timeout(std::time::Duration::from_secs(30));
        assert!(list_failure(&slow, &t()).detail.contains("within 30 s"));
    }
}
