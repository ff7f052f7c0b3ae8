//! [`GlobalCache`]: the on-disk, content-addressed store shared by every process that pulls
//! images (layout in `LAYOUT.md` beside this file). It owns paths, locks, atomic publishing
//! and image records; what goes *into* a layer directory is the `layer` module's business.

#[macro_use]
mod report;
mod gc;
mod inventory;
mod layout;
mod lease;
mod lock;
mod metadata;
mod partial;
mod record;
mod staging;
mod sweep;
mod trust;
mod usage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

pub use gc::{GcPolicy, GcReport, RemovedImage};
pub use inventory::{CachedImage, CachedLayer, DiskUsage, ImageUsage};
pub(crate) use layout::{Layout, write_atomic};
pub use lease::LayerLease;
pub(crate) use lock::FileLock;
pub use metadata::{CachedImageMetadata, CachedLayerMetadata};
pub(crate) use partial::{PartialBlob, PartialWriter};
pub(crate) use record::{ImageRecord, RECORD_VERSION, RecordLayer, StoredRecord, record_key};
pub use report::ReportSchema;
pub(crate) use staging::{LayerMeta, Staging, TREE_FORMAT};

use crate::digest::Digest;

/// A cache operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file-system call failed.
    #[error("cache: cannot {op} {}: {source}", path.display())]
    Io {
        /// What we tried.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The cache root or one of its directories could be written by someone else (or is a
    /// symlink): refused, because a runtime mounts what the cache holds unchecked.
    #[error("cache: refusing {}: it {reason}; fix: {fix}", path.display())]
    Untrusted {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        fix: String,
    },
    /// `remove_image` was asked for an image the cache has no record of.
    #[error("{reference}: no such image in the cache{}", platform.as_ref().map(|p| format!(" for {p}")).unwrap_or_default())]
    NoSuchImage {
        /// The image asked for.
        reference: String,
        /// The platform asked for, if one was.
        platform: Option<String>,
    },
}

impl CacheError {
    /// The stable kind of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            CacheError::Io { .. } | CacheError::Untrusted { .. } => crate::ErrorKind::Io,
            CacheError::NoSuchImage { .. } => crate::ErrorKind::NotFound,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.to_owned();
        move |source| CacheError::Io { op, path, source }
    }
}

/// The extracted tree that belongs to a layer's index file (`…/<diff_id>/index` →
/// `…/<diff_id>/fs`): the cache's layout, for callers that were handed index paths.
///
/// ```
/// use std::path::Path;
/// let fs = microsandbox_image::cache::layer_tree_of_index(Path::new("/c/layers/sha256/ab/index"));
/// assert_eq!(fs, Path::new("/c/layers/sha256/ab/fs"));
/// ```
pub fn layer_tree_of_index(index: &Path) -> PathBuf {
    Layout::fs_in(index.parent().unwrap_or(Path::new("")))
}

/// The shared image cache. Cheap to clone; clones share in-process state (which layers are
/// being pulled right now), so give every [`Registry`](crate::Registry) in a process clones of
/// one `GlobalCache`.
///
/// ```no_run
/// use microsandbox_image::GlobalCache;
/// let cache = GlobalCache::new("/var/cache/msbimage")?;
/// println!("{}", cache.root().display());
/// # Ok::<(), microsandbox_image::CacheError>(())
/// ```
#[derive(Clone)]
pub struct GlobalCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    layout: Layout,
    /// One async mutex per layer being worked on in this process.
    inflight: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
    /// The layer leases this process holds.
    leases: lease::Leases,
}

impl std::fmt::Debug for GlobalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalCache")
            .field("root", &self.root())
            .finish()
    }
}

impl GlobalCache {
    /// Open (creating if needed, mode 0700) a cache at `path`. The root and its directories
    /// must belong to this user and be writable by no one else, and (below the root) must
    /// not be symlinks: anything else is [`CacheError::Untrusted`], naming the path and the
    /// fix (see `cache/trust.rs`).
    pub fn new(path: impl AsRef<Path>) -> Result<GlobalCache, CacheError> {
        let given = path.as_ref();
        trust::create_private_dir(given)?;
        let root = std::fs::canonicalize(given).map_err(CacheError::io("resolve", given))?;
        let layout = Layout::new(root.clone());
        for (dir, is_root) in trust::checked_dirs(&root, &layout.dirs()) {
            trust::create_private_dir(&dir)?;
            trust::check_trusted(&dir, is_root)?;
        }
        Ok(GlobalCache {
            inner: Arc::new(CacheInner {
                layout: Layout::new(root),
                inflight: Mutex::default(),
                leases: lease::Leases::default(),
            }),
        })
    }

    /// Where a cache lives when nobody says: `$MSBIMAGE_CACHE`, else
    /// `$XDG_CACHE_HOME/msbimage` (when absolute), else `~/.cache/msbimage`; `None` when none
    /// of those variables is set. The CLIs (Rust and Python) use it.
    pub fn default_path() -> Option<PathBuf> {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(dir) = non_empty("MSBIMAGE_CACHE") {
            return Some(PathBuf::from(dir));
        }
        // The XDG spec says to ignore relative paths.
        if let Some(xdg) = non_empty("XDG_CACHE_HOME").map(PathBuf::from)
            && xdg.is_absolute()
        {
            return Some(xdg.join("msbimage"));
        }
        non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("msbimage"))
    }

    /// The cache root (absolute).
    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The directory of a layer: `layers/sha256/<hex>`, holding `fs/`, `index`, `meta.json`.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.inner.layout.layer_dir(diff_id)
    }

    /// The extracted tree of a layer: `layers/sha256/<hex>/fs`.
    pub fn layer_fs(&self, diff_id: &Digest) -> PathBuf {
        self.inner.layout.layer_fs(diff_id)
    }

    /// The sidecar index of a layer: `layers/sha256/<hex>/index`.
    pub fn layer_index(&self, diff_id: &Digest) -> PathBuf {
        self.inner.layout.layer_index(diff_id)
    }

    /// Whether a layer is published: its directory, `fs/` and `meta.json` are there (three
    /// `lstat`s; a symlink in place of any of them does not count). A published layer directory
    /// is complete by construction (it appears by a single rename after verification); one
    /// found without its tree is treated as absent and rebuilt by the next pull.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        let dir = self.layer_dir(diff_id);
        let is = |p: &Path, dir: bool| {
            std::fs::symlink_metadata(p).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
        };
        is(&dir, true) && is(&Layout::fs_in(&dir), true) && is(&Layout::meta_in(&dir), false)
    }

    /// The in-process mutex for work on one layer; two pulls of the same layer in one process
    /// queue here rather than on the file lock.
    pub(crate) fn layer_mutex(&self, diff_id: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(m) = map.get(diff_id).and_then(Weak::upgrade) {
            return m;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let m = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(diff_id.clone(), Arc::downgrade(&m));
        m
    }

    /// Take the cross-process lock of a layer if no one holds it (never waits), recording
    /// this process as its holder.
    pub(crate) fn try_lock_layer(&self, diff_id: &Digest) -> Result<Option<FileLock>, CacheError> {
        let p = self.inner.layout.layer_lock(diff_id);
        let lock = FileLock::try_exclusive(&p).map_err(CacheError::io("lock", &p))?;
        if let Some(lock) = &lock {
            lock.record_holder();
        }
        Ok(lock)
    }

    /// The pid that last took a layer's lock, as recorded in its lock file (blocking).
    pub(crate) fn layer_lock_holder(&self, diff_id: &Digest) -> Option<u32> {
        FileLock::holder(&self.inner.layout.layer_lock(diff_id))
    }

    /// Take the cross-process lock of a layer (blocking).
    pub(crate) fn lock_layer(&self, diff_id: &Digest) -> Result<FileLock, CacheError> {
        let p = self.inner.layout.layer_lock(diff_id);
        FileLock::exclusive(&p).map_err(CacheError::io("lock", &p))
    }

    /// Store verified manifest or config bytes under their digest (blocking).
    pub(crate) fn put_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        let p = self.inner.layout.manifest_file(digest);
        if p.exists() {
            return Ok(());
        }
        write_atomic(&self.inner.layout.tmp(), &p, bytes).map_err(CacheError::io("write", &p))
    }

    /// Read stored manifest or config bytes, verifying them again (blocking).
    pub(crate) fn get_manifest(&self, digest: &Digest) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.inner.layout.manifest_file(digest)).ok()?;
        digest.matches(&bytes).then_some(bytes)
    }

    /// Read an image record (blocking). A missing, unreadable, torn, oversized or
    /// foreign-version record, or one stored under another key, is `None`: the caller pulls
    /// again.
    pub(crate) fn read_record(&self, key: &str) -> Option<StoredRecord> {
        record::read_record_file(&self.inner.layout.image_record(key), key)
    }

    /// Move the record's last use forward if it is stale (blocking; see `record.rs`).
    pub(crate) fn touch_record(&self, key: &str, stored: &StoredRecord) {
        record::touch_record(&self.inner.layout.image_record(key), stored.last_used);
    }

    /// Every valid record with its key (blocking). Invalid files are skipped.
    pub(crate) fn stored_records(&self) -> Result<Vec<(String, StoredRecord)>, CacheError> {
        let dir = self.inner.layout.records_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(CacheError::io("list", &dir))? {
            let entry = entry.map_err(CacheError::io("list", &dir))?;
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(stored) = record::read_record_file(&entry.path(), key) {
                out.push((key.to_owned(), stored));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Remove the record stored under `key` (blocking); a record already gone is fine.
    pub(crate) fn remove_record(&self, key: &str) -> Result<(), CacheError> {
        let p = self.inner.layout.image_record(key);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CacheError::io("remove", &p)(e))
            }
            _ => Ok(()),
        }
    }

    /// Write an image record atomically (blocking).
    pub(crate) fn write_record(&self, key: &str, rec: &ImageRecord) -> Result<(), CacheError> {
        let p = self.inner.layout.image_record(key);
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| CacheError::Io {
            op: "serialise",
            path: p.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.inner.layout.tmp(), &p, &bytes).map_err(CacheError::io("write", &p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_creates_the_layout_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let c = GlobalCache::new(dir.path().join("c")).unwrap();
        for d in [
            "blobs/sha256",
            "layers/sha256",
            "images",
            "manifests/sha256",
            "locks",
            "tmp",
        ] {
            assert!(c.root().join(d).is_dir(), "{d}");
        }
        GlobalCache::new(dir.path().join("c")).unwrap();
    }

    #[test]
    fn manifests_round_trip_and_are_verified_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let c = GlobalCache::new(dir.path()).unwrap();
        let d = Digest::sha256_of(b"{}");
        c.put_manifest(&d, b"{}").unwrap();
        assert_eq!(c.get_manifest(&d).as_deref(), Some(&b"{}"[..]));
        std::fs::write(c.layout().manifest_file(&d), b"tampered").unwrap();
        assert_eq!(c.get_manifest(&d), None);
    }

    #[test]
    fn layer_mutex_is_shared_while_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let c = GlobalCache::new(dir.path()).unwrap();
        let d = Digest::sha256_of(b"layer");
        let a = c.layer_mutex(&d);
        let b = c.layer_mutex(&d);
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        let other = c.layer_mutex(&Digest::sha256_of(b"other"));
        assert_eq!(Arc::strong_count(&other), 1);
    }
}
