//! The collection after a pull (`cacheMaxSize`, `msbimage pull --cache-max-size`): with a cap,
//! a pull that downloaded a layer evicts the least recently used images until the layers fit,
//! never the image it just pulled; without a cap nothing is evicted; a collection that fails
//! does not fail the pull.
#![cfg(feature = "cli")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Env, client_in, layer_dirs};
use microsandbox_image::{GlobalCache, PullOptions, PullPolicy, Reference};
use msbimage_testkit::{Compression, ImageBuilder, LayerBuilder, RegistryOptions};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

/// Bytes of the one file in each image's one layer.
const FILE_BYTES: usize = 1 << 20;

/// Room for one image's layer (the file plus its index and metadata), not for two.
const CAP: u64 = FILE_BYTES as u64 * 3 / 2;

/// The content of image `i`'s file: distinct per image, so no two share a layer.
fn content(i: usize) -> Vec<u8> {
    vec![b'a' + i as u8; FILE_BYTES]
}

/// Pushes `n` images of one distinct 1 MiB layer each, as `cap/img:<i>`.
async fn push_images(env: &Env, n: usize) -> Vec<Reference> {
    let mut refs = Vec::new();
    for i in 0..n {
        let image = ImageBuilder::new("linux", "amd64")
            .layer(
                LayerBuilder::new()
                    .file("data/blob", content(i), 0o644)
                    .build(Compression::Gzip),
            )
            .build();
        env.push("cap/img", &i.to_string(), &image).await;
        refs.push(env.reference(&format!("cap/img:{i}")));
    }
    refs
}

/// The names of the images in `cache`, sorted.
fn image_names(cache: &GlobalCache) -> Vec<String> {
    let mut names: Vec<String> = cache
        .images()
        .unwrap()
        .into_iter()
        .flat_map(|i| i.names)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cap_keeps_the_newest_image_and_no_cap_keeps_them_all() {
    let env = Env::start(RegistryOptions::plain()).await;
    let refs = push_images(&env, 3).await;

    // A cap with room for one image: each pull evicts the one before it.
    let capped = tempfile::tempdir().unwrap();
    let registry = client_in(capped.path())
        .cache_max_size(Some(CAP))
        .build()
        .unwrap();
    let cache = registry.cache().clone();
    for (i, reference) in refs.iter().enumerate() {
        let result = registry
            .pull(reference, &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            image_names(&cache),
            [reference.to_string()],
            "after pull {i}"
        );
        assert_eq!(
            layer_dirs(capped.path()),
            [result.layer_diff_ids[0].hex().to_owned()],
            "after pull {i}: the evicted images' layers are gone"
        );
        // The image just pulled is complete and usable.
        let stack = result.layer_stack().unwrap();
        let entry = stack.get(b"data/blob").unwrap().expect("data/blob");
        assert_eq!(entry.size(), FILE_BYTES as u64);
        let bytes = std::fs::read(result.layers[0].join("data/blob")).unwrap();
        assert!(bytes == content(i), "pull {i}: the file's content");
    }
    let last = refs.last().unwrap();
    let offline = PullOptions {
        pull_policy: PullPolicy::Never,
        ..PullOptions::default()
    };
    let again = registry.pull(last, &offline).await.unwrap();
    assert!(again.cached, "the last image is complete in the cache");

    // No cap: nothing is evicted.
    let uncapped = tempfile::tempdir().unwrap();
    let registry = client_in(uncapped.path()).build().unwrap();
    for reference in &refs {
        registry
            .pull(reference, &PullOptions::default())
            .await
            .unwrap();
    }
    let mut all: Vec<String> = refs.iter().map(Reference::to_string).collect();
    all.sort();
    assert_eq!(image_names(registry.cache()), all);
    assert_eq!(layer_dirs(uncapped.path()).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cap_below_the_image_just_pulled_evicts_everything_but_it() {
    let env = Env::start(RegistryOptions::plain()).await;
    let refs = push_images(&env, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let uncapped = client_in(dir.path()).build().unwrap();
    for reference in &refs[..2] {
        uncapped
            .pull(reference, &PullOptions::default())
            .await
            .unwrap();
    }
    // All three records fall within the same second or two: least-recently-used order alone
    // cannot tell the newest apart, and a cap of 0 would take every image. The pull spares
    // its own record; its layers are held by the result.
    let capped = client_in(dir.path())
        .cache_max_size(Some(0))
        .build()
        .unwrap();
    let result = capped
        .pull(&refs[2], &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(image_names(capped.cache()), [refs[2].to_string()]);
    assert_eq!(
        layer_dirs(dir.path()),
        [result.layer_diff_ids[0].hex().to_owned()]
    );
    drop(result);
    let offline = PullOptions {
        pull_policy: PullPolicy::Never,
        ..PullOptions::default()
    };
    assert!(uncapped.pull(&refs[2], &offline).await.unwrap().cached);

    // A warm pull downloads nothing and collects nothing, whatever the cap.
    uncapped
        .pull(&refs[0], &PullOptions::default())
        .await
        .unwrap();
    capped
        .pull(&refs[2], &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(image_names(capped.cache()).len(), 2);

    // keep-recent spares images used within it, even above the cap.
    let keep = client_in(dir.path())
        .cache_max_size(Some(0))
        .cache_keep_recent(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    keep.pull(&refs[1], &PullOptions::default()).await.unwrap();
    assert_eq!(image_names(keep.cache()).len(), 3);
}

fn cli_pull(
    cache: &std::path::Path,
    reference: &Reference,
    extra: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .args(["pull", &reference.to_string(), "--progress", "none"])
        .args(extra)
        .arg("--cache")
        .arg(cache)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_takes_a_cap_and_a_failed_collection_does_not_fail_the_pull() {
    let env = Env::start(RegistryOptions::plain()).await;
    let refs = push_images(&env, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();
    for reference in &refs[..2] {
        let out = cli_pull(cache, reference, &["--cache-max-size", "1.5M"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cache_handle = GlobalCache::new(cache).unwrap();
    assert_eq!(image_names(&cache_handle), [refs[1].to_string()]);
    let bad = cli_pull(cache, &refs[2], &["--cache-max-size", "5X"]);
    assert_eq!(bad.status.code(), Some(2), "a size it cannot read");

    // gc cannot take its lock (a directory where the lock file goes): the pull still
    // succeeds, with a warning naming the cause, and nothing is evicted.
    let gc_lock = cache.join("locks/gc.lock");
    let _ = std::fs::remove_file(&gc_lock);
    std::fs::create_dir(&gc_lock).unwrap();
    let out = cli_pull(cache, &refs[2], &["--cache-max-size", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("msbimage: warning: ")
            && stderr.contains("cacheMaxSize")
            && stderr.contains("gc.lock"),
        "{stderr}"
    );
    assert_eq!(image_names(&cache_handle).len(), 2);
}
