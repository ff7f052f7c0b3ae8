//! Staging and publishing a layer directory (the cache owns where layers live; the `layer`
//! module decides what goes into one). A layer is built in `tmp/layer-<hex>.<unique>/`
//! and appears under `layers/sha256/<hex>/` by one rename, so a layer directory that exists is
//! complete. Staging directories are removed when dropped unless published, and debris left
//! by a crashed process is swept the next time the layer's lock is taken (or by the sweep at
//! the start of any pull, `cache/sweep.rs`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::CacheError;
use super::layout::{Layout, unique_name, write_atomic};
use super::perms::Perms;
use crate::digest::Digest;

/// `meta.json` of a layer directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LayerMeta {
    pub diff_id: Digest,
    /// Compressed digests this content arrived as.
    pub compressed_digests: Vec<Digest>,
    pub compressed_size: u64,
    pub media_type: String,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Tar entries applied.
    pub entries: u64,
    /// File content bytes written.
    pub file_bytes: u64,
    /// Directories created only as parents of entries.
    pub implicit_dirs: u64,
    /// How `fs/` marks whiteouts (`cache/LAYOUT.md`): 2 = marker xattrs at the deleted
    /// name; 1 (files without the field) = `.wh.` files under their tar names.
    #[serde(default = "tree_format_1")]
    pub tree_format: u32,
    /// SHA-256 of `index` as published; absent when the layer was published without one
    /// (`build_index: false`, or before this field existed): an index added later is
    /// built from the tree and checked structurally only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// SHA-256 of `contents` (absent in layers published before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents_digest: Option<Digest>,
    /// The layer's EROFS image `layer.erofs`, when the pull that published it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erofs: Option<ErofsRecord>,
    /// Published without its tree (`outputs: ["erofs-layers"]`): no `fs/`, the image is
    /// the layer's only copy of its files. Absent (false) in layers with a tree.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_only: bool,
}

/// What `meta.json` records of a layer's EROFS image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErofsRecord {
    /// Blocks of 4 KiB (the file's length ÷ 4096).
    pub blocks: u64,
    /// The opaque directory marker it carries.
    pub opaque_xattr: crate::erofs::OpaqueXattr,
}

/// Largest `meta.json` read.
const MAX_META_BYTES: u64 = 1 << 20;

impl LayerMeta {
    /// Read the `meta.json` of the layer directory `layer_dir` (not following a symlink,
    /// bounded); the error says what is wrong with it.
    pub(crate) fn read(layer_dir: &Path) -> Result<LayerMeta, String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let p = Layout::meta_in(layer_dir);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
        let mut bytes = Vec::new();
        file.take(MAX_META_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if bytes.len() as u64 > MAX_META_BYTES {
            return Err(format!("{} is larger than any layer's", p.display()));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not valid: {e}", p.display()))
    }
}

/// The `tree_format` this build writes.
pub(crate) const TREE_FORMAT: u32 = 2;

fn tree_format_1() -> u32 {
    1
}

/// A staging directory for one layer; removed on drop unless published.
pub(crate) struct Staging {
    dir: PathBuf,
    target: PathBuf,
    published: bool,
    /// The modes of what it creates (the tree's own entries get theirs from the extractor).
    perms: Perms,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Staging {
    /// Sweep stale staging directories of this layer (we hold its lock), then make a new one
    /// with an empty `fs/`.
    pub(crate) fn create(
        layout: &Layout,
        perms: Perms,
        diff_id: &Digest,
    ) -> Result<Staging, CacheError> {
        let prefix = format!("{}.", Layout::staging_prefix(diff_id));
        let tmp = layout.tmp();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(unique_name(&Layout::staging_prefix(diff_id)));
        perms.create_dir(&dir).map_err(io("create", &dir))?;
        let staging = Staging {
            target: layout.layer_dir(diff_id),
            dir,
            published: false,
            perms,
        };
        let fs = staging.fs();
        perms.create_dir(&fs).map_err(io("create", &fs))?;
        Ok(staging)
    }

    /// Where the tree is extracted.
    pub(crate) fn fs(&self) -> PathBuf {
        Layout::fs_in(&self.dir)
    }

    /// Remove the (empty) `fs/` of a layer published as its EROFS image alone.
    pub(crate) fn drop_tree(&self) -> Result<(), CacheError> {
        let fs = self.fs();
        std::fs::remove_dir(&fs).map_err(io("remove", &fs))
    }

    /// Where the layer's EROFS image is written.
    pub(crate) fn erofs(&self) -> PathBuf {
        Layout::erofs_in(&self.dir)
    }

    /// Give a file written into the staging directory by others (the EROFS image) the
    /// cache's file mode.
    pub(crate) fn adopt_file(&self, p: &Path) -> Result<(), CacheError> {
        let f = std::fs::File::open(p).map_err(io("open", p))?;
        self.perms
            .fix_fd(&f, false)
            .map_err(|e| io("chmod", p)(e.into()))
    }

    /// Write the layer's sidecar index next to `fs/`.
    pub(crate) fn write_index(&self, bytes: &[u8]) -> Result<(), CacheError> {
        self.write_sidecar(&Layout::index_in(&self.dir), bytes)
    }

    /// Write the record of the finished tree (`cache/contents/mod.rs`) next to `fs/`.
    pub(crate) fn write_contents(&self, bytes: &[u8]) -> Result<(), CacheError> {
        self.write_sidecar(&Layout::contents_in(&self.dir), bytes)
    }

    /// A new file of the staging directory, with the cache's file mode.
    fn write_sidecar(&self, p: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.perms.file_mode())
            .open(p)
            .map_err(io("write", p))?;
        self.perms
            .fix_fd(&f, false)
            .map_err(|e| io("chmod", p)(e.into()))?;
        f.write_all(bytes).map_err(io("write", p))
    }

    /// Write `meta.json`, optionally make everything durable, and rename into place. A layer
    /// directory already there (a forced re-pull, or one found damaged) is swapped out in
    /// one `renameat2(RENAME_EXCHANGE)`, so readers see the old tree or the new one, never
    /// none; the old tree goes to `tmp/trash-<hex>.*`, deleted now if no one holds the layer
    /// and otherwise by a later sweep (`cache/lease.rs`); its path is returned then. The
    /// caller holds the layer's lock.
    pub(crate) fn publish(
        mut self,
        layout: &Layout,
        meta: &LayerMeta,
        durable: bool,
    ) -> Result<Option<PathBuf>, CacheError> {
        let bytes = serde_json::to_vec_pretty(meta)
            .map_err(|e| io("serialise", &self.dir)(std::io::Error::other(e)))?;
        let meta_path = Layout::meta_in(&self.dir);
        write_atomic(&self.dir, &meta_path, &bytes, self.perms)?;
        if durable {
            // One syncfs for the whole tree instead of an fsync per file.
            let fd = std::fs::File::open(&self.dir).map_err(io("open", &self.dir))?;
            rustix::fs::syncfs(fd.as_fd()).map_err(|e| io("sync", &self.dir)(e.into()))?;
        }
        let replaced = std::fs::symlink_metadata(&self.target).is_ok();
        let mut left = None;
        if replaced {
            left = self.swap_in(layout, &meta.diff_id)?;
        } else {
            std::fs::rename(&self.dir, &self.target).map_err(io("publish", &self.target))?;
            self.published = true;
        }
        if durable && let Some(parent) = self.target.parent() {
            let d = std::fs::File::open(parent).map_err(io("open", parent))?;
            d.sync_all().map_err(io("sync", parent))?;
        }
        Ok(left)
    }

    /// Exchange the staging directory with the published one, then move the old tree (now at
    /// the staging path) to the trash, count the layer's generation up and delete the old
    /// tree if no one can be using it (`cache/lease.rs`); returns the trash path if it stays.
    fn swap_in(
        &mut self,
        layout: &Layout,
        diff_id: &Digest,
    ) -> Result<Option<PathBuf>, CacheError> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        // Stable: only a holder of the layer's build lock (us) changes it.
        let generation = super::lease::read_generation(layout, diff_id);
        let trash = layout.replaced_trash(diff_id, generation);
        match renameat_with(CWD, &self.dir, CWD, &self.target, RenameFlags::EXCHANGE) {
            Ok(()) => {
                self.published = true;
                std::fs::rename(&self.dir, &trash).map_err(io("move aside", &self.dir))?;
            }
            // File systems without RENAME_EXCHANGE: move the old tree aside first (a reader
            // may see no layer for a moment).
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                std::fs::rename(&self.target, &trash).map_err(io("move aside", &self.target))?;
                std::fs::rename(&self.dir, &self.target).map_err(io("publish", &self.target))?;
                self.published = true;
            }
            Err(e) => return Err(io("publish", &self.target)(e.into())),
        }
        super::lease::bump_generation(layout, self.perms, diff_id, generation);
        Ok(delete_if_unheld(
            layout, self.perms, diff_id, trash, generation,
        ))
    }
}

/// Delete a tree replaced at `generation` now if nobody can be using it (`None`); otherwise
/// return it.
fn delete_if_unheld(
    layout: &Layout,
    perms: Perms,
    diff_id: &Digest,
    trash: PathBuf,
    generation: u64,
) -> Option<PathBuf> {
    match super::lease::trash_unheld(layout, perms, diff_id, Some(generation)) {
        Ok(Some(_free)) => {
            let _ = std::fs::remove_dir_all(&trash);
            None
        }
        _ => Some(trash),
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
