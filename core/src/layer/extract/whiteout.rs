//! Whiteouts on disk. A tar entry whose last component is `.wh.NAME` (any type) deletes
//! `NAME` from the layers below; `.wh..wh..opq` makes its directory opaque. Neither is kept
//! under its tar name: a whiteout becomes an empty regular file at `NAME` itself carrying
//! [`WHITEOUT_XATTR`] (override_stat `c 0 0`, the overlayfs whiteout), an opaque marker the
//! [`OPAQUE_XATTR`] of its directory. So no name in the tree means anything but the entry it
//! is: a directory `.wh.etc` that a tar wrote `.wh.etc/somefile` under is just a directory.
//!
//! A whiteout naming nothing, its own directory or the parent (`.wh.`, `.wh..`, `.wh...`) is
//! refused, as containerd refuses it: a merged view could apply it to the root. A whiteout and
//! a real entry of the same name in one layer keep the real entry, a directory becoming
//! opaque (OCI: whiteouts apply to the layers below), whatever their order; the names the
//! layer deleted are remembered so that a directory made there later is opaque too. The index
//! builder applies the same rules, so its index and a rebuild from this tree agree.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::resolve::remove_below;
use super::tree::LayerTree;
use super::{Extractor, IMPLICIT_DIR_XATTR, Meta, path_bytes};
use crate::layer::LayerError;
use crate::stat::{OverrideStat, mode};

/// On an empty regular file: the layer deletes this name from the layers below.
pub const WHITEOUT_XATTR: &str = "user.msb.whiteout";
/// On a directory (`y`): the layers below contribute nothing to its contents.
pub const OPAQUE_XATTR: &str = "user.msb.opaque";

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// What the last component of an entry's name makes of it.
pub(super) enum Marker<'a> {
    /// `.wh..wh..opq`.
    Opaque,
    /// `.wh.NAME`: deletes `NAME`.
    Whiteout(&'a OsStr),
}

/// The marker `name` is, if it is one; an error for a whiteout of nothing, `.` or `..`.
pub(super) fn marker_of<'a>(rel: &Path, name: &'a OsStr) -> Result<Option<Marker<'a>>, LayerError> {
    let name = name.as_bytes();
    if name == WH_OPAQUE {
        return Ok(Some(Marker::Opaque));
    }
    match name.strip_prefix(WH_PREFIX) {
        None => Ok(None),
        Some(b"" | b"." | b"..") => Err(LayerError::UnsafePath {
            path: rel.to_string_lossy().into_owned(),
            reason: "whiteout of the layer root, its own directory or its parent",
        }),
        Some(target) => Ok(Some(Marker::Whiteout(OsStr::from_bytes(target)))),
    }
}

impl<T: LayerTree> Extractor<T> {
    /// Apply the marker entry `rel` (resolved; its last component is the marker).
    pub(super) fn marker(
        &mut self,
        rel: &Path,
        marker: Marker<'_>,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        self.make_parents(rel)?;
        let dir = rel.parent().unwrap_or(Path::new(""));
        match marker {
            Marker::Opaque => self.opaque(dir),
            Marker::Whiteout(name) => self.whiteout(&dir.join(name), meta),
        }
    }

    fn opaque(&mut self, dir: &Path) -> Result<(), LayerError> {
        let shown = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let fd = self.open_dir(shown)?;
        self.tree.set_flag(&fd, shown, OPAQUE_XATTR, b"y")?;
        if let Some(index) = &mut self.stats.index {
            index.set_opaque(path_bytes(dir))?;
        }
        Ok(())
    }

    fn whiteout(&mut self, path: &Path, meta: &Meta) -> Result<(), LayerError> {
        if self.markers.contains(path) {
            self.remove(path)?;
        }
        let inode = match self.stat(path)? {
            Some(st) if st.dir => {
                let fd = self.open_dir(path)?;
                self.make_opaque(&fd, path)?;
                st.ino
            }
            Some(st) => st.ino, // a real non-directory hides the layers below anyway
            None => self.write_marker(path, meta)?,
        };
        self.deleted.insert(path.to_owned());
        if let Some(index) = &mut self.stats.index {
            index.add_whiteout(path_bytes(path), meta.index_meta(0, inode, None))?;
        }
        Ok(())
    }

    /// Write the marker file of a whiteout at `path`; returns its inode.
    fn write_marker(&mut self, path: &Path, meta: &Meta) -> Result<u64, LayerError> {
        let fd = self.create(path)?;
        let marker = Meta {
            stat: OverrideStat {
                mode: mode::S_IFCHR,
                rdev: 0,
                ..meta.stat
            },
            mtime: meta.mtime,
            xattrs: Vec::new(),
        };
        self.tree.set_meta(&fd, path, &marker)?;
        self.tree.set_flag(&fd, path, WHITEOUT_XATTR, b"1")?;
        self.markers.insert(path.to_owned());
        self.tree.inode(&fd, path)
    }

    /// A directory at `rel` whose name this layer deleted below: opaque, and no longer a
    /// placeholder (nothing below it survives, so its metadata is its own).
    pub(super) fn make_opaque(&mut self, fd: &T::Handle, rel: &Path) -> Result<(), LayerError> {
        self.tree.set_flag(fd, rel, OPAQUE_XATTR, b"y")?;
        if self.implicit.remove(rel) {
            self.tree.remove_flag(fd, rel, IMPLICIT_DIR_XATTR)?;
            self.stats.implicit_dirs -= 1;
        }
        Ok(())
    }

    /// Whether a new directory at `rel` must be opaque.
    pub(super) fn was_deleted(&self, rel: &Path) -> bool {
        self.deleted.contains(rel)
    }

    /// Whether a parent directory of `rel` is a whiteout marker (a later entry under a
    /// deleted name: `make_parents` turns the marker into an opaque directory).
    pub(super) fn marker_on_the_way(&self, rel: &Path) -> bool {
        !self.markers.is_empty() && rel.ancestors().skip(1).any(|a| self.markers.contains(a))
    }

    /// Whether `rel` holds a whiteout marker (not an entry a hardlink may name).
    pub(super) fn is_marker(&self, rel: &Path) -> bool {
        self.markers.contains(rel)
    }

    /// Forget the markers and deleted names strictly under the removed directory `dir`, and
    /// the marker at a removed non-directory `rel` (its deleted name stays: a later entry
    /// there still replaces what the layers below had).
    pub(super) fn forget_removed(&mut self, rel: &Path, was_dir: bool) {
        if was_dir {
            remove_below(&mut self.markers, rel, true);
            remove_below(&mut self.deleted, rel, false);
            self.symlinks.remove_tree(rel);
        } else {
            self.markers.remove(rel);
            self.symlinks.remove(rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_of_the_root_or_a_parent_are_refused() {
        for bad in [".wh.", ".wh..", ".wh..."] {
            let err = marker_of(Path::new(bad), OsStr::new(bad)).err();
            assert!(err.is_some(), "{bad}");
        }
        assert!(matches!(
            marker_of(Path::new("a"), OsStr::new(".wh..wh..opq")),
            Ok(Some(Marker::Opaque))
        ));
        assert!(matches!(
            marker_of(Path::new("a"), OsStr::new(".wh..wh.plnk")),
            Ok(Some(Marker::Whiteout(n))) if n == ".wh.plnk"
        ));
        assert!(matches!(
            marker_of(Path::new("a"), OsStr::new("etc")),
            Ok(None)
        ));
    }
}
