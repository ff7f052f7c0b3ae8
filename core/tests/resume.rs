//! Resuming after a crash: the compressed bytes of a layer being downloaded are kept in
//! `blobs/sha256/<hex>.partial`; a pull killed with SIGKILL midway is resumed by the next pull
//! (a new process) from those bytes, with `Range`, all verified as one stream. A corrupted
//! partial cannot poison the layer, partials of published layers go, a cancelled pull keeps
//! its partial, and `gc` collects stale partials but never one being written.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{Fixture, layer_dirs, tmp_entries};
use microsandbox_image::{Digest, GcPolicy, PullOptions};
use msbimage_testkit::{Fault, FaultProxy, FrontOptions, Layer};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

/// Where the stalled download pauses: this many bytes of the big blob arrive first.
const STALL_AT: u64 = 200_000;

/// The biggest layer of the fixture (the 3 MiB file lives in it).
fn big_layer(f: &Fixture) -> Layer {
    f.gzip
        .layers
        .iter()
        .max_by_key(|l| l.blob.len())
        .expect("layers")
        .clone()
}

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn partial_path(cache: &Path, blob: &str) -> PathBuf {
    cache.join(format!("blobs/sha256/{}.partial", hex(blob)))
}

fn len_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// A `--config` file that keeps partials of every blob, whatever the default threshold.
fn keep_all_config() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("keep-partials.json");
    std::fs::write(&p, r#"{"partialMinSize": 0}"#).expect("config");
    (dir, p)
}

/// `msbimage pull` of `image` into `f`'s cache, keeping every partial, with stderr piped.
fn spawn_pull(f: &Fixture, image: &str, config: &Path, progress: &str) -> Child {
    Command::new(BIN)
        .args(["pull", image, "--progress", progress, "--cache"])
        .arg(f.cache_dir.path())
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msbimage")
}

/// A pull of `fixtures/standard:gzip` through a proxy that stalls the big blob after
/// [`STALL_AT`] bytes for 30 s, once its partial holds all of those bytes.
async fn stalled_pull(f: &Fixture, config: &Path) -> (Child, FaultProxy) {
    let big = big_layer(f);
    let proxy = FaultProxy::start_with(
        &f.registry.base_url(),
        Fault::Stall {
            after_bytes: STALL_AT,
            millis: 30_000,
        },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .expect("proxy");
    let image = format!("{}/fixtures/standard:gzip", proxy.host());
    let mut child = spawn_pull(f, &image, config, "none");
    let partial = partial_path(f.cache_dir.path(), &big.digest);
    for _ in 0..400 {
        if len_of(&partial) == Some(STALL_AT) {
            return (child, proxy);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "the partial never reached {STALL_AT} bytes: {:?}",
        len_of(&partial)
    );
}

/// Every entry of an extracted tree: relative path, kind, content digest, and the
/// override_stat xattr (owner, mode, type). Compares two extractions of one layer.
fn tree(root: &Path) -> Vec<(String, String, Option<Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, Option<Vec<u8>>)>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let mut buf = vec![0u8; 64];
            let stat = rustix::fs::lgetxattr(&p, "user.containers.override_stat", &mut buf)
                .ok()
                .map(|n| buf[..n].to_vec());
            let md = std::fs::symlink_metadata(&p).expect("metadata");
            if md.is_dir() {
                out.push((rel, "dir".into(), stat));
                walk(root, &p, out);
            } else {
                let content = Digest::sha256_of(&std::fs::read(&p).expect("read")).to_string();
                out.push((rel, content, stat));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The big layer's tree as a plain pull (no partial, no fault) extracts it.
async fn reference_tree(f: &Fixture, big: &Layer) -> Vec<(String, String, Option<Vec<u8>>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = common::client_in(dir.path())
        .partial_min_size(None)
        .build()
        .expect("registry");
    r.pull(
        &f.reference("fixtures/standard:gzip"),
        &PullOptions::default(),
    )
    .await
    .expect("reference pull");
    tree(
        &dir.path()
            .join("layers/sha256")
            .join(hex(&big.diff_id))
            .join("fs"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pull_resumes_from_the_bytes_on_disk() {
    let f = Fixture::start().await;
    let big = big_layer(&f);
    let (_dir, config) = keep_all_config();
    let (mut child, first) = stalled_pull(&f, &config).await;
    child.kill().expect("kill");
    child.wait().expect("wait");
    let partial = partial_path(f.cache_dir.path(), &big.digest);
    let kept = len_of(&partial).expect("the killed pull left its partial");
    assert_eq!(kept, STALL_AT);
    assert_eq!(first.blob_bytes_served(), STALL_AT);
    assert!(
        std::fs::read(&partial).expect("partial")[..] == big.blob[..kept as usize],
        "the partial is the blob's prefix"
    );

    // A new process, through a recording proxy: only the rest of the blob is served.
    let proxy = FaultProxy::start_with(
        &f.registry.base_url(),
        Fault::None,
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .expect("proxy");
    let image = format!("{}/fixtures/standard:gzip", proxy.host());
    let out = spawn_pull(&f, &image, &config, "json")
        .wait_with_output()
        .expect("second pull");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        proxy.blob_bytes_served(),
        big.size() - kept,
        "only the missing bytes were downloaded"
    );
    let ranges: Vec<Option<String>> = proxy
        .blob_requests()
        .iter()
        .map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, [Some(format!("bytes={kept}-"))]);
    // Progress counts the kept bytes as downloaded: no event for the blob says less.
    let counts: Vec<u64> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "layerDownloadProgress" && e["digest"] == big.digest.as_str())
        .filter_map(|e| e["downloadedBytes"].as_u64())
        .collect();
    assert!(!counts.is_empty(), "{stderr}");
    assert!(counts.iter().all(|&n| n >= kept), "{counts:?}");

    assert!(!partial.exists(), "a published layer's partial is removed");
    let fs = f
        .cache_dir
        .path()
        .join("layers/sha256")
        .join(hex(&big.diff_id))
        .join("fs");
    assert_eq!(tree(&fs), reference_tree(&f, &big).await);
    assert!(tmp_entries(f.cache_dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_partial_is_caught_and_the_layer_pulled_again_from_zero() {
    let f = Fixture::start().await;
    let big = big_layer(&f);
    let reference = reference_tree(&f, &big).await;
    let kept = 1_000_000usize;
    let flipped = {
        let mut b = big.blob[..kept].to_vec();
        b[kept / 2..kept / 2 + 64]
            .iter_mut()
            .for_each(|x| *x ^= 0xa5);
        b
    };
    // What a power cut can leave: the length grew, the data never reached the disk.
    let torn = {
        let mut b = big.blob[..kept].to_vec();
        b[kept - 4096..].fill(0);
        b
    };
    for (what, bytes) in [("flipped", flipped), ("torn", torn)] {
        let cache = tempfile::tempdir().expect("tempdir");
        let client = common::client_in(cache.path()).partial_min_size(Some(0));
        let registry = client.build().expect("registry");
        let partial = partial_path(cache.path(), &big.digest);
        std::fs::write(&partial, &bytes).expect("write partial");
        let proxy = FaultProxy::start_with(
            &f.registry.base_url(),
            Fault::None,
            FrontOptions::default().only_digest(&big.digest),
        )
        .await
        .expect("proxy");
        let r = format!("{}/fixtures/standard:gzip", proxy.host())
            .parse()
            .expect("reference");
        registry
            .pull(&r, &PullOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        // The resumed pass failed its checks; the same pull went again from zero.
        let ranges: Vec<Option<String>> = proxy
            .blob_requests()
            .iter()
            .map(|r| r.header("range").map(str::to_owned))
            .collect();
        assert_eq!(ranges, [Some(format!("bytes={kept}-")), None], "{what}");
        assert_eq!(
            proxy.blob_bytes_served(),
            big.size() - kept as u64 + big.size(),
            "{what}: the rest, then the whole blob came from the network"
        );
        let fs = cache
            .path()
            .join("layers/sha256")
            .join(hex(&big.diff_id))
            .join("fs");
        assert_eq!(tree(&fs), reference, "{what}");
        assert!(!partial.exists(), "{what}: the bad partial is gone");
        assert!(tmp_entries(cache.path()).is_empty(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_partial_of_a_layer_published_from_another_blob_is_removed() {
    let f = Fixture::start().await;
    let big = big_layer(&f);
    // A killed pull of the gzip image left part of its blob...
    let _layout = f.cache();
    let partial = partial_path(f.cache_dir.path(), &big.digest);
    std::fs::write(&partial, &big.blob[..300_000]).expect("write partial");
    // ...then the same content arrived as zstd, so the gzip bytes will never be needed.
    let registry = f
        .client()
        .partial_min_size(Some(0))
        .build()
        .expect("registry");
    registry
        .pull(
            &f.reference("fixtures/standard:zstd"),
            &PullOptions::default(),
        )
        .await
        .expect("zstd pull");
    assert!(layer_dirs(f.cache_dir.path()).contains(&hex(&big.diff_id).to_owned()));
    assert!(partial.exists(), "nobody knows yet");

    let proxy = FaultProxy::start(&f.registry.base_url(), Fault::None)
        .await
        .expect("proxy");
    let r = format!("{}/fixtures/standard:gzip", proxy.host())
        .parse()
        .expect("reference");
    let res = registry
        .pull(&r, &PullOptions::default())
        .await
        .expect("gzip pull");
    assert_eq!(res.layers.len(), 3);
    assert!(
        !proxy
            .blob_requests()
            .iter()
            .any(|r| r.path.contains(&big.digest)),
        "the cached layer is not downloaded"
    );
    assert!(!partial.exists(), "the useless partial is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_pull_keeps_its_partial_for_the_next_one() {
    let f = Fixture::start().await;
    let big = big_layer(&f);
    let (_dir, config) = keep_all_config();
    let (child, _proxy) = stalled_pull(&f, &config).await;
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        len_of(&partial_path(f.cache_dir.path(), &big.digest)),
        Some(STALL_AT)
    );
    assert!(
        tmp_entries(f.cache_dir.path()).is_empty(),
        "staging removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_a_stale_partial_and_leaves_one_being_written() {
    let f = Fixture::start().await;
    let big = big_layer(&f);
    let (_dir, config) = keep_all_config();
    let cache = f.cache();
    let stale = partial_path(f.cache_dir.path(), &Digest::sha256_of(b"gone").to_string());
    let mut file = std::fs::File::create(&stale).expect("stale partial");
    file.write_all(&[1u8; 10_000]).expect("write");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    file.set_modified(two_days_ago).expect("age");
    drop(file);

    let (mut child, _proxy) = stalled_pull(&f, &config).await;
    let writing = partial_path(f.cache_dir.path(), &big.digest);
    // As old as the stale one: only its lock tells them apart.
    std::fs::File::options()
        .write(true)
        .open(&writing)
        .and_then(|f| f.set_modified(two_days_ago))
        .expect("age");

    let dry = cache
        .gc(&GcPolicy {
            dry_run: true,
            ..GcPolicy::default()
        })
        .expect("dry gc");
    assert_eq!(dry.removed_debris, 1, "{dry:?}");
    assert!(stale.exists(), "a dry run removes nothing");
    let report = cache.gc(&GcPolicy::default()).expect("gc");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(report.removed_debris, 1, "{report:?}");
    assert!(report.freed_bytes >= 8192, "{report:?}");
    assert!(!stale.exists(), "the stale partial is collected");
    assert_eq!(
        len_of(&writing),
        Some(STALL_AT),
        "the one being written stays"
    );
}
