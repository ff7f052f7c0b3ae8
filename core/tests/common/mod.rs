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
    /// Whether the registry requires a client certificate (the pusher shows its own).
    client_certs: bool,
}

impl Env {
    /// Starts the registry; on an htpasswd registry the pusher uses its user.
    pub async fn start(opts: RegistryOptions) -> Env {
        let push_basic = opts.basic.clone();
        let client_certs = opts.client_certs;
        let registry = TestRegistry::start(opts)
            .await
            .expect("start docker-registry");
        Env {
            registry,
            cache_dir: tempfile::tempdir().expect("tempdir"),
            push_basic,
            client_certs,
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
        if self.client_certs
            && let Some(identity) = self.registry.client_identity_path()
        {
            pusher = pusher.with_client_identity(&identity);
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

/// A plain registry with the standard gzip image pushed as `flaky/app:v1`: what the tests of
/// faults and retries pull through a `FaultProxy`.
pub async fn flaky_registry() -> (TestRegistry, Image) {
    let reg = TestRegistry::start(RegistryOptions::plain()).await.unwrap();
    let image = standard_image(Compression::Gzip);
    Pusher::new(&reg.base_url())
        .push_image("flaky/app", "v1", &image)
        .await
        .unwrap();
    (reg, image)
}

/// The biggest layer of `image` and its position (in the standard image, the one holding the
/// 3 MiB file).
pub fn biggest_layer(image: &Image) -> (usize, &msbimage_testkit::Layer) {
    image
        .layers
        .iter()
        .enumerate()
        .max_by_key(|(_, l)| l.blob.len())
        .unwrap()
}

/// A child process's status, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The child exited with `code`.
#[track_caller]
pub fn assert_exit(o: &std::process::Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", output_text(o));
}

/// A linux/amd64 image of one small gzip layer (`etc/motd`), for tests about access rather
/// than content.
pub fn one_layer_image() -> Image {
    msbimage_testkit::ImageBuilder::new("linux", "amd64")
        .layer(
            msbimage_testkit::LayerBuilder::new()
                .file("etc/motd", "private image\n", 0o644)
                .build(Compression::Gzip),
        )
        .build()
}

/// `msbimage` with an environment of its own under `home`: `HOME` (`home/home`),
/// `XDG_RUNTIME_DIR` (`home/run`), `XDG_CONFIG_HOME` (`home/config`), `DOCKER_CONFIG`
/// (`home/docker`), and `PATH` with `path_dirs` (credential helpers) first.
pub fn cli_in_home(home: &Path, path_dirs: &[PathBuf]) -> std::process::Command {
    let mut path = path_dirs.to_vec();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_msbimage"));
    cmd.env_clear()
        .env("PATH", std::env::join_paths(path).expect("PATH"))
        .env("HOME", home.join("home"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("DOCKER_CONFIG", home.join("docker"));
    cmd
}

/// Pulls `r` into a fresh cache, without retries, with the settings `configure` adds.
pub async fn pull_fresh(
    configure: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
    r: &microsandbox_image::Reference,
) -> microsandbox_image::Result<microsandbox_image::PullResult> {
    let cache = tempfile::tempdir().expect("tempdir");
    let registry = configure(client_in(cache.path()).max_retries(0)).build()?;
    registry
        .pull(r, &microsandbox_image::PullOptions::default())
        .await
}

/// Runs `msbimage ARGS` with nothing of this environment but `HOME` = `home`, a `PATH`, and
/// `env` (so no configuration file of the machine's user is read).
#[cfg(feature = "cli")]
pub fn msbimage_isolated(
    args: &[&str],
    home: &Path,
    env: &[(&str, &Path)],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_msbimage"));
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run msbimage")
}
