//! Shared setup for the end-to-end tests: a real `docker-registry` on loopback ([`Env`]: empty,
//! for tests that push their own images; [`Fixture`]: with the fixture images pushed through
//! the registry API), a fresh cache, the client every test pulls with, tree assertions, and
//! the umoci oracle ([`oracle_support`]).

#![allow(dead_code)]

pub mod oracle_support;

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use microsandbox_image::{GlobalCache, Platform, Registry, RegistryBuilder};
use msbimage_testkit::{
    Compression, Image, ManifestFormat, Pusher, Registry as TestRegistry, RegistryOptions,
    multiplatform, standard_image,
};

/// The client the tests pull with: `platform`, the cache at `cache`, not durable (test caches
/// are thrown away).
pub fn client_for(platform: Platform, cache: &Path) -> RegistryBuilder {
    Registry::builder(platform, GlobalCache::new(cache).expect("cache")).durable(false)
}

/// [`client_for`] linux/amd64.
pub fn client_in(cache: &Path) -> RegistryBuilder {
    client_for(Platform::new("linux", "amd64"), cache)
}

/// A registry started with some [`RegistryOptions`], nothing pushed yet, and a fresh cache.
pub struct Env {
    pub registry: TestRegistry,
    pub cache_dir: tempfile::TempDir,
    /// What the pusher authenticates with (the htpasswd user, or a token server's user).
    push_basic: Option<(String, String)>,
}

impl Env {
    /// Starts the registry; on an htpasswd registry the pusher uses its user.
    pub async fn start(opts: RegistryOptions) -> Env {
        let push_basic = opts.basic.clone();
        let registry = TestRegistry::start(opts)
            .await
            .expect("start docker-registry");
        Env {
            registry,
            cache_dir: tempfile::tempdir().expect("tempdir"),
            push_basic,
        }
    }

    /// Push as `user` (for a registry whose token server knows the user).
    pub fn push_as(mut self, user: &str, pass: &str) -> Env {
        self.push_basic = Some((user.to_owned(), pass.to_owned()));
        self
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

    /// [`client_in`] this cache.
    pub fn client(&self) -> RegistryBuilder {
        client_in(self.cache_dir.path())
    }

    pub fn registry_client(&self) -> Registry {
        self.client().build().expect("registry")
    }

    /// A pusher with the registry's CA and the push credentials.
    pub fn pusher(&self) -> Pusher {
        let mut pusher = Pusher::new(&self.registry.base_url());
        if let Some(ca) = self.registry.ca_pem_path() {
            pusher = pusher.with_ca(ca);
        }
        if let Some((u, p)) = &self.push_basic {
            pusher = pusher.with_basic(u, p);
        }
        pusher
    }

    /// Push `image` as `repo:tag`.
    pub async fn push(&self, repo: &str, tag: &str, image: &Image) {
        self.pusher()
            .push_image(repo, tag, image)
            .await
            .unwrap_or_else(|e| panic!("push {repo}:{tag}: {e}"));
    }
}

/// A registry with the standard image as `fixtures/standard:{gzip,zstd,none,docker}` and the
/// multi-platform index as `fixtures/multi:latest`; everything else is its [`Env`]'s.
pub struct Fixture {
    env: Env,
    pub gzip: Image,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(RegistryOptions::plain()).await
    }

    pub async fn start_with(opts: RegistryOptions) -> Fixture {
        let env = Env::start(opts).await;
        let gzip = standard_image(Compression::Gzip);
        push_all(&env.pusher(), &gzip).await;
        Fixture { env, gzip }
    }
}

impl Deref for Fixture {
    type Target = Env;

    fn deref(&self) -> &Env {
        &self.env
    }
}

impl DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut Env {
        &mut self.env
    }
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

/// Names of the entries of `dir`, sorted (none when it cannot be read).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Entries of `<cache>/tmp` (staging debris check).
pub fn tmp_entries(cache: &Path) -> Vec<String> {
    names_in(&cache.join("tmp"))
}

/// Published layer directories in the cache.
pub fn layer_dirs(cache: &Path) -> Vec<String> {
    names_in(&cache.join("layers/sha256"))
}

/// Start a pull of the standard image through a proxy that stalls its largest layer; return
/// the child (the `msbimage` CLI) once that layer is being extracted (its staging directory
/// exists), with the hex of the layer's diff_id and the proxy (keep it alive).
#[cfg(feature = "cli")]
pub async fn stalled_pull(
    f: &Fixture,
) -> (std::process::Child, String, msbimage_testkit::FaultProxy) {
    use msbimage_testkit::{Fault, FaultProxy, FrontOptions};
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let big = f
        .gzip
        .layers
        .iter()
        .max_by_key(|l| l.blob.len())
        .unwrap()
        .clone();
    let proxy = FaultProxy::start_with(
        &f.registry.base_url(),
        Fault::Stall {
            after_bytes: 200_000,
            millis: 30_000,
        },
        FrontOptions::default().only_digest(&big.digest),
    )
    .await
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_msbimage"))
        .args(["pull", &format!("{}/fixtures/standard:gzip", proxy.host())])
        .args(["--progress", "none", "--cache"])
        .arg(f.cache_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hex = big.diff_id.trim_start_matches("sha256:").to_string();
    for _ in 0..200 {
        if tmp_entries(f.cache_dir.path())
            .iter()
            .any(|e| e.starts_with(&format!("layer-{hex}")))
        {
            return (child, hex, proxy);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the pull never reached the stalled layer");
}
