//! Client configuration: where the bucket is, how to address it, timeouts and retries.
//!
//! Real COS is virtual-hosted only (`<bucket>.cos.<region>.myqcloud.com`); a local endpoint
//! (`http://127.0.0.1:PORT`) has no DNS for a bucket host, so it is addressed path-style
//! (`/<bucket>/<key>`). Either way the signature covers the decoded key path `/<key>`.

use std::time::Duration;

/// How the bucket appears in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://<bucket>.<host>/<key>`
    VirtualHosted,
    /// `http://<host>/<bucket>/<key>`
    PathStyle,
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// Host (and `:port` when not the scheme default) of the bucket's requests, exactly as sent
    /// in the `Host` header.
    pub host: String,
    pub addressing: Addressing,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bucket name {0:?} must look like name-APPID (lowercase letters, digits and '-', ending in -<digits>, e.g. examplebucket-1250000000)")]
    BadBucket(String),
    #[error("region {0:?} must be lowercase letters, digits and '-' (e.g. ap-guangzhou)")]
    BadRegion(String),
    #[error("endpoint {0:?} must be http://host[:port] or https://host[:port]")]
    BadEndpoint(String),
}

/// `^[a-z0-9-]+-[0-9]+$`
pub fn valid_bucket_name(b: &str) -> bool {
    match b.rsplit_once('-') {
        Some((name, appid)) => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !appid.is_empty()
                && appid.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

impl Endpoint {
    /// `scheme://host` (for messages; path-style requests add `/<bucket>`).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Real COS in `region`: `https://<bucket>.cos.<region>.myqcloud.com`.
    pub fn for_region(bucket: &str, region: &str) -> Result<Self, ConfigError> {
        if region.is_empty()
            || !region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            return Err(ConfigError::BadRegion(region.into()));
        }
        Ok(Endpoint {
            scheme: "https".into(),
            host: format!("{bucket}.cos.{region}.myqcloud.com"),
            addressing: Addressing::VirtualHosted,
        })
    }

    /// A user-given URL. Loopback/IP/`localhost` hosts are path-style; a host that already
    /// starts with `<bucket>.` is used as is; any other host (`cos.<region>.myqcloud.com`, the
    /// legacy cosfs `url=` form, or a provider domain) gets `<bucket>.` prepended.
    pub fn from_url(bucket: &str, url: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadEndpoint(url.into());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(bad());
        }
        let host = host.to_ascii_lowercase();
        let default_port = if scheme == "https" { ":443" } else { ":80" };
        let host = host.strip_suffix(default_port).unwrap_or(&host).to_string();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let is_ip = bare.parse::<std::net::IpAddr>().is_ok() || bare.starts_with('[');
        let (host, addressing) = if is_ip || bare == "localhost" || !bare.contains('.') {
            (host, Addressing::PathStyle)
        } else if host.starts_with(&format!("{bucket}.")) {
            (host, Addressing::VirtualHosted)
        } else {
            (format!("{bucket}.{host}"), Addressing::VirtualHosted)
        };
        Ok(Endpoint {
            scheme,
            host,
            addressing,
        })
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, first included, of a read (GET, HEAD).
    pub max_attempts: u32,
    /// Attempts in all of a request that changes something (PUT, POST, DELETE) while the
    /// server cannot be reached; the request's time budget ends them first.
    pub change_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            // 6 attempts with 100 ms doubling to a 5 s cap ride out a few seconds of 503s
            // without making a `stat` on a dead server wait long.
            max_attempts: 6,
            // Uploads ride out an outage for as long as their budget (30 s and more) lasts:
            // with at least half of each step waited, a 10 s restart of the server is
            // covered after about 10 attempts, well inside this cap.
            change_attempts: 40,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryConfig {
    /// The backoff step before retry `attempt` (1-based): `base * 2^attempt`, at most the cap.
    pub fn step(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay)
    }

    /// Delay before retry `attempt`: random in `[0, step]` ("full jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        let millis = self.step(attempt).as_millis() as u64;
        Duration::from_millis(rand::random::<u64>() % (millis + 1))
    }

    /// Delay before retry `attempt` of a change: random in `[step/2, step]` ("equal jitter"),
    /// so that the retries of an upload are sure to span an outage of a few seconds.
    pub fn steady_delay(&self, attempt: u32) -> Duration {
        let half = self.step(attempt).as_millis() as u64 / 2;
        Duration::from_millis(half + rand::random::<u64>() % (half + 1))
    }
}

/// How long a request may take. Every bound covers the whole request: all its attempts, the
/// backoff between them, sending the body and receiving the answer. So a server that hangs or
/// trickles turns into an error within a known time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBudget {
    /// The budget of one ordinary request (HEAD, LIST, DELETE, Initiate, small bodies).
    pub op: Duration,
    /// The budget of Complete Multipart Upload, Copy and Upload Part - Copy, which COS may
    /// legitimately work on for minutes.
    pub long_op: Duration,
    /// Requests that move a body get one more second per this many bytes of it, so a big
    /// part on a slow but working link is not cut short.
    pub bytes_per_extra_second: u64,
    /// A copy COS makes gets one more second per this many bytes of it.
    pub copy_bytes_per_extra_second: u64,
    /// Longest silence within one attempt (waiting for the answer, or between body chunks)
    /// before that attempt is given up and retried.
    pub silence: Duration,
    /// Longest silence within one attempt of a long request.
    pub long_silence: Duration,
    /// TCP+TLS connect limit of one attempt.
    pub connect: Duration,
}

impl TimeBudget {
    /// The bounds that follow from one operation budget `op`: long requests get 20 times it,
    /// and an attempt is given up after a third of it, so two retries still fit.
    pub fn from_op(op: Duration) -> Self {
        TimeBudget {
            op,
            long_op: op * 20,
            // 1 MiB/s: a working COS connection is far faster; an 8 MiB part gets 8 s more.
            bytes_per_extra_second: 1 << 20,
            // 16 MiB/s: COS copies within a region far faster; a 5 GB copy gets 5 min more,
            // and a small rename on a hung server fails in about `op`.
            copy_bytes_per_extra_second: 16 << 20,
            silence: (op / 3).max(Duration::from_millis(100)),
            long_silence: op * 20,
            // A COS endpoint that takes over 5 s to accept a connection is down for our purposes.
            connect: Duration::from_secs(5).min(op),
        }
    }

    /// The extra time a copy of `bytes` gets.
    pub fn copy_allowance(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.copy_bytes_per_extra_second.max(1) as f64)
    }

    /// The extra time a body of `bytes` gets.
    pub fn transfer_allowance(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_extra_second.max(1) as f64)
    }
}

impl Default for TimeBudget {
    fn default() -> Self {
        // 30 s: a hung server fails an `ls` or a `stat` within half a minute, while two
        // retries of 10 s each still fit for a server that dropped one request.
        TimeBudget::from_op(Duration::from_secs(30))
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub bucket: String,
    pub endpoint: Endpoint,
    pub retry: RetryConfig,
    pub time: TimeBudget,
    /// How long a signature stays valid.
    pub signature_validity: Duration,
}

impl ClientConfig {
    pub fn new(bucket: &str, endpoint: Endpoint) -> Result<Self, ConfigError> {
        if !valid_bucket_name(bucket) {
            return Err(ConfigError::BadBucket(bucket.into()));
        }
        Ok(ClientConfig {
            bucket: bucket.into(),
            endpoint,
            retry: RetryConfig::default(),
            time: TimeBudget::default(),
            // 1 h, like the SDKs; the start is backdated 60 s to absorb clock skew.
            signature_validity: Duration::from_secs(3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_bucket_name("examplebucket-1250000000"));
        assert!(valid_bucket_name("a-b-1"));
        assert!(!valid_bucket_name("examplebucket"));
        assert!(!valid_bucket_name("Example-125"));
        assert!(!valid_bucket_name("-125"));
        assert!(!valid_bucket_name("a_b-125"));
        assert!(ClientConfig::new("nobucketid", Endpoint::for_region("x", "y").unwrap()).is_err());
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::for_region("b-1", "ap-guangzhou").unwrap();
        assert_eq!(e.host, "b-1.cos.ap-guangzhou.myqcloud.com");
        assert_eq!(e.addressing, Addressing::VirtualHosted);
        assert!(Endpoint::for_region("b-1", "AP GZ").is_err());

        let e = Endpoint::from_url("b-1", "http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (e.host.as_str(), e.addressing),
            ("127.0.0.1:9000", Addressing::PathStyle)
        );
        let e = Endpoint::from_url("b-1", "https://cos.ap-beijing.myqcloud.com/").unwrap();
        assert_eq!(e.host, "b-1.cos.ap-beijing.myqcloud.com");
        let e = Endpoint::from_url("b-1", "https://b-1.cos.ap-beijing.tencentcos.cn:443").unwrap();
        assert_eq!(e.host, "b-1.cos.ap-beijing.tencentcos.cn");
        assert!(Endpoint::from_url("b-1", "ftp://x").is_err());
        assert!(Endpoint::from_url("b-1", "http://x/y").is_err());
    }

    #[test]
    fn budgets_follow_from_the_op_timeout() {
        let t = TimeBudget::from_op(Duration::from_secs(30));
        assert_eq!(t.long_op, Duration::from_secs(600));
        assert_eq!(t.silence, Duration::from_secs(10));
        assert_eq!(t.transfer_allowance(8 << 20), Duration::from_secs(8));
        let t = TimeBudget::from_op(Duration::from_secs(2));
        assert_eq!(t.connect, Duration::from_secs(2));
    }

    #[test]
    fn backoff_is_bounded() {
        let r = RetryConfig::default();
        for n in 0..20 {
            assert!(r.delay(n) <= r.max_delay);
            assert!(r.steady_delay(n) <= r.max_delay);
        }
        // The retries of a change span at least 10 s before the attempts run out.
        let least: Duration = (1..r.change_attempts).map(|n| r.step(n) / 2).sum();
        assert!(least >= Duration::from_secs(10), "{least:?}");
    }
}
