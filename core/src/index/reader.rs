//! [`LayerIndex`]: one index file, memory-mapped (or held in memory), answering zero-copy
//! lookups within its layer. Opening checks the header and the directory, hardlink and xattr
//! tables (and, for version-1 files, the whole file's checksum); each directory's entries,
//! and in version 2 the checksums of the 64 KiB blocks a lookup reads, are checked the first
//! time a lookup touches them, once per file (a bit per directory and per block, shared by
//! clones), like a filesystem that verifies a metadata block when it first reads it. Paths
//! are resolved one component at a time from the root. The only `unsafe` of the index module
//! is the `mmap` call below.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::IndexError;
use super::blocks::Blocks;
use super::entry::Entry;
use super::format::{
    self, DIR_LEN, HARDLINK_LEN, HEADER_LEN, KEY_LEN, Layout, XATTR_LEN, dir, key,
};
use super::tree_check::{Tree, check_group};
use super::validate::{bad, validate};

/// The bytes of an index: a read-only file mapping or an owned buffer.
enum Backing {
    Map(memmap2::Mmap),
    Owned(Box<[u8]>),
}

impl Backing {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(b) => b,
        }
    }
}

/// The lookup index of one layer.
///
/// Cloning is cheap (the mapping is shared), so one index can serve every
/// [`LayerStack`](super::LayerStack) whose image contains the layer. Paths given to lookups
/// are relative to the layer root, components separated by `/` (`usr/bin/sh`); leading and
/// trailing slashes are ignored, and the empty path is the root. Non-canonical paths (`a//b`,
/// `a/./b`, `a/../b`) are never found.
///
/// A `LayerIndex` shows the layer on its own, whiteouts included; use a
/// [`LayerStack`](super::LayerStack) for what a container sees.
///
/// Lookups return `Result` because a directory's entries are checked the first time a lookup
/// reaches them: a file whose checksum matches but which breaks a rule of the format (a
/// hostile or buggy writer) fails there with [`IndexError::Malformed`], never with a wrong
/// answer or a panic. [`verify`](Self::verify) checks everything up front.
///
/// ```
/// use microsandbox_image::index::{EntryKind, EntryMeta, IndexBuilder, LayerIndex};
///
/// let mut b = IndexBuilder::new();
/// b.add(b"bin", EntryMeta { mode: 0o040755, ..Default::default() })?;
/// b.add(b"bin/sh", EntryMeta { mode: 0o100755, size: 125_560, inode: 42, ..Default::default() })?;
/// b.add_hardlink(b"bin/dash", b"bin/sh")?;
/// let index = LayerIndex::from_bytes(b.finish()?)?;
///
/// let sh = index.get(b"/bin/sh")?.expect("present");
/// assert_eq!((sh.kind(), sh.size(), sh.nlink()), (EntryKind::File, 125_560, 2));
/// assert_eq!(index.lookup(b"bin", b"dash")?.map(|e| e.inode()), Some(42));
/// let names: Vec<_> = index.read_dir(b"bin")?.expect("a directory").map(|e| e.name()).collect();
/// assert_eq!(names, [&b"dash"[..], b"sh"]);
/// assert_eq!(index.hardlinks_of(42)?.count(), 2);
/// # Ok::<(), microsandbox_image::index::IndexError>(())
/// ```
#[derive(Clone)]
pub struct LayerIndex {
    data: Arc<Shared>,
    layout: Layout,
}

/// What the clones of one index share: its bytes and which directories and blocks were
/// checked.
struct Shared {
    backing: Backing,
    /// Bit `d` set once directory `d`'s entries passed `check_group`.
    checked: Box<[AtomicU64]>,
    blocks: Blocks,
}

impl LayerIndex {
    /// Map the index file at `path` and check its header, directory table and hardlink and
    /// xattr tables: O(directories + hardlinks + xattrs), whatever the number of entries (a
    /// version-1 file also has its whole checksum computed). Directory contents and the
    /// checksums of the blocks they occupy are checked when first looked up; see
    /// [`verify`](Self::verify).
    pub fn open(path: impl AsRef<Path>) -> Result<LayerIndex, IndexError> {
        let path = path.as_ref();
        let io = |op: &'static str| {
            move |source: std::io::Error| IndexError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        };
        let file = File::open(path).map_err(io("open"))?;
        let len = file.metadata().map_err(io("stat"))?.len();
        if len < HEADER_LEN as u64 {
            return Err(IndexError::Truncated {
                needed: HEADER_LEN as u64,
                len,
            });
        }
        // SAFETY: the mapping is read-only and private to this process, and `Backing` keeps
        // it alive as long as any slice of it is borrowed. Mapped files may still change
        // underneath us if another process writes them; the cache never does that (an index
        // is written to a temp file and renamed into a published layer, which is never
        // modified again: see cache/LAYOUT.md). Should it happen anyway, readers see
        // different bytes, not freed memory: every read is bounds-checked against the
        // mapping's length, so the worst outcome is a wrong answer or SIGBUS on a truncated
        // file, as with any mmap reader.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io("map"))?;
        Self::from_backing(Backing::Map(map))
    }

    /// Open an index held in memory (as returned by
    /// [`IndexBuilder::finish`](super::IndexBuilder::finish)), with the checks of
    /// [`open`](Self::open).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<LayerIndex, IndexError> {
        Self::from_backing(Backing::Owned(bytes.into().into_boxed_slice()))
    }

    fn from_backing(data: Backing) -> Result<LayerIndex, IndexError> {
        let (layout, blocks) = validate(data.bytes())?;
        let checked = (0..layout.dir_count.div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(LayerIndex {
            data: Arc::new(Shared {
                backing: data,
                checked,
                blocks,
            }),
            layout,
        })
    }

    /// Check every directory's entries now (what lookups otherwise do on first use), so that
    /// no later lookup on this index can fail. Linear in the number of entries.
    pub fn verify(&self) -> Result<(), IndexError> {
        self.data.blocks.ensure_all(self.bytes())?;
        (0..self.layout.dir_count as u32).try_for_each(|d| self.group(d).map(drop))
    }

    /// Number of entries below the root (whiteouts included).
    pub fn len(&self) -> usize {
        self.layout.entry_count - 1
    }

    /// Whether the layer has no entry besides its root.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layer's root directory.
    pub fn root(&self) -> Entry<'_> {
        Entry::new(self, 0, 0)
    }

    /// The entry at `path`, whiteouts included; `Ok(None)` if there is none.
    pub fn get(&self, path: &[u8]) -> Result<Option<Entry<'_>>, IndexError> {
        let path = trim(path);
        if path.is_empty() {
            return Ok(Some(self.root()));
        }
        let (parent, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        self.lookup_in(parent, name)
    }

    /// The entry called `name` in directory `dir`; `Ok(None)` if there is none.
    pub fn lookup(&self, dir: &[u8], name: &[u8]) -> Result<Option<Entry<'_>>, IndexError> {
        self.lookup_in(trim(dir), name)
    }

    /// `name` in the directory at canonical path `dir`.
    fn lookup_in(&self, dir: &[u8], name: &[u8]) -> Result<Option<Entry<'_>>, IndexError> {
        let Some(d) = self.find_dir(dir)? else {
            return Ok(None);
        };
        Ok(self.find_child(d, name)?.map(|id| Entry::new(self, id, 0)))
    }

    /// The entries of directory `path` in name order (whiteouts included), or `Ok(None)` if
    /// `path` is not a directory of this layer.
    pub fn read_dir(
        &self,
        path: &[u8],
    ) -> Result<Option<impl ExactSizeIterator<Item = Entry<'_>> + '_>, IndexError> {
        let Some(d) = self.find_dir(trim(path))? else {
            return Ok(None);
        };
        Ok(Some(self.group(d)?.map(move |id| Entry::new(self, id, 0))))
    }

    /// Every entry of this layer whose host inode is `inode` and that shares it with another
    /// entry (a hardlink group), in entry order; empty if no group has that inode.
    pub fn hardlinks_of(
        &self,
        inode: u64,
    ) -> Result<impl Iterator<Item = Entry<'_>> + '_, IndexError> {
        let l = &self.layout;
        let b = self.bytes();
        let table =
            format::slice(b, l.hardlinks_off, l.hardlink_count * HARDLINK_LEN).unwrap_or_default();
        let (recs, _) = table.as_chunks::<HARDLINK_LEN>();
        let start = recs.partition_point(|r| format::u64_at(r, 0) < inode);
        let group = recs.get(start..).unwrap_or_default();
        let group = &group[..group.partition_point(|r| format::u64_at(r, 0) == inode)];
        for r in group {
            self.group(self.dir_of(format::u32_at(r, 8)))?;
        }
        Ok(group
            .iter()
            .map(move |r| Entry::new(self, format::u32_at(r, 8), 0)))
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.backing.bytes()
    }

    /// Entry range of directory `d`, after checking its entries if no lookup did before.
    #[inline]
    pub(crate) fn group(&self, d: u32) -> Result<Range<u32>, IndexError> {
        if !self.is_checked(d) {
            self.check_groups_to(d)?;
        }
        Ok(self.children(d))
    }

    /// Whether directory `d`'s group passed its checks (out of range: treated as checked, and
    /// `children` gives it no entries).
    #[inline]
    fn is_checked(&self, d: u32) -> bool {
        let (word, bit) = (d as usize / 64, 1u64 << (d % 64));
        self.data
            .checked
            .get(word)
            .is_none_or(|w| w.load(Ordering::Acquire) & bit != 0)
    }

    /// Check directory `d`'s group, after those of its unchecked ancestors (top down: a
    /// directory's own record is checked against its parent's checked group).
    #[cold]
    fn check_groups_to(&self, d: u32) -> Result<(), IndexError> {
        let mut chain = vec![d];
        let mut cur = d;
        while cur != 0 {
            let parent = format::u32_at(
                self.bytes(),
                self.layout.dirs_off + cur as usize * DIR_LEN + dir::PARENT,
            );
            if parent >= cur {
                return Err(bad(
                    "dirs",
                    cur as usize,
                    "parent does not come before the directory",
                ));
            }
            if self.is_checked(parent) {
                break;
            }
            chain.push(parent);
            cur = parent;
        }
        let tree = Tree::new(self.bytes(), &self.layout, &self.data.blocks);
        for &x in chain.iter().rev() {
            check_group(&tree, x as usize)?;
            if let Some(w) = self.data.checked.get(x as usize / 64) {
                w.fetch_or(1u64 << (x % 64), Ordering::Release);
            }
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `len` bytes of the string pool from `off` (empty if out of range, which checked
    /// records never are).
    #[inline]
    pub(crate) fn pool_str(&self, off: usize, len: usize) -> &[u8] {
        let pool = format::slice(self.bytes(), self.layout.pool_off, self.layout.pool_len);
        pool.and_then(|p| format::slice(p, off, len))
            .unwrap_or_default()
    }

    #[inline]
    fn key(&self, id: u32) -> [u8; KEY_LEN] {
        format::arr(self.bytes(), self.layout.keys_off + id as usize * KEY_LEN).unwrap_or_default()
    }

    pub(crate) fn key_flags(&self, id: u32) -> u16 {
        format::u16_at(&self.key(id), key::FLAGS)
    }

    pub(crate) fn key_name(&self, id: u32) -> &[u8] {
        let k = self.key(id);
        self.pool_str(
            format::u32_at(&k, key::NAME_OFF) as usize,
            format::u16_at(&k, key::NAME_LEN) as usize,
        )
    }

    /// Entry range of directory `d`, unchecked: for entries already reached through
    /// [`group`](Self::group).
    #[inline]
    fn children(&self, d: u32) -> Range<u32> {
        let off = self.layout.dirs_off + d as usize * DIR_LEN;
        let b = self.bytes();
        let first = format::u32_at(b, off + dir::FIRST_ENTRY);
        let count = format::u32_at(b, off + dir::ENTRY_COUNT);
        first..first.saturating_add(count)
    }

    /// Binary search of `name` among directory `d`'s entries.
    #[inline]
    pub(crate) fn find_child(&self, d: u32, name: &[u8]) -> Result<Option<u32>, IndexError> {
        let Range { start, end } = self.group(d)?;
        let b = self.bytes();
        let l = &self.layout;
        let keys = b
            .get(l.keys_off + start as usize * KEY_LEN..l.keys_off + end as usize * KEY_LEN)
            .unwrap_or_default();
        let pool = format::slice(b, l.pool_off, l.pool_len).unwrap_or_default();
        let (keys, _) = keys.as_chunks::<KEY_LEN>();
        let want = format::name_prefix(name);
        let pos = keys
            .binary_search_by(|k| {
                let prefix = format::u64_at(k, key::PREFIX);
                if prefix != want {
                    return prefix.cmp(&want);
                }
                let len = format::u16_at(k, key::NAME_LEN) as usize;
                if len <= 8 && name.len() <= 8 {
                    return len.cmp(&name.len()); // the prefixes hold both names whole
                }
                let off = format::u32_at(k, key::NAME_OFF) as usize;
                let probe = format::slice(pool, off, len).unwrap_or_default();
                format::cmp_name(prefix, probe, want, name)
            })
            .ok();
        Ok(pos.map(|pos| start + pos as u32))
    }

    /// Directory record index of the directory at canonical path `path`, resolved one
    /// component at a time from the root (so only the directories on the way are checked);
    /// `Ok(None)` if a component is missing or not a directory.
    pub(crate) fn find_dir(&self, path: &[u8]) -> Result<Option<u32>, IndexError> {
        let mut d = 0u32;
        if path.is_empty() {
            return Ok(Some(d));
        }
        for name in path.split(|&c| c == b'/') {
            let Some(id) = self.find_child(d, name)? else {
                return Ok(None);
            };
            let e = Entry::new(self, id, 0);
            if !e.is_dir() {
                return Ok(None);
            }
            d = e.dir_index();
        }
        Ok(Some(d))
    }

    fn dir_path_of(&self, rec: &[u8]) -> &[u8] {
        self.pool_str(
            format::u32_at(rec, dir::PATH_OFF) as usize,
            format::u32_at(rec, dir::PATH_LEN) as usize,
        )
    }

    /// The directory whose group holds entry `id > 0` (groups are contiguous and in table
    /// order: the last directory starting at or before `id`).
    fn dir_of(&self, id: u32) -> u32 {
        let l = &self.layout;
        let table =
            format::slice(self.bytes(), l.dirs_off, l.dir_count * DIR_LEN).unwrap_or_default();
        let (recs, _) = table.as_chunks::<DIR_LEN>();
        recs.partition_point(|r| format::u32_at(r, dir::FIRST_ENTRY) <= id)
            .saturating_sub(1) as u32
    }

    /// Full path of entry `id`: its directory's path, `/`, its name.
    pub(crate) fn path_of(&self, id: u32) -> Vec<u8> {
        if id == 0 {
            return Vec::new();
        }
        let l = &self.layout;
        let table =
            format::slice(self.bytes(), l.dirs_off, l.dir_count * DIR_LEN).unwrap_or_default();
        let (recs, _) = table.as_chunks::<DIR_LEN>();
        let mut path = recs
            .get(self.dir_of(id) as usize)
            .map(|r| self.dir_path_of(r))
            .unwrap_or_default()
            .to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(self.key_name(id));
        path
    }

    /// Record range of entry `id`'s xattrs.
    pub(crate) fn xattr_range(&self, id: u32) -> Range<usize> {
        let l = &self.layout;
        let table = format::slice(self.bytes(), l.xattrs_off, l.xattr_count * XATTR_LEN)
            .unwrap_or_default();
        let (recs, _) = table.as_chunks::<XATTR_LEN>();
        let start = recs.partition_point(|r| format::u32_at(r, 0) < id);
        let end = start
            + recs
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|r| format::u32_at(*r, 0) == id)
                .count();
        start..end
    }

    /// Name and value of xattr record `i`.
    pub(crate) fn xattr(&self, i: usize) -> (&[u8], &[u8]) {
        let off = self.layout.xattrs_off + i * XATTR_LEN;
        let b = self.bytes();
        let s = |o: usize, l: usize| {
            self.pool_str(
                format::u32_at(b, off + o) as usize,
                format::u32_at(b, off + l) as usize,
            )
        };
        (s(4, 8), s(12, 16))
    }
}

/// Strip leading and trailing slashes.
pub(crate) fn trim(mut path: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = path {
        path = rest;
    }
    while let [rest @ .., b'/'] = path {
        path = rest;
    }
    path
}

impl fmt::Debug for LayerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerIndex")
            .field("entries", &self.layout.entry_count)
            .field("dirs", &self.layout.dir_count)
            .field("bytes", &self.layout.file_len)
            .finish()
    }
}
