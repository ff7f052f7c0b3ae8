//! A hostile or flaky network between us and a real registry (the harness's fault proxy):
//! connections reset mid-blob are resumed with `Range`, 429/503 answers are retried after
//! `Retry-After`, stalls are survived, and corrupted bytes are caught by the digest with
//! nothing published.

mod common;

use common::{layer_dirs, tmp_entries};
use microsandbox_image::{ErrorKind, GlobalCache, Platform, PullOptions, Registry};
use msbimage_testkit::{Fault, FaultProxy, FrontOptions, Registry as TestRegistry};

async fn setup() -> (TestRegistry, msbimage_testkit::Image) {
    common::flaky_registry().await
}

/// The biggest layer (the 3 MiB file lives in layer 1).
fn big_layer(image: &msbimage_testkit::Image) -> &msbimage_testkit::Layer {
    common::biggest_layer(image).1
}

async fn pull_through(
    proxy: &FaultProxy,
    cache: &tempfile::TempDir,
) -> microsandbox_image::Result<microsandbox_image::PullResult> {
    let registry = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .durable(false)
    .build()
    .unwrap();
    let r = format!("{}/flaky/app:v1", proxy.host()).parse().unwrap();
    registry.pull(&r, &PullOptions::default()).await
}

#[tokio::test]
async fn resets_mid_blob_are_resumed_with_range() {
    let (reg, image) = setup().await;
    let big = big_layer(&image);
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::ResetAfter {
            bytes: 500_000,
            times: 3,
        },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let res = pull_through(&proxy, &cache).await.unwrap();
    assert_eq!(res.layers.len(), 3);
    assert_eq!(proxy.faults_injected(), 3);
    let ranges: Vec<String> = proxy
        .blob_requests()
        .iter()
        .filter(|r| r.path.contains(&big.digest))
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    // A reset discards what was still in flight, so the offsets are what really arrived:
    // each resume starts beyond the previous one.
    let offsets: Vec<u64> = ranges
        .iter()
        .map(|r| {
            r.strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad range {r}"))
        })
        .collect();
    assert_eq!(offsets.len(), 3, "{ranges:?}");
    assert!(
        offsets[0] > 0 && offsets.windows(2).all(|w| w[0] < w[1]),
        "{ranges:?}"
    );
    assert_eq!(
        std::fs::read(res.layers[0].join("data/big-3m")).unwrap(),
        msbimage_testkit::fixtures::pseudo_random(3 << 20, 2)
    );
}

/// Found by the soak test (`tests/soak/`): a reset while reading a config's body failed the
/// pull at once; small documents are now fetched again whole, within `maxRetries`.
#[tokio::test]
async fn a_reset_while_reading_the_config_is_retried() {
    let (reg, image) = setup().await;
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::ResetAfter {
            bytes: 10,
            times: 2,
        },
        FrontOptions::default().only_digest(&image.config_digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let res = pull_through(&proxy, &cache).await.unwrap();
    assert_eq!(res.config_digest.to_string(), image.config_digest);
    assert_eq!(proxy.faults_injected(), 2);
    let gets = proxy.blob_requests();
    assert_eq!(
        gets.len(),
        3,
        "two cut GETs of the config, then a whole one"
    );
    assert!(gets.iter().all(|g| g.header("range").is_none()));
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let (reg, _) = setup().await;
    for code in [429, 503] {
        let proxy = FaultProxy::start(
            &reg.base_url(),
            Fault::Status {
                code,
                retry_after: Some(1),
                times: 2,
            },
        )
        .await
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let res = pull_through(&proxy, &cache).await.unwrap();
        assert_eq!(res.layers.len(), 3);
        assert_eq!(proxy.faults_injected(), 2);
        assert!(
            started.elapsed() >= std::time::Duration::from_secs(1),
            "Retry-After was honoured"
        );
    }
}

#[tokio::test]
async fn a_stalled_download_completes() {
    let (reg, image) = setup().await;
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 100_000,
            millis: 1500,
        },
        FrontOptions::default().only_digest(&big_layer(&image).digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(pull_through(&proxy, &cache).await.unwrap().layers.len(), 3);
}

#[tokio::test]
async fn corrupted_bytes_fail_the_digest_and_publish_nothing() {
    let (reg, image) = setup().await;
    let big = big_layer(&image);
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::CorruptByte { offset: 200_000 },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = pull_through(&proxy, &cache).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(
        err.to_string().contains(&big.digest),
        "names the layer: {err}"
    );
    let big_diff = big.diff_id.trim_start_matches("sha256:");
    assert!(!layer_dirs(cache.path()).iter().any(|d| d == big_diff));
    assert!(tmp_entries(cache.path()).is_empty(), "no staging debris");
}

#[tokio::test]
async fn cancel_stops_the_pull_and_leaves_no_debris_when_it_returns() {
    let (reg, image) = setup().await;
    let big = big_layer(&image);
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 100_000,
            millis: 60_000,
        },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .durable(false)
    .build()
    .unwrap();
    let r: microsandbox_image::Reference =
        format!("{}/flaky/app:v1", proxy.host()).parse().unwrap();
    let token = microsandbox_image::CancelToken::new();
    let pull = {
        let (registry, token) = (registry.clone(), token.clone());
        tokio::spawn(async move {
            registry
                .pull_with(&r, &PullOptions::default(), None, &token)
                .await
        })
    };
    // Wait until the stalled layer is being extracted, then cancel.
    let big_hex = big.diff_id.trim_start_matches("sha256:").to_string();
    for _ in 0..200 {
        if tmp_entries(cache.path())
            .iter()
            .any(|e| e.contains(&big_hex))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        tmp_entries(cache.path())
            .iter()
            .any(|e| e.contains(&big_hex))
    );
    let started = std::time::Instant::now();
    token.cancel();
    let err = pull.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        tmp_entries(cache.path()).is_empty(),
        "{:?}",
        tmp_entries(cache.path())
    );
    assert!(!layer_dirs(cache.path()).contains(&big_hex));
}

/// Every request gets the same retry policy as layer blobs: a connection reset in the middle
/// of the config blob and of the manifest is retried and the pull succeeds.
#[tokio::test]
async fn resets_of_the_config_and_the_manifest_are_retried() {
    let (reg, image) = setup().await;
    let config = image.config_digest.clone();
    for (what, opts) in [
        ("config", FrontOptions::default().only_digest(&config)),
        (
            "manifest",
            FrontOptions::default()
                .only_digest("sha256:none")
                .manifests(),
        ),
    ] {
        let proxy = FaultProxy::start_with(
            &reg.base_url(),
            Fault::ResetAfter { bytes: 5, times: 2 },
            opts,
        )
        .await
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let res = pull_through(&proxy, &cache)
            .await
            .unwrap_or_else(|e| panic!("a reset {what} failed the pull: {e}"));
        assert_eq!(res.layers.len(), 3);
        assert_eq!(proxy.faults_injected(), 2, "{what}");
    }
}

/// Redirects are followed for manifests too (registries behind CDNs redirect them), and a
/// loop ends with a clear error.
#[tokio::test]
async fn manifest_redirects_are_followed_and_loops_are_named() {
    let (reg, _) = setup().await;
    let opts = || {
        FrontOptions::default()
            .only_digest("sha256:none")
            .manifests()
    };
    let proxy = FaultProxy::start_with(&reg.base_url(), Fault::Redirect { times: 1 }, opts())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    pull_through(&proxy, &cache)
        .await
        .expect("a redirected manifest");
    assert_eq!(proxy.faults_injected(), 1);
    assert!(
        proxy.requests().iter().any(|r| r.path.contains("?hop=0")),
        "the redirect was followed"
    );
    let looping =
        FaultProxy::start_with(&reg.base_url(), Fault::Redirect { times: u32::MAX }, opts())
            .await
            .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = pull_through(&looping, &cache)
        .await
        .expect_err("a redirect loop");
    assert_eq!(err.kind(), ErrorKind::Registry);
    assert!(err.to_string().contains("too many redirects"), "{err}");
}

/// A registry, a proxy in front of it that stalls the big layer's GETs for 10 s after
/// `after_bytes`, and a client with the settings `config` (JSON) pulling through it into
/// `cache` (keep the registry alive for as long as the proxy is used).
async fn stalled_setup(
    after_bytes: u64,
    config: &str,
    cache: &tempfile::TempDir,
) -> (TestRegistry, FaultProxy, Registry, String) {
    let (reg, image) = setup().await;
    let big = big_layer(&image).digest.clone();
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Stall {
            after_bytes,
            millis: 10_000,
        },
        FrontOptions::default().only_digest(&big),
    )
    .await
    .unwrap();
    let registry = Registry::from_config(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
        microsandbox_image::RegistryConfig::from_json(config).unwrap(),
    )
    .unwrap();
    (reg, proxy, registry, big)
}

/// A body that stops for good names the real URL it came from.
#[tokio::test]
async fn a_stalled_body_error_names_the_real_url() {
    let cache = tempfile::tempdir().unwrap();
    let (_reg, proxy, registry, big) =
        stalled_setup(0, r#"{"readTimeout": 0.3, "durable": false}"#, &cache).await;
    let r = format!("{}/flaky/app:v1", proxy.host()).parse().unwrap();
    let started = std::time::Instant::now();
    let err = registry
        .pull(&r, &PullOptions::default())
        .await
        .expect_err("the blob never finishes");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "gave up in time"
    );
    let want = format!("http://{}/v2/flaky/app/blobs/{big}", proxy.host());
    assert!(err.to_string().contains(&want), "{err}\n(wanted {want})");
}

/// A server that trickles (here: 1000 bytes per connection, then silence until the read
/// timeout) never trips the read timeout for good, since every attempt makes progress; the
/// low-speed rule ends it, naming the rule.
#[tokio::test]
async fn a_trickling_download_fails_under_the_low_speed_rule() {
    let cache = tempfile::tempdir().unwrap();
    let (_reg, proxy, registry, _) = stalled_setup(
        1000,
        r#"{"readTimeout": 0.3, "lowSpeedLimit": 100000, "lowSpeedTime": 2, "durable": false}"#,
        &cache,
    )
    .await;
    let r = format!("{}/flaky/app:v1", proxy.host()).parse().unwrap();
    let err = registry
        .pull(&r, &PullOptions::default())
        .await
        .expect_err("too slow");
    assert_eq!(err.kind(), ErrorKind::Registry);
    assert!(err.to_string().contains("lowSpeedLimit"), "{err}");
    assert!(tmp_entries(cache.path()).is_empty(), "no staging left");
}
