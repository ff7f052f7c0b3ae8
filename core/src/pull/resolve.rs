//! Resolving an image: reference → manifest (through the index for our platform when the tag
//! names one) → verified config, whose `rootfs.diff_ids` are the truth for layer content. The
//! outcome, [`ResolvedImage`], lists the layer jobs the pipelines run.

use crate::cache::GlobalCache;
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::Result;
use crate::layer::LayerJob;
use crate::manifest::{self, Manifest, ManifestError, Parsed, Selection};
use crate::platform::Platform;
use crate::reference::Reference;

use super::context::PullContext;
use super::{PullResult, Puller, blocking};

/// Largest config blob we accept.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A manifest with its verified config: everything needed to run the layers.
pub(super) struct ResolvedImage {
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    pub index_digest: Option<Digest>,
    pub config: ImageConfig,
    /// One job per manifest layer, bottom to top (a layer listed twice appears twice).
    pub jobs: Vec<LayerJob>,
}

impl ResolvedImage {
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.jobs.iter().map(|j| j.diff_id.clone()).collect()
    }

    pub fn into_result(
        self,
        cache: &GlobalCache,
        reference: Reference,
        platform: Platform,
    ) -> PullResult {
        let diff_ids = self.diff_ids();
        PullResult::new(
            cache,
            reference,
            platform,
            diff_ids,
            self.config,
            self.manifest.config_digest,
            self.manifest_digest,
            self.index_digest,
            false,
        )
    }
}

impl Puller {
    /// Fetches and verifies the manifest and the config, and stores both in the cache.
    pub(super) async fn resolve_image(&self, cx: &PullContext<'_>) -> Result<ResolvedImage> {
        let (manifest, manifest_digest, index_digest) = self.resolve(cx).await?;
        let config_bytes = self
            .client
            .get_blob(
                cx.reference,
                &manifest.config_digest,
                "config",
                MAX_CONFIG_BYTES,
            )
            .await
            .map_err(|e| cx.registry(e))?;
        let config = ImageConfig::from_json(&config_bytes).map_err(|e| cx.manifest(e))?;
        let diff_ids = config.diff_ids().map_err(|e| cx.manifest(e))?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(cx.manifest(ManifestError::LayerCountMismatch {
                layers: manifest.layers.len(),
                diff_ids: diff_ids.len(),
            }));
        }
        let (cache, d) = (self.cache.clone(), manifest.config_digest.clone());
        blocking(move || cache.put_manifest(&d, &config_bytes))
            .await?
            .map_err(|e| cx.cache(e))?;
        let jobs = manifest
            .layers
            .iter()
            .zip(diff_ids)
            .enumerate()
            .map(|(index, (descriptor, diff_id))| LayerJob {
                index,
                descriptor: descriptor.clone(),
                diff_id,
            })
            .collect();
        Ok(ResolvedImage {
            manifest,
            manifest_digest,
            index_digest,
            config,
            jobs,
        })
    }

    /// Fetch the manifest for the reference; through the index if it names one.
    async fn resolve(&self, cx: &PullContext<'_>) -> Result<(Manifest, Digest, Option<Digest>)> {
        let reference = cx.reference;
        let top = self
            .client
            .get_manifest(reference, &reference.reference_str(), reference.digest())
            .await
            .map_err(|e| cx.registry(e))?;
        let parsed =
            manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|e| cx.manifest(e))?;
        let (manifest, digest, index, platform_manifest) = match parsed {
            Parsed::Manifest(m) => (m, top.digest.clone(), None, None),
            Parsed::Index(index) => {
                let digest = match manifest::select_platform(&index, &cx.platform)
                    .map_err(|e| cx.manifest(e))?
                {
                    Selection::Found { digest, .. } => digest,
                    Selection::NotFound(available) => {
                        return Err(cx.platform_not_found(available));
                    }
                };
                let m = self
                    .client
                    .get_manifest(reference, &digest.to_string(), Some(&digest))
                    .await
                    .map_err(|e| cx.registry(e))?;
                let man = match manifest::parse(&m.bytes, m.content_type.as_deref())
                    .map_err(|e| cx.manifest(e))?
                {
                    Parsed::Manifest(man) => man,
                    Parsed::Index(_) => {
                        return Err(cx.manifest(ManifestError::NestedIndex(digest)));
                    }
                };
                (man, m.digest.clone(), Some(top.digest.clone()), Some(m))
            }
        };
        let cache = self.cache.clone();
        blocking(move || {
            cache.put_manifest(&top.digest, &top.bytes)?;
            match platform_manifest {
                Some(m) => cache.put_manifest(&m.digest, &m.bytes),
                None => Ok(()),
            }
        })
        .await?
        .map_err(|e| cx.cache(e))?;
        Ok((manifest, digest, index))
    }
}
