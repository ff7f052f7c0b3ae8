//! Mirrors: a pull-through `docker-registry` in proxy mode in front of an upstream registry is
//! tried first; when it fails the upstream answers.

mod common;

use microsandbox_image::{GlobalCache, Platform, PullOptions, PullPolicy, Registry};
use msbimage_testkit::{Compression, Pusher, Registry as TestRegistry, RegistryOptions};

fn blobs_in(storage: &std::path::Path) -> usize {
    let dir = storage.join("docker/registry/v2/blobs/sha256");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|prefix| {
                    std::fs::read_dir(prefix.path())
                        .map(|d| d.count())
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn mirror_first_then_upstream() {
    let upstream = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    Pusher::new(&upstream.base_url())
        .push_image(
            "library/app",
            "v1",
            &msbimage_testkit::standard_image(Compression::Gzip),
        )
        .await
        .unwrap();
    let mirror = TestRegistry::start(RegistryOptions::plain().proxy(&upstream.base_url()))
        .await
        .unwrap();
    assert_eq!(blobs_in(mirror.storage_dir()), 0);

    let r: microsandbox_image::Reference = format!("{}/library/app:v1", upstream.host())
        .parse()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .mirror(upstream.host(), format!("http://{}", mirror.host()))
    .durable(false)
    .max_retries(0)
    .build()
    .unwrap();
    let res = registry.pull(&r, &PullOptions::default()).await.unwrap();
    assert_eq!(res.layers.len(), 3);
    // The proxy fetched (and stored) the layers and config on our behalf.
    for _ in 0..50 {
        if blobs_in(mirror.storage_dir()) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        blobs_in(mirror.storage_dir()) >= 4,
        "blobs went through the mirror"
    );

    // With the mirror gone, the upstream is used.
    drop(mirror);
    let cache2 = tempfile::tempdir().unwrap();
    let registry = Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache2.path()).unwrap(),
    )
    .mirror(upstream.host(), "http://127.0.0.1:9")
    .durable(false)
    .max_retries(0)
    .build()
    .unwrap();
    let opts = PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    };
    assert_eq!(registry.pull(&r, &opts).await.unwrap().layers.len(), 3);
}
