//! [`IndexBuilder`]: the in-memory tree of one layer as its tar is applied, fed by the
//! extractor entry by entry (no second walk of the extracted tree), then serialised by
//! `serialize.rs` into the format of `FORMAT.md`. The tree mirrors what the extractor leaves
//! on disk: last entry wins, a directory over a directory merges, anything else replaces a
//! whole subtree; whiteout markers become WHITEOUT entries and OPAQUE flags.

use super::IndexError;
use super::entry::EntryKind;
use super::format::{PERM_MASK, WHITEOUT_MODE, flag};
use super::name_tree::{NameTree, Named, ROOT};
use crate::stat::mode;

/// Metadata of one extracted entry, as the extractor hands it to [`IndexBuilder::add`].
///
/// `Default` gives an invalid mode (0): set at least `mode`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// Full mode: `S_IFMT` type bits (see `stat::mode`) and permission bits.
    pub mode: u32,
    /// Owner in the image.
    pub uid: u32,
    /// Group in the image.
    pub gid: u32,
    /// Content size of a regular file (ignored for other kinds: a symlink's size is its
    /// target's length, everything else has size 0).
    pub size: u64,
    /// Device number of character/block devices (`stat::encode_dev` form).
    pub rdev: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds (< 10⁹).
    pub mtime_nsec: u32,
    /// Inode of the extracted file in the layer's `fs/` tree on the host.
    pub inode: u64,
    /// Target of a symlink (required for symlinks, ignored otherwise).
    pub link_target: Option<Vec<u8>>,
    /// The image's extended attributes (`security.capability`, …); a repeated name keeps
    /// its last value.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A directory the extractor created only as a parent (no tar entry of its own).
    pub implicit: bool,
}

/// `EntryMeta` as the builder keeps it: the common fields inline, the rare ones (symlink
/// target, xattrs) boxed, so a node stays small (the builder holds every entry of a layer
/// until `finish`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub mtime_nsec: u32,
    pub size: u64,
    pub mtime_sec: i64,
    pub inode: u64,
    /// Created by the extractor as a parent only.
    pub implicit: bool,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, Default)]
struct Extra {
    link_target: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// The symlink target (symlinks only).
    pub fn link_target(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.link_target.as_deref()
    }

    /// The xattrs, sorted by name, names unique.
    pub fn xattrs(&self) -> &[(Vec<u8>, Vec<u8>)] {
        self.extra.as_ref().map_or(&[], |e| &e.xattrs)
    }
}

/// What the builder keeps of one entry (its place in the tree is the [`NameTree`]'s).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// WHITEOUT, OPAQUE, IMPLICIT (HARDLINK and HAS_XATTRS are derived when serialising).
    pub flags: u16,
    /// The layer deleted what the lower layers had at this name (a whiteout marker met a
    /// real entry of the same name): a directory here is opaque.
    pub lower_deleted: bool,
    /// A real directory (may have children).
    dir: bool,
    /// Hardlink group: entries sharing an inode share the group.
    pub group: u32,
    pub meta: Meta,
}

// The builder holds every entry of a layer until `finish`: keep a node at 96 bytes (with
// its name in the arena and a 4-byte slot in the name table, about 110 bytes per entry).
const _: () = assert!(std::mem::size_of::<Named<Node>>() <= 96);

impl Node {
    pub fn is_dir(&self) -> bool {
        self.dir
    }

    /// A directory that hides what the lower layers have under it: marked opaque by the
    /// layer, or made where the layer deleted a lower entry.
    pub fn is_opaque_dir(&self) -> bool {
        self.dir && (self.flags & flag::OPAQUE != 0 || self.lower_deleted)
    }

    pub fn is_whiteout(&self) -> bool {
        self.flags & flag::WHITEOUT != 0
    }
}

/// Builds the index of one layer from its entries in tar order.
///
/// ```
/// use microsandbox_image::index::{EntryKind, EntryMeta, IndexBuilder, LayerIndex};
///
/// let mut b = IndexBuilder::new();
/// b.add(b"", EntryMeta { mode: 0o040755, ..Default::default() })?; // "./"
/// b.add(b"usr", EntryMeta { mode: 0o040755, implicit: true, ..Default::default() })?;
/// b.add(b"usr/.wh.games", EntryMeta { mode: 0o100644, ..Default::default() })?;
/// b.add(b"usr/lib", EntryMeta { mode: 0o040755, ..Default::default() })?;
/// b.add(b"usr/lib/.wh..wh..opq", EntryMeta { mode: 0o100644, ..Default::default() })?;
/// b.add(b"usr/lib/os-release", EntryMeta {
///     mode: 0o120777,
///     link_target: Some(b"../../etc/os-release".to_vec()),
///     ..Default::default()
/// })?;
/// assert_eq!(b.len(), 4);
/// let index = LayerIndex::from_bytes(b.finish()?)?;
/// assert_eq!(index.get(b"usr/games")?.unwrap().kind(), EntryKind::Whiteout);
/// assert!(index.get(b"usr/lib")?.unwrap().is_opaque());
/// assert!(index.get(b"usr")?.unwrap().is_implicit());
/// let link = index.get(b"usr/lib/os-release")?.unwrap();
/// assert_eq!(link.link_target(), Some(&b"../../etc/os-release"[..]));
/// # Ok::<(), microsandbox_image::index::IndexError>(())
/// ```
#[derive(Debug, Clone)]
pub struct IndexBuilder {
    tree: NameTree<Node>,
    live: usize,
    /// The parent directory of the previous entry (path, node): a tar lists a directory's
    /// entries together, so most entries skip resolving their parent component by
    /// component. Cleared whenever a subtree is detached.
    last_parent: Option<(Vec<u8>, u32)>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        Self::new()
    }
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

fn invalid(path: &[u8], reason: &'static str) -> IndexError {
    IndexError::InvalidEntry {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    }
}

const EMPTY_COMPONENT: &str = "empty path component (absolute or unnormalised path)";

/// Check one component `c` of `path`.
fn check_component(path: &[u8], c: &[u8]) -> Result<(), IndexError> {
    let reason = match c {
        b"" => EMPTY_COMPONENT,
        b"." | b".." => "`.` or `..` component",
        _ if c.contains(&0) => "NUL byte in path",
        _ if c.len() > usize::from(u16::MAX) => "name longer than 65535 bytes",
        _ => return Ok(()),
    };
    Err(invalid(path, reason))
}

/// Split a relative path into validated components (none for the root).
fn components(path: &[u8]) -> Result<Vec<&[u8]>, IndexError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(8);
    for c in path.split(|&b| b == b'/') {
        check_component(path, c)?;
        out.push(c);
    }
    Ok(out)
}

/// What a last path component starting with `.wh.` means.
enum Marker<'a> {
    /// `.wh..wh..opq`: the directory is opaque.
    Opaque,
    /// `.wh.NAME`: `NAME` is deleted (`.wh..wh.x` deletes `.wh.x`, as containerd and umoci
    /// read it).
    Whiteout(&'a [u8]),
}

/// The marker `name` (the last component of `path`) stands for, if it is one.
fn marker_of<'a>(path: &[u8], name: &'a [u8]) -> Result<Option<Marker<'a>>, IndexError> {
    if name == WH_OPAQUE {
        return Ok(Some(Marker::Opaque));
    }
    match name.strip_prefix(WH_PREFIX) {
        None => Ok(None),
        Some(b"" | b"." | b"..") => Err(invalid(
            path,
            "whiteout naming nothing, its own directory or the parent directory",
        )),
        Some(target) => Ok(Some(Marker::Whiteout(target))),
    }
}

/// What a whiteout keeps of its marker's metadata.
fn marker_meta(meta: &EntryMeta) -> Meta {
    Meta {
        uid: meta.uid,
        gid: meta.gid,
        mtime_sec: meta.mtime_sec,
        mtime_nsec: meta.mtime_nsec,
        inode: meta.inode,
        ..Meta::default()
    }
}

/// Check and canonicalise caller metadata.
fn normalize(path: &[u8], mut m: EntryMeta) -> Result<Meta, IndexError> {
    let kind =
        EntryKind::from_mode(m.mode).ok_or_else(|| invalid(path, "unknown file type in mode"))?;
    if m.mtime_nsec >= 1_000_000_000 {
        return Err(invalid(path, "mtime nanoseconds out of range"));
    }
    if m.implicit && kind != EntryKind::Dir {
        return Err(invalid(path, "an implicit entry must be a directory"));
    }
    m.mode &= mode::S_IFMT | PERM_MASK;
    if !matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        m.rdev = 0;
    }
    if kind == EntryKind::Symlink {
        let target = m.link_target.get_or_insert_with(Vec::new);
        if target.len() > u32::MAX as usize {
            return Err(invalid(path, "symlink target longer than 4 GiB"));
        }
        m.size = target.len() as u64;
    } else {
        m.link_target = None;
        if kind != EntryKind::File {
            m.size = 0;
        }
    }
    if m.xattrs.iter().any(|(n, _)| n.is_empty() || n.contains(&0)) {
        return Err(invalid(path, "empty xattr name or NUL in xattr name"));
    }
    // Sort by name, keeping the last value of a repeated name.
    m.xattrs.reverse();
    m.xattrs.sort_by(|a, b| a.0.cmp(&b.0));
    m.xattrs.dedup_by(|later, earlier| later.0 == earlier.0);
    let extra = (m.link_target.is_some() || !m.xattrs.is_empty()).then(|| {
        Box::new(Extra {
            link_target: m.link_target,
            xattrs: m.xattrs,
        })
    });
    Ok(Meta {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        rdev: m.rdev,
        mtime_nsec: m.mtime_nsec,
        size: m.size,
        mtime_sec: m.mtime_sec,
        inode: m.inode,
        implicit: m.implicit,
        extra,
    })
}

impl IndexBuilder {
    /// An empty layer: just a root directory with placeholder metadata (root-owned `0755`,
    /// flagged implicit until the layer's own `./` entry arrives).
    pub fn new() -> Self {
        let root = Node {
            flags: flag::IMPLICIT,
            lower_deleted: false,
            dir: true,
            group: 0,
            meta: Meta {
                mode: mode::S_IFDIR | 0o755,
                implicit: true,
                ..Meta::default()
            },
        };
        IndexBuilder {
            tree: NameTree::new(root),
            live: 0,
            last_parent: None,
        }
    }

    /// Number of entries below the root the index would hold now (whiteouts included).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing but the root is present.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Record one tar entry, after the extractor wrote it.
    ///
    /// `path` is the sanitised relative path (`usr/bin/sh`; empty for the layer root `./`):
    /// no leading `/`, no empty, `.` or `..` components. Its parent directories must have
    /// been added before (explicitly or with `implicit` set). A last component starting with
    /// `.wh.` is read as a marker, with any file type: `.wh..wh..opq` makes the directory
    /// opaque ([`set_opaque`](Self::set_opaque)), `.wh.NAME` deletes `NAME`
    /// ([`add_whiteout`](Self::add_whiteout)). See `FORMAT.md` ("What the writer puts in")
    /// for how repeated paths, whiteouts and implicit directories combine; a real entry whose
    /// name starts with `.wh.` goes in with [`add_literal`](Self::add_literal).
    ///
    /// Errors ([`IndexError::InvalidEntry`]) for a malformed path, a missing parent, a parent
    /// that is not a directory, an unknown file type, an implicit non-directory, or a marker
    /// naming nothing, `.` or `..` (`.wh.`, `.wh..`, `.wh...`).
    pub fn add(&mut self, path: &[u8], meta: EntryMeta) -> Result<(), IndexError> {
        if path.is_empty() {
            return self.set_root(path, meta);
        }
        let (parent, name) = self.parent_of(path)?;
        match marker_of(path, name)? {
            Some(Marker::Opaque) => {
                self.tree.get_mut(parent).flags |= flag::OPAQUE;
                Ok(())
            }
            Some(Marker::Whiteout(target)) => {
                self.whiteout_marker(parent, target, &marker_meta(&meta))
            }
            None => self.put_new(path, parent, name, meta),
        }
    }

    /// Record a real entry at `path` whatever its name: a last component starting with
    /// `.wh.` is a name here (a directory `.wh.etc` that a tar wrote `.wh.etc/somefile`
    /// under), not a marker. Otherwise as [`add`](Self::add).
    pub fn add_literal(&mut self, path: &[u8], meta: EntryMeta) -> Result<(), IndexError> {
        if path.is_empty() {
            return self.set_root(path, meta);
        }
        let (parent, name) = self.parent_of(path)?;
        self.put_new(path, parent, name, meta)
    }

    /// Record that the layer deletes `path` from the layers below (the marker
    /// `.wh.<name>` of its directory, already applied); the marker's owner and mtime are
    /// kept from `meta`. A real entry of this layer at `path` stays (a directory becomes
    /// opaque).
    pub fn add_whiteout(&mut self, path: &[u8], meta: EntryMeta) -> Result<(), IndexError> {
        if path.is_empty() {
            return Err(invalid(path, "whiteout of the layer root"));
        }
        let (parent, name) = self.parent_of(path)?;
        self.whiteout_marker(parent, name, &marker_meta(&meta))
    }

    /// Mark the directory at `path` (empty for the root) opaque: the layers below
    /// contribute nothing to its contents (the marker `.wh..wh..opq`).
    pub fn set_opaque(&mut self, path: &[u8]) -> Result<(), IndexError> {
        let dir = self.resolve_dir(path, &components(path)?)?;
        self.tree.get_mut(dir).flags |= flag::OPAQUE;
        Ok(())
    }

    /// The parent node of `path` (not the root) and its last component.
    fn parent_of<'p>(&mut self, path: &'p [u8]) -> Result<(u32, &'p [u8]), IndexError> {
        let (parent_path, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(0) => return Err(invalid(path, EMPTY_COMPONENT)),
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        check_component(path, name)?;
        let parent = match &self.last_parent {
            Some((p, id)) if p == parent_path => *id,
            _ => {
                let id = self.resolve_dir(path, &components(parent_path)?)?;
                self.last_parent = Some((parent_path.to_vec(), id));
                id
            }
        };
        Ok((parent, name))
    }

    fn put_new(
        &mut self,
        path: &[u8],
        parent: u32,
        name: &[u8],
        meta: EntryMeta,
    ) -> Result<(), IndexError> {
        let meta = normalize(path, meta)?;
        // (A group id is the id the entry's node gets: `insert` refuses what does not fit.)
        let group = self.tree.next_id() as u32;
        self.put(path, parent, name, meta, group)
    }

    /// Record a hardlink entry: `path` becomes another name of the earlier entry `target`
    /// (both sanitised relative paths), sharing its metadata and host inode.
    ///
    /// Errors if `target` is not a present non-directory of this layer, or for the same
    /// reasons as [`add`](Self::add). A link to itself is ignored, as by the extractor.
    pub fn add_hardlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), IndexError> {
        let tcomps = components(target)?;
        let comps = components(path)?;
        if comps == tcomps {
            return Ok(());
        }
        let (Some((tname, tparents)), Some((name, parents))) =
            (tcomps.split_last(), comps.split_last())
        else {
            return Err(invalid(path, "hardlink to or at the layer root"));
        };
        let tparent = self.resolve_dir(target, tparents)?;
        let Some(tid) = self.child(tparent, tname) else {
            return Err(invalid(
                target,
                "hardlink target is not an entry of this layer",
            ));
        };
        let t = &self.nodes()[tid as usize];
        if t.is_dir() || t.is_whiteout() {
            return Err(invalid(
                target,
                "hardlink target is a directory or a whiteout",
            ));
        }
        let (meta, group) = (t.meta.clone(), t.group);
        let parent = self.resolve_dir(path, parents)?;
        match marker_of(path, name)? {
            Some(Marker::Opaque) => self.tree.get_mut(parent).flags |= flag::OPAQUE,
            Some(Marker::Whiteout(target)) => self.whiteout_marker(parent, target, &meta)?,
            None => return self.put(path, parent, name, meta, group),
        }
        Ok(())
    }

    /// Serialise the index (sort, build the tables, checksum). The bytes are meant to be
    /// written atomically next to the layer's `fs/` as `index`.
    ///
    /// Errors with [`IndexError::TooLarge`] if the layer exceeds the format's 32-bit counts
    /// or its 4 GiB string pool.
    pub fn finish(self) -> Result<Vec<u8>, IndexError> {
        super::serialize::serialize(&self, super::format::VERSION)
    }

    /// [`finish`](Self::finish) in the version-1 layout (one checksum over the whole file),
    /// which readers still accept.
    #[cfg(test)]
    pub(crate) fn finish_v1(self) -> Result<Vec<u8>, IndexError> {
        super::serialize::serialize(&self, super::format::VERSION_1)
    }

    /// Every node ever made (detached ones too), by id.
    pub(crate) fn nodes(&self) -> &[Named<Node>] {
        self.tree.nodes()
    }

    /// The name of node `id`.
    pub(crate) fn name(&self, id: u32) -> &[u8] {
        self.tree.name(id)
    }

    /// The children of node `id`, in no particular order.
    pub(crate) fn children(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.tree.children(id)
    }

    fn child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        match self.nodes()[dir as usize].dir {
            true => self.tree.child(dir, name),
            false => None,
        }
    }

    fn resolve_dir(&self, path: &[u8], parents: &[&[u8]]) -> Result<u32, IndexError> {
        let mut cur = ROOT;
        for c in parents {
            let next = self
                .child(cur, c)
                .ok_or_else(|| invalid(path, "parent directory was not added first"))?;
            if !self.nodes()[next as usize].is_dir() {
                return Err(invalid(path, "a parent is not a directory"));
            }
            cur = next;
        }
        Ok(cur)
    }

    fn set_root(&mut self, path: &[u8], meta: EntryMeta) -> Result<(), IndexError> {
        let meta = normalize(path, meta)?;
        if meta.mode & mode::S_IFMT != mode::S_IFDIR {
            return Err(invalid(path, "the layer root is not a directory"));
        }
        if !meta.implicit {
            let root = self.tree.get_mut(ROOT);
            root.meta = meta;
            root.flags &= !flag::IMPLICIT;
        }
        Ok(())
    }

    /// The layer deletes `parent/target` from the layers below.
    fn whiteout_marker(
        &mut self,
        parent: u32,
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), IndexError> {
        let wmeta = Meta {
            mode: WHITEOUT_MODE,
            uid: meta.uid,
            gid: meta.gid,
            mtime_sec: meta.mtime_sec,
            mtime_nsec: meta.mtime_nsec.min(999_999_999),
            inode: meta.inode,
            ..Meta::default()
        };
        match self.child(parent, target) {
            Some(id) => {
                let n = self.tree.get_mut(id);
                if n.is_whiteout() {
                    n.meta = wmeta;
                } else {
                    n.lower_deleted = true; // the real entry stays
                }
            }
            None => self.insert(parent, target, wmeta, flag::WHITEOUT, true, 0)?,
        }
        Ok(())
    }

    /// Put a real entry at `parent/name`, replacing what is there as the extractor does.
    fn put(
        &mut self,
        path: &[u8],
        parent: u32,
        name: &[u8],
        meta: Meta,
        group: u32,
    ) -> Result<(), IndexError> {
        let is_dir = meta.mode & mode::S_IFMT == mode::S_IFDIR;
        let implicit = meta.implicit;
        let flags = if implicit { flag::IMPLICIT } else { 0 };
        let mut lower_deleted = false;
        if let Some(id) = self.child(parent, name) {
            let old = self.tree.get_mut(id);
            if old.is_dir() && is_dir {
                if !implicit {
                    old.meta = meta;
                    old.flags &= !flag::IMPLICIT;
                }
                return Ok(());
            }
            if implicit && !old.is_whiteout() {
                return Err(invalid(path, "implicit directory over a non-directory"));
            }
            lower_deleted = old.lower_deleted;
            self.remove(id);
        }
        self.insert(parent, name, meta, flags, lower_deleted, group)
    }

    fn insert(
        &mut self,
        parent: u32,
        name: &[u8],
        meta: Meta,
        flags: u16,
        lower_deleted: bool,
        group: u32,
    ) -> Result<(), IndexError> {
        let dir = flags & flag::WHITEOUT == 0 && meta.mode & mode::S_IFMT == mode::S_IFDIR;
        let node = Node {
            flags,
            lower_deleted,
            dir,
            group,
            meta,
        };
        // (Names were checked: at most 65535 bytes; so the one limit left is the count.)
        let too_many = IndexError::TooLarge {
            what: "entries made",
            value: self.tree.next_id() as u64,
            max: u64::from(u32::MAX - 1),
        };
        self.tree.insert(parent, name, node).ok_or(too_many)?;
        self.live += 1;
        Ok(())
    }

    /// Detach node `id` and its subtree.
    fn remove(&mut self, id: u32) {
        self.last_parent = None;
        self.live -= self.tree.remove(id);
    }
}
