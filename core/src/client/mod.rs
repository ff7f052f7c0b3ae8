//! The distribution-spec HTTP client: endpoints (mirrors first, then the registry), scheme
//! choice (HTTPS, with plain HTTP only for loopback and insecure hosts), retries with
//! `Retry-After`, manifests with verified bytes, and blobs with `Range` and hand-followed
//! redirects (so `Authorization` never leaves the registry's origin). Authentication
//! (challenges, tokens, which credentials a request carries) is `auth.rs`; routes from
//! configuration files (mirrors, locations, blocked prefixes) are `routes.rs`; TLS per host
//! (`certs.d`, client certificates) is `tls.rs`.

mod auth;
mod error;
pub(crate) mod proxy;
pub(crate) mod ranges;
pub(crate) mod retry;
pub(crate) mod routes;
pub(crate) mod tls;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode, Url};

pub use error::RegistryError;
pub(crate) use error::network as network_error;
use error::{describe_body, network};
use ranges::{ConnectionLimits, RangeBuffers, RangeOptions};
use retry::Retry;

use crate::auth::AuthStore;
use crate::digest::Digest;
use crate::manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use crate::reference::Reference;

/// Network settings of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub(crate) struct ClientOptions {
    /// Hosts (`host[:port]`) where plain HTTP and unverified TLS are allowed.
    pub insecure_hosts: HashSet<String>,
    /// Extra trusted CA certificates (PEM bundle).
    pub ca_pem: Option<Vec<u8>>,
    /// Registry (as in `Reference::registry`) → mirror hosts tried before it, in order.
    pub mirrors: HashMap<String, Vec<String>>,
    /// Routes from configuration files: after `mirrors`, the route matching a reference
    /// gives the places tried (its last one instead of the registry).
    pub routes: Vec<routes::Route>,
    /// Docker/containers `certs.d` roots read for each host's CAs and client certificate.
    pub certs_dirs: Vec<PathBuf>,
    /// TLS per host (`host[:port]`) from configuration files (containerd `hosts.toml`).
    pub host_tls: HashMap<String, tls::HostTls>,
    /// Retries of a request after a transient failure.
    pub max_retries: u32,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest pause between two reads of a response before the request fails.
    pub read_timeout: Duration,
    /// Upper bound of a `Retry-After` wait.
    pub max_retry_after: Duration,
    /// A blob download averaging fewer bytes per second than `.0` over `.1` fails.
    pub low_speed: Option<(u64, Duration)>,
    /// The `User-Agent` header of every request.
    pub user_agent: String,
    /// Which requests go through which proxy (`proxy`).
    pub proxy: Arc<proxy::ProxyRules>,
    /// Large blobs as parallel `Range` requests (`rangeChunkSize`, `rangeConnections`).
    pub ranges: RangeOptions,
    /// Blob requests in flight per registry (`maxConnections`).
    pub max_connections: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_hosts: HashSet::new(),
            ca_pem: None,
            mirrors: HashMap::new(),
            routes: Vec::new(),
            certs_dirs: Vec::new(),
            host_tls: HashMap::new(),
            max_retries: 4,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
            low_speed: Some((1024, Duration::from_secs(60))),
            user_agent: crate::settings::default_user_agent(),
            proxy: Arc::default(),
            ranges: RangeOptions {
                chunk_size: crate::settings::DEFAULT_RANGE_CHUNK_SIZE,
                connections: crate::settings::DEFAULT_RANGE_CONNECTIONS,
                eager: false,
            },
            max_connections: crate::settings::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// One place to fetch from: the registry itself or one of its mirrors.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `host[:port]` to connect to.
    pub host: String,
    /// The repository on this endpoint (a `location` may rename it).
    pub repository: String,
    /// Whether it resolves tags to manifests.
    pub resolve: bool,
    /// Whether it serves content by digest (manifests and blobs).
    pub pull: bool,
    /// Key for credentials: the registry name for the registry, the host for a mirror.
    auth_key: String,
    /// The repository whose credentials apply (`team/app`); empty for a mirror, whose
    /// credentials are per host.
    auth_repository: String,
}

/// A manifest fetched from a registry, with its verified digest.
#[derive(Debug, Clone)]
pub(crate) struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry sent.
    pub content_type: Option<String>,
    /// The digest of `bytes` (the algorithm of the requested digest, else SHA-256).
    pub digest: Digest,
}

/// A blob response whose body is ready to stream.
pub(crate) struct BlobResponse {
    /// The response (status 200 or 206).
    pub response: Response,
    /// Whether the server honoured the `Range` request (206).
    pub partial: bool,
    /// Whether the registry redirected the request to another host (a storage URL).
    pub redirected: bool,
    /// This request's share of the registry's connections, until the body is dropped.
    _connection: tokio::sync::OwnedSemaphorePermit,
}

/// The registry client. Shared by all pulls of a [`Registry`](crate::Registry).
pub(crate) struct RegistryClient {
    /// Built on first use: loading the system's trust store reads a few hundred files, which
    /// a pull from a plain-HTTP (loopback or `--insecure-registry`) registry never needs.
    verified: OnceLock<Result<reqwest::Client, String>>,
    /// Extra trust anchors for `verified` (`ClientOptions::ca_pem`, parsed up front so a bad
    /// bundle fails when the client is made).
    extra_roots: Vec<reqwest::Certificate>,
    unverified: reqwest::Client,
    /// Clients of hosts with TLS of their own (`certs.d`, `hosts.toml`).
    per_host: tls::HostClients,
    opts: ClientOptions,
    auth: auth::Authorizer,
    schemes: Mutex<HashMap<String, &'static str>>,
    /// Blob requests in flight per registry.
    connections: ConnectionLimits,
    /// What ranges fetched ahead may hold, across every download.
    range_buffers: RangeBuffers,
}

impl RegistryClient {
    pub(crate) fn new(opts: ClientOptions, auth: AuthStore) -> Result<Self, RegistryError> {
        // reqwest is built without a crypto provider: use ring's, unless the application has
        // already installed a process-wide default (then that one is used).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut extra_roots = Vec::new();
        if let Some(pem) = &opts.ca_pem {
            extra_roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| RegistryError::TlsConfig(format!("invalid CA bundle: {e}")))?;
            if extra_roots.is_empty() {
                return Err(RegistryError::TlsConfig(
                    "CA bundle holds no certificate".into(),
                ));
            }
        }
        let unverified = Self::base(&opts)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| RegistryError::TlsConfig(e.to_string()))?;
        Ok(RegistryClient {
            verified: OnceLock::new(),
            extra_roots,
            unverified,
            per_host: tls::HostClients::default(),
            auth: auth::Authorizer::new(auth, opts.max_retries),
            connections: ConnectionLimits::new(opts.max_connections),
            range_buffers: RangeBuffers::new(opts.ranges.chunk_size),
            opts,
            schemes: Mutex::default(),
        })
    }

    fn base(opts: &ClientOptions) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .user_agent(&opts.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout);
        opts.proxy.apply(builder)
    }

    /// [`network`], naming the proxy when the request went through one (a proxy that is
    /// down or refuses us looks like the registry failing otherwise).
    fn network(&self, url: &Url, e: &reqwest::Error) -> RegistryError {
        let mut err = network(url.as_str(), e);
        if let RegistryError::Network { detail, .. } = &mut err {
            detail.push_str(&self.opts.proxy.note(url.as_str()));
        }
        err
    }

    /// The low-speed rule for blob downloads (`lowSpeedLimit` over `lowSpeedTime`).
    pub(crate) fn low_speed(&self) -> Option<(u64, Duration)> {
        self.opts.low_speed
    }

    /// Where to fetch `r` from: its mirrors (the `mirrors` setting) in order, then the places
    /// of its route if a configuration file gives one, else the registry. A blocked route is
    /// an error.
    pub(crate) fn endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>, RegistryError> {
        let mut eps: Vec<Endpoint> = self
            .opts
            .mirrors
            .get(r.registry())
            .into_iter()
            .flatten()
            .map(|m| Endpoint {
                host: m.clone(),
                repository: r.repository().to_owned(),
                resolve: true,
                pull: true,
                auth_key: m.clone(),
                auth_repository: String::new(),
            })
            .collect();
        match routes::route_for(&self.opts.routes, r) {
            Some(route) => eps.extend(routes::endpoints(route, r)?),
            None => eps.push(Endpoint {
                host: r.api_host().to_owned(),
                repository: r.repository().to_owned(),
                resolve: true,
                pull: true,
                auth_key: r.registry().to_owned(),
                auth_repository: r.repository().to_owned(),
            }),
        }
        Ok(eps)
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.opts.insecure_hosts.contains(host)
    }

    /// The scheme to use for `host`, and whether plain HTTP may still be tried after an HTTPS
    /// failure.
    fn scheme_for(&self, host: &str) -> (&'static str, bool) {
        let schemes = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        match schemes.get(host) {
            Some(s) => (s, false),
            None => ("https", host_is_loopback(host) || self.is_insecure(host)),
        }
    }

    fn remember_scheme(&self, host: &str, scheme: &'static str) {
        let mut schemes = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        schemes.insert(host.to_owned(), scheme);
    }

    fn forget_scheme(&self, host: &str) {
        let mut schemes = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        schemes.remove(host);
    }

    /// How the authorizer reaches `ep`'s token service.
    fn reach(&self, ep: &Endpoint) -> Result<auth::Reach, RegistryError> {
        Ok(auth::Reach {
            http: self.http_for(&ep.host)?,
            insecure: self.is_insecure(&ep.host),
        })
    }

    fn http_for(&self, host: &str) -> Result<reqwest::Client, RegistryError> {
        if self.is_insecure(host) {
            return Ok(self.unverified.clone());
        }
        let own = self.per_host.get(
            host,
            self.opts.host_tls.get(host),
            &self.opts.certs_dirs,
            &self.extra_roots,
            || Self::base(&self.opts),
        )?;
        if let Some(client) = own {
            return Ok(client);
        }
        self.verified
            .get_or_init(|| {
                let mut b = Self::base(&self.opts);
                if !self.extra_roots.is_empty() {
                    b = b.tls_certs_merge(self.extra_roots.iter().cloned());
                }
                b.build().map_err(|e| e.to_string())
            })
            .clone()
            .map_err(RegistryError::TlsConfig)
    }

    /// GET `/v2/<rel>` on one endpoint with auth for `scope`, scheme fallback and retries.
    /// Returns any final response that is not 401/403 or a transient failure; redirects are
    /// followed by the caller.
    async fn get(
        &self,
        ep: &Endpoint,
        rel: &str,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<(Response, Url), RegistryError> {
        let mut challenged = false;
        let mut attempt = 0u32;
        // Why HTTPS failed on a host we then tried over plain HTTP.
        let mut https_error: Option<RegistryError> = None;
        loop {
            let (scheme, may_downgrade) = self.scheme_for(&ep.host);
            let url_s = format!("{scheme}://{}/v2/{rel}", ep.host);
            let url = Url::parse(&url_s).map_err(|e| RegistryError::Protocol {
                url: url_s.clone(),
                detail: e.to_string(),
            })?;
            let mut req = self
                .http_for(&ep.host)?
                .get(url.clone())
                .headers(headers.clone());
            let sent = self.auth.authorization(&self.reach(ep)?, ep, scope).await;
            if let Some(a) = &sent {
                req = req.header(header::AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if may_downgrade => {
                    // Loopback or insecure host that does not speak TLS: use plain HTTP.
                    https_error = Some(self.network(&url, &e));
                    self.remember_scheme(&ep.host, "http");
                    continue;
                }
                Err(e) => {
                    let err = self.network(&url, &e);
                    if attempt < self.opts.max_retries {
                        attempt += 1;
                        let wait = backoff(attempt);
                        self.pause(&url, attempt, wait, err.reason()).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            if may_downgrade {
                self.remember_scheme(&ep.host, scheme);
            }
            let status = resp.status();
            if status == StatusCode::BAD_REQUEST
                && let Some(tls) = https_error.take()
            {
                // The port speaks TLS after all (Go's server answers plain HTTP with 400):
                // the HTTPS failure is the real story (usually an untrusted certificate).
                self.forget_scheme(&ep.host);
                return Err(tls);
            }
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                self.auth
                    .answer_challenge(&self.reach(ep)?, ep, scope, resp.headers(), sent.as_deref())
                    .await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let body = resp.bytes().await.unwrap_or_default();
                return Err(RegistryError::Auth {
                    host: ep.host.clone(),
                    detail: format!("HTTP {}: {}", status.as_u16(), describe_body(&body)),
                });
            }
            if is_retryable(status) && attempt < self.opts.max_retries {
                attempt += 1;
                let (wait, reason) = self.status_wait(&resp, attempt);
                self.pause(&url, attempt, wait, reason).await;
                continue;
            }
            return Ok((resp, url));
        }
    }

    /// Fetch a manifest by tag or digest and verify its bytes: against the requested digest,
    /// else against `Docker-Content-Digest`.
    pub(crate) async fn get_manifest(
        &self,
        r: &Reference,
        reference: &str,
        pinned: Option<&Digest>,
    ) -> Result<FetchedManifest, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let need = if pinned.is_some() || reference.contains(':') {
            Need::Pull
        } else {
            Need::Resolve
        };
        self.with_endpoints(r, need, |ep| {
            let headers = headers.clone();
            async move {
                let path = format!("manifests/{reference}");
                let (bytes, (content_type, claimed)) = self
                    .read_retrying(
                        || async {
                            let (resp, url) = self.get_following(&ep, &path, &headers).await?;
                            let resp = expect_success(resp, &url, "manifest").await?;
                            let content_type = header_str(resp.headers(), header::CONTENT_TYPE);
                            let claimed = header_str(resp.headers(), "docker-content-digest")
                                .and_then(|d| d.parse::<Digest>().ok());
                            Ok((resp, url, (content_type, claimed)))
                        },
                        "manifest",
                        MAX_MANIFEST_BYTES,
                    )
                    .await?;
                let expected = pinned.cloned().or(claimed);
                let digest = match &expected {
                    Some(e) => {
                        let mut h = e.hasher();
                        h.update(&bytes);
                        let actual = h.finish();
                        if &actual != e {
                            return Err(RegistryError::DigestMismatch {
                                what: "manifest",
                                expected: e.clone(),
                                actual,
                            });
                        }
                        actual
                    }
                    None => Digest::sha256_of(&bytes),
                };
                Ok(FetchedManifest {
                    bytes,
                    content_type,
                    digest,
                })
            }
        })
        .await
    }

    /// Fetch a small blob (a config) whole and verify it.
    pub(crate) async fn get_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        self.with_endpoints(r, Need::Pull, |ep| async move {
            let (bytes, ()) = self
                .read_retrying(
                    || async {
                        let BlobResponse { response, .. } =
                            self.open_blob_at(&ep, r, digest, 0..0, true).await?;
                        let url = response.url().clone();
                        Ok((response, url, ()))
                    },
                    what,
                    limit,
                )
                .await?;
            let mut h = digest.hasher();
            h.update(&bytes);
            let actual = h.finish();
            if &actual != digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: digest.clone(),
                    actual,
                });
            }
            Ok(bytes)
        })
        .await
    }

    /// Start streaming a blob from byte `from` to its end (a `Range` request when non-zero).
    /// The caller hashes what it reads.
    pub(crate) async fn open_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        from: u64,
    ) -> Result<BlobResponse, RegistryError> {
        self.with_endpoints(r, Need::Pull, |ep| async move {
            self.open_blob_at(&ep, r, digest, from..from, true).await
        })
        .await
    }

    /// `GET` a blob's bytes `range` on one endpoint (to the blob's end from `range.start`
    /// with `to_end`; no `Range` header for all of it), holding one of the registry's
    /// connections until the body is dropped.
    async fn open_blob_at(
        &self,
        ep: &Endpoint,
        r: &Reference,
        digest: &Digest,
        range: std::ops::Range<u64>,
        to_end: bool,
    ) -> Result<BlobResponse, RegistryError> {
        let permit = self.connections.acquire(r.registry()).await;
        let mut headers = HeaderMap::new();
        if range.start > 0 || !to_end {
            headers.insert(header::RANGE, ranges::range_header(&range, to_end)?);
        }
        let (resp, url) = self
            .get_following(ep, &format!("blobs/{digest}"), &headers)
            .await?;
        let resp = expect_success(resp, &url, "blob").await?;
        let redirected = url_host(&url) != ep.host;
        Ok(BlobResponse::new(resp, permit, redirected))
    }

    /// [`Self::get`], then follow redirects (at most [`MAX_REDIRECTS`]; every request, not
    /// only blobs: registries redirect manifests too). `Authorization` goes only back to the
    /// registry's own origin, never to a storage host.
    async fn get_following(
        &self,
        ep: &Endpoint,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(Response, Url), RegistryError> {
        let scope = format!("repository:{}:pull", ep.repository);
        let rel = format!("{}/{path}", ep.repository);
        let (mut resp, mut url) = self.get(ep, &rel, &scope, headers).await?;
        let origin = url.origin();
        let mut hops = 0;
        while resp.status().is_redirection() && resp.status() != StatusCode::NOT_MODIFIED {
            if hops == MAX_REDIRECTS {
                return Err(RegistryError::Protocol {
                    url: url.to_string(),
                    detail: format!("too many redirects (more than {MAX_REDIRECTS})"),
                });
            }
            hops += 1;
            let location = header_str(resp.headers(), header::LOCATION).ok_or_else(|| {
                RegistryError::Protocol {
                    url: url.to_string(),
                    detail: "redirect without Location".into(),
                }
            })?;
            let next = url.join(&location).map_err(|e| RegistryError::Protocol {
                url: url.to_string(),
                detail: format!("bad redirect Location {location:?}: {e}"),
            })?;
            let mut req = self
                .http_for(&url_host(&next))?
                .get(next.clone())
                .headers(headers.clone());
            if next.origin() == origin
                && let Some(a) = self.auth.authorization(&self.reach(ep)?, ep, &scope).await
            {
                req = req.header(header::AUTHORIZATION, a);
            }
            resp = self.send_retrying(req, &next).await?;
            url = next;
        }
        Ok((resp, url))
    }

    /// Send a request built once (a redirect hop), retrying transient failures like
    /// [`Self::get`] does.
    async fn send_retrying(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0u32;
        loop {
            let Some(this) = req.try_clone() else {
                return req.send().await.map_err(|e| self.network(url, &e));
            };
            match this.send().await {
                Ok(resp) if is_retryable(resp.status()) && attempt < self.opts.max_retries => {
                    attempt += 1;
                    let (wait, reason) = self.status_wait(&resp, attempt);
                    self.pause(url, attempt, wait, reason).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < self.opts.max_retries => {
                    attempt += 1;
                    let reason = self.network(url, &e).reason();
                    self.pause(url, attempt, backoff(attempt), reason).await;
                }
                Err(e) => return Err(self.network(url, &e)),
            }
        }
    }

    /// Open a response with `open` and read its body whole (at most `limit` bytes); a
    /// transient failure while reading (a reset, a timeout) opens it again, up to
    /// `max_retries` times, as a failure to connect would be. `open` also returns a value
    /// taken from the headers, handed back with the bytes.
    async fn read_retrying<T, F, Fut>(
        &self,
        open: F,
        what: &'static str,
        limit: u64,
    ) -> Result<(Vec<u8>, T), RegistryError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(Response, Url, T), RegistryError>>,
    {
        let mut attempt = 0u32;
        loop {
            let (resp, url, extra) = open().await?;
            match read_limited(resp, &url, what, limit).await {
                Ok(bytes) => return Ok((bytes, extra)),
                Err(e) if e.is_transient() && attempt < self.opts.max_retries => {
                    attempt += 1;
                    self.pause(&url, attempt, backoff(attempt), e.reason())
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The wait before retrying after the retryable answer `resp`, and why: its
    /// `Retry-After` (at most `maxRetryAfter`, and the reason says when it was cut), else the
    /// backoff of retry number `attempt`.
    fn status_wait(&self, resp: &Response, attempt: u32) -> (Duration, String) {
        let status = resp.status();
        let what = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        match retry_after(resp.headers()) {
            Some(asked) if asked > self.opts.max_retry_after => {
                let cap = self.opts.max_retry_after;
                let reason = format!(
                    "{} (Retry-After {} s, cut to maxRetryAfter {} s)",
                    what.trim_end(),
                    asked.as_secs(),
                    cap.as_secs_f64()
                );
                (cap, reason)
            }
            Some(asked) => (
                asked,
                format!("{} (Retry-After {} s)", what.trim_end(), asked.as_secs()),
            ),
            None => (backoff(attempt), what.trim_end().to_owned()),
        }
    }

    /// Report retry number `retry` of the request to `url` and wait `wait` (`retry.rs`).
    async fn pause(&self, url: &Url, retry: u32, wait: Duration, reason: String) {
        retry::pause(Retry {
            url: url.as_str(),
            retry,
            max_retries: self.opts.max_retries,
            wait,
            reason,
        })
        .await;
    }

    /// Check that `registry` (as in `Reference::registry`) accepts its credentials: `GET /v2/`
    /// with the challenge dance and no scope, as `docker login` and `podman login` do.
    pub(crate) async fn ping(&self, registry: &str) -> Result<(), RegistryError> {
        let host = if registry == crate::reference::DOCKER_HUB {
            crate::reference::DOCKER_HUB_API
        } else {
            registry
        };
        let ep = Endpoint {
            host: host.to_owned(),
            repository: String::new(),
            resolve: true,
            pull: true,
            auth_key: registry.to_owned(),
            auth_repository: String::new(),
        };
        let (resp, url) = self.get(&ep, "", "", &HeaderMap::new()).await?;
        expect_success(resp, &url, "registry API (/v2/)").await?;
        Ok(())
    }

    /// Run `f` against each endpoint that serves `need` in turn until one succeeds (a mirror
    /// that is down, answers 5xx or lacks the image falls through to the next); the last
    /// error otherwise.
    async fn with_endpoints<'a, T, F, Fut>(
        &'a self,
        r: &'a Reference,
        need: Need,
        f: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>> + 'a,
    {
        let eps: Vec<Endpoint> = self
            .endpoints(r)?
            .into_iter()
            .filter(|ep| match need {
                Need::Resolve => ep.resolve,
                Need::Pull => ep.pull,
            })
            .collect();
        if eps.is_empty() {
            return Err(RegistryError::Config(format!(
                "no configured host for {}/{} may {}",
                r.registry(),
                r.repository(),
                match need {
                    Need::Resolve => "resolve tags (capability \"resolve\")",
                    Need::Pull => "serve content (capability \"pull\")",
                }
            )));
        }
        let last = eps.len() - 1;
        let mut result = None;
        for (i, ep) in eps.into_iter().enumerate() {
            match f(ep).await {
                Ok(v) => return Ok(v),
                Err(e) if i < last => {
                    // A mirror failed; fall through to the next endpoint.
                    result = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(result.unwrap_or_else(|| RegistryError::Protocol {
            url: r.api_host().to_owned(),
            detail: "no endpoint".into(),
        }))
    }
}

/// What a request needs of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Resolving a tag to a manifest.
    Resolve,
    /// Content by digest: a manifest or a blob.
    Pull,
}

/// `host[:port]` of a URL, the port only when the URL gives one.
fn url_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn expect_success(
    resp: Response,
    url: &Url,
    what: &'static str,
) -> Result<Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    let detail = describe_body(&body);
    if status == StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound {
            url: url.to_string(),
            detail: if detail.is_empty() {
                what.to_owned()
            } else {
                detail
            },
        });
    }
    Err(RegistryError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        detail,
    })
}

async fn read_limited(
    resp: Response,
    url: &Url,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        what,
        url: url.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| network(url.as_str(), &e))?;
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn is_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// Exponential backoff: 200 ms, 400 ms, … capped at 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
}

/// Whether `host[:port]` names the local machine (`localhost`, 127.0.0.0/8, `::1`).
pub(crate) fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host.matches(':').count() > 1 {
        host // bare IPv6
    } else {
        host.split(':').next().unwrap_or("")
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:5000",
            "::1",
        ] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[2001:db8::1]:443",
            "localhost.evil.com",
        ] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) < backoff(2));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }
}
