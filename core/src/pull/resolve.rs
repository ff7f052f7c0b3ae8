//! Resolving an image: reference → manifest (through the index for our platform when the tag
//! names one) → verified config, whose `rootfs.diff_ids` are the truth for layer content. The
//! outcome, [`ResolvedImage`], lists the layer jobs the pipelines run.

use crate::cache::GlobalCache;
use crate::client::FetchedManifest;
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
pub(super) const MAX_CONFIG_BYTES: u64 = 16 << 20;

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
            .get_blob(cx, &manifest.config_digest, "config", MAX_CONFIG_BYTES)
            .await?;
        let config = ImageConfig::from_json(&config_bytes).map_err(|e| cx.manifest(e))?;
        if index_digest.is_none() {
            check_single_platform(cx, &config)?;
        }
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

    /// Fetch the manifest for the reference (through the index if it names one) and store
    /// the manifests in the cache.
    async fn resolve(&self, cx: &PullContext<'_>) -> Result<(Manifest, Digest, Option<Digest>)> {
        let fetched = self.fetch_manifests(cx).await?;
        let index_digest = fetched.index.as_ref().map(|_| fetched.top.digest.clone());
        let cache = self.cache.clone();
        let (top, platform_manifest) = (fetched.top, fetched.platform_manifest);
        blocking(move || {
            cache.put_manifest(&top.digest, &top.bytes)?;
            match platform_manifest {
                Some(m) => cache.put_manifest(&m.digest, &m.bytes),
                None => Ok(()),
            }
        })
        .await?
        .map_err(|e| cx.cache(e))?;
        Ok((fetched.manifest, fetched.manifest_digest, index_digest))
    }

    /// The manifest the pull's source names (`None`: the reference's, or the offline image's),
    /// or manifest `digest`, from the registry or the offline image; verified.
    async fn get_manifest(
        &self,
        cx: &PullContext<'_>,
        digest: Option<&Digest>,
    ) -> Result<FetchedManifest> {
        let reference = cx.reference;
        if let Some(local) = cx.local.clone() {
            let digest = digest.cloned();
            return blocking(move || local.manifest(digest.as_ref()))
                .await?
                .map_err(|e| cx.source(e));
        }
        match digest {
            None => {
                self.client
                    .get_manifest(reference, &reference.reference_str(), reference.digest())
                    .await
            }
            Some(d) => {
                self.client
                    .get_manifest(reference, &d.to_string(), Some(d))
                    .await
            }
        }
        .map_err(|e| cx.registry(e))
    }

    /// Blob `digest` whole (a config), from the registry or the offline image; verified.
    pub(super) async fn get_blob(
        &self,
        cx: &PullContext<'_>,
        digest: &Digest,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>> {
        if let Some(local) = cx.local.clone() {
            let digest = digest.clone();
            return blocking(move || local.blob(&digest, limit))
                .await?
                .map_err(|e| cx.source(e));
        }
        self.client
            .get_blob(cx.reference, digest, what, limit)
            .await
            .map_err(|e| cx.registry(e))
    }

    /// Fetch (and verify) the manifest for the reference, through the index for our
    /// platform if it names one; nothing is stored.
    pub(super) async fn fetch_manifests(&self, cx: &PullContext<'_>) -> Result<Fetched> {
        let top = self.get_manifest(cx, None).await?;
        let parsed =
            manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(|e| cx.manifest(e))?;
        let index = match parsed {
            Parsed::Manifest(m) => {
                return Ok(Fetched {
                    manifest: m,
                    manifest_digest: top.digest.clone(),
                    index: None,
                    top,
                    platform_manifest: None,
                });
            }
            Parsed::Index(index) => index,
        };
        let digest =
            match manifest::select_platform(&index, &cx.platform).map_err(|e| cx.manifest(e))? {
                Selection::Found { digest, .. } => digest,
                Selection::NotFound(available) => return Err(cx.platform_not_found(available)),
            };
        let m = self.get_manifest(cx, Some(&digest)).await?;
        let man = match manifest::parse(&m.bytes, m.content_type.as_deref())
            .map_err(|e| cx.manifest(e))?
        {
            Parsed::Manifest(man) => man,
            Parsed::Index(_) => return Err(cx.manifest(ManifestError::NestedIndex(digest))),
        };
        Ok(Fetched {
            manifest: man,
            manifest_digest: m.digest.clone(),
            index: Some(index),
            top,
            platform_manifest: Some(m),
        })
    }
}

/// What [`Puller::fetch_manifests`] got: the platform manifest, and the index it came
/// through (if the reference named one) with the raw responses.
pub(super) struct Fetched {
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    pub index: Option<Box<oci_spec::image::ImageIndex>>,
    /// The response for the reference itself (the index, or the manifest).
    pub top: FetchedManifest,
    /// The platform manifest's response when `top` is an index.
    pub platform_manifest: Option<FetchedManifest>,
}

/// A reference that names a manifest (not an index) has one platform, in its config: it must
/// be one the requested platform runs (the same rules as choosing from an index), or the pull
/// would record and report, say, an amd64 image as arm64. A config that does not say its
/// platform is taken as it is.
pub(super) fn check_single_platform(cx: &PullContext<'_>, config: &ImageConfig) -> Result<()> {
    let (os, arch) = (config.os.as_str(), config.architecture.as_str());
    if os.is_empty() || arch.is_empty() || os == "unknown" || arch == "unknown" {
        return Ok(());
    }
    let variant = config.variant.as_deref().filter(|v| !v.is_empty());
    if cx.platform.score(os, arch, variant).is_some() {
        return Ok(());
    }
    let is = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    Err(cx.platform_not_found(vec![is]))
}
