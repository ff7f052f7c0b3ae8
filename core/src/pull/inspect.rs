//! Looking before pulling: what a reference resolves to on its registry (digest, the
//! platforms of an index, the chosen platform's manifest, config and layer sizes), fetched
//! and verified like a pull's first steps, without downloading a layer or writing to the
//! cache.

use crate::cache::cache_report;
use crate::cancel::CancelToken;
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest;
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::reference::Reference;

use super::Puller;
use super::context::PullContext;
use super::resolve::{MAX_CONFIG_BYTES, check_single_platform};

cache_report! {
/// An image as its registry describes it ([`Registry::inspect`](crate::Registry::inspect)).
pub struct RemoteImage {
    /// The normalised reference asked for.
    pub reference: String,
    /// What the reference resolves to (the index's digest when it names one).
    pub digest: Digest,
    /// The index's digest, when the reference names one.
    pub index_digest: Option<Digest>,
    /// The platforms the index offers (`os/arch[/variant]`); for a single manifest, the
    /// one its config names.
    pub platforms: Vec<String>,
    /// The platform chosen (as a pull would choose it).
    pub platform: String,
    /// The chosen platform manifest's digest.
    pub manifest_digest: Digest,
    /// The config blob's digest (the image ID).
    pub config_digest: Digest,
    /// The verified config.
    pub config: ImageConfig,
    /// The layers, bottom to top.
    pub layers: Vec<RemoteLayer>,
    /// Compressed bytes a cold pull downloads (the layers' sizes summed).
    pub download_size: u64,
}
}

cache_report! {
/// One layer of a [`RemoteImage`].
pub struct RemoteLayer {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes (compressed).
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its uncompressed digest, from the config.
    pub diff_id: Digest,
}
}

impl Puller {
    pub(crate) async fn inspect(
        &self,
        reference: &Reference,
        platform: Option<Platform>,
    ) -> Result<RemoteImage> {
        let asked = platform.is_some();
        let platform = platform.unwrap_or_else(|| self.platform.clone());
        let (progress, cancel) = (ProgressSink::none(), CancelToken::new());
        let cx = PullContext::new(reference, platform, &progress, &cancel);
        let fetched = self.fetch_manifests(&cx).await?;
        let config_digest = fetched.manifest.config_digest.clone();
        let bytes = self
            .get_blob(&cx, &config_digest, "config", MAX_CONFIG_BYTES)
            .await?;
        let config = ImageConfig::from_json(&bytes).map_err(|e| cx.manifest(e))?;
        // A platform asked for must be one the image runs, as for a pull; without one, a
        // single-platform image is described whatever it is built for.
        if asked && fetched.index.is_none() {
            check_single_platform(&cx, &config)?;
        }
        let diff_ids = config.diff_ids().map_err(|e| cx.manifest(e))?;
        if diff_ids.len() != fetched.manifest.layers.len() {
            return Err(cx.manifest(manifest::ManifestError::LayerCountMismatch {
                layers: fetched.manifest.layers.len(),
                diff_ids: diff_ids.len(),
            }));
        }
        let (platforms, platform) = match &fetched.index {
            Some(index) => (manifest::index_platforms(index), cx.platform.to_string()),
            None => {
                let own = manifest::platform_string(
                    &config.os,
                    &config.architecture,
                    config.variant.as_deref(),
                );
                (vec![own.clone()], own)
            }
        };
        let layers: Vec<RemoteLayer> = fetched
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| RemoteLayer {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
                diff_id,
            })
            .collect();
        Ok(RemoteImage {
            reference: cx.image.to_string(),
            digest: fetched.top.digest.clone(),
            index_digest: fetched.index.as_ref().map(|_| fetched.top.digest.clone()),
            platforms,
            platform,
            manifest_digest: fetched.manifest_digest,
            config_digest,
            config,
            download_size: layers.iter().map(|l| l.size).sum(),
            layers,
        })
    }
}
