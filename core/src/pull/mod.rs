//! Pull orchestration, as named steps: answer from the cache (a warm `IfMissing` pull),
//! resolve reference → (index →) manifest → config, run the layer pipelines with bounded
//! concurrency, write the image record. [`PullResult`] is what a pull gives back.

mod cached;
mod context;
mod flat;
mod inspect;
mod layers;
mod read_only;
mod repair;
mod resolve;
mod save;

pub use inspect::{RemoteImage, RemoteLayer};
pub use repair::{RepairFailure, RepairReport};

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{GcPolicy, GlobalCache, ImageRecord, LayerLease, RECORD_VERSION, RecordLayer};
use crate::cancel::CancelToken;
use crate::client::RegistryClient;
use crate::client::retry::{self, RetryObserver};
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::erofs::OpaqueXattr;
use crate::error::{Error, ErrorKind, Result};
use crate::index::{IndexError, LayerIndex, LayerStack};
use crate::layer::{ExtractLimits, Rebuild};
use crate::offline::local::LocalImage;
use crate::platform::Platform;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;
use context::PullContext;
use resolve::ResolvedImage;

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

/// What a pull makes of each layer, besides its cache bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// The extracted tree, `layers/sha256/<diff_id>/fs` (with its index unless `buildIndex`
    /// is off). The default. A layer cached without its tree (pulled with the image alone)
    /// is pulled again to write it.
    Directory,
    /// An EROFS image of the layer, `layers/sha256/<diff_id>/layer.erofs`, written in the
    /// same pass (`core/src/erofs/FORMAT.md`), for runtimes that stack layers with overlayfs
    /// inside a micro-VM. A layer cached without one is pulled again to write it.
    ErofsLayers,
    /// One EROFS image of the whole image, its layers merged (whiteouts applied, no overlay
    /// markers), `flat/sha256/<manifest hex>.erofs`, for runtimes that hand the guest one
    /// block device. Written from the cached layers once they are complete (needs the
    /// directory and the index); shared by every reference that resolves to the manifest.
    ErofsFlat,
}

/// Options of one pull.
///
/// ```
/// use microsandbox_image::{PullOptions, PullPolicy};
/// let opts = PullOptions { pull_policy: PullPolicy::Always, ..Default::default() };
/// assert!(opts.build_index);
/// ```
///
/// As data (Python keyword arguments, Node options): `{"pullPolicy": "if-missing" | "always"
/// | "never", "force": false, "buildIndex": true, "platform": "linux/arm64", "outputs":
/// ["directory", "erofs-layers"], "erofsOpaqueXattr": "trusted" | "user"}`, every key
/// optional.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PullOptions {
    /// When to contact the registry (as data also `"policy"`, the name the CLI uses).
    #[serde(alias = "policy")]
    pub pull_policy: PullPolicy,
    /// Download and extract every layer again, even if cached (implies a manifest fetch).
    pub force: bool,
    /// Build the sidecar lookup index of each layer.
    pub build_index: bool,
    /// Pull for this platform instead of the registry's.
    pub platform: Option<Platform>,
    /// What each layer becomes (default `["directory"]`): its tree, its EROFS image, or
    /// both (written in one pass). With `["erofs-layers"]` alone no tree is written (the
    /// layer is its image; what needs a tree, such as [`PullResult::unpack`], refuses it).
    /// `"erofs-flat"` adds one image of the merged tree ([`PullResult::flat_image`]).
    pub outputs: Vec<Output>,
    /// The xattr that marks opaque directories in EROFS layer images: `"trusted"`
    /// (`trusted.overlay.opaque`, the default: overlayfs mounted by root, as a micro-VM guest
    /// mounts it) or `"user"` (`user.overlay.opaque`, for overlayfs' `userxattr` mounts).
    pub erofs_opaque_xattr: OpaqueXattr,
}

impl PullOptions {
    /// Other names its serde form accepts (alias → key), listed in the API surface so that
    /// bindings accept them too: `policy` is the CLI's name for `pullPolicy`.
    pub const ALIASES: &'static [(&'static str, &'static str)] = &[("policy", "pullPolicy")];
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            pull_policy: PullPolicy::IfMissing,
            force: false,
            build_index: true,
            platform: None,
            outputs: vec![Output::Directory],
            erofs_opaque_xattr: OpaqueXattr::default(),
        }
    }
}

impl PullOptions {
    /// Applies the keys of a JSON object (the serde form above) onto these options, leaving
    /// the others as they are (what the C ABI's `msb_pull_options_set_json` does).
    ///
    /// ```
    /// use microsandbox_image::{Output, PullOptions};
    /// let mut opts = PullOptions::default();
    /// opts.merge_json(r#"{"outputs": ["directory", "erofs-layers"]}"#)?;
    /// assert_eq!(opts.outputs, [Output::Directory, Output::ErofsLayers]);
    /// assert!(opts.build_index);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn merge_json(&mut self, json: &str) -> std::result::Result<(), serde_json::Error> {
        crate::settings::merge_json(self, json, "pull options")
    }

    /// The opaque marker of the EROFS layer images this pull writes, if it writes them.
    pub(crate) fn erofs_layers(&self) -> Option<OpaqueXattr> {
        self.outputs
            .contains(&Output::ErofsLayers)
            .then_some(self.erofs_opaque_xattr)
    }

    /// Whether this pull writes (and needs) each layer's tree.
    pub(crate) fn wants_tree(&self) -> bool {
        self.outputs.contains(&Output::Directory)
    }

    /// Refuse outputs this build cannot write: at least one is needed.
    fn check_outputs(&self) -> Result<()> {
        let per_layer = |o: &&Output| matches!(o, Output::Directory | Output::ErofsLayers);
        if !self.outputs.iter().any(|o| per_layer(&o)) {
            return Err(Error::InvalidArgument(format!(
                "outputs {:?}: name what each layer becomes, \"directory\", \"erofs-layers\" \
                 or both (\"erofs-flat\" is written from them)",
                self.outputs
            )));
        }
        if self.outputs.contains(&Output::ErofsFlat) && !self.build_index {
            return Err(Error::InvalidArgument(
                "outputs erofs-flat: the flat image is written from the layers' indexes, \
                 which buildIndex false leaves out"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// What a pull produced. Its serde form (field names as here, digests and the platform as
/// strings) is what the Python binding builds its `PullResult` from.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct PullResult {
    /// The normalised reference pulled.
    pub reference: Reference,
    /// The platform pulled for.
    pub platform: Platform,
    /// Extracted layer trees (`…/layers/sha256/<diff_id>/fs`), bottom to top. A layer listed
    /// twice in the manifest appears twice. A layer published as its EROFS image alone (a
    /// pull with `outputs: ["erofs-layers"]`) has no tree: its path here does not exist, and
    /// what needs the tree ([`PullResult::unpack`]) refuses it; see `layer_images`.
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
    /// Each layer's sidecar index (`…/layers/sha256/<diff_id>/index`), parallel to
    /// `layers`. A file is absent only when the layer was pulled with `build_index: false`.
    pub layer_indexes: Vec<PathBuf>,
    /// Each layer's EROFS image (`…/layers/sha256/<diff_id>/layer.erofs`), parallel to
    /// `layers`. The file is there when this pull or an earlier one of the layer had
    /// `"erofs-layers"` among its `outputs`.
    pub layer_images: Vec<PathBuf>,
    /// The flat EROFS image of the whole image (`…/flat/sha256/<manifest hex>.erofs`), when
    /// this pull had `"erofs-flat"` among its `outputs`.
    pub flat_image: Option<PathBuf>,
    /// Whether each layer has its tree (`layers[i]` exists), parallel to `layers`.
    #[serde(skip)]
    trees: Vec<bool>,
    /// The leases on the layers (`cache::LayerLease`): while this result or a stack made from
    /// it lives, no `gc`, `rm` or forced re-pull deletes its layer trees, in any process.
    #[serde(skip)]
    leases: Vec<Arc<LayerLease>>,
}

impl PullResult {
    /// The merged view of the image: every layer's index opened, bottom to top.
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let result = registry.pull(&"alpine:3.20".parse()?, &Default::default()).await?;
    /// let stack = result.layer_stack()?;
    /// if let Some(hosts) = stack.get(b"etc/hosts")? {
    ///     println!("{} bytes", hosts.size());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn layer_stack(&self) -> Result<LayerStack, IndexError> {
        let layers = self
            .layer_indexes
            .iter()
            .map(LayerIndex::open)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LayerStack::new(layers).holding(self.leases.clone()))
    }

    /// The layers' trees as a layer stack needs them for host paths: each layer's tree, or
    /// none for a layer published as its EROFS image alone. Known from the pull: no I/O.
    pub fn layer_trees(&self) -> crate::cache::LayerTrees {
        let trees = self.layers.iter().zip(&self.trees);
        crate::cache::LayerTrees::known(trees.map(|(path, has)| has.then(|| path.clone())))
    }

    /// The first layer without its tree (published as its EROFS image alone), if any.
    pub(crate) fn first_without_tree(&self) -> Option<&Digest> {
        self.trees
            .iter()
            .position(|has| !has)
            .and_then(|i| self.layer_diff_ids.get(i))
    }

    /// The leases this result holds on its layers (one per distinct layer).
    pub fn leases(&self) -> &[Arc<LayerLease>] {
        &self.leases
    }

    /// The same result, holding `leases` too.
    pub(crate) fn holding(mut self, leases: Vec<Arc<LayerLease>>) -> Self {
        self.leases.extend(leases);
        self
    }

    /// The JSON document that `msbimage pull --json` and `msbimage inspect` print (and
    /// `python -m msbimage pull --json`): reference, digests, platform, layer paths, config
    /// and whether the answer came from the cache, on one line.
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let result = registry.pull(&"alpine:3.20".parse()?, &Default::default()).await?;
    /// let doc: serde_json::Value = serde_json::from_str(&result.to_json())?;
    /// assert_eq!(doc["cached"], result.cached);
    /// # Ok(()) }
    /// ```
    pub fn to_json(&self) -> String {
        /// The document's shape (keys in this order).
        #[derive(serde::Serialize)]
        struct ResultJson<'a> {
            reference: String,
            manifest_digest: &'a Digest,
            index_digest: Option<&'a Digest>,
            config_digest: &'a Digest,
            platform: &'a Platform,
            layers: Vec<String>,
            config: &'a ImageConfig,
            cached: bool,
        }
        let doc = ResultJson {
            reference: self.reference.to_string(),
            manifest_digest: &self.manifest_digest,
            index_digest: self.index_digest.as_ref(),
            config_digest: &self.config_digest,
            platform: &self.platform,
            layers: self
                .layers
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            config: &self.config,
            cached: self.cached,
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Builds the result for `diff_ids` (bottom to top) in `cache`: the one place that turns
    /// layer digests into paths.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cache: &GlobalCache,
        reference: Reference,
        platform: Platform,
        diff_ids: Vec<Digest>,
        config: ImageConfig,
        config_digest: Digest,
        manifest_digest: Digest,
        index_digest: Option<Digest>,
        cached: bool,
    ) -> PullResult {
        PullResult {
            reference,
            platform,
            layers: diff_ids.iter().map(|d| cache.layer_fs(d)).collect(),
            layer_indexes: diff_ids.iter().map(|d| cache.layer_index(d)).collect(),
            layer_images: diff_ids.iter().map(|d| cache.layer_erofs(d)).collect(),
            flat_image: None,
            trees: diff_ids.iter().map(|d| cache.has_layer_tree(d)).collect(),
            layer_diff_ids: diff_ids,
            config,
            config_digest,
            manifest_digest,
            index_digest,
            cached,
            leases: Vec::new(),
        }
    }
}

/// Shared state of a pull, owned by the `Registry`.
pub(crate) struct Puller {
    pub client: Arc<RegistryClient>,
    pub cache: GlobalCache,
    pub platform: Platform,
    pub concurrency: usize,
    pub limits: ExtractLimits,
    pub durable: bool,
    pub lock_timeout: Option<std::time::Duration>,
    /// The longest a whole pull may take (`deadline`).
    pub deadline: Option<std::time::Duration>,
    pub partial_min_size: Option<u64>,
    /// What to collect after a pull that downloaded a layer (`cacheMaxSize`), if anything.
    pub collect_after: Option<GcPolicy>,
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
        let observer = RetryObserver::new(progress.clone());
        let steps = self.pull_within_deadline(reference, opts, &progress, cancel, &observer);
        let result = retry::observe(observer.clone(), steps).await;
        progress.close();
        result
    }

    /// [`Self::pull_inner`], stopped as if cancelled when the `deadline` passes, and then
    /// failing with [`Error::DeadlineExceeded`] (naming the retry it was waiting for, if any).
    async fn pull_within_deadline(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &ProgressSink,
        cancel: &CancelToken,
        observer: &RetryObserver,
    ) -> Result<PullResult> {
        let Some(deadline) = self.deadline else {
            return self.pull_inner(reference, opts, progress, cancel).await;
        };
        // The pull's own token: tripped by the caller's, or by the deadline.
        let stop = CancelToken::new();
        let mut expired = false;
        let watch = async {
            tokio::select! {
                () = cancel.cancelled() => false,
                () = tokio::time::sleep(deadline) => true,
            }
        };
        let pull = self.pull_inner(reference, opts, progress, &stop);
        tokio::pin!(watch, pull);
        let result = loop {
            tokio::select! {
                r = &mut pull => break r,
                timed_out = &mut watch, if !stop.is_cancelled() => {
                    expired = timed_out;
                    stop.cancel();
                }
            }
        };
        match result {
            Err(e) if expired && e.kind() == ErrorKind::Cancelled => Err(Error::DeadlineExceeded {
                reference: reference.to_string(),
                seconds: deadline.as_secs_f64(),
                last_retry: observer.last_retry(),
            }),
            r => r,
        }
    }

    /// The steps of a pull, in order.
    async fn pull_inner(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &ProgressSink,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let platform = self.platform_for(opts);
        let cx = PullContext::new(reference, platform, progress, cancel);
        progress.emit(PullProgress::Resolving {
            reference: cx.image.clone(),
        });
        opts.check_outputs()?;
        if opts.force && opts.pull_policy == PullPolicy::Never {
            return Err(Error::InvalidArgument(
                "force re-downloads layers, which pull policy Never forbids".into(),
            ));
        }
        if !opts.force && opts.pull_policy != PullPolicy::Always {
            if let Some(result) = self.answer_from_cache(&cx, opts).await? {
                return self.flat_if_asked(&cx, result, opts).await;
            }
            if opts.pull_policy == PullPolicy::Never {
                return Err(cx.not_cached());
            }
        }
        let result = self.pull_from_source(&cx, opts).await?;
        self.flat_if_asked(&cx, result, opts).await
    }

    /// The platform a pull with `opts` is for.
    fn platform_for(&self, opts: &PullOptions) -> Platform {
        opts.platform
            .clone()
            .unwrap_or_else(|| self.platform.clone())
    }

    /// Pull the offline image `local` (an OCI layout, a docker archive) into the cache
    /// under its name. The pull policy does not apply: the source is read every time
    /// (nothing of it is on the network) and layers already cached are reused; `force`
    /// rebuilds them.
    pub(crate) async fn pull_local(
        &self,
        local: Arc<LocalImage>,
        opts: &PullOptions,
        progress: ProgressSink,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let platform = self.platform_for(opts);
        let reference = local.name.clone();
        let cx = PullContext::new(&reference, platform, &progress, cancel).reading(local);
        opts.check_outputs()?;
        progress.emit(PullProgress::Resolving {
            reference: cx.image.clone(),
        });
        let result = match self.pull_from_source(&cx, opts).await {
            Ok(result) => self.flat_if_asked(&cx, result, opts).await,
            Err(e) => Err(e),
        };
        progress.close();
        result
    }

    /// The steps of a pull that reads its source: resolve, hold, run the layers, record.
    async fn pull_from_source(
        &self,
        cx: &PullContext<'_>,
        opts: &PullOptions,
    ) -> Result<PullResult> {
        let progress = cx.progress;
        if self.cache.is_read_only() {
            return self.pull_read_only(cx, opts).await;
        }
        let image = cx.until_cancelled(self.resolve_image(cx)).await?;
        if let Some(local) = cx.local.clone() {
            let layers = image.manifest.layers.clone();
            blocking(move || local.check_layers(&layers))
                .await?
                .map_err(|e| cx.source(e))?;
        }
        let leases = self.prepare_cache(cx, &image).await?;
        let downloaded = self
            .run_layers(cx, &image, opts, Rebuild::forced(opts.force))
            .await?;
        self.write_record(cx, &image).await?;
        if downloaded {
            // Still holding `leases`: the collection cannot take this image's layers.
            self.collect_after_pull(cx).await;
        }
        progress.emit(PullProgress::Complete {
            reference: cx.image.clone(),
            manifest_digest: image.manifest_digest.clone(),
            layer_count: image.jobs.len(),
            cached: false,
        });
        Ok(image
            .into_result(&self.cache, cx.reference.clone(), cx.platform.clone())
            .holding(leases))
    }

    /// Before a network pull touches layers: sweep `tmp/` of what dead pulls left, then hold
    /// every layer of the image (kept past the record's write, so no `gc` can collect a layer
    /// between its publication and the record that names it; `cache/gc.rs`).
    async fn prepare_cache(
        &self,
        cx: &PullContext<'_>,
        image: &ResolvedImage,
    ) -> Result<Vec<Arc<LayerLease>>> {
        let cache = self.cache.clone();
        let diff_ids: Vec<Digest> = image.jobs.iter().map(|j| j.diff_id.clone()).collect();
        blocking(move || {
            // Best effort: a sweep that cannot list `tmp/` leaves debris, not a failed pull.
            let _ = cache.sweep_debris(false);
            cache.hold_layers(&diff_ids)
        })
        .await?
        .map_err(|e| cx.cache(e))
    }

    /// With a cap on the cache (`cacheMaxSize`), after a pull that downloaded a layer: evict
    /// the least recently used images until the layers fit, as `gc --max-size` does. Never
    /// this image: its record is spared by key and its layers are held by this pull's leases.
    /// Best effort: the pull has succeeded, so a failure is logged, not returned.
    async fn collect_after_pull(&self, cx: &PullContext<'_>) {
        let Some(policy) = self.collect_after.clone() else {
            return;
        };
        let (cache, key) = (self.cache.clone(), cx.record_key());
        let cap = policy.max_size.unwrap_or_default();
        match blocking(move || cache.gc_keeping(&policy, &key)).await {
            Ok(Ok(report)) => log::info!(
                "{}: cache over {cap} bytes: evicted {} images, removed {} layers ({} bytes); \
                 {} unreferenced layers in use kept",
                cx.image,
                report.removed_images.len(),
                report.removed_layers.len(),
                report.freed_bytes,
                report.in_use_layers.len(),
            ),
            Ok(Err(e)) => log::warn!(
                "{}: pulled, but collecting the cache down to cacheMaxSize ({cap} bytes) failed: {e}",
                cx.image
            ),
            Err(e) => log::warn!(
                "{}: pulled, but collecting the cache down to cacheMaxSize failed: {e}",
                cx.image
            ),
        }
    }

    /// Records the pulled image in the cache, so the next `IfMissing` pull answers offline.
    async fn write_record(&self, cx: &PullContext<'_>, image: &ResolvedImage) -> Result<()> {
        let record = ImageRecord {
            version: RECORD_VERSION,
            reference: cx.image.to_string(),
            platform: cx.platform.to_string(),
            manifest_digest: image.manifest_digest.clone(),
            index_digest: image.index_digest.clone(),
            config_digest: image.manifest.config_digest.clone(),
            layers: image
                .jobs
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
        let (cache, key) = (self.cache.clone(), cx.record_key());
        blocking(move || cache.write_record(&key, &record))
            .await?
            .map_err(|e| cx.cache(e))
    }
}
