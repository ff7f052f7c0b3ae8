//! The registry client's auth dance, kept apart from fetching as containerd keeps it in
//! `authorizer.go`: which `Authorization` header a request to an endpoint carries, and how a
//! 401's `WWW-Authenticate` challenge is answered (a Bearer token fetched from the realm and
//! cached per host and scope, or the host switched to Basic credentials). The caller
//! (`client/mod.rs`) asks [`Authorizer::authorization`] before each request and
//! [`Authorizer::answer_challenge`] after a first 401, then retries once: a token that
//! expired during a long pull costs the one request that met it a retry (a blob resumes from
//! its `Range`), never more, and tokens are renewed ahead of their expiry once the host's
//! challenge is known.
//!
//! Owns the credentials resolved per endpoint, the hosts that take Basic credentials, the
//! hosts' Bearer challenges, the OAuth2 refresh tokens issued, and the token cache; challenge
//! parsing is `challenge.rs`, the token service requests (`GET` and OAuth2 `POST`)
//! `token.rs`.

mod challenge;
mod token;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use reqwest::Url;
use reqwest::header::{self, HeaderMap};

use super::error::RegistryError;
use super::{Endpoint, host_is_loopback};
use crate::auth::{AuthStore, RegistryAuth};

/// Credentials and tokens of one [`RegistryClient`](super::RegistryClient).
pub(super) struct Authorizer {
    store: AuthStore,
    /// Credentials resolved per auth key and repository (resolving may read files or run
    /// helpers).
    creds: Mutex<HashMap<(String, String), RegistryAuth>>,
    /// Hosts whose challenge asked for HTTP Basic.
    basic_hosts: Mutex<HashSet<String>>,
    /// The last Bearer challenge of each host: with it a token is renewed before a request
    /// rather than after the request's 401.
    challenges: Mutex<HashMap<String, challenge::Challenge>>,
    /// The newest OAuth2 refresh token a token service issued, per auth key (it replaces the
    /// identity token for later requests).
    refresh_tokens: Mutex<HashMap<String, String>>,
    /// One token request at a time per host and scope: concurrent requests wait for it.
    in_flight: Mutex<HashMap<(String, String), Turn>>,
    tokens: token::TokenCache,
    /// Retries of a token request after a transient failure.
    max_retries: u32,
}

/// Held while a token request for one host and scope is in flight.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// What the authorizer needs to reach a host's token service.
pub(super) struct Reach {
    /// The client for the registry host.
    pub http: reqwest::Client,
    /// Whether the host is an insecure one (credentials may then go to its token service
    /// over plain HTTP).
    pub insecure: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authorizer {
    pub(super) fn new(store: AuthStore, max_retries: u32) -> Self {
        Authorizer {
            store,
            max_retries,
            creds: Mutex::default(),
            basic_hosts: Mutex::default(),
            challenges: Mutex::default(),
            refresh_tokens: Mutex::default(),
            in_flight: Mutex::default(),
            tokens: token::TokenCache::default(),
        }
    }

    /// The credentials for an endpoint, resolved once on a blocking thread (the Docker config
    /// file may be read and credential helpers run).
    async fn credentials(&self, ep: &Endpoint) -> RegistryAuth {
        let key = (ep.auth_key.clone(), ep.auth_repository.clone());
        if let Some(a) = lock(&self.creds).get(&key) {
            return a.clone();
        }
        let (store, k) = (self.store.clone(), key.clone());
        let auth = tokio::task::spawn_blocking(move || store.for_registry(&k.0, &k.1))
            .await
            .unwrap_or_default();
        lock(&self.creds).insert(key, auth.clone());
        auth
    }

    /// The `Authorization` header value for a request to `ep` within `scope`, if any: a cached
    /// token; else, once the host has sent a Bearer challenge, a new token fetched now (a
    /// token about to expire is renewed before the request, not after its 401); else a
    /// configured bearer token, or Basic credentials once the host asked for them.
    pub(super) async fn authorization(
        &self,
        reach: &Reach,
        ep: &Endpoint,
        scope: &str,
    ) -> Option<String> {
        if let Some(t) = self.tokens.get(&ep.host, scope) {
            return Some(format!("Bearer {t}"));
        }
        let auth = self.credentials(ep).await;
        let known = lock(&self.challenges).get(&ep.host).cloned();
        if let Some(bearer) = known {
            match self.fetch_token(reach, ep, scope, &bearer, &auth).await {
                Ok(t) => return Some(format!("Bearer {t}")),
                // The request goes without; its 401 fetches again and reports the failure.
                Err(e) => log::debug!("token for {} not renewed ahead: {e}", ep.host),
            }
        }
        match auth {
            RegistryAuth::Bearer { token } => Some(format!("Bearer {token}")),
            RegistryAuth::Basic { username, password }
                if lock(&self.basic_hosts).contains(&ep.host) =>
            {
                let b64 = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(format!("Basic {b64}"))
            }
            _ => None,
        }
    }

    /// React to a 401 from `ep` to a request that carried `sent` (its `Authorization`
    /// value): forget the token it rejected, then obtain a new one (Bearer; unless another
    /// request already did) or switch the host to Basic credentials.
    pub(super) async fn answer_challenge(
        &self,
        reach: &Reach,
        ep: &Endpoint,
        scope: &str,
        headers: &HeaderMap,
        sent: Option<&str>,
    ) -> Result<(), RegistryError> {
        if let Some(rejected) = sent.and_then(|s| s.strip_prefix("Bearer ")) {
            self.tokens.remove_if(&ep.host, scope, rejected);
        }
        let auth = self.credentials(ep).await;
        let challenges: Vec<challenge::Challenge> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            lock(&self.challenges).insert(ep.host.clone(), bearer.clone());
            return self
                .fetch_token(reach, ep, scope, bearer, &auth)
                .await
                .map(drop);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if !auth.is_some() {
                return Err(RegistryError::Auth {
                    host: ep.host.clone(),
                    detail:
                        "the registry requires credentials (HTTP Basic) and none are configured"
                            .into(),
                });
            }
            lock(&self.basic_hosts).insert(ep.host.clone());
            return Ok(());
        }
        Err(RegistryError::Auth {
            host: ep.host.clone(),
            detail: "401 without a usable WWW-Authenticate challenge".into(),
        })
    }

    /// A token for `scope` on `ep`: the cached one, or one from the realm of `bearer`, cached.
    /// One request per host and scope is in flight at a time; the others wait for its token.
    async fn fetch_token(
        &self,
        reach: &Reach,
        ep: &Endpoint,
        scope: &str,
        bearer: &challenge::Challenge,
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        let key = (ep.host.clone(), scope.to_owned());
        let flight = Arc::clone(lock(&self.in_flight).entry(key).or_default());
        let _turn = flight.lock().await;
        if let Some(t) = self.tokens.get(&ep.host, scope) {
            return Ok(t);
        }
        let realm = bearer
            .param("realm")
            .ok_or_else(|| RegistryError::Protocol {
                url: ep.host.clone(),
                detail: "Bearer challenge without realm".into(),
            })?;
        let realm_host = Url::parse(realm)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let refresh = lock(&self.refresh_tokens).get(&ep.auth_key).cloned();
        let request = token::TokenRequest {
            realm,
            service: bearer.param("service"),
            scope,
            auth,
            refresh_token: refresh.as_deref(),
            creds_over_http: host_is_loopback(&realm_host) || reach.insecure,
        };
        // The token service gets the same retries as the registry (a reset, a 503).
        let mut attempt = 0u32;
        let issued = loop {
            match token::fetch(&reach.http, &request).await {
                Err(e) if e.is_transient() && attempt < self.max_retries => {
                    attempt += 1;
                    super::retry::pause(super::Retry {
                        url: realm,
                        retry: attempt,
                        max_retries: self.max_retries,
                        wait: super::backoff(attempt),
                        reason: e.reason(),
                    })
                    .await;
                }
                other => break other?,
            }
        };
        if let Some(r) = issued.refresh_token {
            lock(&self.refresh_tokens).insert(ep.auth_key.clone(), r);
        }
        self.tokens
            .put(&ep.host, scope, issued.token.clone(), issued.expires_in);
        Ok(issued.token)
    }
}
