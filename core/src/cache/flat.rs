//! Flat EROFS images: one image of an image's merged tree per platform manifest,
//! `flat/sha256/<manifest hex>.erofs`, shared by every reference that resolves to that
//! manifest. An image is written in a staging directory under `tmp/` and renamed into place
//! whole, so a flat image that is there is complete; `gc` deletes the ones no record names.
//!
//! `flat/` is created the first time an image is written there (a cache made before it
//! existed stays valid, and a read-only opener does not need it).

use std::path::{Path, PathBuf};

use super::layout::{Layout, unique_name};
use super::{CacheError, GlobalCache, trust};
use crate::digest::Digest;

/// Name of the image in its staging directory.
const STAGED: &str = "image.erofs";

impl Layout {
    /// `flat/sha256/`.
    pub(crate) fn flat_dir(&self) -> PathBuf {
        self.root().join("flat").join("sha256")
    }

    /// The flat image of platform manifest `manifest`.
    pub(crate) fn flat_image(&self, manifest: &Digest) -> PathBuf {
        self.flat_dir().join(format!("{}.erofs", manifest.hex()))
    }

    /// The manifest whose flat image is named `name` (`<hex>.erofs`).
    pub(crate) fn flat_manifest_of(name: &str) -> Option<Digest> {
        let hex = name.strip_suffix(".erofs")?;
        format!("sha256:{hex}").parse().ok()
    }
}

/// A flat image being written: its file (and the writer's side files) in a staging
/// directory of its own, removed with whatever is left in it when dropped.
#[derive(Debug)]
pub(crate) struct FlatStaging {
    dir: PathBuf,
    target: PathBuf,
}

impl FlatStaging {
    /// Where the image is to be written.
    pub(crate) fn image(&self) -> PathBuf {
        self.dir.join(STAGED)
    }
}

impl Drop for FlatStaging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl GlobalCache {
    /// The flat EROFS image of the image whose platform manifest is `manifest`:
    /// `flat/sha256/<hex>.erofs` (there when a pull had `"erofs-flat"` among its outputs).
    pub fn flat_image(&self, manifest: &Digest) -> PathBuf {
        self.layout().flat_image(manifest)
    }

    /// Whether the flat image of `manifest` is there (a regular file: only whole images are
    /// ever renamed into place).
    pub(crate) fn has_flat_image(&self, manifest: &Digest) -> bool {
        std::fs::symlink_metadata(self.flat_image(manifest)).is_ok_and(|m| m.is_file())
    }

    /// A staging directory for the flat image of `manifest`.
    pub(crate) fn stage_flat_image(&self, manifest: &Digest) -> Result<FlatStaging, CacheError> {
        let dir = self
            .layout()
            .tmp()
            .join(unique_name(&format!("flat-{}", manifest.hex())));
        trust::create_cache_dir(&dir, self.perms())?;
        Ok(FlatStaging {
            dir,
            target: self.flat_image(manifest),
        })
    }

    /// Publish a written flat image: synced (if `durable`) and renamed into place; its path.
    pub(crate) fn publish_flat_image(
        &self,
        staging: FlatStaging,
        durable: bool,
    ) -> Result<PathBuf, CacheError> {
        let flat = self.layout().flat_dir();
        for dir in [flat.parent().unwrap_or(&flat), &flat] {
            trust::create_cache_dir(dir, self.perms())?;
            trust::check_trusted(dir, false)?;
        }
        let image = staging.image();
        let file = std::fs::File::open(&image).map_err(CacheError::io("open", &image))?;
        self.perms()
            .fix_fd(&file, false)
            .map_err(|e| CacheError::io("chmod", &image)(e.into()))?;
        if durable {
            file.sync_all().map_err(CacheError::io("sync", &image))?;
        }
        std::fs::rename(&image, &staging.target)
            .map_err(CacheError::io("publish", &staging.target))?;
        if durable {
            sync(&flat)?;
        }
        Ok(staging.target.clone())
    }
}

/// fsync `path` (a file or a directory).
fn sync(path: &Path) -> Result<(), CacheError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(CacheError::io("sync", path))
}
