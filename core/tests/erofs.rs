//! EROFS layer images written by a pull (`outputs: ["directory", "erofs-layers"]`, or the
//! images alone, `["erofs-layers"]`, which must give the same bytes), checked
//! with real tools: `fsck.erofs` (Debian erofs-utils) on every image, and, as root, the
//! kernel: each layer image loop-mounted, the stack mounted as one read-only overlayfs in
//! layer order, and the merged tree compared entry for entry (type, mode, owner, size,
//! content hash, symlink target, device numbers, xattrs, mtime) with `umoci unpack` run as
//! root on the same image.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, oracle_support};
use microsandbox_image::{OpaqueXattr, Output, PullOptions, PullResult};
use msbimage_testkit::Image;
use msbimage_testkit::oci_layout::write_oci_layout;
use msbimage_testkit::root_tree;

fn erofs_options() -> PullOptions {
    PullOptions {
        outputs: vec![Output::Directory, Output::ErofsLayers],
        ..Default::default()
    }
}

fn fsck(image: &Path) {
    let out = Command::new("fsck.erofs")
        .arg(image)
        .output()
        .expect("fsck.erofs (Debian erofs-utils; .ci/setup installs it)");
    assert!(
        out.status.success(),
        "fsck.erofs {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Mounts undone in reverse order on drop.
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn mount(&mut self, args: &[&str], source: &Path, at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(args)
            .arg(source)
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {args:?} {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.0.push(at.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.0.iter().rev() {
            let _ = Command::new("umount").arg(at).status();
        }
    }
}

/// Mount the pull's layer images and their overlay under `dir`; the merged root.
fn mount_stack(res: &PullResult, dir: &Path, mounts: &mut Mounts) -> PathBuf {
    let mut lowers = Vec::new();
    for (i, image) in res.layer_images.iter().enumerate() {
        let at = dir.join(format!("layer{i}"));
        mounts.mount(&["-t", "erofs", "-o", "loop,ro"], image, &at);
        lowers.push(at);
    }
    if lowers.len() == 1 {
        return lowers.remove(0);
    }
    // overlayfs lists lower directories top first.
    let lowerdir = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let merged = dir.join("merged");
    mounts.mount(
        &["-t", "overlay", "-o", &format!("ro,lowerdir={lowerdir}")],
        Path::new("overlay"),
        &merged,
    );
    merged
}

/// Pull `image` with EROFS layers, fsck every image, and (as root) compare the mounted stack
/// with umoci's unpack; returns the entries compared (0 when not root).
async fn check_image(f: &Fixture, repo: &str, tag: &str, image: &Image) -> usize {
    f.push(repo, tag, image).await;
    let res = f
        .registry_client()
        .pull(&f.reference(&format!("{repo}:{tag}")), &erofs_options())
        .await
        .expect("pull with EROFS layers");
    assert_eq!(res.layer_images.len(), res.layers.len());
    for image in &res.layer_images {
        fsck(image);
    }
    if !is_root() {
        eprintln!("not root: the kernel mounts are checked where tests run as root (CI)");
        return 0;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut mounts = Mounts::default();
    let merged = mount_stack(&res, dir.path(), &mut mounts);
    let ours = root_tree::describe(&merged).unwrap();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, tag, image).unwrap();
    let bundle = dir.path().join("bundle");
    root_tree::umoci_unpack_as_root(&layout, tag, &bundle).unwrap();
    let theirs = root_tree::describe(&bundle.join("rootfs")).unwrap();
    // A directory a layer did not list but needed as a parent (implicit) has no time of its
    // own: umoci shows when it wrote into it, the image the placeholder (`FORMAT.md`). Only
    // that time is set aside; its type, mode and owner are still compared.
    let implicit = implicit_dirs(&res);
    let (ours, theirs) = (
        without_time_of(&ours, &implicit),
        without_time_of(&theirs, &implicit),
    );
    let diff = root_tree::diff(&ours, &theirs);
    assert!(
        diff.is_empty(),
        "{repo}:{tag}: the EROFS stack differs from umoci (as root):\n{}",
        diff.join("\n")
    );
    ours.len()
}

/// The paths of directories some layer holds only as implicit parents (escaped as the
/// listing escapes them).
fn implicit_dirs(res: &PullResult) -> std::collections::BTreeSet<String> {
    use microsandbox_image::index::LayerIndex;
    let mut out = std::collections::BTreeSet::new();
    for path in &res.layer_indexes {
        let index = LayerIndex::open(path).unwrap();
        let mut dirs = vec![Vec::<u8>::new()];
        while let Some(dir) = dirs.pop() {
            for e in index.read_dir(&dir).unwrap().into_iter().flatten() {
                if e.is_dir() {
                    if e.is_implicit() {
                        out.insert(root_tree::escape(&e.path()));
                    }
                    dirs.push(e.path());
                }
            }
        }
    }
    out
}

/// `lines` with the time of the directories in `implicit` left out.
fn without_time_of(lines: &[String], implicit: &std::collections::BTreeSet<String>) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let path = l.split(' ').next().unwrap_or_default();
            if implicit.contains(path) && l[path.len()..].starts_with(" d ") {
                l.split(' ')
                    .filter(|w| !w.starts_with("t="))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                l.clone()
            }
        })
        .collect()
}

#[tokio::test]
async fn fixture_layers_as_erofs_match_umoci() {
    let f = Fixture::start().await;
    let image = f.gzip.clone();
    let compared = check_image(&f, "erofs/standard", "gzip", &image).await;
    println!("EROFS stack against umoci: {compared} entries");
}

#[tokio::test]
async fn debootstrap_layers_as_erofs_match_umoci() {
    let image = oracle_support::debian_image().await;
    let f = Fixture::start().await;
    let compared = check_image(&f, "erofs/debian", "bookworm", &image).await;
    if is_root() {
        assert!(compared > 3000, "{compared}");
    }
    println!("EROFS stack of debootstrap bookworm against umoci: {compared} entries");
}

/// Two pulls of the same layers (two caches) write byte-identical images.
#[tokio::test]
async fn the_same_layer_gives_the_same_image() {
    let f = Fixture::start().await;
    f.push("erofs/same", "v1", &f.gzip).await;
    let reference = f.reference("erofs/same:v1");
    let first = f
        .registry_client()
        .pull(&reference, &erofs_options())
        .await
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let second = common::client_in(other.path())
        .build()
        .unwrap()
        .pull(&reference, &erofs_options())
        .await
        .unwrap();
    for (a, b) in first.layer_images.iter().zip(&second.layer_images) {
        assert_ne!(a, b);
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}",
            a.display()
        );
    }
}

/// A layer cached without an image gets one when a pull asks for it (the blob is pulled
/// again; the tree is swapped in as a forced pull does), and the opaque marker asked for
/// decides which image is wanted.
#[tokio::test]
async fn a_cached_layer_gets_its_image_when_asked() {
    let f = Fixture::start().await;
    f.push("erofs/later", "v1", &f.gzip).await;
    let reference = f.reference("erofs/later:v1");
    let client = f.registry_client();
    let plain = client
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert!(plain.layer_images.iter().all(|p| !p.exists()));
    let with = client.pull(&reference, &erofs_options()).await.unwrap();
    assert!(
        !with.cached,
        "the layers were pulled again for their images"
    );
    assert!(with.layer_images.iter().all(|p| p.is_file()));
    let again = client.pull(&reference, &erofs_options()).await.unwrap();
    assert!(again.cached, "the images are in the cache now");
    let user = PullOptions {
        erofs_opaque_xattr: OpaqueXattr::User,
        ..erofs_options()
    };
    let other = client.pull(&reference, &user).await.unwrap();
    assert!(
        !other.cached,
        "images with the other opaque marker are written"
    );
    for image in &other.layer_images {
        fsck(image);
    }
}

fn image_only() -> PullOptions {
    PullOptions {
        outputs: vec![Output::ErofsLayers],
        ..Default::default()
    }
}

/// Pull `repo:tag` image-only into one cache and with the directory too into another: the
/// images are byte-identical (so what the mounted stack is checked against holds for both),
/// fsck-clean, and the image-only layers hold no tree; `verify`, `ls` and `du` see them
/// whole; `unpack` refuses them clearly. Returns the image-only result.
async fn image_only_matches(f: &Fixture, repo: &str, tag: &str, image: &Image) -> PullResult {
    f.push(repo, tag, image).await;
    let reference = f.reference(&format!("{repo}:{tag}"));
    let alone = f
        .registry_client()
        .pull(&reference, &image_only())
        .await
        .expect("image-only pull");
    let other = tempfile::tempdir().unwrap();
    let both = common::client_in(other.path())
        .build()
        .unwrap()
        .pull(&reference, &erofs_options())
        .await
        .unwrap();
    assert_eq!(alone.layer_images.len(), both.layer_images.len());
    for (a, b) in alone.layer_images.iter().zip(&both.layer_images) {
        fsck(a);
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{}: not the bytes of the image written beside the tree",
            a.display()
        );
    }
    for (fs, index) in alone.layers.iter().zip(&alone.layer_indexes) {
        assert!(!fs.exists(), "{}: a tree was written", fs.display());
        assert!(index.is_file(), "{}", index.display());
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fs.with_file_name("meta.json")).unwrap())
                .unwrap();
        assert_eq!(meta["image_only"], true, "{meta}");
    }
    // The index is there: the merged view of the metadata works.
    assert!(alone.layer_stack().unwrap().get(b"").unwrap().is_some());
    let cache = f.cache();
    let report = cache.verify(&[]).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let images = cache.images().unwrap();
    assert!(images.iter().all(|i| i.complete), "{images:?}");
    for layer in cache.layers().unwrap() {
        let image = cache.layer_erofs(&layer.diff_id);
        assert!(layer.bytes >= std::fs::metadata(&image).unwrap().len());
    }
    let dest = tempfile::tempdir().unwrap();
    let err = alone
        .unpack(&dest.path().join("rootfs"), &Default::default())
        .unwrap_err();
    assert_eq!(err.kind(), microsandbox_image::ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("has no tree"), "{err}");
    alone
}

#[tokio::test]
async fn image_only_fixture_layers_are_the_same_images() {
    let f = Fixture::start().await;
    let image = f.gzip.clone();
    image_only_matches(&f, "erofs/alone", "gzip", &image).await;
}

#[tokio::test]
async fn image_only_debootstrap_layers_are_the_same_images() {
    let image = oracle_support::debian_image().await;
    let f = Fixture::start().await;
    image_only_matches(&f, "erofs/alone-debian", "bookworm", &image).await;
}

/// Image-only layers are cached for image-only pulls; a pull asking for the directory
/// rebuilds them with their tree (and keeps their image), after which both kinds of pull
/// are warm.
#[tokio::test]
async fn image_only_layers_are_warm_and_rebuilt_for_the_directory() {
    let f = Fixture::start().await;
    f.push("erofs/warm", "v1", &f.gzip).await;
    let reference = f.reference("erofs/warm:v1");
    let client = f.registry_client();
    let first = client.pull(&reference, &image_only()).await.unwrap();
    assert!(!first.cached);
    let bytes: Vec<Vec<u8>> = first
        .layer_images
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let warm = client.pull(&reference, &image_only()).await.unwrap();
    assert!(
        warm.cached,
        "image-only layers are cached for an image-only pull"
    );
    let tree = client
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap();
    assert!(!tree.cached, "the layers were pulled again for their trees");
    assert!(tree.layers.iter().all(|p| p.is_dir()));
    for (p, b) in tree.layer_images.iter().zip(&bytes) {
        assert!(&std::fs::read(p).unwrap() == b, "the image was kept");
    }
    let dest = tempfile::tempdir().unwrap();
    tree.unpack(&dest.path().join("rootfs"), &Default::default())
        .unwrap();
    for opts in [image_only(), PullOptions::default(), erofs_options()] {
        let again = client.pull(&reference, &opts).await.unwrap();
        assert!(again.cached, "{:?}", opts.outputs);
    }
    assert!(f.cache().verify(&[]).unwrap().is_clean());
}

/// A failed image-only pull leaves nothing that looks published: no layer directory, no
/// staging debris, no record (the image is written in the staging directory, as the tree is).
#[tokio::test]
async fn a_failed_image_only_pull_leaves_nothing() {
    let f = Fixture::start().await;
    let good = msbimage_testkit::LayerBuilder::new()
        .file("ok", b"fine", 0o644)
        .build(msbimage_testkit::Compression::Gzip);
    let bad = msbimage_testkit::LayerBuilder::new()
        .hardlink("x", "nowhere")
        .build(msbimage_testkit::Compression::Gzip);
    let image = msbimage_testkit::ImageBuilder::new("linux", "amd64")
        .layer(good.clone())
        .layer(bad.clone())
        .build();
    f.push("erofs/broken", "v1", &image).await;
    let err = f
        .registry_client()
        .pull(&f.reference("erofs/broken:v1"), &image_only())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hardlink target"), "{err}");
    let cache = f.cache();
    let bad_id: microsandbox_image::Digest = bad.diff_id.parse().unwrap();
    assert!(!cache.has_layer(&bad_id));
    assert!(!cache.layer_dir(&bad_id).exists());
    assert!(common::names_in(&cache.root().join("tmp")).is_empty());
    assert!(common::names_in(&cache.root().join("images")).is_empty());
}

/// No output at all is refused before anything is fetched.
#[tokio::test]
async fn no_output_is_refused() {
    let f = Fixture::start().await;
    let opts = PullOptions {
        outputs: vec![],
        ..Default::default()
    };
    let err = f
        .registry_client()
        .pull(&f.reference("erofs/none:v1"), &opts)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        microsandbox_image::ErrorKind::InvalidArgument,
        "{err}"
    );
}
