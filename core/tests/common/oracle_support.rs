//! The umoci oracle (`tests/oracle.rs` on the fixture images, `tests/fidelity.rs` on images
//! made per test): our merged view (`LayerStack` over the sidecar indexes, contents from the
//! extracted trees) described like `msbimage_testkit::oracle` describes umoci's rootfs, and a
//! comparison of the two.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use microsandbox_image::index::{EntryKind, LayerIndex, LayerStack};
use microsandbox_image::{Platform, PullOptions, PullResult};
use msbimage_testkit::oracle::{self, Kind, OracleEntry, sha256_hex};
use msbimage_testkit::{Image, Pusher, Registry as TestRegistry, write_oci_layout};

use super::client_for;

/// The merged view of a pull's layers.
pub fn stack(res: &PullResult) -> LayerStack {
    LayerStack::new(
        res.layers
            .iter()
            .map(|fs| {
                LayerIndex::open(fs.parent().expect("layer dir").join("index")).expect("index")
            })
            .collect(),
    )
}

/// Our merged view, described like the oracle describes a root filesystem.
pub fn describe_pull(res: &PullResult) -> Vec<OracleEntry> {
    let stack = stack(res);
    let mut out: Vec<OracleEntry> = stack
        .walk()
        .map(Result::unwrap)
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, e)| {
            let on_disk = res.layers[e.layer()]
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path));
            let (kind, size, sha256, link_target) = match e.kind() {
                EntryKind::Dir => (Kind::Dir, 0, None, None),
                EntryKind::Symlink => (Kind::Symlink, 0, None, e.link_target().map(<[u8]>::to_vec)),
                EntryKind::Fifo => (Kind::Fifo, 0, None, None),
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    (Kind::File, 0, Some(sha256_hex(b"")), None)
                }
                _ => {
                    let bytes = std::fs::read(&on_disk).expect("read extracted file");
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

/// The platform `image` was built for.
pub fn platform_of(image: &Image) -> Platform {
    let (os, arch, variant) = image.platform.clone();
    match variant {
        Some(v) => Platform::with_variant(os, arch, v),
        None => Platform::new(os, arch),
    }
}

/// Push `image` as `repo:tag` and pull it (for its own platform) into the cache at `cache`.
pub async fn push_and_pull(
    registry: &TestRegistry,
    cache: &Path,
    repo: &str,
    tag: &str,
    image: &Image,
) -> PullResult {
    Pusher::new(&registry.base_url())
        .push_image(repo, tag, image)
        .await
        .expect("push");
    let reference = format!("{}/{repo}:{tag}", registry.host())
        .parse()
        .expect("reference");
    client_for(platform_of(image), cache)
        .build()
        .expect("registry")
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_or_else(|e| panic!("pull {repo}:{tag}: {e}"))
}

/// What `umoci unpack --rootless` makes of `image`, described.
pub fn umoci(image: &Image, tag: &str) -> Vec<OracleEntry> {
    let layout = tempfile::tempdir().expect("tempdir");
    write_oci_layout(layout.path(), tag, image).expect("oci layout");
    oracle::umoci_unpack(layout.path(), tag).expect("umoci unpack")
}

/// Differences between our merged view of `res` and umoci's unpack of `image` (empty when
/// equal), as readable lines.
pub fn umoci_diff(res: &PullResult, image: &Image, tag: &str) -> Vec<String> {
    oracle::diff(&describe_pull(res), &umoci(image, tag))
}

/// Push and pull `image`, assert our merged view equals umoci's; returns the pull and the
/// number of entries compared.
pub async fn compare(
    registry: &TestRegistry,
    cache: &Path,
    repo: &str,
    tag: &str,
    image: &Image,
) -> (PullResult, usize) {
    let res = push_and_pull(registry, cache, repo, tag, image).await;
    let ours = describe_pull(&res);
    let diff = oracle::diff(&ours, &umoci(image, tag));
    assert!(
        diff.is_empty(),
        "{repo}:{tag} differs from umoci:\n{}",
        diff.join("\n")
    );
    assert!(!ours.is_empty());
    (res, ours.len())
}

/// Debian bookworm minbase from debootstrap as a three-layer gzip image (the third layer
/// deletes files and makes a directory opaque): the real distro the oracle tests use.
pub async fn debian_image() -> Image {
    let rootfs =
        tokio::task::spawn_blocking(|| msbimage_testkit::tree::debootstrap_rootfs("bookworm"))
            .await
            .expect("debootstrap task")
            .expect("debootstrap (run .ci/setup as root; needs the Debian archive)");
    let tars = msbimage_testkit::tree::debian_layers(&rootfs).expect("debian layers");
    let mut builder = msbimage_testkit::ImageBuilder::new("linux", "amd64").cmd(&["/bin/bash"]);
    for tar in tars {
        builder = builder.layer(msbimage_testkit::Layer::from_tar(
            tar,
            msbimage_testkit::Compression::Gzip,
        ));
    }
    builder.build()
}
