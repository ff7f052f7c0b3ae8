//! Warm `IfMissing` pull in process (issue 6: ≤ 2 ms median): the standard fixture image is
//! pulled once from a real `docker-registry` on loopback into a fresh cache; the registry is
//! then stopped, and each iteration is a complete `Registry::pull` that finds the image
//! complete in the cache (reads and checks the image record, stats every layer, no network).
//! Needs `docker-registry` on `PATH` (`.ci/setup` installs it).
//!
//! `cargo bench -p microsandbox-image --bench warm_pull`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use microsandbox_image::{GlobalCache, Platform, PullOptions, PullPolicy, Reference, Registry};
use msbimage_testkit::{
    Compression, Pusher, Registry as TestRegistry, RegistryOptions, standard_image,
};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let (registry, reference) = rt.block_on(async {
        let server = TestRegistry::start(RegistryOptions::plain())
            .await
            .expect("start docker-registry");
        let image = standard_image(Compression::Gzip);
        Pusher::new(&server.base_url())
            .push_image("bench/warm", "v1", &image)
            .await
            .expect("push");
        let reference: Reference = format!("{}/bench/warm:v1", server.host())
            .parse()
            .expect("reference");
        let registry = Registry::builder(
            Platform::new("linux", "amd64"),
            GlobalCache::new(cache_dir.path()).expect("cache"),
        )
        .insecure_registry(server.host())
        .build()
        .expect("registry");
        let cold = registry
            .pull(&reference, &PullOptions::default())
            .await
            .expect("cold pull");
        assert!(!cold.cached);
        drop(server); // stops the registry: warm pulls must not need it
        (registry, reference)
    });
    let warm = PullOptions {
        pull_policy: PullPolicy::IfMissing,
        ..PullOptions::default()
    };
    let result = rt
        .block_on(registry.pull(&reference, &warm))
        .expect("warm pull with the registry stopped");
    assert!(result.cached);

    let mut g = c.benchmark_group("pull");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("warm_if_missing", |b| {
        b.iter(|| {
            let r = rt
                .block_on(registry.pull(&reference, &warm))
                .expect("warm pull");
            assert!(r.cached);
        })
    });
    g.finish();
}

criterion_group!(warm, bench);
criterion_main!(warm);
