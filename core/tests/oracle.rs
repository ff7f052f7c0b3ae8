//! The umoci oracle: for every fixture image, the merged view of our layers (`LayerStack`
//! over the sidecar indexes, contents read from the extracted trees) must equal what
//! `umoci unpack --rootless` makes of the same image, entry for entry: type, permission
//! bits, owner, size, content hash, symlink target, xattrs. See `msbimage_testkit::oracle`
//! for what rootless umoci can express (devices become empty files there).

mod common;

use std::collections::BTreeMap;

use common::Fixture;
use microsandbox_image::index::{EntryKind, LayerIndex, LayerStack};
use microsandbox_image::{Platform, PullOptions, PullResult, Registry};
use msbimage_testkit::oracle::{self, Kind, OracleEntry, sha256_hex};
use msbimage_testkit::{Compression, Image, ManifestFormat, write_oci_layout};

/// Our merged view, described like the oracle describes a root filesystem.
pub fn describe_pull(res: &PullResult) -> Vec<OracleEntry> {
    let stack = LayerStack::new(
        res.layers
            .iter()
            .map(|fs| LayerIndex::open(fs.parent().unwrap().join("index")).unwrap())
            .collect(),
    );
    let mut out: Vec<OracleEntry> = stack
        .walk()
        .map(Result::unwrap)
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, e)| {
            let on_disk = res.layers[e.layer()]
                .join(std::ffi::OsStr::new(std::str::from_utf8(&path).unwrap()));
            let (kind, size, sha256, link_target) = match e.kind() {
                EntryKind::Dir => (Kind::Dir, 0, None, None),
                EntryKind::Symlink => (Kind::Symlink, 0, None, e.link_target().map(<[u8]>::to_vec)),
                EntryKind::Fifo => (Kind::Fifo, 0, None, None),
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    (Kind::File, 0, Some(sha256_hex(b"")), None)
                }
                _ => {
                    let bytes = std::fs::read(&on_disk).unwrap();
                    assert_eq!(bytes.len() as u64, e.size(), "{}", on_disk.display());
                    (Kind::File, e.size(), Some(sha256_hex(&bytes)), None)
                }
            };
            OracleEntry {
                path,
                kind,
                perm: e.mode() & 0o7777,
                uid: e.uid(),
                gid: e.gid(),
                size,
                sha256,
                link_target,
                xattrs: e
                    .xattrs()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect::<BTreeMap<_, _>>(),
            }
        })
        .collect();
    out.sort();
    out
}

/// Pull `image` (pushed as `repo:tag`) and compare with umoci; returns entries compared.
async fn compare(f: &Fixture, repo: &str, tag: &str, image: &Image) -> usize {
    f.pusher().push_image(repo, tag, image).await.unwrap();
    let layout = tempfile::tempdir().unwrap();
    write_oci_layout(layout.path(), tag, image).unwrap();
    let oracle = oracle::umoci_unpack(layout.path(), tag).unwrap();
    let (os, arch, variant) = image.platform.clone();
    let platform = match variant {
        Some(v) => Platform::with_variant(os, arch, v),
        None => Platform::new(os, arch),
    };
    let res = Registry::builder(platform, f.cache())
        .durable(false)
        .build()
        .unwrap()
        .pull(
            &f.reference(&format!("{repo}:{tag}")),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let ours = describe_pull(&res);
    let diff = oracle::diff(&ours, &oracle);
    assert!(
        diff.is_empty(),
        "{repo}:{tag} differs from umoci:\n{}",
        diff.join("\n")
    );
    assert!(!ours.is_empty());
    ours.len()
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
    let rootfs =
        tokio::task::spawn_blocking(|| msbimage_testkit::tree::debootstrap_rootfs("bookworm"))
            .await
            .unwrap()
            .expect("debootstrap (run .ci/setup as root; needs the Debian archive)");
    let tars = msbimage_testkit::tree::debian_layers(&rootfs).unwrap();
    let mut builder = msbimage_testkit::ImageBuilder::new("linux", "amd64").cmd(&["/bin/bash"]);
    for tar in tars {
        builder = builder.layer(msbimage_testkit::Layer::from_tar(tar, Compression::Gzip));
    }
    let image = builder.build();
    let f = Fixture::start().await;
    let compared = compare(&f, "oracle/debian", "bookworm", &image).await;
    assert!(compared > 3000, "{compared}");
    // The deletions took effect in the merged view.
    println!("umoci oracle (debootstrap bookworm minbase, 3 layers): {compared} entries compared");
}
