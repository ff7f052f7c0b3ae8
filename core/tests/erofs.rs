//! EROFS images written by a pull (`outputs: ["directory", "erofs-layers", "erofs-flat"]`,
//! or the layer images alone, `["erofs-layers"]`, which must give the same bytes), checked
//! with real tools: `fsck.erofs` (Debian erofs-utils) on every image, and, as root, the
//! kernel: each layer image loop-mounted, the stack mounted as one read-only overlayfs in
//! layer order, the flat image loop-mounted, and each merged tree compared entry for entry
//! (type, mode, owner, size, content hash, symlink target, device numbers, xattrs, mtime)
//! with `umoci unpack` run as root on the same image.

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

fn flat_options() -> PullOptions {
    PullOptions {
        outputs: vec![Output::Directory, Output::ErofsLayers, Output::ErofsFlat],
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

/// Pull `image` with EROFS layers and its flat image, fsck every image, and (as root)
/// compare the mounted stack and the mounted flat image with umoci's unpack; returns the
/// entries compared (0 when not root).
async fn check_image(f: &Fixture, repo: &str, tag: &str, image: &Image) -> usize {
    f.push(repo, tag, image).await;
    let res = f
        .registry_client()
        .pull(&f.reference(&format!("{repo}:{tag}")), &flat_options())
        .await
        .expect("pull with EROFS layers");
    assert_eq!(res.layer_images.len(), res.layers.len());
    let flat = res.flat_image.clone().expect("the flat image's path");
    for image in res.layer_images.iter().chain([&flat]) {
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
    let flat_root = dir.path().join("flat");
    mounts.mount(&["-t", "erofs", "-o", "loop,ro"], &flat, &flat_root);
    let flat_tree = without_time_of(&root_tree::describe(&flat_root).unwrap(), &implicit);
    let diff = root_tree::diff(&flat_tree, &theirs);
    assert!(
        diff.is_empty(),
        "{repo}:{tag}: the flat EROFS image differs from umoci (as root):\n{}",
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

/// The flat image is one per manifest: a second reference to the same image gets the same
/// file, not written again; `gc` keeps it while an image names its manifest and deletes it
/// once none does.
#[tokio::test]
async fn a_flat_image_is_shared_by_references_and_collected_with_its_image() {
    use microsandbox_image::GcPolicy;
    let f = Fixture::start().await;
    f.push("erofs/flat", "a", &f.gzip).await;
    f.push("erofs/flat", "b", &f.gzip).await;
    let client = f.registry_client();
    let a = client
        .pull(&f.reference("erofs/flat:a"), &flat_options())
        .await
        .unwrap();
    let flat = a.flat_image.clone().unwrap();
    assert!(flat.is_file());
    assert!(flat.starts_with(f.cache().root()), "{}", flat.display());
    let written = std::fs::metadata(&flat).unwrap().modified().unwrap();
    let b = client
        .pull(&f.reference("erofs/flat:b"), &flat_options())
        .await
        .unwrap();
    assert_eq!(b.flat_image.as_ref(), Some(&flat));
    assert_eq!(
        std::fs::metadata(&flat).unwrap().modified().unwrap(),
        written,
        "written once"
    );
    // Past gc's grace for unnamed files: only whether an image names it decides.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let backdate = || {
        std::fs::File::options()
            .write(true)
            .open(&flat)
            .unwrap()
            .set_modified(old)
            .unwrap()
    };
    backdate();
    let cache = client.cache().clone();
    let report = cache.gc(&GcPolicy::default()).unwrap();
    assert_eq!(report.removed_flat_images, 0);
    assert!(flat.is_file(), "named by both images");
    assert!(cache.disk_usage().unwrap().flat_bytes > 0);
    for r in ["erofs/flat:a", "erofs/flat:b"] {
        cache.remove_image(&f.reference(r), None).unwrap();
    }
    let report = cache.gc(&GcPolicy::default()).unwrap();
    assert_eq!(report.removed_flat_images, 1);
    assert!(!flat.exists());
    // Asked again, it is written again from the layers.
    let c = client
        .pull(&f.reference("erofs/flat:a"), &flat_options())
        .await
        .unwrap();
    fsck(c.flat_image.as_ref().unwrap());
}

/// `verify` checks the flat image against the merge of the layers' indexes and their
/// content digests; `repair` writes a damaged one again, byte for byte what it was.
#[tokio::test]
async fn verify_finds_a_damaged_flat_image_and_repair_writes_it_again() {
    let f = Fixture::start().await;
    f.push("erofs/verify", "v1", &f.gzip).await;
    let client = f.registry_client();
    let res = client
        .pull(&f.reference("erofs/verify:v1"), &flat_options())
        .await
        .unwrap();
    let flat = res.flat_image.clone().unwrap();
    let good = std::fs::read(&flat).unwrap();
    let cache = client.cache().clone();
    let report = cache.verify(&[]).unwrap();
    assert!(report.is_clean(), "{:?}", report.images[0].problems);
    // Flip a byte a third of the way in: file data in this image.
    let mut bad = good.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0xff;
    std::fs::write(&flat, &bad).unwrap();
    let report = cache.verify(&[]).unwrap();
    let problems = &report.images[0].problems;
    assert!(!problems.is_empty(), "a flipped byte at {at} went unseen");
    let shown = flat.display().to_string();
    assert!(
        problems
            .iter()
            .all(|p| p.path.as_deref() == Some(shown.as_str())),
        "{problems:?}"
    );
    let repaired = client.repair(&report).await.unwrap();
    assert!(repaired.failed.is_empty(), "{:?}", repaired.failed);
    assert_eq!(std::fs::read(&flat).unwrap(), good);
    assert!(cache.verify(&[]).unwrap().is_clean());
}

/// A read-only cache answers with a flat image that is there, and says that writing one is
/// a write when it is not.
#[tokio::test]
async fn a_read_only_cache_gives_the_flat_image_it_holds() {
    use microsandbox_image::cache::CacheError;
    use microsandbox_image::{CacheOptions, Error, GlobalCache, Platform, PullPolicy, Registry};
    let f = Fixture::start().await;
    f.push("erofs/ro", "flat", &f.gzip).await;
    let other = msbimage_testkit::standard_image(msbimage_testkit::Compression::Zstd);
    f.push("erofs/ro", "plain", &other).await;
    let client = f.registry_client();
    let flat = client
        .pull(&f.reference("erofs/ro:flat"), &flat_options())
        .await
        .unwrap()
        .flat_image
        .unwrap();
    client
        .pull(&f.reference("erofs/ro:plain"), &erofs_options())
        .await
        .unwrap();
    let options = CacheOptions {
        read_only: true,
        ..CacheOptions::default()
    };
    let cache = GlobalCache::with_options(f.cache().root(), &options).unwrap();
    let reader = Registry::new(Platform::new("linux", "amd64"), cache).unwrap();
    let never = PullOptions {
        pull_policy: PullPolicy::Never,
        ..flat_options()
    };
    let res = reader
        .pull(&f.reference("erofs/ro:flat"), &never)
        .await
        .unwrap();
    assert_eq!(res.flat_image, Some(flat));
    let err = reader
        .pull(&f.reference("erofs/ro:plain"), &never)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Cache(CacheError::ReadOnly { .. })),
        "{err}"
    );
}

/// Layers pulled as their images alone give the flat image the same bytes (its file data
/// read back from the layer images); the flat image alone, with nothing for the layers to
/// become, is refused.
#[tokio::test]
async fn a_flat_image_from_image_only_layers_is_the_same() {
    let f = Fixture::start().await;
    f.push("erofs/flat-only", "v1", &f.gzip).await;
    let reference = f.reference("erofs/flat-only:v1");
    let with_trees = f
        .registry_client()
        .pull(&reference, &flat_options())
        .await
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    let images_only = PullOptions {
        outputs: vec![Output::ErofsLayers, Output::ErofsFlat],
        ..Default::default()
    };
    let client = common::client_in(other.path()).build().unwrap();
    let without = client.pull(&reference, &images_only).await.unwrap();
    assert!(without.layers.iter().all(|t| !t.exists()), "no trees");
    let (a, b) = (with_trees.flat_image.unwrap(), without.flat_image.unwrap());
    assert_ne!(a, b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(client.cache().verify(&[]).unwrap().is_clean());
    let flat_alone = PullOptions {
        outputs: vec![Output::ErofsFlat],
        ..Default::default()
    };
    let err = client.pull(&reference, &flat_alone).await.unwrap_err();
    assert_eq!(
        err.kind(),
        microsandbox_image::ErrorKind::InvalidArgument,
        "{err}"
    );
}

/// The flat image is written from the layers' indexes: asking for it without them is
/// refused before anything is fetched.
#[tokio::test]
async fn a_flat_image_without_indexes_is_refused() {
    let f = Fixture::start().await;
    let opts = PullOptions {
        build_index: false,
        ..flat_options()
    };
    let err = f
        .registry_client()
        .pull(&f.reference("erofs/flat-noindex:v1"), &opts)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        microsandbox_image::ErrorKind::InvalidArgument,
        "{err}"
    );
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

/// The hostile archives of the extractor's fuzz target and the differential harness
/// (`msbimage_testkit::tar_gen`, well-formed streams), a few hundred seeds: each the
/// extractor accepts gets its EROFS image in the same pass, which `fsck.erofs` must accept
/// and our reader must read back equal to the layer's index (every path, type, mode, owner,
/// time, size, device, target, xattr, whiteout and opaque marker, hardlink) with every
/// file's data matching the digest taken at extraction: `verify`'s own image check.
#[test]
fn generated_archives_give_images_fsck_and_our_reader_accept_equal_to_the_index() {
    use msbimage_testkit::tar_gen::{Profile, SplitMix64, generate};
    let profile = Profile {
        max_entries: 16,
        ..Profile::default()
    };
    let (mut accepted, mut refused) = (0, 0);
    for seed in 0..600u64 {
        let tar = generate(&mut SplitMix64(seed), &profile);
        let dir = tempfile::tempdir().unwrap();
        let (root, image) = (dir.path().join("fs"), dir.path().join("layer.erofs"));
        std::fs::create_dir(&root).unwrap();
        for opaque in [OpaqueXattr::Trusted, OpaqueXattr::User] {
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir(&root).unwrap();
            let _ = std::fs::remove_file(&image);
            let _ = std::fs::remove_file(dir.path().join("layer.erofs.tails"));
            let problems =
                match microsandbox_image::layer::fuzz_extract_erofs(&tar, &root, &image, opaque) {
                    Ok(problems) => problems,
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                };
            assert!(
                problems.is_empty(),
                "seed {seed} ({opaque:?}): {problems:#?}"
            );
            fsck(&image);
            accepted += u32::from(opaque == OpaqueXattr::Trusted);
        }
    }
    eprintln!("{accepted} archives accepted (their images checked), {refused} refused");
    // The generator is meant to make both kinds, many of each.
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}
