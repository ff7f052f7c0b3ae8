//! Looking before pulling: `Registry::inspect` and `msbimage inspect --remote` against the
//! loopback registry, through a recording proxy that proves no layer blob is fetched, and
//! with a cache that stays empty.

mod common;

use std::process::Command;

use common::{Fixture, client_for};
use microsandbox_image::{ErrorKind, Platform};
use msbimage_testkit::{Fault, FaultProxy};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

#[tokio::test]
async fn an_index_lists_its_platforms_and_no_layer_is_downloaded() {
    let f = Fixture::start().await;
    let proxy = FaultProxy::start(&f.registry.base_url(), Fault::None)
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = client_for(Platform::new("linux", "amd64"), cache.path())
        .build()
        .unwrap();
    let reference = format!("{}/fixtures/multi:latest", proxy.host())
        .parse()
        .unwrap();
    let amd64 = registry.inspect(&reference, None).await.expect("inspect");
    for p in [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/arm/v6",
    ] {
        assert!(
            amd64.platforms.iter().any(|x| x == p),
            "{:?}",
            amd64.platforms
        );
    }
    assert_eq!(amd64.index_digest.as_ref(), Some(&amd64.digest));
    assert_eq!(amd64.platform, "linux/amd64");
    assert_eq!(
        amd64.download_size,
        amd64.layers.iter().map(|l| l.size).sum::<u64>()
    );
    assert_eq!(amd64.config.architecture, "amd64");
    let arm = registry
        .inspect(
            &reference,
            Some(Platform::with_variant("linux", "arm", "v6")),
        )
        .await
        .unwrap();
    assert_eq!(arm.digest, amd64.digest, "the same index");
    assert_ne!(arm.manifest_digest, amd64.manifest_digest);
    assert_eq!(arm.config.architecture, "arm");
    // Only the two configs were fetched as blobs; nothing was written to the cache.
    let blobs = proxy.blob_requests();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    assert!(
        blobs
            .iter()
            .any(|r| r.path.ends_with(amd64.config_digest.to_string().as_str()))
    );
    for dir in ["manifests/sha256", "images", "layers/sha256"] {
        let p = cache.path().join(dir);
        let n = std::fs::read_dir(&p).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "{} holds {n} entries", p.display());
    }
}

#[tokio::test]
async fn a_single_manifest_names_its_own_platform_and_errors_are_the_pulls() {
    let f = Fixture::start().await;
    let cache = tempfile::tempdir().unwrap();
    let registry = client_for(Platform::new("linux", "amd64"), cache.path())
        .build()
        .unwrap();
    let image = registry
        .inspect(&f.reference("fixtures/standard:zstd"), None)
        .await
        .unwrap();
    assert_eq!(image.platforms, ["linux/amd64"]);
    assert_eq!(image.index_digest, None);
    assert_eq!(image.digest, image.manifest_digest);
    assert_eq!(image.layers.len(), 3);
    assert!(
        image
            .layers
            .iter()
            .all(|l| l.media_type.ends_with("tar+zstd"))
    );
    let err = registry
        .inspect(&f.reference("fixtures/absent:1"), None)
        .await
        .expect_err("no such repository");
    assert_eq!(err.kind(), ErrorKind::Registry);
    let err = registry
        .inspect(
            &f.reference("fixtures/multi:latest"),
            Some(Platform::new("linux", "s390x")),
        )
        .await
        .expect_err("no such platform");
    assert_eq!(err.kind(), ErrorKind::PlatformNotFound);
    // A platform asked for a single-platform image must be one it runs, as for a pull.
    let err = registry
        .inspect(
            &f.reference("fixtures/standard:zstd"),
            Some(Platform::new("linux", "arm64")),
        )
        .await
        .expect_err("an amd64 image is not arm64");
    assert_eq!(err.kind(), ErrorKind::PlatformNotFound);
    assert!(err.to_string().contains("linux/amd64"), "{err}");
}

#[tokio::test]
async fn cli_inspect_remote_text_and_json() {
    let f = Fixture::start().await;
    let reference = format!("{}/fixtures/multi:latest", f.registry.host());
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["inspect", &reference, "--remote"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("platforms linux/amd64"), "{text}");
    assert!(text.contains("bytes to download"), "{text}");
    let out = run(&["--json", "--platform", "linux/arm64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["platform"], "linux/arm64/v8");
    assert!(doc["layers"][0]["size"].as_u64().unwrap() > 0);
    assert!(doc["config"].is_object());
    // --json without --remote is a usage error.
    let out = Command::new(BIN)
        .args(["inspect", &reference, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
