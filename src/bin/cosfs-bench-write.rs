//! cosfs-bench-write: the raw-client and file-side halves of `scripts/bench-write.sh`.
//!
//! Raw client (what the mount is compared against, doing the same uploads the best way the
//! COS API allows): `put-big` uploads an object with parallel multipart, `put-many` PUTs small
//! objects one after another (as a program creating files does), `append` rebuilds an object
//! with one Upload Part - Copy of its old bytes plus the new tail, `rename` copies every key of
//! a prefix (parallel) and deletes the sources, `append-object` appends lines with APPEND
//! Object. File side: `write-files` creates small files
//! in a directory from one process. Each prints one line ending in `= <figure> <unit>`.

#[path = "common/mod.rs"]
mod common;
use common::data;

use std::time::Instant;

use bytes::Bytes;
use clap::Subcommand;
use cosfs::cos::*;
use cosfs::object::*;
use futures_util::{stream, StreamExt, TryStreamExt};

type Args = common::Args<Cmd>;

#[derive(Subcommand)]
enum Cmd {
    /// Upload SIZE_MIB as KEY: multipart, PART_MIB parts, CONC in flight (MiB/s).
    PutBig {
        key: String,
        size_mib: usize,
        #[arg(long, default_value_t = 8)]
        part_mib: usize,
        #[arg(long, default_value_t = 8)]
        conc: usize,
    },
    /// PUT COUNT objects of SIZE bytes under PREFIX/, one at a time (objects/s).
    PutMany {
        prefix: String,
        count: usize,
        size: usize,
    },
    /// Append BYTES to KEY server-side: Upload Part - Copy of the old object + one part (s).
    Append { key: String, bytes: usize },
    /// Make KEY an appendable object of SEED_MIB, then time COUNT APPEND Objects of BYTES
    /// each, one after another (appends/s).
    AppendObject {
        key: String,
        count: usize,
        bytes: usize,
        #[arg(long, default_value_t = 0)]
        seed_mib: usize,
    },
    /// Move every key under FROM/ to TO/: parallel copies, then DELETE Multiple (s).
    Rename {
        from: String,
        to: String,
        #[arg(long, default_value_t = 16)]
        conc: usize,
    },
    /// Create COUNT files of SIZE bytes in DIR from this process (files/s).
    WriteFiles {
        dir: std::path::PathBuf,
        count: usize,
        size: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse_with("Write-path benchmark helpers for scripts/bench-write.sh");
    match &a.cmd {
        Cmd::PutBig {
            key,
            size_mib,
            part_mib,
            conc,
        } => {
            let c = a.client()?;
            let body = data(size_mib << 20);
            let t = Instant::now();
            upload::put_multipart(&c, key, body, &PutOptions::default(), part_mib << 20, *conc)
                .await?;
            let s = t.elapsed().as_secs_f64();
            println!(
                "raw put: {size_mib} MiB in {s:.2} s = {:.1} MiB/s",
                *size_mib as f64 / s
            );
        }
        Cmd::PutMany {
            prefix,
            count,
            size,
        } => {
            let c = a.client()?;
            let body = data(*size);
            let t = Instant::now();
            for i in 0..*count {
                c.put_object(
                    &format!("{prefix}/f{i:05}"),
                    body.clone(),
                    &PutOptions::default(),
                )
                .await?;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "raw put-many: {count} in {s:.2} s = {:.1} objects/s",
                *count as f64 / s
            );
        }
        Cmd::Append { key, bytes } => {
            let c = a.client()?;
            let m = c.head_object(key).await?;
            let t = Instant::now();
            let id = c.initiate_multipart(key, &PutOptions::default()).await?;
            let r = ByteRange::new(0, m.size);
            let p1 = c
                .upload_part_copy(
                    &Upload::new(key, &id),
                    1,
                    &CopySource {
                        key,
                        range: Some(r),
                        if_match: Some(&m.etag),
                    },
                )
                .await?;
            let p2 = c
                .upload_part(&Upload::new(key, &id), 2, data(*bytes))
                .await?;
            c.complete_multipart(&Upload::new(key, &id), &[p1, p2])
                .await?;
            println!(
                "raw append: {bytes} bytes = {:.3} s",
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::AppendObject {
            key,
            count,
            bytes,
            seed_mib,
        } => {
            let c = a.client()?;
            // Appends go on from an existing object's end.
            let mut at = match c.head_object(key).await {
                Ok(m) => m.size,
                Err(e) if e.is_not_found() => 0,
                Err(e) => return Err(e.into()),
            };
            let seed = data(seed_mib << 20);
            for chunk in seed.chunks(8 << 20) {
                let r = c
                    .append_object(
                        key,
                        Append {
                            position: at,
                            body: Bytes::copy_from_slice(chunk),
                            opts: &PutOptions::default(),
                        },
                    )
                    .await?;
                at = r.next_position;
            }
            let line = data(*bytes);
            let t = Instant::now();
            for _ in 0..*count {
                at = c
                    .append_object(
                        key,
                        Append {
                            position: at,
                            body: line.clone(),
                            opts: &PutOptions::default(),
                        },
                    )
                    .await?
                    .next_position;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "raw append-object: {count} in {s:.2} s = {:.1} appends/s",
                *count as f64 / s.max(1e-9)
            );
        }
        Cmd::Rename { from, to, conc } => {
            let c = a.client()?;
            let t = Instant::now();
            let mut keys = Vec::new();
            let mut marker = None;
            loop {
                let page = c
                    .list_objects(&ListRequest {
                        prefix: format!("{from}/"),
                        marker: marker.clone(),
                        ..Default::default()
                    })
                    .await?;
                keys.extend(page.entries.into_iter().map(|e| e.key));
                if !page.is_truncated {
                    break;
                }
                marker = page.next_marker;
            }
            let c = &c;
            stream::iter(keys.iter().map(|k| async move {
                let dest = format!("{to}/{}", &k[from.len() + 1..]);
                c.copy_object(k, &dest, &CopyOptions::default()).await
            }))
            .buffer_unordered(*conc)
            .try_collect::<Vec<_>>()
            .await?;
            for chunk in keys.chunks(MAX_DELETE_KEYS) {
                c.delete_objects(chunk).await?;
            }
            println!(
                "raw rename: {} keys = {:.3} s",
                keys.len(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::WriteFiles { dir, count, size } => {
            let body = data(*size);
            let t = Instant::now();
            for i in 0..*count {
                std::fs::write(dir.join(format!("f{i:05}")), &body)?;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "write-files: {count} in {s:.2} s = {:.1} files/s",
                *count as f64 / s
            );
        }
    }
    Ok(())
}
