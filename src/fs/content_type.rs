//! The headers that describe an object's body (Content-Type and the standard headers COS
//! stores with it), and the Content-Type a new file gets.
//!
//! - A file written over an object, and every copy cosfs makes (metadata changes, the storage
//!   class, renames, copies above 5 GB), keeps the body headers that object has: a `Replaced`
//!   copy on COS drops every header it does not send again, so a chmod would otherwise turn a
//!   `Content-Encoding: gzip` stylesheet into garbage for the browsers behind a CDN.
//! - A new file's Content-Type follows its name, as Tencent's cosfs and s3fs set it
//!   (`--content-type auto`, the default): the type of the last extension, else of the one
//!   before it (`a.css.bak`), from the `mime_guess` table; a name without a known extension
//!   is `application/octet-stream`. `--content-type TYPE` gives every new file TYPE.
//!   Symlinks, special files and directory markers keep their own fixed types.

use crate::object::{ObjectMeta, StandardHeaders};

/// What COS calls an object of unknown type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Content-Type and the standard headers of an object's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyHeaders {
    /// `None`: COS's default (`application/octet-stream`).
    pub content_type: Option<String>,
    pub standard: StandardHeaders,
}

impl BodyHeaders {
    /// The body headers `m` has.
    pub fn of(m: &ObjectMeta) -> Self {
        BodyHeaders {
            content_type: m.content_type.clone(),
            standard: m.standard.clone(),
        }
    }

    /// Only a Content-Type.
    pub fn typed(content_type: &str) -> Self {
        BodyHeaders {
            content_type: Some(content_type.to_string()),
            standard: StandardHeaders::default(),
        }
    }
}

/// How a new file's Content-Type is chosen (`--content-type`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ContentTypeRule {
    /// From the file name's extension.
    #[default]
    ByExtension,
    /// This type for every new file.
    Fixed(String),
}

impl ContentTypeRule {
    /// `auto`, or a type (`type/subtype`, parameters allowed).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(ContentTypeRule::ByExtension);
        }
        let valid = s
            .split(';')
            .next()
            .and_then(|t| t.split_once('/'))
            .is_some_and(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
            && s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if valid {
            Ok(ContentTypeRule::Fixed(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is neither `auto` nor a MIME type such as text/plain"
            ))
        }
    }

    /// The Content-Type of a new file named by `key`.
    pub fn for_new_file(&self, key: &str) -> String {
        match self {
            ContentTypeRule::Fixed(t) => t.clone(),
            ContentTypeRule::ByExtension => by_extension(key).unwrap_or(OCTET_STREAM).to_string(),
        }
    }
}

/// The type of the name's last extension, else of the one before it (s3fs's rule). A dot
/// that starts the name (`.bashrc`) starts no extension.
fn by_extension(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let name = name.trim_start_matches('.');
    let exts: Vec<&str> = name.split('.').skip(1).collect();
    let guess = |ext: &&str| {
        Some(*ext)
            .filter(|e| !e.is_empty())
            .and_then(|e| mime_guess::from_ext(e).first_raw())
    };
    exts.iter().rev().take(2).find_map(guess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_extension_as_s3fs_chooses_them() {
        let auto = ContentTypeRule::ByExtension;
        assert_eq!(auto.for_new_file("site/style.css"), "text/css");
        assert_eq!(auto.for_new_file("a/b/Photo.JPG"), "image/jpeg");
        assert_eq!(auto.for_new_file("index.html"), "text/html");
        assert_eq!(auto.for_new_file("style.css.unknownext"), "text/css");
        assert_eq!(auto.for_new_file("README"), OCTET_STREAM);
        assert_eq!(auto.for_new_file("dir.d/noext"), OCTET_STREAM);
        assert_eq!(auto.for_new_file("trailing."), OCTET_STREAM);
        assert_eq!(auto.for_new_file(".bashrc"), OCTET_STREAM);
        let fixed = ContentTypeRule::parse("text/plain; charset=utf-8").unwrap();
        assert_eq!(fixed.for_new_file("x.css"), "text/plain; charset=utf-8");
        assert_eq!(
            ContentTypeRule::parse("AUTO"),
            Ok(ContentTypeRule::ByExtension)
        );
        assert!(ContentTypeRule::parse("plain").is_err());
        assert!(ContentTypeRule::parse("text/\nplain").is_err());
    }
}
