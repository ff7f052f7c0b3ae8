//! Bearer tokens: fetching one from a token service (the realm of a `Bearer` challenge) by
//! distribution's `GET` flow or, for an identity token, its OAuth2 `POST` flow, and caching it
//! per registry host and scope until shortly before it expires.

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

    /// Forget `rejected`, a token the registry refused, unless a newer one replaced it.
    pub(crate) fn remove_if(&self, host: &str, scope: &str, rejected: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let key = (host.to_owned(), scope.to_owned());
        if tokens.get(&key).is_some_and(|(t, _)| t == rejected) {
            tokens.remove(&key);
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

/// A token the token service issued.
pub(crate) struct Issued {
    /// The access token.
    pub token: String,
    /// Its lifetime in seconds (60 when the service did not say).
    pub expires_in: u64,
    /// A new OAuth2 refresh token, when the service sent one.
    pub refresh_token: Option<String>,
}

/// What to ask a token service for, and with which credentials.
pub(crate) struct TokenRequest<'a> {
    /// The challenge's `realm`.
    pub realm: &'a str,
    /// The challenge's `service`.
    pub service: Option<&'a str>,
    /// The scope wanted (`repository:team/app:pull`; empty for none, as when logging in).
    pub scope: &'a str,
    /// The credentials (an [`RegistryAuth::IdentityToken`] means OAuth2).
    pub auth: &'a RegistryAuth,
    /// The refresh token to present instead of the identity token's own (a newer one the
    /// service issued).
    pub refresh_token: Option<&'a str>,
    /// Whether credentials may go to a plain-HTTP realm (loopback and insecure hosts).
    pub creds_over_http: bool,
}

/// The `client_id` of OAuth2 requests.
const CLIENT_ID: &str = "msbimage";

/// Ask the token service at `realm` for a token: an OAuth2 `POST` with the refresh token for
/// an identity token (falling back to `GET` with Basic when the service answers 404 or 405,
/// as services without OAuth2 do), else a `GET` (with Basic credentials if there are any).
/// Credentials are sent only over HTTPS, or over plain HTTP where `creds_over_http` allows.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    req: &TokenRequest<'_>,
) -> Result<Issued, RegistryError> {
    let url = realm_url(req.realm)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let sends_credentials = matches!(
        req.auth,
        RegistryAuth::Basic { .. } | RegistryAuth::IdentityToken { .. }
    );
    if sends_credentials && url.scheme() != "https" && !req.creds_over_http {
        return Err(RegistryError::Auth {
            host,
            detail: "refusing to send credentials to a plain-HTTP token service".into(),
        });
    }
    if let RegistryAuth::IdentityToken { username, token } = req.auth {
        let refresh = req.refresh_token.unwrap_or(token);
        match post_oauth(http, &url, req, refresh).await {
            Err(RegistryError::Status { status, .. }) if status == 404 || status == 405 => {
                log::debug!("token service {host} has no OAuth2 (HTTP {status}); using GET");
                return get_token(http, url, req, Some((username, token))).await;
            }
            other => return other,
        }
    }
    let basic = match req.auth {
        RegistryAuth::Basic { username, password } => Some((username, password)),
        _ => None,
    };
    get_token(http, url, req, basic).await
}

fn realm_url(realm: &str) -> Result<reqwest::Url, RegistryError> {
    let url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
        url: realm.to_owned(),
        detail: format!("invalid token realm: {e}"),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(RegistryError::Protocol {
            url: realm.to_owned(),
            detail: "token realm must be an http(s) URL".into(),
        });
    }
    Ok(url)
}

/// distribution's token spec (`token.md`): `GET realm?service=…&scope=…`.
async fn get_token(
    http: &reqwest::Client,
    mut url: reqwest::Url,
    req: &TokenRequest<'_>,
    basic: Option<(&String, &String)>,
) -> Result<Issued, RegistryError> {
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = req.service {
            q.append_pair("service", s);
        }
        if !req.scope.is_empty() {
            q.append_pair("scope", req.scope);
        }
    }
    let mut builder = http.get(url.clone());
    if let Some((username, password)) = basic {
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        builder = builder.header(reqwest::header::AUTHORIZATION, format!("Basic {b64}"));
    }
    answer(builder, &url).await
}

/// distribution's OAuth2 spec (`oauth.md`): `POST realm` with a form body,
/// `grant_type=refresh_token`.
async fn post_oauth(
    http: &reqwest::Client,
    url: &reqwest::Url,
    req: &TokenRequest<'_>,
    refresh_token: &str,
) -> Result<Issued, RegistryError> {
    // The form encoding of a query string is that of a form body.
    let mut form =
        reqwest::Url::parse("http://form.invalid/").map_err(|e| RegistryError::Protocol {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    {
        let mut q = form.query_pairs_mut();
        q.append_pair("grant_type", "refresh_token");
        q.append_pair("refresh_token", refresh_token);
        if let Some(s) = req.service {
            q.append_pair("service", s);
        }
        if !req.scope.is_empty() {
            q.append_pair("scope", req.scope);
        }
        q.append_pair("client_id", CLIENT_ID);
    }
    let builder = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form.query().unwrap_or_default().to_owned());
    answer(builder, url).await
}

/// Send a token request and read its answer.
async fn answer(
    builder: reqwest::RequestBuilder,
    url: &reqwest::Url,
) -> Result<Issued, RegistryError> {
    // The URL may carry no secret (the form body does), but only the realm is named.
    let shown = url.as_str();
    let resp = builder.send().await.map_err(|e| network(shown, &e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| network(shown, &e))?;
    if status == 401 || status == 403 {
        return Err(RegistryError::Auth {
            host: url.host_str().unwrap_or_default().to_owned(),
            detail: format!(
                "token service answered HTTP {}: {}",
                status.as_u16(),
                crate::client::error::describe_body(&body)
            ),
        });
    }
    if !status.is_success() {
        return Err(RegistryError::Status {
            url: shown.to_owned(),
            status: status.as_u16(),
            detail: crate::client::error::describe_body(&body),
        });
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            url: shown.to_owned(),
            detail: format!("bad token response: {e}"),
        })?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Protocol {
            url: shown.to_owned(),
            detail: "token response has no token".into(),
        })?;
    Ok(Issued {
        token,
        expires_in: parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN),
        refresh_token: parsed.refresh_token.filter(|t| !t.is_empty()),
    })
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
        c.remove_if("h", "s", "other");
        assert_eq!(
            c.get("h", "s").as_deref(),
            Some("short"),
            "a newer token stays"
        );
        c.remove_if("h", "s", "short");
        assert_eq!(c.get("h", "s"), None);
    }
}
