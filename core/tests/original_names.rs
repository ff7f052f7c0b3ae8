//! Code written against the original `microsandbox-image` crate (superradcompany/microsandbox
//! at c748462c, `crates/image/lib/lib.rs`) names these exported types: `ImageError`,
//! `ImageResult`, `Arch`, `Os`, `PullProgressSender`, `progress_channel`,
//! `CachedImageMetadata`, `CachedLayerMetadata`. Each is used here as such code uses it, and
//! run against the loopback registry.

mod common;

use common::Fixture;
use microsandbox_image::{
    Arch, CachedImageMetadata, CachedLayerMetadata, GlobalCache, ImageError, ImageResult, Os,
    Platform, PullOptions, PullProgress, PullProgressSender, Reference, Registry, progress_channel,
};

/// A helper in the style of the original crate's users: `ImageResult` and `ImageError`.
async fn pull_and_read(
    registry: &Registry,
    reference: &Reference,
) -> ImageResult<CachedImageMetadata> {
    registry.pull(reference, &PullOptions::default()).await?;
    registry
        .cache()
        .image_metadata(reference, registry.platform())
        .ok_or_else(|| ImageError::NotCached {
            reference: reference.to_string(),
        })
}

fn forward(sender: &PullProgressSender, event: PullProgress) {
    sender.send(event);
}

#[tokio::test]
async fn original_names_compile_and_work() {
    let f = Fixture::start().await;
    let platform = Platform::new(Os::Linux, Arch::Amd64);
    assert_eq!(platform, Platform::new("linux", "amd64"));
    assert_eq!(
        Platform::with_variant(Os::Linux, Arch::ARM, "v7").to_string(),
        "linux/arm/v7"
    );

    let cache = GlobalCache::new(f.cache_dir.path()).unwrap();
    let registry = Registry::new(Platform::host_linux(), cache).unwrap();
    let reference: Reference = format!("{}/fixtures/standard:gzip", f.host())
        .parse()
        .unwrap();
    let meta = pull_and_read(&registry, &reference).await.unwrap();
    assert_eq!(meta.layers.len(), 3);
    let first: &CachedLayerMetadata = &meta.layers[0];
    assert!(first.digest.starts_with("sha256:") && first.diff_id.starts_with("sha256:"));
    assert!(first.size_bytes.is_some_and(|s| s > 0));
    assert!(meta.config_digest.starts_with("sha256:"));

    let (mut handle, sender) = progress_channel();
    forward(
        &sender,
        PullProgress::Resolving {
            reference: reference.to_string().into(),
        },
    );
    drop(sender);
    assert!(matches!(
        handle.recv().await,
        Some(PullProgress::Resolving { .. })
    ));
    assert!(handle.recv().await.is_none());
}
