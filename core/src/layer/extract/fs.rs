//! The file-system half of extraction: every operation on the layer tree goes through the
//! root's directory fd with paths relative to it, never following a symlink: creating files,
//! directories and parents, replacing and removing entries, applying the image's metadata
//! (ownership, mode and times in xattrs and on the inode), and restoring directory times at
//! the end.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::{Extractor, IMPLICIT_DIR_XATTR, Meta, inode_of, io_err, path_bytes};
use crate::index::EntryMeta;
use crate::layer::LayerError;
use crate::stat::{OverrideStat, XATTR_PREFIX, mode, store_xattr};

impl Extractor {
    pub(super) fn set_meta(
        &self,
        fd: impl AsFd,
        rel: &Path,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        let fd = fd.as_fd();
        let err = |op: &'static str| {
            move |e: std::io::Error| LayerError::Io {
                op,
                path: rel.to_string_lossy().into_owned(),
                source: e,
            }
        };
        meta.stat.apply(fd).map_err(err("set override xattr on"))?;
        for (name, value) in &meta.xattrs {
            store_xattr(fd, name, value).map_err(|e| {
                let why = match e.raw_os_error().map(Errno::from_raw_os_error) {
                    Some(Errno::RANGE) => "name too long to store",
                    Some(Errno::TOOBIG) => "value too large to store",
                    _ => return err("set xattr on")(e),
                };
                LayerError::Tar {
                    detail: format!(
                        "{}: xattr {:?}: {why}",
                        rel.to_string_lossy(),
                        String::from_utf8_lossy(name)
                    ),
                }
            })?;
        }
        if meta.stat.mode & mode::S_IFMT != mode::S_IFDIR {
            let ts = Timestamps {
                last_access: meta.mtime,
                last_modification: meta.mtime,
            };
            rustix::fs::futimens(fd, &ts).map_err(|e| err("set times on")(e.into()))?;
        }
        Ok(())
    }

    /// Create a fresh regular file at `rel`, replacing whatever is there.
    pub(super) fn create(&mut self, rel: &Path) -> Result<OwnedFd, LayerError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut parents_made = false;
        let mut replaced = false;
        loop {
            match rustix::fs::openat(&self.root, rel, flags, self.perms.create_mode(false)) {
                Ok(fd) => {
                    self.perms
                        .fix_fd(&fd, false)
                        .map_err(io_err(rel, "chmod"))?;
                    return Ok(fd);
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

    /// Give a directory this layer created its exact mode if the umask took bits (shared
    /// caches only; `cache/perms.rs`).
    pub(super) fn fix_dir_mode(&self, fd: &OwnedFd, rel: &Path) -> Result<(), LayerError> {
        self.perms.fix_fd(fd, true).map_err(io_err(rel, "chmod"))
    }

    pub(super) fn open_dir(&self, rel: &Path) -> Result<OwnedFd, LayerError> {
        rustix::fs::openat(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(rel, "open"))
    }

    pub(super) fn stat(&self, rel: &Path) -> Result<Option<rustix::fs::Stat>, LayerError> {
        match rustix::fs::statat(&self.root, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTDIR) => Err(not_a_dir(rel)),
            Err(e) => Err(io_err(rel, "stat")(e)),
        }
    }

    pub(super) fn exists(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self.stat(rel)?.is_some())
    }

    pub(super) fn is_dir(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self
            .stat(rel)?
            .is_some_and(|st| st.st_mode & mode::S_IFMT == mode::S_IFDIR))
    }

    /// Remove what is at `rel` (an earlier entry with the same path: the last one wins).
    pub(super) fn remove(&mut self, rel: &Path) -> Result<(), LayerError> {
        if self.is_dir(rel)? {
            remove_tree(self.root.as_fd(), rel).map_err(io_err(rel, "replace"))?;
            let before = self.implicit.len();
            self.implicit.retain(|p| !p.starts_with(rel));
            self.stats.implicit_dirs -= (before - self.implicit.len()) as u64;
            self.dir_times.retain(|(p, _)| !p.starts_with(rel));
            self.forget_removed(rel, true);
            Ok(())
        } else {
            match rustix::fs::unlinkat(&self.root, rel, AtFlags::empty()) {
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
            match rustix::fs::mkdirat(&self.root, &prefix, self.perms.create_mode(true)) {
                Ok(()) => self.implicit_dir(&prefix)?,
                Err(Errno::EXIST) if self.is_marker(&prefix) => {
                    self.remove(&prefix)?;
                    rustix::fs::mkdirat(&self.root, &prefix, self.perms.create_mode(true))
                        .map_err(io_err(&prefix, "mkdir"))?;
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
        let fd = self.open_dir(prefix)?;
        self.fix_dir_mode(&fd, prefix)?;
        OverrideStat {
            uid: 0,
            gid: 0,
            mode: mode::S_IFDIR | 0o755,
            rdev: 0,
        }
        .apply(&fd)
        .map_err(|e| LayerError::Io {
            op: "set override xattr on",
            path: prefix.to_string_lossy().into_owned(),
            source: e,
        })?;
        if self.was_deleted(prefix) {
            self.make_opaque(&fd, prefix)?;
        } else {
            rustix::fs::fsetxattr(
                &fd,
                IMPLICIT_DIR_XATTR,
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(io_err(prefix, "set xattr on"))?;
            self.implicit.insert(prefix.to_owned());
            self.stats.implicit_dirs += 1;
        }
        if let Some(index) = &mut self.stats.index {
            let meta = EntryMeta {
                mode: mode::S_IFDIR | 0o755,
                inode: inode_of(&fd, prefix)?,
                implicit: true,
                ..EntryMeta::default()
            };
            index.add_literal(path_bytes(prefix), meta)?;
        }
        Ok(())
    }

    pub(super) fn finish_dir_times(&self) -> Result<(), LayerError> {
        for (rel, t) in &self.dir_times {
            let ts = Timestamps {
                last_access: *t,
                last_modification: *t,
            };
            rustix::fs::utimensat(&self.root, rel, &ts, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(rel, "set times on"))?;
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

/// Drop the image xattrs (`user.msb.xattr.*`) an earlier entry left on `fd`.
pub(super) fn clear_image_xattrs(fd: BorrowedFd<'_>, rel: &Path) -> Result<(), LayerError> {
    let mut names = vec![0u8; 64 * 1024]; // XATTR_LIST_MAX
    let n = rustix::fs::flistxattr(fd, &mut names[..]).map_err(io_err(rel, "list xattrs of"))?;
    for name in names[..n].split(|b| *b == 0) {
        if name.starts_with(XATTR_PREFIX.as_bytes()) {
            match rustix::fs::fremovexattr(fd, name) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(io_err(rel, "remove xattr from")(e)),
            }
        }
    }
    Ok(())
}

/// Remove the directory `rel` (relative to `root`) and everything in it, by paths relative
/// to `root`: no symlink is followed, nothing outside `root` is reached, and depth costs no
/// open descriptors (each level's names are read, then its listing is closed).
pub(super) fn remove_tree(root: BorrowedFd<'_>, rel: &Path) -> Result<(), Errno> {
    let children = {
        let fd = rustix::fs::openat(
            root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut out: Vec<(CString, FileType)> = Vec::new();
        let mut listing = rustix::fs::Dir::read_from(&fd)?;
        while let Some(e) = listing.read() {
            let e = e?;
            let name = e.file_name();
            if name != c"." && name != c".." {
                out.push((name.to_owned(), e.file_type()));
            }
        }
        out
    };
    for (name, ty) in children {
        let child = rel.join(OsStr::from_bytes(name.to_bytes()));
        if ty == FileType::Directory {
            remove_tree(root, &child)?;
            continue;
        }
        match rustix::fs::unlinkat(root, &child, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            // The file system did not say the type; it is a directory after all.
            Err(Errno::ISDIR) => remove_tree(root, &child)?,
            Err(e) => return Err(e),
        }
    }
    rustix::fs::unlinkat(root, rel, AtFlags::REMOVEDIR)
}
