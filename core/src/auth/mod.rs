//! Credentials: what the caller gives us ([`RegistryAuth`]), per-host overrides, and the
//! Docker `config.json` (inline `auths` and credential helpers). Which credentials apply to
//! a host is decided here; the HTTP challenge dance itself lives in `client::auth`.

mod docker_config;

use std::collections::HashMap;
use std::path::PathBuf;

pub use docker_config::DockerConfig;

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
/// `{"type": "basic", "username": …, "password": …}` or `{"type": "bearer", "token": …}`.
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
    /// A ready bearer token, sent as is.
    Bearer {
        /// The token.
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
        }
    }
}

/// Decides which credentials go to which registry host.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthStore {
    /// Applies to every host without a more specific entry (`Registry::with_auth`).
    default: RegistryAuth,
    per_host: HashMap<String, RegistryAuth>,
    docker_config: Option<PathBuf>,
}

impl AuthStore {
    pub(crate) fn new(
        default: RegistryAuth,
        per_host: HashMap<String, RegistryAuth>,
        docker_config: Option<PathBuf>,
    ) -> Self {
        AuthStore {
            default,
            per_host,
            docker_config,
        }
    }

    /// Credentials for `registry` (as in `Reference::registry`, e.g. `docker.io` or
    /// `localhost:5000`). Explicit per-host credentials win, then the registry-wide default,
    /// then the Docker config file.
    pub(crate) fn for_registry(&self, registry: &str) -> RegistryAuth {
        if let Some(a) = self.per_host.get(registry) {
            return a.clone();
        }
        if self.default.is_some() {
            return self.default.clone();
        }
        if let Some(path) = &self.docker_config
            && let Ok(cfg) = DockerConfig::load(path)
            && let Some(a) = cfg.credentials_for(registry)
        {
            return a;
        }
        RegistryAuth::Anonymous
    }
}
