//! Writing images as an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), readable by `skopeo copy oci:DIR:TAG …` and
//! `umoci unpack --image DIR:TAG …`. Writing several tags into one directory merges them
//! into its `index.json`.

use std::io;
use std::path::Path;

use serde_json::{Value, json};

use crate::image::{Image, OCI_INDEX};

/// Annotation naming a tag in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Writes `bytes` as `blobs/sha256/<hex>` of `digest` (idempotent).
fn write_blob(dir: &Path, digest: &str, bytes: &[u8]) -> io::Result<()> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| io::Error::other(format!("not a sha256 digest: {digest}")))?;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    let path = blobs.join(hex);
    if !path.exists() {
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Writes `image` into the OCI layout at `dir` (created if missing) and points `tag` at
/// its manifest, replacing any earlier entry for that tag.
pub fn write_oci_layout(dir: &Path, tag: &str, image: &Image) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for layer in &image.layers {
        write_blob(dir, &layer.digest, &layer.blob)?;
    }
    write_blob(dir, &image.config_digest, &image.config)?;
    write_blob(dir, &image.manifest_digest, &image.manifest)?;

    let index_path = dir.join("index.json");
    let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => {
            let index: Value = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
            index["manifests"].as_array().cloned().unwrap_or_default()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    manifests.retain(|m| m["annotations"][REF_NAME_ANNOTATION] != json!(tag));
    let mut entry = image.index_entry();
    entry["annotations"] = json!({ REF_NAME_ANNOTATION: tag });
    manifests.push(entry);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    std::fs::write(
        index_path,
        serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
    )
}
