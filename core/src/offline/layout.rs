//! Reading an OCI image layout (in a directory, or inside an archive): `oci-layout`, then
//! `index.json`, whose entry for the wanted tag (`org.opencontainers.image.ref.name`) or
//! digest is the image's top manifest or index. The name it is recorded under in the cache:
//! a full name in its annotations (`io.containerd.image.name`, or a `ref.name` that is a
//! whole reference), else `localhost/<directory name>:<tag>`.

use std::collections::HashMap;
use std::path::Path;

use super::blobs::Blobs;
use super::local::{LocalImage, Top};
use super::{LayoutRef, SourceError};
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::reference::Reference;

/// Annotation naming a tag in `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd and `docker save` put the full image name in.
const IMAGE_NAME: &str = "io.containerd.image.name";

/// Which entry of `index.json`.
#[derive(Debug, Clone)]
pub(super) enum Selector {
    /// The only one.
    Only,
    /// By `ref.name`.
    Tag(String),
    /// By digest (an entry, or any manifest blob of the layout).
    Digest(Digest),
    /// By full name (`io.containerd.image.name`, or a `ref.name` naming the same image).
    Name(Reference),
}

impl From<Option<&LayoutRef>> for Selector {
    fn from(r: Option<&LayoutRef>) -> Selector {
        match r {
            None => Selector::Only,
            Some(LayoutRef::Tag(t)) => Selector::Tag(t.clone()),
            Some(LayoutRef::Digest(d)) => Selector::Digest(d.clone()),
        }
    }
}

#[derive(serde::Deserialize)]
struct Index {
    manifests: Vec<Entry>,
}

#[derive(serde::Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Entry {
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

impl Entry {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    fn label(&self) -> String {
        self.annotation(IMAGE_NAME)
            .or(self.annotation(REF_NAME))
            .map_or_else(|| self.digest.clone(), str::to_owned)
    }

    fn names(&self, name: &Reference) -> bool {
        let same = |s: &str| s.parse::<Reference>().is_ok_and(|r| &r == name);
        self.annotation(IMAGE_NAME).is_some_and(same) || self.annotation(REF_NAME).is_some_and(same)
    }
}

/// Opens the layout in `blobs` and picks the image `selector` names.
pub(super) fn open(blobs: Blobs, selector: Selector) -> Result<LocalImage, SourceError> {
    let marker = blobs
        .read_small("oci-layout", 64 << 10)
        .map_err(|e| match e {
            SourceError::Io { path, source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                SourceError::malformed(path, "missing: not an OCI image layout")
            }
            e => e,
        })?;
    serde_json::from_slice::<serde_json::Value>(&marker)
        .ok()
        .filter(|v| v["imageLayoutVersion"].is_string())
        .ok_or_else(|| {
            SourceError::malformed(blobs.display("oci-layout"), "no imageLayoutVersion")
        })?;
    let index_path = blobs.display("index.json");
    let index: Index = serde_json::from_slice(&blobs.read_small("index.json", MAX_MANIFEST_BYTES)?)
        .map_err(|e| SourceError::malformed(&index_path, e))?;
    let entry = select(&index.manifests, &selector, &index_path)?;
    let top = match &entry {
        Some(e) => Top {
            digest: e.digest.parse().map_err(|_| {
                SourceError::malformed(&index_path, format!("bad digest {:?}", e.digest))
            })?,
            size: Some(e.size),
            media_type: e.media_type.clone(),
        },
        None => match &selector {
            Selector::Digest(d) => Top {
                digest: d.clone(),
                size: None,
                media_type: None,
            },
            _ => return Err(SourceError::malformed(&index_path, "no entry selected")),
        },
    };
    let name = record_name(entry.as_ref(), &selector, blobs.root(), &top.digest);
    Ok(LocalImage {
        name,
        blobs,
        top,
        made: HashMap::new(),
        named: HashMap::new(),
    })
}

/// The entry `selector` names (`None` for a digest no entry has: a manifest blob of the
/// layout that the index does not list).
fn select(
    entries: &[Entry],
    selector: &Selector,
    path: &Path,
) -> Result<Option<Entry>, SourceError> {
    let labels = || entries.iter().map(Entry::label).collect::<Vec<_>>();
    let found: Vec<&Entry> = match selector {
        Selector::Only => entries.iter().collect(),
        Selector::Tag(t) => entries
            .iter()
            .filter(|e| e.annotation(REF_NAME) == Some(t.as_str()))
            .collect(),
        Selector::Digest(d) => {
            let d = d.to_string();
            return Ok(entries.iter().find(|e| e.digest == d).cloned());
        }
        Selector::Name(n) => entries.iter().filter(|e| e.names(n)).collect(),
    };
    let mut digests: Vec<&str> = found.iter().map(|e| e.digest.as_str()).collect();
    digests.dedup();
    match (found.first(), digests.len()) {
        (Some(e), 1) => Ok(Some((*e).clone())),
        (None, _) => Err(SourceError::NoSuchImage {
            path: path.to_owned(),
            wanted: match selector {
                Selector::Tag(t) => format!("tagged {t:?}"),
                Selector::Name(n) => n.to_string(),
                _ => "at all".into(),
            },
            available: labels(),
        }),
        _ => Err(SourceError::Ambiguous {
            path: path.to_owned(),
            available: found.iter().map(|e| e.label()).collect(),
        }),
    }
}

/// The name the image is recorded under: its own full name if its annotations give one,
/// else `localhost/<directory or archive name>` with the tag (or pinned to the digest).
fn record_name(
    entry: Option<&Entry>,
    selector: &Selector,
    root: &Path,
    digest: &Digest,
) -> Reference {
    if let Selector::Name(n) = selector {
        return n.clone();
    }
    let full = entry.and_then(|e| {
        [IMAGE_NAME, REF_NAME]
            .into_iter()
            .filter_map(|k| e.annotation(k))
            .filter(|s| s.contains('/'))
            .find_map(|s| s.parse::<Reference>().ok())
    });
    if let Some(full) = full {
        return full;
    }
    let tag = entry
        .and_then(|e| e.annotation(REF_NAME))
        .filter(|t| is_tag(t));
    local_name(root, tag, (tag.is_none()).then_some(digest))
}

/// `localhost/<sanitised file name of root>` with `tag`, or pinned to `digest`, or `latest`.
pub(super) fn local_name(root: &Path, tag: Option<&str>, digest: Option<&Digest>) -> Reference {
    let base: String = root
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let base = if base.is_empty() { "image" } else { base };
    let suffix = match (tag, digest) {
        (Some(t), _) => format!(":{t}"),
        (None, Some(d)) => format!("@{d}"),
        (None, None) => ":latest".into(),
    };
    format!("localhost/{base}{suffix}")
        .parse()
        .or_else(|_| format!("localhost/image{suffix}").parse())
        .unwrap_or_else(|_| local_fallback())
}

fn local_fallback() -> Reference {
    // A constant that parses; the test below keeps it so.
    "localhost/image:latest"
        .parse()
        .expect("constant reference")
}

fn is_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !t.starts_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        let _ = local_fallback();
        assert_eq!(
            local_name(Path::new("/tmp/My Images"), Some("v1"), None).to_string(),
            "localhost/my-images:v1"
        );
        assert_eq!(
            local_name(Path::new("/tmp/a.tar"), None, None).to_string(),
            "localhost/a:latest"
        );
        assert_eq!(
            local_name(Path::new("/"), None, None).to_string(),
            "localhost/image:latest"
        );
    }
}
