//! [`Registry`], the front door: built from a platform and a cache (plus options through
//! [`RegistryBuilder`]), it pulls images. Cheap to clone; clones share connections, tokens
//! and in-flight work.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::auth::{AuthStore, RegistryAuth};
use crate::cache::{GcPolicy, GlobalCache, VerifyReport};
use crate::cancel::CancelToken;
use crate::client::proxy::ProxyRules;
use crate::client::{ClientOptions, RegistryClient};
use crate::error::{Error, Result};
use crate::layer::ExtractLimits;
use crate::offline::local::LocalImage;
use crate::offline::{ImageSource, SaveReport};
use crate::platform::Platform;
use crate::progress::{ProgressCallback, ProgressSink, PullProgressHandle};
use crate::pull::{PullOptions, PullResult, Puller, RemoteImage, RepairReport};
use crate::reference::Reference;
use crate::settings::ProxyConfig;
use crate::settings::{DockerConfigSource, RegistryConfig};

/// Pulls images into a [`GlobalCache`].
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use microsandbox_image::{GlobalCache, Platform, PullOptions, Registry};
/// let cache = GlobalCache::new("/tmp/msb-cache")?;
/// let registry = Registry::builder(Platform::host_linux(), cache)
///     .insecure_registry("registry.internal:5000")
///     .concurrency(8)
///     .build()?;
/// let result = registry.pull(&"alpine:3.20".parse()?, &PullOptions::default()).await?;
/// println!("{} layers", result.layers.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    puller: Arc<Puller>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("platform", &self.puller.platform)
            .field("cache", &self.puller.cache)
            .finish()
    }
}

impl Registry {
    /// A registry client with anonymous access.
    pub fn new(platform: Platform, cache: GlobalCache) -> Result<Registry> {
        Registry::builder(platform, cache).build()
    }

    /// A registry client that sends `auth` to every registry it pulls from.
    pub fn with_auth(
        platform: Platform,
        cache: GlobalCache,
        auth: RegistryAuth,
    ) -> Result<Registry> {
        Registry::builder(platform, cache).auth(auth).build()
    }

    /// Start configuring a registry client.
    pub fn builder(platform: Platform, cache: GlobalCache) -> RegistryBuilder {
        RegistryBuilder {
            platform,
            cache,
            config: RegistryConfig::default(),
        }
    }

    /// The default target platform.
    pub fn platform(&self) -> &Platform {
        &self.puller.platform
    }

    /// The cache this registry pulls into.
    pub fn cache(&self) -> &GlobalCache {
        &self.puller.cache
    }

    /// Pull an image; see [`PullOptions`] for what the options mean.
    pub async fn pull(&self, reference: &Reference, options: &PullOptions) -> Result<PullResult> {
        self.puller
            .pull(
                reference,
                options,
                ProgressSink::none(),
                &CancelToken::new(),
            )
            .await
    }

    /// What `reference` resolves to on its registry, for `platform` (default: the
    /// registry's): digests, the platforms of an index, the config and the layers with their
    /// sizes, verified like a pull's first steps; no layer is downloaded and nothing is
    /// written to the cache.
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let image = registry.inspect(&"alpine:3.20".parse()?, None).await?;
    /// println!("{} for {:?}: {} bytes to download", image.digest, image.platforms, image.download_size);
    /// # Ok(()) }
    /// ```
    pub async fn inspect(
        &self,
        reference: &Reference,
        platform: Option<Platform>,
    ) -> Result<RemoteImage> {
        self.puller.inspect(reference, platform).await
    }

    /// Repair what [`GlobalCache::verify`] found: remove invalid image records, and for each
    /// damaged image fetch its manifests again (pinned to its digest) and rebuild only its
    /// damaged layers; a reader holding an old layer tree keeps it until it lets go. Images
    /// that cannot be repaired (the registry is unreachable, the manifest is gone) are listed
    /// in the report, not returned as an error. Verify again to confirm.
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = registry.cache().clone();
    /// let report = tokio::task::spawn_blocking(move || cache.verify(&[])).await??;
    /// if !report.is_clean() {
    ///     let repaired = registry.repair(&report).await?;
    ///     println!("rebuilt {} layers", repaired.rebuilt_layers.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn repair(&self, report: &VerifyReport) -> Result<RepairReport> {
        self.puller.repair(report).await
    }

    /// Pull with an optional progress callback (called on library threads; must return
    /// quickly) and a [`CancelToken`]. When the token is cancelled the pull stops, waits for
    /// its workers to clean up, and returns [`Error::Cancelled`]: nothing of it is left in the
    /// cache's `tmp/` once this returns. This is what the C, Python and Node bindings use.
    pub async fn pull_with(
        &self,
        reference: &Reference,
        options: &PullOptions,
        callback: Option<ProgressCallback>,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let sink = callback.map(ProgressSink::callback).unwrap_or_default();
        self.puller.pull(reference, options, sink, cancel).await
    }

    /// Pull an image from `source`: a registry (as [`pull`](Self::pull)), an OCI image
    /// layout directory or a `docker save` archive ([`ImageSource`], parsed from
    /// `oci-layout:DIR[:TAG|@DIGEST]`, `docker-archive:FILE[:NAME:TAG]` or a reference).
    /// An offline image goes through the same verification and layer pipeline into the same
    /// cache, and is recorded under its name (its `RepoTags` entry, its layout's annotated
    /// name, else `localhost/<dir or file name>:<tag>`), so a later `pull` of that name with
    /// policy `IfMissing` or `Never` answers from the cache.
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let source = "oci-layout:/media/usb/images:alpine-3.20".parse()?;
    /// let result = registry.pull_source(&source, &Default::default()).await?;
    /// println!("{} as {}", result.manifest_digest, result.reference);
    /// # Ok(()) }
    /// ```
    pub async fn pull_source(
        &self,
        source: &ImageSource,
        options: &PullOptions,
    ) -> Result<PullResult> {
        self.pull_source_with(source, options, None, &CancelToken::new())
            .await
    }

    /// [`pull_source`](Self::pull_source) with a progress callback and a [`CancelToken`], as
    /// [`pull_with`](Self::pull_with).
    pub async fn pull_source_with(
        &self,
        source: &ImageSource,
        options: &PullOptions,
        callback: Option<ProgressCallback>,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        let sink = callback.map(ProgressSink::callback).unwrap_or_default();
        self.pull_source_into(source, options, sink, cancel).await
    }

    /// [`pull_source`](Self::pull_source) started on the current tokio runtime, with its
    /// progress stream, as [`pull_with_progress`](Self::pull_with_progress).
    pub fn pull_source_with_progress(
        &self,
        source: &ImageSource,
        options: &PullOptions,
    ) -> (PullProgressHandle, JoinHandle<Result<PullResult>>) {
        let cancel = CancelToken::new();
        let (sink, handle) = ProgressSink::channel(cancel.clone());
        let registry = self.clone();
        let (source, options) = (source.clone(), options.clone());
        let task = tokio::spawn(async move {
            registry
                .pull_source_into(&source, &options, sink, &cancel)
                .await
        });
        (handle, task)
    }

    async fn pull_source_into(
        &self,
        source: &ImageSource,
        options: &PullOptions,
        sink: ProgressSink,
        cancel: &CancelToken,
    ) -> Result<PullResult> {
        if let ImageSource::Registry(reference) = source {
            return self.puller.pull(reference, options, sink, cancel).await;
        }
        match open_local(source).await {
            Ok(local) => {
                self.puller
                    .pull_local(Arc::new(local), options, sink, cancel)
                    .await
            }
            Err(e) => {
                sink.close();
                Err(e)
            }
        }
    }

    /// Write an image as an OCI image layout (`oci-layout:DIR[:TAG]`, the tag defaulting to
    /// the image's) or a docker archive (`docker-archive:FILE[:NAME:TAG]`, `RepoTags` the
    /// name or the image's), for `platform` (default: the registry's), to carry it where no
    /// registry is. The image is read from `source`: its registry, or an offline image (so
    /// one format converts to the other). The cache keeps extracted layers, not blobs, so a
    /// registry image is fetched again (streamed and verified); an image only in the cache is
    /// [`SourceError::BlobsNotCached`](crate::SourceError::BlobsNotCached).
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let saved = registry
    ///     .save(&"alpine:3.20".parse()?, &"docker-archive:/media/usb/alpine.tar".parse()?, None)
    ///     .await?;
    /// println!("{} bytes", saved.bytes_written);
    /// # Ok(()) }
    /// ```
    pub async fn save(
        &self,
        source: &ImageSource,
        target: &ImageSource,
        platform: Option<Platform>,
    ) -> Result<SaveReport> {
        let (reference, local) = match source {
            ImageSource::Registry(r) => (r.clone(), None),
            other => {
                let local = open_local(other).await?;
                (local.name.clone(), Some(Arc::new(local)))
            }
        };
        self.puller.save(&reference, local, target, platform).await
    }

    /// Pull an image, calling `callback` with every progress event on a library thread. The
    /// callback must return quickly.
    pub async fn pull_with_callback(
        &self,
        reference: &Reference,
        options: &PullOptions,
        callback: ProgressCallback,
    ) -> Result<PullResult> {
        self.puller
            .pull(
                reference,
                options,
                ProgressSink::callback(callback),
                &CancelToken::new(),
            )
            .await
    }

    /// Start a pull on the current tokio runtime and return its progress stream and task.
    /// Must be called within a tokio runtime. [`PullProgressHandle::cancel`] cancels it
    /// (the task then returns [`Error::Cancelled`] once its workers have cleaned up).
    pub fn pull_with_progress(
        &self,
        reference: &Reference,
        options: &PullOptions,
    ) -> (PullProgressHandle, JoinHandle<Result<PullResult>>) {
        let cancel = CancelToken::new();
        let (sink, handle) = ProgressSink::channel(cancel.clone());
        let puller = self.puller.clone();
        let (reference, options) = (reference.clone(), options.clone());
        let task =
            tokio::spawn(async move { puller.pull(&reference, &options, sink, &cancel).await });
        (handle, task)
    }
}

/// Opens an offline image (on a blocking thread).
async fn open_local(source: &ImageSource) -> Result<LocalImage> {
    let opening = source.clone();
    tokio::task::spawn_blocking(move || LocalImage::open(&opening))
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
        .map_err(|e| Error::Source {
            reference: source.to_string(),
            source: Box::new(e),
        })
}

/// Settings of a [`Registry`] beyond platform and cache: fills a [`RegistryConfig`].
#[must_use]
pub struct RegistryBuilder {
    platform: Platform,
    cache: GlobalCache,
    config: RegistryConfig,
}

impl RegistryBuilder {
    /// Replaces every setting with `config` (e.g. read from a file).
    pub fn config(mut self, config: RegistryConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings so far.
    pub fn settings(&self) -> &RegistryConfig {
        &self.config
    }

    /// Credentials for every registry without more specific ones.
    pub fn auth(mut self, auth: RegistryAuth) -> Self {
        self.config.auth = auth;
        self
    }

    /// Credentials for one registry (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub fn auth_for(mut self, registry: impl Into<String>, auth: RegistryAuth) -> Self {
        self.config.auth_for.insert(registry.into(), auth);
        self
    }

    /// Read credentials from a Docker `config.json` (inline auths and credential helpers)
    /// for registries without explicit credentials.
    pub fn docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.docker_config = DockerConfigSource::Path(path.into());
        self
    }

    /// Use the Docker config at its default place (`$DOCKER_CONFIG` or `~/.docker`).
    pub fn default_docker_config(mut self) -> Self {
        self.config.docker_config = DockerConfigSource::Default;
        self
    }

    /// Read credentials from these files, in order (the first with an entry for the
    /// repository wins), for registries without explicit credentials:
    /// [`CredentialSource::PODMAN_ORDER`] for where Podman and Docker keep them, an empty list
    /// for none (the Docker config set by [`docker_config`](Self::docker_config) still comes
    /// after these).
    pub fn credential_sources(
        mut self,
        sources: impl IntoIterator<Item = crate::settings::CredentialSource>,
    ) -> Self {
        self.config.credential_sources = sources.into_iter().collect();
        self
    }

    /// Allow plain HTTP and unverified TLS for `host[:port]`. Loopback hosts may always fall
    /// back to plain HTTP.
    pub fn insecure_registry(mut self, host: impl AsRef<str>) -> Self {
        self.config
            .insecure_registries
            .push(host.as_ref().to_owned());
        self
    }

    /// Trust the CA certificates in this PEM file (besides the system's).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca_files.push(path.into());
        self
    }

    /// Trust the CA certificates in the PEM files (`*.crt`, `*.pem`, `*.cer`) of this
    /// directory, for every host.
    pub fn ca_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ca_dirs.push(path.into());
        self
    }

    /// Read per-host CAs and client certificates from this `certs.d` directory
    /// (`<dir>/<host[:port]>/{*.crt, *.cert, *.key}`), after those added before.
    pub fn certs_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.certs_dirs.push(path.into());
        self
    }

    /// Read mirrors, locations, insecure and blocked registries from this `registries.conf`
    /// (see [`RegistryConfig::registries_conf`]).
    pub fn registries_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.registries_conf.push(path.into());
        self
    }

    /// Read containerd `hosts.toml` files from this directory (see
    /// [`RegistryConfig::hosts_dirs`]).
    pub fn hosts_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.hosts_dirs.push(path.into());
        self
    }

    /// Try `mirror` (`host[:port]` or `http(s)://host[:port]`) before `registry`
    /// (e.g. `docker.io`). Mirrors are tried in the order added; the registry comes last. A
    /// mirror given as `http://…` is allowed plain HTTP.
    pub fn mirror(mut self, registry: impl Into<String>, mirror: impl AsRef<str>) -> Self {
        self.config
            .mirrors
            .entry(registry.into())
            .or_default()
            .push(mirror.as_ref().to_owned());
        self
    }

    /// How many large layers download and extract at once (default 4; small layers have as
    /// many slots again, see [`RegistryConfig::concurrency`]).
    pub fn concurrency(mut self, layers: usize) -> Self {
        self.config.concurrency = layers.max(1);
        self
    }

    /// Fetch large layer blobs as parallel `Range` requests of `chunk_size` bytes, at most
    /// `connections` per blob (`1`: one stream per blob). See
    /// [`RegistryConfig::range_chunk_size`] and [`RegistryConfig::range_connections`].
    ///
    /// ```
    /// # fn f(cache: microsandbox_image::GlobalCache) -> microsandbox_image::Result<()> {
    /// use microsandbox_image::{Platform, Registry};
    /// let registry = Registry::builder(Platform::host_linux(), cache)
    ///     .ranges(8 << 20, 8)
    ///     .max_connections(32)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn ranges(mut self, chunk_size: u64, connections: usize) -> Self {
        self.config.range_chunk_size = chunk_size;
        self.config.range_connections = connections.max(1);
        self
    }

    /// When a large blob's ranges start (default [`RangeMode::Adaptive`]; see
    /// [`RegistryConfig::range_mode`]).
    ///
    /// [`RangeMode::Adaptive`]: crate::RangeMode::Adaptive
    pub fn range_mode(mut self, mode: crate::RangeMode) -> Self {
        self.config.range_mode = mode;
        self
    }

    /// Blob requests in flight to one registry, over every layer and range (default 16; see
    /// [`RegistryConfig::max_connections`]).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections.max(1);
        self
    }

    /// Limits applied to every layer.
    pub fn limits(mut self, limits: ExtractLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Whether a published layer is flushed to disk first (`syncfs`, default on). Turn off
    /// for throwaway caches on tmpfs.
    pub fn durable(mut self, durable: bool) -> Self {
        self.config.durable = durable;
        self
    }

    /// Keep the downloaded bytes of layer blobs of at least `bytes` (`None`: of none) in the
    /// cache while they download, so a killed pull resumes from them (see
    /// [`RegistryConfig::partial_min_size`]).
    pub fn partial_min_size(mut self, bytes: Option<u64>) -> Self {
        self.config.partial_min_size = bytes;
        self
    }

    /// Keep the cache's layers under `bytes` (`None`, the default: no cap) by collecting
    /// after every pull that downloaded a layer, least recently used images first, never the
    /// image just pulled (see [`RegistryConfig::cache_max_size`]).
    pub fn cache_max_size(mut self, bytes: Option<u64>) -> Self {
        self.config.cache_max_size = bytes;
        self
    }

    /// With [`cache_max_size`](Self::cache_max_size): never evict images used within
    /// `recent` (see [`RegistryConfig::cache_keep_recent`]).
    pub fn cache_keep_recent(mut self, recent: Option<std::time::Duration>) -> Self {
        self.config.cache_keep_recent = recent;
        self
    }

    /// Retries of a request after a transient failure (default 4).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries = retries;
        self
    }

    /// The longest a whole pull may take, retries and waits included (default none; see
    /// [`RegistryConfig::deadline`]).
    pub fn deadline(mut self, deadline: Option<std::time::Duration>) -> Self {
        self.config.deadline = deadline;
        self
    }

    /// Which proxy requests go through (default: the environment's; see
    /// [`RegistryConfig::proxy`]).
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.config.proxy = proxy;
        self
    }

    /// Build the registry client.
    pub fn build(self) -> Result<Registry> {
        Registry::from_config(self.platform, self.cache, self.config)
    }
}

/// `http://host:port/` → (`host:port`, plain HTTP requested).
fn host_of(url_or_host: &str) -> (String, bool) {
    let (rest, http) = match url_or_host.split_once("://") {
        Some((scheme, rest)) => (rest, scheme.eq_ignore_ascii_case("http")),
        None => (url_or_host, false),
    };
    (rest.trim_end_matches('/').to_owned(), http)
}

/// The HTTP client's options for `config`: hosts normalised, CA files and directories read,
/// `registries.conf` and `hosts.toml` files read.
pub(crate) fn client_options(config: &RegistryConfig) -> Result<ClientOptions> {
    let mut options = ClientOptions {
        max_retries: config.max_retries,
        connect_timeout: config.connect_timeout,
        read_timeout: config.read_timeout,
        max_retry_after: config.max_retry_after,
        low_speed: (config.low_speed_limit > 0 && !config.low_speed_time.is_zero())
            .then_some((config.low_speed_limit, config.low_speed_time)),
        user_agent: config.user_agent.clone(),
        ranges: crate::client::ranges::RangeOptions {
            chunk_size: config.range_chunk_size,
            connections: config.range_connections.max(1),
            eager: config.range_mode == crate::RangeMode::Eager,
        },
        max_connections: config.max_connections.max(1),
        proxy: std::sync::Arc::new(
            ProxyRules::resolve(&config.proxy, |name| std::env::var(name).ok())
                .map_err(|e| Error::InvalidArgument(format!("proxy: {e}")))?,
        ),
        ..ClientOptions::default()
    };
    for host in &config.insecure_registries {
        options.insecure_hosts.insert(host_of(host).0);
    }
    for (registry, mirrors) in &config.mirrors {
        for mirror in mirrors {
            let (host, http) = host_of(mirror);
            if http {
                options.insecure_hosts.insert(host.clone());
            }
            options
                .mirrors
                .entry(registry.clone())
                .or_default()
                .push(host);
        }
    }
    let mut ca_files = config.ca_files.clone();
    for dir in &config.ca_dirs {
        ca_files.extend(
            crate::client::tls::ca_dir_files(dir)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?,
        );
    }
    let mut pem = Vec::new();
    for path in &ca_files {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        pem.extend_from_slice(&bytes);
        pem.push(b'\n');
    }
    options.ca_pem = (!pem.is_empty()).then_some(pem);
    let files = crate::sysconf::load(config)?;
    options.insecure_hosts.extend(files.insecure_hosts);
    options.routes = files.routes;
    options.host_tls = files.host_tls;
    options.certs_dirs = config.certs_dirs.clone();
    Ok(options)
}

impl Registry {
    /// A registry client with every setting given as data.
    ///
    /// ```no_run
    /// # fn f(cache: microsandbox_image::GlobalCache) -> Result<(), Box<dyn std::error::Error>> {
    /// use microsandbox_image::{Platform, Registry, RegistryConfig};
    /// let config = RegistryConfig::from_json(r#"{"insecureRegistries": ["localhost:5000"]}"#)?;
    /// let registry = Registry::from_config(Platform::host_linux(), cache, config)?;
    /// # Ok(()) }
    /// ```
    pub fn from_config(
        platform: Platform,
        cache: GlobalCache,
        config: RegistryConfig,
    ) -> Result<Registry> {
        let options = client_options(&config)?;
        let files = config.credential_files();
        let auth = AuthStore::new(config.auth, config.auth_for.into_iter().collect(), files);
        let client = RegistryClient::new(options, auth)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(Registry {
            puller: Arc::new(Puller {
                client: Arc::new(client),
                cache,
                platform,
                concurrency: config.concurrency.max(1),
                limits: config.limits,
                durable: config.durable,
                lock_timeout: config.lock_timeout,
                deadline: config.deadline,
                partial_min_size: config.partial_min_size,
                collect_after: config.cache_max_size.map(|max| GcPolicy {
                    max_size: Some(max),
                    keep_recent: config.cache_keep_recent,
                    dry_run: false,
                }),
            }),
        })
    }
}
