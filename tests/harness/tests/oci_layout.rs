//! `write_oci_layout` produces a layout that the real tools accept: `umoci unpack
//! --rootless` unpacks the standard image with whiteouts, opaque dirs, links and long
//! paths applied, and `skopeo copy oci:… docker://…` pushes it to a real registry
//! byte-for-byte.

mod support;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use msbimage_testkit::fixtures::{self, standard_image};
use msbimage_testkit::{Compression, Registry, RegistryOptions, write_oci_layout};
use support::{client, get_manifest};
use tokio::process::Command;

async fn run(cmd: &mut Command) {
    let out = cmd.output().await.expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn layout_has_blobs_and_merges_tags() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let gzip = standard_image(Compression::Gzip);
    let zstd = standard_image(Compression::Zstd);
    write_oci_layout(&layout, "gzip", &gzip).unwrap();
    write_oci_layout(&layout, "zstd", &zstd).unwrap();
    write_oci_layout(&layout, "gzip", &gzip).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    for image in [&gzip, &zstd] {
        assert_eq!(
            std::fs::read(blob(&image.manifest_digest)).unwrap(),
            image.manifest
        );
        for l in &image.layers {
            assert!(blob(&l.digest).exists());
        }
    }
    assert!(layout.join("oci-layout").exists());
}

#[tokio::test]
async fn umoci_unpacks_the_standard_image() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("bundle");
    write_oci_layout(&layout, "std", &standard_image(Compression::Gzip)).unwrap();
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--rootless")
        .arg("--image")
        .arg(format!("{}:std", layout.display()))
        .arg(&bundle))
    .await;
    let root = bundle.join("rootfs");
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    assert_eq!(read("etc/overwritten"), fixtures::OVERWRITTEN_FINAL);
    assert!(!root.join("etc/to-delete").exists(), "whiteout applied");
    assert!(!root.join("opaque/old-a").exists(), "opaque dir applied");
    assert_eq!(read("opaque/new"), b"from layer 2\n");
    assert_eq!(read(fixtures::LONG_PATH), b"deep\n");
    assert_eq!(read("data/big-3m").len(), fixtures::BIG_3M_LEN);
    assert_eq!(
        read("data/random-100k"),
        fixtures::pseudo_random(fixtures::RANDOM_100K_LEN, 1)
    );
    assert_eq!(
        std::fs::read_link(root.join("usr/bin/rel-link")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/abs-link")).unwrap(),
        Path::new("/usr/bin/tool")
    );
    let mode = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("usr/bin/tool"), 0o755);
    assert_eq!(mode("root"), 0o700);
    assert_eq!(mode("tmp"), 0o1777);
    let tool = std::fs::metadata(root.join("usr/bin/tool")).unwrap();
    let hard = std::fs::metadata(root.join("usr/bin/tool-hardlink")).unwrap();
    assert_eq!(tool.ino(), hard.ino(), "hard link shares the inode");
    assert_eq!(read("app/hello.txt"), b"hello from layer 3\n");
}

#[tokio::test]
async fn skopeo_copies_the_layout_into_a_registry() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = standard_image(Compression::Zstd);
    write_oci_layout(&layout, "v1", &image).unwrap();
    run(Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("copy")
        .arg("--dest-tls-verify=false")
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/copied/image:v1", reg.host())))
    .await;
    let m = get_manifest(&client(None), &reg.base_url(), "copied/image", "v1", None).await;
    assert_eq!(m.status, 200);
    assert_eq!(
        m.digest_header.as_deref(),
        Some(image.manifest_digest.as_str())
    );
    assert_eq!(m.body, image.manifest);
}
