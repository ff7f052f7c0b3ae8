//! `unpack`: the merged root filesystem written as an ordinary tree, checked entry for entry
//! against `umoci unpack --rootless` of the same images (type, permission bits, owner, size,
//! content hash, symlink target, xattrs), as root with real owners and device nodes, and from
//! the CLI.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use common::Fixture;
use common::oracle_support::{push_and_pull, umoci};
use microsandbox_image::unpack::{UnpackError, UnpackOptions};
use msbimage_testkit::oracle::{describe_tree, diff};
use msbimage_testkit::{Compression, ManifestFormat, fixtures};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

fn rootless() -> UnpackOptions {
    UnpackOptions {
        rootless: Some(true),
    }
}

#[tokio::test]
async fn rootless_unpack_matches_umoci_entry_for_entry() {
    let f = Fixture::start().await;
    let mut images = vec![(
        "standard".to_string(),
        fixtures::standard_image_with(Compression::Gzip, ManifestFormat::Oci),
    )];
    let multi = msbimage_testkit::multiplatform(ManifestFormat::Oci);
    for (i, image) in multi.images.iter().enumerate() {
        images.push((format!("p{i}"), image.clone()));
    }
    let mut compared = 0;
    for (tag, image) in &images {
        let res = push_and_pull(&f.registry, f.cache_dir.path(), "unpack/img", tag, image).await;
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("rootfs");
        let report = res.unpack(&dest, &rootless()).expect("unpack");
        let ours = describe_tree(&dest).unwrap();
        let theirs = umoci(image, tag);
        let d = diff(&ours, &theirs);
        assert!(d.is_empty(), "{tag} differs from umoci:\n{}", d.join("\n"));
        assert_eq!(report.entries as usize, ours.len());
        compared += ours.len();
    }
    assert!(compared > 30, "{compared}");
}

/// A real distro (debootstrap bookworm minbase as three layers, the third deleting files and
/// making a directory opaque), unpacked rootless and compared with umoci.
#[tokio::test]
async fn rootless_unpack_of_debian_matches_umoci() {
    let image = common::oracle_support::debian_image().await;
    let f = Fixture::start().await;
    let res = push_and_pull(
        &f.registry,
        f.cache_dir.path(),
        "unpack/debian",
        "1",
        &image,
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    res.unpack(&dest, &rootless()).expect("unpack");
    let ours = describe_tree(&dest).unwrap();
    let d = diff(&ours, &umoci(&image, "1"));
    assert!(d.is_empty(), "debian differs from umoci:\n{}", d.join("\n"));
    assert!(ours.len() > 3000, "{}", ours.len());
}

#[tokio::test]
async fn as_root_owners_devices_and_links_are_real() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: real owners and device nodes need root (CI runs as root)");
        return;
    }
    let f = Fixture::start().await;
    let image = fixtures::standard_image(Compression::Zstd);
    let res = push_and_pull(&f.registry, f.cache_dir.path(), "unpack/root", "1", &image).await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let report = res
        .unpack(
            &dest,
            &UnpackOptions {
                rootless: Some(false),
            },
        )
        .expect("unpack");
    assert!(!report.rootless);
    let md = |p: &str| std::fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(
        (md("home/user/owned").uid(), md("home/user/owned").gid()),
        (1000, 1000)
    );
    let null = md("dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (
            rustix::fs::major(null.rdev()),
            rustix::fs::minor(null.rdev())
        ),
        (1, 3)
    );
    assert!(md("dev/fifo").file_type().is_fifo());
    assert_eq!(md("usr/bin/suid").mode() & 0o7777, 0o4755);
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("root").mode() & 0o7777, 0o700);
    assert_eq!(
        std::fs::read_link(dest.join("etc/abs-link")).unwrap(),
        std::path::Path::new("/usr/bin/tool")
    );
    assert_eq!(md("usr/bin/tool-hardlink").ino(), md("usr/bin/tool").ino());
    // Layer 2's whiteout and opaque directory took effect.
    assert!(!dest.join("etc/to-delete").exists());
    assert!(!dest.join("opaque/old-a").exists());
    assert_eq!(
        std::fs::read(dest.join("etc/overwritten")).unwrap(),
        fixtures::OVERWRITTEN_FINAL
    );
    let mut v = [0u8; 16];
    let n = rustix::fs::getxattr(
        dest.join("app/xattr-file").as_path(),
        fixtures::XATTR.0,
        &mut v[..],
    )
    .unwrap();
    assert_eq!(&v[..n], fixtures::XATTR.1);
}

#[tokio::test]
async fn a_non_empty_destination_is_refused_and_left_alone() {
    let f = Fixture::start().await;
    let image = fixtures::standard_image(Compression::Gzip);
    let res = push_and_pull(&f.registry, f.cache_dir.path(), "unpack/ne", "1", &image).await;
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("keep"), "mine").unwrap();
    let err = res.unpack(out.path(), &rootless()).expect_err("not empty");
    assert!(matches!(err, UnpackError::NotEmpty(_)), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn cli_unpack_writes_the_rootfs() {
    let f = Fixture::start().await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let run = Command::new(BIN)
        .args([
            "unpack",
            &format!("{}/fixtures/standard:gzip", f.registry.host()),
            "--progress",
            "none",
            "--rootless",
            "--json",
            "--cache",
        ])
        .arg(f.cache_dir.path())
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["rootless"], true);
    assert!(doc["entries"].as_u64().unwrap() > 20, "{doc}");
    assert_eq!(
        std::fs::read_to_string(dest.join("app/hello.txt")).unwrap(),
        "hello from layer 3\n"
    );
    // Owners as umoci writes them rootless.
    let mut v = [0u8; 16];
    let n = rustix::fs::lgetxattr(
        dest.join("home/user/owned").as_path(),
        "user.rootlesscontainers",
        &mut v[..],
    )
    .unwrap();
    assert_eq!(&v[..n], &[0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]);
}
