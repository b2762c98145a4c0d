//! The COS HTTP client: `CosClient`, the object layer's `ObjectStore` over COS's XML API, with
//! signing, credentials, XML parsing and retries. Knows nothing of files or inodes.

pub mod client;
pub mod config;
pub mod credentials;
pub mod encode;
pub mod error;
pub mod integrity;
mod ops;
pub mod parse;
pub mod sign;
pub mod stats;
pub mod transport;
pub mod upload;

pub use client::CosClient;
pub use config::{Addressing, ClientConfig, Endpoint, RetryConfig};
pub use credentials::{CredentialProvider, Credentials, StaticProvider};
pub use error::CredentialsError;
