//! A bench for hostile layers: a real `docker-registry`, a cache, and a sentinel `victim/`
//! directory beside the cache that hostile entries aim at by absolute and relative paths.
//! [`Bench::refused`] pulls a layer that must be refused and checks it left nothing behind;
//! [`Bench::pulled`] pulls one that must be accepted; both check that nothing outside the
//! cache changed. Used by `hostile.rs` and `breakouts.rs` (which also declare `common`).
//!
//! Every layer is pulled twice: into the bench's cache with the directory output, then into
//! a second cache with the EROFS image alone (`outputs: ["erofs-layers"]`, no tree written):
//! a refused layer must be refused in both modes with the same error, an accepted one
//! accepted in both.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use microsandbox_image::{
    Error, ExtractLimits, GlobalCache, LayerError, Output, Platform, PullOptions, PullResult,
    Registry,
};
use msbimage_testkit::{ImageBuilder, Layer, Pusher, Registry as TestRegistry, RegistryOptions};
use sha2::{Digest as _, Sha256};

use crate::common::names_in;

pub const VICTIM_FILE: &[u8] = b"the victim's own content\n";
/// From a layer's `fs/` (`<bench>/cache/tmp/layer-…/fs`) up to `<bench>`.
pub const UP_TO_BENCH: &str = "../../../..";

/// A registry, a cache and a victim directory beside it.
pub struct Bench {
    pub registry: TestRegistry,
    pub dir: tempfile::TempDir,
    /// The cache of the image-only pulls.
    pub images: tempfile::TempDir,
}

/// What a path looked like: kind, permission bits, size and content hash (or link target).
pub type Snapshot = BTreeMap<PathBuf, (char, u32, u64, String)>;

pub fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("under root").to_owned();
            let perm = md.permissions().mode() & 0o7777;
            let entry = if md.is_dir() {
                walk(root, &p, out);
                ('d', perm, 0, String::new())
            } else if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                ('l', perm, 0, t.to_string_lossy().into_owned())
            } else {
                let bytes = std::fs::read(&p).expect("read");
                ('f', perm, md.len(), hex::encode(Sha256::digest(&bytes)))
            };
            out.insert(rel, entry);
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

pub fn small_limits() -> ExtractLimits {
    ExtractLimits {
        max_entries: 100,
        max_total_bytes: 64 << 20,
        max_file_size: 16 << 20,
        max_depth: 8,
        max_path_len: 4096,
    }
}

/// The `LayerError` inside a pull error.
pub fn layer_error(e: &Error) -> &LayerError {
    match e {
        Error::Layer { source, .. } => source,
        other => panic!("not a layer error: {other}"),
    }
}

impl Bench {
    pub async fn start() -> Bench {
        let registry = TestRegistry::start(RegistryOptions::plain())
            .await
            .expect("start docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::create_dir_all(victim.join("etc")).unwrap();
        std::fs::write(victim.join("keep"), VICTIM_FILE).unwrap();
        std::fs::write(victim.join("etc/passwd"), VICTIM_FILE).unwrap();
        std::fs::write(victim.join("perm400"), VICTIM_FILE).unwrap();
        std::fs::set_permissions(
            victim.join("perm400"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        let images = tempfile::tempdir().expect("tempdir");
        Bench {
            registry,
            dir,
            images,
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The sentinel directory, as an absolute path (hostile entries aim at it).
    pub fn victim(&self) -> PathBuf {
        self.dir.path().join("victim")
    }

    pub fn victim_str(&self) -> String {
        self.victim().to_string_lossy().into_owned()
    }

    pub async fn push(&self, repo: &str, layers: &[Layer]) {
        let mut b = ImageBuilder::new("linux", "amd64");
        for l in layers {
            b = b.layer(l.clone());
        }
        Pusher::new(&self.registry.base_url())
            .push_image(repo, "latest", &b.build())
            .await
            .expect("push");
    }

    pub async fn pull(&self, repo: &str, limits: ExtractLimits) -> Result<PullResult, Error> {
        self.pull_into(&self.cache_dir(), repo, limits, &PullOptions::default())
            .await
    }

    /// Pull `repo` into the second cache, as its EROFS layer images alone.
    pub async fn pull_image_only(
        &self,
        repo: &str,
        limits: ExtractLimits,
    ) -> Result<PullResult, Error> {
        let opts = PullOptions {
            outputs: vec![Output::ErofsLayers],
            ..PullOptions::default()
        };
        self.pull_into(self.images.path(), repo, limits, &opts)
            .await
    }

    async fn pull_into(
        &self,
        cache: &Path,
        repo: &str,
        limits: ExtractLimits,
        opts: &PullOptions,
    ) -> Result<PullResult, Error> {
        let cache = GlobalCache::new(cache).expect("cache");
        let registry = Registry::builder(Platform::new("linux", "amd64"), cache)
            .durable(false)
            .limits(limits)
            .build()
            .expect("registry");
        let reference = format!("{}/{repo}:latest", self.registry.host())
            .parse()
            .expect("reference");
        registry.pull(&reference, opts).await
    }

    /// Push `layers` as `repo`, pull, and check the pull failed on the last layer leaving
    /// nothing behind: returns the error. Earlier layers may be published (they are valid).
    pub async fn refused(&self, repo: &str, layers: &[Layer], limits: ExtractLimits) -> Error {
        self.push(repo, layers).await;
        let err = self
            .refused_in(&self.cache_dir(), repo, layers, limits, false)
            .await;
        let image_only = self
            .refused_in(self.images.path(), repo, layers, limits, true)
            .await;
        assert_eq!(
            (image_only.kind(), image_only.to_string()),
            (err.kind(), err.to_string()),
            "{repo}: refused otherwise without the tree"
        );
        err
    }

    /// Pull `repo` into `cache` (image-only or with the tree), which must fail on the last
    /// layer leaving nothing behind.
    async fn refused_in(
        &self,
        cache: &Path,
        repo: &str,
        layers: &[Layer],
        limits: ExtractLimits,
        image_only: bool,
    ) -> Error {
        let outside_before = self.outside_cache();
        let layers_before = names_in(&cache.join("layers/sha256"));
        let images_before = names_in(&cache.join("images"));
        let pulled = match image_only {
            true => self.pull_image_only(repo, limits).await,
            false => self.pull(repo, limits).await,
        };
        let repo = &format!("{repo} (image only: {image_only})");
        let err = pulled
            .err()
            .unwrap_or_else(|| panic!("{repo}: the pull succeeded"));
        let hostile = layers.last().expect("a layer");
        let published = names_in(&cache.join("layers/sha256"));
        assert!(
            !published
                .iter()
                .any(|d| hostile.diff_id.ends_with(d.as_str())),
            "{repo}: the hostile layer was published ({err})"
        );
        for new in published.iter().filter(|d| !layers_before.contains(d)) {
            assert!(
                layers[..layers.len() - 1]
                    .iter()
                    .any(|l| l.diff_id.ends_with(new.as_str())),
                "{repo}: {new} published ({err})"
            );
        }
        assert!(
            names_in(&cache.join("tmp")).is_empty(),
            "{repo}: staging debris {:?} ({err})",
            names_in(&cache.join("tmp"))
        );
        assert_eq!(
            names_in(&cache.join("images")),
            images_before,
            "{repo}: an image record was written ({err})"
        );
        assert_eq!(
            self.outside_cache(),
            outside_before,
            "{repo}: something outside the cache changed ({err})"
        );
        err
    }

    /// Push `layers` as `repo` and pull them, which must succeed and change nothing outside
    /// the cache.
    pub async fn pulled(&self, repo: &str, layers: &[Layer], limits: ExtractLimits) -> PullResult {
        self.push(repo, layers).await;
        let outside_before = self.outside_cache();
        let res = self
            .pull(repo, limits)
            .await
            .unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_eq!(
            self.outside_cache(),
            outside_before,
            "{repo}: something outside the cache changed"
        );
        let image_only = self
            .pull_image_only(repo, limits)
            .await
            .unwrap_or_else(|e| panic!("{repo} (image only): {e}"));
        assert!(image_only.layer_images.iter().all(|p| p.is_file()));
        assert_eq!(
            self.outside_cache(),
            outside_before,
            "{repo} (image only): something outside the cache changed"
        );
        res
    }

    /// Everything under the bench directory but the cache (the victim, and anything a
    /// `../` could have reached).
    pub fn outside_cache(&self) -> Snapshot {
        snapshot(self.dir.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("cache"))
            .collect()
    }
}
