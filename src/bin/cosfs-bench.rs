//! cosfs-bench: raw object-client throughput against any COS endpoint (used by
//! `scripts/bench-client.sh`). PUT is a multipart upload with N parts in flight; GET is N
//! parallel ranged GETs of part size; both are verified byte for byte.

#[path = "common/mod.rs"]
mod common;
use common::data;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use cosfs::cos::*;
use cosfs::object::*;
use futures_util::{stream, StreamExt, TryStreamExt};

#[derive(Parser)]
#[command(about = "Measure raw COS client PUT/GET throughput")]
struct Args {
    /// Endpoint URL (e.g. http://127.0.0.1:9100).
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    bucket: String,
    /// Object size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: usize,
    /// Part / range size in MiB.
    #[arg(long, default_value_t = 8)]
    part_mib: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Send unsigned requests (for `cosfs serve --anonymous`); otherwise COS_SECRET_ID/KEY.
    #[arg(long)]
    anonymous: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let creds: Option<Arc<dyn CredentialProvider>> = if a.anonymous {
        None
    } else {
        let c = cosfs::cos::credentials::from_env()
            .ok_or("set COS_SECRET_ID and COS_SECRET_KEY, or pass --anonymous")?;
        Some(Arc::new(StaticProvider(c)))
    };
    let cfg = ClientConfig::new(&a.bucket, Endpoint::from_url(&a.bucket, &a.endpoint)?)?;
    let client = CosClient::new(cfg, creds)?;
    let size = a.size_mib << 20;
    let part = a.part_mib << 20;
    let body = data(size);
    let key = "cosfs-bench/object";
    let mib = size as f64 / (1 << 20) as f64;

    let t = Instant::now();
    cosfs::cos::upload::put_multipart(
        &client,
        key,
        body.clone(),
        &PutOptions::default(),
        part,
        a.concurrency,
    )
    .await?;
    let put_s = t.elapsed().as_secs_f64();
    println!(
        "put: {mib:.0} MiB in {put_s:.2} s = {:.1} MiB/s ({} parts of {} MiB, {} in flight)",
        mib / put_s,
        size.div_ceil(part),
        a.part_mib,
        a.concurrency
    );

    let t = Instant::now();
    let ranges: Vec<Bytes> = stream::iter((0..size.div_ceil(part)).map(|i| {
        let r = ByteRange::new((i * part) as u64, ((i + 1) * part).min(size) as u64);
        let client = &client;
        async move {
            let opts = GetOptions {
                range: Some(r),
                ..Default::default()
            };
            client.get_object(key, &opts).await?.collect().await
        }
    }))
    .buffered(a.concurrency)
    .try_collect()
    .await?;
    let get_s = t.elapsed().as_secs_f64();
    let got: usize = ranges.iter().map(|r| r.len()).sum();
    let same = ranges
        .iter()
        .enumerate()
        .all(|(i, r)| r[..] == body[i * part..i * part + r.len()]);
    if got != size || !same {
        return Err("downloaded bytes differ from the upload".into());
    }
    println!(
        "get: {mib:.0} MiB in {get_s:.2} s = {:.1} MiB/s ({} ranged GETs, {} in flight)",
        mib / get_s,
        ranges.len(),
        a.concurrency
    );
    client.delete_object(key).await?;
    Ok(())
}
