//! A hostile or flaky network between us and a real registry (the harness's fault proxy):
//! connections reset mid-blob are resumed with `Range`, 429/503 answers are retried after
//! `Retry-After`, stalls are survived, and corrupted bytes are caught by the digest with
//! nothing published.

mod common;

use common::{layer_dirs, tmp_entries};
use microsandbox_image::{ErrorKind, GlobalCache, Platform, PullOptions, Registry};
use msbimage_testkit::{
    Compression, Fault, FaultProxy, FrontOptions, Pusher, Registry as TestRegistry,
    RegistryOptions, standard_image,
};

async fn setup() -> (TestRegistry, msbimage_testkit::Image) {
    let reg = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    let image = standard_image(Compression::Gzip);
    Pusher::new(&reg.base_url())
        .push_image("flaky/app", "v1", &image)
        .await
        .unwrap();
    (reg, image)
}

/// The biggest layer (the 3 MiB file lives in layer 1).
fn big_layer(image: &msbimage_testkit::Image) -> &msbimage_testkit::Layer {
    image.layers.iter().max_by_key(|l| l.blob.len()).unwrap()
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
