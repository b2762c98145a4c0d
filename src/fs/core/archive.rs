//! Archived objects (ARCHIVE, DEEP_ARCHIVE): COS lists them and answers HEAD as for any
//! object, but refuses to GET or copy them until a restore has made a temporary copy.
//!
//! - Listing and stat are as for any object. Opening one for reading (or for an edit in
//!   place, which must read it) first HEADs it for its `x-cos-restore` state, so the open
//!   fails at once, not some reads later: ENODATA while no restored copy exists, EAGAIN while
//!   a restore runs. The log line names the object and how to restore it. Opening with
//!   `O_TRUNC` needs no old bytes and works.
//! - `setfattr -n user.cos.restore -v 'days=N[,tier=Expedited|Standard|Bulk]'` (or just `N`)
//!   sends POST Object restore (default tier Standard); while one runs, EBUSY.
//! - `getfattr -n user.cos.restore_status` is one HEAD: `not archived`, `archived`,
//!   `restoring`, or `restored until <date>`.
//! - Neither name is stored or listed: they are views of COS state, like
//!   `user.cos.storage_class`.

use crate::object::{ObjectMeta, ObjectStore, RestoreStatus, RESTORE_TIERS};

use super::CosFs;
use crate::fs::attr::FileKind;
use crate::fs::error::{FsError, FsResult};
use crate::fs::namespace::Inode;

/// Set to start a restore: `days=N[,tier=T]` or `N[,T]`.
pub const RESTORE_XATTR: &str = "user.cos.restore";
/// Read for where the restore stands.
pub const RESTORE_STATUS_XATTR: &str = "user.cos.restore_status";

/// `days=3,tier=Expedited`, `3,Bulk`, `3` → (days, tier).
pub fn parse_restore_value(v: &[u8]) -> Option<(u32, String)> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let mut days = None;
    let mut tier = "Standard".to_string();
    for (i, field) in v.split([',', ' ']).filter(|f| !f.is_empty()).enumerate() {
        let (name, value) = match field.split_once('=') {
            Some((n, v)) => (n.trim().to_ascii_lowercase(), v.trim()),
            None if i == 0 => ("days".into(), field),
            None => ("tier".into(), field),
        };
        match name.as_str() {
            "days" => days = Some(value.parse::<u32>().ok().filter(|d| *d >= 1)?),
            "tier" => {
                tier = RESTORE_TIERS
                    .iter()
                    .find(|t| t.eq_ignore_ascii_case(value))?
                    .to_string()
            }
            _ => return None,
        }
    }
    Some((days?, tier))
}

/// The text `user.cos.restore_status` shows.
pub fn status_text(m: &ObjectMeta) -> String {
    match m.restore_status() {
        RestoreStatus::NotArchived => "not archived".into(),
        RestoreStatus::Archived => "archived".into(),
        RestoreStatus::Ongoing => "restoring".into(),
        RestoreStatus::Restored { expiry: Some(d) } => format!("restored until {d}"),
        RestoreStatus::Restored { expiry: None } => "restored".into(),
    }
}

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// Fail (and say how to restore) unless the object `m` of `key` can be read now.
    pub(super) fn check_restored(&self, key: &str, m: &ObjectMeta) -> FsResult<()> {
        let restoring = match m.restore_status() {
            RestoreStatus::NotArchived | RestoreStatus::Restored { .. } => return Ok(()),
            RestoreStatus::Archived => false,
            RestoreStatus::Ongoing => true,
        };
        let class = m.storage_class.clone().unwrap_or_default();
        if restoring {
            tracing::warn!(
                key,
                class = %class,
                "object is archived and its restore is still running: wait until getfattr -n {RESTORE_STATUS_XATTR} says restored"
            );
        } else {
            tracing::warn!(
                key,
                class = %class,
                "object is archived and has no restored copy: restore it with setfattr -n {RESTORE_XATTR} -v 'days=1,tier=Standard' <file> (then wait until {RESTORE_STATUS_XATTR} says restored)"
            );
        }
        Err(FsError::Archived { class, restoring })
    }

    /// A copy of `key` (the object `m`) can be made: COS copies neither an appendable object
    /// (`appendable` is the error to give then) nor an unrestored archived one.
    pub(super) fn check_copy_source(
        &self,
        key: &str,
        m: &ObjectMeta,
        appendable: FsError,
    ) -> FsResult<()> {
        if m.appendable {
            return Err(appendable);
        }
        self.check_restored(key, m)
    }

    /// Before serving the bytes of `node` (listed or seen as archived): HEAD it for its
    /// restore state.
    pub(super) async fn check_archived_open(&self, node: &Inode) -> FsResult<()> {
        if !node.attr.archived {
            return Ok(());
        }
        let m = self.head(&node.key).await?.ok_or(FsError::NotFound)?;
        self.check_restored(&node.key, &m)
    }

    /// `user.cos.restore_status` of `node`.
    pub(super) async fn restore_status_of(&self, node: &Inode) -> FsResult<String> {
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::NoXattr);
        }
        let m = self.within_budget(self.head(&node.key)).await?;
        Ok(status_text(&m.ok_or(FsError::NotFound)?))
    }

    /// `setfattr -n user.cos.restore -v VALUE`: POST Object restore of `node`.
    pub(super) async fn restore(&self, node: &Inode, value: &[u8]) -> FsResult<()> {
        let (days, tier) = parse_restore_value(value).ok_or(FsError::InvalidArgument(
            "user.cos.restore takes days=N[,tier=Expedited|Standard|Bulk]",
        ))?;
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::NotPermitted("directories are not archived"));
        }
        self.store.restore_object(&node.key, days, &tier).await?;
        tracing::info!(key = %node.key, days, tier = %tier, "restore requested");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_values() {
        assert_eq!(parse_restore_value(b"3"), Some((3, "Standard".into())));
        assert_eq!(
            parse_restore_value(b"days=2,tier=expedited"),
            Some((2, "Expedited".into()))
        );
        assert_eq!(parse_restore_value(b"1 Bulk"), Some((1, "Bulk".into())));
        assert_eq!(parse_restore_value(b"0"), None);
        assert_eq!(parse_restore_value(b"days=1,tier=Fast"), None);
        assert_eq!(parse_restore_value(b"tier=Bulk"), None);
        assert_eq!(parse_restore_value(b"size=1"), None);
    }

    #[test]
    fn status_texts() {
        let mut m = ObjectMeta::default();
        assert_eq!(status_text(&m), "not archived");
        m.storage_class = Some("DEEP_ARCHIVE".into());
        assert_eq!(status_text(&m), "archived");
        m.restore = Some("ongoing-request=\"true\"".into());
        assert_eq!(status_text(&m), "restoring");
        m.restore =
            Some("ongoing-request=\"false\", expiry-date=\"Fri, 04 Dec 2026 00:00:00 GMT\"".into());
        assert_eq!(
            status_text(&m),
            "restored until Fri, 04 Dec 2026 00:00:00 GMT"
        );
    }
}
