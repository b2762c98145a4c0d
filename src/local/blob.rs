//! Streaming object bodies to and from disk for `cosfs serve`.
//!
//! `BlobWriter` takes a body chunk by chunk, hashing (MD5 + CRC-64) and writing 1 MiB blocks on
//! the blocking pool while the next block is received, so a 5 GiB PUT never sits in memory.
//! `read_body` streams a byte range of a data file back through a small channel, applying the
//! bandwidth cap and mid-body connection drops of the fault injector.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use md5::{Digest as _, Md5};
use tokio::task::JoinHandle;

use super::storage::{random_id, Bucket, StoredBlob};
use crate::cos::integrity::Crc64Digest;

const BLOCK: usize = 1 << 20;

type Hashers = (Md5, Crc64Digest);

pub struct BlobWriter {
    name: String,
    path: PathBuf,
    state: Option<(File, Hashers)>,
    pending: Option<JoinHandle<io::Result<(File, Hashers)>>>,
    buf: BytesMut,
    size: u64,
    done: bool,
}

impl BlobWriter {
    /// A new temp file in the bucket's `tmp/`.
    pub fn create(bucket: &Bucket) -> io::Result<Self> {
        let name = random_id();
        let path = bucket.tmp_dir().join(&name);
        let file = File::create(&path)?;
        Ok(BlobWriter {
            name,
            path,
            state: Some((file, (Md5::new(), Crc64Digest::new()))),
            pending: None,
            buf: BytesMut::with_capacity(BLOCK),
            size: 0,
            done: false,
        })
    }

    pub fn size(&self) -> u64 {
        self.size + self.buf.len() as u64
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BLOCK {
            self.flush_block().await?;
        }
        Ok(())
    }

    async fn wait_pending(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.take() {
            self.state = Some(h.await.map_err(io::Error::other)??);
        }
        Ok(())
    }

    async fn flush_block(&mut self) -> io::Result<()> {
        self.wait_pending().await?;
        let chunk = self.buf.split().freeze();
        self.size += chunk.len() as u64;
        let (mut file, (mut md5, mut crc)) = self.state.take().expect("writer state");
        self.pending = Some(tokio::task::spawn_blocking(move || {
            md5.update(&chunk);
            crc.update(&chunk);
            file.write_all(&chunk)?;
            Ok((file, (md5, crc)))
        }));
        Ok(())
    }

    /// Flush, fsync and move the file into `data/`.
    pub async fn finish(mut self, bucket: &Bucket) -> io::Result<StoredBlob> {
        if !self.buf.is_empty() {
            self.flush_block().await?;
        }
        self.wait_pending().await?;
        let (file, (md5, crc)) = self.state.take().expect("writer state");
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(io::Error::other)??;
        bucket.adopt_tmp(&self.name)?;
        self.done = true;
        Ok(StoredBlob {
            data: self.name.clone(),
            size: self.size,
            md5: md5.finalize().into(),
            crc64: crc.finalize(),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            if let Some(h) = self.pending.take() {
                h.abort();
            }
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How a body stream should misbehave.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamFaults {
    /// Bytes per second, or unlimited.
    pub bandwidth: Option<u64>,
    /// Cut the connection after this many bytes.
    pub drop_after: Option<u64>,
}

/// Stream `len` bytes of the open `file` from `start`. Reading happens on the blocking pool.
pub fn read_body(
    mut f: File,
    start: u64,
    len: u64,
    faults: StreamFaults,
) -> tokio::sync::mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut run = || -> io::Result<()> {
            f.seek(SeekFrom::Start(start))?;
            let chunk_size = match faults.bandwidth {
                // Small chunks keep a throttled stream smooth.
                Some(bw) => (bw / 20).clamp(4096, 256 * 1024) as usize,
                None => 256 * 1024,
            };
            let began = Instant::now();
            let mut sent = 0u64;
            while sent < len {
                if let Some(limit) = faults.drop_after {
                    if sent >= limit {
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "injected fault: connection dropped mid-body",
                        )));
                        return Ok(());
                    }
                }
                let n = chunk_size.min((len - sent) as usize);
                let mut buf = vec![0u8; n];
                f.read_exact(&mut buf)?;
                sent += n as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return Ok(()); // client went away
                }
                if let Some(bw) = faults.bandwidth {
                    let due = Duration::from_secs_f64(sent as f64 / bw as f64);
                    if let Some(wait) = due.checked_sub(began.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = run() {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Copy `len` bytes of `src` from `start` into a new blob of `bucket` (Upload Part - Copy,
/// cross-bucket copies). Runs on the blocking pool.
pub async fn copy_range(
    bucket: std::sync::Arc<Bucket>,
    mut src: File,
    start: u64,
    len: u64,
) -> io::Result<StoredBlob> {
    tokio::task::spawn_blocking(move || {
        let name = random_id();
        let tmp = bucket.tmp_dir().join(&name);
        let mut run = || -> io::Result<StoredBlob> {
            let mut out = File::create(&tmp)?;
            src.seek(SeekFrom::Start(start))?;
            let (mut md5, mut crc) = (Md5::new(), Crc64Digest::new());
            let mut left = len;
            let mut buf = vec![0u8; BLOCK];
            while left > 0 {
                let n = (left as usize).min(BLOCK);
                src.read_exact(&mut buf[..n])?;
                md5.update(&buf[..n]);
                crc.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            out.sync_all()?;
            bucket.adopt_tmp(&name)?;
            Ok(StoredBlob {
                data: name.clone(),
                size: len,
                md5: md5.finalize().into(),
                crc64: crc.finalize(),
            })
        };
        let r = run();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    })
    .await
    .map_err(io::Error::other)?
}

/// Concatenate data files into a new blob (Complete Multipart Upload). Digests are not
/// recomputed: the caller derives ETag and CRC from the parts.
pub fn concat_blocking(bucket: &Bucket, sources: &[PathBuf]) -> io::Result<(String, u64)> {
    let name = random_id();
    let tmp = bucket.tmp_dir().join(&name);
    let run = || -> io::Result<u64> {
        let mut out = File::create(&tmp)?;
        let mut total = 0;
        for s in sources {
            total += io::copy(&mut File::open(s)?, &mut out)?;
        }
        out.sync_all()?;
        bucket.adopt_tmp(&name)?;
        Ok(total)
    };
    match run() {
        Ok(total) => Ok((name, total)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Write the body of the `data/` file `from` into the `data/` file `into` at `offset`, and
/// sync it (an APPEND: bytes past the object's recorded length are not yet its own).
pub fn append_blocking(bucket: &Bucket, into: &str, offset: u64, from: &str) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(bucket.data_path(into))?;
    out.set_len(offset)?;
    out.seek(SeekFrom::Start(offset))?;
    io::copy(&mut File::open(bucket.data_path(from))?, &mut out)?;
    out.sync_all()
}
