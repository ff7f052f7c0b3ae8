//! The tree part of index validation, in two halves:
//! * [`check_dirs`], when a file is opened, in O(directories): the root entry and the tiling
//!   of the entries by the directory records; in version 1 also every directory record
//!   (sorted paths, parent links) with its own entry, which with paths growing from parent to
//!   child rules out cycles;
//! * [`check_group`], the first time a lookup touches a directory, in O(its entries): each
//!   entry's rules, name prefixes, strict name order, and the links from entries to the
//!   directory, hardlink and xattr tables; in version 2 also the directory's own record
//!   (parent before it, own entry in the parent, path), its blocks' checksums, and its names'
//!   bytes. The reader checks a directory's parent before the directory.
//!
//! Reads go through fixed-size record views so bounds checks stay out of the loops.

use super::IndexError;
use super::blocks::Blocks;
use super::format::{
    self, ATTR_LEN, DIR_LEN, HARDLINK_LEN, KEY_LEN, Layout, PERM_MASK, WHITEOUT_MODE, XATTR_LEN,
    attr, dir, flag, key,
};
use super::validate::bad;
use crate::stat::mode;

/// Record views of an index's tables.
pub(super) struct Tree<'a> {
    keys: &'a [[u8; KEY_LEN]],
    attrs: &'a [[u8; ATTR_LEN]],
    dirs: &'a [[u8; DIR_LEN]],
    hardlinks: &'a [[u8; HARDLINK_LEN]],
    xattrs: &'a [[u8; XATTR_LEN]],
    /// The whole file, for word loads that may run past a name into the next bytes.
    file: &'a [u8],
    keys_off: usize,
    attrs_off: usize,
    pool_off: usize,
    pool: &'a [u8],
    names_len: usize,
    blocks: &'a Blocks,
    /// Version 2: blocks, names and directory records are checked per directory.
    lazy: bool,
}

const NO_KEY: [u8; KEY_LEN] = [0; KEY_LEN];
const NO_ATTR: [u8; ATTR_LEN] = [0; ATTR_LEN];
const NO_DIR: [u8; DIR_LEN] = [0; DIR_LEN];

/// `rem` bytes at `pos` of `file` as a big-endian word (at most 8, zero-padded): the stored
/// form of a name's prefix.
#[inline(always)]
fn word(file: &[u8], pos: usize, rem: usize) -> u64 {
    if rem == 0 {
        return 0;
    }
    let w = match format::arr::<8>(file, pos) {
        Some(w) => u64::from_be_bytes(w),
        None => format::name_prefix(file.get(pos..).unwrap_or_default()),
    };
    if rem >= 8 {
        w
    } else {
        w & !(u64::MAX >> (8 * rem))
    }
}

impl<'a> Tree<'a> {
    /// Views of the tables of `b`, whose header was checked to describe `l`.
    pub(super) fn new(b: &'a [u8], l: &Layout, blocks: &'a Blocks) -> Tree<'a> {
        let table = |off, len| format::slice(b, off, len).unwrap_or_default();
        Tree {
            keys: table(l.keys_off, l.entry_count * KEY_LEN).as_chunks().0,
            attrs: table(l.attrs_off, l.entry_count * ATTR_LEN).as_chunks().0,
            dirs: table(l.dirs_off, l.dir_count * DIR_LEN).as_chunks().0,
            hardlinks: table(l.hardlinks_off, l.hardlink_count * HARDLINK_LEN)
                .as_chunks()
                .0,
            xattrs: table(l.xattrs_off, l.xattr_count * XATTR_LEN).as_chunks().0,
            file: b,
            keys_off: l.keys_off,
            attrs_off: l.attrs_off,
            pool_off: l.pool_off,
            pool: table(l.pool_off, l.pool_len),
            names_len: l.names_len,
            blocks,
            lazy: l.lazy(),
        }
    }

    /// Check the blocks under pool bytes `off..off + len`.
    fn ensure_pool(&self, off: usize, len: usize) -> Result<(), IndexError> {
        let at = self.pool_off.saturating_add(off);
        self.blocks.ensure(self.file, at..at.saturating_add(len))
    }

    #[inline(always)]
    fn key(&self, e: usize) -> &'a [u8; KEY_LEN] {
        self.keys.get(e).unwrap_or(&NO_KEY)
    }

    #[inline(always)]
    fn attr(&self, e: usize) -> &'a [u8; ATTR_LEN] {
        self.attrs.get(e).unwrap_or(&NO_ATTR)
    }

    #[inline(always)]
    fn dir(&self, d: usize) -> &'a [u8; DIR_LEN] {
        self.dirs.get(d).unwrap_or(&NO_DIR)
    }

    fn name(&self, e: usize) -> &'a [u8] {
        let k = self.key(e);
        let (off, len) = (
            format::u32_at(k, key::NAME_OFF),
            format::u16_at(k, key::NAME_LEN),
        );
        format::slice(self.pool, off as usize, len as usize).unwrap_or_default()
    }

    fn dir_path(&self, d: usize) -> Option<&'a [u8]> {
        let r = self.dir(d);
        let (off, len) = (
            format::u32_at(r, dir::PATH_OFF),
            format::u32_at(r, dir::PATH_LEN),
        );
        format::slice(self.pool, off as usize, len as usize)
    }

    /// Whether entry `x`'s name sorts strictly before entry `y`'s (prefixes were checked).
    #[inline(always)]
    fn name_lt(&self, x: usize, y: usize) -> bool {
        let (px, py) = (
            format::u64_at(self.key(x), key::PREFIX),
            format::u64_at(self.key(y), key::PREFIX),
        );
        if px != py {
            return px < py;
        }
        format::cmp_name(px, self.name(x), py, self.name(y)).is_lt()
    }

    /// Rules of entry `i > 0`, in the group of a directory. Returns its flags.
    #[inline(always)]
    fn entry(&self, i: usize) -> Result<u16, IndexError> {
        let k = self.key(i);
        let a = self.attr(i);
        let kbad = |reason| Err(bad("keys", i, reason));
        let abad = |reason| Err(bad("attrs", i, reason));
        let (name_off, name_len) = (
            format::u32_at(k, key::NAME_OFF) as usize,
            format::u16_at(k, key::NAME_LEN) as usize,
        );
        if name_off + name_len > self.names_len {
            return kbad("name outside the names region");
        }
        if format::u64_at(k, key::PREFIX) != word(self.file, self.pool_off + name_off, name_len) {
            return kbad("prefix does not match the name");
        }
        if name_len <= 2 && matches!(self.name(i), b"" | b"." | b"..") {
            return kbad("invalid name");
        }
        let flags = format::u16_at(k, key::FLAGS);
        let m = format::u32_at(a, attr::MODE);
        let aux = format::u32_at(a, attr::AUX);
        let size = format::u64_at(a, attr::SIZE);
        if flags & !flag::ALL != 0 {
            return kbad("unknown flag bits");
        }
        if m & !(mode::S_IFMT | PERM_MASK) != 0 {
            return abad("mode has bits outside type and permissions");
        }
        if format::u32_at(a, attr::MTIME_NSEC) >= 1_000_000_000 {
            return abad("mtime nanoseconds out of range");
        }
        if flags & flag::WHITEOUT != 0 {
            if flags != flag::WHITEOUT {
                return kbad("whiteout with other flags");
            }
            if m != WHITEOUT_MODE || size != 0 || aux != 0 {
                return abad("whiteout is not c 0 0 without content");
            }
            return Ok(flags);
        }
        let kind = m & mode::S_IFMT;
        let is_dir = kind == mode::S_IFDIR;
        // If-chain, most frequent kinds first (a jump table mispredicts).
        if kind == mode::S_IFREG {
            if aux != 0 {
                return abad("aux field set on a regular file");
            }
        } else if is_dir {
            if size != 0 {
                return abad("directory with a size");
            }
            let d = aux as usize;
            if d == 0 || d >= self.dirs.len() {
                return abad("directory entry names no directory record");
            }
            if format::u32_at(self.dir(d), dir::SELF_ENTRY) as usize != i {
                return abad("directory record does not point back to its entry");
            }
        } else if kind == mode::S_IFLNK {
            if (aux as u64).saturating_add(size) > self.pool.len() as u64 {
                return abad("symlink target past the end of the pool");
            }
        } else if kind == mode::S_IFCHR || kind == mode::S_IFBLK {
            if size != 0 {
                return abad("device with a size");
            }
        } else if kind == mode::S_IFIFO {
            if aux != 0 || size != 0 {
                return abad("aux field or size set on a FIFO");
            }
        } else {
            return abad("unknown file type");
        }
        if flags & (flag::OPAQUE | flag::IMPLICIT) != 0 && !is_dir {
            return kbad("opaque or implicit flag on a non-directory");
        }
        if flags & flag::HARDLINK != 0 && is_dir {
            return kbad("hardlink flag on a directory");
        }
        Ok(flags)
    }

    /// The root entry (entry 0): an unnamed directory naming dir 0.
    fn root(&self) -> Result<u16, IndexError> {
        let (k, a) = (self.key(0), self.attr(0));
        if format::u16_at(k, key::NAME_LEN) != 0 || format::u64_at(k, key::PREFIX) != 0 {
            return Err(bad("keys", 0, "the root entry has a name"));
        }
        let flags = format::u16_at(k, key::FLAGS);
        if flags & (flag::WHITEOUT | flag::HARDLINK) != 0 || flags & !flag::ALL != 0 {
            return Err(bad("keys", 0, "bad flags on the root entry"));
        }
        let m = format::u32_at(a, attr::MODE);
        if m & mode::S_IFMT != mode::S_IFDIR || m & !(mode::S_IFMT | PERM_MASK) != 0 {
            return Err(bad("attrs", 0, "the root entry is not a directory"));
        }
        if format::u32_at(a, attr::AUX) != 0 || format::u64_at(a, attr::SIZE) != 0 {
            return Err(bad("attrs", 0, "the root entry does not name dir 0"));
        }
        if format::u32_at(a, attr::MTIME_NSEC) >= 1_000_000_000 {
            return Err(bad("attrs", 0, "mtime nanoseconds out of range"));
        }
        Ok(flags)
    }

    /// Rules of directory record `d > 0`.
    fn dir_record(&self, d: usize, path: &[u8], prev_path: &[u8]) -> Result<(), IndexError> {
        let fail = |reason| Err(bad("dirs", d, reason));
        let r = self.dir(d);
        let self_entry = format::u32_at(r, dir::SELF_ENTRY) as usize;
        let parent = format::u32_at(r, dir::PARENT) as usize;
        // Paths are long and share long prefixes: `memcmp` (slice order) beats the word
        // loop of `cmp_bytes`, which is tuned for short names.
        if path <= prev_path {
            return fail("paths not strictly sorted");
        }
        if parent == d || parent >= self.dirs.len() {
            return fail("bad parent index");
        }
        self.own_entry(d, parent, self_entry)?;
        let k = self.key(self_entry);
        let (name_off, name_len) = (
            format::u32_at(k, key::NAME_OFF) as usize,
            format::u16_at(k, key::NAME_LEN) as usize,
        );
        // The names region holds no `/` or NUL (checked at open), so this makes a valid name
        // and, by induction from the root, a valid path.
        let name = self.name(self_entry);
        if name_off + name_len > self.names_len || matches!(name, b"" | b"." | b"..") {
            return fail("own entry has an invalid name");
        }
        if !self.joins(parent, self_entry, path) {
            return fail("path is not the parent's path joined with the entry name");
        }
        Ok(())
    }
}

impl Tree<'_> {
    /// Whether entry `e` has a record in the hardlinks table (sorted by `(inode, entry)`).
    fn in_hardlinks(&self, e: usize) -> bool {
        let want = (format::u64_at(self.attr(e), attr::INODE), e as u32);
        self.hardlinks
            .binary_search_by(|r| (format::u64_at(r, 0), format::u32_at(r, 8)).cmp(&want))
            .is_ok()
    }

    /// Whether entry `e` has a record in the xattrs table (sorted by entry first).
    fn in_xattrs(&self, e: usize) -> bool {
        let e = e as u32;
        let at = self.xattrs.partition_point(|r| format::u32_at(r, 0) < e);
        self.xattrs
            .get(at)
            .is_some_and(|r| format::u32_at(r, 0) == e)
    }

    /// The links of a flagged entry to the hardlinks and xattrs tables (whose records were
    /// checked to point at flagged entries when the file was opened).
    fn table_links(&self, e: usize, flags: u16) -> Result<(), IndexError> {
        if flags & flag::HARDLINK != 0 && !self.in_hardlinks(e) {
            return Err(bad("keys", e, "hardlink flag without a hardlinks record"));
        }
        if flags & flag::HAS_XATTRS != 0 && !self.in_xattrs(e) {
            return Err(bad("keys", e, "has-xattrs flag without an xattrs record"));
        }
        Ok(())
    }
}

/// Open-time checks: the root entry and the tiling of the entries by the directory records;
/// with `full` (version 1) also every directory record with its own entry (its type, its link
/// back to the record, its name). Afterwards entry groups tile the entries table, and with
/// `full` directory paths are valid and strictly sorted.
pub(super) fn check_dirs(t: &Tree<'_>, full: bool) -> Result<(), IndexError> {
    let root_flags = t.root()?;
    t.table_links(0, root_flags)?;
    let mut next_entry = 1usize;
    let mut prev_path: &[u8] = &[];
    for d in 0..t.dirs.len() {
        let r = t.dir(d);
        let fail = |reason| Err(bad("dirs", d, reason));
        let Some(path) = t.dir_path(d) else {
            return fail("path past the end of the pool");
        };
        let first = format::u32_at(r, dir::FIRST_ENTRY) as usize;
        let count = format::u32_at(r, dir::ENTRY_COUNT) as usize;
        if first != next_entry {
            return fail("entry groups are not contiguous in table order");
        }
        next_entry = match first.checked_add(count) {
            Some(end) if end <= t.keys.len() => end,
            _ => return fail("entry group past the end of the entries"),
        };
        if d == 0 {
            if !path.is_empty()
                || format::u32_at(r, dir::SELF_ENTRY) != 0
                || format::u32_at(r, dir::PARENT) != 0
            {
                return fail("dir 0 is not the root");
            }
            continue;
        }
        if full {
            t.dir_record(d, path, prev_path)?;
            prev_path = path;
        }
    }
    if next_entry != t.keys.len() {
        let last = t.dirs.len().saturating_sub(1);
        return Err(bad("dirs", last, "entries not covered by any directory"));
    }
    Ok(())
}

/// Checks of directory `d`'s entry group, run the first time a lookup touches it: every
/// entry's rules, strict name order, and its links to the other tables; in version 2 also the
/// directory's own record and the checksums of the blocks all this reads. `check_dirs` must
/// have passed, and (version 2) the group of `d`'s parent.
pub(super) fn check_group(t: &Tree<'_>, d: usize) -> Result<(), IndexError> {
    let r = t.dir(d);
    let first = format::u32_at(r, dir::FIRST_ENTRY) as usize;
    let end = (first + format::u32_at(r, dir::ENTRY_COUNT) as usize).min(t.keys.len());
    if t.lazy {
        for (off, len) in [(t.keys_off, KEY_LEN), (t.attrs_off, ATTR_LEN)] {
            t.blocks
                .ensure(t.file, off + first * len..off + end.max(first) * len)?;
        }
        if d > 0 {
            t.own_record(d)?;
        }
    }
    for e in first..end {
        if t.lazy {
            let k = t.key(e);
            t.ensure_pool(
                format::u32_at(k, key::NAME_OFF) as usize,
                format::u16_at(k, key::NAME_LEN) as usize,
            )?;
        }
        let flags = t.entry(e)?;
        if t.lazy {
            t.lazy_entry(e)?;
        }
        if e > first && !t.name_lt(e - 1, e) {
            let reason = "names not strictly sorted within the directory";
            return Err(bad("keys", e, reason));
        }
        if flags & (flag::HARDLINK | flag::HAS_XATTRS) != 0 {
            t.table_links(e, flags)?;
        }
    }
    Ok(())
}

impl Tree<'_> {
    /// Version 2, per entry of a group being checked (after `entry`): the name's bytes (the
    /// names region is not scanned at open) and the blocks under a symlink's target.
    fn lazy_entry(&self, e: usize) -> Result<(), IndexError> {
        if self.name(e).iter().any(|&c| c == b'/' || c == 0) {
            return Err(bad("keys", e, "name contains `/` or NUL"));
        }
        let a = self.attr(e);
        if format::u32_at(a, attr::MODE) & mode::S_IFMT == mode::S_IFLNK
            && format::u16_at(self.key(e), key::FLAGS) & flag::WHITEOUT == 0
        {
            self.ensure_pool(
                format::u32_at(a, attr::AUX) as usize,
                format::u64_at(a, attr::SIZE) as usize,
            )?;
        }
        Ok(())
    }

    /// Directory `d`'s own entry `e`: inside the group of `parent`, and a directory (not a
    /// whiteout) naming `d`. Both versions check it, at open (1) or with `d`'s group (2).
    fn own_entry(&self, d: usize, parent: usize, e: usize) -> Result<(), IndexError> {
        let fail = |reason| Err(bad("dirs", d, reason));
        let pr = self.dir(parent);
        let pfirst = format::u32_at(pr, dir::FIRST_ENTRY) as usize;
        let pcount = format::u32_at(pr, dir::ENTRY_COUNT) as usize;
        if e < pfirst || e - pfirst >= pcount {
            return fail("own entry is not in the parent directory");
        }
        let (k, a) = (self.key(e), self.attr(e));
        if format::u32_at(a, attr::MODE) & mode::S_IFMT != mode::S_IFDIR
            || format::u16_at(k, key::FLAGS) & flag::WHITEOUT != 0
            || format::u32_at(a, attr::AUX) as usize != d
        {
            return fail("own entry is not a directory naming this record");
        }
        Ok(())
    }

    /// Version 2: the record of directory `d > 0`, whose parent's group passed: the parent
    /// comes first in the table, the own entry is a directory of the parent's group naming
    /// `d`, and the path is the parent's path joined with that entry's name.
    fn own_record(&self, d: usize) -> Result<(), IndexError> {
        let fail = |reason| Err(bad("dirs", d, reason));
        let r = self.dir(d);
        let parent = format::u32_at(r, dir::PARENT) as usize;
        if parent >= d {
            return fail("parent does not come before the directory");
        }
        let self_entry = format::u32_at(r, dir::SELF_ENTRY) as usize;
        self.own_entry(d, parent, self_entry)?;
        self.ensure_pool(
            format::u32_at(r, dir::PATH_OFF) as usize,
            format::u32_at(r, dir::PATH_LEN) as usize,
        )?;
        let Some(path) = self.dir_path(d) else {
            return fail("path past the end of the pool");
        };
        if !self.joins(parent, self_entry, path) {
            return fail("path is not the parent's path joined with the entry name");
        }
        Ok(())
    }

    /// Whether `path` is directory `parent`'s path, `/`, and entry `e`'s name (just the name
    /// under the root).
    fn joins(&self, parent: usize, e: usize, path: &[u8]) -> bool {
        let name = self.name(e);
        let parent_path = self.dir_path(parent).unwrap_or_default();
        if parent_path.is_empty() {
            path == name
        } else {
            path.len() == parent_path.len() + 1 + name.len()
                && path.starts_with(parent_path)
                && path.get(parent_path.len()) == Some(&b'/')
                && path.ends_with(name)
        }
    }
}
