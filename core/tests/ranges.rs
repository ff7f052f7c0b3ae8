//! Large blobs fetched as parallel `Range` requests, against the real registry behind the
//! harness's fronts: ranges that complete out of order are reassembled in order, a registry
//! that ignores `Range` gets one stream, a reset range is asked again for its missing bytes
//! only, a redirect to a blob host is followed once and the later ranges go straight there,
//! a corrupted range fails the digest with nothing published, the connections a registry
//! sees stay within `maxConnections`, peak memory stays flat for large layers, and a small
//! layer does not wait for a large one's slot. By default a blob starts as one request (the
//! lead) and is split into ranges only once the network is the limit: a registry nearby sees
//! one request per blob, a narrow link sees the lead cut and ranges for the rest. The tests
//! of the ranges themselves ask for them from the first byte (`RangeMode::Eager`).
//!
//! The standard image's biggest layer is a little over 3 MiB; a chunk size of 256 KiB cuts
//! it into a dozen ranges.

mod common;

use common::{layer_dirs, tmp_entries};
use microsandbox_image::{
    ErrorKind, GlobalCache, Platform, PullOptions, PullResult, RangeMode, Registry,
};
use msbimage_testkit::{BlobServed, Fault, FaultProxy, FrontOptions, RedirectFront};

const CHUNK: u64 = 256 << 10;

/// A builder for a registry client over `cache`, not durable (tests on tmp directories).
fn builder(cache: &tempfile::TempDir) -> microsandbox_image::RegistryBuilder {
    Registry::builder(
        Platform::new("linux", "amd64"),
        GlobalCache::new(cache.path()).unwrap(),
    )
    .durable(false)
}

/// A client asking for ranges of [`CHUNK`] from the first byte, `connections` per blob.
fn registry(cache: &tempfile::TempDir, connections: usize) -> Registry {
    builder(cache)
        .ranges(CHUNK, connections)
        .range_mode(RangeMode::Eager)
        .build()
        .unwrap()
}

async fn pull(host: &str, registry: &Registry) -> microsandbox_image::Result<PullResult> {
    let r = format!("{host}/flaky/app:v1").parse().unwrap();
    registry.pull(&r, &PullOptions::default()).await
}

fn assert_big_file(res: &PullResult) {
    assert_eq!(
        std::fs::read(res.layers[0].join("data/big-3m")).unwrap(),
        msbimage_testkit::fixtures::pseudo_random(3 << 20, 2)
    );
}

/// The standard image in a registry, behind a front applying `fault` to its biggest layer;
/// the registry (keep it alive), the front and that layer.
async fn faulted(
    fault: Fault,
) -> (
    msbimage_testkit::Registry,
    FaultProxy,
    msbimage_testkit::Layer,
) {
    let (reg, image) = common::flaky_registry().await;
    let big = common::biggest_layer(&image).1.clone();
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        fault,
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    (reg, proxy, big)
}

/// A registry holding `image` as `NAME:v1`.
async fn pushed(name: &str, image: &msbimage_testkit::Image) -> msbimage_testkit::Registry {
    let reg = msbimage_testkit::Registry::start(msbimage_testkit::RegistryOptions::plain())
        .await
        .unwrap();
    msbimage_testkit::Pusher::new(&reg.base_url())
        .push_image(name, "v1", image)
        .await
        .unwrap();
    reg
}

/// `bytes=A-B` → `A..B+1`.
fn span(range: &str) -> std::ops::Range<u64> {
    let (a, b) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .unwrap_or_else(|| panic!("not a closed range: {range}"));
    a.parse().unwrap()..b.parse::<u64>().unwrap() + 1
}

/// The ranges asked for one blob, in the order the requests arrived.
fn asked(proxy: &FaultProxy, digest: &str) -> Vec<std::ops::Range<u64>> {
    proxy
        .blob_requests()
        .iter()
        .filter(|r| r.path.contains(digest))
        .map(|r| span(r.header("range").expect("every request is a range")))
        .collect()
}

/// The blob's chunks, as the client cuts them.
fn chunks(len: u64) -> Vec<std::ops::Range<u64>> {
    (0..len.div_ceil(CHUNK))
        .map(|i| i * CHUNK..((i + 1) * CHUNK).min(len))
        .collect()
}

#[tokio::test]
async fn ranges_completing_out_of_order_are_reassembled_in_order() {
    // The second range is held back: those after it finish first.
    let (_reg, proxy, big) = faulted(Fault::DelayRange {
        start: CHUNK,
        millis: 700,
    })
    .await;
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&proxy.host(), &registry(&cache, 4)).await.unwrap();
    assert_big_file(&res);
    assert_eq!(proxy.faults_injected(), 1);

    // Every chunk asked for exactly once, each answered with 206.
    let mut ranges = asked(&proxy, &big.digest);
    ranges.sort_by_key(|r| r.start);
    assert_eq!(ranges, chunks(big.blob.len() as u64));
    let log: Vec<BlobServed> = proxy.blob_log();
    assert!(log.iter().all(|s| s.status == 206), "{log:?}");
    // The delayed range ended after a range that starts beyond it.
    let ended = |start: u64| {
        log.iter()
            .position(|s| {
                s.range
                    .as_deref()
                    .map(span)
                    .is_some_and(|r| r.start == start)
            })
            .unwrap()
    };
    assert!(ended(CHUNK) > ended(2 * CHUNK), "{log:?}");
    assert!(
        proxy.max_concurrent_blob_gets() > 1,
        "ranges ran in parallel"
    );
}

#[tokio::test]
async fn a_registry_ignoring_range_gets_one_stream() {
    let (_reg, proxy, big) = faulted(Fault::IgnoreRange).await;
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&proxy.host(), &registry(&cache, 4)).await.unwrap();
    assert_big_file(&res);
    // The first ranges went out together; their answers (the whole blob) turned the download
    // into one stream, read from one of them, and no range was asked for after that.
    let gets = proxy.blob_requests();
    assert!((1..=4).contains(&gets.len()), "{gets:?}");
    for g in &gets {
        let r = span(g.header("range").expect("asked as a range"));
        assert_eq!((r.end - r.start) % CHUNK, 0, "a first-wave chunk: {r:?}");
        assert!(r.start < 4 * CHUNK, "{r:?}");
    }
    let log = proxy.blob_log();
    assert!(log.iter().all(|s| s.status == 200), "{log:?}");
    assert!(
        log.iter().any(|s| s.bytes == big.blob.len() as u64),
        "one answer was read whole: {log:?}"
    );
}

/// Adaptive, the lead asks for the whole blob as one range; a registry that answers `200`
/// with the whole blob is read as one stream from that answer.
#[tokio::test]
async fn a_lead_answered_whole_is_read_as_one_stream() {
    let (_reg, proxy, big) = faulted(Fault::IgnoreRange).await;
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache).ranges(CHUNK, 4).build().unwrap();
    let res = pull(&proxy.host(), &registry).await.unwrap();
    assert_big_file(&res);
    let log = proxy.blob_log();
    let len = big.blob.len() as u64;
    assert!(log.iter().all(|s| s.status == 200), "{log:?}");
    // Read whole from the lead's answer; on a loaded machine the lead may have been cut
    // first, and the one range asked after it answered whole too (and read from the cut).
    assert!((1..=2).contains(&log.len()), "{log:?}");
    assert_eq!(log.iter().map(|s| s.bytes).max(), Some(len), "{log:?}");
}

/// A registry that leaves `Content-Length` out of its blob answers (the body ends when the
/// connection closes) is served all the same: a range's answer is checked by its
/// `Content-Range`, the blob by the manifest's size and digest, so the pull neither needs
/// the header nor trusts it.
#[tokio::test]
async fn answers_without_content_length_are_read_to_their_end() {
    let (_reg, proxy, big) = faulted(Fault::NoContentLength).await;
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&proxy.host(), &registry(&cache, 4)).await.unwrap();
    assert_big_file(&res);
    let log = proxy.blob_log();
    let len = big.blob.len() as u64;
    assert_eq!(log.len() as u64, len.div_ceil(CHUNK), "{log:?}");
    assert!(log.iter().all(|s| s.status == 206), "{log:?}");
    assert_eq!(proxy.faults_injected() as usize, log.len());
}

#[tokio::test]
async fn a_reset_range_is_asked_again_for_its_missing_bytes_only() {
    // The first GET (the first range) is cut after 100 000 bytes.
    let (_reg, proxy, big) = faulted(Fault::ResetAfter {
        bytes: 100_000,
        times: 1,
    })
    .await;
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&proxy.host(), &registry(&cache, 4)).await.unwrap();
    assert_big_file(&res);
    assert_eq!(proxy.faults_injected(), 1);

    let ranges = asked(&proxy, &big.digest);
    let all = chunks(big.blob.len() as u64);
    assert_eq!(ranges.len(), all.len() + 1, "{ranges:?}");
    assert_eq!(ranges[0], all[0], "the first request is the first chunk");
    // One request asks for the rest of the first chunk and nothing else.
    let again: Vec<_> = ranges
        .iter()
        .filter(|r| r.end == CHUNK && r.start > 0)
        .collect();
    assert_eq!(again.len(), 1, "{ranges:?}");
    assert!(again[0].start <= 100_000, "{ranges:?}");
    // Every other chunk was asked for exactly once.
    for chunk in &all[1..] {
        assert_eq!(
            ranges.iter().filter(|r| *r == chunk).count(),
            1,
            "{chunk:?}"
        );
    }
}

#[tokio::test]
async fn ranges_follow_a_redirect_to_the_blob_host_and_then_go_straight_there() {
    let (reg, image) = common::flaky_registry().await;
    let big = common::biggest_layer(&image).1;
    let front = RedirectFront::start(&reg.base_url()).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&front.host(), &registry(&cache, 4)).await.unwrap();
    assert_big_file(&res);

    // The registry redirected only the first wave of ranges (sent together, before any
    // redirect was known); the later ones went straight to the blob host.
    let via_front = front
        .requests()
        .iter()
        .filter(|r| r.path.contains("/blobs/") && r.path.contains(&big.digest))
        .count();
    let all = chunks(big.blob.len() as u64);
    assert!((1..=4).contains(&via_front), "{via_front} of {}", all.len());
    // The blob host saw every chunk, each as a range, once.
    let mut at_host: Vec<_> = front
        .blob_host_requests()
        .iter()
        .filter(|r| r.path.contains(&big.digest))
        .map(|r| span(r.header("range").expect("a range")))
        .collect();
    at_host.sort_by_key(|r| r.start);
    assert_eq!(at_host, all);
    assert!(
        front
            .blob_host_requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[tokio::test]
async fn a_corrupted_range_fails_the_digest_and_publishes_nothing() {
    let (_reg, proxy, big) = faulted(Fault::CorruptByte {
        offset: 5 * CHUNK + 10,
    })
    .await;
    let cache = tempfile::tempdir().unwrap();
    let err = pull(&proxy.host(), &registry(&cache, 4)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert!(err.to_string().contains(&big.digest), "{err}");
    let big_diff = big.diff_id.trim_start_matches("sha256:");
    assert!(!layer_dirs(cache.path()).iter().any(|d| d == big_diff));
    assert!(tmp_entries(cache.path()).is_empty(), "no staging debris");
    assert!(
        asked(&proxy, &big.digest).len() > 1,
        "it was fetched in ranges"
    );
}

#[tokio::test]
async fn connections_to_a_registry_stay_within_max_connections() {
    let (reg, image) = common::flaky_registry().await;
    let big = common::biggest_layer(&image).1;
    // Every range is slow to start, so requests pile up if nothing bounds them.
    let proxy = FaultProxy::start(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 1,
            millis: 50,
        },
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache)
        .ranges(CHUNK, 8)
        .range_mode(RangeMode::Eager)
        .max_connections(3)
        .build()
        .unwrap();
    let res = pull(&proxy.host(), &registry).await.unwrap();
    assert_big_file(&res);
    assert!(asked(&proxy, &big.digest).len() > 1);
    let most = proxy.max_concurrent_blob_gets();
    assert!((2..=3).contains(&most), "{most} blob GETs at once");
}

#[tokio::test]
async fn one_connection_per_blob_turns_ranges_off() {
    let (_reg, proxy, _) = faulted(Fault::None).await;
    let cache = tempfile::tempdir().unwrap();
    let res = pull(&proxy.host(), &registry(&cache, 1)).await.unwrap();
    assert_big_file(&res);
    let gets = proxy.blob_requests();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].header("range"), None);
}

/// Peak memory stays flat however large the image: three 48 MiB layers pulled at once by the
/// CLI, with ranges fetched far faster than they are extracted (loopback), keep the process
/// under 64 MiB of RSS. The ranges fetched ahead wait in the client's shared 16 MiB buffer;
/// without that bound they would pile up to the size of the blobs. The RSS is the CLI's own,
/// as `getrusage(RUSAGE_CHILDREN)` of a Python parent that runs only it reports.
#[cfg(feature = "cli")]
#[tokio::test]
async fn peak_memory_stays_flat_for_large_layers() {
    use msbimage_testkit::{Compression, ImageBuilder, LayerBuilder};
    const LAYER: usize = 48 << 20;
    let mut image = ImageBuilder::new("linux", "amd64");
    for i in 0..3u64 {
        let data = msbimage_testkit::fixtures::pseudo_random(LAYER, 40 + i);
        image = image.layer(
            LayerBuilder::new()
                .file(&format!("big-{i}"), data, 0o644)
                .build(Compression::None),
        );
    }
    let reg = pushed("big/app", &image.build()).await;

    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/big/app:v1", reg.host());
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:])\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(r.returncode)";
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            env!("CARGO_BIN_EXE_msbimage"),
            "pull",
            &reference,
        ])
        .args(["--progress", "none", "--range-chunk-size", "4M"])
        .args(["--range-mode", "eager"])
        .arg("--cache")
        .arg(cache.path())
        .output()
        .unwrap();
    let text = common::output_text(&out);
    assert!(out.status.success(), "{text}");
    let kib: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {text}"));
    eprintln!("peak RSS of the pull: {} MiB", kib >> 10);
    assert!(kib > 0);
    assert!(kib <= 64 << 10, "peak RSS {} MiB", kib >> 10);
    assert_eq!(common::layer_dirs(cache.path()).len(), 3);
}

/// A small layer does not queue behind a large one: with one slot for large layers, the
/// small second layer is published while the large first one is still held up.
#[tokio::test]
async fn a_small_layer_does_not_wait_for_a_large_one() {
    use microsandbox_image::PullProgress;
    use msbimage_testkit::{Compression, ImageBuilder, LayerBuilder};
    let large = LayerBuilder::new()
        .file(
            "large",
            msbimage_testkit::fixtures::pseudo_random(9 << 20, 7),
            0o644,
        )
        .build(Compression::None);
    let small = LayerBuilder::new()
        .file("small", "small\n", 0o644)
        .build(Compression::None);
    let large_digest = large.digest.clone();
    let image = ImageBuilder::new("linux", "amd64")
        .layer(large)
        .layer(small)
        .build();
    let reg = pushed("mixed/app", &image).await;
    let proxy = FaultProxy::start_with(
        &reg.base_url(),
        Fault::Stall {
            after_bytes: 1,
            millis: 1500,
        },
        FrontOptions::default().only_digest(&large_digest),
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache).concurrency(1).build().unwrap();
    let r = format!("{}/mixed/app:v1", proxy.host()).parse().unwrap();
    let (mut progress, task) = registry.pull_with_progress(&r, &PullOptions::default());
    let mut done = Vec::new();
    while let Some(ev) = progress.recv().await {
        if let PullProgress::LayerExtractComplete { layer_index, .. } = ev {
            done.push(layer_index);
        }
    }
    task.await.unwrap().unwrap();
    assert_eq!(done, vec![1, 0], "the small layer finished first");
}

/// Over a narrow link with a round trip, the window of ranges opens and the connections are
/// kept alive and reused: the blob's 13 ranges and the other requests of the pull travel
/// over at most twice `maxConnections` TCP connections (a connection goes back to the pool a
/// moment after its body ends, so a request may open a new one meanwhile), counted by the
/// harness's shaping proxy.
#[tokio::test]
async fn connections_are_kept_alive_and_reused_over_a_slow_link() {
    use msbimage_testkit::{LinkProfile, Shaper};
    let (reg, _image) = common::flaky_registry().await;
    let upstream = reg.host().parse().unwrap();
    let link = LinkProfile::parse("rtt=10ms,conn=4MB,link=16MB,no-slow-start").unwrap();
    let shaper = Shaper::start(upstream, link).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache)
        .ranges(CHUNK, 4)
        .max_connections(3)
        .build()
        .unwrap();
    let res = pull(&shaper.addr().to_string(), &registry).await.unwrap();
    assert_big_file(&res);
    let connections = shaper.connections();
    eprintln!("{connections} TCP connections for the pull");
    assert!((1..=6).contains(&connections), "{connections} connections");
}

/// With the registry nearby (loopback, no shaping) one stream keeps the extractor busy, so
/// the default adaptive mode asks for each large blob once, whole, and never splits it. A
/// registry stalled by a loaded machine may still leave the extractor waiting now and then,
/// so of three pulls at least one must have made a single request, and every pull's first
/// request is for the whole blob.
#[tokio::test]
async fn a_registry_nearby_gets_one_request_per_blob() {
    let (_reg, proxy, big) = faulted(Fault::None).await;
    let len = big.blob.len() as u64;
    let mut single = 0;
    for _ in 0..3 {
        let before = asked(&proxy, &big.digest).len();
        let cache = tempfile::tempdir().unwrap();
        let registry = builder(&cache).ranges(CHUNK, 4).build().unwrap();
        let res = pull(&proxy.host(), &registry).await.unwrap();
        assert_big_file(&res);
        let asked = asked(&proxy, &big.digest)[before..].to_vec();
        assert_eq!(
            asked[0],
            0..len,
            "the lead asks for the whole blob: {asked:?}"
        );
        if asked.len() == 1 {
            single += 1;
        }
    }
    assert!(single >= 1, "every pull split the blob into ranges");
}

/// A lead reset before it was split (adaptive, registry nearby) is asked again from where it
/// stopped, to the blob's end, and never split.
#[tokio::test]
async fn a_reset_lead_is_asked_again_for_its_missing_bytes_only() {
    let (_reg, proxy, big) = faulted(Fault::ResetAfter {
        bytes: 100_000,
        times: 1,
    })
    .await;
    let len = big.blob.len() as u64;
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache).ranges(CHUNK, 4).build().unwrap();
    let res = pull(&proxy.host(), &registry).await.unwrap();
    assert_big_file(&res);
    assert_eq!(proxy.faults_injected(), 1);

    let asked = asked(&proxy, &big.digest);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0], 0..len, "{asked:?}");
    assert!(
        asked[1].start > 0 && asked[1].start <= 100_000 && asked[1].end == len,
        "{asked:?}"
    );
}

/// Over a narrow link the lead leaves the extractor waiting: it is cut one chunk past what
/// it has received and the rest goes as ranges, every byte asked once. Requests travel
/// client → shaping proxy (20 ms round trip, 2 MB/s per connection, slow start) → recording
/// front → registry.
#[tokio::test]
async fn over_a_narrow_link_the_lead_is_split_into_ranges() {
    use msbimage_testkit::{LinkProfile, Shaper};
    let (_reg, proxy, big) = faulted(Fault::None).await;
    let len = big.blob.len() as u64;
    let upstream = proxy.host().parse().unwrap();
    let link = LinkProfile::parse("rtt=20ms,conn=2MB,link=16MB").unwrap();
    let shaper = Shaper::start(upstream, link).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache).ranges(CHUNK, 4).build().unwrap();
    let res = pull(&shaper.addr().to_string(), &registry).await.unwrap();
    assert_big_file(&res);

    let asked = asked(&proxy, &big.digest);
    assert_eq!(
        asked[0],
        0..len,
        "the lead asks for the whole blob: {asked:?}"
    );
    assert!(asked.len() > 2, "the lead was split into ranges: {asked:?}");
    // The ranges cover the rest from the cut, one chunk each, every byte once.
    let mut ranges = asked[1..].to_vec();
    ranges.sort_by_key(|r| r.start);
    let cut = ranges[0].start;
    assert!(cut > 0 && cut + CHUNK <= len, "cut at {cut} of {len}");
    let expected: Vec<_> = (0..(len - cut).div_ceil(CHUNK))
        .map(|i| cut + i * CHUNK..(cut + (i + 1) * CHUNK).min(len))
        .collect();
    assert_eq!(ranges, expected);
    assert!(
        proxy.max_concurrent_blob_gets() > 1,
        "ranges ran beside the lead"
    );
}

/// Over TLS the registry offers HTTP/2 (ALPN) and the client takes it: the ranges of the
/// large blob, like every other request of the pull, are HTTP/2 requests, as the registry's
/// access log shows, and they ran side by side.
#[tokio::test]
async fn ranges_over_tls_are_http2_requests_where_the_registry_offers_it() {
    use msbimage_testkit::{Compression, Pusher, RegistryOptions};
    let reg = msbimage_testkit::Registry::start(RegistryOptions::plain().tls())
        .await
        .unwrap();
    let ca = reg.ca_pem_path().unwrap().to_owned();
    let image = msbimage_testkit::standard_image(Compression::Gzip);
    Pusher::new(&reg.base_url())
        .with_ca(&ca)
        .push_image("flaky/app", "v1", &image)
        .await
        .unwrap();
    let big = common::biggest_layer(&image).1;
    let cache = tempfile::tempdir().unwrap();
    let registry = builder(&cache)
        .ca_file(&ca)
        .ranges(CHUNK, 4)
        .range_mode(RangeMode::Eager)
        .build()
        .unwrap();
    let res = pull(&reg.host(), &registry).await.unwrap();
    assert_big_file(&res);

    let log = reg.log();
    let blob_gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("\"GET /v2/flaky/app/blobs/{}", big.digest)))
        .collect();
    let len = big.blob.len() as u64;
    assert_eq!(blob_gets.len() as u64, len.div_ceil(CHUNK), "{log}");
    assert!(
        blob_gets.iter().all(|l| l.contains(" HTTP/2.0\"")),
        "{blob_gets:#?}"
    );
}
