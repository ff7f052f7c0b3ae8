//! The HTTP fronts in front of a real registry: the redirect front sends blob GETs to a
//! different host that never sees the client's `Authorization`, and the fault proxy's
//! faults (reset + resumable range, corrupt byte, 429/503 with Retry-After, stall)
//! happen exactly as configured while everything else passes through.

mod support;

use std::time::{Duration, Instant};

use msbimage_testkit::fixtures::standard_image;
use msbimage_testkit::{
    Compression, Fault, FaultProxy, FrontOptions, Image, Pusher, RedirectFront, Registry,
    RegistryOptions, sha256_digest,
};
use support::{basic, client, get_blob, get_manifest};

const REPO: &str = "fronts/image";

/// A plain registry with the gzip standard image pushed as `fronts/image:v1`.
async fn registry_with_image(
    opts: RegistryOptions,
    creds: Option<(&str, &str)>,
) -> (Registry, Image) {
    let reg = Registry::start(opts).await.unwrap();
    let image = standard_image(Compression::Gzip);
    let mut pusher = Pusher::new(&reg.base_url());
    if let Some((u, p)) = creds {
        pusher = pusher.with_basic(u, p);
    }
    pusher.push_image(REPO, "v1", &image).await.unwrap();
    (reg, image)
}

/// The biggest layer (the one with 3 MiB of random data).
fn big_layer(image: &Image) -> &msbimage_testkit::Layer {
    image.layers.iter().max_by_key(|l| l.blob.len()).unwrap()
}

#[tokio::test]
async fn redirect_front_sends_blobs_to_another_host_without_credentials() {
    let (reg, image) = registry_with_image(
        RegistryOptions::plain().basic("alice", "pw"),
        Some(("alice", "pw")),
    )
    .await;
    let front = RedirectFront::start_with(
        &reg.base_url(),
        FrontOptions::default().credentials("alice", "pw"),
    )
    .await
    .unwrap();
    let auth = basic("alice", "pw");
    let c = client(None);

    // Manifests are forwarded, Authorization included.
    let m = get_manifest(&c, &front.base_url(), REPO, "v1", Some(&auth)).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body, image.manifest);
    assert_eq!(
        get_manifest(&c, &front.base_url(), REPO, "v1", None)
            .await
            .status,
        401
    );

    // Blob GETs answer 307 to localhost.
    let layer = big_layer(&image);
    let url = format!("{}/v2/{REPO}/blobs/{}", front.base_url(), layer.digest);
    let resp = c
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/blobs/{}", front.blob_base_url(), layer.digest)));
    assert!(location.starts_with("http://localhost:"));

    // A client following redirects gets the blob; reqwest drops Authorization across hosts.
    let following = msbimage_testkit::tls::client_builder()
        .no_proxy()
        .build()
        .unwrap();
    let body = following
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_digest(&body), layer.digest);

    // Ranges pass through the blob host.
    let ranged = c
        .get(&location)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &layer.blob[..10]);

    let seen = front.blob_host_requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.header("authorization").is_none()));
    assert_eq!(seen[1].header("range"), Some("bytes=0-9"));
    assert!(front.requests().iter().any(|r| r.path.contains("/blobs/")));
}

/// Reads `url` to the end, resuming with `Range` after each cut; returns the body and how
/// many GETs it took.
async fn get_resuming(c: &reqwest::Client, url: &str, agent: &str) -> (Vec<u8>, u32) {
    let mut got = Vec::new();
    for gets in 1..=10 {
        let mut req = c.get(url).header("user-agent", agent);
        if gets > 1 {
            req = req.header("range", format!("bytes={}-", got.len()));
        }
        let mut resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                Ok(None) => return (got, gets),
                Err(_) => break,
            }
        }
    }
    panic!("not done after 10 GETs");
}

#[tokio::test]
async fn reset_every_cuts_one_get_in_n_at_varying_points_and_logs_each() {
    let (reg, image) = registry_with_image(RegistryOptions::plain(), None).await;
    let layer = big_layer(&image);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("blobs.jsonl");
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::ResetEvery { every: 2, seed: 7 },
        FrontOptions::default().log(&log),
    )
    .await
    .unwrap();
    let c = client(None);
    let url = format!("{}/v2/{REPO}/blobs/{}", proxy.base_url(), layer.digest);

    // GETs 2, 4, … are cut (below the body's length, at points that differ); each cut one
    // is resumed by the next GET.
    let (first, gets) = get_resuming(&c, &url, "pull-1").await;
    assert_eq!((sha256_digest(&first), gets), (layer.digest.clone(), 1));
    for agent in ["pull-2", "pull-3"] {
        let (body, gets) = get_resuming(&c, &url, agent).await;
        assert_eq!((sha256_digest(&body), gets), (layer.digest.clone(), 2));
    }

    let served = proxy.blob_log();
    let agents: Vec<_> = served.iter().map(|s| s.user_agent.as_deref()).collect();
    let pulls = ["pull-1", "pull-2", "pull-2", "pull-3", "pull-3"];
    assert_eq!(agents, pulls.map(Some));
    let resets: Vec<_> = served.iter().map(|s| s.reset).collect();
    assert_eq!(resets, [false, true, false, true, false]);
    for cut in [1, 3] {
        assert!(served[cut].bytes < layer.size());
        assert_eq!(served[cut].range, None);
        // The resume asks for what the client kept, at most what was sent before the cut.
        let from: u64 = served[cut + 1].range.as_deref().unwrap()["bytes=".len()..]
            .trim_end_matches('-')
            .parse()
            .unwrap();
        assert!(from <= served[cut].bytes);
        assert_eq!(served[cut + 1].bytes, layer.size() - from);
    }
    assert_ne!(served[1].bytes, served[3].bytes, "cut points vary");
    assert_eq!(
        proxy.blob_bytes_served(),
        served.iter().map(|s| s.bytes).sum::<u64>()
    );
    assert_eq!(proxy.faults_injected(), 2);

    let lines = std::fs::read_to_string(&log).unwrap();
    let logged: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), 5);
    assert_eq!(logged[1]["reset"], true);
    assert_eq!(logged[1]["user_agent"], "pull-2");
}

#[tokio::test]
async fn reset_after_cuts_the_body_and_a_range_resumes() {
    let (reg, image) = registry_with_image(RegistryOptions::plain(), None).await;
    let layer = big_layer(&image);
    let proxy = FaultProxy::start(
        &reg.base_url(),
        Fault::ResetAfter {
            bytes: 100_000,
            times: 1,
        },
    )
    .await
    .unwrap();
    let c = client(None);
    let url = format!("{}/v2/{REPO}/blobs/{}", proxy.base_url(), layer.digest);

    let mut resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(layer.size()));
    let mut got = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("body completed despite the fault"),
            Err(e) => break e,
        }
    };
    assert_eq!(got.len(), 100_000, "cut after the configured bytes ({err})");

    let rest = c
        .get(&url)
        .header("range", format!("bytes={}-", got.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(sha256_digest(&got), layer.digest);

    let blob_reqs = proxy.blob_requests();
    assert_eq!(blob_reqs.len(), 2);
    assert_eq!(blob_reqs[0].header("range"), None);
    assert_eq!(blob_reqs[1].header("range"), Some("bytes=100000-"));
    assert_eq!(proxy.faults_injected(), 1);
}

#[tokio::test]
async fn corrupt_byte_flips_exactly_one_byte() {
    let (reg, image) = registry_with_image(RegistryOptions::plain(), None).await;
    let layer = big_layer(&image);
    let proxy = FaultProxy::start(&reg.base_url(), Fault::CorruptByte { offset: 12_345 })
        .await
        .unwrap();
    let c = client(None);
    let got = get_blob(&c, &proxy.base_url(), REPO, &layer.digest, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), layer.blob.len());
    assert_ne!(sha256_digest(&got.body), layer.digest);
    let diffs: Vec<usize> = (0..got.body.len())
        .filter(|&i| got.body[i] != layer.blob[i])
        .collect();
    assert_eq!(diffs, [12_345]);
    assert_eq!(got.body[12_345], layer.blob[12_345] ^ 0xFF);

    // A range starting past the offset is clean; one covering it is corrupted in place.
    let url = format!("{}/v2/{REPO}/blobs/{}", proxy.base_url(), layer.digest);
    let tail = c
        .get(&url)
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &layer.blob[20_000..]);
    let mid = c
        .get(&url)
        .header("range", "bytes=12000-12999")
        .send()
        .await
        .unwrap();
    let mid = mid.bytes().await.unwrap();
    assert_eq!(mid[345], layer.blob[12_345] ^ 0xFF);

    // Manifests pass untouched.
    let m = get_manifest(&c, &proxy.base_url(), REPO, "v1", None).await;
    assert_eq!(m.body, image.manifest);
}

#[tokio::test]
async fn status_fault_answers_then_passes() {
    let (reg, image) = registry_with_image(RegistryOptions::plain(), None).await;
    let layer = big_layer(&image);
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Status {
            code: 429,
            retry_after: Some(1),
            times: 2,
        },
        FrontOptions::default().only_digest(&layer.digest),
    )
    .await
    .unwrap();
    let c = client(None);
    // The config blob is not targeted.
    let cfg = get_blob(&c, &proxy.base_url(), REPO, &image.config_digest, None).await;
    assert_eq!(cfg.status, 200);
    let url = format!("{}/v2/{REPO}/blobs/{}", proxy.base_url(), layer.digest);
    for _ in 0..2 {
        let resp = c.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    let ok = get_blob(&c, &proxy.base_url(), REPO, &layer.digest, None).await;
    assert_eq!(ok.status, 200);
    assert_eq!(sha256_digest(&ok.body), layer.digest);
    assert_eq!(proxy.faults_injected(), 2);
    assert_eq!(proxy.blob_requests().len(), 3);

    let unavailable = FaultProxy::start(
        &reg.base_url(),
        Fault::Status {
            code: 503,
            retry_after: None,
            times: 1,
        },
    )
    .await
    .unwrap();
    let resp = c
        .get(format!(
            "{}/v2/{REPO}/blobs/{}",
            unavailable.base_url(),
            layer.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn stall_delays_the_body_but_delivers_it() {
    let (reg, image) = registry_with_image(RegistryOptions::plain(), None).await;
    let layer = &image.layers[2];
    let proxy = FaultProxy::start(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 100,
            millis: 400,
        },
    )
    .await
    .unwrap();
    let c = client(None);
    let start = Instant::now();
    let got = get_blob(&c, &proxy.base_url(), REPO, &layer.digest, None).await;
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(got.body, layer.blob);
    assert_eq!(proxy.faults_injected(), 1);
}

#[tokio::test]
async fn fronts_forward_pushes_and_rewrite_upload_locations() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    let proxy = FaultProxy::start(&reg.base_url(), Fault::None)
        .await
        .unwrap();
    let image = standard_image(Compression::Zstd);
    Pusher::new(&proxy.base_url())
        .push_image("through/proxy", "v1", &image)
        .await
        .unwrap();
    // The upload's PUT came back through the proxy (Location was rewritten).
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
    );
    let m = get_manifest(&client(None), &reg.base_url(), "through/proxy", "v1", None).await;
    assert_eq!(m.body, image.manifest);
    assert_eq!(proxy.faults_injected(), 0);
}
