//! Writing an image into an OCI image layout directory, as `skopeo copy … oci:DIR:TAG`
//! does: `oci-layout`, `blobs/<alg>/<hex>` (each written to a temp file, verified against
//! its digest and size, then renamed; a blob already there is kept once it hashes right),
//! and an `index.json` entry for the tag (replacing one with the same tag, keeping others),
//! written last and atomically, so a reader never sees a tag whose blobs are missing.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::SourceError;
use super::layout::REF_NAME;
use crate::digest::{Digest, HashingReader};
use crate::manifest::OCI_INDEX;

/// A layout being written.
pub(crate) struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Creates (or opens) the layout at `dir`.
    pub fn create(dir: &Path) -> Result<LayoutWriter, SourceError> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| SourceError::io("create", &blobs, e))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(LayoutWriter {
            dir: dir.to_owned(),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether blob `digest` is already there, whole and right.
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        let path = self.blob_path(digest);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return false;
        };
        if !meta.is_file() || meta.len() != size {
            return false;
        }
        let Ok(file) = File::open(&path) else {
            return false;
        };
        let mut reader = HashingReader::new(file, digest.algorithm());
        std::io::copy(&mut reader, &mut std::io::sink()).is_ok() && &reader.finish().0 == digest
    }

    /// Writes blob `digest` from `reader`, which must give exactly `size` bytes hashing to
    /// `digest`; returns the bytes written. A wrong blob is never renamed into place.
    pub fn put(&self, digest: &Digest, size: u64, reader: impl Read) -> Result<u64, SourceError> {
        let path = self.blob_path(digest);
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&parent).map_err(|e| SourceError::io("create", &parent, e))?;
        let tmp = parent.join(format!(".{}.tmp-{}", digest.hex(), std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp).map_err(|e| SourceError::io("create", &tmp, e))?;
            let mut hashing = HashingReader::new(reader.take(size + 1), digest.algorithm());
            std::io::copy(&mut hashing, &mut file)
                .map_err(|e| SourceError::io("write", &tmp, e))?;
            let (actual, written) = hashing.finish();
            if written != size {
                return Err(SourceError::SizeMismatch {
                    path: path.clone(),
                    size: written,
                    expected: size,
                });
            }
            if &actual != digest {
                return Err(SourceError::DigestMismatch {
                    path: path.clone(),
                    expected: digest.clone(),
                    actual,
                });
            }
            file.sync_all()
                .map_err(|e| SourceError::io("sync", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| SourceError::io("rename", &path, e))?;
            Ok(written)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Points `tag` at the manifest `digest` in `index.json` (the last write).
    pub fn tag(
        &self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        tag: &str,
    ) -> Result<(), SourceError> {
        let path = self.dir.join("index.json");
        let mut manifests: Vec<serde_json::Value> = match std::fs::read(&path) {
            Ok(bytes) => {
                let index: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| SourceError::malformed(&path, e))?;
                index["manifests"].as_array().cloned().unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SourceError::io("read", &path, e)),
        };
        manifests.retain(|m| m["annotations"][REF_NAME] != serde_json::json!(tag));
        manifests.push(serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": { REF_NAME: tag },
        }));
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| SourceError::malformed(&path, e))?;
        write_atomic(&path, &bytes)
    }
}

/// Writes `path` through a temp file beside it and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(|e| SourceError::io("write", &tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| SourceError::io("rename", path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
