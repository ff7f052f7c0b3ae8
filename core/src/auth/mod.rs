//! Credentials: what the caller gives us ([`RegistryAuth`]), per-host overrides, and the
//! credential files users keep (Podman's `auth.json`, Docker's `config.json`: inline `auths`
//! and credential helpers), read in the order of
//! [`RegistryConfig::credential_sources`](crate::RegistryConfig::credential_sources). Which
//! credentials apply to a repository is decided here, and `login`/`logout` write them where
//! Podman and Docker keep them (`login.rs`); the HTTP challenge dance itself lives in
//! `client::auth`.

mod docker_config;
mod login;

use std::collections::HashMap;
use std::path::PathBuf;

pub use docker_config::DockerConfig;
pub use login::{CredentialTarget, StoredIn, auth_key, login, logout, logout_all};

/// Credentials for a registry.
///
/// ```
/// use microsandbox_image::RegistryAuth;
/// let auth = RegistryAuth::Basic { username: "user".into(), password: "token".into() };
/// assert!(auth.is_some());
/// assert!(!RegistryAuth::Anonymous.is_some());
/// ```
///
/// As data (settings files, Python and Node options) it is `{"type": "anonymous"}`,
/// `{"type": "basic", "username": …, "password": …}`, `{"type": "bearer", "token": …}` or
/// `{"type": "identityToken", "username": …, "token": …}`.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub enum RegistryAuth {
    /// No credentials: public images, anonymous bearer tokens.
    #[default]
    Anonymous,
    /// Username and password (or access token), sent as HTTP Basic to the registry or to its
    /// token service.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// A ready bearer token, sent as is (`Authorization: Bearer <token>`) on every request to
    /// the registry, without asking a token service for another. If the registry still
    /// answers 401 with a Bearer challenge, the token is sent to that challenge's token
    /// service as the credential for a new one.
    Bearer {
        /// The token.
        token: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`): exchanged at the token service by
    /// an OAuth2 `POST` (`grant_type=refresh_token`) for access tokens; a token service
    /// without OAuth2 (404 or 405 to the `POST`) gets it as the password of HTTP Basic.
    IdentityToken {
        /// The user name the token was issued to, if known (empty otherwise).
        #[serde(default)]
        username: String,
        /// The refresh token.
        token: String,
    },
}

impl RegistryAuth {
    /// Whether these are real credentials.
    pub fn is_some(&self) -> bool {
        !matches!(self, RegistryAuth::Anonymous)
    }
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            RegistryAuth::Bearer { .. } => f.write_str("Bearer(***)"),
            RegistryAuth::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, ***)")
            }
        }
    }
}

/// Decides which credentials go to which registry and repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthStore {
    /// Applies to every host without a more specific entry (`Registry::with_auth`).
    default: RegistryAuth,
    per_host: HashMap<String, RegistryAuth>,
    /// Credential files, first match wins (missing ones are skipped).
    files: Vec<PathBuf>,
}

impl AuthStore {
    pub(crate) fn new(
        default: RegistryAuth,
        per_host: HashMap<String, RegistryAuth>,
        files: Vec<PathBuf>,
    ) -> Self {
        AuthStore {
            default,
            per_host,
            files,
        }
    }

    /// Credentials for `repository` (`team/app`; empty for a mirror, whose credentials are
    /// per host) on `registry` (as in `Reference::registry`, e.g. `docker.io` or
    /// `localhost:5000`). Explicit per-host credentials win, then the registry-wide default,
    /// then the first credential file with an entry for it.
    pub(crate) fn for_registry(&self, registry: &str, repository: &str) -> RegistryAuth {
        if let Some(a) = self.per_host.get(registry) {
            return a.clone();
        }
        if self.default.is_some() {
            return self.default.clone();
        }
        for path in &self.files {
            let cfg = match DockerConfig::load(path) {
                Ok(cfg) => cfg,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    log::warn!("credential file {} skipped: {e}", path.display());
                    continue;
                }
            };
            if let Some(a) = cfg.credentials_for_repository(registry, repository) {
                return a;
            }
        }
        RegistryAuth::Anonymous
    }
}
