//! Authentication and transport against real registries: htpasswd Basic, docker.io-style
//! token auth (anonymous and with credentials, tokens cached per scope), TLS with a CA made
//! at test time, insecure hosts, and cross-host blob redirects that must not carry
//! credentials.

mod common;

use microsandbox_image::{
    ErrorKind, GlobalCache, Platform, PullOptions, PullPolicy, Registry, RegistryAuth,
};
use msbimage_testkit::{
    Compression, FrontOptions, ImageBuilder, LayerBuilder, Pusher, RedirectFront,
    Registry as TestRegistry, RegistryOptions, TokenServer,
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

fn client(cache: &tempfile::TempDir) -> microsandbox_image::RegistryBuilder {
    Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .durable(false)
    .max_retries(1)
}

fn always() -> PullOptions {
    PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    }
}

#[tokio::test]
async fn basic_auth_registry_needs_the_right_credentials() {
    let reg = TestRegistry::start(RegistryOptions::plain().basic("alice", "s3cret"))
        .await
        .unwrap();
    Pusher::new(&reg.base_url())
        .with_basic("alice", "s3cret")
        .push_image("private/app", "v1", &small_image())
        .await
        .unwrap();
    let r = format!("{}/private/app:v1", reg.host()).parse().unwrap();
    let cache = tempfile::tempdir().unwrap();

    let err = client(&cache)
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");

    let wrong = client(&cache).auth(basic("alice", "nope")).build().unwrap();
    let err = wrong.pull(&r, &always()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    let seed_style = Registry::with_auth(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
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
    let per_host = client(&cache2)
        .auth_for(reg.host(), basic("alice", "s3cret"))
        .build()
        .unwrap();
    per_host.pull(&r, &always()).await.unwrap();
}

#[tokio::test]
async fn docker_config_credentials_are_used() {
    let reg = TestRegistry::start(RegistryOptions::plain().basic("bob", "pw"))
        .await
        .unwrap();
    Pusher::new(&reg.base_url())
        .with_basic("bob", "pw")
        .push_image("cfg/app", "v1", &small_image())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let b64 = "Ym9iOnB3"; // bob:pw
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let r = format!("{}/cfg/app:v1", reg.host()).parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let res = client(&cache)
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
    let reg = TestRegistry::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .unwrap();
    Pusher::new(&reg.base_url())
        .with_basic("pusher", "pw")
        .push_image("library/tokened", "latest", &small_image())
        .await
        .unwrap();
    let before = tokens.requests().len();
    let cache = tempfile::tempdir().unwrap();
    let registry = client(&cache).build().unwrap();
    let r = format!("{}/library/tokened:latest", reg.host())
        .parse()
        .unwrap();
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
    let reg = TestRegistry::start(RegistryOptions::plain().token(tokens.auth_config()))
        .await
        .unwrap();
    Pusher::new(&reg.base_url())
        .with_basic("carol", "pw")
        .push_image("team/app", "v1", &small_image())
        .await
        .unwrap();
    let r = format!("{}/team/app:v1", reg.host()).parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = client(&cache)
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let res = client(&cache)
        .auth(basic("carol", "pw"))
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);
    let last = tokens.requests().pop().unwrap();
    assert_eq!(last.user.as_deref(), Some("carol"));
}

#[tokio::test]
async fn tls_registry_with_test_ca() {
    let reg = TestRegistry::start(RegistryOptions::plain().tls())
        .await
        .unwrap();
    let ca = reg.ca_pem_path().unwrap().to_owned();
    Pusher::new(&reg.base_url())
        .with_ca(&ca)
        .push_image("secure/app", "v1", &small_image())
        .await
        .unwrap();
    let r = format!("{}/secure/app:v1", reg.host()).parse().unwrap();

    // Without the CA the certificate is not trusted (and the port does not speak plain HTTP).
    let cache = tempfile::tempdir().unwrap();
    let err = client(&cache)
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "the TLS failure is reported: {err}"
    );

    let res = client(&cache)
        .ca_file(&ca)
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);

    // An insecure host accepts the unknown certificate.
    let cache = tempfile::tempdir().unwrap();
    let res = client(&cache)
        .insecure_registry(reg.host())
        .build()
        .unwrap()
        .pull(&r, &always())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 2);

    let err = client(&cache)
        .ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn credentials_never_follow_a_cross_host_redirect() {
    let reg = TestRegistry::start(RegistryOptions::plain().basic("dave", "pw"))
        .await
        .unwrap();
    Pusher::new(&reg.base_url())
        .with_basic("dave", "pw")
        .push_image("redir/app", "v1", &small_image())
        .await
        .unwrap();
    let front = RedirectFront::start_with(
        &reg.base_url(),
        FrontOptions::default().credentials("dave", "pw"),
    )
    .await
    .unwrap();
    let r = format!("{}/redir/app:v1", front.host()).parse().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let res = client(&cache)
        .auth(basic("dave", "pw"))
        .build()
        .unwrap()
        .pull(&r, &always())
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
