//! Pull orchestration: policy, resolving reference → (index →) manifest → config, running the
//! layer pipelines with bounded concurrency, writing the image record, and the answer from the
//! cache alone for a warm `IfMissing` pull.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cache::{GlobalCache, ImageRecord, RECORD_VERSION, RecordLayer, record_key};
use crate::cancel::CancelToken;
use crate::client::RegistryClient;
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{
    ExtractLimits, LayerContext, LayerError, LayerJob, ensure_layer, index_cached_layers,
};
use crate::manifest::{self, Manifest, Parsed, Selection};
use crate::platform::Platform;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;

/// Largest config blob we accept.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// When to contact the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Answer from the cache when the image is complete there (no network at all); pull
    /// otherwise.
    #[default]
    IfMissing,
    /// Always fetch the manifest again; layers already cached are reused by digest.
    Always,
    /// Never touch the network: the image must be in the cache.
    Never,
}

/// Options of one pull.
///
/// ```
/// use microsandbox_image::{PullOptions, PullPolicy};
/// let opts = PullOptions { pull_policy: PullPolicy::Always, ..Default::default() };
/// assert!(opts.build_index);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// When to contact the registry.
    pub pull_policy: PullPolicy,
    /// Download and extract every layer again, even if cached (implies a manifest fetch).
    pub force: bool,
    /// Build the sidecar lookup index of each layer.
    pub build_index: bool,
    /// Pull for this platform instead of the registry's.
    pub platform: Option<Platform>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            pull_policy: PullPolicy::IfMissing,
            force: false,
            build_index: true,
            platform: None,
        }
    }
}

/// What a pull produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullResult {
    /// The normalised reference pulled.
    pub reference: Reference,
    /// The platform pulled for.
    pub platform: Platform,
    /// Extracted layer trees (`…/layers/sha256/<diff_id>/fs`), bottom to top. A layer listed
    /// twice in the manifest appears twice.
    pub layers: Vec<PathBuf>,
    /// The layers' uncompressed digests, parallel to `layers`.
    pub layer_diff_ids: Vec<Digest>,
    /// The image config.
    pub config: ImageConfig,
    /// The config blob's digest (the image ID).
    pub config_digest: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The index's digest when the reference resolved through an index.
    pub index_digest: Option<Digest>,
    /// True when the answer came from the cache without contacting the registry.
    pub cached: bool,
}

/// Shared state of a pull, owned by the `Registry`.
pub(crate) struct Puller {
    pub client: Arc<RegistryClient>,
    pub cache: GlobalCache,
    pub platform: Platform,
    pub concurrency: usize,
    pub limits: ExtractLimits,
    pub durable: bool,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))
}

impl Puller {
    pub(crate) async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: ProgressSink,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let result = self.pull_inner(reference, opts, &progress, cancel).await;
        progress.close();
        result
    }

    async fn pull_inner(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &ProgressSink,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let cancelled = || Error::Cancelled {
            reference: reference.to_string(),
        };
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(|| self.platform.clone());
        let ref_s: Arc<str> = reference.to_string().into();
        progress.emit(PullProgress::Resolving {
            reference: ref_s.clone(),
        });
        let key = record_key(&ref_s, &platform.to_string());
        if opts.force && opts.pull_policy == PullPolicy::Never {
            return Err(Error::InvalidArgument(
                "force re-downloads layers, which pull policy Never forbids".into(),
            ));
        }

        if !opts.force && opts.pull_policy != PullPolicy::Always {
            let (cache, k, r, p) = (
                self.cache.clone(),
                key.clone(),
                reference.clone(),
                platform.clone(),
            );
            if let Some(res) = blocking(move || from_cache(&cache, &k, r, p)).await?? {
                if opts.build_index {
                    for (i, diff_id) in res.layer_diff_ids.iter().enumerate() {
                        index_cached_layers(&self.cache, &[(i, diff_id.clone())], progress)
                            .await
                            .map_err(|source| Error::Layer {
                                reference: ref_s.to_string(),
                                digest: diff_id.clone(),
                                source: Box::new(source),
                            })?;
                    }
                }
                progress.emit(PullProgress::Resolved {
                    reference: ref_s.clone(),
                    manifest_digest: res.manifest_digest.clone(),
                    layer_count: res.layers.len(),
                    total_download_bytes: 0,
                });
                for (layer_index, diff_id) in res.layer_diff_ids.iter().enumerate() {
                    progress.emit(PullProgress::LayerCached {
                        layer_index,
                        diff_id: diff_id.clone(),
                    });
                }
                progress.emit(PullProgress::Complete {
                    reference: ref_s,
                    manifest_digest: res.manifest_digest.clone(),
                    layer_count: res.layers.len(),
                    cached: true,
                });
                return Ok(res);
            }
            if opts.pull_policy == PullPolicy::Never {
                return Err(Error::NotCached {
                    reference: ref_s.to_string(),
                });
            }
        }

        let (manifest, manifest_digest, index_digest) = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            r = self.resolve(reference, &platform) => r?,
        };
        let registry_err = |source| Error::Registry {
            reference: ref_s.to_string(),
            source: Box::new(source),
        };
        let config_bytes = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            r = self.client.get_blob(reference, &manifest.config_digest, "config", MAX_CONFIG_BYTES) => {
                r.map_err(registry_err)?
            }
        };
        let manifest_err = |source| Error::Manifest {
            reference: ref_s.to_string(),
            source,
        };
        let config = ImageConfig::from_json(&config_bytes).map_err(manifest_err)?;
        let diff_ids = config.diff_ids().map_err(manifest_err)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(manifest_err(manifest::ManifestError::LayerCountMismatch {
                layers: manifest.layers.len(),
                diff_ids: diff_ids.len(),
            }));
        }
        {
            let cache = self.cache.clone();
            let d = manifest.config_digest.clone();
            blocking(move || cache.put_manifest(&d, &config_bytes)).await??;
        }

        let jobs: Vec<LayerJob> = manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .enumerate()
            .map(|(index, (descriptor, diff_id))| LayerJob {
                index,
                descriptor: descriptor.clone(),
                diff_id: diff_id.clone(),
            })
            .collect();
        // The same content may be listed twice; fetch each diff_id once.
        let mut seen = HashMap::new();
        let unique: Vec<&LayerJob> = jobs
            .iter()
            .filter(|j| seen.insert(j.diff_id.clone(), j.index).is_none())
            .collect();

        let total_download_bytes = {
            let cache = self.cache.clone();
            let force = opts.force;
            let sizes: Vec<(Digest, u64)> = unique
                .iter()
                .map(|j| (j.diff_id.clone(), j.descriptor.size))
                .collect();
            blocking(move || {
                sizes
                    .iter()
                    .filter(|(d, _)| force || !cache.has_layer(d))
                    .map(|(_, s)| *s)
                    .sum()
            })
            .await?
        };
        progress.emit(PullProgress::Resolved {
            reference: ref_s.clone(),
            manifest_digest: manifest_digest.clone(),
            layer_count: jobs.len(),
            total_download_bytes,
        });

        let ctx = Arc::new(LayerContext {
            client: self.client.clone(),
            cache: self.cache.clone(),
            reference: reference.clone(),
            limits: self.limits,
            progress: progress.clone(),
            force: opts.force,
            durable: self.durable,
            flusher: self
                .durable
                .then(|| crate::layer::Flusher::new(self.cache.layout().tmp())),
            build_index: opts.build_index,
            cancel: CancelToken::new(),
        });
        let permits = Arc::new(Semaphore::new(self.concurrency.max(1)));
        // The caller's cancel reaches the layers through their own token, which a failing
        // layer also trips so its siblings stop early. Every layer future is awaited to its
        // end either way: none leaves a worker behind.
        let forward = {
            let (user, layers) = (cancel.clone(), ctx.cancel.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = user.cancelled() => layers.cancel(),
                    () = layers.cancelled() => {}
                }
            })
        };
        let results = futures_util::future::join_all(unique.iter().map(|job| {
            let (ctx, permits, job) = (ctx.clone(), permits.clone(), (*job).clone());
            let ref_s = ref_s.clone();
            async move {
                let digest = job.descriptor.digest.clone();
                let layer_err = |source| Error::Layer {
                    reference: ref_s.to_string(),
                    digest: digest.clone(),
                    source: Box::new(source),
                };
                let permit = tokio::select! {
                    biased;
                    () = ctx.cancel.cancelled() => return Err(layer_err(LayerError::Cancelled)),
                    p = permits.acquire_owned() => {
                        p.map_err(|_| Error::Internal("semaphore closed".into()))?
                    }
                };
                let result = ensure_layer(ctx.clone(), job, permit).await;
                if result.is_err() {
                    ctx.cancel.cancel();
                }
                result.map_err(layer_err)
            }
        }))
        .await;
        forward.abort();
        if cancel.is_cancelled() {
            return Err(Error::Cancelled {
                reference: ref_s.to_string(),
            });
        }
        let is_sibling_cancel = |e: &Error| matches!(e, Error::Layer { source, .. } if matches!(**source, LayerError::Cancelled));
        let mut first_error: Option<Error> = None;
        for r in results {
            if let Err(e) = r
                && first_error.as_ref().is_none_or(is_sibling_cancel)
            {
                first_error = Some(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        let record = ImageRecord {
            version: RECORD_VERSION,
            reference: ref_s.to_string(),
            platform: platform.to_string(),
            manifest_digest: manifest_digest.clone(),
            index_digest: index_digest.clone(),
            config_digest: manifest.config_digest.clone(),
            layers: jobs
                .iter()
                .map(|j| RecordLayer {
                    digest: j.descriptor.digest.clone(),
                    diff_id: j.diff_id.clone(),
                    size: j.descriptor.size,
                })
                .collect(),
            pulled_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        {
            let cache = self.cache.clone();
            blocking(move || cache.write_record(&key, &record)).await??;
        }
        progress.emit(PullProgress::Complete {
            reference: ref_s,
            manifest_digest: manifest_digest.clone(),
            layer_count: jobs.len(),
            cached: false,
        });
        Ok(PullResult {
            reference: reference.clone(),
            platform,
            layers: diff_ids.iter().map(|d| self.cache.layer_fs(d)).collect(),
            layer_diff_ids: diff_ids,
            config,
            config_digest: manifest.config_digest,
            manifest_digest,
            index_digest,
            cached: false,
        })
    }

    /// Fetch the manifest for the reference; through the index if it names one.
    async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(Manifest, Digest, Option<Digest>)> {
        let ref_s = reference.to_string();
        let registry_err = |source| Error::Registry {
            reference: ref_s.clone(),
            source: Box::new(source),
        };
        let manifest_err = |source| Error::Manifest {
            reference: ref_s.clone(),
            source,
        };
        let top = self
            .client
            .get_manifest(reference, &reference.reference_str(), reference.digest())
            .await
            .map_err(registry_err)?;
        let parsed =
            manifest::parse(&top.bytes, top.content_type.as_deref()).map_err(manifest_err)?;
        let (manifest, manifest_digest, index_digest, extra) = match parsed {
            Parsed::Manifest(m) => (m, top.digest.clone(), None, None),
            Parsed::Index(index) => {
                let digest =
                    match manifest::select_platform(&index, platform).map_err(manifest_err)? {
                        Selection::Found { digest, .. } => digest,
                        Selection::NotFound(available) => {
                            return Err(Error::PlatformNotFound {
                                reference: ref_s.clone(),
                                wanted: platform.clone(),
                                available,
                            });
                        }
                    };
                let m = self
                    .client
                    .get_manifest(reference, &digest.to_string(), Some(&digest))
                    .await
                    .map_err(registry_err)?;
                match manifest::parse(&m.bytes, m.content_type.as_deref()).map_err(manifest_err)? {
                    Parsed::Manifest(man) => {
                        (man, m.digest.clone(), Some(top.digest.clone()), Some(m))
                    }
                    Parsed::Index(_) => {
                        return Err(manifest_err(manifest::ManifestError::NestedIndex(digest)));
                    }
                }
            }
        };
        let cache = self.cache.clone();
        blocking(move || {
            cache.put_manifest(&top.digest, &top.bytes)?;
            if let Some(m) = extra {
                cache.put_manifest(&m.digest, &m.bytes)?;
            }
            Ok::<_, crate::cache::CacheError>(())
        })
        .await??;
        Ok((manifest, manifest_digest, index_digest))
    }
}

/// The result for a completely cached image, or `None` (blocking).
fn from_cache(
    cache: &GlobalCache,
    key: &str,
    reference: Reference,
    platform: Platform,
) -> Result<Option<PullResult>> {
    let Some(rec) = cache.read_record(key) else {
        return Ok(None);
    };
    if !rec.layers.iter().all(|l| cache.has_layer(&l.diff_id)) {
        return Ok(None);
    }
    let Some(config_bytes) = cache.get_manifest(&rec.config_digest) else {
        return Ok(None);
    };
    let Ok(config) = ImageConfig::from_json(&config_bytes) else {
        return Ok(None);
    };
    let diff_ids: Vec<Digest> = rec.layers.iter().map(|l| l.diff_id.clone()).collect();
    Ok(Some(PullResult {
        reference,
        platform,
        layers: diff_ids.iter().map(|d| cache.layer_fs(d)).collect(),
        layer_diff_ids: diff_ids,
        config,
        config_digest: rec.config_digest,
        manifest_digest: rec.manifest_digest,
        index_digest: rec.index_digest,
        cached: true,
    }))
}
