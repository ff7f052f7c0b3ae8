//! Shared setup for the end-to-end tests: a real `docker-registry` on loopback with fixture
//! images pushed through the registry API, a fresh cache, and tree assertions.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use microsandbox_image::{GlobalCache, Platform, Registry};
use msbimage_testkit::{
    Compression, Image, ManifestFormat, Pusher, Registry as TestRegistry, RegistryOptions,
    multiplatform, standard_image,
};

/// A registry with the standard image as `fixtures/standard:{gzip,zstd,none}` and the
/// multi-platform index as `fixtures/multi:latest`.
pub struct Fixture {
    pub registry: TestRegistry,
    pub cache_dir: tempfile::TempDir,
    pub gzip: Image,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(RegistryOptions::plain()).await
    }

    pub async fn start_with(opts: RegistryOptions) -> Fixture {
        let registry = TestRegistry::start(opts)
            .await
            .expect("start docker-registry");
        let gzip = standard_image(Compression::Gzip);
        let mut pusher = Pusher::new(&registry.base_url());
        if let Some(ca) = registry.ca_pem_path() {
            pusher = pusher.with_ca(ca);
        }
        if let Some((u, p)) = registry_basic(&registry) {
            pusher = pusher.with_basic(&u, &p);
        }
        push_all(&pusher, &gzip).await;
        Fixture {
            registry,
            cache_dir: tempfile::tempdir().expect("tempdir"),
            gzip,
        }
    }

    pub fn host(&self) -> String {
        self.registry.host()
    }

    pub fn reference(&self, repo_tag: &str) -> microsandbox_image::Reference {
        format!("{}/{repo_tag}", self.host())
            .parse()
            .expect("reference")
    }

    pub fn cache(&self) -> GlobalCache {
        GlobalCache::new(self.cache_dir.path()).expect("cache")
    }

    pub fn registry_client(&self) -> Registry {
        Registry::builder(Platform::new("linux", "amd64"), self.cache())
            .durable(false)
            .build()
            .expect("registry")
    }

    pub fn pusher(&self) -> Pusher {
        Pusher::new(&self.registry.base_url())
    }
}

fn registry_basic(_r: &TestRegistry) -> Option<(String, String)> {
    None
}

pub async fn push_all(pusher: &Pusher, gzip: &Image) {
    pusher
        .push_image("fixtures/standard", "gzip", gzip)
        .await
        .expect("push gzip");
    pusher
        .push_image(
            "fixtures/standard",
            "zstd",
            &standard_image(Compression::Zstd),
        )
        .await
        .expect("push zstd");
    pusher
        .push_image(
            "fixtures/standard",
            "none",
            &standard_image(Compression::None),
        )
        .await
        .expect("push none");
    pusher
        .push_image(
            "fixtures/standard",
            "docker",
            &msbimage_testkit::fixtures::standard_image_with(
                Compression::Gzip,
                ManifestFormat::DockerV2,
            ),
        )
        .await
        .expect("push docker v2");
    let multi = multiplatform(ManifestFormat::Oci);
    pusher
        .push_index(
            "fixtures/multi",
            "latest",
            &multi.index,
            &multi.all_images(),
        )
        .await
        .expect("push index");
}

/// Files in and around a directory tree, with sizes, for "nothing else changed" checks.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("metadata");
            out.push((p.clone(), if md.is_dir() { 0 } else { md.len() }));
            if md.is_dir() {
                walk(&p, out);
            }
        }
    }
    walk(root, &mut out);
    out.sort();
    out
}

/// Entries of `<cache>/tmp` (staging debris check).
pub fn tmp_entries(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Published layer directories in the cache.
pub fn layer_dirs(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("layers/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
