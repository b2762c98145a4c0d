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

/// A benchmark program's command line: the bucket it talks to, then one of its commands.
#[derive(clap::Parser)]
pub struct Args<C: clap::Subcommand> {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub cmd: C,
}

impl<C: clap::Subcommand> Args<C> {
    /// The command line, with `about` as the program's description in `--help`.
    pub fn parse_with(about: &'static str) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().about(about).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// An unsigned client of the bucket.
    pub fn client(&self) -> Result<CosClient, Box<dyn std::error::Error>> {
        self.target.client()
    }
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
