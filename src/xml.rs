//! A small, tolerant XML tree for the COS XML API (used by both client and server).
//!
//! COS responses vary in ways a strict schema mapping would trip over: unknown elements,
//! namespace attributes, element order, `EncodingType` vs `Encoding-Type`, and leading whitespace
//! streamed before a Complete/Copy result. So we parse into a plain tree of elements (namespace
//! prefixes dropped, attributes ignored, entities unescaped) and look fields up by name.

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

impl Element {
    /// First child with this name (any of the given spellings).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this name, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child with one of these names.
    pub fn text_of(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.child(n))
            .map(|c| c.text.as_str())
    }
}

/// Parse a document and return its root element. Leading whitespace is skipped.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    let start = input
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(input.len());
    let mut reader = Reader::from_reader(&input[start..]);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError(e.to_string()))?;
        match ev {
            Event::Start(e) => stack.push(Element {
                name: local_name(e.name().as_ref()),
                ..Default::default()
            }),
            Event::Empty(e) => {
                let el = Element {
                    name: local_name(e.name().as_ref()),
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| XmlError(e.to_string()))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Eof => return Err(XmlError("unexpected end of document".into())),
            _ => {}
        }
        buf.clear();
    }
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match s.rsplit_once(':') {
        Some((_, local)) => local.to_string(),
        None => s.into_owned(),
    }
}

/// Escape text for an XML element body.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// Strip the quotes COS puts around ETags (`"..."`, possibly entity-encoded upstream).
pub fn unquote_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerates_whitespace_namespaces_unknown_and_order() {
        let doc = b"\n   \n<CompleteMultipartUploadResult xmlns=\"http://www.qcloud.com/document/product/436/7751\">\
            <Unknown><X/></Unknown><ETag>&quot;abc-3&quot;</ETag><Key>a%20b</Key>\
            <Location>l</Location></CompleteMultipartUploadResult>";
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "CompleteMultipartUploadResult");
        assert_eq!(unquote_etag(root.text_of(&["ETag"]).unwrap()), "abc-3");
        assert_eq!(root.text_of(&["Key"]), Some("a%20b"));
        assert_eq!(root.text_of(&["Missing", "Location"]), Some("l"));
    }

    #[test]
    fn rejects_truncated_document() {
        assert!(parse(b"<a><b>x</b>").is_err());
        assert!(parse(b"").is_err());
    }
}
