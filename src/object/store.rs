//! `ObjectStore`, the operations cosfs needs in COS terms, and `StoreLayer`, how a wrapper
//! changes some of them and passes the rest through.
//!
//! The operations are written once, in the `operations!` list below. From it come:
//! - the `ObjectStore` trait, which a store answering requests implements in full (`CosClient`
//!   over HTTP, `LocalStore` on a directory);
//! - `Operation`, each operation's COS name (as requests are counted and faults aimed);
//! - `StoreLayer`, the trait of a wrapper: it names its inner store, may act in `before` on
//!   every operation (count it, delay it, fail it), and overrides only the operations whose
//!   meaning it changes; every other one goes to the inner store unchanged;
//! - the impl that makes every `StoreLayer` an `ObjectStore`.
//!
//! So a new operation is one line here and one method in each full store; wrappers that do not
//! change it need nothing.

use async_trait::async_trait;
use bytes::Bytes;

use super::error::CosResult;
use super::types::*;

macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        $op:ident => fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        /// The object operations, in COS terms and independent of HTTP.
        #[async_trait]
        pub trait ObjectStore: Send + Sync + 'static {
            $(
                $(#[$doc])*
                async fn $name(&self $(, $arg: $ty)*) -> CosResult<$ret>;
            )*

            /// The server's clock minus ours, in seconds, as far as the store knows (for
            /// reading times COS wrote, such as when an upload was initiated).
            fn clock_offset_secs(&self) -> i64 {
                0
            }
        }

        /// One object operation, by its COS name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $($op,)*
        }

        impl Operation {
            /// COS's name of the operation (`"HeadObject"`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$op => stringify!($op),)*
                }
            }
        }

        /// A store around another store. Each method defaults to `before`, then the inner
        /// store's method with the same arguments; override the ones the wrapper changes.
        #[async_trait]
        pub trait StoreLayer: Send + Sync + 'static {
            type Inner: ObjectStore + ?Sized;

            fn inner(&self) -> &Self::Inner;

            /// Runs before every operation the wrapper does not override; an error fails the
            /// operation without reaching the inner store.
            async fn before(&self, _op: Operation) -> CosResult<()> {
                Ok(())
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> CosResult<$ret> {
                    self.before(Operation::$op).await?;
                    self.inner().$name($($arg),*).await
                }
            )*

            fn clock_offset_secs(&self) -> i64 {
                self.inner().clock_offset_secs()
            }
        }

        #[async_trait]
        impl<L: StoreLayer> ObjectStore for L {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> CosResult<$ret> {
                    StoreLayer::$name(self $(, $arg)*).await
                }
            )*

            fn clock_offset_secs(&self) -> i64 {
                StoreLayer::clock_offset_secs(self)
            }
        }
    };
}

operations! {
    /// HEAD Bucket: Ok if the bucket exists and we may use it.
    HeadBucket => fn head_bucket(&self) -> ();
    /// GET Bucket (one page).
    ListObjects => fn list_objects(&self, req: &ListRequest) -> ListPage;
    HeadObject => fn head_object(&self, key: &str) -> ObjectMeta;
    GetObject => fn get_object(&self, key: &str, opts: &GetOptions) -> GetObjectOutput;
    PutObject => fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> PutResult;
    /// APPEND Object: `append.body` after the first `append.position` bytes (the object's
    /// length; 0 creates an appendable object with `append.opts`, which later appends ignore).
    AppendObject => fn append_object(&self, key: &str, append: Append<'_>) -> AppendResult;
    /// POST Object restore of an archived object: a copy readable for `days`, at `tier`.
    PostObjectRestore => fn restore_object(&self, key: &str, days: u32, tier: &str) -> ();
    /// PUT Object - Copy from `source_key` of the same bucket.
    CopyObject => fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        opts: &CopyOptions,
    ) -> CopyResult;
    /// DELETE Object (success also when the key did not exist).
    DeleteObject => fn delete_object(&self, key: &str) -> ();
    /// DELETE Multiple (Quiet): at most 1000 keys; returns the keys that failed.
    DeleteMultiple => fn delete_objects(&self, keys: &[String]) -> Vec<DeleteFailure>;
    /// Initiate Multipart Upload; returns the upload id.
    InitiateMultipart => fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> String;
    UploadPart => fn upload_part(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        body: Bytes,
    ) -> UploadedPart;
    /// Upload Part - Copy: part `part_number` of the upload is (a range of) another object.
    UploadPartCopy => fn upload_part_copy(
        &self,
        up: &Upload<'_>,
        part_number: u32,
        source: &CopySource<'_>,
    ) -> UploadedPart;
    CompleteMultipart => fn complete_multipart(
        &self,
        up: &Upload<'_>,
        parts: &[UploadedPart],
    ) -> CompleteResult;
    AbortMultipart => fn abort_multipart(&self, up: &Upload<'_>) -> ();
    /// List Parts (one page), after part `part_number_marker`.
    ListParts => fn list_parts(
        &self,
        up: &Upload<'_>,
        part_number_marker: Option<u32>,
    ) -> ListPartsPage;
    /// List Multipart Uploads (one page).
    ListUploads => fn list_multipart_uploads(&self, req: &ListUploadsRequest) -> ListUploadsPage;
}
