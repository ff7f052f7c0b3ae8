//! Authentication and transport against real registries: htpasswd Basic, docker.io-style
//! token auth (anonymous and with credentials, tokens cached per scope), TLS with a CA made
//! at test time, insecure hosts, and cross-host blob redirects that must not carry
//! credentials.

mod common;

use std::path::Path;

use common::Env;
use microsandbox_image::{
    ErrorKind, GlobalCache, Platform, PullOptions, PullPolicy, PullResult, Reference, Registry,
    RegistryAuth, RegistryBuilder,
};
use msbimage_testkit::{
    Compression, FrontOptions, ImageBuilder, LayerBuilder, RedirectFront, RegistryOptions,
    TokenServer,
};

fn small_image() -> msbimage_testkit::Image {
    ImageBuilder::new("linux", "amd64")
        .layer(
            LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/motd", "private image\n", 0o644)
                .build(Compression::Gzip),
        )
        .layer(
            LayerBuilder::new()
                .file(
                    "big",
                    msbimage_testkit::fixtures::pseudo_random(300_000, 9),
                    0o644,
                )
                .build(Compression::Zstd),
        )
        .build()
}

fn basic(user: &str, pass: &str) -> RegistryAuth {
    RegistryAuth::Basic {
        username: user.into(),
        password: pass.into(),
    }
}

/// The shared test client, retrying once (the failures here are not transient).
fn client(cache: &Path) -> RegistryBuilder {
    common::client_in(cache).max_retries(1)
}

/// Build `client` and pull `r` with [`always`].
async fn pull_always(
    client: RegistryBuilder,
    r: &Reference,
) -> microsandbox_image::Result<PullResult> {
    client.build().unwrap().pull(r, &always()).await
}

fn always() -> PullOptions {
    PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    }
}

#[tokio::test]
async fn basic_auth_registry_needs_the_right_credentials() {
    let env = Env::start(RegistryOptions::plain().basic("alice", "s3cret")).await;
    env.push("private/app", "v1", &small_image()).await;
    let r = env.reference("private/app:v1");
    let cache = env.cache_dir.path();

    let err = pull_always(client(cache), &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");

    let wrong = client(cache).auth(basic("alice", "nope")).build().unwrap();
    let err = wrong.pull(&r, &always()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    let seed_style = Registry::with_auth(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache).unwrap(),
        basic("alice", "s3cret"),
    )
    .unwrap();
    let res = seed_style.pull(&r, &always()).await.unwrap();
    assert_eq!(
        std::fs::read(res.layers[0].join("etc/motd")).unwrap(),
        b"private image\n"
    );

    // Per-host credentials apply only to their host.
    let cache2 = tempfile::tempdir().unwrap();
    let per_host = client(cache2.path())
        .auth_for(env.host(), basic("alice", "s3cret"))
        .build()
        .unwrap();
    per_host.pull(&r, &always()).await.unwrap();
}

/// htpasswd Basic auth over TLS (the registry's own certificate, from a CA made here): the
/// credentials go only over the verified connection, and wrong ones are refused.
#[tokio::test]
async fn htpasswd_over_tls() {
    let env = Env::start(RegistryOptions::plain().tls().basic("erin", "tls-pw")).await;
    env.push("private/app", "v1", &small_image()).await;
    let r = env.reference("private/app:v1");
    let ca = env.registry.ca_pem_path().unwrap().to_owned();
    let cache = env.cache_dir.path();

    let err = pull_always(client(cache).ca_file(&ca), &r)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let wrong = client(cache).ca_file(&ca).auth(basic("erin", "nope"));
    let err = pull_always(wrong, &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!format!("{err} {err:?}").contains("nope"), "{err:?}");

    let right = client(cache).ca_file(&ca).auth(basic("erin", "tls-pw"));
    let res = pull_always(right, &r).await.unwrap();
    assert_eq!(
        std::fs::read(res.layers[0].join("etc/motd")).unwrap(),
        b"private image\n"
    );
}

#[tokio::test]
async fn docker_config_credentials_are_used() {
    let env = Env::start(RegistryOptions::plain().basic("bob", "pw")).await;
    env.push("cfg/app", "v1", &small_image()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let b64 = "Ym9iOnB3"; // bob:pw
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, env.host()),
    )
    .unwrap();
    let r = env.reference("cfg/app:v1");
    let res = client(env.cache_dir.path())
        .docker_config(&cfg)
        .build()
        .unwrap()
        .pull(&r, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);
}

#[tokio::test]
async fn anonymous_token_flow_and_token_cache() {
    let tokens = TokenServer::start("msb-test-registry", &[("pusher", "pw")], true)
        .await
        .unwrap();
    let env = Env::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .push_as("pusher", "pw");
    env.push("library/tokened", "latest", &small_image()).await;
    let before = tokens.requests().len();
    let registry = client(env.cache_dir.path()).build().unwrap();
    let r = env.reference("library/tokened:latest");
    registry.pull(&r, &always()).await.unwrap();
    registry.pull(&r, &always()).await.unwrap();
    let reqs: Vec<_> = tokens.requests().into_iter().skip(before).collect();
    assert_eq!(
        reqs.len(),
        1,
        "one token per scope, reused until expiry: {reqs:?}"
    );
    assert_eq!(
        reqs[0].scopes,
        vec!["repository:library/tokened:pull".to_string()]
    );
    assert_eq!(reqs[0].service.as_deref(), Some("msb-test-registry"));
    assert!(reqs[0].user.is_none(), "anonymous");
}

#[tokio::test]
async fn private_token_registry_needs_credentials() {
    let tokens = TokenServer::start("private-registry", &[("carol", "pw")], false)
        .await
        .unwrap();
    let env = Env::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .push_as("carol", "pw");
    env.push("team/app", "v1", &small_image()).await;
    let r = env.reference("team/app:v1");
    let cache = env.cache_dir.path();
    let err = pull_always(client(cache), &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let res = pull_always(client(cache).auth(basic("carol", "pw")), &r)
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);
    let last = tokens.requests().pop().unwrap();
    assert_eq!(last.user.as_deref(), Some("carol"));
}

#[tokio::test]
async fn tls_registry_with_test_ca() {
    let env = Env::start(RegistryOptions::plain().tls()).await;
    let ca = env.registry.ca_pem_path().unwrap().to_owned();
    env.push("secure/app", "v1", &small_image()).await;
    let r = env.reference("secure/app:v1");

    // Without the CA the certificate is not trusted (and the port does not speak plain HTTP).
    let cache = env.cache_dir.path();
    let err = pull_always(client(cache), &r).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "the TLS failure is reported: {err}"
    );

    let res = pull_always(client(cache).ca_file(&ca), &r).await.unwrap();
    assert_eq!(res.layers.len(), 2);

    // An insecure host accepts the unknown certificate.
    let cache = tempfile::tempdir().unwrap();
    let res = pull_always(client(cache.path()).insecure_registry(env.host()), &r)
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);

    let err = client(cache.path())
        .ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn credentials_never_follow_a_cross_host_redirect() {
    let env = Env::start(RegistryOptions::plain().basic("dave", "pw")).await;
    env.push("redir/app", "v1", &small_image()).await;
    let front = RedirectFront::start_with(
        &env.registry.base_url(),
        FrontOptions::default().credentials("dave", "pw"),
    )
    .await
    .unwrap();
    let r = format!("{}/redir/app:v1", front.host()).parse().unwrap();
    let res = pull_always(client(env.cache_dir.path()).auth(basic("dave", "pw")), &r)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(res.layers[0].join("etc/motd")).unwrap(),
        b"private image\n"
    );
    let blob_reqs = front.blob_host_requests();
    assert!(
        blob_reqs.len() >= 3,
        "config and both layers via the blob host: {blob_reqs:?}"
    );
    for req in &blob_reqs {
        assert!(
            req.header("authorization").is_none(),
            "credentials leaked to the blob host: {req:?}"
        );
    }
    // The registry's own origin did get them.
    assert!(
        front
            .requests()
            .iter()
            .any(|q| q.header("authorization").is_some())
    );
}
