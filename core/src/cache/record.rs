//! Image records: what a completed pull of one reference for one platform produced. A record
//! is written atomically after every layer it names is published, so a record whose layers
//! all exist is a complete image.

use crate::digest::Digest;

/// Format version of image records; records of another version are ignored (re-pulled).
pub(crate) const RECORD_VERSION: u32 = 1;

/// One layer of a recorded image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RecordLayer {
    /// Compressed digest from the manifest.
    pub digest: Digest,
    /// Uncompressed digest: the cache key.
    pub diff_id: Digest,
    /// Compressed size.
    pub size: u64,
}

/// The record of a pulled image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ImageRecord {
    pub version: u32,
    /// Normalised reference as pulled.
    pub reference: String,
    /// Target platform of the pull.
    pub platform: String,
    /// The platform manifest.
    pub manifest_digest: Digest,
    /// The index the manifest was chosen from, if any.
    pub index_digest: Option<Digest>,
    /// The config blob (its bytes are under `manifests/`).
    pub config_digest: Digest,
    /// Layers bottom to top.
    pub layers: Vec<RecordLayer>,
    /// Seconds since the epoch when the record was written.
    pub pulled_at: u64,
}

/// The record file name for a reference pulled for a platform: the SHA-256 of both, so the
/// same tag pulled for two platforms keeps two records.
pub(crate) fn record_key(reference: &str, platform: &str) -> String {
    Digest::sha256_of(format!("{reference}\n{platform}").as_bytes())
        .hex()
        .to_owned()
}
