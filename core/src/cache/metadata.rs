//! What the cache knows of a pulled image, in the shape of the original `microsandbox-image`
//! crate ([`CachedImageMetadata`], [`CachedLayerMetadata`]), read from its image record.

use super::GlobalCache;
use super::record::record_key;
use crate::config::ImageConfig;
use crate::platform::Platform;
use crate::reference::Reference;

/// A cached image: its digests, config and layers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CachedImageMetadata {
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the config blob (the image ID).
    pub config_digest: String,
    /// The image configuration.
    pub config: ImageConfig,
    /// Layers, bottom to top.
    pub layers: Vec<CachedLayerMetadata>,
}

/// One layer of a cached image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedLayerMetadata {
    /// Compressed digest from the manifest.
    pub digest: String,
    /// Media type of the blob, when recorded (records do not keep it yet: `None`).
    pub media_type: Option<String>,
    /// Compressed size in bytes.
    pub size_bytes: Option<u64>,
    /// Uncompressed digest (the layer's cache key).
    pub diff_id: String,
}

impl GlobalCache {
    /// The record of `reference` pulled for `platform`, if the cache has one with its config
    /// (blocking; no network). Whether every layer is still present is not checked here: a
    /// pull with `PullPolicy::Never` does that.
    ///
    /// ```no_run
    /// use microsandbox_image::{GlobalCache, Platform};
    /// let cache = GlobalCache::new("/tmp/msb-cache")?;
    /// let alpine = "alpine:3.20".parse()?;
    /// if let Some(meta) = cache.image_metadata(&alpine, &Platform::host_linux()) {
    ///     println!("{} layers", meta.layers.len());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn image_metadata(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Option<CachedImageMetadata> {
        let rec = self
            .read_record(&record_key(&reference.to_string(), &platform.to_string()))?
            .record;
        let config = ImageConfig::from_json(&self.get_manifest(&rec.config_digest)?).ok()?;
        Some(CachedImageMetadata {
            manifest_digest: rec.manifest_digest.to_string(),
            config_digest: rec.config_digest.to_string(),
            config,
            layers: rec
                .layers
                .into_iter()
                .map(|l| CachedLayerMetadata {
                    digest: l.digest.to_string(),
                    media_type: None,
                    size_bytes: Some(l.size),
                    diff_id: l.diff_id.to_string(),
                })
                .collect(),
        })
    }
}
