//! Percent-encoding exactly as COS signs and routes it.
//!
//! `encode_strict` is the signer's `UrlEncode`: every byte outside the unreserved set
//! `A-Z a-z 0-9 - _ . ~` becomes `%XX` (uppercase hex). `encode_path` is the same but keeps
//! `/`, and is what goes on the wire for an object key. We build request paths ourselves
//! instead of going through the `url` crate, which would fold `.`/`..` segments and treat a raw
//! `?`/`#` as delimiters (`docs/COS-NOTES.md` "Request signature").

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_with(input: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len() * 3 / 2);
    for &b in input.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Encode every byte outside `A-Z a-z 0-9 - _ . ~`; `/` becomes `%2F`, space `%20`.
pub fn encode_strict(input: &str) -> String {
    encode_with(input, false)
}

/// Encode an object key for the request path: like [`encode_strict`] but `/` is kept.
/// `.` stays literal, but `..` segments are never folded because we never normalise.
pub fn encode_path(input: &str) -> String {
    encode_with(input, true)
}

/// Decode `%XX` sequences; `+` stays `+` (COS listings never use form encoding).
/// Fails on a malformed escape or on bytes that are not UTF-8.
pub fn decode(input: &str) -> Result<String, DecodeError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(DecodeError::BadEscape)?;
            let s = std::str::from_utf8(hex).map_err(|_| DecodeError::BadEscape)?;
            let v = u8::from_str_radix(s, 16).map_err(|_| DecodeError::BadEscape)?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed percent-escape")]
    BadEscape,
    #[error("percent-decoded text is not UTF-8")]
    NotUtf8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_encoding_matches_cos_rules() {
        assert_eq!(encode_strict("a b+c/d~e_f.g-h"), "a%20b%2Bc%2Fd~e_f.g-h");
        assert_eq!(encode_strict("max-age=600"), "max-age%3D600");
        assert_eq!(encode_strict("腾"), "%E8%85%BE");
    }

    #[test]
    fn path_encoding_keeps_slashes_and_dots() {
        assert_eq!(encode_path("a/../b?c#d"), "a/../b%3Fc%23d");
        assert_eq!(
            encode_path("exampleobject(腾讯云)"),
            "exampleobject%28%E8%85%BE%E8%AE%AF%E4%BA%91%29"
        );
    }

    #[test]
    fn decode_round_trips_and_keeps_plus() {
        for s in ["a b+c", "子目录/x y", "%", "..", "?#&="] {
            assert_eq!(decode(&encode_strict(s)).unwrap(), s);
            assert_eq!(decode(&encode_path(s)).unwrap(), s);
        }
        assert_eq!(decode("a+b").unwrap(), "a+b");
        assert_eq!(decode("%4").unwrap_err(), DecodeError::BadEscape);
        assert_eq!(decode("%zz").unwrap_err(), DecodeError::BadEscape);
        assert_eq!(decode("%ff").unwrap_err(), DecodeError::NotUtf8);
    }
}
