//! Reading a `docker save`-style archive: its `manifest.json` (`Config`, `RepoTags`,
//! `Layers`, as docker, podman and skopeo write it, legacy `<id>/layer.tar` names and
//! docker 25's `blobs/sha256/<hex>` alike); an archive with only an OCI `index.json` is read
//! as a layout. Such an archive has no registry manifest: one is made up (Docker schema 2,
//! the config and each layer as stored), so the pull verifies and records it like any other.
//! A layer's digest is the sha256 of its member: an uncompressed layer's is its diff_id
//! (checked by the pipeline as the blob digest and the diff_id at once); a gzip or zstd
//! member (detected by its magic bytes) is hashed once here first.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::SourceError;
use super::blobs::Blobs;
use super::layout::{self, Selector};
use super::local::{LocalImage, Top};
use super::members::TarMembers;
use crate::config::ImageConfig;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::manifest::{DOCKER_MANIFEST, MAX_MANIFEST_BYTES};
use crate::reference::Reference;

/// Largest config we read (as for a registry pull).
const MAX_CONFIG_BYTES: u64 = 16 << 20;
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Entry {
    fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }

    fn names(&self, name: &Reference) -> bool {
        self.tags()
            .iter()
            .any(|t| t.parse::<Reference>().is_ok_and(|r| &r == name))
    }
}

/// Opens the archive `file` and picks the image `name` (one of its `RepoTags`), or its only
/// image.
pub(super) fn open(file: &Path, name: Option<&Reference>) -> Result<LocalImage, SourceError> {
    let blobs = Blobs::Tar(TarMembers::read(file)?);
    if !blobs.contains("manifest.json") {
        if blobs.contains("index.json") {
            let selector = name.map_or(Selector::Only, |n| Selector::Name(n.clone()));
            return layout::open(blobs, selector);
        }
        return Err(SourceError::malformed(
            file,
            "neither manifest.json nor index.json: not a docker archive",
        ));
    }
    let path = blobs.display("manifest.json");
    let entries: Vec<Entry> =
        serde_json::from_slice(&blobs.read_small("manifest.json", MAX_MANIFEST_BYTES)?)
            .map_err(|e| SourceError::malformed(&path, e))?;
    let labels = || -> Vec<String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.tags()
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("untagged image {i}"))
            })
            .collect()
    };
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| e.names(n))
            .ok_or_else(|| SourceError::NoSuchImage {
                path: path.clone(),
                wanted: n.to_string(),
                available: labels(),
            })?,
        None if entries.len() == 1 => &entries[0],
        None if entries.is_empty() => {
            return Err(SourceError::malformed(&path, "lists no image"));
        }
        None => {
            return Err(SourceError::Ambiguous {
                path,
                available: labels(),
            });
        }
    };
    let record_name = match name {
        Some(n) => n.clone(),
        None => entry
            .tags()
            .iter()
            .find_map(|t| t.parse().ok())
            .unwrap_or_else(|| layout::local_name(file, None, None)),
    };
    from_entry(blobs, entry, record_name)
}

/// The image of one `manifest.json` entry, with its made-up manifest.
fn from_entry(blobs: Blobs, entry: &Entry, name: Reference) -> Result<LocalImage, SourceError> {
    let config_path = blobs.display(&entry.config);
    let config = blobs.read_small(&entry.config, MAX_CONFIG_BYTES)?;
    let config_digest = Digest::sha256_of(&config);
    // Members named after their digest (`<hex>.json`, `blobs/sha256/<hex>`) must match it.
    if let Some(hex) = named_hex(&entry.config)
        && hex != config_digest.hex()
    {
        let expected = format!("sha256:{hex}")
            .parse()
            .map_err(|e| SourceError::malformed(&config_path, e))?;
        return Err(SourceError::DigestMismatch {
            path: config_path,
            expected,
            actual: config_digest,
        });
    }
    let diff_ids = ImageConfig::from_json(&config)
        .and_then(|c| c.diff_ids())
        .map_err(|e| SourceError::malformed(&config_path, e))?;
    if diff_ids.len() != entry.layers.len() {
        return Err(SourceError::malformed(
            blobs.display("manifest.json"),
            format!(
                "lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut named = HashMap::from([(config_digest.clone(), entry.config.clone())]);
    let mut layers = Vec::new();
    for (member, diff_id) in entry.layers.iter().zip(&diff_ids) {
        let (digest, size, media_type) = describe_layer(&blobs, member, diff_id)?;
        named.insert(digest.clone(), member.clone());
        layers.push(serde_json::json!({"mediaType": media_type, "size": size, "digest": digest}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| SourceError::malformed(blobs.display("manifest.json"), e))?;
    let digest = Digest::sha256_of(&bytes);
    Ok(LocalImage {
        name,
        top: Top {
            digest: digest.clone(),
            size: Some(bytes.len() as u64),
            media_type: Some(DOCKER_MANIFEST.into()),
        },
        made: HashMap::from([(digest, bytes)]),
        named,
        blobs,
    })
}

/// A layer member's digest, size and media type.
fn describe_layer(
    blobs: &Blobs,
    member: &str,
    diff_id: &Digest,
) -> Result<(Digest, u64, &'static str), SourceError> {
    let path = blobs.display(member);
    let (mut reader, size) = blobs.open(member)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(SourceError::io("read", path, e)),
        }
    }
    let media_type = match &magic[..got] {
        [0x1f, 0x8b, ..] => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => {
            return Ok((
                diff_id.clone(),
                size,
                "application/vnd.docker.image.rootfs.diff.tar",
            ));
        }
    };
    let mut hasher = Hasher::new(Algorithm::Sha256);
    hasher.update(&magic[..got]);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) => return Err(SourceError::io("read", path, e)),
        }
    }
    Ok((hasher.finish(), size, media_type))
}

/// The hex digest a member's name claims: `<hex>.json`, `blobs/sha256/<hex>`.
fn named_hex(member: &str) -> Option<&str> {
    let last = member.rsplit('/').next()?;
    let hex = last.strip_suffix(".json").unwrap_or(last);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}
