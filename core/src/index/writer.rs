//! [`IndexBuilder`]: the in-memory tree of one layer as its tar is applied, fed by the
//! extractor entry by entry (no second walk of the extracted tree), then serialised by
//! `serialize.rs` into the format of `FORMAT.md`. The tree mirrors what the extractor leaves
//! on disk: last entry wins, a directory over a directory merges, anything else replaces a
//! whole subtree; whiteout markers become WHITEOUT entries and OPAQUE flags.

// foldhash: several times faster than SipHash on short names, and seeded per process, so a
// hostile layer cannot precompute colliding names.
use foldhash::{HashMap, HashMapExt};

use super::IndexError;
use super::entry::EntryKind;
use super::format::{PERM_MASK, WHITEOUT_MODE, flag};
use crate::layer::stat::mode;

/// Metadata of one extracted entry, as the extractor hands it to [`IndexBuilder::add`].
///
/// `Default` gives an invalid mode (0): set at least `mode`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// Full mode: `S_IFMT` type bits (see `layer::stat::mode`) and permission bits.
    pub mode: u32,
    /// Owner in the image.
    pub uid: u32,
    /// Group in the image.
    pub gid: u32,
    /// Content size of a regular file (ignored for other kinds: a symlink's size is its
    /// target's length, everything else has size 0).
    pub size: u64,
    /// Device number of character/block devices (`layer::stat::encode_dev` form).
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

/// One node of the builder's tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: Box<[u8]>,
    pub meta: EntryMeta,
    /// WHITEOUT, OPAQUE, IMPLICIT (HARDLINK and HAS_XATTRS are derived when serialising).
    pub flags: u16,
    /// The layer deleted what the lower layers had at this name (a whiteout marker met a
    /// real entry of the same name): a directory here is opaque.
    pub lower_deleted: bool,
    /// Hardlink group: entries sharing an inode share the group.
    pub group: u32,
    /// Children of a (real) directory.
    pub children: Option<HashMap<Box<[u8]>, u32>>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.children.is_some()
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
    pub(crate) nodes: Vec<Node>,
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
const WH_META_PREFIX: &[u8] = b".wh..wh.";
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

/// Check and canonicalise caller metadata.
fn normalize(path: &[u8], mut m: EntryMeta) -> Result<EntryMeta, IndexError> {
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
    Ok(m)
}

impl IndexBuilder {
    /// An empty layer: just a root directory with placeholder metadata (root-owned `0755`,
    /// flagged implicit until the layer's own `./` entry arrives).
    pub fn new() -> Self {
        let root = Node {
            name: Box::default(),
            meta: EntryMeta {
                mode: mode::S_IFDIR | 0o755,
                implicit: true,
                ..EntryMeta::default()
            },
            flags: flag::IMPLICIT,
            lower_deleted: false,
            group: 0,
            children: Some(HashMap::new()),
        };
        IndexBuilder {
            nodes: vec![root],
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
    /// been added before (explicitly or with `implicit` set). Whiteout markers are passed
    /// with their literal names (`dir/.wh.foo`, `dir/.wh..wh..opq`) and any file type. See
    /// `FORMAT.md` ("What the writer puts in") for how repeated paths, whiteouts and
    /// implicit directories combine.
    ///
    /// Errors ([`IndexError::InvalidEntry`]) for a malformed path, a missing parent, a parent
    /// that is not a directory, an unknown file type, or an implicit non-directory.
    pub fn add(&mut self, path: &[u8], meta: EntryMeta) -> Result<(), IndexError> {
        if path.is_empty() {
            return self.set_root(path, meta);
        }
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
        if name.starts_with(WH_PREFIX) {
            self.whiteout_marker(parent, name, &meta);
            return Ok(());
        }
        let meta = normalize(path, meta)?;
        let group = self.nodes.len() as u32;
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
        let t = &self.nodes[tid as usize];
        if t.is_dir() || t.is_whiteout() {
            return Err(invalid(
                target,
                "hardlink target is a directory or a whiteout",
            ));
        }
        let (meta, group) = (t.meta.clone(), t.group);
        let parent = self.resolve_dir(path, parents)?;
        if name.starts_with(WH_PREFIX) {
            self.whiteout_marker(parent, name, &meta);
            return Ok(());
        }
        self.put(path, parent, name, meta, group)
    }

    /// Serialise the index (sort, build the tables, checksum). The bytes are meant to be
    /// written atomically next to the layer's `fs/` as `index`.
    ///
    /// Errors with [`IndexError::TooLarge`] if the layer exceeds the format's 32-bit counts
    /// or its 4 GiB string pool.
    pub fn finish(self) -> Result<Vec<u8>, IndexError> {
        super::serialize::serialize(&self.nodes)
    }

    fn child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        self.nodes[dir as usize]
            .children
            .as_ref()?
            .get(name)
            .copied()
    }

    fn resolve_dir(&self, path: &[u8], parents: &[&[u8]]) -> Result<u32, IndexError> {
        let mut cur = 0u32;
        for c in parents {
            let next = self
                .child(cur, c)
                .ok_or_else(|| invalid(path, "parent directory was not added first"))?;
            if !self.nodes[next as usize].is_dir() {
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
            let root = &mut self.nodes[0];
            root.meta = meta;
            root.flags &= !flag::IMPLICIT;
        }
        Ok(())
    }

    /// `parent/name` where `name` starts with `.wh.`.
    fn whiteout_marker(&mut self, parent: u32, name: &[u8], meta: &EntryMeta) {
        if name == WH_OPAQUE {
            self.nodes[parent as usize].flags |= flag::OPAQUE;
            return;
        }
        let target = name.get(WH_PREFIX.len()..).unwrap_or_default();
        if name.starts_with(WH_META_PREFIX) || matches!(target, b"" | b"." | b"..") {
            return; // aufs bookkeeping or a marker naming nothing: no effect
        }
        let wmeta = EntryMeta {
            mode: WHITEOUT_MODE,
            uid: meta.uid,
            gid: meta.gid,
            mtime_sec: meta.mtime_sec,
            mtime_nsec: meta.mtime_nsec.min(999_999_999),
            inode: meta.inode,
            ..EntryMeta::default()
        };
        match self.child(parent, target) {
            Some(id) => {
                let n = &mut self.nodes[id as usize];
                if n.is_whiteout() {
                    n.meta = wmeta;
                } else {
                    n.lower_deleted = true; // the real entry stays
                }
            }
            None => self.insert(parent, target, wmeta, flag::WHITEOUT, true, 0),
        }
    }

    /// Put a real entry at `parent/name`, replacing what is there as the extractor does.
    fn put(
        &mut self,
        path: &[u8],
        parent: u32,
        name: &[u8],
        meta: EntryMeta,
        group: u32,
    ) -> Result<(), IndexError> {
        let is_dir = meta.mode & mode::S_IFMT == mode::S_IFDIR;
        let implicit = meta.implicit;
        let flags = if implicit { flag::IMPLICIT } else { 0 };
        let mut lower_deleted = false;
        if let Some(id) = self.child(parent, name) {
            let old = &mut self.nodes[id as usize];
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
            self.remove(parent, name);
        }
        self.insert(parent, name, meta, flags, lower_deleted, group);
        Ok(())
    }

    fn insert(
        &mut self,
        parent: u32,
        name: &[u8],
        meta: EntryMeta,
        flags: u16,
        lower_deleted: bool,
        group: u32,
    ) {
        let id = self.nodes.len() as u32;
        let is_dir = flags & flag::WHITEOUT == 0 && meta.mode & mode::S_IFMT == mode::S_IFDIR;
        self.nodes.push(Node {
            name: name.into(),
            meta,
            flags,
            lower_deleted,
            group,
            children: is_dir.then(HashMap::new),
        });
        if let Some(ch) = self.nodes[parent as usize].children.as_mut() {
            ch.insert(name.into(), id);
        }
        self.live += 1;
    }

    /// Detach `parent/name` and its subtree.
    fn remove(&mut self, parent: u32, name: &[u8]) {
        let Some(id) = self.nodes[parent as usize]
            .children
            .as_mut()
            .and_then(|ch| ch.remove(name))
        else {
            return;
        };
        let mut stack = vec![id];
        self.last_parent = None;
        while let Some(n) = stack.pop() {
            self.live -= 1;
            if let Some(ch) = self.nodes[n as usize].children.take() {
                stack.extend(ch.into_values());
            }
        }
    }
}
