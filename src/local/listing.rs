//! GET Bucket semantics: prefix, delimiter, common prefixes, marker pagination and max-keys,
//! in key-byte order, as COS documents them. A common prefix counts toward max-keys like a key,
//! is returned once, and is skipped when it sorts at or before the marker.

use std::ops::{Bound, ControlFlow};

use super::storage::{Bucket, ObjectRecord};

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub marker: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Default)]
pub struct Listing {
    pub contents: Vec<ObjectRecord>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    pub next_marker: Option<String>,
}

/// The smallest string above every string that starts with `p`, when cheap to compute
/// (last byte ASCII); lets a listing jump over a whole common prefix.
fn prefix_successor(p: &str) -> Option<String> {
    let last = *p.as_bytes().last()?;
    if last >= 0x7f {
        return None;
    }
    let mut s = p[..p.len() - 1].to_string();
    s.push((last + 1) as char);
    Some(s)
}

pub fn list(bucket: &Bucket, p: &ListParams) -> Listing {
    let mut out = Listing::default();
    if p.max_keys == 0 {
        return out;
    }
    let marker = p.marker.as_deref().filter(|m| !m.is_empty());
    let start = match marker {
        Some(m) if m >= p.prefix.as_str() => Bound::Excluded(m),
        _ => Bound::Included(p.prefix.as_str()),
    };
    let delimiter = p.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut count = 0usize;
    let mut last_emitted: Option<String> = None;
    bucket.scan_from(start, |rec: &ObjectRecord| {
        if !rec.key.starts_with(&p.prefix) {
            return ControlFlow::Break(());
        }
        let rest = &rec.key[p.prefix.len()..];
        if let Some(d) = delimiter {
            if let Some(i) = rest.find(d) {
                let cp = &rec.key[..p.prefix.len() + i + d.len()];
                if marker.is_some_and(|m| cp <= m) || out.prefixes.last().is_some_and(|l| l == cp) {
                    return ControlFlow::Continue(prefix_successor(cp));
                }
                if count == p.max_keys {
                    out.truncated = true;
                    return ControlFlow::Break(());
                }
                out.prefixes.push(cp.to_string());
                last_emitted = Some(cp.to_string());
                count += 1;
                return ControlFlow::Continue(prefix_successor(cp));
            }
        }
        if count == p.max_keys {
            out.truncated = true;
            return ControlFlow::Break(());
        }
        out.contents.push(rec.clone());
        last_emitted = Some(rec.key.clone());
        count += 1;
        ControlFlow::Continue(None)
    });
    if out.truncated {
        out.next_marker = last_emitted;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("子"), None);
        assert_eq!(prefix_successor(""), None);
    }
}
