//! Parsers of option values, each with its range, so that a bad value is refused by clap with
//! a sentence saying what is allowed (exit 2, nothing mounted) and never reaches a panic.
//! Numeric options accept a leading `-` as a value (`allow_negative_numbers`), so `-1` gets
//! this range message instead of clap's tip about `--`.

use std::time::Duration;

/// Log levels, as `--log-level` takes them.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// `uid_t`/`gid_t` value -1 means "no change" to chown(2); it cannot be an owner.
const MAX_ID: u32 = u32::MAX - 1;

/// One day: the longest time a cache entry or a shutdown grace period sensibly lasts.
const DAY: f64 = 86_400.0;

/// A switch: `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
/// The defaults `cosfs mount` shows in `--help` and applies, as option text rendered from
/// `FsConfig::default()`, the one place they are decided.
pub struct MountDefaults {
    pub file_mode: String,
    pub dir_mode: String,
    pub metadata_ttl: String,
    pub listing_metadata: String,
    pub listing_heads: String,
    pub cache_size: String,
    pub memory_limit: String,
    pub disk_cache_size: String,
    pub cache_dir_size: String,
    pub part_size: String,
    pub upload_concurrency: String,
    pub op_timeout: String,
}

pub fn mount_defaults() -> &'static MountDefaults {
    static DEFAULTS: std::sync::OnceLock<MountDefaults> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let fs = crate::fs::FsConfig::default();
        MountDefaults {
            file_mode: format!("{:04o}", fs.defaults.file_mode),
            dir_mode: format!("{:04o}", fs.defaults.dir_mode),
            metadata_ttl: seconds_text(fs.metadata_ttl),
            listing_metadata: if fs.listing_metadata { "on" } else { "off" }.into(),
            listing_heads: fs.listing_heads.to_string(),
            cache_size: size_text(fs.cache_bytes),
            memory_limit: size_text(fs.memory_bytes),
            disk_cache_size: match fs.disk_cache_size {
                crate::fs::disk_cache::DiskSize::Auto => "auto".into(),
                crate::fs::disk_cache::DiskSize::Bytes(n) => size_text(n),
            },
            cache_dir_size: size_text(fs.cache_dir_bytes),
            part_size: size_text(fs.part_size),
            upload_concurrency: fs.upload_concurrency.to_string(),
            op_timeout: seconds_text(fs.op_timeout),
        }
    })
}

/// A byte count as `size` reads it back, in the largest exact unit (`256M`, `4G`).
fn size_text(n: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if n != 0 && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Seconds as the duration parsers read them back (`1`, `0.5`).
fn seconds_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

pub fn on_off(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{s:?} is neither on nor off")),
    }
}

/// Octal permission bits, e.g. `0644`.
pub fn mode(s: &str) -> Result<u32, String> {
    let digits = s.trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode from 0000 to 7777, such as 0644"))
}

/// Seconds (fractions allowed) within `min..=max`.
fn seconds_in(s: &str, min: f64, max: f64) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (min..=max).contains(v))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds from {min} to {max}"))
}

/// `--metadata-ttl`: 0 to a day.
pub fn ttl(s: &str) -> Result<Duration, String> {
    seconds_in(s, 0.0, DAY)
}

/// `--stop-timeout`: 0 to a day.
pub fn stop_timeout(s: &str) -> Result<Duration, String> {
    seconds_in(s, 0.0, DAY)
}

/// `--stats-interval`: 0 (off) to a day.
pub fn stats_interval(s: &str) -> Result<Duration, String> {
    seconds_in(s, 0.0, DAY)
}

/// `--op-timeout`: 1 s to an hour.
pub fn op_timeout(s: &str) -> Result<Duration, String> {
    seconds_in(s, 1.0, 3600.0)
}

/// A size in bytes, with an optional K/M/G/T suffix (powers of 1024; `B`/`iB` ignored).
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size such as 512M or 2G"))
}

fn size_in(s: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    let n = size(s)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{s:?}: {what}"))
    }
}

/// The machine's memory, in bytes (0 when unknown).
fn physical_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages.max(0) as u64).saturating_mul(page.max(0) as u64)
}

/// `--cache-size`: at least 4M (one reader's largest request in flight), at most the
/// machine's memory.
pub fn cache_size(s: &str) -> Result<u64, String> {
    let ram = physical_memory();
    let max = if ram == 0 { u64::MAX } else { ram };
    size_in(
        s,
        4 << 20,
        max,
        &format!(
            "the block cache must be at least 4M and at most this machine's memory ({} MiB)",
            ram >> 20
        ),
    )
}

/// `--memory-limit`: at least 16M, at most the machine's memory.
pub fn memory_limit(s: &str) -> Result<u64, String> {
    let ram = physical_memory();
    let max = if ram == 0 { u64::MAX } else { ram };
    size_in(
        s,
        crate::fs::memory::MIN_LIMIT,
        max,
        &format!(
            "the memory limit must be at least 16M and at most this machine's memory ({} MiB)",
            ram >> 20
        ),
    )
}

/// `--cache-dir-size`: at least 1M.
pub fn cache_dir_size(s: &str) -> Result<u64, String> {
    size_in(s, 1 << 20, u64::MAX, "the staging area must be at least 1M")
}

/// `--disk-cache-size`: `auto`, or at least one chunk file.
pub fn disk_cache_size(s: &str) -> Result<crate::fs::disk_cache::DiskSize, String> {
    use crate::fs::disk_cache::DiskSize;
    if s.eq_ignore_ascii_case("auto") {
        return Ok(DiskSize::Auto);
    }
    size_in(
        s,
        1 << 20,
        u64::MAX,
        "the disk cache must hold at least 1M (to have none: --disk-cache off)",
    )
    .map(DiskSize::Bytes)
}

/// `--disk-cache`: a directory, or `off`.
pub fn disk_cache(s: &str) -> Result<DiskCacheAt, String> {
    if s == "off" {
        return Ok(DiskCacheAt::Off);
    }
    if s.is_empty() {
        return Err("give a directory, or off".into());
    }
    Ok(DiskCacheAt::Under(std::path::PathBuf::from(s)))
}

/// Where `--disk-cache` puts the disk cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskCacheAt {
    Off,
    /// In the mount's own directory under this one.
    Under(std::path::PathBuf),
}

/// `--part-size`: COS's part limits, 1M to 5G.
pub fn part_size(s: &str) -> Result<u64, String> {
    size_in(
        s,
        1 << 20,
        5 << 30,
        "parts must be between 1M and 5G (the COS part limits)",
    )
}

/// `--storage-class`: one of COS's classes, any case (sent upper-case).
pub fn storage_class(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_uppercase();
    if crate::object::STORAGE_CLASSES.contains(&c.as_str()) {
        Ok(c)
    } else {
        Err(format!(
            "{s:?} is not a COS storage class (one of {})",
            crate::object::STORAGE_CLASSES.join(", ")
        ))
    }
}

/// `--uid`/`--gid`: 0 to 4294967294.
pub fn id(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| *v <= MAX_ID)
        .ok_or_else(|| {
            format!(
                "{s:?} is not a user or group id from 0 to {MAX_ID} (4294967295 means \"none\")"
            )
        })
}

/// A fraction from 0 to 1 (fault rates of `cosfs serve`).
pub fn fraction(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{s:?} is not a fraction from 0 to 1, such as 0.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_defaults_parse_back_to_the_fs_defaults() {
        let fs = crate::fs::FsConfig::default();
        let d = mount_defaults();
        assert_eq!(mode(&d.file_mode), Ok(fs.defaults.file_mode));
        assert_eq!(mode(&d.dir_mode), Ok(fs.defaults.dir_mode));
        assert_eq!(ttl(&d.metadata_ttl), Ok(fs.metadata_ttl));
        assert_eq!(on_off(&d.listing_metadata), Ok(fs.listing_metadata));
        assert_eq!(d.listing_heads.parse(), Ok(fs.listing_heads));
        assert_eq!(cache_size(&d.cache_size), Ok(fs.cache_bytes));
        assert_eq!(memory_limit(&d.memory_limit), Ok(fs.memory_bytes));
        assert_eq!(cache_dir_size(&d.cache_dir_size), Ok(fs.cache_dir_bytes));
        assert_eq!(part_size(&d.part_size), Ok(fs.part_size));
        assert_eq!(d.upload_concurrency.parse(), Ok(fs.upload_concurrency));
        assert_eq!(op_timeout(&d.op_timeout), Ok(fs.op_timeout));
        assert_eq!(size_text(1536), "1536");
        assert_eq!(size_text(3 << 20), "3M");
        assert_eq!(seconds_text(Duration::from_millis(2500)), "2.5");
    }

    #[test]
    fn ranges() {
        assert_eq!(storage_class(" standard_ia"), Ok("STANDARD_IA".into()));
        assert!(storage_class("GOLD").unwrap_err().contains("DEEP_ARCHIVE"));
        assert_eq!(mode("0644"), Ok(0o644));
        assert_eq!(mode("755"), Ok(0o755));
        assert!(mode("0999").is_err());
        assert!(mode("17777").is_err());
        assert_eq!(size("256M"), Ok(256 << 20));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("4096"), Ok(4096));
        assert!(size("lots").is_err());
        assert!(
            size("99999999999T").is_err(),
            "overflow is an error, not a wrap"
        );
        assert_eq!(ttl("0.5"), Ok(Duration::from_millis(500)));
        assert!(ttl("-1").unwrap_err().contains("from 0 to 86400"));
        assert!(
            ttl("99999999999999999999").is_err(),
            "no panic on huge values"
        );
        assert!(ttl("NaN").is_err() && ttl("inf").is_err());
        assert!(op_timeout("0").is_err() && op_timeout("3601").is_err());
        assert_eq!((on_off("on"), on_off("OFF")), (Ok(true), Ok(false)));
        assert!(on_off("maybe").is_err());
        assert!(part_size("100K").is_err() && part_size("6G").is_err());
        assert!(cache_size("1M").is_err() && cache_size("1024T").is_err());
        assert!(cache_size("256M").is_ok());
        assert!(memory_limit("8M").is_err() && memory_limit("64M").is_ok());
        assert!(cache_dir_size("0").is_err());
        assert_eq!(id("4294967294"), Ok(4294967294));
        assert!(id("4294967295").unwrap_err().contains("none"));
        assert!(id("-1").is_err());
        assert!(fraction("1.5").is_err() && fraction("0.25").is_ok());
    }
}
