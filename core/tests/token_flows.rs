//! Token flows against a real docker-registry in token mode and the testkit's token server:
//! short-lived tokens renewed during a long pull (ahead of expiry when the service says how
//! long they live, on the 401 when it does not) without fetching finished layers again, a
//! registry refusing every token failing after one retry, and identity tokens (OAuth2
//! refresh tokens) exchanged by `POST`, with the `GET` fallback for token services without
//! OAuth2.

mod common;

use std::path::Path;

use base64::Engine;
use common::Env;
use microsandbox_image::{CredentialSource, ErrorKind, PullOptions, PullPolicy, RegistryAuth};
use msbimage_testkit::{
    Compression, Fault, FaultProxy, FrontOptions, Image, RegistryOptions, TokenFlow, TokenServer,
    standard_image,
};

const SERVICE: &str = "token-flows.test";
/// Where the slow blob stalls, then is cut.
const STALL_AT: u64 = 200_000;

fn always() -> PullOptions {
    PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    }
}

fn basic(u: &str, p: &str) -> RegistryAuth {
    RegistryAuth::Basic {
        username: u.into(),
        password: p.into(),
    }
}

/// A token registry with the standard image pushed as `fixtures/standard:gzip` by alice.
async fn token_registry(tokens: &TokenServer) -> (Env, Image) {
    let env = Env::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .push_as("alice", "pw");
    let image = standard_image(Compression::Gzip);
    env.push("fixtures/standard", "gzip", &image).await;
    (env, image)
}

/// A front that sends the biggest layer's first [`STALL_AT`] bytes, waits 3.5 s (longer than
/// the tests' tokens live), then cuts the connection, once; everything else passes.
async fn slow_front(env: &Env, image: &Image) -> (FaultProxy, String) {
    let big = image
        .layers
        .iter()
        .max_by_key(|l| l.blob.len())
        .expect("layers");
    assert!(big.blob.len() as u64 > 2 * STALL_AT, "the big layer is big");
    let proxy = FaultProxy::start_with(
        &env.registry.base_url(),
        Fault::StallThenReset {
            after_bytes: STALL_AT,
            millis: 3_500,
            times: 1,
        },
        FrontOptions::default(),
    )
    .await
    .expect("proxy");
    (proxy, big.digest.clone())
}

/// Every finished layer blob was served exactly once (200, whole); the slow one was cut once
/// and then resumed from its bytes.
#[track_caller]
fn assert_no_layer_fetched_twice(proxy: &FaultProxy, image: &Image, slow: &str) {
    let log = proxy.blob_log();
    for layer in &image.layers {
        let gets: Vec<_> = log.iter().filter(|b| b.digest == layer.digest).collect();
        let whole: Vec<_> = gets
            .iter()
            .filter(|b| b.status == 200 && b.range.is_none())
            .collect();
        assert_eq!(whole.len(), 1, "{}: {gets:?}", layer.digest);
        if layer.digest == slow {
            assert!(whole[0].reset, "{gets:?}");
            let resumed: Vec<_> = gets.iter().filter(|b| b.status == 206).collect();
            assert_eq!(resumed.len(), 1, "{gets:?}");
            assert_eq!(
                resumed[0].range.as_deref(),
                Some(format!("bytes={STALL_AT}-").as_str())
            );
            assert_eq!(resumed[0].bytes, layer.blob.len() as u64 - STALL_AT);
        } else {
            assert!(gets.iter().all(|b| b.status != 206), "{gets:?}");
            assert!(!whole[0].reset);
        }
    }
}

/// What a pull through [`slow_front`] with short-lived tokens left behind.
struct SlowPull {
    proxy: FaultProxy,
    /// The digest of the blob that stalled and was cut.
    slow: String,
}

/// Pull the standard image as alice through [`slow_front`], with tokens the registry refuses
/// once `secs` have passed; `advertise` says whether the token service tells the client so.
/// Checks that the pull succeeded, took more than one token (all granted), and fetched no
/// finished layer twice.
async fn slow_pull_with_tokens_of(secs: u64, advertise: bool) -> SlowPull {
    let tokens = TokenServer::start(SERVICE, &[("alice", "pw")], false)
        .await
        .unwrap();
    let (env, image) = token_registry(&tokens).await;
    tokens.set_expires_in(secs);
    tokens.set_strict_expiry(true);
    tokens.set_advertise_expiry(advertise);
    let (proxy, slow) = slow_front(&env, &image).await;
    let before = tokens.requests().len();
    let r = format!("{}/fixtures/standard:gzip", proxy.host())
        .parse()
        .unwrap();
    let res = env
        .client()
        .auth(basic("alice", "pw"))
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), image.layers.len());
    let reqs: Vec<_> = tokens.requests().into_iter().skip(before).collect();
    assert!(reqs.len() >= 2, "a second token: {reqs:?}");
    assert!(
        reqs.iter().all(|t| t.status == 200
            && t.flow == TokenFlow::Get
            && t.user.as_deref() == Some("alice")),
        "{reqs:?}"
    );
    assert_no_layer_fetched_twice(&proxy, &image, &slow);
    SlowPull { proxy, slow }
}

/// The token service does not say how long its tokens live (so the client assumes 60 s), but
/// the registry refuses them 1 to 2 s after they are issued: the resumed request of the slow
/// blob meets a 401, gets a new token and is retried alone.
#[tokio::test]
async fn a_token_expiring_mid_pull_is_renewed_on_401() {
    let pull = slow_pull_with_tokens_of(2, false).await;
    let log = pull.proxy.blob_log();
    let resume = format!("bytes={STALL_AT}-");
    assert!(
        log.iter().any(|b| b.status == 401
            && b.digest == pull.slow
            && b.range.as_deref() == Some(resume.as_str())),
        "the resume met the expired token: {log:?}"
    );
}

/// The token service says its tokens live 3 s (the registry refuses them 2 to 3 s after they
/// are issued): the client renews them before they expire, so the registry never refuses
/// one, and the slow blob still resumes from its bytes.
#[tokio::test]
async fn short_tokens_are_renewed_ahead_of_expiry() {
    let pull = slow_pull_with_tokens_of(3, true).await;
    let log = pull.proxy.blob_log();
    assert!(log.iter().all(|b| b.status != 401), "{log:?}");
}

/// A registry that refuses every token (they are expired when issued): the pull fails with
/// an auth error after one new token per request, instead of asking forever.
#[tokio::test]
async fn refused_tokens_are_retried_once() {
    let tokens = TokenServer::start(SERVICE, &[("alice", "pw")], false)
        .await
        .unwrap();
    let (env, _image) = token_registry(&tokens).await;
    tokens.set_expires_in(0);
    tokens.set_strict_expiry(true);
    let before = tokens.requests().len();
    let r = env.reference("fixtures/standard:gzip");
    let err = env
        .client()
        .auth(basic("alice", "pw"))
        .max_retries(1)
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let asked = tokens.requests().len() - before;
    assert_eq!(asked, 1, "one token for the one refused manifest request");
}

/// An `auths` file with one entry for `host`.
fn auth_file(path: &Path, host: &str, entry: serde_json::Value) {
    std::fs::write(
        path,
        serde_json::json!({ "auths": { host: entry } }).to_string(),
    )
    .unwrap();
}

/// An `identitytoken` is exchanged by OAuth2 `POST` (client id `msbimage`); the refresh token
/// the service sends back is the one presented next time.
#[tokio::test]
async fn identity_tokens_use_oauth2_and_the_newest_refresh_token() {
    let tokens = TokenServer::start(SERVICE, &[("alice", "pw")], false)
        .await
        .unwrap();
    let (env, image) = token_registry(&tokens).await;
    env.push("team/other", "v1", &image).await;
    tokens.add_refresh_token("rt-initial-5c1e", "alice");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    auth_file(
        &file,
        &env.host(),
        serde_json::json!({"identitytoken": "rt-initial-5c1e"}),
    );
    let before = tokens.requests().len();
    let registry = env
        .client()
        .credential_sources([CredentialSource::Path(file)])
        .build()
        .unwrap();
    for repo in ["fixtures/standard:gzip", "team/other:v1"] {
        registry
            .pull(&env.reference(repo), &always())
            .await
            .unwrap();
    }
    let reqs: Vec<_> = tokens.requests().into_iter().skip(before).collect();
    assert_eq!(reqs.len(), 2, "one token per repository: {reqs:?}");
    for t in &reqs {
        assert_eq!(t.flow, TokenFlow::OAuthRefresh, "{t:?}");
        assert_eq!(t.method, "POST");
        assert_eq!(t.client_id.as_deref(), Some("msbimage"));
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.status, 200);
        assert_eq!(t.service.as_deref(), Some(SERVICE));
    }
    assert_eq!(reqs[0].refresh_token.as_deref(), Some("rt-initial-5c1e"));
    let second = reqs[1].refresh_token.as_deref().unwrap_or_default();
    assert!(
        second.starts_with("msbimage-testkit-refresh-"),
        "the rotated token: {second}"
    );
    assert_eq!(reqs[1].scopes, ["repository:team/other:pull"]);

    // A refresh token the service does not know is an auth error that does not show it.
    let file = dir.path().join("bad.json");
    auth_file(
        &file,
        &env.host(),
        serde_json::json!({"identitytoken": "rt-unknown-77d2"}),
    );
    let err = env
        .client()
        .credential_sources([CredentialSource::Path(file)])
        .build()
        .unwrap()
        .pull(&env.reference("fixtures/standard:gzip"), &always())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!format!("{err} {err:?}").contains("rt-unknown-77d2"));
}

/// A token service without OAuth2 answers the `POST` with 404: the identity token then goes
/// by `GET` as the password of HTTP Basic, with the entry's user name.
#[tokio::test]
async fn identity_tokens_fall_back_to_get_without_oauth2() {
    let tokens = TokenServer::start(SERVICE, &[("alice", "pw"), ("bob", "idt-4b9f")], false)
        .await
        .unwrap();
    let (env, _image) = token_registry(&tokens).await;
    tokens.set_oauth(false);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.json");
    let user_only = base64::engine::general_purpose::STANDARD.encode("bob:");
    auth_file(
        &file,
        &env.host(),
        serde_json::json!({"auth": user_only, "identitytoken": "idt-4b9f"}),
    );
    let before = tokens.requests().len();
    env.client()
        .credential_sources([CredentialSource::Path(file)])
        .build()
        .unwrap()
        .pull(&env.reference("fixtures/standard:gzip"), &always())
        .await
        .unwrap();
    let reqs: Vec<_> = tokens.requests().into_iter().skip(before).collect();
    let flows: Vec<_> = reqs.iter().map(|t| (t.flow, t.status)).collect();
    assert_eq!(
        flows,
        [(TokenFlow::OAuthRefresh, 404), (TokenFlow::Get, 200)],
        "{reqs:?}"
    );
    assert_eq!(reqs[1].user.as_deref(), Some("bob"));
}
