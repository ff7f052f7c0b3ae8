//! The layer directory: every primitive of [`LayerTree`] on the tree under the staging root's
//! directory fd, by paths relative to it, never following a symlink. The image's metadata
//! (ownership, mode, times) goes into xattrs and onto the inode (`cache/LAYOUT.md`).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::tree::{LayerTree, Stat};
use super::{Meta, io_err};
use crate::cache::Perms;
use crate::layer::LayerError;
use crate::stat::{XATTR_PREFIX, mode, store_xattr};

/// The layer directory under `root`.
pub(crate) struct DiskTree {
    root: OwnedFd,
    root_path: PathBuf,
    /// The modes of created files and directories (private unless the cache is shared).
    perms: Perms,
}

impl DiskTree {
    /// The tree under `root`, an existing empty directory.
    pub(crate) fn open(root: &Path) -> Result<Self, LayerError> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(root, "open"))?;
        Ok(DiskTree {
            root: fd,
            root_path: root.to_owned(),
            perms: Perms::PRIVATE,
        })
    }

    /// Create files and directories with `perms`' modes (a shared cache's `0640`/`2750`).
    pub(crate) fn set_perms(&mut self, perms: Perms) {
        self.perms = perms;
    }
}

impl LayerTree for DiskTree {
    type Handle = File;
    const KEEPS_DIR_TIMES: bool = true;

    fn open_root(&self) -> Result<File, LayerError> {
        let fd = self.root.try_clone().map_err(|e| LayerError::Io {
            op: "dup",
            path: self.root_path.to_string_lossy().into_owned(),
            source: e,
        })?;
        Ok(File::from(fd))
    }

    fn create(&mut self, rel: &Path) -> Result<File, Errno> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(&self.root, rel, flags, self.perms.create_mode(false)).map(File::from)
    }

    fn mkdir(&mut self, rel: &Path) -> Result<(), Errno> {
        rustix::fs::mkdirat(&self.root, rel, self.perms.create_mode(true))
    }

    fn open_dir(&self, rel: &Path) -> Result<File, Errno> {
        rustix::fs::openat(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
    }

    fn stat(&self, rel: &Path) -> Result<Option<Stat>, Errno> {
        match rustix::fs::statat(&self.root, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Stat {
                dir: st.st_mode & mode::S_IFMT == mode::S_IFDIR,
                ino: st.st_ino,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn unlink(&mut self, rel: &Path) -> Result<(), Errno> {
        rustix::fs::unlinkat(&self.root, rel, AtFlags::empty())
    }

    fn remove_tree(&mut self, rel: &Path) -> Result<(), Errno> {
        remove_tree(self.root.as_fd(), rel)
    }

    fn link(&mut self, target: &Path, rel: &Path) -> Result<(), Errno> {
        rustix::fs::linkat(&self.root, target, &self.root, rel, AtFlags::empty())
    }

    fn inode(&self, h: &File, rel: &Path) -> Result<u64, LayerError> {
        Ok(rustix::fs::fstat(h).map_err(io_err(rel, "stat"))?.st_ino)
    }

    fn fix_mode(&self, h: &File, rel: &Path, dir: bool) -> Result<(), LayerError> {
        self.perms.fix_fd(h, dir).map_err(io_err(rel, "chmod"))
    }

    fn set_meta(&self, h: &File, rel: &Path, meta: &Meta) -> Result<(), LayerError> {
        let fd = h.as_fd();
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

    fn set_flag(&self, h: &File, rel: &Path, name: &str, value: &[u8]) -> Result<(), LayerError> {
        rustix::fs::fsetxattr(h, name, value, XattrFlags::empty())
            .map_err(io_err(rel, "set xattr on"))
    }

    fn remove_flag(&self, h: &File, rel: &Path, name: &str) -> Result<(), LayerError> {
        match rustix::fs::fremovexattr(h, name) {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(io_err(rel, "remove xattr from")(e)),
        }
    }

    fn clear_image_xattrs(&self, h: &File, rel: &Path) -> Result<(), LayerError> {
        let fd = h.as_fd();
        let mut names = vec![0u8; 64 * 1024]; // XATTR_LIST_MAX
        let n =
            rustix::fs::flistxattr(fd, &mut names[..]).map_err(io_err(rel, "list xattrs of"))?;
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

    fn write(&self, h: &mut File, rel: &Path, data: &[u8]) -> Result<(), LayerError> {
        h.write_all(data).map_err(|e| LayerError::Io {
            op: "write",
            path: rel.to_string_lossy().into_owned(),
            source: e,
        })
    }

    fn set_dir_time(&self, rel: &Path, t: Timespec) -> Result<(), LayerError> {
        let ts = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(&self.root, rel, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err(rel, "set times on"))
    }
}

/// Remove the directory `rel` (relative to `root`) and everything in it, by paths relative
/// to `root`: no symlink is followed, nothing outside `root` is reached, and depth costs no
/// open descriptors (each level's names are read, then its listing is closed).
fn remove_tree(root: BorrowedFd<'_>, rel: &Path) -> Result<(), Errno> {
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
