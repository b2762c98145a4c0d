//! Whole-object files of the disk cache: one plain file holding exactly the bytes of one
//! object version, which the kernel can read directly (passthrough, `fs/namespace/io_mode.rs`).
//!
//! - Made by the writer thread once every chunk of a version that fits is on disk
//!   (`assemble`): the chunks are read back, each block checked against its CRC, written to a
//!   temporary file, and the file is renamed to `<subdir>/<version>-w`. The chunks are then
//!   deleted: the cache holds one copy.
//! - The file holds the object's bytes and nothing else, because the kernel serves it as the
//!   file. What it is lives in an extended attribute (`XATTR`): `MAGIC`, key and ETag (u32
//!   length + bytes each), the length (u64) and the CRC-64 of the whole (u64), little-endian.
//!   The attribute is set before the rename, so a file under its name is complete. A
//!   filesystem without user extended attributes gets no whole files; the chunks stay.
//! - Checked once per mount before its first use (`verify`): the length and the CRC-64 of the
//!   whole file must match the attribute, or it is deleted and fetched again. The file is read
//!   as `VERIFY_STREAMS` ranges at once (one stream of readahead reads this machine's disk at
//!   496 MB/s, four at 2.4 GB/s), whose CRCs are combined; it is then in the page cache. The kernel then
//!   reads it without cosfs seeing the reads, so the check cannot be per block as for chunks.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

use crate::cos::integrity::{crc64_combine, Crc64Digest};
use crate::private_dir::{temp_name, PrivateDir};

use super::chunk_file::{pread, ChunkFile, ChunkName, ReadFailure};
use super::CHUNK;

const MAGIC: &[u8; 8] = b"COSFSWH1";
const XATTR: &std::ffi::CStr = c"user.cosfs.whole";
/// What `verify` reads at a time, per stream.
const VERIFY_BUF: usize = 1 << 20;
/// Ranges of a whole file `verify` reads at once.
const VERIFY_STREAMS: u64 = 4;

/// Write the whole file `whole` of the version (`size` bytes) from its chunk files, each
/// block checked as it is read. Returns the file's size.
pub(super) fn assemble(
    dir: &PrivateDir,
    whole: &ChunkName,
    key: &str,
    etag: &str,
    size: u64,
) -> Result<u64, ReadFailure> {
    let sub = whole.subdir();
    let file_name = whole.file_name();
    let tmp = format!("{sub}/{}", temp_name(&file_name, ".tmp"));
    let mut f = dir.create_new(&tmp).map_err(ReadFailure::Unreadable)?;
    let made = (|| {
        let mut crc = Crc64Digest::new();
        let mut buf = vec![0u8; CHUNK as usize];
        for index in 0..size.div_ceil(CHUNK) {
            let len = CHUNK.min(size - index * CHUNK);
            let chunk = ChunkName::new(key, etag, index);
            let c = ChunkFile::open(dir, &chunk.rel(), key, etag, index, len, true)?;
            let part = &mut buf[..len as usize];
            c.read_into(0, part, 0, true)?;
            crc.update(part);
            f.write_all(part).map_err(ReadFailure::Unreadable)?;
        }
        set_xattr(&f, &attribute(key, etag, size, crc.finalize()))
            .map_err(ReadFailure::Unreadable)?;
        dir.rename(&tmp, &format!("{sub}/{file_name}"))
            .map_err(ReadFailure::Unreadable)
    })();
    if let Err(e) = made {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    Ok(size)
}

/// Open the whole file `rel` of the version and check it through: its attribute must name
/// the version, and its length and CRC-64 must match. `size`, when known, must match too.
pub(super) fn verify(
    dir: &PrivateDir,
    rel: &str,
    key: &str,
    etag: &str,
    size: Option<u64>,
) -> Result<File, ReadFailure> {
    let f = dir.open_file(rel, false).map_err(ReadFailure::Unreadable)?;
    let len = f.metadata().map_err(ReadFailure::Unreadable)?.len();
    let want_prefix = attribute(key, etag, len, 0);
    let got = get_xattr(&f).map_err(ReadFailure::Unreadable)?;
    let crc_at = want_prefix.len() - 8;
    if got.len() != want_prefix.len()
        || got[..crc_at] != want_prefix[..crc_at]
        || size.is_some_and(|s| s != len)
    {
        return Err(ReadFailure::Damaged);
    }
    let want = u64::from_le_bytes(got[crc_at..].try_into().expect("8 bytes"));
    let per = len
        .div_ceil(VERIFY_STREAMS)
        .next_multiple_of(VERIFY_BUF as u64)
        .max(1);
    let ranges: Vec<(u64, u64)> = (0..len.div_ceil(per))
        .map(|i| (i * per, len.min((i + 1) * per)))
        .collect();
    let crcs: Vec<Result<u64, ReadFailure>> = std::thread::scope(|s| {
        let f = &f;
        let parts: Vec<_> = ranges
            .iter()
            .map(|&(from, to)| s.spawn(move || range_crc(f, from, to)))
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().expect("a CRC thread does not panic"))
            .collect()
    });
    let mut crc = Crc64Digest::new().finalize();
    for ((from, to), part) in ranges.iter().zip(crcs) {
        crc = crc64_combine(crc, part?, to - from);
    }
    if crc != want {
        return Err(ReadFailure::Damaged);
    }
    Ok(f)
}

/// The CRC-64 of bytes `from..to` of `f`.
fn range_crc(f: &File, from: u64, to: u64) -> Result<u64, ReadFailure> {
    let mut crc = Crc64Digest::new();
    let mut buf = vec![0u8; VERIFY_BUF];
    let mut at = from;
    while at < to {
        let n = VERIFY_BUF.min((to - at) as usize);
        pread(f, &mut buf[..n], at, true)?;
        crc.update(&buf[..n]);
        at += n as u64;
    }
    Ok(crc.finalize())
}

/// Whether the filesystem under `dir` keeps user extended attributes (no whole files if not).
pub(super) fn supported(dir: &PrivateDir) -> bool {
    let rel = temp_name(".xattr-probe", ".tmp");
    let Ok(f) = dir.create_new(&rel) else {
        return false;
    };
    let ok = set_xattr(&f, b"probe").is_ok();
    let _ = dir.remove_file(&rel);
    ok
}

fn attribute(key: &str, etag: &str, len: u64, crc: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(32 + key.len() + etag.len());
    a.extend_from_slice(MAGIC);
    for field in [key.as_bytes(), etag.as_bytes()] {
        a.extend_from_slice(&(field.len() as u32).to_le_bytes());
        a.extend_from_slice(field);
    }
    a.extend_from_slice(&len.to_le_bytes());
    a.extend_from_slice(&crc.to_le_bytes());
    a
}

fn set_xattr(f: &File, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated name and a buffer of `value.len()` bytes, both alive for the
    // call, on a descriptor we own.
    let r = unsafe {
        libc::fsetxattr(
            f.as_raw_fd(),
            XATTR.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_xattr(f: &File) -> std::io::Result<Vec<u8>> {
    // Key and ETag are bounded (COS keys are at most 850 bytes), so 4 KiB holds any value.
    let mut buf = vec![0u8; 4096];
    // SAFETY: as in `set_xattr`; the kernel writes at most `buf.len()` bytes.
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}
