//! What the benchmark programs share: the bodies they upload, and the bucket they are pointed
//! at with its unsigned client (`cosfs serve --anonymous`). Included by `#[path]`; cargo
//! builds no program of its own from this directory.

#![allow(dead_code)]

use bytes::Bytes;
use cosfs::cos::{ClientConfig, CosClient, Endpoint};

/// `len` pseudo-random bytes, the same for every run (xorshift from a fixed seed), so a body
/// neither compresses nor dedupes anywhere on its way.
pub fn data(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// The bucket a benchmark program talks to.
#[derive(clap::Args)]
pub struct Target {
    /// Endpoint URL (e.g. http://127.0.0.1:9100); unsigned requests (`cosfs serve --anonymous`).
    #[arg(long, default_value = "")]
    pub endpoint: String,
    #[arg(long, default_value = "bench-1250000000")]
    pub bucket: String,
}

impl Target {
    /// An unsigned client of the bucket.
    pub fn client(&self) -> Result<CosClient, Box<dyn std::error::Error>> {
        let cfg = ClientConfig::new(
            &self.bucket,
            Endpoint::from_url(&self.bucket, &self.endpoint)?,
        )?;
        Ok(CosClient::new(cfg, None)?)
    }
}
