//! The cache's life across processes: `gc` looping while four processes pull (no pull ever
//! loses a layer it holds), SIGTERM and SIGHUP ending a pull with its staging removed, the
//! debris of a killed process swept by the next pull, and the cache commands of the CLI.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, Fixture, layer_dirs, tmp_entries};
use microsandbox_image::{GcPolicy, PullOptions};
use msbimage_testkit::RegistryOptions;

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

/// Set in the environment of the pulling processes that [`gc_under_load`] starts (each
/// re-runs this test binary, filtered to [`pull_loop_child`]).
const CHILD_ENV: &str = "MSBIMAGE_LIFECYCLE_CHILD";

/// Pulls per process in [`gc_under_load`].
const PULLS_PER_PROCESS: usize = 30;

/// Not a test of its own: the body of one pulling process of [`gc_under_load`], which sets
/// `MSBIMAGE_LIFECYCLE_CHILD` to `<registry host> <cache dir>`. Run without it, it returns.
#[tokio::test(flavor = "multi_thread")]
async fn pull_loop_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (host, cache) = spec.split_once(' ').expect("host and cache");
    let registry = common::client_in(std::path::Path::new(cache))
        .build()
        .unwrap();
    for i in 0..PULLS_PER_PROCESS {
        let tag = ["gzip", "zstd", "none", "docker"][i % 4];
        let reference = format!("{host}/fixtures/standard:{tag}").parse().unwrap();
        let result = registry
            .pull(&reference, &PullOptions::default())
            .await
            .unwrap_or_else(|e| panic!("pull {i}: {e}"));
        // While the result is held, every layer and index stays, whatever gc does.
        for _ in 0..3 {
            for (tree, index) in result.layers.iter().zip(&result.layer_indexes) {
                assert!(tree.is_dir(), "pull {i}: {} lost", tree.display());
                assert!(index.is_file(), "pull {i}: {} lost", index.display());
            }
            let stack = result.layer_stack().unwrap();
            assert!(stack.get(b"app/hello.txt").unwrap().is_some(), "pull {i}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_under_load() {
    let f = Fixture::start().await;
    let me = std::env::current_exe().unwrap();
    let spec = format!("{} {}", f.host(), f.cache_dir.path().display());
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&me)
                .args([
                    "--exact",
                    "pull_loop_child",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD_ENV, &spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let cache = f.cache();
    let (mut rounds, mut removed) = (0u32, 0usize);
    let mut children: Vec<_> = children.into_iter().map(Some).collect();
    let mut outputs = Vec::new();
    while children.iter().any(Option::is_some) {
        // Evict everything it can: only what the pulls hold survives.
        let c = cache.clone();
        let report = tokio::task::spawn_blocking(move || {
            c.gc(&GcPolicy {
                max_size: Some(0),
                ..GcPolicy::default()
            })
        })
        .await
        .unwrap()
        .unwrap();
        rounds += 1;
        removed += report.removed_layers.len();
        for slot in &mut children {
            if slot
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_some())
            {
                outputs.push(slot.take().unwrap().wait_with_output().unwrap());
            }
        }
    }
    for out in outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran its loop: {stdout}"
        );
    }
    eprintln!(
        "gc under load: {rounds} gc rounds, {removed} layer trees removed, 4 x {PULLS_PER_PROCESS} pulls"
    );
    assert!(rounds >= 10, "gc ran while the pulls ran ({rounds} rounds)");
    assert!(removed > 0, "gc did remove layers between pulls");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_cancel_the_pull_and_remove_its_staging() {
    for (signal, code) in [
        (rustix::process::Signal::TERM, 143),
        (rustix::process::Signal::HUP, 129),
    ] {
        let f = Fixture::start().await;
        let (child, hex, _proxy) = common::stalled_pull(&f).await;
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{signal:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("cancelled"));
        assert!(
            tmp_entries(f.cache_dir.path()).is_empty(),
            "{signal:?}: {:?}",
            tmp_entries(f.cache_dir.path())
        );
        assert!(!layer_dirs(f.cache_dir.path()).contains(&hex));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_sweeps_debris_of_other_layers_left_by_a_killed_process() {
    let f = Fixture::start().await;
    let (mut child, hex, _proxy) = common::stalled_pull(&f).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        tmp_entries(f.cache_dir.path())
            .iter()
            .any(|e| e.contains(&hex))
    );
    // A pull of another image (sharing none of that layer) still sweeps it.
    let env = Env::start(RegistryOptions::plain()).await;
    let other = msbimage_testkit::ImageBuilder::new("linux", "amd64")
        .layer(
            msbimage_testkit::LayerBuilder::new()
                .file("other", "x", 0o644)
                .build(msbimage_testkit::Compression::Gzip),
        )
        .build();
    env.push("other/img", "1", &other).await;
    let out = Command::new(BIN)
        .args([
            "pull",
            &format!("{}/other/img:1", env.host()),
            "--progress",
            "none",
            "--cache",
        ])
        .arg(f.cache_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tmp_entries(f.cache_dir.path()).is_empty(),
        "{:?}",
        tmp_entries(f.cache_dir.path())
    );
}

fn cli(cache: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--cache")
        .arg(cache)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_du_rm_gc_from_the_command_line() {
    let f = Fixture::start().await;
    let dir = f.cache_dir.path();
    for tag in ["gzip", "zstd"] {
        let out = cli(
            dir,
            &[
                "pull",
                &format!("{}/fixtures/standard:{tag}", f.host()),
                "--progress",
                "none",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ls = cli(dir, &["ls", "--json"]);
    assert!(ls.status.success());
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "gzip and zstd are two manifests: {v}");
    assert!(
        images
            .iter()
            .all(|i| i["sharedBytes"].as_u64().unwrap() > 0),
        "same diff_ids: {v}"
    );
    let text = String::from_utf8_lossy(&cli(dir, &["ls"]).stdout).into_owned();
    assert!(
        text.starts_with("NAME") && text.contains("fixtures/standard:zstd"),
        "{text}"
    );
    let du = cli(dir, &["du"]);
    assert!(String::from_utf8_lossy(&du.stdout).contains("EXCLUSIVE"));

    let rm = cli(
        dir,
        &["rm", &format!("{}/fixtures/standard:gzip", f.host())],
    );
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(
        String::from_utf8_lossy(&rm.stdout).contains("removed 1 images, 0 layers"),
        "zstd keeps them"
    );
    let missing = cli(
        dir,
        &["rm", &format!("{}/fixtures/standard:gzip", f.host())],
    );
    assert_eq!(
        missing.status.code(),
        Some(microsandbox_image::ErrorKind::NotFound.exit_code().into())
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such image in the cache"));

    let dry = cli(dir, &["gc", "--max-size", "0", "--dry-run", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(v["dryRun"], true);
    assert_eq!(v["removedLayers"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(layer_dirs(dir).len(), 3);
    let gc = cli(dir, &["gc", "--max-size", "0"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert!(layer_dirs(dir).is_empty());
    let bad = cli(dir, &["gc", "--max-size", "5X"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_shows_whom_it_waits_for_and_gives_up_after_the_lock_timeout() {
    use std::io::Write as _;
    let f = Fixture::start().await;
    let dir = f.cache_dir.path();
    microsandbox_image::GlobalCache::new(dir).unwrap();
    // Another process holds the first layer's lock (as a pull stopped with SIGSTOP would).
    let layer = &f.gzip.layers[0];
    let lock_path = dir.join(format!(
        "locks/layer-{}.lock",
        layer.diff_id.trim_start_matches("sha256:")
    ));
    let mut held = std::fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();
    writeln!(held, "{}", std::process::id()).unwrap();
    let config = dir.join("settings.json");
    std::fs::write(&config, r#"{"lockTimeout": 0.5, "durable": false}"#).unwrap();
    let pull = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "pull",
                &format!("{}/fixtures/standard:gzip", f.host()),
                "--progress",
                "json",
            ])
            .args(extra)
            .arg("--cache")
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = pull(&["--config", config.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(
            microsandbox_image::ErrorKind::LockTimeout
                .exit_code()
                .into()
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let waiting = events
        .iter()
        .find(|e| e["type"] == "layerWaiting")
        .expect("a layerWaiting event");
    assert_eq!(waiting["holderPid"], std::process::id());
    assert_eq!(waiting["diffId"], layer.diff_id.as_str());
    let error = events.last().unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["kind"], "LOCK_TIMEOUT");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("held by pid {}", std::process::id())),
        "{error}"
    );
    // Without a timeout the pull waits, and finishes once the holder lets go.
    let child = Command::new(BIN)
        .args([
            "pull",
            &format!("{}/fixtures/standard:gzip", f.host()),
            "--progress",
            "json",
            "--cache",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(held);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"type\":\"layerWaiting\""));
}
