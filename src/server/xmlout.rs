//! A minimal XML writer for server responses.

use crate::xml::escape;

/// What every XML answer starts with.
pub const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

pub struct XmlOut(String);

impl XmlOut {
    /// Start a document with its root element (`attrs` raw, e.g. an `xmlns`).
    pub fn new(root: &str, attrs: &str) -> Self {
        let sep = if attrs.is_empty() { "" } else { " " };
        XmlOut(format!("{XML_DECLARATION}<{root}{sep}{attrs}>"))
    }

    /// Markup as it is (the caller escapes what it holds).
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("<{name}>"));
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str(&format!("</{name}>"));
        self
    }

    pub fn elem(&mut self, name: &str, text: impl AsRef<str>) -> &mut Self {
        self.0
            .push_str(&format!("<{name}>{}</{name}>", escape(text.as_ref())));
        self
    }

    pub fn finish(mut self, root: &str) -> String {
        self.0.push_str(&format!("</{root}>"));
        self.0
    }
}

/// An ETag as COS writes it in XML: quoted (and so entity-escaped by `elem`).
pub fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}
