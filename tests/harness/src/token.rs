//! A docker.io-style token server: `GET /token?service=..&scope=..` (and the OAuth2
//! `POST /token` password and refresh-token grants of distribution's `oauth.md`) answers with
//! an ES256 JWT that docker-registry's `token` auth accepts. It owns the user table, the
//! refresh tokens it issued or was given, the grant rules (anonymous pull only when allowed,
//! push only for authenticated users), the JWT signing key and certificate, token lifetimes
//! (optionally enforced strictly, past the registry's 60 s leeway), and the log of requests
//! that tests assert on (which flow each used, one token request per scope).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::net::TcpStream;

use crate::http1::{self, Request, Server};
use crate::tls::SigningCert;

/// The issuer (`iss`) of every token this server signs.
pub const TOKEN_ISSUER: &str = "msbimage-testkit-token-server";

/// What a registry needs to verify this server's tokens (`auth: token:` in its config).
#[derive(Debug, Clone)]
pub struct TokenAuthConfig {
    /// Where clients fetch tokens, e.g. `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The service name: the tokens' audience.
    pub service: String,
    /// The tokens' issuer.
    pub issuer: String,
    /// PEM of the certificate whose key signs the tokens (the registry's `rootcertbundle`).
    pub root_cert_pem: String,
}

/// How a token request asked for its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFlow {
    /// `GET` with query parameters (and Basic credentials, if any).
    Get,
    /// OAuth2 `POST` with `grant_type=password`.
    OAuthPassword,
    /// OAuth2 `POST` with `grant_type=refresh_token`.
    OAuthRefresh,
    /// A `POST` with another or no `grant_type` (refused with 400).
    OAuthOther,
}

/// One request the token server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The flow the request used.
    pub flow: TokenFlow,
    /// The OAuth2 `client_id`, if sent.
    pub client_id: Option<String>,
    /// The refresh token presented (`grant_type=refresh_token`), valid or not.
    pub refresh_token: Option<String>,
    /// The `service` parameter, if sent.
    pub service: Option<String>,
    /// Every requested scope, in order (`scope` may repeat, or be space-separated).
    pub scopes: Vec<String>,
    /// Whether the request carried an `Authorization` header (or POST credentials).
    pub authorization_present: bool,
    /// The user whose credentials were presented, valid or not.
    pub user: Option<String>,
    /// The status the server answered with (200, 400, 401 or 404).
    pub status: u16,
}

struct State {
    service: String,
    users: Vec<(String, String)>,
    anonymous_pull: bool,
    expires_in: AtomicU64,
    /// Whether `expires_in` is in the answer (else clients assume 60 s).
    advertise_expiry: AtomicBool,
    /// Whether `exp` is backdated by the registry's leeway, so the registry refuses a token
    /// `expires_in` seconds after it was issued.
    strict_expiry: AtomicBool,
    /// Whether `POST` (OAuth2) is served; else it gets 404 as from servers without OAuth2.
    oauth: AtomicBool,
    /// Refresh token → user.
    refresh_tokens: Mutex<Vec<(String, String)>>,
    signer: SigningCert,
    requests: Mutex<Vec<TokenRequest>>,
    next_jti: AtomicU64,
}

/// A running token server on `127.0.0.1`; stops when dropped.
pub struct TokenServer {
    state: Arc<State>,
    server: Server,
}

impl TokenServer {
    /// Starts a token server for `service` with Basic-auth `users` (user, password).
    /// Anonymous requests get pull-only tokens when `anonymous_pull`, else 401.
    pub async fn start(
        service: &str,
        users: &[(&str, &str)],
        anonymous_pull: bool,
    ) -> io::Result<TokenServer> {
        let state = Arc::new(State {
            service: service.to_string(),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            anonymous_pull,
            expires_in: AtomicU64::new(300),
            advertise_expiry: AtomicBool::new(true),
            strict_expiry: AtomicBool::new(false),
            oauth: AtomicBool::new(true),
            refresh_tokens: Mutex::new(Vec::new()),
            signer: SigningCert::generate()?,
            requests: Mutex::new(Vec::new()),
            next_jti: AtomicU64::new(1),
        });
        let handler_state = Arc::clone(&state);
        let server = http1::serve(move |req, stream| {
            let state = Arc::clone(&handler_state);
            async move { handle(&state, req, stream).await }
        })
        .await?;
        Ok(TokenServer { state, server })
    }

    /// The token endpoint URL, `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The `auth: token:` settings a registry needs to accept these tokens.
    pub fn auth_config(&self) -> TokenAuthConfig {
        TokenAuthConfig {
            realm: self.realm(),
            service: self.state.service.clone(),
            issuer: TOKEN_ISSUER.to_string(),
            root_cert_pem: self.state.signer.cert_pem.clone(),
        }
    }

    /// Sets the lifetime (`expires_in`, and the JWT's `exp`) of tokens issued from now on.
    /// Note that docker-registry allows 60 s of clock leeway past `exp`: see
    /// [`TokenServer::set_strict_expiry`].
    pub fn set_expires_in(&self, secs: u64) {
        self.state.expires_in.store(secs, Ordering::SeqCst);
    }

    /// Backdate the JWT's `exp` by docker-registry's 60 s leeway, so that the registry really
    /// refuses a token once `expires_in` seconds have passed (`exp` counts whole seconds: the
    /// refusals start up to 1 s earlier; with 0, at once).
    pub fn set_strict_expiry(&self, strict: bool) {
        self.state.strict_expiry.store(strict, Ordering::SeqCst);
    }

    /// Whether answers carry `expires_in` (default yes); without it clients assume 60 s, so
    /// a shorter real lifetime surprises them with a 401.
    pub fn set_advertise_expiry(&self, advertise: bool) {
        self.state
            .advertise_expiry
            .store(advertise, Ordering::SeqCst);
    }

    /// Whether OAuth2 `POST` requests are served (default yes); when not, they get 404, as
    /// from token servers that only implement `GET`.
    pub fn set_oauth(&self, enabled: bool) {
        self.state.oauth.store(enabled, Ordering::SeqCst);
    }

    /// Accept `token` as an OAuth2 refresh token of `user` (as one issued earlier).
    pub fn add_refresh_token(&self, token: &str, user: &str) {
        self.state
            .refresh_tokens
            .lock()
            .unwrap()
            .push((token.to_string(), user.to_string()));
    }
}

/// Parameters of a token request, whichever way they came.
struct Params {
    flow: TokenFlow,
    service: Option<String>,
    scopes: Vec<String>,
    client_id: Option<String>,
    /// Credentials presented: `Some((user, password))`.
    credentials: Option<(String, String)>,
    refresh_token: Option<String>,
    /// `access_type=offline`: the client asks for a refresh token.
    offline: bool,
    authorization_present: bool,
}

fn params_of(req: &Request) -> Params {
    let mut pairs = http1::parse_query(req.query());
    if req.method == "POST" {
        pairs.extend(http1::parse_query(&String::from_utf8_lossy(&req.body)));
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let scopes = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let flow = match (req.method.as_str(), get("grant_type").as_deref()) {
        ("GET", _) => TokenFlow::Get,
        (_, Some("password")) => TokenFlow::OAuthPassword,
        (_, Some("refresh_token")) => TokenFlow::OAuthRefresh,
        _ => TokenFlow::OAuthOther,
    };
    let mut credentials = req.header("authorization").and_then(parse_basic);
    let authorization_present = req.header("authorization").is_some();
    if credentials.is_none() && flow == TokenFlow::OAuthPassword {
        credentials = Some((
            get("username").unwrap_or_default(),
            get("password").unwrap_or_default(),
        ));
    }
    let refresh_token = (flow == TokenFlow::OAuthRefresh)
        .then(|| get("refresh_token"))
        .flatten();
    Params {
        flow,
        service: get("service"),
        scopes,
        client_id: get("client_id"),
        authorization_present: authorization_present
            || credentials.is_some()
            || refresh_token.is_some(),
        credentials,
        refresh_token,
        offline: get("access_type").as_deref() == Some("offline"),
    }
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Who a request authenticates as: `Ok(Some(user))`, `Ok(None)` (anonymous), or the refusal
/// status (400 for a malformed OAuth2 request, 401 for bad credentials).
fn identify(state: &State, params: &Params) -> Result<Option<String>, u16> {
    match params.flow {
        TokenFlow::OAuthOther => Err(400),
        TokenFlow::OAuthRefresh => {
            let token = params.refresh_token.as_deref().ok_or(400u16)?;
            let tokens = state.refresh_tokens.lock().unwrap();
            let user = tokens.iter().find(|(t, _)| t == token).map(|(_, u)| u);
            user.cloned().map(Some).ok_or(401)
        }
        TokenFlow::Get | TokenFlow::OAuthPassword => match &params.credentials {
            Some((u, p)) if state.users.iter().any(|(uu, pp)| uu == u && pp == p) => {
                Ok(Some(u.clone()))
            }
            Some(_) => Err(401),
            None if state.anonymous_pull => Ok(None),
            None => Err(401),
        },
    }
}

async fn handle(state: &State, req: Request, mut stream: TcpStream) -> io::Result<()> {
    if req.path() != "/token" || !(req.method == "GET" || req.method == "POST") {
        return http1::write_simple(&mut stream, 404, &[], b"not found").await;
    }
    let params = params_of(&req);
    let oauth_off = req.method == "POST" && !state.oauth.load(Ordering::SeqCst);
    let identity = if oauth_off {
        Err(404)
    } else {
        identify(state, &params)
    };
    let presented_user = match params.flow {
        TokenFlow::Get | TokenFlow::OAuthPassword => {
            params.credentials.as_ref().map(|(u, _)| u.clone())
        }
        _ => identity.clone().ok().flatten(),
    };
    state.requests.lock().unwrap().push(TokenRequest {
        method: req.method.clone(),
        flow: params.flow,
        client_id: params.client_id.clone(),
        refresh_token: params.refresh_token.clone(),
        service: params.service.clone(),
        scopes: params.scopes.clone(),
        authorization_present: params.authorization_present,
        user: presented_user,
        status: identity.as_ref().map_or_else(|s| *s, |_| 200),
    });
    let user = match identity {
        Ok(user) => user,
        Err(404) => return http1::write_simple(&mut stream, 404, &[], b"not found").await,
        Err(status) => {
            let challenge = (
                "WWW-Authenticate".to_string(),
                "Basic realm=\"token\"".to_string(),
            );
            let body =
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]});
            return http1::write_json(&mut stream, status, &[challenge], &body).await;
        }
    };
    let authenticated = user.is_some();
    let access: Vec<serde_json::Value> = params
        .scopes
        .iter()
        .filter_map(|scope| grant(scope, authenticated))
        .collect();
    let now = unix_now();
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    // docker-registry accepts a token until 60 s past its `exp`.
    let exp = if state.strict_expiry.load(Ordering::SeqCst) {
        (now + expires_in).saturating_sub(60)
    } else {
        now + expires_in
    };
    let jti = state.next_jti.fetch_add(1, Ordering::SeqCst);
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": params.service.clone().unwrap_or_else(|| state.service.clone()),
        "exp": exp,
        "nbf": now.saturating_sub(1),
        "iat": now,
        "jti": format!("msbimage-testkit-{jti}"),
        "access": access,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    header.x5c = Some(vec![B64.encode(&state.signer.cert_der)]);
    let key = EncodingKey::from_ec_der(&state.signer.key_pkcs8_der);
    let token = jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| io::Error::other(format!("jwt: {e}")))?;
    let mut body = json!({
        "token": token,
        "access_token": token,
        "issued_at": rfc3339(now),
    });
    if state.advertise_expiry.load(Ordering::SeqCst) {
        body["expires_in"] = json!(expires_in);
    }
    // OAuth2: a refresh grant gets a new refresh token (the old one stays valid), as does a
    // password grant asking for offline access.
    let refresh = params.flow == TokenFlow::OAuthRefresh
        || (params.flow == TokenFlow::OAuthPassword && params.offline);
    if let (true, Some(user)) = (refresh, &user) {
        let new = format!("msbimage-testkit-refresh-{jti}");
        state
            .refresh_tokens
            .lock()
            .unwrap()
            .push((new.clone(), user.clone()));
        body["refresh_token"] = json!(new);
    }
    http1::write_json(&mut stream, 200, &[], &body).await
}

/// The access entry granted for one `type:name:actions` scope, if any action survives.
fn grant(scope: &str, authenticated: bool) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let allowed: Vec<&str> = actions
        .split(',')
        .filter(|a| match *a {
            "pull" => true,
            "push" | "delete" | "*" => authenticated,
            _ => false,
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(json!({"type": kind, "name": name, "actions": allowed}))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats Unix seconds as RFC 3339 UTC, e.g. `2024-01-02T03:04:05Z`.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn grants_follow_authentication() {
        assert_eq!(
            grant("repository:a/b:pull,push", false),
            Some(json!({"type": "repository", "name": "a/b", "actions": ["pull"]}))
        );
        assert_eq!(
            grant("repository:a/b:pull,push", true),
            Some(json!({"type": "repository", "name": "a/b", "actions": ["pull", "push"]}))
        );
        assert_eq!(grant("repository:a:push", false), None);
    }
}
