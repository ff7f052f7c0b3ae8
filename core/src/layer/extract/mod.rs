//! Turning a tar stream into a layer directory, entry by entry, in the rootless format of
//! `cache/LAYOUT.md`: every file is created by us, under the staging root's directory fd,
//! with host-safe permissions; the image's metadata goes into xattrs. Symlinks become regular
//! files holding their target, so the tree holds no symlink a later write could follow.
//! Names are read as containerd reads them (cleaned, leading `/` and excess `..` dropped,
//! directories resolved through the layer's own symlinks inside the layer root), so every
//! path we write is a plain relative path under the root and nothing can be written outside
//! it. A [`TarGuard`](super::tar_guard::TarGuard) sits under the tar reader (see
//! `tar_guard.rs`), so memory stays bounded whatever the stream claims.
//!
//! This file interprets entries (types, hardlinks, limits, the index feed); `tar_meta.rs`
//! reads header fields (cleaned names, numbers, PAX times); `resolve.rs` resolves paths
//! through the layer's symlinks; `whiteout.rs` applies whiteout and opaque markers; `fs.rs`
//! creates, replaces and removes entries on the layer's tree, whose primitives `tree.rs`
//! defines: `disk.rs` is the layer directory, `memory.rs` the names alone (an image-only pull:
//! the file data goes to the EROFS image only).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rustix::fs::Timespec;
use rustix::io::Errno;

mod disk;
mod fs;
mod memory;
mod resolve;
mod tar_meta;
mod tree;
mod whiteout;

pub(crate) use disk::DiskTree;
use fs::not_a_dir;
pub(crate) use memory::MemoryTree;
use resolve::Symlinks;
use tar_meta::{clean_name, numeric_field, parse_pax_time};
use tree::LayerTree;
use whiteout::marker_of;
pub use whiteout::{OPAQUE_XATTR, WHITEOUT_XATTR};

use super::LayerError;
use super::tar_guard::stream_err;
pub(crate) use super::tar_guard::{check_guard_transparent, open_archive};
use crate::cache::Perms;
use crate::erofs::LayerImageWriter;
use crate::index::{EntryMeta, IndexBuilder};
use crate::stat::{OverrideStat, encode_dev, mode};

/// Marks a directory the layer did not list but needed as a parent. Its metadata is a
/// placeholder (root-owned 0755); a merged view takes it from the lower layer instead.
pub const IMPLICIT_DIR_XATTR: &str = "user.msb.implicit";

/// Limits that stop hostile layers. Every limit names itself in the error it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
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
    /// BLAKE3 of the content of every regular file written, by inode (hardlinks share one;
    /// an inode freed and reused holds its last file's). Files created empty (whiteout and
    /// device placeholders) are absent. Recorded in the layer's `contents`
    /// (`cache/contents.rs`) so `verify` can tell a changed file without the tar.
    pub content_digests: HashMap<u64, [u8; 32]>,
    /// The layer's EROFS image, its file data written (when asked for); its metadata is
    /// written from `index` once the extraction is verified.
    pub erofs: Option<LayerImageWriter>,
}

/// Metadata of one tar entry after PAX records are applied.
pub(crate) struct Meta {
    stat: OverrideStat,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const COPY_BUF: usize = 256 * 1024;

/// Applies tar entries to one layer's tree: the directory on disk ([`DiskTree`]), or, for
/// an image-only pull, the names alone ([`MemoryTree`]).
pub(crate) struct Extractor<T: LayerTree> {
    tree: T,
    limits: ExtractLimits,
    /// Implicit directories (made for an entry whose parents the tar did not list) that no
    /// later entry gave metadata (ordered: a removed directory's are a range).
    implicit: BTreeSet<PathBuf>,
    /// Every symlink the layer holds, for resolving later names through them.
    symlinks: Symlinks,
    /// Paths holding a whiteout marker file (ordered: a removed directory's are a range).
    markers: BTreeSet<PathBuf>,
    /// Names this layer whited out (a directory made there is opaque).
    deleted: BTreeSet<PathBuf>,
    /// Directories' times, set at the end (ordered: a removed directory's are a range);
    /// empty when the tree keeps no times.
    dir_times: BTreeMap<PathBuf, Timespec>,
    stats: ExtractStats,
    buf: Vec<u8>,
    /// The layer's EROFS image, fed every regular file's bytes as they are written.
    erofs: Option<LayerImageWriter>,
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

/// The `S_IFMT` bits of a tar entry type (0 for a hardlink, which takes its target's).
fn type_bits_of(kind: tar::EntryType, raw_path: &[u8]) -> Result<u32, LayerError> {
    use tar::EntryType as T;
    Ok(match kind {
        // (Contiguous files, `7`, are refused as containerd and umoci refuse them.)
        T::Regular | T::GNUSparse => mode::S_IFREG,
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
                    String::from_utf8_lossy(raw_path),
                    other.as_byte() as char
                ),
            });
        }
    })
}

fn unresolvable(e: resolve::Unresolvable, raw: &[u8]) -> LayerError {
    LayerError::UnsafePath {
        path: String::from_utf8_lossy(raw).into_owned(),
        reason: match e {
            resolve::Unresolvable::TooManyLinks => "more than 255 symlinks to follow (a loop?)",
            resolve::Unresolvable::NotADirectory => {
                "the path goes through a non-directory entry of this layer"
            }
        },
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

impl Extractor<DiskTree> {
    /// An extractor writing under `root`, an existing empty directory; it also feeds an
    /// [`IndexBuilder`] when `build_index`.
    pub(crate) fn new(
        root: &Path,
        limits: ExtractLimits,
        build_index: bool,
    ) -> Result<Self, LayerError> {
        Ok(Extractor::on(DiskTree::open(root)?, limits, build_index))
    }

    /// Create files and directories with `perms`' modes (a shared cache's `0640`/`2750`).
    pub(crate) fn with_perms(mut self, perms: Perms) -> Self {
        self.tree.set_perms(perms);
        self
    }
}

impl Extractor<MemoryTree> {
    /// An extractor that writes no tree: every regular file's data goes to `image` alone,
    /// the index is built (the image's metadata comes from it), and the same checks as on
    /// disk refuse the same tars (`memory.rs`).
    pub(crate) fn image_only(limits: ExtractLimits, image: LayerImageWriter) -> Self {
        Extractor::on(MemoryTree::default(), limits, true).with_erofs(image)
    }
}

impl<T: LayerTree> Extractor<T> {
    /// An extractor writing to `tree`; it also feeds an [`IndexBuilder`] when `build_index`.
    fn on(tree: T, limits: ExtractLimits, build_index: bool) -> Self {
        Extractor {
            tree,
            limits,
            implicit: BTreeSet::new(),
            symlinks: Symlinks::default(),
            markers: BTreeSet::new(),
            deleted: BTreeSet::new(),
            dir_times: BTreeMap::new(),
            stats: ExtractStats {
                index: build_index.then(IndexBuilder::new),
                ..ExtractStats::default()
            },
            buf: vec![0u8; COPY_BUF],
            erofs: None,
        }
    }

    /// Also write every regular file's data into `image` (the tree's index is then always
    /// built: the image's metadata comes from it).
    pub(crate) fn with_erofs(mut self, image: LayerImageWriter) -> Self {
        self.stats.index.get_or_insert_with(IndexBuilder::new);
        self.erofs = Some(image);
        self
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
        self.stats.erofs = self.erofs.take();
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
        let cleaned = clean_name(&raw_path, &self.limits)?;
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
        let Some(cleaned) = cleaned else {
            return self.root_entry(entry, kind);
        };
        let rel = self.place(&cleaned, &raw_path)?;
        // A marker is one whatever its type (as in containerd and umoci).
        if let Some(name) = rel.file_name()
            && let Some(marker) = marker_of(&rel, name)?
        {
            let meta = self.meta(entry, 0)?;
            return self.marker(&rel, marker, &meta);
        }
        let type_bits = type_bits_of(kind, &raw_path)?;
        let meta = self.meta(entry, type_bits)?;
        match kind {
            T::Link => self.hardlink(entry, &rel),
            T::Directory => self.directory(&rel, &meta),
            _ => self.file(entry, &rel, &meta),
        }
    }

    /// An entry naming the layer root (`./`, `/`, `..`, an empty name): a directory's
    /// metadata is the root's; anything else is ignored, as containerd ignores every entry
    /// that resolves to its root (replacing the root is never possible).
    fn root_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: tar::EntryType,
    ) -> Result<(), LayerError> {
        if kind != tar::EntryType::Directory {
            return Ok(());
        }
        let meta = self.meta(entry, mode::S_IFDIR)?;
        let dot = Path::new(".");
        let root = self.tree.open_root()?;
        self.tree.clear_image_xattrs(&root, dot)?;
        self.tree.set_meta(&root, dot, &meta)?;
        if let Some(index) = &mut self.stats.index {
            let inode = self.tree.inode(&root, dot)?;
            index.add(b"", meta.index_meta(0, inode, None))?;
        }
        self.keep_dir_time(dot, meta.mtime);
        Ok(())
    }

    /// Where the cleaned name `cleaned` lands: its directory resolved through the layer's
    /// symlinks, then its last component (never resolved: an entry replaces a symlink).
    fn place(&mut self, cleaned: &Path, raw: &[u8]) -> Result<PathBuf, LayerError> {
        let parent = cleaned.parent().unwrap_or(Path::new(""));
        let dir = self
            .symlinks
            .resolve_dir(parent)
            .map_err(|e| unresolvable(e, raw))?;
        let Some(name) = cleaned.file_name() else {
            return Err(LayerError::Internal(format!(
                "cleaned name {cleaned:?} has no last component"
            )));
        };
        let rel = dir.join(name);
        self.check_resolved(&rel, raw)?;
        Ok(rel)
    }

    /// Limits again, on a path that symlinks may have made longer or deeper.
    fn check_resolved(&self, rel: &Path, raw: &[u8]) -> Result<(), LayerError> {
        let l = &self.limits;
        for (limit, value, max) in [
            ("max_path_len", rel.as_os_str().len(), l.max_path_len),
            ("max_depth", rel.components().count(), l.max_depth),
        ] {
            if value > max {
                return Err(LayerError::Limit {
                    limit,
                    value: value as u64,
                    max: max as u64,
                    path: Some(String::from_utf8_lossy(raw).into_owned()),
                });
            }
        }
        Ok(())
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
        let mut file = self.create(rel)?;
        let digest = if let Some(target) = &link_target {
            self.tree.write(&mut file, rel, target)?;
            Some(*blake3::hash(target).as_bytes())
        } else if type_bits == mode::S_IFREG {
            if let Some(image) = &mut self.erofs {
                let xattrs = meta
                    .xattrs
                    .iter()
                    .map(|(n, v)| (n.as_slice(), v.as_slice()));
                image.begin_file(size, xattrs)?;
            }
            Some(self.copy(entry, &mut file, rel, size)?)
        } else {
            None
        };
        self.tree.set_meta(&file, rel, meta)?;
        if let Some(target) = &link_target {
            self.symlinks.insert(rel, target.clone());
        }
        let inode = self.tree.inode(&file, rel)?;
        if let Some(digest) = digest {
            self.stats.content_digests.insert(inode, digest);
        }
        if let (Some(image), true) = (&mut self.erofs, type_bits == mode::S_IFREG) {
            image.end_file(inode)?;
        }
        if let Some(index) = &mut self.stats.index {
            index.add_literal(path_bytes(rel), meta.index_meta(size, inode, link_target))?;
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

    /// Copy an entry's `size` content bytes and return their BLAKE3; a body that ends early
    /// is an error (the tar reader itself would take a short read at the end of the stream
    /// as the entry's end).
    fn copy<R: Read>(
        &mut self,
        src: &mut R,
        dst: &mut T::Handle,
        rel: &Path,
        size: u64,
    ) -> Result<[u8; 32], LayerError> {
        let mut copied = 0u64;
        let mut hasher = blake3::Hasher::new();
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) if copied == size => return Ok(*hasher.finalize().as_bytes()),
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
            hasher.update(&self.buf[..n]);
            self.tree.write(dst, rel, &self.buf[..n])?;
            if let Some(image) = &mut self.erofs {
                image.write(&self.buf[..n])?;
            }
        }
    }

    fn directory(&mut self, rel: &Path, meta: &Meta) -> Result<(), LayerError> {
        let mut parents_made = false;
        let mut replaced = false;
        let mut existed = false;
        loop {
            match self.tree.mkdir(rel) {
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
                Err(Errno::NOTDIR) if !parents_made && self.marker_on_the_way(rel) => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) => return Err(not_a_dir(rel)),
                Err(e) => return Err(io_err(rel, "mkdir")(e)),
            }
        }
        let fd = self.open_dir(rel)?;
        if !existed {
            self.tree.fix_mode(&fd, rel, true)?;
        }
        if !existed && self.was_deleted(rel) {
            self.make_opaque(&fd, rel)?;
        }
        if self.implicit.remove(rel) {
            self.tree.remove_flag(&fd, rel, IMPLICIT_DIR_XATTR)?;
            self.stats.implicit_dirs -= 1;
        }
        if existed {
            // The last entry wins: its xattrs replace the earlier entry's, as in the index.
            self.tree.clear_image_xattrs(&fd, rel)?;
        }
        self.tree.set_meta(&fd, rel, meta)?;
        if let Some(index) = &mut self.stats.index {
            let inode = self.tree.inode(&fd, rel)?;
            index.add_literal(path_bytes(rel), meta.index_meta(0, inode, None))?;
        }
        self.keep_dir_time(rel, meta.mtime);
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
    ) -> Result<(), LayerError> {
        let raw_target = entry.link_name_bytes().unwrap_or_default().into_owned();
        // What is at the link's name goes first, then the target is resolved (as containerd
        // does: a link through, or to, the entry it replaces finds nothing there).
        if let Ok(Some(_)) = self.stat(rel) {
            self.remove(rel)?;
        }
        let target = self.link_target(&raw_target, rel)?;
        let shown = || {
            format!(
                "{} -> {}",
                rel.display(),
                String::from_utf8_lossy(&raw_target)
            )
        };
        if self.is_marker(&target) {
            return Err(LayerError::UnsafePath {
                path: shown(),
                reason: "hardlink target is not an earlier entry of this layer",
            });
        }
        let mut parents_made = false;
        let mut replaced = false;
        loop {
            match self.tree.link(&target, rel) {
                Ok(()) => return self.linked(rel, &target),
                // (An entry replaces what is at its path first, as containerd does: a link
                // to itself, or to something under it, then finds no target.)
                Err(Errno::EXIST) if !replaced => {
                    replaced = true;
                    self.remove(rel)?;
                }
                Err(Errno::NOENT) if !parents_made && self.exists(&target)? => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(Errno::NOTDIR) if !parents_made && self.marker_on_the_way(rel) => {
                    parents_made = true;
                    self.make_parents(rel)?;
                }
                Err(e) => return Err(link_error(e, rel, shown())),
            }
        }
    }

    /// A hardlink's target (the raw tar link name): its directory resolved through the
    /// layer's symlinks as an entry's is, its last component taken as it is (a link to a
    /// symlink links the symlink), `.`, `..` and `/` applied after.
    fn link_target(&self, raw: &[u8], rel: &Path) -> Result<PathBuf, LayerError> {
        let shown = || format!("{} -> {}", rel.display(), String::from_utf8_lossy(raw));
        if raw.contains(&0) {
            return Err(LayerError::UnsafePath {
                path: shown(),
                reason: "NUL byte in hardlink target",
            });
        }
        if raw.len() > self.limits.max_path_len {
            return Err(LayerError::Limit {
                limit: "max_path_len",
                value: raw.len() as u64,
                max: self.limits.max_path_len as u64,
                path: Some(shown()),
            });
        }
        let mut comps: Vec<&[u8]> = raw.split(|b| *b == b'/').collect();
        let last = comps.pop().unwrap_or_default();
        let is_file = |p: &Path| matches!(self.stat(p), Ok(Some(st)) if !st.dir);
        let mut target = self
            .symlinks
            .resolve(comps, &is_file)
            .map_err(|e| unresolvable(e, raw))?;
        match last {
            b"" | b"." => {}
            b".." => {
                target.pop();
            }
            name => target.push(std::ffi::OsStr::from_bytes(name)),
        }
        if target.as_os_str().is_empty() {
            return Err(LayerError::UnsafePath {
                path: shown(),
                reason: "hardlink to the layer root",
            });
        }
        Ok(target)
    }

    /// Book-keeping after `rel` became a hardlink of `target`.
    fn linked(&mut self, rel: &Path, target: &Path) -> Result<(), LayerError> {
        if let Some(t) = self.symlinks.target(target).map(<[u8]>::to_vec) {
            self.symlinks.insert(rel, t);
        }
        if let Some(index) = &mut self.stats.index {
            index.add_hardlink(path_bytes(rel), path_bytes(target))?;
        }
        Ok(())
    }
}

/// The error of a `linkat` that failed for good.
fn link_error(e: Errno, rel: &Path, shown: String) -> LayerError {
    let reason = match e {
        Errno::NOENT => "hardlink target is not an earlier entry of this layer",
        Errno::PERM => "hardlink to a directory",
        Errno::NOTDIR => {
            "a parent directory of the hardlink or its target is a non-directory entry of this \
             layer"
        }
        e => return io_err(rel, "link")(e),
    };
    LayerError::UnsafePath {
        path: shown,
        reason,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod modes_tests;
