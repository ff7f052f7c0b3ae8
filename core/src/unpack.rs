//! Plain rootfs export: materialise a pulled image's merged view (its [`LayerStack`]) as an
//! ordinary directory tree with real symlinks, hardlinks, modes, times, the image's xattrs and
//! owners, from the cache's layers and indexes (`msbimage unpack REF DIR`).
//!
//! As root, owners are set with `lchown` and device nodes are made with `mknod`. Rootless (any
//! other user, or when asked), as `umoci unpack --rootless` does: owners other than 0:0 go in
//! the `user.rootlesscontainers` xattr (the rootlesscontainers.io protobuf: uid field 1, gid
//! field 2), device nodes become empty regular files, and xattrs outside `user.` that the
//! kernel refuses are skipped.
//!
//! Every path is created through a directory fd resolved with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so a symlink the image holds can never redirect a later write out of
//! the destination. The destination must be missing or an empty directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::cache::cache_report;
use crate::index::{Entry, EntryKind, IndexError};
use crate::pull::PullResult;

/// How [`PullResult::unpack`] writes owners and devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Write owners as `user.rootlesscontainers` xattrs and devices as empty files, as
    /// `umoci unpack --rootless` does. `None`: rootless unless running as root.
    pub rootless: Option<bool>,
}

cache_report! {
/// What [`PullResult::unpack`] wrote.
#[derive(Default)]
pub struct UnpackReport {
    /// Entries created (the root excluded).
    pub entries: u64,
    /// Bytes of file content copied.
    pub bytes: u64,
    /// Whether owners and devices were written the rootless way.
    pub rootless: bool,
    /// Image xattrs the file system or the kernel refused (rootless: `security.*`,
    /// `trusted.*`), as `path: name`.
    pub skipped_xattrs: Vec<String>,
}
}

/// Why an unpack failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The destination exists and is not an empty directory.
    #[error("{0}: the destination must be missing or an empty directory")]
    NotEmpty(PathBuf),
    /// A file-system call failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to (in the destination, or a layer's tree).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A layer's index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A layer was published as its EROFS image alone (`outputs: ["erofs-layers"]`): it
    /// has no tree to copy files from.
    #[error(
        "layer {diff_id} has no tree (it was pulled with outputs [\"erofs-layers\"] only): \
         pull the image with the \"directory\" output to unpack it"
    )]
    NoTree {
        /// The layer's uncompressed digest.
        diff_id: crate::digest::Digest,
    },
}

impl UnpackError {
    /// The kind shared with every front door.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            UnpackError::NotEmpty(_) | UnpackError::NoTree { .. } => {
                crate::ErrorKind::InvalidArgument
            }
            UnpackError::Io { .. } | UnpackError::Index(_) => crate::ErrorKind::Io,
        }
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> UnpackError + 'a {
    move |e| UnpackError::Io {
        op,
        path: path.to_owned(),
        source: e.into(),
    }
}

impl PullResult {
    /// Write the image's merged root filesystem under `dest` (blocking): see the module
    /// documentation of [`crate::unpack`].
    ///
    /// ```no_run
    /// # async fn f(registry: microsandbox_image::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// use microsandbox_image::unpack::UnpackOptions;
    /// let result = registry.pull(&"alpine:3.20".parse()?, &Default::default()).await?;
    /// let report = result.unpack("/tmp/alpine-rootfs".as_ref(), &UnpackOptions::default())?;
    /// println!("{} entries", report.entries);
    /// # Ok(()) }
    /// ```
    pub fn unpack(&self, dest: &Path, opts: &UnpackOptions) -> Result<UnpackReport, UnpackError> {
        if let Some(diff_id) = self.first_without_tree() {
            return Err(UnpackError::NoTree {
                diff_id: diff_id.clone(),
            });
        }
        let rootless = opts
            .rootless
            .unwrap_or_else(|| !rustix::process::geteuid().is_root());
        let root = open_empty_dest(dest)?;
        let stack = self.layer_stack()?;
        let mut w = Writer {
            root,
            dest,
            layers: &self.layers,
            rootless,
            links: HashMap::new(),
            dirs: Vec::new(),
            report: UnpackReport {
                rootless,
                ..UnpackReport::default()
            },
        };
        for item in stack.walk() {
            let (path, entry) = item?;
            if path.is_empty() {
                w.dirs.push((path, DirMeta::of(&entry)));
                continue;
            }
            w.entry(&path, &entry)?;
        }
        w.finish_dirs()?;
        Ok(w.report)
    }
}

/// Create `dest` (0700 until its own metadata is applied last) or check it is empty.
fn open_empty_dest(dest: &Path) -> Result<OwnedFd, UnpackError> {
    match rustix::fs::mkdir(dest, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            let mut entries = std::fs::read_dir(dest).map_err(|e| UnpackError::Io {
                op: "list",
                path: dest.to_owned(),
                source: e,
            })?;
            if entries.next().is_some() {
                return Err(UnpackError::NotEmpty(dest.to_owned()));
            }
        }
        Err(e) => return Err(io("create", dest)(e)),
    }
    rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", dest))
}

/// A directory's metadata, applied after its contents are written.
struct DirMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl DirMeta {
    fn of(e: &Entry<'_>) -> DirMeta {
        DirMeta {
            mode: e.mode() & 0o7777,
            uid: e.uid(),
            gid: e.gid(),
            mtime: Timespec {
                tv_sec: e.mtime_sec(),
                tv_nsec: e.mtime_nsec().into(),
            },
            xattrs: e.xattrs().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        }
    }
}

struct Writer<'a> {
    root: OwnedFd,
    dest: &'a Path,
    layers: &'a [PathBuf],
    rootless: bool,
    /// (layer, host inode) → the first path written for a hardlink group.
    links: HashMap<(usize, u64), Vec<u8>>,
    /// Directories in pre-order, finished in reverse (children before parents).
    dirs: Vec<(Vec<u8>, DirMeta)>,
    report: UnpackReport,
}

fn rel(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

/// Split `path` into its parent (empty for the root) and its last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

impl Writer<'_> {
    fn shown(&self, path: &[u8]) -> PathBuf {
        self.dest.join(rel(path))
    }

    /// The directory `parent` (relative), resolved beneath the destination without following
    /// any symlink.
    fn parent_fd(&self, parent: &[u8]) -> Result<OwnedFd, UnpackError> {
        let p: &Path = if parent.is_empty() {
            Path::new(".")
        } else {
            rel(parent)
        };
        rustix::fs::openat2(
            &self.root,
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(io("open", &self.shown(parent)))
    }

    fn entry(&mut self, path: &[u8], e: &Entry<'_>) -> Result<(), UnpackError> {
        let (parent, name) = split(path);
        let dir = self.parent_fd(parent)?;
        let name = rel(name);
        let shown = self.shown(path);
        self.report.entries += 1;
        match e.kind() {
            EntryKind::Dir => {
                rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                    .map_err(io("create", &shown))?;
                self.dirs.push((path.to_vec(), DirMeta::of(e)));
                return Ok(());
            }
            EntryKind::Symlink => {
                let target = OsStr::from_bytes(e.link_target().unwrap_or_default());
                rustix::fs::symlinkat(target, &dir, name).map_err(io("create", &shown))?;
            }
            EntryKind::Fifo => {
                rustix::fs::mknodat(
                    &dir,
                    name,
                    rustix::fs::FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(io("create", &shown))?;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice if !self.rootless => {
                let ft = if e.kind() == EntryKind::CharDevice {
                    rustix::fs::FileType::CharacterDevice
                } else {
                    rustix::fs::FileType::BlockDevice
                };
                let dev = decode_dev(e.rdev());
                rustix::fs::mknodat(&dir, name, ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(io("create", &shown))?;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                create_file(&dir, name, &shown)?;
            }
            _ => {
                if self.hardlinked(e, &dir, name, &shown)? {
                    return Ok(());
                }
                let file = create_file(&dir, name, &shown)?;
                self.copy_content(path, e, file, &shown)?;
            }
        }
        self.apply_meta(
            &dir,
            name,
            &shown,
            &DirMeta::of(e),
            e.kind() == EntryKind::Symlink,
        )
    }

    /// A second name of a hardlink group already written: link it (its metadata is shared).
    fn hardlinked(
        &mut self,
        e: &Entry<'_>,
        dir: &OwnedFd,
        name: &Path,
        shown: &Path,
    ) -> Result<bool, UnpackError> {
        if e.nlink() < 2 && !e.is_hardlink() {
            return Ok(false);
        }
        let key = (e.layer(), e.inode());
        let Some(first) = self.links.get(&key) else {
            self.links.insert(key, e.path());
            return Ok(false);
        };
        let (fp, fname) = split(first);
        let fdir = self.parent_fd(fp)?;
        rustix::fs::linkat(&fdir, rel(fname), dir, name, AtFlags::empty())
            .map_err(io("link", shown))?;
        Ok(true)
    }

    fn copy_content(
        &mut self,
        path: &[u8],
        e: &Entry<'_>,
        mut to: std::fs::File,
        shown: &Path,
    ) -> Result<(), UnpackError> {
        let from_path = self.layers[e.layer()].join(rel(path));
        let mut from = std::fs::File::open(&from_path).map_err(|source| UnpackError::Io {
            op: "read",
            path: from_path.clone(),
            source,
        })?;
        let n = std::io::copy(&mut from, &mut to).map_err(|source| UnpackError::Io {
            op: "write",
            path: shown.to_owned(),
            source,
        })?;
        self.report.bytes += n;
        Ok(())
    }

    /// Owner, mode, xattrs and times of a non-directory (directories: [`Self::finish_dirs`]).
    fn apply_meta(
        &mut self,
        dir: &OwnedFd,
        name: &Path,
        shown: &Path,
        m: &DirMeta,
        symlink: bool,
    ) -> Result<(), UnpackError> {
        self.set_owner(dir, name, shown, m, symlink)?;
        if !symlink {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(m.mode), AtFlags::empty())
                .map_err(io("chmod", shown))?;
            self.set_xattrs(shown, &m.xattrs)?;
        }
        let ts = Timestamps {
            last_access: m.mtime,
            last_modification: m.mtime,
        };
        rustix::fs::utimensat(dir, name, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io("set times on", shown))
    }

    fn set_owner(
        &mut self,
        dir: &OwnedFd,
        name: &Path,
        shown: &Path,
        m: &DirMeta,
        symlink: bool,
    ) -> Result<(), UnpackError> {
        if !self.rootless {
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(m.uid),
                rustix::fs::Gid::from_raw(m.gid),
            );
            return rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io("chown", shown));
        }
        // user.* xattrs cannot be set on symlinks: their owner is not kept (as umoci).
        if symlink || (m.uid == 0 && m.gid == 0) {
            return Ok(());
        }
        rustix::fs::lsetxattr(
            shown,
            "user.rootlesscontainers",
            &rootless_owner(m.uid, m.gid),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(io("set the owner xattr on", shown))
    }

    fn set_xattrs(
        &mut self,
        shown: &Path,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), UnpackError> {
        for (k, v) in xattrs {
            match rustix::fs::lsetxattr(
                shown,
                OsStr::from_bytes(k),
                v,
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => {
                    let name = String::from_utf8_lossy(k);
                    self.report
                        .skipped_xattrs
                        .push(format!("{}: {name}", shown.display()));
                }
                Err(e) => return Err(io("set an xattr on", shown)(e)),
            }
        }
        Ok(())
    }

    /// Apply directories' metadata, deepest first (a directory's mtime and a read-only mode
    /// must come after its contents).
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (path, m) in dirs.iter().rev() {
            let shown = self.shown(path);
            if path.is_empty() {
                let here = self.root.as_fd();
                let dot = Path::new(".");
                let fd = rustix::io::dup(here).map_err(io("open", &shown))?;
                self.apply_meta(&fd, dot, &shown, m, false)?;
                continue;
            }
            let (parent, name) = split(path);
            let dir = self.parent_fd(parent)?;
            self.apply_meta(&dir, rel(name), &shown, m, false)?;
        }
        Ok(())
    }
}

fn create_file(dir: &OwnedFd, name: &Path, shown: &Path) -> Result<std::fs::File, UnpackError> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io("create", shown))?;
    Ok(std::fs::File::from(fd))
}

/// The kernel's `new_decode_dev` (the inverse of [`crate::stat::encode_dev`]), as the
/// `dev_t` `mknod` takes.
fn decode_dev(rdev: u32) -> rustix::fs::Dev {
    let major = (rdev & 0xfff00) >> 8;
    let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
    rustix::fs::makedev(major, minor)
}

/// The `user.rootlesscontainers` value: protobuf `Resource { uint32 uid = 1; uint32 gid = 2; }`.
fn rootless_owner(uid: u32, gid: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, v) in [(0x08u8, uid), (0x10, gid)] {
        out.push(tag);
        let mut v = u64::from(v);
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_decode_as_the_kernel_encodes() {
        for (major, minor) in [(1, 3), (8, 0), (253, 300), (4095, 1_048_575)] {
            let encoded = crate::stat::encode_dev(major, minor);
            let dev = decode_dev(encoded);
            assert_eq!(
                (rustix::fs::major(dev), rustix::fs::minor(dev)),
                (major, minor)
            );
        }
    }

    #[test]
    fn rootless_owner_is_the_protobuf_umoci_reads() {
        assert_eq!(
            rootless_owner(1000, 1000),
            [0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07]
        );
        assert_eq!(rootless_owner(0, 5), [0x08, 0x00, 0x10, 0x05]);
    }
}
