//! The schema of progress events as data ([`EventSchema`], [`FieldSchema`]) and the names of
//! field types ([`SchemaType`]), so bindings and docs can be generated from, or checked
//! against, the one declaration in `events.rs`.

use std::sync::Arc;

use crate::digest::Digest;

/// One event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSchema {
    /// The Rust variant name (`"LayerDownloadProgress"`).
    pub variant: &'static str,
    /// The event's one-line description.
    pub doc: &'static str,
    /// Never dropped and delivered in order (otherwise a newer value may replace it).
    pub milestone: bool,
    /// The event's fields, in declaration order.
    pub fields: &'static [FieldSchema],
}

/// One field of an event or of a cache report ([`ReportSchema`](crate::cache::ReportSchema)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSchema {
    /// The Rust field name (`"layer_index"`).
    pub name: &'static str,
    /// The field's type: `"string"`, `"digest"`, `"u64"`, `"bool"`, or `"<type>?"` when it
    /// may be null; in a report also another report's name, and `"<type>[]"` for a list.
    pub ty: &'static str,
    /// The field's one-line description.
    pub doc: &'static str,
}

impl EventSchema {
    /// The value of the JSON `type` tag (`"layerDownloadProgress"`).
    pub fn type_tag(&self) -> String {
        lower_camel(self.variant)
    }
}

impl FieldSchema {
    /// The field's JSON name (`"layerIndex"`).
    pub fn json_name(&self) -> String {
        snake_to_camel(self.name)
    }
}

/// `LayerCached` → `layerCached`.
fn lower_camel(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `layer_index` → `layerIndex`.
pub(crate) fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The schema name of a field type.
pub trait SchemaType {
    /// `"string"`, `"digest"`, `"u64"`, `"bool"`, or the inner name with `?` for options.
    const NAME: &'static str;
}

impl SchemaType for Arc<str> {
    const NAME: &'static str = "string";
}
impl SchemaType for String {
    const NAME: &'static str = "string";
}
impl SchemaType for Digest {
    const NAME: &'static str = "digest";
}
impl SchemaType for usize {
    const NAME: &'static str = "u64";
}
impl SchemaType for u64 {
    const NAME: &'static str = "u64";
}
impl SchemaType for u32 {
    const NAME: &'static str = "u64";
}
impl SchemaType for bool {
    const NAME: &'static str = "bool";
}
impl SchemaType for Option<u64> {
    const NAME: &'static str = "u64?";
}
impl SchemaType for Option<usize> {
    const NAME: &'static str = "u64?";
}
impl SchemaType for Option<u32> {
    const NAME: &'static str = "u64?";
}
impl SchemaType for Option<String> {
    const NAME: &'static str = "string?";
}
impl SchemaType for Option<Digest> {
    const NAME: &'static str = "digest?";
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_convert() {
        assert_eq!(
            super::snake_to_camel("total_download_bytes"),
            "totalDownloadBytes"
        );
        assert_eq!(super::lower_camel("LayerCached"), "layerCached");
    }
}
