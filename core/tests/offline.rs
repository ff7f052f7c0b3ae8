//! Offline images: pulls from OCI layouts and docker archives, and `save` to both, checked
//! against a real registry on loopback with skopeo as the other side of every round trip
//! (skopeo writes what we read, and reads what we write), plus hostile and malformed input.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Fixture, client_in};
use microsandbox_image::{ErrorKind, ImageSource, PullOptions, PullPolicy, PullResult, Registry};
use msbimage_testkit::{Compression, oci_layout::write_oci_layout, standard_image};

/// Runs skopeo with `args` (TLS off: the test registry is plain HTTP on loopback).
fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy(from: &str, to: &str) {
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        from,
        to,
    ]);
}

/// A client with its own fresh cache.
fn fresh() -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = client_in(dir.path()).build().expect("registry");
    (registry, dir)
}

async fn pull_source(registry: &Registry, source: &str) -> microsandbox_image::Result<PullResult> {
    let source: ImageSource = source.parse().expect("source");
    registry.pull_source(&source, &PullOptions::default()).await
}

/// `repo_tag` pulled from the fixture registry into its cache.
async fn registry_pull(fx: &Fixture, repo_tag: &str) -> PullResult {
    fx.registry_client()
        .pull(&fx.reference(repo_tag), &PullOptions::default())
        .await
        .expect("registry pull")
}

/// The same image, as the cache sees it (indexes differ only in host inode numbers).
fn assert_same_image(a: &PullResult, b: &PullResult) {
    assert_eq!(a.layer_diff_ids, b.layer_diff_ids);
    assert_eq!(a.config_digest, b.config_digest);
    assert_eq!(a.config.entrypoint, b.config.entrypoint);
    assert_eq!(a.config.env, b.config.env);
    // The diff_ids were verified against the extracted streams: same content. Each tree is
    // complete with its index.
    for index in a.layer_indexes.iter().chain(&b.layer_indexes) {
        assert!(index.is_file(), "{}", index.display());
    }
}

#[tokio::test]
async fn skopeo_oci_layout_pulls_like_the_registry() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let reference = fx.reference("fixtures/standard:gzip");
    let from_registry = fx
        .registry_client()
        .pull(&reference, &PullOptions::default())
        .await
        .expect("registry pull");

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("standard");
    copy(
        &format!("docker://{host}/fixtures/standard:gzip"),
        &format!("oci:{}:v1", dir.display()),
    );
    let (registry, _cache) = fresh();
    let local = pull_source(&registry, &format!("oci-layout:{}:v1", dir.display()))
        .await
        .expect("layout pull");
    assert_same_image(&local, &from_registry);
    assert_eq!(local.manifest_digest, from_registry.manifest_digest);
    assert_eq!(local.reference.to_string(), "localhost/standard:v1");
    assert!(!local.cached);
    // Recorded under that name: a pull that may not read anything answers from the cache.
    let warm = registry
        .pull(
            &local.reference,
            &PullOptions {
                pull_policy: PullPolicy::Never,
                ..Default::default()
            },
        )
        .await
        .expect("warm pull by the recorded name");
    assert!(warm.cached);
    assert_eq!(warm.manifest_digest, local.manifest_digest);
}

#[tokio::test]
async fn oci_layout_with_an_index_follows_the_platform() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let from_registry = registry_pull(&fx, "fixtures/multi:latest").await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("multi");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{host}/fixtures/multi:latest"),
        &format!("oci:{}:latest", dir.display()),
    ]);
    let (registry, _cache) = fresh();
    let local = pull_source(&registry, &format!("oci-layout:{}", dir.display()))
        .await
        .expect("layout pull");
    assert_same_image(&local, &from_registry);
    assert_eq!(local.manifest_digest, from_registry.manifest_digest);
    assert_eq!(local.index_digest, from_registry.index_digest);
    // By digest too.
    let index = from_registry.index_digest.clone().expect("an index");
    let by_digest = pull_source(&registry, &format!("oci-layout:{}@{index}", dir.display()))
        .await
        .expect("pull by digest");
    assert_eq!(by_digest.manifest_digest, from_registry.manifest_digest);
}

#[tokio::test]
async fn skopeo_docker_archive_pulls_like_the_registry() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let from_registry = registry_pull(&fx, "fixtures/standard:gzip").await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("standard.tar");
    copy(
        &format!("docker://{host}/fixtures/standard:gzip"),
        &format!("docker-archive:{}:offline/standard:v2", file.display()),
    );
    let (registry, _cache) = fresh();
    let local = pull_source(&registry, &format!("docker-archive:{}", file.display()))
        .await
        .expect("archive pull");
    assert_same_image(&local, &from_registry);
    assert_eq!(local.reference.to_string(), "docker.io/offline/standard:v2");
    // Naming the image explicitly picks the same one; a name it lacks lists what it has.
    let named = pull_source(
        &registry,
        &format!("docker-archive:{}:offline/standard:v2", file.display()),
    )
    .await
    .expect("named archive pull");
    assert_eq!(named.manifest_digest, local.manifest_digest);
    let err = pull_source(
        &registry,
        &format!("docker-archive:{}:nope:v1", file.display()),
    )
    .await
    .expect_err("no such image");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("offline/standard:v2"), "{err}");
}

#[tokio::test]
async fn saved_layout_goes_through_skopeo_back_to_a_registry() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let reference = fx.reference("fixtures/standard:gzip");
    let registry = fx.registry_client();
    let original = registry
        .pull(&reference, &PullOptions::default())
        .await
        .expect("pull");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("saved");
    let target: ImageSource = format!("oci-layout:{}:t1", dir.display()).parse().unwrap();
    let report = registry
        .save(&ImageSource::Registry(reference.clone()), &target, None)
        .await
        .expect("save");
    assert_eq!(report.manifest_digest, original.manifest_digest);
    assert_eq!(report.blobs_written, 5, "3 layers, config, manifest");
    // umoci reads it as well.
    let bundle = out.path().join("bundle");
    let umoci = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t1", dir.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        umoci.status.success(),
        "{}",
        String::from_utf8_lossy(&umoci.stderr)
    );
    copy(
        &format!("oci:{}:t1", dir.display()),
        &format!("docker://{host}/saved/layout:t1"),
    );
    let (fresh_registry, _cache) = fresh();
    let back = fresh_registry
        .pull(&fx.reference("saved/layout:t1"), &PullOptions::default())
        .await
        .expect("pull what skopeo pushed");
    assert_same_image(&back, &original);
    assert_eq!(back.manifest_digest, original.manifest_digest);
    // Saving again into the same layout writes only the index.
    let again = registry
        .save(&ImageSource::Registry(reference), &target, None)
        .await
        .expect("save again");
    assert_eq!(again.blobs_written, 0);
}

#[tokio::test]
async fn saved_archive_goes_through_skopeo_back_to_a_registry() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let reference = fx.reference("fixtures/standard:gzip");
    let registry = fx.registry_client();
    let original = registry
        .pull(&reference, &PullOptions::default())
        .await
        .expect("pull");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("saved.tar");
    let target: ImageSource = format!("docker-archive:{}", file.display())
        .parse()
        .unwrap();
    registry
        .save(&ImageSource::Registry(reference.clone()), &target, None)
        .await
        .expect("save");
    assert!(
        names_in_dir(out.path())
            .iter()
            .all(|n| !n.contains(".tmp-"))
    );
    copy(
        &format!("docker-archive:{}", file.display()),
        &format!("docker://{host}/saved/archive:t1"),
    );
    let (fresh_registry, _cache) = fresh();
    let back = fresh_registry
        .pull(&fx.reference("saved/archive:t1"), &PullOptions::default())
        .await
        .expect("pull what skopeo pushed");
    assert_same_image(&back, &original);
    // And we read our own archive: the image is recorded under the name it was saved as.
    let (again, _cache2) = fresh();
    let local = pull_source(&again, &format!("docker-archive:{}", file.display()))
        .await
        .expect("pull our archive");
    assert_same_image(&local, &original);
    assert_eq!(local.reference, reference);
}

fn names_in_dir(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A layout of the standard image written by the harness, and the path of its first layer's
/// blob.
fn harness_layout(
    root: &Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    msbimage_testkit::Image,
) {
    let image = standard_image(Compression::Gzip);
    let dir = root.join("layout");
    write_oci_layout(&dir, "v1", &image).expect("write layout");
    let hex = image.layers[0]
        .digest
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let blob = dir.join("blobs/sha256").join(hex);
    (dir, blob, image)
}

#[tokio::test]
async fn corrupted_layout_blob_is_refused_and_nothing_is_published() {
    let root = tempfile::tempdir().unwrap();
    let (dir, blob, image) = harness_layout(root.path());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let (registry, cache) = fresh();
    let err = pull_source(&registry, &format!("oci-layout:{}:v1", dir.display()))
        .await
        .expect_err("corrupted blob");
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    let layers = common::layer_dirs(cache.path());
    let corrupted = image.layers[0].diff_id.strip_prefix("sha256:").unwrap();
    assert!(
        !layers.iter().any(|l| l == corrupted),
        "the corrupted layer must not be published: {layers:?}"
    );
    assert!(
        common::tmp_entries(cache.path())
            .iter()
            .all(|n| !n.starts_with("layer-"))
    );
}

#[tokio::test]
async fn missing_layout_blob_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let (dir, blob, _) = harness_layout(root.path());
    std::fs::remove_file(&blob).unwrap();
    let (registry, cache) = fresh();
    let err = pull_source(&registry, &format!("oci-layout:{}:v1", dir.display()))
        .await
        .expect_err("missing blob");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains(&blob.display().to_string()),
        "{err}"
    );
    assert!(
        common::layer_dirs(cache.path()).is_empty(),
        "checked before any layer"
    );
}

#[tokio::test]
async fn ambiguous_and_unknown_tags_list_the_names() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = harness_layout(root.path());
    write_oci_layout(&dir, "v2", &standard_image(Compression::Zstd)).unwrap();
    let (registry, _cache) = fresh();
    let err = pull_source(&registry, &format!("oci-layout:{}", dir.display()))
        .await
        .expect_err("two images, none named");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains("v1") && err.to_string().contains("v2"),
        "{err}"
    );
    let err = pull_source(&registry, &format!("oci-layout:{}:v3", dir.display()))
        .await
        .expect_err("no such tag");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("index.json"), "{err}");
}

#[tokio::test]
async fn symlinked_blob_is_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let (dir, blob, _) = harness_layout(root.path());
    // The same bytes, outside the layout: only the symlink is wrong.
    let outside = root.path().join("outside");
    std::fs::rename(&blob, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    let (registry, cache) = fresh();
    let err = pull_source(&registry, &format!("oci-layout:{}:v1", dir.display()))
        .await
        .expect_err("symlinked blob");
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(common::layer_dirs(cache.path()).is_empty());
}

#[tokio::test]
async fn malformed_index_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = harness_layout(root.path());
    std::fs::write(dir.join("index.json"), b"{\"manifests\": [").unwrap();
    let (registry, _cache) = fresh();
    let err = pull_source(&registry, &format!("oci-layout:{}:v1", dir.display()))
        .await
        .expect_err("malformed index");
    assert!(err.to_string().contains("index.json"), "{err}");
}

#[tokio::test]
async fn truncated_archive_is_refused() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("full.tar");
    copy(
        &format!("docker://{host}/fixtures/standard:gzip"),
        &format!("docker-archive:{}:t/t:1", file.display()),
    );
    let bytes = std::fs::read(&file).unwrap();
    let cut = out.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (registry, cache) = fresh();
    let err = pull_source(&registry, &format!("docker-archive:{}", cut.display()))
        .await
        .expect_err("truncated archive");
    assert!(err.to_string().contains("cut.tar"), "{err}");
    assert!(common::layer_dirs(cache.path()).is_empty());
}

/// The CLI: `pull` takes the transports, `save` converts a layout into an archive (no
/// registry involved), and the archive pulls back to the same image.
#[test]
fn cli_pulls_and_saves_offline_images() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, image) = harness_layout(root.path());
    let cache = root.path().join("cache");
    let msbimage = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_msbimage"))
            .args(args)
            .arg("--cache")
            .arg(&cache)
            .args(["--platform", "linux/amd64"])
            .output()
            .expect("run msbimage");
        assert!(
            out.status.success(),
            "msbimage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let layout = format!("oci-layout:{}:v1", dir.display());
    let pulled = msbimage(&["pull", &layout, "--json"]);
    assert_eq!(pulled["manifest_digest"], image.manifest_digest.as_str());
    assert_eq!(pulled["config_digest"], image.config_digest.as_str());
    let file = root.path().join("out.tar");
    let archive = format!("docker-archive:{}:carried/image:v1", file.display());
    let saved = msbimage(&["save", &layout, &archive, "--json"]);
    assert_eq!(saved["manifestDigest"], image.manifest_digest.as_str());
    let back = msbimage(&[
        "pull",
        &format!("docker-archive:{}", file.display()),
        "--json",
    ]);
    assert_eq!(back["config_digest"], image.config_digest.as_str());
    assert_eq!(back["reference"], "docker.io/carried/image:v1");
}

/// `podman save --format docker-archive` (its own storage in a temp dir, vfs driver) writes
/// what we read, recorded under the name podman gave it.
#[tokio::test]
async fn podman_save_archive_pulls_like_the_registry() {
    let fx = Fixture::start().await;
    let host = fx.host();
    let from_registry = registry_pull(&fx, "fixtures/standard:gzip").await;
    let out = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(out.path().join("root"))
            .arg("--runroot")
            .arg(out.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("run podman");
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let image = format!("{host}/fixtures/standard:gzip");
    podman(&["pull", "--tls-verify=false", &image]);
    let file = out.path().join("podman.tar");
    podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        &file.display().to_string(),
        &image,
    ]);
    let (registry, _cache) = fresh();
    let local = pull_source(&registry, &format!("docker-archive:{}", file.display()))
        .await
        .expect("pull podman's archive");
    assert_same_image(&local, &from_registry);
    assert_eq!(local.reference, fx.reference("fixtures/standard:gzip"));
}
