//! Extended attributes of `CosFs`: only `user.*` is stored, in `x-cos-meta-xattr` (the s3fs
//! format, `meta`); `security.*`/`system.*` reads are ENODATA without a request, so `ls -l`
//! costs no HEAD per file, and writes to them are EOPNOTSUPP. Reading costs one HEAD (within
//! `op_timeout`) unless the file is open for writing; a change is one copy of the object onto
//! itself, or rides along with the upload of a file open for writing. `user.cos.storage_class`
//! is not stored: it is the object's storage class (`storage_class`); nor are
//! `user.cos.restore` and `user.cos.restore_status`, the restore of an archived object
//! (`archive`).

use std::time::SystemTime;

use crate::object::ObjectStore;

use super::archive::{RESTORE_STATUS_XATTR, RESTORE_XATTR};
use super::storage_class::STORAGE_CLASS_XATTR;
use super::CosFs;
use crate::fs::error::{FsError, FsResult};
use crate::fs::meta::{self, Xattrs};
use crate::fs::namespace::Inode;

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// The xattrs of `node` (one HEAD, within `op_timeout`, unless it is open for writing).
    async fn xattrs_of(&self, node: &Inode) -> FsResult<Xattrs> {
        if let Some(g) = self.locked_writer(node.ino).await {
            return Ok(meta::xattrs(g.foreign()));
        }
        let found = self.within_budget(self.head(&node.key)).await?;
        Ok(found
            .map(|m| meta::xattrs(&m.user_meta))
            .unwrap_or_default())
    }

    /// getxattr when it needs no request: names outside the namespaces cosfs stores
    /// (`security.selinux`, `system.posix_acl_access`: `ls -l` asks both for every entry).
    pub fn getxattr_now(&self, name: &str) -> Option<FsResult<Vec<u8>>> {
        (!meta::stored_namespace(name)).then_some(Err(FsError::NoXattr))
    }

    pub async fn getxattr(&self, ino: u64, name: &str) -> FsResult<Vec<u8>> {
        if let Some(r) = self.getxattr_now(name) {
            return r;
        }
        let node = self.node(ino)?;
        match name {
            STORAGE_CLASS_XATTR => return Ok(self.storage_class_of(&node).await?.into_bytes()),
            RESTORE_STATUS_XATTR => return Ok(self.restore_status_of(&node).await?.into_bytes()),
            RESTORE_XATTR => return Err(FsError::NoXattr), // a request, not a value
            _ => {}
        }
        self.xattrs_of(&node)
            .await?
            .remove(name)
            .ok_or(FsError::NoXattr)
    }

    pub async fn listxattr(&self, ino: u64) -> FsResult<Vec<String>> {
        let node = self.node(ino)?;
        Ok(self.xattrs_of(&node).await?.into_keys().collect())
    }

    /// setxattr (`flags`: XATTR_CREATE / XATTR_REPLACE) and, with `value = None`, removexattr.
    pub async fn setxattr(
        &self,
        ino: u64,
        name: &str,
        value: Option<&[u8]>,
        flags: i32,
    ) -> FsResult<()> {
        self.writable()?;
        if !meta::stored_namespace(name) {
            return Err(FsError::Unsupported("xattrs outside the user namespace"));
        }
        let node = self.node(ino)?;
        if name == STORAGE_CLASS_XATTR {
            return match value {
                _ if flags & libc::XATTR_CREATE != 0 => Err(FsError::Exists),
                Some(v) => self.set_storage_class(&node, v).await,
                None => Err(FsError::NotPermitted(
                    "a storage class can be changed, not removed",
                )),
            };
        }
        match name {
            RESTORE_XATTR => {
                return match value {
                    Some(v) => self.restore(&node, v).await,
                    None => Err(FsError::NoXattr),
                }
            }
            RESTORE_STATUS_XATTR => {
                return Err(FsError::NotPermitted(
                    "the restore status is COS's to say; set user.cos.restore to restore",
                ))
            }
            _ => {}
        }
        self.change_meta(&node, |a, foreign| {
            let mut x = meta::xattrs(foreign);
            let exists = x.contains_key(name);
            match value {
                Some(_) if exists && flags & libc::XATTR_CREATE != 0 => {
                    return Err(FsError::Exists)
                }
                Some(_) if !exists && flags & libc::XATTR_REPLACE != 0 => {
                    return Err(FsError::NoXattr)
                }
                None if !exists => return Err(FsError::NoXattr),
                Some(v) => {
                    x.insert(name.to_string(), v.to_vec());
                }
                None => {
                    x.remove(name);
                }
            }
            meta::set_xattrs(foreign, &x);
            a.ctime = SystemTime::now();
            Ok(())
        })
        .await
    }
}
