//! [`GlobalCache`]: the on-disk, content-addressed store shared by every process that pulls
//! images (layout in `LAYOUT.md` beside this file). It owns paths, locks, atomic publishing
//! and image records; what goes *into* a layer directory is the `layer` module's business.

#[macro_use]
mod report;
pub(crate) use report::cache_report;
mod access;
pub(crate) mod contents;
mod flat;
mod gc;
mod inventory;
mod layout;
mod lease;
mod lock;
mod metadata;
mod options;
mod partial;
mod perms;
mod record;
mod staging;
mod sweep;
mod trees;
mod trust;
mod usage;
mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

pub use gc::{GcPolicy, GcReport, RemovedImage};
pub use inventory::{CachedImage, CachedLayer, DiskUsage, ImageUsage};
pub(crate) use layout::{Layout, write_atomic};
pub use lease::LayerLease;
pub(crate) use lock::FileLock;
pub use metadata::{CachedImageMetadata, CachedLayerMetadata};
pub use options::{CacheGroup, CacheOptions, GROUP_ENV, READ_ONLY_ENV};
pub(crate) use partial::{PartialBlob, PartialWriter};
pub(crate) use perms::Perms;
pub(crate) use record::{ImageRecord, RECORD_VERSION, RecordLayer, StoredRecord, record_key};
pub use report::ReportSchema;
pub(crate) use staging::{ErofsRecord, LayerMeta, Staging, TREE_FORMAT};
pub use trees::{LayerTrees, NoHostPath, layer_tree_of_index};
pub(crate) use verify::image_problems;
pub use verify::{ImageCheck, LayerCheck, MAX_LISTED_PROBLEMS, Problem, ProblemKind, VerifyReport};

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
    /// The cache was opened [read-only](CacheOptions::read_only) and what was asked needs a
    /// write (an image that is not completely cached, a missing index or lease file, `gc`).
    #[error("cache: {need}, but this process opened the cache read-only ({}); fix: {fix}", path.display())]
    ReadOnly {
        /// The file or directory that would have been written.
        path: PathBuf,
        /// What needs the write.
        need: String,
        /// What to do about it.
        fix: String,
    },
    /// This user may not read the cache (it is shared with a group the user is not in).
    #[error("cache: cannot read {}: {reason}; fix: {fix}", path.display())]
    NoAccess {
        /// The path that could not be read.
        path: PathBuf,
        /// Why (who owns the cache, its mode).
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
            CacheError::Io { .. }
            | CacheError::Untrusted { .. }
            | CacheError::ReadOnly { .. }
            | CacheError::NoAccess { .. } => crate::ErrorKind::Io,
            CacheError::NoSuchImage { .. } => crate::ErrorKind::NotFound,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.to_owned();
        move |source| CacheError::Io { op, path, source }
    }
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
    /// How new files and directories are created (private, or shared with a group).
    perms: Perms,
    /// Opened read-only: nothing is ever written.
    read_only: bool,
    /// One async mutex per layer being worked on in this process.
    inflight: Mutex<HashMap<Digest, Weak<tokio::sync::Mutex<()>>>>,
    /// The layer leases this process holds.
    leases: lease::Leases,
}

impl std::fmt::Debug for GlobalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalCache")
            .field("root", &self.root())
            .field("group", &self.inner.perms.gid())
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

impl GlobalCache {
    /// Open (creating if needed, mode 0700) a cache at `path`. The root and its directories
    /// must belong to this user and be writable by no one else, and (below the root) must
    /// not be symlinks: anything else is [`CacheError::Untrusted`], naming the path and the
    /// fix (see `cache/trust.rs`). The same as [`GlobalCache::with_options`] with the default
    /// options (a cache already shared with a group stays shared).
    pub fn new(path: impl AsRef<Path>) -> Result<GlobalCache, CacheError> {
        GlobalCache::with_options(path, &CacheOptions::default())
    }

    /// Open a cache at `path` as `options` say: shared read-only with a group
    /// ([`CacheOptions::group`]: the owner creates directories `2750` and files `0640` with
    /// that group), or as a reader that never writes ([`CacheOptions::read_only`]: the root
    /// may belong to another user, provided every cache directory has the root's owner and
    /// nothing is writable by group or others; nothing is created). See `cache/LAYOUT.md`.
    ///
    /// ```no_run
    /// use microsandbox_image::cache::{CacheGroup, CacheOptions};
    /// use microsandbox_image::GlobalCache;
    /// // The service that pulls:
    /// let shared = CacheOptions { group: Some(CacheGroup::Name("sandboxes".into())), ..Default::default() };
    /// let cache = GlobalCache::with_options("/var/cache/msbimage", &shared)?;
    /// // A sandbox user in group `sandboxes`:
    /// let reader = CacheOptions { read_only: true, ..Default::default() };
    /// let cache = GlobalCache::with_options("/var/cache/msbimage", &reader)?;
    /// assert!(cache.is_read_only());
    /// # Ok::<(), microsandbox_image::CacheError>(())
    /// ```
    pub fn with_options(
        path: impl AsRef<Path>,
        options: &CacheOptions,
    ) -> Result<GlobalCache, CacheError> {
        let given = path.as_ref();
        let (root, perms) = if options.read_only {
            (access::open_read_only(given)?, Perms::PRIVATE)
        } else {
            access::open_writable(given, options)?
        };
        Ok(GlobalCache {
            inner: Arc::new(CacheInner {
                layout: Layout::new(root),
                perms,
                read_only: options.read_only,
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

    /// The EROFS image of a layer: `layers/sha256/<hex>/layer.erofs`.
    pub fn layer_erofs(&self, diff_id: &Digest) -> PathBuf {
        self.inner.layout.layer_erofs(diff_id)
    }

    /// The sidecar index of a layer: `layers/sha256/<hex>/index`.
    pub fn layer_index(&self, diff_id: &Digest) -> PathBuf {
        self.inner.layout.layer_index(diff_id)
    }

    /// Whether the published layer `diff_id` has its EROFS image, written with the opaque
    /// marker `opaque` and whole (its length the block count `meta.json` records).
    fn has_layer_erofs(&self, diff_id: &Digest, opaque: crate::erofs::OpaqueXattr) -> bool {
        let dir = self.layer_dir(diff_id);
        let Ok(Some(record)) = LayerMeta::read(&dir).map(|m| m.erofs) else {
            return false;
        };
        record.opaque_xattr == opaque
            && std::fs::symlink_metadata(Layout::erofs_in(&dir))
                .is_ok_and(|m| m.is_file() && m.len() == record.blocks * crate::erofs::BLOCK_SIZE)
    }

    /// The opaque marker of the EROFS image layer `diff_id` was published with, if its
    /// `meta.json` (read, blocking) records one.
    pub(crate) fn erofs_marker(&self, diff_id: &Digest) -> Option<crate::erofs::OpaqueXattr> {
        let record = LayerMeta::read(&self.layer_dir(diff_id)).ok()?.erofs?;
        Some(record.opaque_xattr)
    }

    /// The layers of `diff_ids` that are published without an output a pull asks for: the
    /// tree (`tree`), or the EROFS image written with the marker `erofs` (blocking: a
    /// `meta.json` read per layer when an image is asked for; an `lstat` otherwise).
    pub(crate) fn published_lacking(
        &self,
        diff_ids: &[Digest],
        tree: bool,
        erofs: Option<crate::erofs::OpaqueXattr>,
    ) -> Vec<Digest> {
        diff_ids
            .iter()
            .filter(|d| {
                self.has_layer(d)
                    && ((tree && !self.has_layer_tree(d))
                        || erofs.is_some_and(|o| !self.has_layer_erofs(d, o)))
            })
            .cloned()
            .collect()
    }

    /// Whether the layer directory holds its tree `fs/` (a layer published as its EROFS
    /// image alone does not).
    pub(crate) fn has_layer_tree(&self, diff_id: &Digest) -> bool {
        std::fs::symlink_metadata(self.layer_fs(diff_id)).is_ok_and(|m| m.is_dir())
    }

    /// Whether a layer is published: its directory, `fs/` (or, for a layer published as its
    /// EROFS image alone, `layer.erofs`), `meta.json` and (if it was published with one)
    /// `index` are there (four `lstat`s; a symlink in place of any of them does not count).
    /// A published layer directory is complete by construction (it appears by a single
    /// rename after verification); one found without its tree, image or index is treated as
    /// absent and rebuilt by the next pull. Contents are not checked here: that is
    /// [`GlobalCache::verify`].
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        let dir = self.layer_dir(diff_id);
        let is = |p: &Path, dir: bool| {
            std::fs::symlink_metadata(p).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
        };
        if !(is(&dir, true) && is(&Layout::meta_in(&dir), false)) {
            return false;
        }
        let tree = is(&Layout::fs_in(&dir), true);
        let index = is(&Layout::index_in(&dir), false);
        if tree && index {
            return true;
        }
        // `meta.json` is read only when the tree or the index is missing. Without the tree the
        // layer must be published as its image alone and have it. A layer published with an
        // index that has lost it is damaged, not merely unindexed: rebuilt rather than
        // indexed from a tree nothing vouches for.
        let Ok(meta) = LayerMeta::read(&dir) else {
            return false;
        };
        (tree || (meta.image_only && is(&Layout::erofs_in(&dir), false)))
            && (index || meta.index_digest.is_none())
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
        self.writable(&p, || format!("building layer {diff_id}"))?;
        let lock = FileLock::try_exclusive(&p, self.perms()).map_err(CacheError::io("lock", &p))?;
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
        self.writable(&p, || format!("building layer {diff_id}"))?;
        FileLock::exclusive(&p, self.perms()).map_err(CacheError::io("lock", &p))
    }

    /// Store verified manifest or config bytes under their digest (blocking). A read-only
    /// cache stores nothing (its pulls then answer only for manifests the owner recorded).
    pub(crate) fn put_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        let p = self.inner.layout.manifest_file(digest);
        // One found damaged (`verify` reports it) is replaced by the verified bytes.
        if self.inner.read_only || self.get_manifest(digest).is_some() {
            return Ok(());
        }
        write_atomic(&self.inner.layout.tmp(), &p, bytes, self.perms())
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
        if self.inner.read_only {
            return;
        }
        record::touch_record(&self.inner.layout.image_record(key), stored.last_used);
    }

    /// Every valid record with its key (blocking). Invalid files are skipped.
    pub(crate) fn stored_records(&self) -> Result<Vec<(String, StoredRecord)>, CacheError> {
        let mut out: Vec<(String, StoredRecord)> = self
            .record_files()?
            .into_iter()
            .filter_map(|(key, path)| record::read_record_file(&path, &key).map(|r| (key, r)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The files of `images/` named like records (`<key>.json`), with their keys (blocking).
    pub(crate) fn record_files(&self) -> Result<Vec<(String, PathBuf)>, CacheError> {
        let dir = self.inner.layout.records_dir();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(CacheError::io("list", &dir))? {
            let entry = entry.map_err(CacheError::io("list", &dir))?;
            let name = entry.file_name();
            if let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                out.push((key.to_owned(), entry.path()));
            }
        }
        Ok(out)
    }

    /// Remove the record stored under `key` (blocking); a record already gone is fine.
    pub(crate) fn remove_record(&self, key: &str) -> Result<(), CacheError> {
        let p = self.inner.layout.image_record(key);
        self.writable(&p, || "removing an image record".into())?;
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
        self.writable(&p, || format!("recording {}", rec.reference))?;
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| CacheError::Io {
            op: "serialise",
            path: p.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.inner.layout.tmp(), &p, &bytes, self.perms())
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
    fn a_shared_cache_creates_with_the_group_modes_and_a_reader_writes_nothing() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let gid = rustix::process::getegid().as_raw();
        let shared = CacheOptions {
            group: Some(CacheGroup::Gid(gid)),
            ..CacheOptions::default()
        };
        let c = GlobalCache::with_options(&root, &shared).unwrap();
        assert_eq!(c.group(), Some(gid));
        let d = Digest::sha256_of(b"{}");
        c.put_manifest(&d, b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o2750);
        assert_eq!(mode(&root.join("layers/sha256")), 0o2750);
        assert_eq!(mode(&c.layout().manifest_file(&d)), 0o640);
        assert_eq!(
            std::fs::metadata(c.layout().manifest_file(&d))
                .unwrap()
                .gid(),
            gid
        );
        // Opened again without a group, it stays shared.
        assert_eq!(GlobalCache::new(&root).unwrap().group(), Some(gid));

        let reader = CacheOptions {
            read_only: true,
            ..CacheOptions::default()
        };
        let r = GlobalCache::with_options(&root, &reader).unwrap();
        assert!(r.is_read_only());
        let other = Digest::sha256_of(b"other");
        r.put_manifest(&other, b"other").unwrap();
        assert!(
            !r.layout().manifest_file(&other).exists(),
            "a reader stores nothing"
        );
        let e = r.gc(&GcPolicy::default()).unwrap_err();
        assert!(matches!(e, CacheError::ReadOnly { .. }), "{e}");
        let e = r.hold_layer(&other).unwrap_err().to_string();
        assert!(e.contains("has no lease file"), "{e}");
        let e = GlobalCache::with_options(dir.path().join("none"), &reader).unwrap_err();
        assert!(matches!(e, CacheError::ReadOnly { .. }), "{e}");
        assert!(!dir.path().join("none").exists());
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
