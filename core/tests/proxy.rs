//! Pulling through an HTTP proxy (the harness's `ConnectProxy`, which counts its tunnels and
//! forwarded requests): HTTPS registries through `CONNECT`, plain-HTTP ones through
//! absolute-form requests, `noProxy` going direct, proxy credentials sent but never shown,
//! a proxy that is down named in the error. The environment's proxies (`HTTPS_PROXY`, …)
//! are tested through the CLI, in a child process, since a test cannot set its own
//! environment safely; loopback registries stay direct whatever the environment says.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use microsandbox_image::{
    ErrorKind, GlobalCache, Platform, ProxyConfig, PullOptions, PullProgress, Registry,
    RegistryConfig,
};
use msbimage_testkit::{
    Compression, ConnectProxy, Pusher, Registry as TestRegistry, RegistryOptions, standard_image,
};

async fn tls_registry() -> TestRegistry {
    let reg = TestRegistry::start(RegistryOptions::plain().tls())
        .await
        .unwrap();
    let ca = reg.ca_pem_path().unwrap().to_owned();
    Pusher::new(&reg.base_url())
        .with_ca(&ca)
        .push_image("proxied/app", "v1", &standard_image(Compression::Gzip))
        .await
        .unwrap();
    reg
}

fn explicit(https: Option<String>, http: Option<String>, no_proxy: &[&str]) -> ProxyConfig {
    ProxyConfig::Explicit {
        https,
        http,
        no_proxy: no_proxy.iter().map(|s| s.to_string()).collect(),
    }
}

/// Pulls `<host>/proxied/app:v1` with `config`, returning the result and every event's JSON.
async fn pull(
    host: &str,
    cache: &Path,
    config: RegistryConfig,
) -> (
    microsandbox_image::Result<microsandbox_image::PullResult>,
    Vec<String>,
) {
    let registry = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache).unwrap(),
    )
    .config(RegistryConfig {
        durable: false,
        ..config
    })
    .build()
    .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let r = format!("{host}/proxied/app:v1").parse().unwrap();
    let result = registry
        .pull_with_callback(
            &r,
            &PullOptions::default(),
            Arc::new(move |e: &PullProgress| {
                seen.lock().unwrap().push(serde_json::to_string(e).unwrap())
            }),
        )
        .await;
    let events = events.lock().unwrap().clone();
    (result, events)
}

fn with_ca(reg: &TestRegistry, proxy: ProxyConfig) -> RegistryConfig {
    RegistryConfig {
        ca_files: vec![reg.ca_pem_path().unwrap().to_owned()],
        proxy,
        max_retries: 1,
        ..Default::default()
    }
}

/// An HTTPS registry through the proxy: every connection is a tunnel to it; with the
/// registry in `noProxy`, none is.
#[tokio::test]
async fn https_goes_through_connect_tunnels_unless_no_proxy_says_otherwise() {
    let reg = tls_registry().await;
    let proxy = ConnectProxy::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = with_ca(&reg, explicit(Some(proxy.url()), None, &[]));
    let (result, _) = pull(&reg.host(), cache.path(), config).await;
    assert_eq!(result.unwrap().layers.len(), 3);
    let tunnels = proxy.tunnels();
    assert!(!tunnels.is_empty());
    assert!(tunnels.iter().all(|t| *t == reg.host()), "{tunnels:?}");
    assert!(proxy.forwarded().is_empty());

    let port = reg.host().rsplit_once(':').unwrap().1.to_owned();
    for no_proxy in [
        "127.0.0.1",
        "127.0.0.0/8",
        &format!("127.0.0.1:{port}"),
        "*",
    ] {
        let direct = ConnectProxy::start().await.unwrap();
        let cache = tempfile::tempdir().unwrap();
        let config = with_ca(&reg, explicit(Some(direct.url()), None, &[no_proxy]));
        let (result, _) = pull(&reg.host(), cache.path(), config).await;
        assert_eq!(result.unwrap().layers.len(), 3, "{no_proxy}");
        assert_eq!(direct.tunnels(), Vec::<String>::new(), "{no_proxy}");
    }
    // A noProxy entry for another port does not apply.
    let other = ConnectProxy::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = with_ca(&reg, explicit(Some(other.url()), None, &["127.0.0.1:1"]));
    let (result, _) = pull(&reg.host(), cache.path(), config).await;
    result.unwrap();
    assert!(!other.tunnels().is_empty());
}

/// A plain-HTTP registry through the proxy's absolute-form forwarding.
#[tokio::test]
async fn plain_http_is_forwarded() {
    let reg = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    Pusher::new(&reg.base_url())
        .push_image("proxied/app", "v1", &standard_image(Compression::Gzip))
        .await
        .unwrap();
    let proxy = ConnectProxy::start().await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        proxy: explicit(None, Some(proxy.url()), &[]),
        ..Default::default()
    };
    let (result, _) = pull(&reg.host(), cache.path(), config).await;
    assert_eq!(result.unwrap().layers.len(), 3);
    let forwarded = proxy.forwarded();
    let manifest = format!("http://{}/v2/proxied/app/manifests/v1", reg.host());
    assert!(forwarded.contains(&manifest), "{forwarded:?}");
    assert!(
        forwarded.iter().filter(|u| u.contains("/blobs/")).count() >= 4,
        "{forwarded:?}"
    );
}

/// Proxy credentials from the URL are sent (the pull succeeds through a proxy that wants
/// them); wrong ones fail the pull, and the password is in no error or event.
#[tokio::test]
async fn proxy_credentials_are_sent_and_never_shown() {
    let reg = tls_registry().await;
    let proxy = ConnectProxy::start_with_credentials("alice", "s3cret-proxy-pw")
        .await
        .unwrap();
    let url = |pass: &str| format!("http://alice:{pass}@{}", proxy.host());
    let cache = tempfile::tempdir().unwrap();
    let config = with_ca(&reg, explicit(Some(url("s3cret-proxy-pw")), None, &[]));
    let (result, _) = pull(&reg.host(), cache.path(), config).await;
    assert_eq!(result.unwrap().layers.len(), 3);
    assert!(!proxy.tunnels().is_empty());
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());

    let cache = tempfile::tempdir().unwrap();
    let config = with_ca(&reg, explicit(Some(url("wrong-pw-1234")), None, &[]));
    let debug = format!("{config:?}");
    let (result, events) = pull(&reg.host(), cache.path(), config).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(!proxy.refused().is_empty());
    let report = serde_json::to_string(&err.report()).unwrap();
    let shown = [
        err.to_string(),
        format!("{err:?}"),
        report,
        debug,
        events.join("\n"),
    ];
    for text in shown {
        assert!(!text.contains("wrong-pw-1234"), "{text}");
    }
    assert!(
        err.to_string()
            .contains(&format!("through proxy http://***@{}", proxy.host())),
        "{err}"
    );
}

/// A proxy that is down: the error says which proxy (without its password).
#[tokio::test]
async fn a_proxy_that_is_down_is_named() {
    let reg = tls_registry().await;
    let cache = tempfile::tempdir().unwrap();
    let config = with_ca(
        &reg,
        explicit(Some("http://bob:hunter2-pw@127.0.0.1:1".into()), None, &[]),
    );
    let (result, events) = pull(&reg.host(), cache.path(), config).await;
    let err = result.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("through proxy http://***@127.0.0.1:1/"),
        "{message}"
    );
    assert!(!message.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    assert!(events.iter().all(|e| !e.contains("hunter2")));
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
}

/// A bad proxy setting fails when the client is made, naming the setting.
#[test]
fn an_unusable_proxy_is_refused_up_front() {
    let cache = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        proxy: explicit(Some("socks5://u:pw-xyz@127.0.0.1:1080".into()), None, &[]),
        ..Default::default()
    };
    let built = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .config(config)
    .build();
    let Err(err) = built else {
        panic!("a SOCKS proxy was accepted");
    };
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.contains("proxy.https") && message.contains("socks5"),
        "{message}"
    );
    assert!(!message.contains("pw-xyz"), "{message}");
}

/// Runs `msbimage pull` in a child with `env` set (and no other proxy variables).
fn cli_pull(
    cache: &Path,
    ca: &Path,
    reference: &str,
    env: &[(&str, String)],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_msbimage"));
    cmd.args(["pull", "--progress", "none", "--cache"])
        .arg(cache)
        .arg("--ca-file")
        .arg(ca)
        .arg(reference)
        .env("DOCKER_CONFIG", "/nonexistent/msbimage-test-docker-config")
        .stdin(std::process::Stdio::null());
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The CLI honours `HTTPS_PROXY` (a registry named `registry.test`, which only the proxy can
/// reach, is pulled through it), leaves loopback registries direct, and `https_proxy` with
/// credentials never shows them.
#[tokio::test]
async fn the_cli_uses_the_environments_proxy_but_not_for_loopback() {
    let reg = tls_registry().await;
    let proxy = ConnectProxy::start().await.unwrap();
    let ca = reg.ca_pem_path().unwrap().to_owned();
    let port = reg.host().rsplit_once(':').unwrap().1.to_owned();
    let named = format!("registry.test:{port}");
    let (cache, loopback) = (tempfile::tempdir().unwrap(), reg.host());
    let env = vec![("HTTPS_PROXY", proxy.url())];
    let (dir, ca2, named2, env2) = (
        cache.path().to_owned(),
        ca.clone(),
        named.clone(),
        env.clone(),
    );
    let through = tokio::task::spawn_blocking(move || {
        cli_pull(&dir, &ca2, &format!("{named2}/proxied/app:v1"), &env2)
    })
    .await
    .unwrap();
    assert!(
        through.status.success(),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );
    let tunnels = proxy.tunnels();
    assert!(
        !tunnels.is_empty() && tunnels.iter().all(|t| *t == named),
        "{tunnels:?}"
    );

    let before = proxy.tunnels().len();
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_owned();
    let direct = tokio::task::spawn_blocking(move || {
        cli_pull(&dir, &ca, &format!("{loopback}/proxied/app:v1"), &env)
    })
    .await
    .unwrap();
    assert!(
        direct.status.success(),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    assert_eq!(
        proxy.tunnels().len(),
        before,
        "a loopback registry went through the proxy"
    );
}

/// `https_proxy` with wrong credentials: the CLI's error names the proxy, not its password.
#[tokio::test]
async fn the_cli_never_prints_proxy_passwords() {
    let reg = tls_registry().await;
    let proxy = ConnectProxy::start_with_credentials("carol", "right-pw")
        .await
        .unwrap();
    let ca = reg.ca_pem_path().unwrap().to_owned();
    let port = reg.host().rsplit_once(':').unwrap().1.to_owned();
    let reference = format!("registry.test:{port}/proxied/app:v1");
    let env = vec![(
        "https_proxy",
        format!("http://carol:zz-wrong-pw@{}", proxy.host()),
    )];
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_owned();
    let out = tokio::task::spawn_blocking(move || cli_pull(&dir, &ca, &reference, &env))
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(i32::from(ErrorKind::Registry.exit_code())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("through proxy http://***@{}", proxy.host())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("zz-wrong-pw") && !stdout.contains("zz-wrong-pw"),
        "{stderr}"
    );
    assert!(!proxy.refused().is_empty());
}
