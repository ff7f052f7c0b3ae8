//! Where everything lives under the cache root (see `LAYOUT.md` beside this file), and the
//! atomic write used for every file that others may read while we write it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::CacheError;
use super::perms::Perms;
use crate::digest::Digest;

/// The extracted tree inside a layer directory.
const LAYER_FS: &str = "fs";
/// The sidecar index inside a layer directory.
const LAYER_INDEX: &str = "index";
/// The layer's metadata inside a layer directory.
const LAYER_META: &str = "meta.json";
/// What the tree held when published, inside a layer directory.
const LAYER_CONTENTS: &str = "contents";
/// The layer as an EROFS image (`erofs/FORMAT.md`), inside a layer directory.
const LAYER_EROFS: &str = "layer.erofs";
/// Suffix of the kept prefix of a blob being downloaded: `blobs/sha256/<hex>.partial`.
const PARTIAL_SUFFIX: &str = ".partial";

/// Paths inside one cache root: the only code that knows the cache's file names.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Layout { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Every directory the cache needs.
    pub(crate) fn dirs(&self) -> [PathBuf; 6] {
        [
            self.blobs_dir(),
            self.layers_dir(),
            self.records_dir(),
            self.manifests_dir(),
            self.root.join("locks"),
            self.tmp(),
        ]
    }

    pub(crate) fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.algorithm().as_str())
            .join(diff_id.hex())
    }

    /// `layers/sha256/<hex>/fs`.
    pub(crate) fn layer_fs(&self, diff_id: &Digest) -> PathBuf {
        Layout::fs_in(&self.layer_dir(diff_id))
    }

    /// `layers/sha256/<hex>/index`.
    pub(crate) fn layer_index(&self, diff_id: &Digest) -> PathBuf {
        Layout::index_in(&self.layer_dir(diff_id))
    }

    /// The tree inside a layer directory (published or staging).
    pub(crate) fn fs_in(layer_dir: &Path) -> PathBuf {
        layer_dir.join(LAYER_FS)
    }

    /// The index inside a layer directory (published or staging).
    pub(crate) fn index_in(layer_dir: &Path) -> PathBuf {
        layer_dir.join(LAYER_INDEX)
    }

    /// `contents` of the layer directory (or staging directory) `layer_dir`: what its tree
    /// held when published (`cache/contents/mod.rs`).
    pub(crate) fn contents_in(layer_dir: &Path) -> PathBuf {
        layer_dir.join(LAYER_CONTENTS)
    }

    /// `layer.erofs` of the layer directory (or staging directory) `layer_dir`.
    pub(crate) fn erofs_in(layer_dir: &Path) -> PathBuf {
        layer_dir.join(LAYER_EROFS)
    }

    /// `layers/sha256/<hex>/layer.erofs`.
    pub(crate) fn layer_erofs(&self, diff_id: &Digest) -> PathBuf {
        Layout::erofs_in(&self.layer_dir(diff_id))
    }

    /// `meta.json` inside a layer directory (published or staging).
    pub(crate) fn meta_in(layer_dir: &Path) -> PathBuf {
        layer_dir.join(LAYER_META)
    }

    /// The name prefix of a layer's staging directories under `tmp/`.
    pub(crate) fn staging_prefix(diff_id: &Digest) -> String {
        format!("layer-{}", diff_id.hex())
    }

    pub(crate) fn manifest_file(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("manifests")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub(crate) fn image_record(&self, key: &str) -> PathBuf {
        self.root.join("images").join(format!("{key}.json"))
    }

    pub(crate) fn layer_lock(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("layer-{}.lock", diff_id.hex()))
    }

    /// `blobs/sha256/`: the kept prefixes of blobs being downloaded (`cache/partial.rs`).
    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// `blobs/sha256/<hex>.partial`: the compressed bytes of a blob received so far, kept
    /// while it downloads so a later pull can resume from them.
    pub(crate) fn blob_partial(&self, blob: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(blob.algorithm().as_str())
            .join(format!("{}{PARTIAL_SUFFIX}", blob.hex()))
    }

    /// The blob digest of a `blobs/sha256/` entry named `name`, if it is a `.partial`.
    pub(crate) fn partial_blob_of(name: &str) -> Option<Digest> {
        let hex = name.strip_suffix(PARTIAL_SUFFIX)?;
        format!("sha256:{hex}").parse().ok()
    }

    /// `locks/blob-<hex>.lock`: held by whoever writes or removes the blob's `.partial`.
    pub(crate) fn blob_lock(&self, blob: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("blob-{}.lock", blob.hex()))
    }

    /// The lock file whose shared locks are leases on a layer (`cache/lease.rs`).
    pub(crate) fn layer_lease(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("lease-{}.lock", diff_id.hex()))
    }

    /// `locks/lease-<hex>.gen`: how many times the layer's tree was replaced (absent: 0).
    pub(crate) fn lease_generation(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("lease-{}.gen", diff_id.hex()))
    }

    /// `locks/lease-<hex>.<gen>.lock`: shared by the holders that took their lease while
    /// the layer's generation was `gen` (`cache/lease.rs`).
    pub(crate) fn lease_generation_lock(&self, diff_id: &Digest, generation: u64) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("lease-{}.{generation}.lock", diff_id.hex()))
    }

    /// The generations of `diff_id` that have a lock file (`lease-<hex>.<gen>.lock`).
    pub(crate) fn lease_generations(&self, diff_id: &Digest) -> std::io::Result<Vec<u64>> {
        let prefix = format!("lease-{}.", diff_id.hex());
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join("locks"))? {
            let name = entry?.file_name();
            let generation: Option<u64> = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.strip_suffix(".lock"))
                .and_then(|n| n.parse().ok());
            out.extend(generation);
        }
        Ok(out)
    }

    /// The lock one `gc` (or `rm`) holds at a time.
    pub(crate) fn gc_lock(&self) -> PathBuf {
        self.root.join("locks").join("gc.lock")
    }

    /// `layers/sha256/`: one directory per published layer.
    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers").join("sha256")
    }

    /// `images/`: one record per (reference, platform).
    pub(crate) fn records_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// `manifests/sha256/`.
    pub(crate) fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests").join("sha256")
    }

    /// A fresh name under `tmp/` for a layer tree that was removed (by `gc`, which deletes it
    /// at once) and waits to be deleted once no one holds the layer.
    pub(crate) fn trash(&self, diff_id: &Digest) -> PathBuf {
        self.staging(&format!("{TRASH_PREFIX}{}", diff_id.hex()))
    }

    /// A fresh name under `tmp/` for a layer tree replaced at generation `generation`
    /// (`trash-<hex>.g<gen>.<unique>`): deleted once no holder of a generation up to
    /// `generation` is left (`cache/lease.rs`).
    pub(crate) fn replaced_trash(&self, diff_id: &Digest, generation: u64) -> PathBuf {
        self.staging(&format!("{TRASH_PREFIX}{}.g{generation}", diff_id.hex()))
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, unique name under `tmp/` starting with `prefix`.
    pub(crate) fn staging(&self, prefix: &str) -> PathBuf {
        self.tmp().join(unique_name(prefix))
    }
}

/// Name prefix of layer trees waiting for deletion under `tmp/`: `trash-<hex>.<unique>`.
const TRASH_PREFIX: &str = "trash-";

/// What an entry of `tmp/` is, from its name (see [`Layout::staging`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TmpEntry {
    /// A layer being built (`layer-<hex>.<unique>`): debris unless its layer lock is held.
    Staging(Digest),
    /// A replaced or removed layer tree: `trash-<hex>.<unique>`, deleted once no one holds
    /// the layer; or `trash-<hex>.g<gen>.<unique>`, replaced at generation `gen`, deleted
    /// once no one holds a lease taken at that generation or an earlier one.
    Trash(Digest, Option<u64>),
    /// Anything else written by process `pid` (atomic-write temp files, trees of older
    /// versions): debris once that process is gone.
    Other { pid: Option<u32> },
}

impl TmpEntry {
    /// Classify a name found in `tmp/`.
    pub(crate) fn parse(name: &str) -> TmpEntry {
        let digest_after = |prefix: &str| {
            let rest = name.strip_prefix(prefix)?;
            let hex = rest.split('.').next()?;
            format!("sha256:{hex}").parse::<Digest>().ok()
        };
        if let Some(d) = digest_after("layer-") {
            return TmpEntry::Staging(d);
        }
        if let Some(d) = digest_after(TRASH_PREFIX) {
            let generation = name
                .split('.')
                .nth(1)
                .and_then(|g| g.strip_prefix('g'))
                .and_then(|g| g.parse().ok());
            return TmpEntry::Trash(d, generation);
        }
        // `<prefix>.<pid>.<counter>.<nanos>`: the pid is third from the end.
        let parts: Vec<&str> = name.rsplitn(4, '.').collect();
        let pid = (parts.len() == 4).then(|| parts[2].parse().ok()).flatten();
        TmpEntry::Other { pid }
    }
}

/// `<prefix>.<pid>.<counter>.<nanos>`: unique across threads and processes.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}.{}.{n}.{nanos}", std::process::id())
}

/// Write `bytes` to `path` atomically: a unique temp file in `tmp_dir` (with `perms`' file
/// mode), fsync, rename. A reader sees either the old file or the whole new one. The error
/// names the file the failing call was about: the temp file when it could not be created or
/// written (a read-only, full or unwritable `tmp_dir`), `path` when it could not be renamed
/// there.
pub(crate) fn write_atomic(
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
    perms: Perms,
) -> Result<(), CacheError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tmp_dir.join(unique_name(&name));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        // A new file: never one planted at the name, never through a symlink.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(perms.file_mode())
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)
            .map_err(CacheError::io("create temp file", &tmp))?;
        perms
            .fix_fd(&f, false)
            .map_err(|e| CacheError::io("chmod temp file", &tmp)(e.into()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(CacheError::io("write temp file", &tmp))?;
        std::fs::rename(&tmp, path).map_err(CacheError::io("rename a temp file to", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
