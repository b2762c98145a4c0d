//! Paths and keys: how a file name under a mount of `BUCKET:/prefix` maps to an object key.
//!
//! Path `/a/b` is key `prefix/a/b`; directory `a` is the key prefix `prefix/a/` (its marker
//! object, when there is one, is the zero-byte key `prefix/a/`). A listing name that cannot be a
//! file name (empty, `.`, `..`, over 255 bytes, containing NUL) is skipped, never fatal.
//! COS keys are at most 850 bytes: a path whose key (or, for a directory, whose `key/`) would
//! be longer cannot exist, and is refused with ENAMETOOLONG before any request.

/// Longest file name Linux accepts (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Longest object key COS accepts, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 850;

/// Why a name cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Longer than `NAME_MAX` bytes: ENAMETOOLONG.
    TooLong,
    /// Empty, `.`, `..`, or containing `/` or NUL: EINVAL (never a valid single name).
    Invalid,
}

/// Check a single path component given by the kernel or found in a listing.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(NameError::Invalid);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// Check a whole key (or directory prefix) against the COS key limit.
pub fn check_key(key: &str) -> Result<(), NameError> {
    if key.len() > MAX_KEY_LEN {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// The key prefix of a mount: `""` for a whole bucket, `"data/"` for `BUCKET:/data`.
pub fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// Key of the file `name` inside the directory whose key prefix is `dir_prefix`.
pub fn child_key(dir_prefix: &str, name: &str) -> String {
    format!("{dir_prefix}{name}")
}

/// Key prefix (with trailing `/`) of the directory `name` inside `dir_prefix`.
pub fn child_dir_prefix(dir_prefix: &str, name: &str) -> String {
    format!("{dir_prefix}{name}/")
}

/// The entry name a listing key or common prefix stands for under `dir_prefix`, or `None` when
/// it is not representable (skipped) or is the directory's own marker.
pub fn listing_name<'a>(dir_prefix: &str, key_or_prefix: &'a str) -> Option<&'a str> {
    let rest = key_or_prefix.strip_prefix(dir_prefix)?;
    let name = rest.strip_suffix('/').unwrap_or(rest);
    check_name(name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name("a b+子"), Ok(()));
        assert_eq!(check_name(&"x".repeat(255)), Ok(()));
        assert_eq!(check_name(&"x".repeat(256)), Err(NameError::TooLong));
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert_eq!(check_name(bad), Err(NameError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn keys_over_850_bytes_are_too_long() {
        assert_eq!(check_key(&"k".repeat(850)), Ok(()));
        assert_eq!(check_key(&"k".repeat(851)), Err(NameError::TooLong));
        // Bytes, not characters: 284 three-byte characters are 852 bytes.
        assert_eq!(check_key(&"子".repeat(284)), Err(NameError::TooLong));
    }

    #[test]
    fn prefixes_and_keys() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("/data/x/"), "data/x/");
        assert_eq!(child_key("data/", "f"), "data/f");
        assert_eq!(child_dir_prefix("", "d"), "d/");
    }

    #[test]
    fn listing_names_skip_unrepresentable_keys() {
        assert_eq!(listing_name("d/", "d/file"), Some("file"));
        assert_eq!(listing_name("d/", "d/sub/"), Some("sub"));
        assert_eq!(listing_name("d/", "d/"), None, "the directory's own marker");
        assert_eq!(listing_name("d/", "d//"), None, "empty segment from //");
        assert_eq!(listing_name("d/", "d/../"), None);
        assert_eq!(listing_name("d/", "d/./"), None);
        assert_eq!(listing_name("d/", &format!("d/{}", "n".repeat(256))), None);
        assert_eq!(listing_name("d/", "e/file"), None);
    }
}
