//! The registry client's auth dance, kept apart from fetching as containerd keeps it in
//! `authorizer.go`: which `Authorization` header a request to an endpoint carries, and how a
//! 401's `WWW-Authenticate` challenge is answered (a Bearer token fetched from the realm and
//! cached per host and scope, or the host switched to Basic credentials). The caller
//! (`client/mod.rs`) asks [`Authorizer::authorization`] before each request and
//! [`Authorizer::answer_challenge`] after a first 401, then retries once.
//!
//! Owns the credentials resolved per endpoint, the hosts that take Basic credentials and the
//! token cache; challenge parsing is `challenge.rs`, the token service request `token.rs`.

mod challenge;
mod token;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use reqwest::Url;
use reqwest::header::{self, HeaderMap};

use super::error::RegistryError;
use super::{Endpoint, host_is_loopback};
use crate::auth::{AuthStore, RegistryAuth};

/// Credentials and tokens of one [`RegistryClient`](super::RegistryClient).
pub(super) struct Authorizer {
    store: AuthStore,
    /// Credentials resolved per auth key (resolving may read files or run helpers).
    creds: Mutex<HashMap<String, RegistryAuth>>,
    /// Hosts whose challenge asked for HTTP Basic.
    basic_hosts: Mutex<HashSet<String>>,
    tokens: token::TokenCache,
    /// Retries of a token request after a transient failure.
    max_retries: u32,
}

impl Authorizer {
    pub(super) fn new(store: AuthStore, max_retries: u32) -> Self {
        Authorizer {
            store,
            max_retries,
            creds: Mutex::default(),
            basic_hosts: Mutex::default(),
            tokens: token::TokenCache::default(),
        }
    }

    /// The credentials for an endpoint, resolved once on a blocking thread (the Docker config
    /// file may be read and credential helpers run).
    async fn credentials(&self, ep: &Endpoint) -> RegistryAuth {
        if let Some(a) = self
            .creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ep.auth_key)
        {
            return a.clone();
        }
        let (store, key) = (self.store.clone(), ep.auth_key.clone());
        let auth = tokio::task::spawn_blocking(move || store.for_registry(&key))
            .await
            .unwrap_or_default();
        self.creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ep.auth_key.clone(), auth.clone());
        auth
    }

    /// The `Authorization` header value for a request to `ep` within `scope`, if any: a cached
    /// token, a configured bearer token, or Basic credentials once the host asked for them.
    pub(super) async fn authorization(&self, ep: &Endpoint, scope: &str) -> Option<String> {
        if let Some(t) = self.tokens.get(&ep.host, scope) {
            return Some(format!("Bearer {t}"));
        }
        match self.credentials(ep).await {
            RegistryAuth::Bearer { token } => Some(format!("Bearer {token}")),
            RegistryAuth::Basic { username, password }
                if self
                    .basic_hosts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&ep.host) =>
            {
                let b64 = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(format!("Basic {b64}"))
            }
            _ => None,
        }
    }

    /// React to a 401 from `ep`: forget the token it rejected, then obtain a new one (Bearer)
    /// or switch the host to Basic credentials. `http` is the client for `ep`'s host;
    /// `insecure` says whether the host is an insecure one (credentials may then go to its
    /// token service over plain HTTP).
    pub(super) async fn answer_challenge(
        &self,
        http: &reqwest::Client,
        ep: &Endpoint,
        scope: &str,
        headers: &HeaderMap,
        insecure: bool,
    ) -> Result<(), RegistryError> {
        self.tokens.remove(&ep.host, scope);
        let auth = self.credentials(ep).await;
        let challenges: Vec<challenge::Challenge> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self
                .fetch_token(http, ep, scope, bearer, &auth, insecure)
                .await;
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
            self.basic_hosts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ep.host.clone());
            return Ok(());
        }
        Err(RegistryError::Auth {
            host: ep.host.clone(),
            detail: "401 without a usable WWW-Authenticate challenge".into(),
        })
    }

    /// Answer a Bearer challenge: ask its realm for a token for `scope` and cache it.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        ep: &Endpoint,
        scope: &str,
        bearer: &challenge::Challenge,
        auth: &RegistryAuth,
        insecure: bool,
    ) -> Result<(), RegistryError> {
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
        let creds_over_http = host_is_loopback(&realm_host) || insecure;
        // The token service gets the same retries as the registry (a reset, a 503).
        let mut attempt = 0u32;
        let (tok, expires_in) = loop {
            match token::fetch(
                http,
                realm,
                bearer.param("service"),
                scope,
                auth,
                creds_over_http,
            )
            .await
            {
                Err(e) if e.is_transient() && attempt < self.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(super::backoff(attempt)).await;
                }
                other => break other?,
            }
        };
        self.tokens.put(&ep.host, scope, tok, expires_in);
        Ok(())
    }
}
