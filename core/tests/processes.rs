//! Many processes sharing one cache: concurrent `msbimage pull`s of images with the same
//! layers, and a pull killed with SIGKILL mid-layer (its lock dies with it, its staging debris
//! is swept by the next pull).
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Stdio};

use common::{Fixture, layer_dirs, tmp_entries};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_processes_share_one_cache() {
    let f = Fixture::start().await;
    let children: Vec<_> = (0..6)
        .map(|i| {
            let tag = ["gzip", "zstd", "none"][i % 3];
            Command::new(BIN)
                .args(["pull", &format!("{}/fixtures/standard:{tag}", f.host())])
                .args(["--progress", "none", "--json", "--cache"])
                .arg(f.cache_dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut layer_lists = Vec::new();
    for c in children {
        let out = tokio::task::spawn_blocking(move || c.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        layer_lists.push(v["layers"].clone());
    }
    assert!(layer_lists.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(layer_dirs(f.cache_dir.path()).len(), 3);
    assert!(tmp_entries(f.cache_dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pull_leaves_nothing_half_done() {
    let f = Fixture::start().await;
    let (mut child, big_hex, _proxy) = common::stalled_pull(&f).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !layer_dirs(f.cache_dir.path()).contains(&big_hex),
        "nothing half-written published"
    );

    // A new pull straight from the registry takes the lock the dead process held, sweeps its
    // staging directory and completes.
    let out = Command::new(BIN)
        .args(["pull", &format!("{}/fixtures/standard:gzip", f.host())])
        .args(["--progress", "none", "--cache"])
        .arg(f.cache_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(layer_dirs(f.cache_dir.path()).contains(&big_hex));
    assert!(
        tmp_entries(f.cache_dir.path()).is_empty(),
        "{:?}",
        tmp_entries(f.cache_dir.path())
    );
}
