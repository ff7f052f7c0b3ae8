//! [`LayerIndex`]: one index file, memory-mapped (or held in memory), validated once when it
//! is opened, then answering zero-copy lookups within its layer. The only `unsafe` of the
//! index module is the `mmap` call below.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use super::IndexError;
use super::entry::Entry;
use super::format::{
    self, DIR_LEN, HARDLINK_LEN, HEADER_LEN, KEY_LEN, Layout, XATTR_LEN, dir, key,
};
use super::validate::validate;

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

/// The lookup index of one layer, validated.
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
/// ```
/// use microsandbox_image::index::{EntryKind, EntryMeta, IndexBuilder, LayerIndex};
///
/// let mut b = IndexBuilder::new();
/// b.add(b"bin", EntryMeta { mode: 0o040755, ..Default::default() })?;
/// b.add(b"bin/sh", EntryMeta { mode: 0o100755, size: 125_560, inode: 42, ..Default::default() })?;
/// b.add_hardlink(b"bin/dash", b"bin/sh")?;
/// let index = LayerIndex::from_bytes(b.finish()?)?;
///
/// let sh = index.get(b"/bin/sh").unwrap();
/// assert_eq!((sh.kind(), sh.size(), sh.nlink()), (EntryKind::File, 125_560, 2));
/// assert_eq!(index.lookup(b"bin", b"dash").unwrap().inode(), 42);
/// let names: Vec<_> = index.read_dir(b"bin").unwrap().map(|e| e.name()).collect();
/// assert_eq!(names, [&b"dash"[..], b"sh"]);
/// assert_eq!(index.hardlinks_of(42).count(), 2);
/// # Ok::<(), microsandbox_image::index::IndexError>(())
/// ```
#[derive(Clone)]
pub struct LayerIndex {
    data: Arc<Backing>,
    layout: Layout,
}

impl LayerIndex {
    /// Map the index file at `path` and validate it completely (header, checksum, and every
    /// offset, length, sort order and cross-reference), so that no later lookup can fail.
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

    /// Validate an index held in memory (as returned by
    /// [`IndexBuilder::finish`](super::IndexBuilder::finish)).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<LayerIndex, IndexError> {
        Self::from_backing(Backing::Owned(bytes.into().into_boxed_slice()))
    }

    fn from_backing(data: Backing) -> Result<LayerIndex, IndexError> {
        let layout = validate(data.bytes())?;
        Ok(LayerIndex {
            data: Arc::new(data),
            layout,
        })
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

    /// The entry at `path`, whiteouts included.
    pub fn get(&self, path: &[u8]) -> Option<Entry<'_>> {
        let path = trim(path);
        if path.is_empty() {
            return Some(self.root());
        }
        let (parent, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let d = self.find_dir(parent)?;
        self.find_child(d, name).map(|id| Entry::new(self, id, 0))
    }

    /// The entry called `name` in directory `dir`.
    pub fn lookup(&self, dir: &[u8], name: &[u8]) -> Option<Entry<'_>> {
        let d = self.find_dir(trim(dir))?;
        self.find_child(d, name).map(|id| Entry::new(self, id, 0))
    }

    /// The entries of directory `path` in name order (whiteouts included), or `None` if
    /// `path` is not a directory of this layer.
    pub fn read_dir(&self, path: &[u8]) -> Option<impl ExactSizeIterator<Item = Entry<'_>> + '_> {
        let d = self.find_dir(trim(path))?;
        Some(self.children(d).map(move |id| Entry::new(self, id, 0)))
    }

    /// Every entry of this layer whose host inode is `inode` and that shares it with another
    /// entry (a hardlink group), in entry order; empty if no group has that inode.
    pub fn hardlinks_of(&self, inode: u64) -> impl Iterator<Item = Entry<'_>> + '_ {
        let l = &self.layout;
        let b = self.bytes();
        let table =
            format::slice(b, l.hardlinks_off, l.hardlink_count * HARDLINK_LEN).unwrap_or_default();
        let (recs, _) = table.as_chunks::<HARDLINK_LEN>();
        let start = recs.partition_point(|r| format::u64_at(r, 0) < inode);
        recs.get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(move |r| format::u64_at(*r, 0) == inode)
            .map(move |r| Entry::new(self, format::u32_at(r, 8), 0))
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    #[inline]
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `len` bytes of the string pool from `off` (validated when opened; empty otherwise).
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

    /// Entry range of directory `d`.
    #[inline]
    pub(crate) fn children(&self, d: u32) -> Range<u32> {
        let off = self.layout.dirs_off + d as usize * DIR_LEN;
        let b = self.bytes();
        let first = format::u32_at(b, off + dir::FIRST_ENTRY);
        let count = format::u32_at(b, off + dir::ENTRY_COUNT);
        first..first.saturating_add(count)
    }

    /// Binary search of `name` among directory `d`'s entries.
    #[inline]
    pub(crate) fn find_child(&self, d: u32, name: &[u8]) -> Option<u32> {
        let Range { start, end } = self.children(d);
        let b = self.bytes();
        let l = &self.layout;
        let keys =
            b.get(l.keys_off + start as usize * KEY_LEN..l.keys_off + end as usize * KEY_LEN)?;
        let pool = format::slice(b, l.pool_off, l.pool_len)?;
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
            .ok()?;
        Some(start + pos as u32)
    }

    /// Directory record index of the directory at canonical path `path`.
    pub(crate) fn find_dir(&self, path: &[u8]) -> Option<u32> {
        let l = &self.layout;
        let table = format::slice(self.bytes(), l.dirs_off, l.dir_count * DIR_LEN)?;
        let (recs, _) = table.as_chunks::<DIR_LEN>();
        recs.binary_search_by(|r| format::cmp_bytes(self.dir_path_of(r), path))
            .ok()
            .map(|d| d as u32)
    }

    fn dir_path_of(&self, rec: &[u8]) -> &[u8] {
        self.pool_str(
            format::u32_at(rec, dir::PATH_OFF) as usize,
            format::u32_at(rec, dir::PATH_LEN) as usize,
        )
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
        // Groups are contiguous and in table order: the last dir starting at or before `id`.
        let d = recs
            .partition_point(|r| format::u32_at(r, dir::FIRST_ENTRY) <= id)
            .saturating_sub(1);
        let mut path = recs
            .get(d)
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
