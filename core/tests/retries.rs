//! Retries are visible and a pull can be bounded: each retry of a manifest or blob request
//! (a 503 with `Retry-After`, a reset mid-blob) is reported as a `requestRetrying` progress
//! event before its wait, with the attempt number and the wait (a `Retry-After` above
//! `maxRetryAfter` cut to it, and saying so); the CLI prints it; and the `deadline` setting
//! stops a pull that takes too long with `DEADLINE_EXCEEDED`, leaving nothing half-published.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{biggest_layer as big_layer, flaky_registry as setup, layer_dirs, tmp_entries};
use microsandbox_image::{
    ErrorKind, GlobalCache, Platform, PullOptions, PullProgress, Registry, RegistryConfig,
};
use msbimage_testkit::{Fault, FaultProxy, FrontOptions};

fn registry(cache: &tempfile::TempDir, config: RegistryConfig) -> Registry {
    Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .config(RegistryConfig {
        durable: false,
        ..config
    })
    .build()
    .unwrap()
}

/// Pulls `flaky/app:v1` through `proxy`, collecting the `requestRetrying` events.
async fn pull_collecting(
    proxy: &FaultProxy,
    cache: &tempfile::TempDir,
    config: RegistryConfig,
) -> (
    microsandbox_image::Result<microsandbox_image::PullResult>,
    Vec<PullProgress>,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let r = format!("{}/flaky/app:v1", proxy.host()).parse().unwrap();
    let result = registry(cache, config)
        .pull_with_callback(
            &r,
            &PullOptions::default(),
            Arc::new(move |e: &PullProgress| {
                if matches!(e, PullProgress::RequestRetrying { .. }) {
                    seen.lock().unwrap().push(e.clone());
                }
            }),
        )
        .await;
    let events = events.lock().unwrap().clone();
    (result, events)
}

/// One retry event's fields, as a tuple to compare.
fn fields(e: &PullProgress) -> (String, Option<usize>, u32, u32, u64, String) {
    let PullProgress::RequestRetrying {
        url,
        layer_index,
        attempt,
        max_attempts,
        wait_ms,
        reason,
        ..
    } = e
    else {
        panic!("not a retry: {e:?}")
    };
    (
        url.clone(),
        *layer_index,
        *attempt,
        *max_attempts,
        *wait_ms,
        reason.clone(),
    )
}

/// A manifest answered twice with 503 and a `Retry-After` of more than a day: each retry is
/// an event, numbered, waiting `maxRetryAfter` instead, and saying it cut the wait.
#[tokio::test]
async fn a_huge_retry_after_on_the_manifest_is_cut_and_reported() {
    let (reg, _) = setup().await;
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Status {
            code: 503,
            retry_after: Some(100_000),
            times: 2,
        },
        FrontOptions::default()
            .only_digest("sha256:none")
            .manifests(),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        max_retry_after: Duration::from_millis(300),
        ..Default::default()
    };
    let (result, events) = pull_collecting(&proxy, &cache, config).await;
    assert_eq!(result.unwrap().layers.len(), 3);
    assert_eq!(proxy.faults_injected(), 2);
    let got: Vec<_> = events.iter().map(fields).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    for (i, (url, layer, attempt, max, wait_ms, reason)) in got.into_iter().enumerate() {
        assert_eq!(
            url,
            format!("{}/v2/flaky/app/manifests/v1", proxy.base_url())
        );
        assert_eq!(layer, None);
        assert_eq!((attempt, max), (i as u32 + 2, 5));
        assert_eq!(wait_ms, 300);
        assert!(reason.starts_with("HTTP 503"), "{reason}");
        assert!(
            reason.contains("Retry-After 100000 s, cut to maxRetryAfter 0.3 s"),
            "{reason}"
        );
    }
}

/// A blob answered with 503 (no `Retry-After`: the backoff) and another whose stream is cut
/// twice: the retries name the layer and its digest, and the resumes say where they resume.
#[tokio::test]
async fn blob_retries_and_resumes_are_reported_with_their_layer() {
    let (reg, image) = setup().await;
    let (index, big) = big_layer(&image);
    for fault in [
        Fault::Status {
            code: 503,
            retry_after: None,
            times: 2,
        },
        Fault::ResetAfter {
            bytes: 500_000,
            times: 2,
        },
    ] {
        let proxy = FaultProxy::start_with(
            &reg.base_url(),
            fault.clone(),
            FrontOptions::default().only_digest(&big.digest),
        )
        .await
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let (result, events) = pull_collecting(&proxy, &cache, RegistryConfig::default()).await;
        assert_eq!(result.unwrap().layers.len(), 3, "{fault:?}");
        assert_eq!(proxy.faults_injected(), 2, "{fault:?}");
        assert_eq!(events.len(), 2, "{fault:?}: {events:?}");
        for (i, e) in events.iter().enumerate() {
            let PullProgress::RequestRetrying { digest, .. } = e else {
                unreachable!()
            };
            assert_eq!(
                digest.as_ref().map(|d| d.to_string()),
                Some(big.digest.clone())
            );
            let (url, layer, attempt, max, wait_ms, reason) = fields(e);
            assert_eq!(
                url,
                format!("{}/v2/flaky/app/blobs/{}", proxy.base_url(), big.digest)
            );
            assert_eq!(layer, Some(index));
            assert!(wait_ms > 0);
            match fault {
                Fault::Status { .. } => {
                    // The request's own retries: attempts 2 and 3 of maxRetries + 1.
                    assert_eq!((attempt, max), (i as u32 + 2, 5));
                    assert_eq!(reason, "HTTP 503 Service Unavailable");
                }
                _ => {
                    // Each resume follows bytes that arrived: attempt 2 of the blob's 6 each time.
                    assert_eq!((attempt, max), (2, 6));
                    assert!(reason.contains("resuming from byte"), "{reason}");
                }
            }
        }
    }
}

/// A pull held up longer than its deadline (a blob stalls) fails with DEADLINE_EXCEEDED,
/// leaves nothing in `tmp/` and publishes no layer it had not finished.
#[tokio::test]
async fn the_deadline_stops_a_stalled_pull_cleanly() {
    let (reg, image) = setup().await;
    let (_, big) = big_layer(&image);
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 100_000,
            millis: 30_000,
        },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        deadline: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (result, _) = pull_collecting(&proxy, &cache, config).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    let message = err.to_string();
    assert!(message.contains("deadline of 2 s"), "{message}");
    assert!(message.contains("flaky/app:v1"), "{message}");
    assert_eq!(tmp_entries(cache.path()), Vec::<String>::new());
    assert!(
        layer_dirs(cache.path()).len() < 3,
        "{:?}",
        layer_dirs(cache.path())
    );
}

/// The deadline also cuts a wait for a retry, and the error says which retry it was.
#[tokio::test]
async fn the_deadline_names_the_retry_it_cut_short() {
    let (reg, _) = setup().await;
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Status {
            code: 503,
            retry_after: Some(60),
            times: 5,
        },
        FrontOptions::default()
            .only_digest("sha256:none")
            .manifests(),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = RegistryConfig {
        deadline: Some(Duration::from_millis(1500)),
        max_retry_after: Duration::from_secs(60),
        ..Default::default()
    };
    let (result, events) = pull_collecting(&proxy, &cache, config).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    assert_eq!(events.len(), 1, "{events:?}");
    let message = err.to_string();
    assert!(
        message.contains("it was retrying GET") && message.contains("HTTP 503"),
        "{message}"
    );
    assert_eq!(err.report().kind.code(), "DEADLINE_EXCEEDED");
}

/// Runs `msbimage pull --progress plain REFERENCE` with `extra` arguments, into `cache`.
fn cli_pull(cache: &std::path::Path, reference: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_msbimage"))
        .args(["pull", "--progress", "plain", "--cache"])
        .arg(cache)
        .args(extra)
        .arg(reference)
        .env("DOCKER_CONFIG", "/nonexistent/msbimage-test-docker-config")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The CLI prints each retry on its own line (plain progress), and `--deadline` gives up with
/// DEADLINE_EXCEEDED's exit code.
#[tokio::test]
async fn the_cli_shows_retries_and_honours_its_deadline() {
    let (reg, _) = setup().await;
    let manifests = || {
        FrontOptions::default()
            .only_digest("sha256:none")
            .manifests()
    };
    let throttled = |times| Fault::Status {
        code: 503,
        retry_after: Some(1),
        times,
    };
    let once = FaultProxy::start_with(&reg.base_url(), throttled(1), manifests())
        .await
        .unwrap();
    let always = FaultProxy::start_with(&reg.base_url(), throttled(100), manifests())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (dir, first, second) = (
        cache.path().to_owned(),
        format!("{}/flaky/app:v1", once.host()),
        format!("{}/flaky/app:v1", always.host()),
    );
    let (ok, late) = tokio::task::spawn_blocking(move || {
        (
            cli_pull(&dir, &first, &[]),
            cli_pull(&dir, &second, &["--deadline", "2s"]),
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    let want = format!(
        "retrying GET {}/v2/flaky/app/manifests/v1 in 1.0 s (attempt 2/5): HTTP 503 Service \
         Unavailable (Retry-After 1 s)",
        once.base_url()
    );
    assert!(stderr.lines().any(|l| l == want), "{stderr}");
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert_eq!(
        late.status.code(),
        Some(i32::from(ErrorKind::DeadlineExceeded.exit_code())),
        "{stderr}"
    );
    assert!(stderr.contains("deadline of 2 s"), "{stderr}");
    assert!(stderr.contains("retrying GET"), "{stderr}");
}
