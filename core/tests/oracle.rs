//! The umoci oracle: for every fixture image, the merged view of our layers (`LayerStack`
//! over the sidecar indexes, contents read from the extracted trees) must equal what
//! `umoci unpack --rootless` makes of the same image, entry for entry: type, permission
//! bits, owner, size, content hash, symlink target, xattrs. See `msbimage_testkit::oracle`
//! for what rootless umoci can express (devices become empty files there).

mod common;

use common::Fixture;
use common::oracle_support;
use msbimage_testkit::{Compression, Image, ManifestFormat};

/// Pull `image` (pushed as `repo:tag`) and compare with umoci; returns entries compared.
async fn compare(f: &Fixture, repo: &str, tag: &str, image: &Image) -> usize {
    oracle_support::compare(&f.registry, f.cache_dir.path(), repo, tag, image)
        .await
        .1
}

#[tokio::test]
async fn fixtures_match_umoci() {
    let f = Fixture::start().await;
    let mut compared = 0;
    for (tag, c, format) in [
        ("gzip", Compression::Gzip, ManifestFormat::Oci),
        ("none", Compression::None, ManifestFormat::Oci),
    ] {
        // (umoci reads only OCI manifests from a layout, and no zstd layers; the Docker v2
        // and zstd variants carry the same tars and are compared with these by diff_id in
        // tests/pull.rs.)
        let image = msbimage_testkit::fixtures::standard_image_with(c, format);
        compared += compare(&f, "oracle/standard", tag, &image).await;
    }
    let multi = msbimage_testkit::multiplatform(ManifestFormat::Oci);
    for (i, image) in multi.images.iter().enumerate() {
        compared += compare(&f, "oracle/multi", &format!("p{i}"), image).await;
    }
    println!("umoci oracle: {compared} entries compared");
}

/// A real distro: Debian bookworm minbase from debootstrap, as three layers (the third
/// deletes files and makes a directory opaque), pulled and compared with umoci.
#[tokio::test]
async fn debootstrap_image_matches_umoci() {
    let image = oracle_support::debian_image().await;
    let f = Fixture::start().await;
    let compared = compare(&f, "oracle/debian", "bookworm", &image).await;
    assert!(compared > 3000, "{compared}");
    // The deletions took effect in the merged view.
    println!("umoci oracle (debootstrap bookworm minbase, 3 layers): {compared} entries compared");
}
