//! [`Registry`], the front door: built from a platform and a cache (plus options through
//! [`RegistryBuilder`]), it pulls images. Cheap to clone; clones share connections, tokens
//! and in-flight work.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::auth::{AuthStore, DockerConfig, RegistryAuth};
use crate::cache::GlobalCache;
use crate::cancel::CancelToken;
use crate::client::{ClientOptions, RegistryClient};
use crate::error::{Error, Result};
use crate::layer::ExtractLimits;
use crate::platform::Platform;
use crate::progress::{ProgressCallback, ProgressSink, PullProgressHandle};
use crate::pull::{PullOptions, PullResult, Puller};
use crate::reference::Reference;

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
            auth: RegistryAuth::Anonymous,
            per_host: HashMap::new(),
            docker_config: None,
            client: ClientOptions::default(),
            ca_file: None,
            concurrency: 4,
            limits: ExtractLimits::default(),
            durable: true,
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
    /// Must be called within a tokio runtime.
    pub fn pull_with_progress(
        &self,
        reference: &Reference,
        options: &PullOptions,
    ) -> (PullProgressHandle, JoinHandle<Result<PullResult>>) {
        let (sink, handle) = ProgressSink::channel();
        let puller = self.puller.clone();
        let (reference, options) = (reference.clone(), options.clone());
        let task = tokio::spawn(async move {
            puller
                .pull(&reference, &options, sink, &CancelToken::new())
                .await
        });
        (handle, task)
    }
}

/// Settings of a [`Registry`] beyond platform and cache.
#[must_use]
pub struct RegistryBuilder {
    platform: Platform,
    cache: GlobalCache,
    auth: RegistryAuth,
    per_host: HashMap<String, RegistryAuth>,
    docker_config: Option<PathBuf>,
    client: ClientOptions,
    ca_file: Option<PathBuf>,
    concurrency: usize,
    limits: ExtractLimits,
    durable: bool,
}

/// `http://host:port/` → (`host:port`, plain HTTP requested).
fn host_of(url_or_host: &str) -> (String, bool) {
    let (rest, http) = match url_or_host.split_once("://") {
        Some((scheme, rest)) => (rest, scheme.eq_ignore_ascii_case("http")),
        None => (url_or_host, false),
    };
    (rest.trim_end_matches('/').to_owned(), http)
}

impl RegistryBuilder {
    /// Credentials for every registry without more specific ones.
    pub fn auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Credentials for one registry (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub fn auth_for(mut self, registry: impl Into<String>, auth: RegistryAuth) -> Self {
        self.per_host.insert(registry.into(), auth);
        self
    }

    /// Read credentials from a Docker `config.json` (inline auths and credential helpers)
    /// for registries without explicit credentials.
    pub fn docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config = Some(path.into());
        self
    }

    /// Use the Docker config at its default place (`$DOCKER_CONFIG` or `~/.docker`).
    pub fn default_docker_config(mut self) -> Self {
        self.docker_config = DockerConfig::default_path();
        self
    }

    /// Allow plain HTTP and unverified TLS for `host[:port]`. Loopback hosts may always fall
    /// back to plain HTTP.
    pub fn insecure_registry(mut self, host: impl AsRef<str>) -> Self {
        self.client.insecure_hosts.insert(host_of(host.as_ref()).0);
        self
    }

    /// Trust the CA certificates in this PEM file (besides the system's).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Try `mirror` (`host[:port]` or `http(s)://host[:port]`) before `registry`
    /// (e.g. `docker.io`). Mirrors are tried in the order added; the registry comes last. A
    /// mirror given as `http://…` is allowed plain HTTP.
    pub fn mirror(mut self, registry: impl Into<String>, mirror: impl AsRef<str>) -> Self {
        let (host, http) = host_of(mirror.as_ref());
        if http {
            self.client.insecure_hosts.insert(host.clone());
        }
        self.client
            .mirrors
            .entry(registry.into())
            .or_default()
            .push(host);
        self
    }

    /// How many layers download and extract at once (default 4).
    pub fn concurrency(mut self, layers: usize) -> Self {
        self.concurrency = layers.max(1);
        self
    }

    /// Limits applied to every layer.
    pub fn limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether a published layer is flushed to disk first (`syncfs`, default on). Turn off
    /// for throwaway caches on tmpfs.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Retries of a request after a transient failure (default 4).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.client.max_retries = retries;
        self
    }

    /// Build the registry client.
    pub fn build(mut self) -> Result<Registry> {
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::InvalidArgument(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            self.client.ca_pem = Some(pem);
        }
        let auth = AuthStore::new(self.auth, self.per_host, self.docker_config);
        let client = RegistryClient::new(self.client, auth)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let _: &HashSet<String>;
        Ok(Registry {
            puller: Arc::new(Puller {
                client: Arc::new(client),
                cache: self.cache,
                platform: self.platform,
                concurrency: self.concurrency,
                limits: self.limits,
                durable: self.durable,
            }),
        })
    }
}
