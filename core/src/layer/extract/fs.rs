//! The tree half of extraction: creating files, directories and parents, replacing and
//! removing entries, implicit directories and directory times, on the layer's
//! [`LayerTree`] (the directory on disk, or names alone for an image-only pull), deciding
//! from the `errno` of each primitive, so both trees take the same decisions.

use std::path::{Path, PathBuf};

use rustix::fs::Timespec;
use rustix::io::Errno;

use super::resolve::{remove_below, remove_tree_of};
use super::tree::{LayerTree, Stat};
use super::{Extractor, IMPLICIT_DIR_XATTR, io_err, path_bytes};
use crate::index::EntryMeta;
use crate::layer::LayerError;
use crate::stat::{OverrideStat, mode};

impl<T: LayerTree> Extractor<T> {
    /// Create a fresh regular file at `rel`, replacing whatever is there.
    pub(super) fn create(&mut self, rel: &Path) -> Result<T::Handle, LayerError> {
        let mut parents_made = false;
        let mut replaced = false;
        loop {
            match self.tree.create(rel) {
                Ok(h) => {
                    self.tree.fix_mode(&h, rel, false)?;
                    return Ok(h);
                }
                Err(Errno::EXIST) if !replaced => {
                    replaced = true;
                    self.remove(rel)?;
                }
                Err(Errno::NOENT) if !parents_made => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) if !parents_made && self.marker_on_the_way(rel) => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) => return Err(not_a_dir(rel)),
                Err(e) => return Err(io_err(rel, "create")(e)),
            }
        }
    }

    pub(super) fn open_dir(&self, rel: &Path) -> Result<T::Handle, LayerError> {
        self.tree.open_dir(rel).map_err(io_err(rel, "open"))
    }

    pub(super) fn stat(&self, rel: &Path) -> Result<Option<Stat>, LayerError> {
        match self.tree.stat(rel) {
            Ok(st) => Ok(st),
            Err(Errno::NOTDIR) => Err(not_a_dir(rel)),
            Err(e) => Err(io_err(rel, "stat")(e)),
        }
    }

    pub(super) fn exists(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self.stat(rel)?.is_some())
    }

    pub(super) fn is_dir(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self.stat(rel)?.is_some_and(|st| st.dir))
    }

    /// Remove what is at `rel` (an earlier entry with the same path: the last one wins).
    pub(super) fn remove(&mut self, rel: &Path) -> Result<(), LayerError> {
        if self.is_dir(rel)? {
            self.tree.remove_tree(rel).map_err(io_err(rel, "replace"))?;
            let implicit = remove_below(&mut self.implicit, rel, true);
            self.stats.implicit_dirs -= implicit as u64;
            remove_tree_of(&mut self.dir_times, rel);
            self.forget_removed(rel, true);
            Ok(())
        } else {
            match self.tree.unlink(rel) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(io_err(rel, "replace")(e)),
            }
            self.forget_removed(rel, false);
            Ok(())
        }
    }

    /// Create the missing parents of `rel` as implicit directories (a whiteout marker in
    /// the way becomes an opaque directory, as a later entry under a deleted name makes one).
    pub(super) fn make_parents(&mut self, rel: &Path) -> Result<(), LayerError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut prefix = PathBuf::new();
        for comp in parent.components() {
            prefix.push(comp);
            match self.tree.mkdir(&prefix) {
                Ok(()) => self.implicit_dir(&prefix)?,
                Err(Errno::EXIST) if self.is_marker(&prefix) => {
                    self.remove(&prefix)?;
                    self.tree.mkdir(&prefix).map_err(io_err(&prefix, "mkdir"))?;
                    self.implicit_dir(&prefix)?;
                }
                Err(Errno::EXIST) => {
                    if !self.is_dir(&prefix)? {
                        return Err(not_a_dir(rel));
                    }
                }
                Err(e) => return Err(io_err(&prefix, "mkdir")(e)),
            }
        }
        Ok(())
    }

    /// Give the new directory `prefix` its placeholder metadata: implicit, or opaque if the
    /// layer deleted that name below.
    fn implicit_dir(&mut self, prefix: &Path) -> Result<(), LayerError> {
        let h = self.open_dir(prefix)?;
        self.tree.fix_mode(&h, prefix, true)?;
        let placeholder = super::Meta {
            stat: OverrideStat {
                uid: 0,
                gid: 0,
                mode: mode::S_IFDIR | 0o755,
                rdev: 0,
            },
            mtime: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        // (A directory's times are set at the end: only the override xattr is written.)
        self.tree.set_meta(&h, prefix, &placeholder)?;
        if self.was_deleted(prefix) {
            self.make_opaque(&h, prefix)?;
        } else {
            self.tree.set_flag(&h, prefix, IMPLICIT_DIR_XATTR, b"1")?;
            self.implicit.insert(prefix.to_owned());
            self.stats.implicit_dirs += 1;
        }
        if let Some(index) = &mut self.stats.index {
            let meta = EntryMeta {
                mode: mode::S_IFDIR | 0o755,
                inode: self.tree.inode(&h, prefix)?,
                implicit: true,
                ..EntryMeta::default()
            };
            index.add_literal(path_bytes(prefix), meta)?;
        }
        Ok(())
    }

    /// Set `rel`'s time `t` at the end (the last entry of a path wins), if the tree keeps
    /// times.
    pub(super) fn keep_dir_time(&mut self, rel: &Path, t: Timespec) {
        if T::KEEPS_DIR_TIMES {
            self.dir_times.insert(rel.to_owned(), t);
        }
    }

    pub(super) fn finish_dir_times(&self) -> Result<(), LayerError> {
        for (rel, t) in &self.dir_times {
            self.tree.set_dir_time(rel, *t)?;
        }
        Ok(())
    }
}

pub(super) fn not_a_dir(rel: &Path) -> LayerError {
    LayerError::UnsafePath {
        path: rel.to_string_lossy().into_owned(),
        reason: "a parent directory is a non-directory entry of this layer",
    }
}
