//! The `msbimage-testkit serve` binary that other languages' tests use: it prints one
//! JSON line describing a live registry holding the fixtures, and shuts the registry
//! down (temp dir removed) when stdin closes or on SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use msbimage_testkit::fixtures::{multiplatform, standard_image};
use msbimage_testkit::{Compression, ManifestFormat};
use serde_json::Value;
use support::{basic, client, get_manifest};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage-testkit");

/// Spawns `serve ARGS` and reads its JSON line.
async fn serve(args: &[&str]) -> (Child, Value) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(40), lines.next_line())
        .await
        .expect("JSON line within 40 s")
        .unwrap()
        .expect("a line before EOF");
    (child, serde_json::from_str(&line).unwrap())
}

async fn exits_cleanly(child: &mut Child) {
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pushes_fixtures_and_stops_when_stdin_closes() {
    let (mut child, info) = serve(&["--push-fixtures"]).await;
    let base = info["base_url"].as_str().unwrap().to_string();
    assert_eq!(base, format!("http://{}", info["host"].as_str().unwrap()));
    assert!(info["ca"].is_null());
    let c = client(None);
    for (tag, comp) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("none", Compression::None),
    ] {
        let want = standard_image(comp).manifest_digest;
        assert_eq!(
            info["manifests"][format!("fixtures/standard:{tag}")],
            want.as_str()
        );
        let m = get_manifest(&c, &base, "fixtures/standard", tag, None).await;
        assert_eq!(m.digest_header.as_deref(), Some(want.as_str()));
    }
    let index = multiplatform(ManifestFormat::Oci).index;
    let m = get_manifest(&c, &base, "fixtures/multi", "latest", None).await;
    assert_eq!(m.body, index.bytes);

    drop(child.stdin.take());
    exits_cleanly(&mut child).await;
    assert!(
        c.get(format!("{base}/v2/")).send().await.is_err(),
        "registry stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tls_basic_and_sigterm() {
    let (mut child, info) = serve(&["--tls", "--basic", "ci:pw", "--ignore-stdin"]).await;
    let base = info["base_url"].as_str().unwrap().to_string();
    assert!(base.starts_with("https://127.0.0.1:"));
    assert_eq!(info["user"], "ci");
    let ca = std::path::PathBuf::from(info["ca"].as_str().unwrap());
    assert!(ca.exists());
    let c = client(Some(&ca));
    let anon = c.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let authed = c
        .get(format!("{base}/v2/"))
        .header("authorization", basic("ci", "pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status(), 200);

    // stdin closing is ignored with --ignore-stdin; SIGTERM stops it.
    drop(child.stdin.take());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(child.try_wait().unwrap().is_none());
    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    exits_cleanly(&mut child).await;
    assert!(!ca.exists(), "temp dir removed");
}
