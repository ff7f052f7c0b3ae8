//! `verify` and `repair`: a fresh pull checks clean; each kind of damage (a file's content,
//! size, mtime, xattrs, kind; a file missing or added; the index, the contents record,
//! `meta.json`, a manifest, an image record) is reported exactly, at its path; `repair`
//! rebuilds only the damaged layers (the others keep their inodes) and a held layer's old
//! tree stays readable until released; a warm pull does not trust a layer that lost its
//! index. The CLI's `verify` exits 1 on damage and 0 after `--repair`. All against a real
//! registry on loopback.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;
use microsandbox_image::{
    ErrorKind, GcPolicy, GlobalCache, ProblemKind, PullOptions, PullPolicy, PullResult,
    VerifyReport,
};
use msbimage_testkit::{Compression, RegistryOptions, standard_image};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

async fn pulled() -> (Env, PullResult) {
    let env = Env::start(RegistryOptions::plain()).await;
    env.push("v/std", "1", &standard_image(Compression::Gzip))
        .await;
    let result = pull(&env, PullOptions::default()).await;
    (env, result)
}

async fn pull(env: &Env, opts: PullOptions) -> PullResult {
    env.registry_client()
        .pull(&env.reference("v/std:1"), &opts)
        .await
        .expect("pull")
}

fn verify(cache: &GlobalCache) -> VerifyReport {
    let c = cache.clone();
    std::thread::spawn(move || c.verify(&[]).expect("verify"))
        .join()
        .expect("thread")
}

/// The layer directory of layer `i` of `result`.
fn layer_dir(result: &PullResult, i: usize) -> PathBuf {
    result.layers[i].parent().expect("layer dir").to_owned()
}

/// `(kind, path)` of every problem of every layer, sorted.
fn problems(report: &VerifyReport) -> Vec<(ProblemKind, Option<String>)> {
    let mut v: Vec<_> = report
        .layers
        .iter()
        .flat_map(|l| l.problems.iter().map(|p| (p.kind, p.path.clone())))
        .chain(
            report
                .images
                .iter()
                .flat_map(|i| i.problems.iter().map(|p| (p.kind, p.path.clone()))),
        )
        .chain(report.records.iter().map(|p| (p.kind, p.path.clone())))
        .collect();
    v.sort_by_key(|(k, p)| (format!("{k:?}"), p.clone()));
    v
}

fn rel(p: &str) -> Option<String> {
    Some(p.to_owned())
}

fn shown(p: &Path) -> Option<String> {
    Some(p.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_pull_verifies_clean_with_every_entry_checked() {
    let (env, result) = pulled().await;
    let report = verify(&env.cache());
    assert!(report.is_clean(), "{:?}", problems(&report));
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.layers.len(), 3);
    for l in &report.layers {
        assert!(l.recorded, "layer {} has no contents record", l.diff_id);
    }
    // Layer 1 holds files, a hardlink, symlinks, devices, a FIFO and a deep path: every
    // entry of its tree is checked and its 3 MB file read.
    let l1 = report.layer(&result.layer_diff_ids[0]).expect("layer 1");
    assert!(l1.entries >= 25, "{l1:?}");
    assert!(l1.bytes > 3_000_000, "{l1:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_damage_to_a_tree_is_reported_at_its_path() {
    let (env, result) = pulled().await;
    let fs = &result.layers[0];
    // Same size, other content.
    std::fs::write(fs.join("data/one-byte"), "y").unwrap();
    // Other size.
    std::fs::write(fs.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    // Gone, and new.
    std::fs::remove_file(fs.join("root/secret")).unwrap();
    std::fs::write(fs.join("etc/planted"), "x").unwrap();
    // mtime only.
    let f = std::fs::File::options()
        .write(true)
        .open(fs.join("data/empty"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    // The image's metadata (owner and mode live in an xattr).
    rustix::fs::setxattr(
        fs.join("home/user/owned").as_path(),
        "user.containers.override_stat",
        &[
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xed, 0x81, 0, 0, 0, 0, 0, 0,
        ],
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // A file replaced by a directory.
    std::fs::remove_file(fs.join("data/random-100k")).unwrap();
    std::fs::create_dir(fs.join("data/random-100k")).unwrap();

    let report = verify(&env.cache());
    let mut want = vec![
        (ProblemKind::ContentChanged, rel("data/one-byte")),
        (ProblemKind::KindChanged, rel("data/random-100k")),
        (ProblemKind::Missing, rel("root/secret")),
        (ProblemKind::SizeChanged, rel("usr/bin/tool")),
        (ProblemKind::TimeChanged, rel("data/empty")),
        (ProblemKind::Unexpected, rel("etc/planted")),
        (ProblemKind::MetadataChanged, rel("home/user/owned")),
    ];
    // Writing into a directory moves its mtime too.
    want.extend(
        ["data", "etc", "root"]
            .iter()
            .map(|d| (ProblemKind::TimeChanged, rel(d))),
    );
    // `tool` was rewritten: its mtime moved as well as its size, and so did its hardlink's.
    for p in ["usr/bin/tool", "usr/bin/tool-hardlink"] {
        want.push((ProblemKind::TimeChanged, rel(p)));
    }
    want.push((ProblemKind::SizeChanged, rel("usr/bin/tool-hardlink")));
    want.push((ProblemKind::TimeChanged, rel("data/one-byte")));
    want.sort_by_key(|(k, p)| (format!("{k:?}"), p.clone()));
    assert_eq!(problems(&report), want);
    // Only layer 1 is damaged, and the image names it.
    let image = &report.images[0];
    assert_eq!(image.damaged_layers, vec![result.layer_diff_ids[0].clone()]);
    assert!(report.layer(&result.layer_diff_ids[1]).unwrap().is_ok());

    // A real symlink planted in the tree is named (and nothing is read through it).
    std::fs::remove_file(fs.join("data/big-3m")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", fs.join("data/big-3m")).unwrap();
    let report = verify(&env.cache());
    let layer = report.layer(&result.layer_diff_ids[0]).unwrap();
    assert_eq!(layer.problems.len(), 1, "{:?}", layer.problems);
    assert_eq!(layer.problems[0].kind, ProblemKind::KindChanged);
    assert_eq!(layer.problems[0].path.as_deref(), Some("data/big-3m"));
}

#[tokio::test(flavor = "multi_thread")]
async fn damage_to_index_contents_meta_manifest_and_record_is_reported() {
    let (env, result) = pulled().await;
    let cache = env.cache();
    let (d0, d1, d2) = (
        layer_dir(&result, 0),
        layer_dir(&result, 1),
        layer_dir(&result, 2),
    );
    flip_last_byte(&d0.join("index"));
    flip_last_byte(&d1.join("contents"));
    std::fs::write(d2.join("meta.json"), "{\"diff_id\": 1").unwrap();
    let manifest = cache
        .root()
        .join("manifests/sha256")
        .join(result.manifest_digest.hex());
    flip_last_byte(&manifest);
    let record = std::fs::read_dir(cache.root().join("images"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let torn = std::fs::read(&record).unwrap();
    std::fs::write(&record, &torn[..torn.len() / 2]).unwrap();

    let report = verify(&cache);
    let want = vec![
        (ProblemKind::ContentsCorrupt, shown(&d1.join("contents"))),
        (ProblemKind::IndexCorrupt, shown(&d0.join("index"))),
        (ProblemKind::LayerInvalid, shown(&d2.join("meta.json"))),
        (ProblemKind::RecordInvalid, shown(&record)),
    ];
    assert_eq!(problems(&report), want);
    // With the record torn no image is known, so the manifest is not checked; restore it
    // and the manifest's damage shows.
    std::fs::write(&record, &torn).unwrap();
    let report = verify(&cache);
    assert!(
        problems(&report).contains(&(ProblemKind::ManifestCorrupt, shown(&manifest))),
        "{:?}",
        problems(&report)
    );
    // A missing index and contents record are named as missing.
    std::fs::remove_file(d0.join("index")).unwrap();
    std::fs::remove_file(d1.join("contents")).unwrap();
    let got = problems(&verify(&cache));
    assert!(
        got.contains(&(ProblemKind::IndexMissing, shown(&d0.join("index")))),
        "{got:?}"
    );
    assert!(
        got.contains(&(ProblemKind::ContentsMissing, shown(&d1.join("contents")))),
        "{got:?}"
    );
}

fn flip_last_byte(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(p, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_rebuilds_only_damaged_layers_and_a_holder_keeps_its_tree() {
    let (env, result) = pulled().await;
    let cache = env.cache();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let before: Vec<u64> = (0..3).map(|i| ino(&layer_dir(&result, i))).collect();
    let fs0 = result.layers[0].clone();
    std::fs::write(fs0.join("data/one-byte"), "y").unwrap();
    flip_last_byte(&layer_dir(&result, 2).join("index"));
    // A reader in the damaged tree (this result holds its lease) keeps its directory.
    let held = std::fs::File::open(&fs0).unwrap();

    let report = verify(&cache);
    assert_eq!(report.images[0].damaged_layers.len(), 2);
    let repaired = env.registry_client().repair(&report).await.expect("repair");
    assert!(repaired.failed.is_empty(), "{repaired:?}");
    let mut want = vec![
        result.layer_diff_ids[0].clone(),
        result.layer_diff_ids[2].clone(),
    ];
    want.sort();
    assert_eq!(repaired.rebuilt_layers, want);

    let after: Vec<u64> = (0..3).map(|i| ino(&layer_dir(&result, i))).collect();
    assert_ne!(after[0], before[0], "damaged layer 1 rebuilt");
    assert_eq!(after[1], before[1], "intact layer 2 left alone");
    assert_ne!(after[2], before[2], "layer 3 with a damaged index rebuilt");
    assert!(verify(&cache).is_clean(), "{:?}", problems(&verify(&cache)));
    assert_eq!(std::fs::read(fs0.join("data/one-byte")).unwrap(), b"x");
    // The old tree is still there for the holder (in tmp/, swapped out), until released.
    let old = std::fs::read_dir(format!("/proc/self/fd/{}", fd_of(&held))).unwrap();
    assert!(old.count() > 3, "the holder's tree is still whole");
    drop(held);
    drop(result);
    // Released: the swapped-out trees go (at the latest with the next gc).
    let c = cache.clone();
    std::thread::spawn(move || c.gc(&GcPolicy::default()).expect("gc"))
        .join()
        .unwrap();
    assert!(
        common::tmp_entries(cache.root()).is_empty(),
        "{:?}",
        common::tmp_entries(cache.root())
    );
}

fn fd_of(f: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_fetches_a_corrupt_manifest_again_and_removes_torn_records() {
    let (env, result) = pulled().await;
    let cache = env.cache();
    let manifest = cache
        .root()
        .join("manifests/sha256")
        .join(result.manifest_digest.hex());
    flip_last_byte(&manifest);
    std::fs::write(cache.root().join("images/0000.json"), "{").unwrap();
    let report = verify(&cache);
    assert_eq!(report.problem_count(), 2, "{:?}", problems(&report));
    let repaired = env.registry_client().repair(&report).await.expect("repair");
    assert_eq!(repaired.removed_records, 1);
    assert!(repaired.rebuilt_layers.is_empty(), "{repaired:?}");
    assert!(verify(&cache).is_clean());
    assert!(
        result
            .manifest_digest
            .matches(&std::fs::read(&manifest).unwrap())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_pull_rebuilds_a_layer_that_lost_its_index() {
    let (env, result) = pulled().await;
    let index = result.layer_indexes[1].clone();
    std::fs::remove_file(&index).unwrap();
    let never = PullOptions {
        pull_policy: PullPolicy::Never,
        ..PullOptions::default()
    };
    let err = env
        .registry_client()
        .pull(&env.reference("v/std:1"), &never)
        .await
        .expect_err("a layer without its index is not cached");
    assert_eq!(err.kind(), ErrorKind::NotCached);
    let again = pull(&env, PullOptions::default()).await;
    assert!(!again.cached);
    assert!(index.is_file());
    assert!(verify(&env.cache()).is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_pulled_without_an_index_verifies_clean_and_is_indexed_later() {
    let env = Env::start(RegistryOptions::plain()).await;
    env.push("v/std", "1", &standard_image(Compression::Zstd))
        .await;
    let no_index = PullOptions {
        build_index: false,
        ..PullOptions::default()
    };
    let result = pull(&env, no_index).await;
    assert!(!result.layer_indexes[0].exists());
    assert!(verify(&env.cache()).is_clean());
    let warm = pull(&env, PullOptions::default()).await;
    assert!(warm.cached, "indexed from the tree, not pulled again");
    assert!(warm.layer_indexes[0].is_file());
    assert!(verify(&env.cache()).is_clean());
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_verify_exits_1_on_damage_and_0_after_repair() {
    let (env, result) = pulled().await;
    let cache = env.cache_dir.path();
    std::fs::write(
        result.layers[2].join("app/hello.txt"),
        "changed!\nxxxxxxxxx\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("verify")
            .args(args)
            .arg("--cache")
            .arg(cache)
            .output()
            .unwrap()
    };
    let reference = format!("{}/v/std:1", env.host());
    let out = run(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = doc["report"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["diffId"] == result.layer_diff_ids[2].to_string())
        .unwrap()
        .clone();
    let kinds: Vec<(&str, &str)> = layer["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("timeChanged", "app/hello.txt"),
            ("contentChanged", "app/hello.txt")
        ]
    );
    let out = run(&[&reference]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("contentChanged: app/hello.txt"), "{text}");
    let out = run(&["--repair", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rebuilt layer"), "{text}");
    assert!(text.contains("no problems"), "{text}");
    assert_eq!(
        std::fs::read_to_string(result.layers[2].join("app/hello.txt")).unwrap(),
        "hello from layer 3\n"
    );
    // An image the cache does not have is an error, not a clean report.
    let out = run(&[&format!("{}/v/absent:1", env.host())]);
    assert_eq!(
        out.status.code(),
        Some(ErrorKind::NotFound.exit_code() as i32)
    );
}

/// A pull writing EROFS layer images.
async fn pulled_with_images() -> (Env, PullResult) {
    let env = Env::start(RegistryOptions::plain()).await;
    env.push("v/std", "1", &standard_image(Compression::Gzip))
        .await;
    let opts = PullOptions {
        outputs: vec![
            microsandbox_image::Output::Directory,
            microsandbox_image::Output::ErofsLayers,
        ],
        ..PullOptions::default()
    };
    let result = pull(&env, opts).await;
    (env, result)
}

/// Flip one byte of the first layer's largest file where it sits in `image` (found by its
/// first 64 bytes, which the tree's copy gives).
fn flip_file_byte_in_image(image: &Path, fs: &Path) {
    let mut largest: Option<(u64, PathBuf)> = None;
    let mut dirs = vec![fs.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dirs.push(e.path());
            } else if m.is_file() && largest.as_ref().is_none_or(|(n, _)| m.len() > *n) {
                largest = Some((m.len(), e.path()));
            }
        }
    }
    let (len, file) = largest.unwrap();
    assert!(len > 8192, "a file of whole blocks");
    let head = std::fs::read(file).unwrap()[..64].to_vec();
    let mut bytes = std::fs::read(image).unwrap();
    let at = bytes.windows(64).position(|w| w == head).unwrap();
    bytes[at + 4096 + 7] ^= 0x20;
    std::fs::write(image, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_damage_to_a_layer_image_is_reported_and_repaired() {
    let (env, result) = pulled_with_images().await;
    let cache = env.cache();
    let report = verify(&cache);
    assert!(report.is_clean(), "{:?}", problems(&report));
    // Every file's data was read from the images too.
    let l1 = report.layer(&result.layer_diff_ids[0]).expect("layer 1");
    assert!(l1.bytes > 6_000_000, "tree and image: {l1:?}");
    let image = result.layer_images[0].clone();
    let fs0 = result.layers[0].clone();
    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage, ProblemKind)> = vec![
        (
            "a data byte",
            Box::new(move |p: &Path| flip_file_byte_in_image(p, &fs0)),
            ProblemKind::ErofsCorrupt,
        ),
        (
            "truncated",
            Box::new(|p: &Path| {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                let len = f.metadata().unwrap().len();
                f.set_len(len - 4096).unwrap();
            }),
            ProblemKind::ErofsCorrupt,
        ),
        (
            "deleted",
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            ProblemKind::ErofsMissing,
        ),
        (
            "superblock",
            Box::new(|p: &Path| {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.write_all_at(&[0x5a], 1024 + 48).unwrap();
            }),
            ProblemKind::ErofsCorrupt,
        ),
    ];
    for (what, damage, kind) in damages {
        damage(&image);
        let report = verify(&cache);
        let found = problems(&report);
        assert!(!found.is_empty(), "{what}: not found");
        for (k, p) in &found {
            assert_eq!((*k, p), (kind, &shown(&image)), "{what}: {found:?}");
        }
        assert_eq!(
            report.images[0].damaged_layers,
            [result.layer_diff_ids[0].clone()],
            "{what}"
        );
        let repaired = env.registry_client().repair(&report).await.expect("repair");
        assert!(repaired.failed.is_empty(), "{what}: {repaired:?}");
        assert_eq!(
            repaired.rebuilt_layers,
            [result.layer_diff_ids[0].clone()],
            "{what}"
        );
        assert!(image.is_file(), "{what}: the image written again");
        let after = verify(&cache);
        assert!(after.is_clean(), "{what}: {:?}", problems(&after));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_file_in_the_image_names_the_path_inside() {
    let (env, result) = pulled_with_images().await;
    flip_file_byte_in_image(&result.layer_images[0], &result.layers[0]);
    let report = verify(&env.cache());
    let l1 = report.layer(&result.layer_diff_ids[0]).expect("layer 1");
    assert_eq!(l1.problems.len(), 1, "{l1:?}");
    let detail = &l1.problems[0].detail;
    assert!(detail.starts_with("contentChanged: "), "{detail}");
}
