//! Client-side registry authentication for the harness's own HTTP clients (the pusher and
//! the redirect front's blob host): parsing `WWW-Authenticate` challenges, answering Basic
//! ones with credentials and Bearer ones with a token fetched from the realm, and caching
//! the resulting `Authorization` value per key (e.g. per repository).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use crate::http1::percent_encode;

/// Why authenticating failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The HTTP exchange itself failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The token endpoint refused or answered nonsense.
    #[error("token: {0}")]
    Token(String),
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `basic` or `bearer` (lower-cased).
    pub scheme: String,
    /// The auth-params, keys lower-cased.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses one challenge, e.g. `Bearer realm="…",service="…",scope="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.peek() {
                    if *c == ',' {
                        break;
                    }
                    value.push(*c);
                    chars.next();
                }
            }
            params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Some(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    /// The value of auth-param `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Answers registry challenges with fixed credentials (or anonymously) and caches the
/// resulting `Authorization` header per key.
pub(crate) struct Authenticator {
    client: reqwest::Client,
    credentials: Option<(String, String)>,
    cache: Mutex<HashMap<String, String>>,
}

impl Authenticator {
    pub fn new(client: reqwest::Client, credentials: Option<(String, String)>) -> Self {
        Authenticator {
            client,
            credentials,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client requests are made with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes; on 401 answers the challenge once (with `scope`
    /// replacing a Bearer challenge's scope when given) and sends it again. Responses other
    /// than a first 401 are returned as they are, including a second 401.
    pub async fn send(
        &self,
        key: &str,
        scope: Option<&str>,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AuthError> {
        let cached = self.cache.lock().unwrap().get(key).cloned();
        let mut req = build();
        if let Some(h) = &cached {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(challenge) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
        else {
            return Ok(resp);
        };
        let Some(answer) = self.answer(&challenge, scope).await? else {
            return Ok(resp);
        };
        self.cache
            .lock()
            .unwrap()
            .insert(key.to_string(), answer.clone());
        Ok(build().header(AUTHORIZATION, answer).send().await?)
    }

    /// The `Authorization` value answering `challenge`, or `None` if it can't be answered.
    async fn answer(
        &self,
        challenge: &Challenge,
        scope: Option<&str>,
    ) -> Result<Option<String>, AuthError> {
        match challenge.scheme.as_str() {
            "basic" => Ok(self
                .credentials
                .as_ref()
                .map(|(u, p)| format!("Basic {}", B64.encode(format!("{u}:{p}"))))),
            "bearer" => {
                let Some(realm) = challenge.param("realm") else {
                    return Ok(None);
                };
                let mut query = Vec::new();
                if let Some(service) = challenge.param("service") {
                    query.push(format!("service={}", percent_encode(service)));
                }
                if let Some(scope) = scope.or(challenge.param("scope")) {
                    query.push(format!("scope={}", percent_encode(scope)));
                }
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}{}", query.join("&"));
                let mut req = self.client.get(&url);
                if let Some((u, p)) = &self.credentials {
                    req = req.basic_auth(u, Some(p));
                }
                let resp = req.send().await?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(AuthError::Token(format!("{url} answered {status}")));
                }
                let bytes = resp.bytes().await?;
                let body: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| AuthError::Token(format!("{url}: {e}")))?;
                let token = body
                    .get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| AuthError::Token(format!("no token in {body}")))?;
                Ok(Some(format!("Bearer {token}")))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(c.param("service"), Some("reg"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn parses_basic_challenge() {
        let c = Challenge::parse(r#"Basic realm="msbimage-testkit""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("msbimage-testkit"));
    }
}
