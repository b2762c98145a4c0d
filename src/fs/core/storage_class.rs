//! A file's COS storage class, as the virtual xattr `user.cos.storage_class`.
//!
//! - Reading it costs the HEAD any xattr read costs, and no GET; an object without the header
//!   is STANDARD. Directories have none (ENODATA).
//! - Setting it (one of COS's classes, any case) copies the object onto itself with every
//!   other header as it is (`Replaced`, guarded by the ETag); on a file open for writing the
//!   class rides with its upload. Removing it is EPERM: a class can be changed, not removed.
//! - It is not in `listxattr`: a copy to another filesystem (`cp -a`, `rsync -X`) should not
//!   carry a COS setting along, and a copy back should not move objects between classes.
//! - Copies cosfs makes (rename, chmod and the like) keep the class; COS would otherwise make
//!   the copy STANDARD.

use crate::object::{MetadataDirective, ObjectStore, PutOptions, STORAGE_CLASSES};

use super::CosFs;
use crate::fs::attr::FileKind;
use crate::fs::error::{FsError, FsResult};
use crate::fs::meta;
use crate::fs::namespace::Inode;

pub const STORAGE_CLASS_XATTR: &str = "user.cos.storage_class";

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// The storage class of `node` (STANDARD when COS names none).
    pub(super) async fn storage_class_of(&self, node: &Inode) -> FsResult<String> {
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::NoXattr);
        }
        let class = match self.locked_writer(node.ino).await {
            Some(g) => g.storage_class().map(str::to_string),
            None => {
                let m = self.within_budget(self.head(&node.key)).await?;
                m.ok_or(FsError::NotFound)?.storage_class
            }
        };
        Ok(class.unwrap_or_else(|| "STANDARD".into()))
    }

    /// Move `node` to the storage class named by `value`.
    pub(super) async fn set_storage_class(&self, node: &Inode, value: &[u8]) -> FsResult<()> {
        let class = std::str::from_utf8(value)
            .ok()
            .map(|v| v.trim().to_ascii_uppercase())
            .filter(|c| STORAGE_CLASSES.contains(&c.as_str()))
            .ok_or(FsError::InvalidArgument("not a COS storage class"))?;
        if node.attr.kind == FileKind::Directory {
            return Err(FsError::NotPermitted("directories have no storage class"));
        }
        if let Some(mut g) = self.locked_writer(node.ino).await {
            self.mark_written(node.ino);
            g.set_storage_class(class)?;
            return Ok(());
        }
        let current = self.node(node.ino)?;
        if current.attr.unlinked {
            return Ok(()); // its object is not its own any more (see change_meta)
        }
        let m = self.head(&node.key).await?.ok_or(FsError::NotFound)?;
        self.check_copy_source(&node.key, &m, FsError::NotCopyable)?;
        let opts = PutOptions {
            storage_class: Some(class),
            ..PutOptions::like(&m)
        };
        let etag = meta::copy_object(
            &*self.store,
            &node.key,
            &node.key,
            (m.size, &m.etag, None),
            MetadataDirective::Replaced(opts),
        )
        .await?;
        let mut a = current.attr.clone();
        a.changed_here(Some(etag));
        self.sync_attr(node.ino, &a);
        Ok(())
    }
}
