//! Errors of the fs core and their errno: the one place where COS errors become errnos, each
//! with the log level it deserves (an ENOENT on lookup is routine, a server failure is not).

use crate::object::{CosError, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    /// A name over 255 bytes, or a path whose key would be over COS's 850 bytes.
    #[error("file name too long (names: 255 bytes; whole COS keys: 850 bytes)")]
    NameTooLong,
    #[error("invalid file name")]
    InvalidName,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("read-only file system")]
    ReadOnly,
    #[error("unknown file handle")]
    BadHandle,
    /// The object changed kind behind a cached entry; the kernel looks it up again.
    #[error("stale entry")]
    Stale,
    /// A read-only operation got no answer from COS within its budget (`--op-timeout`).
    #[error("no answer from COS within {0:?} (--op-timeout)")]
    TimedOut(std::time::Duration),
    /// A read reached back into the uploaded parts of a new file unlinked while being
    /// written: they cannot be read back without completing the upload, which would bring
    /// the name back.
    #[error("the parts already uploaded of a file unlinked while open cannot be read back")]
    UnlinkedPartsGone,
    /// mknod of a file type that has no object form.
    #[error("mknod cannot make this kind of file")]
    UnsupportedKind,
    /// The HEAD a listed entry waited on was cancelled (its listing restarted).
    #[error("the metadata fetch of a listed entry was cancelled")]
    ListingCancelled,
    /// A metadata change (chmod, chown, utimens, xattrs, storage class) of an appendable
    /// object: COS cannot copy one onto itself.
    #[error("COS cannot change the metadata of an appendable object (it cannot be copied); rewrite the file as a normal one first, e.g. cp f f.new && mv f.new f")]
    NotCopyable,
    /// A rename of an appendable object: COS cannot copy it, so the name cannot move.
    #[error("COS cannot rename an appendable object (it cannot be copied); mv copies it instead")]
    AppendableRename,
    /// Open of an archived object without a readable restored copy.
    #[error("the object is in archive storage ({class}) and {}; it can be read once restored (setfattr -n user.cos.restore -v 'days=1,tier=Standard' FILE)", if *.restoring { "its restore is still running" } else { "has no restored copy" })]
    Archived { class: String, restoring: bool },
    #[error("directory not empty")]
    NotEmpty,
    #[error("file exists")]
    Exists,
    /// Something objects cannot do (a hard link), or the bucket root cannot (a marker).
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("operation not supported: {0}")]
    Unsupported(&'static str),
    /// The staging area is full (`--cache-dir-size`).
    #[error("no space left in the staging area (--cache-dir-size)")]
    NoSpace,
    /// The local disk of the staging area failed.
    #[error("staging area: {0}")]
    Disk(std::io::Error),
    /// A body arrived shorter or longer than its object.
    #[error("object body of the wrong length")]
    WrongLength,
    /// A directory rename copied everything but could not delete a source key.
    #[error("a renamed directory's source key could not be deleted")]
    SourceLeftBehind,
    /// An xattr value or list larger than the buffer the caller gave.
    #[error("result larger than the caller's buffer")]
    BufferTooSmall,
    /// No extended attribute of that name (or none this filesystem stores).
    #[error("no such extended attribute")]
    NoXattr,
    /// A file open for writing can no longer be written or published (the reason).
    #[error("the file cannot be written any more: {0}")]
    WriterBroken(&'static str),
    /// A block of the read cache could not be had.
    #[error("read failed: {0:?}")]
    Block(BlockFailure),
    /// A failure already reduced to an errno (a block fetch shared by several readers).
    #[error("I/O error (errno {0})")]
    Io(i32),
    /// Deletes of entries unlinked under a directory failed: their keys are still on COS.
    #[error("{} unlinked entr(ies) could not be deleted from COS, e.g. {}: {}", .0.keys.len(), .0.keys[0], .0.first_error)]
    DeletesFailed(crate::object::deferred_deletes::FailedDeletes),
    #[error(transparent)]
    Cos(#[from] CosError),
}

/// Why a block of the read cache could not be had. Every reader waiting on the block gets it,
/// so it is `Copy` (an `FsError` is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFailure {
    /// The object changed since the handle opened it (`If-Match` failed).
    Changed,
    /// A body came back of the wrong length.
    WrongBody,
    /// The fetch ran out of time (its budget, or the reader's that claimed it).
    TimedOut,
    /// The fetch went away without an answer (a lost eviction race, a dropped task).
    Lost,
    /// COS refused or failed the GET, or the local copy failed: the errno it maps to here.
    Failed(i32),
}

impl BlockFailure {
    pub fn from_cos(e: &CosError) -> Self {
        match e {
            _ if e.kind() == Some(ErrorKind::PreconditionFailed) => BlockFailure::Changed,
            CosError::Timeout(_) => BlockFailure::TimedOut,
            _ => BlockFailure::Failed(cos_errno(e)),
        }
    }

    pub fn from_fs(e: &FsError) -> Self {
        BlockFailure::Failed(e.errno())
    }

    pub fn errno(self) -> i32 {
        match self {
            BlockFailure::Changed | BlockFailure::WrongBody | BlockFailure::Lost => libc::EIO,
            BlockFailure::TimedOut => libc::ETIMEDOUT,
            BlockFailure::Failed(errno) => errno,
        }
    }

    /// Worth one fresh GET: the failure may belong to an older fetch (a prefetch from before
    /// the server recovered).
    pub fn worth_a_retry(self) -> bool {
        matches!(self.errno(), libc::EIO | libc::ETIMEDOUT)
    }
}

/// The errno of an object-client error.
pub fn cos_errno(e: &CosError) -> i32 {
    match e.kind() {
        Some(ErrorKind::NotFound) => libc::ENOENT,
        Some(
            ErrorKind::AccessDenied
            | ErrorKind::BadCredentials
            | ErrorKind::RequestExpired
            | ErrorKind::ExpiredToken
            | ErrorKind::ClockSkew,
        ) => libc::EACCES,
        Some(ErrorKind::PreconditionFailed) => libc::ESTALE,
        Some(ErrorKind::InvalidObjectState) => libc::ENODATA,
        // EBUSY, not EAGAIN: the kernel does not pass EAGAIN back from setxattr.
        Some(ErrorKind::RestoreInProgress) => libc::EBUSY,
        Some(ErrorKind::KeyTooLong) => libc::ENAMETOOLONG,
        _ => match e {
            CosError::Timeout(_) => libc::ETIMEDOUT,
            CosError::InvalidRequest(_) => libc::EINVAL,
            _ => libc::EIO,
        },
    }
}

impl FsError {
    /// The staging area's disk failed: full is `NoSpace`, the rest as the disk said.
    pub fn disk(e: std::io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => FsError::NoSpace,
            _ => FsError::Disk(e),
        }
    }

    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::InvalidName => libc::EINVAL,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::Stale => libc::ESTALE,
            FsError::TimedOut(_) => libc::ETIMEDOUT,
            FsError::ListingCancelled => libc::EIO,
            FsError::UnsupportedKind => libc::EINVAL,
            FsError::UnlinkedPartsGone => libc::EIO,
            FsError::NoXattr => libc::ENODATA,
            FsError::Block(b) => b.errno(),
            FsError::WriterBroken(_) => libc::EIO,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NotCopyable => libc::EOPNOTSUPP,
            FsError::AppendableRename => libc::EXDEV,
            FsError::Archived {
                restoring: true, ..
            } => libc::EAGAIN,
            FsError::Archived { .. } => libc::ENODATA,
            FsError::Exists => libc::EEXIST,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::InvalidArgument(_) => libc::EINVAL,
            FsError::Unsupported(_) => libc::EOPNOTSUPP,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Disk(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::WrongLength | FsError::SourceLeftBehind | FsError::DeletesFailed(_) => {
                libc::EIO
            }
            FsError::BufferTooSmall => libc::ERANGE,
            FsError::Io(errno) => *errno,
            FsError::Cos(e) => cos_errno(e),
        }
    }

    /// COS did not answer in time: our op budget ran out, the client's request budget, or a
    /// block fetch this operation waited on.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            FsError::TimedOut(_)
                | FsError::Cos(CosError::Timeout(_))
                | FsError::Io(libc::ETIMEDOUT)
                | FsError::Block(BlockFailure::TimedOut)
        )
    }

    /// Expected outcomes (a name that does not exist) are debug; the rest are warnings.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            FsError::NotFound
                | FsError::NameTooLong
                | FsError::InvalidName
                | FsError::NotDir
                | FsError::IsDir
                | FsError::ReadOnly
                | FsError::Stale
                | FsError::NoXattr
                | FsError::NotEmpty
                | FsError::Exists
                | FsError::NotPermitted(_)
                | FsError::InvalidArgument(_)
                | FsError::Unsupported(_)
                | FsError::BufferTooSmall
                // check_restored logged it, with how to restore
                | FsError::Archived { .. }
        ) || matches!(self, FsError::Cos(e) if e.is_not_found())
            || matches!(
                self,
                FsError::Io(
                    libc::ENODATA
                        | libc::ENOTEMPTY
                        | libc::EEXIST
                        | libc::EPERM
                        | libc::EOPNOTSUPP
                        | libc::E2BIG
                        | libc::EINVAL
                )
            )
    }
}

impl From<super::names::NameError> for FsError {
    fn from(e: super::names::NameError) -> Self {
        match e {
            super::names::NameError::TooLong => FsError::NameTooLong,
            super::names::NameError::Invalid => FsError::InvalidName,
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos() {
        assert_eq!(FsError::NotFound.errno(), libc::ENOENT);
        assert_eq!(FsError::NameTooLong.errno(), libc::ENAMETOOLONG);
        assert_eq!(
            FsError::Cos(CosError::Transport("x".into())).errno(),
            libc::EIO
        );
        assert_eq!(
            FsError::Cos(CosError::Timeout(std::time::Duration::from_secs(1))).errno(),
            libc::ETIMEDOUT
        );
        assert!(FsError::NotFound.is_routine());
        assert!(!FsError::Cos(CosError::Transport("x".into())).is_routine());
    }
}
