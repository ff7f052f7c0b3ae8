//! End-to-end pulls against a real `docker-registry`: every compression and manifest format,
//! the extracted format, cache policies, platform resolution, dedupe and bad content.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{Fixture, layer_dirs, tmp_entries};
use microsandbox_image::stat::{OverrideStat, encode_dev, mode, read_override_stat};
use microsandbox_image::{ErrorKind, Platform, PullOptions, PullPolicy, Registry};
use msbimage_testkit::fixtures::{
    BIG_3M_LEN, LONG_PATH, OVERWRITTEN_FINAL, PLATFORMS, RANDOM_100K_LEN, platform_marker,
    pseudo_random,
};
use msbimage_testkit::{Compression, LayerBuilder, ManifestFormat, multiplatform};

fn stat(p: &Path) -> OverrideStat {
    read_override_stat(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .unwrap_or_else(|| panic!("{}: no override_stat", p.display()))
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::getxattr(p, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn assert_standard_layers(layers: &[std::path::PathBuf]) {
    assert_eq!(layers.len(), 3);
    let l1 = &layers[0];
    let suid = stat(&l1.join("usr/bin/suid"));
    assert_eq!(suid.mode, mode::S_IFREG | 0o4755);
    let owned = stat(&l1.join("home/user/owned"));
    assert_eq!((owned.uid, owned.gid), (1000, 1000));
    let link = l1.join("etc/abs-link");
    assert_eq!(std::fs::read(&link).unwrap(), b"/usr/bin/tool");
    assert_eq!(stat(&link).mode, mode::S_IFLNK | 0o777);
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_file(),
        "symlinks are stored as regular files"
    );
    assert_eq!(std::fs::read(l1.join("usr/bin/rel-link")).unwrap(), b"tool");
    let tool = std::fs::metadata(l1.join("usr/bin/tool")).unwrap();
    let hard = std::fs::metadata(l1.join("usr/bin/tool-hardlink")).unwrap();
    assert_eq!(tool.ino(), hard.ino(), "hardlinks stay hardlinks");
    assert_eq!(stat(&l1.join("usr/bin/tool")).mode, mode::S_IFREG | 0o755);
    let null = stat(&l1.join("dev/null"));
    assert_eq!(null.mode, mode::S_IFCHR | 0o666);
    assert_eq!(null.rdev, encode_dev(1, 3));
    assert_eq!(std::fs::metadata(l1.join("dev/null")).unwrap().len(), 0);
    assert_eq!(stat(&l1.join("dev/fifo")).mode, mode::S_IFIFO | 0o644);
    assert_eq!(stat(&l1.join("tmp")).mode, mode::S_IFDIR | 0o1777);
    assert_eq!(stat(&l1.join("root")).mode, mode::S_IFDIR | 0o700);
    assert_eq!(
        std::fs::read(l1.join("data/random-100k")).unwrap(),
        pseudo_random(RANDOM_100K_LEN, 1)
    );
    assert_eq!(
        std::fs::read(l1.join("data/big-3m")).unwrap(),
        pseudo_random(BIG_3M_LEN, 2)
    );
    assert_eq!(std::fs::read(l1.join("data/empty")).unwrap(), b"");
    assert_eq!(std::fs::read(l1.join(LONG_PATH)).unwrap(), b"deep\n");
    // Host-safe permissions whatever the image says.
    let host = std::fs::metadata(l1.join("usr/bin/suid")).unwrap();
    assert_eq!(host.permissions().mode() & 0o7777, 0o600);
    let host_dir = std::fs::metadata(l1.join("tmp")).unwrap();
    assert_eq!(host_dir.permissions().mode() & 0o7777, 0o700);

    let l2 = &layers[1];
    assert_eq!(
        std::fs::read(l2.join("etc/overwritten")).unwrap(),
        OVERWRITTEN_FINAL
    );
    // Whiteouts are marker files at the deleted name; opaque directories carry an xattr.
    assert!(l2.join("etc/to-delete").is_file(), "whiteouts are kept");
    assert_eq!(
        xattr(&l2.join("etc/to-delete"), "user.msb.whiteout").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        xattr(&l2.join("opaque"), "user.msb.opaque").as_deref(),
        Some(&b"y"[..]),
        "opaque markers are kept"
    );

    let l3 = &layers[2];
    assert_eq!(
        xattr(&l3.join("app/xattr-file"), "user.msb.xattr.user.test").as_deref(),
        Some(&b"hello"[..])
    );
    for l in layers {
        let meta = l.parent().unwrap().join("meta.json");
        assert!(meta.is_file(), "{}", meta.display());
    }
}

#[tokio::test]
async fn pulls_every_compression_and_manifest_format() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let mut diff_ids = None;
    for tag in ["gzip", "zstd", "none", "docker"] {
        let r = f.reference(&format!("fixtures/standard:{tag}"));
        let res = registry.pull(&r, &PullOptions::default()).await.unwrap();
        assert_standard_layers(&res.layers);
        assert!(res.index_digest.is_none());
        assert_eq!(res.config.working_dir.as_deref(), Some("/app"));
        assert_eq!(res.config.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            res.config.entrypoint,
            Some(vec!["/usr/bin/tool".to_string()])
        );
        assert_eq!(
            res.config.cmd,
            Some(vec!["--flag".to_string(), "value".to_string()])
        );
        assert!(res.config.env.contains(&"GREETING=hello world".to_string()));
        assert_eq!(res.config.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(res.config.volumes, ["/data"]);
        assert_eq!(res.config.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(
            res.config
                .labels
                .get("com.example.fixture")
                .map(String::as_str),
            Some("standard")
        );
        // The same content in another compression is the same layers (keyed by diff_id).
        match &diff_ids {
            None => diff_ids = Some(res.layer_diff_ids.clone()),
            Some(d) => assert_eq!(d, &res.layer_diff_ids, "{tag}"),
        }
    }
    assert_eq!(layer_dirs(f.cache_dir.path()).len(), 3);
    assert!(tmp_entries(f.cache_dir.path()).is_empty());
}

#[tokio::test]
async fn warm_if_missing_pull_uses_no_network() {
    let mut f = Fixture::start().await;
    let registry = f.registry_client();
    let r = f.reference("fixtures/standard:gzip");
    let cold = registry.pull(&r, &PullOptions::default()).await.unwrap();
    assert!(!cold.cached);
    // Stop the registry: anything that needs the network now fails.
    drop(std::mem::replace(
        &mut f.registry,
        msbimage_testkit::Registry::start(Default::default())
            .await
            .unwrap(),
    ));
    let warm = registry.pull(&r, &PullOptions::default()).await.unwrap();
    assert!(warm.cached);
    assert_eq!(warm.manifest_digest, cold.manifest_digest);
    assert_eq!(warm.layers, cold.layers);
    assert_eq!(warm.config, cold.config);
    let never = PullOptions {
        pull_policy: PullPolicy::Never,
        ..Default::default()
    };
    assert!(registry.pull(&r, &never).await.unwrap().cached);
    let always = PullOptions {
        pull_policy: PullPolicy::Always,
        ..Default::default()
    };
    let err = registry.pull(&r, &always).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
    assert!(err.to_string().contains("fixtures/standard"), "{err}");
}

#[tokio::test]
async fn never_policy_on_empty_cache_is_not_cached() {
    let f = Fixture::start().await;
    let opts = PullOptions {
        pull_policy: PullPolicy::Never,
        ..Default::default()
    };
    let err = f
        .registry_client()
        .pull(&f.reference("fixtures/standard:gzip"), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotCached);
    assert!(err.to_string().contains("fixtures/standard:gzip"), "{err}");
}

#[tokio::test]
async fn always_refetches_the_manifest_and_reuses_layers() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let r = f.reference("moving/tag:latest");
    f.pusher()
        .push_image("moving/tag", "latest", &f.gzip)
        .await
        .unwrap();
    let first = registry.pull(&r, &PullOptions::default()).await.unwrap();
    // Retag to another image: one new layer on top of the same three.
    let mut b = msbimage_testkit::ImageBuilder::new("linux", "amd64");
    for l in msbimage_testkit::fixtures::standard_layers() {
        b = b.layer(l.build(Compression::Gzip));
    }
    let newer = b
        .layer(
            LayerBuilder::new()
                .file("new-file", "v2", 0o644)
                .build(Compression::Gzip),
        )
        .build();
    f.pusher()
        .push_image("moving/tag", "latest", &newer)
        .await
        .unwrap();

    let cached = registry.pull(&r, &PullOptions::default()).await.unwrap();
    assert!(cached.cached);
    assert_eq!(cached.manifest_digest, first.manifest_digest);

    let (mut progress, task) = registry.pull_with_progress(
        &r,
        &PullOptions {
            pull_policy: PullPolicy::Always,
            ..Default::default()
        },
    );
    let mut cached_layers = 0;
    while let Some(ev) = progress.recv().await {
        if let microsandbox_image::PullProgress::LayerCached { .. } = ev {
            cached_layers += 1;
        }
    }
    let fresh = task.await.unwrap().unwrap();
    assert!(!fresh.cached);
    assert_eq!(fresh.manifest_digest.to_string(), newer.manifest_digest);
    assert_eq!(fresh.layers.len(), 4);
    assert_eq!(
        cached_layers, 3,
        "the three old layers are reused by digest"
    );
    assert_eq!(
        std::fs::read(fresh.layers[3].join("new-file")).unwrap(),
        b"v2"
    );
}

#[tokio::test]
async fn force_extracts_again() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let r = f.reference("fixtures/standard:gzip");
    let res = registry.pull(&r, &PullOptions::default()).await.unwrap();
    let victim = res.layers[2].join("app/hello.txt");
    std::fs::write(&victim, b"tampered").unwrap();
    let forced = registry
        .pull(
            &r,
            &PullOptions {
                force: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!forced.cached);
    assert_eq!(std::fs::read(&victim).unwrap(), b"hello from layer 3\n");
    // The replaced trees stay in tmp/ while results hold the layers (issue 15: a layer in use
    // is never deleted); the last holder in this process deletes them.
    drop((res, forced));
    assert!(tmp_entries(f.cache_dir.path()).is_empty());
}

#[tokio::test]
async fn index_resolves_every_platform() {
    let f = Fixture::start().await;
    let multi = multiplatform(ManifestFormat::Oci);
    let r = f.reference("fixtures/multi:latest");
    for (os, arch, variant) in PLATFORMS {
        let platform = match variant {
            Some(v) => Platform::with_variant(os, arch, v),
            None => Platform::new(os, arch),
        };
        let registry = Registry::builder(platform.clone(), f.cache())
            .build()
            .unwrap();
        let res = registry.pull(&r, &PullOptions::default()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(res.layers[0].join("etc/platform")).unwrap(),
            platform_marker(os, arch, variant)
        );
        assert_eq!(
            res.index_digest
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(multi.index.digest.as_str())
        );
        let expected = multi.image(arch, variant).unwrap();
        assert_eq!(res.manifest_digest.to_string(), expected.manifest_digest);
        assert_eq!(res.config.architecture, arch);
    }
    // aarch64 spelled the Rust way finds the arm64 image; a v8 target without variant too.
    let registry = Registry::builder(Platform::new("linux", "aarch64"), f.cache())
        .build()
        .unwrap();
    let res = registry.pull(&r, &PullOptions::default()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(res.layers[0].join("etc/platform")).unwrap(),
        "linux/arm64/v8\n"
    );
}

/// A reference naming a single-platform (amd64) manifest, pulled for another platform: the
/// config's platform is checked as an index entry's would be, not recorded under the wrong
/// platform.
#[tokio::test]
async fn a_single_platform_image_for_another_platform_is_not_found() {
    let f = Fixture::start().await;
    for wanted in [
        Platform::new("linux", "arm64"),
        Platform::new("windows", "amd64"),
        Platform::with_variant("linux", "arm", "v7"),
    ] {
        let registry = Registry::builder(wanted.clone(), f.cache())
            .build()
            .unwrap();
        let err = registry
            .pull(
                &f.reference("fixtures/standard:gzip"),
                &PullOptions::default(),
            )
            .await
            .expect_err("an amd64 image is not {wanted}");
        assert_eq!(err.kind(), ErrorKind::PlatformNotFound, "{wanted}: {err}");
        assert!(err.to_string().contains("available: linux/amd64"), "{err}");
    }
    assert!(f.cache().images().unwrap().is_empty(), "nothing recorded");
    // The platform it is built for, and one it runs on (amd64 v2 runs v1 code), pull.
    for ok in [
        Platform::new("linux", "amd64"),
        Platform::with_variant("linux", "amd64", "v2"),
    ] {
        let registry = Registry::builder(ok.clone(), f.cache()).build().unwrap();
        registry
            .pull(
                &f.reference("fixtures/standard:gzip"),
                &PullOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[tokio::test]
async fn platform_not_found_lists_what_exists() {
    let f = Fixture::start().await;
    let registry = Registry::builder(Platform::new("linux", "s390x"), f.cache())
        .build()
        .unwrap();
    let err = registry
        .pull(
            &f.reference("fixtures/multi:latest"),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PlatformNotFound);
    let msg = err.to_string();
    for p in [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/arm/v6",
    ] {
        assert!(msg.contains(p), "{msg}");
    }
    assert!(
        !msg.contains("unknown"),
        "attestations are not platforms: {msg}"
    );
}

#[tokio::test]
async fn pull_by_digest_and_by_tag_and_digest() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let by_digest = f.reference(&format!("fixtures/standard@{}", f.gzip.manifest_digest));
    let res = registry
        .pull(&by_digest, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(res.manifest_digest.to_string(), f.gzip.manifest_digest);
    let both = f.reference(&format!(
        "fixtures/standard:gzip@{}",
        f.gzip.manifest_digest
    ));
    let res = registry.pull(&both, &PullOptions::default()).await.unwrap();
    assert_eq!(res.manifest_digest.to_string(), f.gzip.manifest_digest);
}

#[tokio::test]
async fn missing_tag_and_repository_are_registry_errors() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    for r in ["fixtures/standard:nope", "no/such/repo:latest"] {
        let err = registry
            .pull(&f.reference(r), &PullOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Registry, "{err}");
        assert!(err.to_string().contains("not found"), "{err}");
    }
}

/// Push an image whose manifest and config are rewritten by `edit` (layers as given).
async fn push_custom(
    f: &Fixture,
    repo: &str,
    layers: &[msbimage_testkit::Layer],
    diff_ids: Vec<String>,
) -> String {
    let pusher = f.pusher();
    for l in layers {
        pusher.push_blob(repo, &l.blob).await.unwrap();
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Cmd": ["/bin/true"]}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = pusher.push_blob(repo, &config).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()
        })).collect::<Vec<_>>()
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    pusher
        .push_manifest(
            repo,
            "latest",
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_layer_listed_twice_is_fetched_once() {
    let f = Fixture::start().await;
    let layer = LayerBuilder::new()
        .file("a", "same", 0o644)
        .build(Compression::Gzip);
    let other = LayerBuilder::new()
        .file("b", "between", 0o644)
        .build(Compression::Zstd);
    let layers = [layer.clone(), other.clone(), layer.clone()];
    let diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    push_custom(&f, "twice/img", &layers, diff_ids).await;
    let res = f
        .registry_client()
        .pull(&f.reference("twice/img:latest"), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(res.layers.len(), 3);
    assert_eq!(res.layers[0], res.layers[2]);
    assert_eq!(std::fs::read(res.layers[2].join("a")).unwrap(), b"same");
    assert_eq!(layer_dirs(f.cache_dir.path()).len(), 2);
}

#[tokio::test]
async fn a_wrong_diff_id_publishes_nothing() {
    let f = Fixture::start().await;
    let good = LayerBuilder::new()
        .file("ok", "fine", 0o644)
        .build(Compression::Gzip);
    let bad = LayerBuilder::new()
        .file("x", "content", 0o644)
        .build(Compression::Gzip);
    let wrong = msbimage_testkit::sha256_digest(b"something else");
    push_custom(
        &f,
        "bad/diffid",
        &[good.clone(), bad.clone()],
        vec![good.diff_id.clone(), wrong.clone()],
    )
    .await;
    let err = f
        .registry_client()
        .pull(&f.reference("bad/diffid:latest"), &PullOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("diff_id mismatch") && msg.contains(&bad.digest),
        "{msg}"
    );
    let published = layer_dirs(f.cache_dir.path());
    assert!(
        !published.iter().any(|d| wrong.ends_with(d.as_str())),
        "{published:?}"
    );
    assert!(!published.iter().any(|d| bad.diff_id.ends_with(d.as_str())));
    assert!(
        tmp_entries(f.cache_dir.path()).is_empty(),
        "no staging debris"
    );
    // And no image record claims the image is there.
    let never = PullOptions {
        pull_policy: PullPolicy::Never,
        ..Default::default()
    };
    let err = f
        .registry_client()
        .pull(&f.reference("bad/diffid:latest"), &never)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotCached);
}

#[tokio::test]
async fn a_layer_count_mismatch_is_a_manifest_error() {
    let f = Fixture::start().await;
    let l = LayerBuilder::new()
        .file("a", "a", 0o644)
        .build(Compression::Gzip);
    push_custom(
        &f,
        "bad/count",
        std::slice::from_ref(&l),
        vec![l.diff_id.clone(), l.diff_id.clone()],
    )
    .await;
    let err = f
        .registry_client()
        .pull(&f.reference("bad/count:latest"), &PullOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("2 diff_ids"), "{err}");
}

#[tokio::test]
async fn many_concurrent_pulls_in_one_process_share_layers() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let tag = ["gzip", "zstd", "none", "docker"][i % 4];
        let r = f.reference(&format!("fixtures/standard:{tag}"));
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            registry.pull(&r, &PullOptions::default()).await
        }));
    }
    let mut layer_sets = Vec::new();
    for t in tasks {
        let res = t.await.unwrap().unwrap();
        assert_standard_layers(&res.layers);
        layer_sets.push(res.layers);
    }
    assert!(layer_sets.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(layer_dirs(f.cache_dir.path()).len(), 3);
    assert!(tmp_entries(f.cache_dir.path()).is_empty());
}

#[tokio::test]
async fn progress_events_arrive_in_order_even_for_a_slow_consumer() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let r = f.reference("fixtures/standard:zstd");
    let (mut progress, task) = registry.pull_with_progress(&r, &PullOptions::default());
    let mut events = Vec::new();
    while let Some(ev) = progress.recv().await {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        events.push(ev);
    }
    let res = task.await.unwrap().unwrap();
    use microsandbox_image::PullProgress as P;
    assert!(
        matches!(events.first(), Some(P::Resolving { .. })),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(P::Complete {
            cached: false,
            layer_count: 3,
            ..
        })
    ));
    let pos = |pred: &dyn Fn(&P) -> bool| events.iter().position(pred);
    let resolved = pos(&|e| matches!(e, P::Resolved { layer_count: 3, .. })).expect("Resolved");
    if let P::Resolved {
        total_download_bytes,
        ..
    } = &events[resolved]
    {
        let expected: u64 = f.gzip.layers.iter().map(|_| 0).sum::<u64>();
        assert!(*total_download_bytes > expected);
    }
    for i in 0..3 {
        let started =
            pos(&|e| matches!(e, P::LayerExtractStarted { layer_index, .. } if *layer_index == i))
                .expect("started");
        let downloaded = pos(
            &|e| matches!(e, P::LayerDownloadComplete { layer_index, .. } if *layer_index == i),
        )
        .expect("downloaded");
        let extracted =
            pos(&|e| matches!(e, P::LayerExtractComplete { layer_index, .. } if *layer_index == i))
                .expect("extracted");
        assert!(
            resolved < started && started < downloaded && downloaded < extracted,
            "{events:?}"
        );
    }
    assert_eq!(res.layers.len(), 3);
}
