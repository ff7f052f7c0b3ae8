//! Validation of an index file when it is opened: header, checksum, canonical section layout,
//! and the tables whose rules span the whole file (directory records tiling the entries,
//! hardlink and xattr records). What opening reads differs by version:
//!
//! * version 1 has one checksum over the whole file, so opening reads all of it, and also
//!   checks the names region and every directory record with its own entry
//!   (`tree_check::check_dirs`);
//! * version 2 checks the header checksum (header and block table) at open, then only the
//!   blocks holding the directory, hardlink and xattr tables, the root entry and the entries
//!   and strings those records reference; everything else is checked per 64 KiB block
//!   (`blocks.rs`) and per directory when a lookup first reaches it.
//!
//! The entries of a directory are checked the first time a lookup touches it
//! (`tree_check::check_group`, called by the reader). Together the halves enforce every rule
//! of `FORMAT.md`.

use super::IndexError;
use super::blocks::Blocks;
use super::format::{
    self, ATTR_LEN, HARDLINK_LEN, HEADER_LEN, KEY_LEN, Layout, MAGIC, VERSION, VERSION_1,
    XATTR_LEN, attr, flag, hdr, key,
};
use super::tree_check as tree;

pub(super) fn bad(section: &'static str, index: usize, reason: &'static str) -> IndexError {
    IndexError::Malformed {
        section,
        index: index as u64,
        reason,
    }
}

/// Check `b` as a whole index file (as far as opening checks it) and return its layout and
/// the state of its block checksums.
pub(crate) fn validate(b: &[u8]) -> Result<(Layout, Blocks), IndexError> {
    let l = header(b)?;
    let blocks = Blocks::new(&l);
    let pool =
        format::slice(b, l.pool_off, l.pool_len).ok_or(bad("header", 0, "pool out of range"))?;
    let t = tree::Tree::new(b, &l, &blocks);
    if l.lazy() {
        let table = |off: usize, len: usize| off..off.saturating_add(len);
        blocks.ensure(b, table(l.dirs_off, l.dir_count * format::DIR_LEN))?;
        blocks.ensure(b, table(l.hardlinks_off, l.hardlink_count * HARDLINK_LEN))?;
        blocks.ensure(b, table(l.xattrs_off, l.xattr_count * XATTR_LEN))?;
        blocks.ensure(b, table(l.keys_off, KEY_LEN))?;
        blocks.ensure(b, table(l.attrs_off, ATTR_LEN))?;
        tree::check_dirs(&t, false)?;
    } else {
        let names = pool.get(..l.names_len).unwrap_or_default();
        if !clean_names(names) {
            return Err(bad("header", 0, "names region contains `/` or NUL"));
        }
        tree::check_dirs(&t, true)?;
    }
    hardlinks(b, &l, &blocks)?;
    xattrs(b, &l, pool, &blocks)?;
    Ok((l, blocks))
}

/// Check the header: what file this is, then that its sections sit where the canonical layout
/// puts them.
fn header(b: &[u8]) -> Result<Layout, IndexError> {
    let (version, file_len) = identify(b)?;
    let l = declared_layout(b, version)?;
    check_placement(b, &l, file_len)?;
    Ok(l)
}

/// Magic, version, file length and checksum; returns the version and the file length.
fn identify(b: &[u8]) -> Result<(u32, u64), IndexError> {
    let len = b.len() as u64;
    let magic: [u8; 8] = format::arr(b, 0).ok_or(IndexError::Truncated {
        needed: HEADER_LEN as u64,
        len,
    })?;
    if magic != MAGIC {
        return Err(IndexError::BadMagic { found: magic });
    }
    if b.len() < HEADER_LEN {
        return Err(IndexError::Truncated {
            needed: HEADER_LEN as u64,
            len,
        });
    }
    let version = format::u32_at(b, hdr::VERSION);
    if version != VERSION && version != VERSION_1 {
        return Err(IndexError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let file_len = format::u64_at(b, hdr::FILE_LEN);
    if file_len > len {
        return Err(IndexError::Truncated {
            needed: file_len,
            len,
        });
    }
    if file_len < len {
        return Err(bad("header", 0, "file is longer than its header says"));
    }
    let stored = format::u32_at(b, hdr::CHECKSUM);
    let computed = if version == VERSION_1 {
        format::checksum(b)
    } else {
        // The block table starts where the padded pool ends (what `format::seal` assumes
        // too); the layout checks below make sure that is the canonical place.
        format::header_checksum(b, format::data_end(b))
    };
    if stored != computed {
        return Err(IndexError::ChecksumMismatch { stored, computed });
    }
    Ok((version, file_len))
}

/// The layout the header's counts and lengths imply.
fn declared_layout(b: &[u8], version: u32) -> Result<Layout, IndexError> {
    let count = |off| format::u32_at(b, off) as usize;
    let pool_len = format::u64_at(b, hdr::POOL_LEN);
    if pool_len > u64::from(u32::MAX) {
        return Err(bad("header", 0, "pool longer than 2^32 - 1 bytes"));
    }
    let names_len = format::u64_at(b, hdr::NAMES_LEN);
    if names_len > pool_len {
        return Err(bad("header", 0, "names region longer than the pool"));
    }
    let entry_count = count(hdr::ENTRY_COUNT);
    let dir_count = count(hdr::DIR_COUNT);
    if entry_count == 0 || dir_count == 0 {
        return Err(bad("header", 0, "no root entry or root directory"));
    }
    Layout::canonical(
        version,
        entry_count,
        dir_count,
        count(hdr::HARDLINK_COUNT),
        count(hdr::XATTR_COUNT),
        pool_len as usize,
        names_len as usize,
    )
    .ok_or(bad("header", 0, "section sizes overflow"))
}

/// The stored section offsets and file length are the canonical ones for `l`, and the padding
/// after the pool (and, in version 2, after the block checksums) is zero.
fn check_placement(b: &[u8], l: &Layout, file_len: u64) -> Result<(), IndexError> {
    let offsets = [
        (hdr::KEYS_OFF, l.keys_off),
        (hdr::ATTRS_OFF, l.attrs_off),
        (hdr::DIRS_OFF, l.dirs_off),
        (hdr::HARDLINKS_OFF, l.hardlinks_off),
        (hdr::XATTRS_OFF, l.xattrs_off),
        (hdr::POOL_OFF, l.pool_off),
    ];
    for (field, want) in offsets {
        if format::u64_at(b, field) != want as u64 {
            return Err(bad("header", 0, "section offset is not the canonical one"));
        }
    }
    if l.file_len as u64 != file_len {
        return Err(bad(
            "header",
            0,
            "file length does not match the section sizes",
        ));
    }
    let pad = b
        .get(l.pool_off + l.pool_len..l.blocks_off)
        .unwrap_or_default();
    if pad.iter().any(|&c| c != 0) {
        return Err(bad("header", 0, "non-zero padding after the pool"));
    }
    let table_pad = b
        .get(l.blocks_off + 4 * l.block_count..)
        .unwrap_or_default();
    if l.lazy() && table_pad.iter().any(|&c| c != 0) {
        return Err(bad(
            "header",
            0,
            "non-zero padding after the block checksums",
        ));
    }
    Ok(())
}

/// Whether `names` has no `/` and no NUL. Branch-free per byte so that it vectorises.
fn clean_names(names: &[u8]) -> bool {
    names.chunks(4096).all(|chunk| {
        chunk
            .iter()
            .fold(0u8, |acc, &c| acc | u8::from(c == b'/') | u8::from(c == 0))
            == 0
    })
}

fn hardlinks(b: &[u8], l: &Layout, blocks: &Blocks) -> Result<(), IndexError> {
    let table =
        format::slice(b, l.hardlinks_off, l.hardlink_count * HARDLINK_LEN).unwrap_or_default();
    let (recs, _) = table.as_chunks::<HARDLINK_LEN>();
    let mut prev: Option<(u64, u32)> = None;
    let mut run = 0usize;
    for (i, r) in recs.iter().enumerate() {
        let fail = |reason| Err(bad("hardlinks", i, reason));
        let inode = format::u64_at(r, 0);
        let e = format::u32_at(r, 8);
        if format::u32_at(r, 12) != 0 {
            return fail("reserved field is not zero");
        }
        if e as usize >= l.entry_count {
            return fail("entry out of range");
        }
        let k = l.keys_off + e as usize * KEY_LEN;
        let a = l.attrs_off + e as usize * ATTR_LEN;
        blocks.ensure(b, k..k + KEY_LEN)?;
        blocks.ensure(b, a..a + ATTR_LEN)?;
        if format::u16_at(b, k + key::FLAGS) & flag::HARDLINK == 0 {
            return fail("entry lacks the hardlink flag");
        }
        if format::u64_at(b, a + attr::INODE) != inode {
            return fail("inode differs from the entry's");
        }
        match prev {
            Some(p) if p >= (inode, e) => return fail("records not strictly sorted"),
            Some((pi, _)) if pi == inode => run += 1,
            Some(_) if run < 2 => return fail("hardlink group of one entry"),
            _ => run = 1,
        }
        prev = Some((inode, e));
    }
    if prev.is_some() && run < 2 {
        return Err(bad(
            "hardlinks",
            recs.len() - 1,
            "hardlink group of one entry",
        ));
    }
    Ok(())
}

fn xattrs(b: &[u8], l: &Layout, pool: &[u8], blocks: &Blocks) -> Result<(), IndexError> {
    let table = format::slice(b, l.xattrs_off, l.xattr_count * XATTR_LEN).unwrap_or_default();
    let (recs, _) = table.as_chunks::<XATTR_LEN>();
    let mut prev: Option<(u32, &[u8])> = None;
    for (i, r) in recs.iter().enumerate() {
        let fail = |reason| Err(bad("xattrs", i, reason));
        let e = format::u32_at(r, 0);
        let string = |off: usize, len: usize| {
            let (off, len) = (
                format::u32_at(r, off) as usize,
                format::u32_at(r, len) as usize,
            );
            let at = l.pool_off + off;
            blocks
                .ensure(b, at..at.saturating_add(len))
                .map(|()| format::slice(pool, off, len))
        };
        let name = string(4, 8)?;
        let value = string(12, 16)?;
        let (Some(name), Some(_)) = (name, value) else {
            return fail("name or value past the end of the pool");
        };
        if name.is_empty() || name.contains(&0) {
            return fail("invalid xattr name");
        }
        if format::u32_at(r, 20) != 0 {
            return fail("reserved field is not zero");
        }
        if e as usize >= l.entry_count {
            return fail("entry out of range");
        }
        let k = l.keys_off + e as usize * KEY_LEN;
        blocks.ensure(b, k..k + KEY_LEN)?;
        if format::u16_at(b, k + key::FLAGS) & flag::HAS_XATTRS == 0 {
            return fail("entry lacks the has-xattrs flag");
        }
        if prev.is_some_and(|(pe, pn)| pe.cmp(&e).then(format::cmp_bytes(pn, name)).is_ge()) {
            return fail("records not strictly sorted");
        }
        prev = Some((e, name));
    }
    Ok(())
}
