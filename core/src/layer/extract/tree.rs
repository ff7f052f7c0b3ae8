//! What the extractor asks of the tree it writes: the file-system primitives, each failing
//! with the `errno` the kernel gives, so that one extractor (`mod.rs`, `fs.rs`,
//! `whiteout.rs`) makes the same decisions, and refuses the same hostile tars, whatever the
//! tree is. Two trees implement it: [`DiskTree`](super::disk::DiskTree), the layer directory
//! under the staging root's fd (a pull with the `directory` output), and
//! [`MemoryTree`](super::memory::MemoryTree), names and types only, for a pull that writes
//! the layer's EROFS image alone (the image's metadata comes from the index builder, its file
//! data from the extractor's copy loop).

use std::path::Path;

use rustix::fs::Timespec;
use rustix::io::Errno;

use super::Meta;
use crate::layer::LayerError;

/// What the extractor needs to know of an existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// A directory (anything else is a non-directory: a file, a symlink, a device, a marker).
    pub dir: bool,
    /// The inode number (hardlinks share one): the index's and the image's key.
    pub ino: u64,
}

/// The file-system primitives of extraction. Paths are relative to the layer root (`.` is
/// the root), plain (no `..`, no symlink to follow: the tree holds none).
pub(crate) trait LayerTree {
    /// An open entry.
    type Handle;
    /// Whether [`set_dir_time`](Self::set_dir_time) does anything (the extractor keeps
    /// directories' times for the end only then).
    const KEEPS_DIR_TIMES: bool;

    /// The root directory.
    fn open_root(&self) -> Result<Self::Handle, LayerError>;
    /// A new regular file at `rel`, which must not exist (`O_CREAT | O_EXCL | O_NOFOLLOW`).
    fn create(&mut self, rel: &Path) -> Result<Self::Handle, Errno>;
    /// A new directory at `rel`, which must not exist.
    fn mkdir(&mut self, rel: &Path) -> Result<(), Errno>;
    /// The existing directory `rel`.
    fn open_dir(&self, rel: &Path) -> Result<Self::Handle, Errno>;
    /// What is at `rel` (`None` when nothing is; `ENOTDIR` when a parent is a file).
    fn stat(&self, rel: &Path) -> Result<Option<Stat>, Errno>;
    /// Remove the non-directory `rel` (`EISDIR` for a directory).
    fn unlink(&mut self, rel: &Path) -> Result<(), Errno>;
    /// Remove the directory `rel` and everything under it.
    fn remove_tree(&mut self, rel: &Path) -> Result<(), Errno>;
    /// Make `rel` a hardlink of `target` (`linkat` without following: `EPERM` for a
    /// directory target).
    fn link(&mut self, target: &Path, rel: &Path) -> Result<(), Errno>;
    /// The inode number of an open entry.
    fn inode(&self, h: &Self::Handle, rel: &Path) -> Result<u64, LayerError>;
    /// Give a new entry its exact mode if the umask took bits (shared caches only).
    fn fix_mode(&self, h: &Self::Handle, rel: &Path, dir: bool) -> Result<(), LayerError>;
    /// Apply an entry's metadata (ownership, mode, xattrs; times but a directory's).
    fn set_meta(&self, h: &Self::Handle, rel: &Path, meta: &Meta) -> Result<(), LayerError>;
    /// Set the tree's own flag xattr `name` (implicit, opaque, whiteout).
    fn set_flag(
        &self,
        h: &Self::Handle,
        rel: &Path,
        name: &str,
        value: &[u8],
    ) -> Result<(), LayerError>;
    /// Remove the flag xattr `name` if set.
    fn remove_flag(&self, h: &Self::Handle, rel: &Path, name: &str) -> Result<(), LayerError>;
    /// Drop the image xattrs an earlier entry left (the last entry of a path wins).
    fn clear_image_xattrs(&self, h: &Self::Handle, rel: &Path) -> Result<(), LayerError>;
    /// Append file data.
    fn write(&self, h: &mut Self::Handle, rel: &Path, data: &[u8]) -> Result<(), LayerError>;
    /// Set a directory's times (at the end, once nothing is written under it).
    fn set_dir_time(&self, rel: &Path, t: Timespec) -> Result<(), LayerError>;
}
