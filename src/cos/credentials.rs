//! Credentials and where they come from.
//!
//! A `CredentialProvider` hands out the current `Credentials`; static ones never change, the
//! instance-role provider fetches temporary keys from the CVM metadata service and refreshes them
//! before they expire (600 s before, or with a fifth of the lifetime left for short-lived keys).
//! `resolve` implements the lookup order of `docs/DESIGN.md`: explicit passwd file, environment,
//! `~/.passwd-cosfs`, `/etc/passwd-cosfs`, then an instance role if one was named.
//! Secrets never reach `Debug` output or logs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// A set of keys to sign with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: String,
    /// Session token of temporary credentials (`x-cos-security-token`).
    pub token: Option<String>,
    /// When temporary credentials stop working.
    pub expires_at: Option<SystemTime>,
}

impl Credentials {
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            secret_id: secret_id.into(),
            secret_key: secret_key.into(),
            token: None,
            expires_at: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &redact_id(&self.secret_id))
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Show only the first 4 characters of a SecretId (enough to tell keys apart in a log).
pub fn redact_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}…")
}

pub use super::error::CredentialsError;

#[async_trait]
pub trait CredentialProvider: Send + Sync + fmt::Debug {
    /// Credentials valid for signing now.
    async fn credentials(&self) -> Result<Credentials, CredentialsError>;
    /// The server said the token expired: the next call must fetch fresh keys.
    fn invalidate(&self) {}
}

/// Fixed keys (command line, environment or passwd file).
#[derive(Debug, Clone)]
pub struct StaticProvider(pub Credentials);

#[async_trait]
impl CredentialProvider for StaticProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.0.clone())
    }
}

/// `COS_SECRET_ID`, `COS_SECRET_KEY` and optional `COS_SECURITY_TOKEN`.
pub fn from_env() -> Option<Credentials> {
    let id = std::env::var("COS_SECRET_ID")
        .ok()
        .filter(|s| !s.is_empty())?;
    let key = std::env::var("COS_SECRET_KEY")
        .ok()
        .filter(|s| !s.is_empty())?;
    let mut c = Credentials::new(id, key);
    c.token = std::env::var("COS_SECURITY_TOKEN")
        .ok()
        .filter(|s| !s.is_empty());
    Some(c)
}

/// Read a passwd file, refusing one that group or others may access (as cosfs and s3fs do),
/// and one owned by another user than us or root: keys someone else wrote would make the
/// mount (root's, say) write into their bucket.
fn read_private_file(path: &Path) -> Result<String, CredentialsError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let unreadable = |source| CredentialsError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let us = rustix::process::geteuid().as_raw();
    if meta.uid() != us && meta.uid() != 0 {
        return Err(CredentialsError::ForeignOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            us,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// Every key pair of a passwd file (the local server accepts them all).
pub fn all_from_passwd_file(path: &Path) -> Result<Vec<Credentials>, CredentialsError> {
    let text = read_private_file(path)?;
    let entries = passwd_entries(&text).map_err(|line| CredentialsError::Malformed {
        path: path.to_path_buf(),
        line,
    })?;
    Ok(entries.into_iter().map(|(_, c)| c).collect())
}

/// Read a cosfs passwd file and pick the line for `bucket` (or the default `id:key` line).
pub fn from_passwd_file(path: &Path, bucket: &str) -> Result<Credentials, CredentialsError> {
    let text = read_private_file(path)?;
    parse_passwd(&text, bucket).map_err(|e| match e {
        PasswdParse::Malformed(line) => CredentialsError::Malformed {
            path: path.to_path_buf(),
            line,
        },
        PasswdParse::NoEntry => CredentialsError::NoEntryForBucket {
            path: path.to_path_buf(),
            bucket: bucket.to_string(),
        },
    })
}

enum PasswdParse {
    Malformed(usize),
    NoEntry,
}

/// The entries of a passwd file: `(Some(bucket), keys)` for `bucket:id:key` lines and
/// `(None, keys)` for `id:key` lines; blank lines and `#` comments skipped.
/// Err(line number) for the first malformed line.
fn passwd_entries(text: &str) -> Result<Vec<(Option<String>, Credentials)>, usize> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').map(str::trim).collect();
        let (bucket, id, key) = match fields.as_slice() {
            [b, id, key] => (Some(b.to_string()), *id, *key),
            [id, key] => (None, *id, *key),
            _ => return Err(i + 1),
        };
        if id.is_empty() || key.is_empty() {
            return Err(i + 1);
        }
        out.push((bucket, Credentials::new(id, key)));
    }
    Ok(out)
}

fn parse_passwd(text: &str, bucket: &str) -> Result<Credentials, PasswdParse> {
    let entries = passwd_entries(text).map_err(PasswdParse::Malformed)?;
    let for_bucket = entries.iter().find(|(b, _)| b.as_deref() == Some(bucket));
    let default = entries.iter().find(|(b, _)| b.is_none());
    for_bucket
        .or(default)
        .map(|(_, c)| c.clone())
        .ok_or(PasswdParse::NoEntry)
}

/// Where credentials may come from, in order (`docs/DESIGN.md` "Operations").
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// `--passwd-file`: used alone when given.
    pub passwd_file: Option<PathBuf>,
    /// `--cam-role`: a CVM instance role name, tried last.
    pub cam_role: Option<String>,
    /// Override of the metadata endpoint (tests, or non-default networks).
    pub cam_role_endpoint: Option<String>,
}

/// Find credentials for `bucket`: first found wins.
pub fn resolve(
    bucket: &str,
    sources: &CredentialSources,
) -> Result<std::sync::Arc<dyn CredentialProvider>, CredentialsError> {
    use std::sync::Arc;
    if let Some(path) = &sources.passwd_file {
        return Ok(Arc::new(StaticProvider(from_passwd_file(path, bucket)?)));
    }
    if let Some(c) = from_env() {
        return Ok(Arc::new(StaticProvider(c)));
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".passwd-cosfs"));
    for path in home
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/etc/passwd-cosfs")))
    {
        if path.exists() {
            return Ok(Arc::new(StaticProvider(from_passwd_file(&path, bucket)?)));
        }
    }
    if let Some(role) = &sources.cam_role {
        let endpoint = sources
            .cam_role_endpoint
            .clone()
            .unwrap_or_else(|| InstanceRoleProvider::DEFAULT_ENDPOINT.to_string());
        return Ok(Arc::new(InstanceRoleProvider::new(endpoint, role.clone())));
    }
    Err(CredentialsError::NotFound)
}

/// Temporary keys of a CVM instance role, from the metadata service, refreshed before expiry.
pub struct InstanceRoleProvider {
    endpoint: String,
    role: String,
    http: super::transport::Transport,
    cached: Mutex<Option<(Credentials, SystemTime)>>,
}

impl fmt::Debug for InstanceRoleProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceRoleProvider")
            .field("endpoint", &self.endpoint)
            .field("role", &self.role)
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleResponse {
    tmp_secret_id: String,
    tmp_secret_key: String,
    token: String,
    expired_time: i64,
    #[serde(default)]
    code: String,
}

impl InstanceRoleProvider {
    pub const DEFAULT_ENDPOINT: &'static str =
        "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials";

    pub fn new(endpoint: String, role: String) -> Self {
        InstanceRoleProvider {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            role,
            // The metadata service is link-local: if it does not answer fast it is not there.
            http: super::transport::Transport::new(Duration::from_secs(3)).expect("HTTP transport"),
            cached: Mutex::new(None),
        }
    }

    fn fail(&self, reason: impl Into<String>) -> CredentialsError {
        CredentialsError::InstanceRole {
            endpoint: self.endpoint.clone(),
            reason: reason.into(),
        }
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let url = format!("{}/{}", self.endpoint, self.role);
        let req = http::Request::get(&url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .map_err(|e| self.fail(e.to_string()))?;
        let resp = self
            .http
            .send(
                req,
                super::transport::AttemptLimits::within(Duration::from_secs(3)),
            )
            .await
            .map_err(|e| self.fail(e.to_string()))?;
        if !resp.status.is_success() {
            return Err(self.fail(format!("HTTP {}", resp.status)));
        }
        let body = resp.bytes().await.map_err(|e| self.fail(e.to_string()))?;
        let r: RoleResponse =
            serde_json::from_slice(&body).map_err(|e| self.fail(format!("bad JSON: {e}")))?;
        if !r.code.is_empty() && r.code != "Success" {
            return Err(self.fail(format!("Code {}", r.code)));
        }
        Ok(Credentials {
            secret_id: r.tmp_secret_id,
            secret_key: r.tmp_secret_key,
            token: Some(r.token),
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(r.expired_time.max(0) as u64)),
        })
    }

    /// True when `c`, fetched at `fetched`, should be replaced now.
    fn needs_refresh(c: &Credentials, fetched: SystemTime, now: SystemTime) -> bool {
        let Some(exp) = c.expires_at else {
            return false;
        };
        let lifetime = exp.duration_since(fetched).unwrap_or_default();
        let margin = Duration::from_secs(600).min(lifetime / 5);
        exp.checked_sub(margin).is_none_or(|at| now >= at)
    }
}

#[async_trait]
impl CredentialProvider for InstanceRoleProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let now = SystemTime::now();
        if let Some((c, fetched)) = self.cached.lock().unwrap().as_ref() {
            if !Self::needs_refresh(c, *fetched, now) {
                return Ok(c.clone());
            }
        }
        let fresh = self.fetch().await?;
        *self.cached.lock().unwrap() = Some((fresh.clone(), now));
        Ok(fresh)
    }

    fn invalidate(&self) {
        *self.cached.lock().unwrap() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_never_shows_secrets() {
        let mut c = Credentials::new("AKIDsecretid123", "SECRETKEY-xyz");
        c.token = Some("TOKEN-abc".into());
        let s = format!("{c:?}");
        assert!(!s.contains("SECRETKEY"), "{s}");
        assert!(!s.contains("TOKEN-abc"), "{s}");
        assert!(!s.contains("secretid123"), "{s}");
    }

    #[test]
    fn passwd_file_picks_bucket_line_then_default() {
        let text = "# comment\nother-1250000000:ID1:KEY1\nID0:KEY0\nmine-1250000000:ID2:KEY2\n";
        let c = parse_passwd(text, "mine-1250000000").ok().unwrap();
        assert_eq!(
            (c.secret_id.as_str(), c.secret_key.as_str()),
            ("ID2", "KEY2")
        );
        let c = parse_passwd(text, "unknown-1").ok().unwrap();
        assert_eq!(c.secret_id, "ID0");
        assert!(matches!(
            parse_passwd("a:b:c\n", "x-1"),
            Err(PasswdParse::NoEntry)
        ));
        assert!(matches!(
            parse_passwd("a:b:c:d\n", "x-1"),
            Err(PasswdParse::Malformed(1))
        ));
    }

    #[test]
    fn passwd_file_refused_when_group_or_other_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd-cosfs");
        std::fs::write(&path, "b-1:ID:KEY\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = from_passwd_file(&path, "b-1").unwrap_err();
        assert!(matches!(err, CredentialsError::InsecurePermissions { .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(from_passwd_file(&path, "b-1").unwrap().secret_id, "ID");
    }

    #[test]
    fn refresh_margin_is_600s_or_a_fifth_of_lifetime() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut c = Credentials::new("i", "k");
        c.expires_at = Some(t0 + Duration::from_secs(7200));
        let p = InstanceRoleProvider::needs_refresh;
        assert!(!p(&c, t0, t0 + Duration::from_secs(6599)));
        assert!(p(&c, t0, t0 + Duration::from_secs(6600)));
        c.expires_at = Some(t0 + Duration::from_secs(100));
        assert!(!p(&c, t0, t0 + Duration::from_secs(79)));
        assert!(p(&c, t0, t0 + Duration::from_secs(80)));
    }
}
