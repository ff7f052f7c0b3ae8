//! Turning a tar stream into a layer directory, entry by entry, in the rootless format of
//! `cache/LAYOUT.md`: every file is created by us, under the staging root's directory fd,
//! with host-safe permissions; the image's metadata goes into xattrs. Symlinks become regular
//! files holding their target, so the tree holds no symlink a later write could follow, and
//! every path is checked before use (no absolute paths, no `..`), so nothing can be written
//! outside the root. A [`TarGuard`](super::tar_guard::TarGuard) sits under the tar reader
//! (see `tar_guard.rs`), so memory stays bounded whatever the stream claims.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::LayerError;
use super::stat::{OverrideStat, XATTR_PREFIX, encode_dev, mode, store_xattr};
use super::tar_guard::stream_err;
pub(crate) use super::tar_guard::{check_guard_transparent, open_archive};
use crate::index::{EntryMeta, IndexBuilder};

/// Marks a directory the layer did not list but needed as a parent. Its metadata is a
/// placeholder (root-owned 0755); a merged view takes it from the lower layer instead.
pub const IMPLICIT_DIR_XATTR: &str = "user.msb.implicit";

/// Limits that stop hostile layers. Every limit names itself in the error it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most tar entries in one layer.
    pub max_entries: u64,
    /// Most uncompressed file bytes in one layer.
    pub max_total_bytes: u64,
    /// Largest single file.
    pub max_file_size: u64,
    /// Most path components of one entry.
    pub max_depth: usize,
    /// Longest path of one entry, in bytes.
    pub max_path_len: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_entries: 4_000_000,
            max_total_bytes: 256 << 30,
            max_file_size: 64 << 30,
            max_depth: 512,
            max_path_len: 4096,
        }
    }
}

/// What extraction produced.
#[derive(Debug, Default)]
pub(crate) struct ExtractStats {
    /// The layer's index, fed entry by entry (when asked for).
    pub index: Option<IndexBuilder>,
    /// Tar entries applied (extension headers not counted).
    pub entries: u64,
    /// File content bytes written.
    pub file_bytes: u64,
    /// Directories created without an entry of their own.
    pub implicit_dirs: u64,
}

/// Metadata of one tar entry after PAX records are applied.
struct Meta {
    stat: OverrideStat,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const COPY_BUF: usize = 256 * 1024;

/// Applies tar entries under one root directory.
pub(crate) struct Extractor {
    root: OwnedFd,
    root_path: PathBuf,
    limits: ExtractLimits,
    implicit: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, Timespec)>,
    stats: ExtractStats,
    buf: Vec<u8>,
}

fn inode_of(fd: impl AsFd, rel: &Path) -> Result<u64, LayerError> {
    Ok(rustix::fs::fstat(fd).map_err(io_err(rel, "stat"))?.st_ino)
}

fn path_bytes(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}

impl Meta {
    fn index_meta(&self, size: u64, inode: u64, link_target: Option<Vec<u8>>) -> EntryMeta {
        EntryMeta {
            mode: self.stat.mode,
            uid: self.stat.uid,
            gid: self.stat.gid,
            size,
            rdev: self.stat.rdev,
            mtime_sec: self.mtime.tv_sec,
            mtime_nsec: u32::try_from(self.mtime.tv_nsec).unwrap_or(0),
            inode,
            link_target,
            xattrs: self.xattrs.clone(),
            implicit: false,
        }
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> LayerError + 'a {
    move |e| match e {
        // Names are checked against NAME_MAX and `max_path_len` first; this is what is left
        // when `max_path_len` is set above what the host accepts (PATH_MAX).
        Errno::NAMETOOLONG => LayerError::UnsafePath {
            path: path.to_string_lossy().into_owned(),
            reason: "path too long for the host filesystem",
        },
        e => LayerError::Io {
            op,
            path: path.to_string_lossy().into_owned(),
            source: e.into(),
        },
    }
}

/// Longest name of one path component Linux filesystems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Split a tar path into safe relative components. `None` means the root itself.
fn sanitize(raw: &[u8], limits: &ExtractLimits) -> Result<Option<PathBuf>, LayerError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let unsafe_path = |reason: &'static str| LayerError::UnsafePath {
        path: shown(),
        reason,
    };
    if raw.is_empty() {
        return Err(unsafe_path("empty path"));
    }
    if raw.contains(&0) {
        return Err(unsafe_path("NUL byte in path"));
    }
    if raw[0] == b'/' {
        return Err(unsafe_path("absolute path"));
    }
    if raw.len() > limits.max_path_len {
        return Err(LayerError::Limit {
            limit: "max_path_len",
            value: raw.len() as u64,
            max: limits.max_path_len as u64,
            path: Some(shown()),
        });
    }
    let mut out = PathBuf::new();
    let mut depth = 0usize;
    let mut parent_is_whiteout = false;
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(unsafe_path("`..` component")),
            c if c.len() > NAME_MAX => {
                return Err(unsafe_path(
                    "path component longer than 255 bytes (NAME_MAX)",
                ));
            }
            // `.wh.<name>` is a whiteout marker, never a directory: a path through one would
            // put entries under a name the index reads as a deletion.
            _ if parent_is_whiteout => {
                return Err(unsafe_path("whiteout name used as a parent directory"));
            }
            c => {
                depth += 1;
                parent_is_whiteout = c.starts_with(b".wh.");
                out.push(OsStr::from_bytes(c));
            }
        }
    }
    if depth > limits.max_depth {
        return Err(LayerError::Limit {
            limit: "max_depth",
            value: depth as u64,
            max: limits.max_depth as u64,
            path: Some(shown()),
        });
    }
    Ok((depth > 0).then_some(out))
}

/// A numeric tar header field: octal text (NUL- or space-padded, empty meaning 0, as GNU tar
/// and Go's archive/tar read it) or GNU base-256 binary (high bit of the first byte set).
fn numeric_field(raw: &[u8]) -> Option<u64> {
    if let Some(&first) = raw.first()
        && first & 0x80 != 0
    {
        if first & 0x40 != 0 {
            return None; // negative base-256 numbers are not valid ids, modes or times here
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for &b in &raw[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = raw.split(|b| *b == 0).next().unwrap_or(&[]);
    let text = text.trim_ascii();
    if text.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let mut tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for _ in digits.len()..9 {
        tv_nsec *= 10;
    }
    if secs.starts_with('-') && tv_nsec > 0 {
        // "-1.5" means 1.5 s before the epoch ("-0.5" too: its integer part reads as 0).
        return Some(Timespec {
            tv_sec: tv_sec.checked_sub(1)?,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    Some(Timespec { tv_sec, tv_nsec })
}

impl Extractor {
    /// An extractor writing under `root`, an existing empty directory; it also feeds an
    /// [`IndexBuilder`] when `build_index`.
    pub(crate) fn new(
        root: &Path,
        limits: ExtractLimits,
        build_index: bool,
    ) -> Result<Self, LayerError> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(root, "open"))?;
        Ok(Extractor {
            root: fd,
            root_path: root.to_owned(),
            limits,
            implicit: HashSet::new(),
            dir_times: Vec::new(),
            stats: ExtractStats {
                index: build_index.then(IndexBuilder::new),
                ..ExtractStats::default()
            },
            buf: vec![0u8; COPY_BUF],
        })
    }

    /// Apply every entry of `archive`, calling `progress(entries, tar_offset)` now and then.
    pub(crate) fn run<R: Read>(
        mut self,
        archive: &mut tar::Archive<R>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ExtractStats, LayerError> {
        let mut last_report = 0u64;
        for entry in archive.entries().map_err(stream_err)? {
            let mut entry = entry.map_err(stream_err)?;
            self.apply(&mut entry)?;
            // (A sparse entry's size is its expanded size, so this can run ahead of the tar.)
            let pos = entry.raw_file_position().saturating_add(entry.size());
            if pos.saturating_sub(last_report) >= (1 << 20) {
                last_report = pos;
                progress(self.stats.entries, pos);
            }
        }
        self.finish_dir_times()?;
        Ok(self.stats)
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        type_bits: u32,
    ) -> Result<Meta, LayerError> {
        let h = entry.header();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let old = h.as_old();
        let field = |raw: &[u8], what: &'static str| {
            numeric_field(raw).ok_or_else(|| LayerError::Tar {
                detail: format!(
                    "{path}: bad {what} field {:?}",
                    String::from_utf8_lossy(raw)
                ),
            })
        };
        let to_u32 = |v: u64, what: &'static str| {
            u32::try_from(v).map_err(|_| LayerError::Tar {
                detail: format!("{path}: {what} {v} does not fit in 32 bits"),
            })
        };
        let perm = field(&old.mode, "mode")? as u32 & 0o7777;
        let uid = to_u32(field(&old.uid, "uid")?, "uid")?;
        let gid = to_u32(field(&old.gid, "gid")?, "gid")?;
        let mut mtime = Timespec {
            tv_sec: field(&old.mtime, "mtime")? as i64,
            tv_nsec: 0,
        };
        let rdev = if matches!(type_bits, mode::S_IFCHR | mode::S_IFBLK) {
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            encode_dev(major, minor)
        } else {
            0
        };
        let mut xattrs = Vec::new();
        let bad_xattr_name = |name: &[u8]| LayerError::Tar {
            detail: format!(
                "{path}: xattr name {:?} is empty or has a NUL byte",
                String::from_utf8_lossy(name)
            ),
        };
        if let Some(exts) = entry.pax_extensions().map_err(stream_err)? {
            for ext in exts {
                let ext = ext.map_err(stream_err)?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.is_empty() || name.contains(&0) {
                        return Err(bad_xattr_name(name));
                    }
                    xattrs.retain(|(n, _)| n != name);
                    // A zero-length value deletes the keyword (POSIX pax; Go's archive/tar,
                    // hence umoci and containerd, read it so).
                    if !ext.value_bytes().is_empty() {
                        xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    if name.is_empty() || name.contains(&0) {
                        return Err(bad_xattr_name(name));
                    }
                    xattrs.retain(|(n, _)| n != name);
                    if ext.value_bytes().is_empty() {
                        continue;
                    }
                    let value = base64::engine::general_purpose::STANDARD
                        .decode(ext.value_bytes())
                        .map_err(|e| LayerError::Tar {
                            detail: format!("{path}: bad LIBARCHIVE.xattr value: {e}"),
                        })?;
                    xattrs.push((name.to_vec(), value));
                } else if key.starts_with(b"GNU.sparse.") {
                    // PAX-format sparse files (GNU 0.x/1.0) keep the real name and the block
                    // map in records the tar crate does not apply: extracting the entry as
                    // it stands would write the map as content under a placeholder name.
                    return Err(LayerError::Tar {
                        detail: format!(
                            "{path}: PAX-format sparse file ({}) is not supported",
                            String::from_utf8_lossy(key)
                        ),
                    });
                }
            }
        }
        Ok(Meta {
            stat: OverrideStat {
                uid,
                gid,
                mode: type_bits | perm,
                rdev,
            },
            mtime,
            xattrs,
        })
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        self.stats.entries += 1;
        if self.stats.entries > self.limits.max_entries {
            return Err(LayerError::Limit {
                limit: "max_entries",
                value: self.stats.entries,
                max: self.limits.max_entries,
                path: None,
            });
        }
        let raw_path = entry.path_bytes().into_owned();
        let rel = sanitize(&raw_path, &self.limits)?;
        // A pre-POSIX regular file (type NUL) named `dir/` is a directory, as GNU tar and
        // Go's archive/tar (so umoci and containerd) read it.
        let kind = if kind == T::Regular
            && entry.header().as_old().linkflag[0] == 0
            && raw_path.ends_with(b"/")
        {
            T::Directory
        } else {
            kind
        };
        let type_bits = match kind {
            T::Regular | T::Continuous | T::GNUSparse => mode::S_IFREG,
            T::Directory => mode::S_IFDIR,
            T::Symlink => mode::S_IFLNK,
            T::Char => mode::S_IFCHR,
            T::Block => mode::S_IFBLK,
            T::Fifo => mode::S_IFIFO,
            T::Link => 0,
            other => {
                return Err(LayerError::Tar {
                    detail: format!(
                        "{}: unsupported tar entry type {:?}",
                        String::from_utf8_lossy(&raw_path),
                        other.as_byte() as char
                    ),
                });
            }
        };
        let Some(rel) = rel else {
            // The layer's root directory itself (`./`).
            if type_bits != mode::S_IFDIR {
                return Err(LayerError::UnsafePath {
                    path: String::from_utf8_lossy(&raw_path).into_owned(),
                    reason: "non-directory entry for the layer root",
                });
            }
            let meta = self.meta(entry, type_bits)?;
            let root = self.root.try_clone().map_err(|e| LayerError::Io {
                op: "dup",
                path: self.root_path.to_string_lossy().into_owned(),
                source: e,
            })?;
            clear_image_xattrs(root.as_fd(), Path::new("."))?;
            self.set_meta(&root, Path::new("."), &meta)?;
            if let Some(index) = &mut self.stats.index {
                let inode = inode_of(&root, Path::new("."))?;
                index.add(b"", meta.index_meta(0, inode, None))?;
            }
            self.dir_times.push((PathBuf::from("."), meta.mtime));
            return Ok(());
        };
        match kind {
            T::Link => self.hardlink(entry, &rel),
            T::Directory => {
                let meta = self.meta(entry, type_bits)?;
                self.directory(&rel, &meta)
            }
            _ => {
                let meta = self.meta(entry, type_bits)?;
                self.file(entry, &rel, &meta)
            }
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        meta: &Meta,
    ) -> Result<(), LayerError> {
        let type_bits = meta.stat.mode & mode::S_IFMT;
        let mut link_target = None;
        let mut size = 0;
        // Everything is checked before the file exists.
        if type_bits == mode::S_IFLNK {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            self.check_link_target(&target, rel)?;
            link_target = Some(target);
        } else if type_bits == mode::S_IFREG {
            size = entry.size();
            if size > self.limits.max_file_size {
                return Err(LayerError::Limit {
                    limit: "max_file_size",
                    value: size,
                    max: self.limits.max_file_size,
                    path: Some(rel.to_string_lossy().into_owned()),
                });
            }
            let total = self.stats.file_bytes.saturating_add(size);
            if total > self.limits.max_total_bytes {
                return Err(LayerError::Limit {
                    limit: "max_total_bytes",
                    value: total,
                    max: self.limits.max_total_bytes,
                    path: Some(rel.to_string_lossy().into_owned()),
                });
            }
        }
        let fd = self.create(rel)?;
        let mut file = File::from(fd);
        if let Some(target) = &link_target {
            file.write_all(target).map_err(|e| LayerError::Io {
                op: "write",
                path: rel.to_string_lossy().into_owned(),
                source: e,
            })?;
        } else if type_bits == mode::S_IFREG {
            self.copy(entry, &mut file, rel, size)?;
        }
        self.set_meta(&file, rel, meta)?;
        if let Some(index) = &mut self.stats.index {
            let inode = inode_of(&file, rel)?;
            index.add(path_bytes(rel), meta.index_meta(size, inode, link_target))?;
        }
        Ok(())
    }

    /// A symlink target: what the kernel could hold as one (no NUL, not empty, shorter than
    /// `max_path_len`), kept byte for byte otherwise.
    fn check_link_target(&self, target: &[u8], rel: &Path) -> Result<(), LayerError> {
        let refuse = |reason| LayerError::UnsafePath {
            path: format!("{} -> {}", rel.display(), String::from_utf8_lossy(target)),
            reason,
        };
        if target.is_empty() {
            return Err(refuse("empty symlink target"));
        }
        if target.contains(&0) {
            return Err(refuse("NUL byte in symlink target"));
        }
        if target.len() > self.limits.max_path_len {
            return Err(LayerError::Limit {
                limit: "max_path_len",
                value: target.len() as u64,
                max: self.limits.max_path_len as u64,
                path: Some(rel.to_string_lossy().into_owned()),
            });
        }
        Ok(())
    }

    /// Copy an entry's `size` content bytes; a body that ends early is an error (the tar
    /// reader itself would take a short read at the end of the stream as the entry's end).
    fn copy<R: Read>(
        &mut self,
        src: &mut R,
        dst: &mut File,
        rel: &Path,
        size: u64,
    ) -> Result<(), LayerError> {
        let mut copied = 0u64;
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) if copied == size => return Ok(()),
                Ok(0) => {
                    return Err(LayerError::Tar {
                        detail: format!(
                            "unexpected end of archive in {:?}: {copied} of {size} content bytes",
                            rel.to_string_lossy()
                        ),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_err(e)),
            };
            copied += n as u64;
            self.stats.file_bytes += n as u64;
            dst.write_all(&self.buf[..n]).map_err(|e| LayerError::Io {
                op: "write",
                path: rel.to_string_lossy().into_owned(),
                source: e,
            })?;
        }
    }

    fn set_meta(&self, fd: impl AsFd, rel: &Path, meta: &Meta) -> Result<(), LayerError> {
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
    fn create(&mut self, rel: &Path) -> Result<OwnedFd, LayerError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut parents_made = false;
        let mut replaced = false;
        loop {
            match rustix::fs::openat(&self.root, rel, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok(fd),
                Err(Errno::EXIST) if !replaced => {
                    replaced = true;
                    self.remove(rel)?;
                }
                Err(Errno::NOENT) if !parents_made => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) => return Err(not_a_dir(rel)),
                Err(e) => return Err(io_err(rel, "create")(e)),
            }
        }
    }

    fn directory(&mut self, rel: &Path, meta: &Meta) -> Result<(), LayerError> {
        let mut parents_made = false;
        let mut replaced = false;
        let mut existed = false;
        loop {
            match rustix::fs::mkdirat(&self.root, rel, Mode::from_raw_mode(0o700)) {
                Ok(()) => break,
                Err(Errno::EXIST) => {
                    if self.is_dir(rel)? {
                        existed = true;
                        break;
                    }
                    if replaced {
                        return Err(io_err(rel, "mkdir")(Errno::EXIST));
                    }
                    replaced = true;
                    self.remove(rel)?;
                }
                Err(Errno::NOENT) if !parents_made => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) => return Err(not_a_dir(rel)),
                Err(e) => return Err(io_err(rel, "mkdir")(e)),
            }
        }
        let fd = self.open_dir(rel)?;
        if self.implicit.remove(rel) {
            match rustix::fs::fremovexattr(&fd, IMPLICIT_DIR_XATTR) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(io_err(rel, "remove xattr from")(e)),
            }
            self.stats.implicit_dirs -= 1;
        }
        if existed {
            // The last entry wins: its xattrs replace the earlier entry's, as in the index.
            clear_image_xattrs(fd.as_fd(), rel)?;
        }
        self.set_meta(&fd, rel, meta)?;
        if let Some(index) = &mut self.stats.index {
            let inode = inode_of(&fd, rel)?;
            index.add(path_bytes(rel), meta.index_meta(0, inode, None))?;
        }
        self.dir_times.push((rel.to_owned(), meta.mtime));
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
    ) -> Result<(), LayerError> {
        let raw_target = entry.link_name_bytes().unwrap_or_default().into_owned();
        let target =
            sanitize(&raw_target, &self.limits)?.ok_or_else(|| LayerError::UnsafePath {
                path: String::from_utf8_lossy(&raw_target).into_owned(),
                reason: "hardlink to the layer root",
            })?;
        if target == rel {
            return Ok(());
        }
        let mut parents_made = false;
        let mut replaced = false;
        loop {
            match rustix::fs::linkat(&self.root, &target, &self.root, rel, AtFlags::empty()) {
                Ok(()) => {
                    if let Some(index) = &mut self.stats.index {
                        index.add_hardlink(path_bytes(rel), path_bytes(&target))?;
                    }
                    return Ok(());
                }
                Err(Errno::EXIST) if !replaced => {
                    replaced = true;
                    self.remove(rel)?;
                }
                Err(Errno::NOENT) if !parents_made && self.exists(&target)? => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOENT) => {
                    return Err(LayerError::UnsafePath {
                        path: format!(
                            "{} -> {}",
                            rel.display(),
                            String::from_utf8_lossy(&raw_target)
                        ),
                        reason: "hardlink target is not an earlier entry of this layer",
                    });
                }
                Err(Errno::PERM) => {
                    return Err(LayerError::UnsafePath {
                        path: format!("{} -> {}", rel.display(), target.display()),
                        reason: "hardlink to a directory",
                    });
                }
                Err(Errno::NOTDIR) => {
                    return Err(LayerError::UnsafePath {
                        path: format!("{} -> {}", rel.display(), target.display()),
                        reason: "a parent directory of the hardlink or its target is a \
                                 non-directory entry of this layer",
                    });
                }
                Err(e) => return Err(io_err(rel, "link")(e)),
            }
        }
    }

    fn open_dir(&self, rel: &Path) -> Result<OwnedFd, LayerError> {
        rustix::fs::openat(
            &self.root,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(rel, "open"))
    }

    fn stat(&self, rel: &Path) -> Result<Option<rustix::fs::Stat>, LayerError> {
        match rustix::fs::statat(&self.root, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTDIR) => Err(not_a_dir(rel)),
            Err(e) => Err(io_err(rel, "stat")(e)),
        }
    }

    fn exists(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self.stat(rel)?.is_some())
    }

    fn is_dir(&self, rel: &Path) -> Result<bool, LayerError> {
        Ok(self
            .stat(rel)?
            .is_some_and(|st| st.st_mode & mode::S_IFMT == mode::S_IFDIR))
    }

    /// Remove what is at `rel` (an earlier entry with the same path: the last one wins).
    fn remove(&mut self, rel: &Path) -> Result<(), LayerError> {
        if self.is_dir(rel)? {
            remove_tree(self.root.as_fd(), rel).map_err(io_err(rel, "replace"))?;
            let before = self.implicit.len();
            self.implicit.retain(|p| !p.starts_with(rel));
            self.stats.implicit_dirs -= (before - self.implicit.len()) as u64;
            self.dir_times.retain(|(p, _)| !p.starts_with(rel));
            Ok(())
        } else {
            match rustix::fs::unlinkat(&self.root, rel, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(io_err(rel, "replace")(e)),
            }
        }
    }

    /// Create the missing parents of `rel` as implicit directories.
    fn make_parents(&mut self, rel: &Path) -> Result<(), LayerError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut prefix = PathBuf::new();
        for comp in parent.components() {
            prefix.push(comp);
            match rustix::fs::mkdirat(&self.root, &prefix, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    let fd = self.open_dir(&prefix)?;
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
                    rustix::fs::fsetxattr(
                        &fd,
                        IMPLICIT_DIR_XATTR,
                        b"1",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(io_err(&prefix, "set xattr on"))?;
                    if let Some(index) = &mut self.stats.index {
                        let meta = EntryMeta {
                            mode: mode::S_IFDIR | 0o755,
                            inode: inode_of(&fd, &prefix)?,
                            implicit: true,
                            ..EntryMeta::default()
                        };
                        index.add(path_bytes(&prefix), meta)?;
                    }
                    self.implicit.insert(prefix.clone());
                    self.stats.implicit_dirs += 1;
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

    fn finish_dir_times(&self) -> Result<(), LayerError> {
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

fn not_a_dir(rel: &Path) -> LayerError {
    LayerError::UnsafePath {
        path: rel.to_string_lossy().into_owned(),
        reason: "a parent directory is a non-directory entry of this layer",
    }
}

/// Drop the image xattrs (`user.msb.xattr.*`) an earlier entry left on `fd`.
fn clear_image_xattrs(fd: BorrowedFd<'_>, rel: &Path) -> Result<(), LayerError> {
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

#[cfg(test)]
mod tests {
    use super::super::tar_guard::{MAX_PAX_HEADER, MAX_SPARSE_EXT_BLOCKS};
    use super::*;

    fn limits() -> ExtractLimits {
        ExtractLimits::default()
    }

    #[test]
    fn sanitize_accepts_relative_and_rejects_escapes() {
        assert_eq!(sanitize(b"./", &limits()).unwrap(), None);
        assert_eq!(sanitize(b".", &limits()).unwrap(), None);
        assert_eq!(
            sanitize(b"./usr//bin/./sh", &limits()).unwrap(),
            Some(PathBuf::from("usr/bin/sh"))
        );
        let long = [b'n'; 256];
        let through_whiteout = b"a/.wh.b/c";
        for bad in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a/..",
            b"",
            b"a\0b",
            &long[..],
            through_whiteout,
        ] {
            assert!(
                sanitize(bad, &limits()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let tight = ExtractLimits {
            max_depth: 2,
            ..limits()
        };
        assert!(matches!(
            sanitize(b"a/b/c", &tight),
            Err(LayerError::Limit {
                limit: "max_depth",
                ..
            })
        ));
    }

    fn gnu(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        h
    }

    /// A GNU sparse entry whose map needs an extension block: 6 chunks of 512 bytes.
    fn sparse_with_extension(out: &mut Vec<u8>) {
        let mut h = gnu("sparse", tar::EntryType::GNUSparse, 6 * 512);
        let chunks: Vec<u64> = (0..6).map(|i| i * 4096).collect();
        {
            let g = h.as_gnu_mut().unwrap();
            for (i, off) in chunks.iter().take(4).enumerate() {
                g.sparse[i].set_offset(*off);
                g.sparse[i].set_length(512);
            }
            g.set_is_extended(true);
            g.set_real_size(5 * 4096 + 512);
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        let mut ext = tar::GnuExtSparseHeader::new();
        for (i, off) in chunks.iter().skip(4).enumerate() {
            ext.sparse[i].set_offset(*off);
            ext.sparse[i].set_length(512);
        }
        out.extend_from_slice(ext.as_bytes());
        out.extend((0..6 * 512).map(|i| (i % 7) as u8));
    }

    #[test]
    fn the_guard_is_invisible_on_valid_archives() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(150));
        let mut h = gnu("x", tar::EntryType::Regular, 3);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = gnu("x", tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "l", "t".repeat(300)).unwrap();
        b.append_pax_extensions([("path", &b"pax/path"[..]), ("SCHILY.xattr.user.a", b"v")])
            .unwrap();
        b.append(&gnu("ignored", tar::EntryType::Regular, 5), &b"hello"[..])
            .unwrap();
        // A PAX size that overrides a wrong header size.
        b.append_pax_extensions([("size", &b"700"[..])]).unwrap();
        let mut body = vec![9u8; 700];
        body.resize(1024, 0);
        let h = gnu("pax-sized", tar::EntryType::Regular, 3);
        let mut raw = b.into_inner().unwrap();
        raw.truncate(raw.len() - 1024); // drop the end blocks to go on by hand
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&body);
        sparse_with_extension(&mut raw);
        raw.extend_from_slice(gnu("empty", tar::EntryType::Regular, 0).as_bytes());
        raw.extend_from_slice(gnu("g", tar::EntryType::XGlobalHeader, 5).as_bytes());
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);
        raw.extend_from_slice(b"trailing bytes after the archive");
        let mut bare = tar::Archive::new(&raw[..]);
        let kinds: Vec<String> = bare
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!("{}:{}", String::from_utf8_lossy(&e.path_bytes()), e.size())
            })
            .collect();
        assert_eq!(
            kinds[2..],
            [
                "pax/path:5",
                "pax-sized:700",
                "sparse:20992",
                "empty:0",
                "g:5"
            ],
            "{kinds:?}"
        );
        check_guard_transparent(&raw, &limits()).unwrap();
        // And every prefix of it (truncations end both readers the same way).
        for cut in (0..raw.len()).step_by(97) {
            check_guard_transparent(&raw[..cut], &limits())
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        }
    }

    fn extract(tar: &[u8], limits: ExtractLimits) -> Result<ExtractStats, LayerError> {
        let dir = tempfile::tempdir().unwrap();
        let mut archive = open_archive(tar, &limits);
        Extractor::new(dir.path(), limits, true)?.run(&mut archive, &mut |_, _| {})
    }

    #[test]
    fn the_guard_refuses_extension_headers_too_large_to_buffer() {
        let tight = ExtractLimits {
            max_path_len: 100,
            ..limits()
        };
        let mut tar = gnu("././@LongLink", tar::EntryType::GNULongName, 102)
            .as_bytes()
            .to_vec();
        tar.extend_from_slice(&[b'n'; 512]);
        assert!(matches!(
            extract(&tar, tight),
            Err(LayerError::Limit {
                limit: "max_path_len",
                value: 102,
                path: None,
                ..
            })
        ));
        let mut tar = gnu("PaxHeaders/x", tar::EntryType::XHeader, MAX_PAX_HEADER + 1)
            .as_bytes()
            .to_vec();
        tar.extend_from_slice(&[b'p'; 4096]);
        let err = extract(&tar, limits()).unwrap_err();
        assert!(err.to_string().contains("PAX extended header of"), "{err}");
        // A sparse map that never ends.
        let mut h = gnu("s", tar::EntryType::GNUSparse, 0);
        h.as_gnu_mut().unwrap().set_is_extended(true);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.set_is_extended(true);
        for _ in 0..=MAX_SPARSE_EXT_BLOCKS {
            tar.extend_from_slice(ext.as_bytes());
        }
        let err = extract(&tar, limits()).unwrap_err();
        assert!(err.to_string().contains("GNU sparse map longer"), "{err}");
    }

    #[test]
    fn a_body_shorter_than_its_size_is_an_error() {
        let mut tar = gnu("f", tar::EntryType::Regular, 5000).as_bytes().to_vec();
        tar.extend_from_slice(&[1; 100]);
        let err = extract(&tar, limits()).unwrap_err();
        assert!(
            err.to_string()
                .contains("unexpected end of archive in \"f\": 100 of 5000"),
            "{err}"
        );
    }

    #[test]
    fn numeric_fields_are_read_like_gnu_tar() {
        assert_eq!(numeric_field(b"0000644\0"), Some(0o644));
        assert_eq!(numeric_field(b"   755 \0"), Some(0o755));
        assert_eq!(
            numeric_field(b"\0\0\0\0\0\0\0\0"),
            Some(0),
            "all-NUL means 0"
        );
        assert_eq!(numeric_field(b"        "), Some(0));
        assert_eq!(numeric_field(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]), Some(256));
        assert_eq!(numeric_field(b"12x4\0"), None);
        assert_eq!(numeric_field(&[0xff; 8]), None, "negative binary");
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(Timespec {
                tv_sec: 1_700_000_000,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Timespec {
                tv_sec: 12,
                tv_nsec: 0
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(
            parse_pax_time(b"-0.5"),
            Some(Timespec {
                tv_sec: -1,
                tv_nsec: 500_000_000
            })
        );
        assert_eq!(parse_pax_time(b"-9223372036854775808.5"), None);
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Timespec {
                tv_sec: -2,
                tv_nsec: 750_000_000
            })
        );
    }
}
