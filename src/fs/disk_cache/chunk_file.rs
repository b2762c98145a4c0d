//! One chunk file of the disk cache: its name, its format, and reads that check what they
//! return.
//!
//! - Name: `<subdir>/<sha1(key, 0, etag)>-<index in hex>`, the subdirectory being the hash's
//!   first byte, so a version's chunks spread over 256 directories. The version's whole file
//!   (`whole_file`) is `<subdir>/<sha1>-w`, index `WHOLE` in the cache's index.
//! - Format (little-endian): `MAGIC`, key and ETag (u32 length + bytes each), chunk index
//!   (u64), data length (u64), the CRC-64 of each 64 KiB block (u64 each), then the data.
//!   Written to `<name>.<random>.tmp` (made `O_EXCL`) and renamed, so a file under its name was
//!   complete when written. Every file is reached through the mount's `PrivateDir`, never
//!   through a symlink.
//! - Reads: `open` checks the header against the version and chunk wanted and the file's
//!   length, and keeps the checksums. A read checks every block it touches that this mount
//!   has not checked yet (reading the whole block); blocks already checked are read as the
//!   bytes wanted only. So a random 4 KiB read costs one 64 KiB read and CRC per block per
//!   mount, then one 4 KiB `pread`.
//! - Without blocking: a read may ask for what the page cache holds only
//!   (`preadv2(RWF_NOWAIT)`), and gets `WouldBlock` when the disk would have to be read, so
//!   the caller can retry on the blocking pool instead of stalling an async worker.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::cos::integrity::crc64;
use crate::private_dir::{temp_name, PrivateDir};

use super::super::block::BLOCK_SIZE;
use super::CHUNK;

const MAGIC: &[u8; 8] = b"COSFSDC1";
/// Blocks per chunk: one bit each in a `Checked` mask.
pub(super) const BLOCKS_PER_CHUNK: u64 = CHUNK / BLOCK_SIZE;
const _: () = assert!(BLOCKS_PER_CHUNK <= 32);

/// Blocks of a chunk checked against their CRC (bit `i`: block `i`).
pub(super) type Checked = u32;

/// The index that names a version's whole file rather than one of its chunks.
pub(super) const WHOLE: u64 = u64::MAX;

/// One chunk of one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ChunkName {
    version: [u8; 20],
    pub index: u64,
}

/// The part of chunk names that names an object version (hashed once per read).
#[derive(Clone, Copy)]
pub(super) struct VersionName([u8; 20]);

impl VersionName {
    pub fn new(key: &str, etag: &str) -> Self {
        let mut h = Sha1::new();
        h.update(key.as_bytes());
        h.update([0]);
        h.update(etag.as_bytes());
        VersionName(h.finalize().into())
    }

    pub fn chunk(&self, index: u64) -> ChunkName {
        ChunkName {
            version: self.0,
            index,
        }
    }

    pub fn whole(&self) -> ChunkName {
        self.chunk(WHOLE)
    }
}

impl ChunkName {
    pub fn new(key: &str, etag: &str, index: u64) -> Self {
        VersionName::new(key, etag).chunk(index)
    }

    pub fn file_name(&self) -> String {
        match self.index {
            WHOLE => format!("{}-w", hex::encode(self.version)),
            i => format!("{}-{i:x}", hex::encode(self.version)),
        }
    }

    pub fn parse(name: &str) -> Option<ChunkName> {
        let (v, i) = name.split_once('-')?;
        let mut version = [0u8; 20];
        hex::decode_to_slice(v, &mut version).ok()?;
        let index = match i {
            "w" => WHOLE,
            i => u64::from_str_radix(i, 16).ok().filter(|&i| i != WHOLE)?,
        };
        Some(ChunkName { version, index })
    }

    pub fn subdir(&self) -> String {
        hex::encode(&self.version[..1])
    }

    /// Where this chunk's file is, relative to the mount's cache directory.
    pub fn rel(&self) -> String {
        format!("{}/{}", self.subdir(), self.file_name())
    }
}

/// Why a chunk file could not be read.
#[derive(Debug)]
pub(super) enum ReadFailure {
    /// The bytes are not in the page cache, and the read was asked not to wait for the disk.
    WouldBlock,
    /// The header does not name this chunk, the length is wrong, or a block fails its CRC.
    Damaged,
    /// The file could not be opened or read (deleted behind the cache, an I/O error).
    Unreadable(std::io::Error),
}

/// An open chunk file whose header names the chunk wanted.
pub(super) struct ChunkFile {
    file: File,
    /// Where the data starts: the header's length.
    data_at: u64,
    len: u64,
    crcs: Box<[u64]>,
}

impl ChunkFile {
    /// Open the file of chunk `index` (`len` bytes) of the version in `dir`, if it holds it.
    pub fn open(
        dir: &PrivateDir,
        rel: &str,
        key: &str,
        etag: &str,
        index: u64,
        len: u64,
        wait: bool,
    ) -> Result<ChunkFile, ReadFailure> {
        let file = dir.open_file(rel, false).map_err(ReadFailure::Unreadable)?;
        let n = len.div_ceil(BLOCK_SIZE);
        let expect = header(key, etag, index, len, (0..n).map(|_| 0));
        let mut head = vec![0u8; expect.len()];
        pread(&file, &mut head, 0, wait)?;
        let crc_at = expect.len() - 8 * n as usize;
        let file_len = file.metadata().map_err(ReadFailure::Unreadable)?.len();
        if head[..crc_at] != expect[..crc_at] || file_len != head.len() as u64 + len {
            return Err(ReadFailure::Damaged);
        }
        let crcs = head[crc_at..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(ChunkFile {
            file,
            data_at: head.len() as u64,
            len,
            crcs,
        })
    }

    /// Fill `buf` with the chunk's bytes from `from`, checking the blocks touched that
    /// `checked` does not include; returns the blocks checked now.
    pub fn read_into(
        &self,
        from: u64,
        buf: &mut [u8],
        checked: Checked,
        wait: bool,
    ) -> Result<Checked, ReadFailure> {
        let to = from + buf.len() as u64;
        if buf.is_empty() || to > self.len {
            return Err(ReadFailure::Damaged);
        }
        let (first, last) = (from / BLOCK_SIZE, (to - 1) / BLOCK_SIZE);
        let touched: Checked = (first..=last).fold(0, |m, b| m | 1 << b);
        if touched & !checked == 0 {
            pread(&self.file, buf, self.data_at + from, wait)?;
            return Ok(0);
        }
        let start = first * BLOCK_SIZE;
        let end = self.len.min((last + 1) * BLOCK_SIZE);
        let mut whole = vec![0u8; (end - start) as usize];
        pread(&self.file, &mut whole, self.data_at + start, wait)?;
        for b in first..=last {
            if checked & 1 << b != 0 {
                continue;
            }
            let at = ((b - first) * BLOCK_SIZE) as usize;
            let block = &whole[at..whole.len().min(at + BLOCK_SIZE as usize)];
            if crc64(block) != self.crcs[b as usize] {
                return Err(ReadFailure::Damaged);
            }
        }
        let at = (from - start) as usize;
        buf.copy_from_slice(&whole[at..at + buf.len()]);
        Ok(touched & !checked)
    }

    /// Record a use of the chunk in its mtime (the LRU order kept across remounts).
    pub fn touch(&self) {
        let _ = self.file.set_modified(SystemTime::now());
    }
}

/// Fill `buf` from `file` at `at`; without `wait`, only from the page cache.
pub(super) fn pread(file: &File, buf: &mut [u8], at: u64, wait: bool) -> Result<(), ReadFailure> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let iov = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let flags = if wait { 0 } else { libc::RWF_NOWAIT };
        // SAFETY: one iovec over `rest`, which outlives the call; the fd is open.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                (at + done as u64) as libc::off_t,
                flags,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN) if !wait => ReadFailure::WouldBlock,
                // A filesystem without non-blocking reads: the caller reads it on the
                // blocking pool.
                Some(libc::EOPNOTSUPP) if !wait => ReadFailure::WouldBlock,
                Some(libc::EINTR) => continue,
                _ => ReadFailure::Unreadable(e),
            });
        }
        if n == 0 {
            return Err(ReadFailure::Damaged);
        }
        done += n as usize;
    }
    Ok(())
}

/// Write chunk `name` (`blocks`, in order, of the version) under `dir`: to a temporary name,
/// then renamed. Returns the file's size.
pub(super) fn write(
    dir: &PrivateDir,
    name: &ChunkName,
    key: &str,
    etag: &str,
    blocks: &[Bytes],
) -> std::io::Result<u64> {
    let sub = name.subdir();
    dir.make_dir(&sub)?;
    let data_len: usize = blocks.iter().map(Bytes::len).sum();
    let head = header(
        key,
        etag,
        name.index,
        data_len as u64,
        blocks.iter().map(|b| crc64(b)),
    );
    let file_name = name.file_name();
    let tmp = format!("{sub}/{}", temp_name(&file_name, ".tmp"));
    let mut f = dir.create_new(&tmp)?;
    let written = (|| {
        f.write_all(&head)?;
        for b in blocks {
            f.write_all(b)?;
        }
        dir.rename(&tmp, &format!("{sub}/{file_name}"))
    })();
    if let Err(e) = written {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    Ok((head.len() + data_len) as u64)
}

/// A chunk file's header: what it holds, and the CRC-64 of each block.
fn header(key: &str, etag: &str, index: u64, len: u64, crcs: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut head = Vec::with_capacity(64 + key.len() + etag.len() + 128);
    head.extend_from_slice(MAGIC);
    for field in [key.as_bytes(), etag.as_bytes()] {
        head.extend_from_slice(&(field.len() as u32).to_le_bytes());
        head.extend_from_slice(field);
    }
    head.extend_from_slice(&index.to_le_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    for c in crcs {
        head.extend_from_slice(&c.to_le_bytes());
    }
    head
}

/// Chunk files under `dir` with their sizes and mtimes; unfinished writes are deleted.
pub(super) fn scan(dir: &PrivateDir) -> Vec<(ChunkName, u64, SystemTime)> {
    use rustix::fs::FileType;
    let mut out = Vec::new();
    let Ok(subs) = dir.entries("") else {
        return out;
    };
    for (sub, kind) in subs {
        if kind != FileType::Directory {
            continue;
        }
        let Ok(files) = dir.entries(&sub) else {
            continue;
        };
        for (name, kind) in files {
            let rel = format!("{sub}/{name}");
            if kind != FileType::RegularFile {
                continue;
            }
            if name.ends_with(".tmp") {
                let _ = dir.remove_file(&rel);
                continue;
            }
            let Some(c) = ChunkName::parse(&name) else {
                continue;
            };
            if let Ok(m) = dir.open_file(&rel, false).and_then(|f| f.metadata()) {
                out.push((c, m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(n: usize, last: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| {
                let len = if i + 1 == n {
                    last
                } else {
                    BLOCK_SIZE as usize
                };
                Bytes::from((0..len).map(|j| (i * 7 + j) as u8).collect::<Vec<_>>())
            })
            .collect()
    }

    #[test]
    fn reads_check_each_block_once_and_return_the_bytes_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open(&tmp.path().join("d")).unwrap();
        let name = ChunkName::new("k", "e", 2);
        let data = blocks(3, 1000);
        let all: Vec<u8> = data.iter().flat_map(|b| b.to_vec()).collect();
        write(&dir, &name, "k", "e", &data).unwrap();
        let rel = name.rel();
        let f = ChunkFile::open(&dir, &rel, "k", "e", 2, all.len() as u64, true).unwrap();
        let mut buf = vec![0u8; 4096];
        let at = BLOCK_SIZE - 100;
        let checked = f.read_into(at, &mut buf, 0, false).unwrap();
        assert_eq!(checked, 0b11, "the two blocks touched were checked");
        assert_eq!(buf, all[at as usize..at as usize + 4096]);
        assert_eq!(f.read_into(at, &mut buf, 0b11, true).unwrap(), 0);
        let mut tail = vec![0u8; 1000];
        f.read_into(2 * BLOCK_SIZE, &mut tail, 0b11, true).unwrap();
        assert_eq!(tail, all[2 * BLOCK_SIZE as usize..]);
        assert!(matches!(
            f.read_into(2 * BLOCK_SIZE, &mut [0u8; 1001], 0, true),
            Err(ReadFailure::Damaged)
        ));
        for (k, e, i, len) in [("k", "x", 2, all.len()), ("k", "e", 3, all.len())] {
            assert!(matches!(
                ChunkFile::open(&dir, &rel, k, e, i, len as u64, true),
                Err(ReadFailure::Damaged)
            ));
        }
    }

    #[test]
    fn a_flipped_byte_fails_only_its_block_and_only_until_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open(&tmp.path().join("d")).unwrap();
        let name = ChunkName::new("k", "e", 0);
        let data = blocks(2, BLOCK_SIZE as usize);
        write(&dir, &name, "k", "e", &data).unwrap();
        let path = tmp.path().join("d").join(name.rel());
        let mut raw = std::fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let f = ChunkFile::open(&dir, &name.rel(), "k", "e", 0, 2 * BLOCK_SIZE, true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(f.read_into(0, &mut buf, 0, true).unwrap(), 0b01);
        assert!(matches!(
            f.read_into(2 * BLOCK_SIZE - 16, &mut buf, 0, true),
            Err(ReadFailure::Damaged)
        ));
    }
}
