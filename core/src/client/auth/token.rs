//! Bearer tokens: fetching one from a token service (the realm of a `Bearer` challenge) and
//! caching it per registry host and scope until it expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::auth::RegistryAuth;
use crate::client::error::{RegistryError, network};

/// Tokens younger than their expiry minus this margin are reused.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// Token services that omit `expires_in` mean 60 s (distribution's token spec).
const DEFAULT_EXPIRES_IN: u64 = 60;

#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl TokenCache {
    pub(crate) fn get(&self, host: &str, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let (token, until) = tokens.get(&(host.to_owned(), scope.to_owned()))?;
        (Instant::now() < *until).then(|| token.clone())
    }

    pub(crate) fn put(&self, host: &str, scope: &str, token: String, expires_in: u64) {
        let life = Duration::from_secs(expires_in).saturating_sub(EXPIRY_MARGIN);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.insert(
            (host.to_owned(), scope.to_owned()),
            (token, Instant::now() + life.max(Duration::from_secs(1))),
        );
    }

    /// Forget a token the registry rejected.
    pub(crate) fn remove(&self, host: &str, scope: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.remove(&(host.to_owned(), scope.to_owned()));
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Ask the token service at `realm` for a token. Credentials are sent only over HTTPS, or over
/// plain HTTP to a host the caller allows (`creds_over_http`, for loopback and insecure hosts).
pub(crate) async fn fetch(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    auth: &RegistryAuth,
    creds_over_http: bool,
) -> Result<(String, u64), RegistryError> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
        url: realm.to_owned(),
        detail: format!("invalid token realm: {e}"),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(RegistryError::Protocol {
            url: realm.to_owned(),
            detail: "token realm must be an http(s) URL".into(),
        });
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        q.append_pair("scope", scope);
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut req = http.get(url.clone());
    if let RegistryAuth::Basic { username, password } = auth {
        if url.scheme() == "https" || creds_over_http {
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {b64}"));
        } else {
            return Err(RegistryError::Auth {
                host,
                detail: "refusing to send credentials to a plain-HTTP token service".into(),
            });
        }
    }
    let resp = req.send().await.map_err(|e| network(url.as_str(), &e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| network(url.as_str(), &e))?;
    if status == 401 || status == 403 {
        return Err(RegistryError::Auth {
            host,
            detail: format!(
                "token service answered HTTP {}: {}",
                status.as_u16(),
                crate::client::error::describe_body(&body)
            ),
        });
    }
    if !status.is_success() {
        return Err(RegistryError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            detail: crate::client::error::describe_body(&body),
        });
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            url: url.to_string(),
            detail: format!("bad token response: {e}"),
        })?;
    let token = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Protocol {
            url: url.to_string(),
            detail: "token response has no token".into(),
        })?;
    Ok((token, parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_by_host_and_scope_and_expires() {
        let c = TokenCache::default();
        c.put("h", "repository:a:pull", "t1".into(), 3600);
        assert_eq!(c.get("h", "repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(c.get("h", "repository:b:pull"), None);
        assert_eq!(c.get("other", "repository:a:pull"), None);
        c.put("h", "s", "short".into(), 0);
        assert_eq!(
            c.get("h", "s").as_deref(),
            Some("short"),
            "a 1 s floor applies"
        );
        c.remove("h", "s");
        assert_eq!(c.get("h", "s"), None);
    }
}
