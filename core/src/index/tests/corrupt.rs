//! Every class of bad input is an error, never a panic: wrong magic, version or checksum,
//! truncation at every offset, non-canonical layout, references past the pool, unsorted
//! tables, broken cross-references and cycles. Each case patches a valid file and, where the
//! point is to get past the checksum, reseals it.

use super::*;
use crate::index::format::{
    self, ATTR_LEN, DIR_LEN, HARDLINK_LEN, KEY_LEN, Layout, XATTR_LEN, attr, dir, hdr,
};
use crate::index::validate::validate;
use crate::index::{IndexError, LayerStack};

/// A small index using every section, with its layout and entry ids by path.
struct Sample {
    bytes: Vec<u8>,
    l: Layout,
    index: LayerIndex,
}

fn sample() -> Sample {
    let mut b = IndexBuilder::new();
    b.add(b"", dir()).unwrap();
    b.add(b"a", dir()).unwrap();
    b.add(b"a/b", dir()).unwrap();
    let x = vec![
        (b"user.x".to_vec(), b"1".to_vec()),
        (b"user.y".to_vec(), b"2".to_vec()),
    ];
    b.add(
        b"a/b/f1",
        EntryMeta {
            inode: 5,
            xattrs: x,
            ..file(3)
        },
    )
    .unwrap();
    b.add(
        b"a/f2",
        EntryMeta {
            inode: 7,
            ..file(3)
        },
    )
    .unwrap();
    b.add_hardlink(b"a/f3", b"a/f2").unwrap();
    b.add(
        b"a/l",
        EntryMeta {
            mode: 0o120777,
            link_target: Some(b"f2".to_vec()),
            ..EntryMeta::default()
        },
    )
    .unwrap();
    b.add(b"a/.wh.w", file(0)).unwrap();
    b.add(
        b"z",
        EntryMeta {
            xattrs: vec![(b"user.z".to_vec(), Vec::new())],
            ..file(1)
        },
    )
    .unwrap();
    let null = EntryMeta {
        mode: 0o020666,
        rdev: 0x103,
        ..EntryMeta::default()
    };
    b.add(b"null", null).unwrap();
    let bytes = b.finish().unwrap();
    let (l, _) = validate(&bytes).unwrap();
    let index = LayerIndex::from_bytes(bytes.clone()).unwrap();
    Sample { bytes, l, index }
}

impl Sample {
    fn id(&self, path: &str) -> usize {
        self.index.get(path.as_bytes()).unwrap().unwrap().id() as usize
    }
    fn key(&self, path: &str) -> usize {
        self.l.keys_off + self.id(path) * KEY_LEN
    }
    fn attr(&self, path: &str) -> usize {
        self.l.attrs_off + self.id(path) * ATTR_LEN
    }
    fn dir(&self, path: &str) -> usize {
        let d = self
            .index
            .get(path.as_bytes())
            .unwrap()
            .unwrap()
            .dir_index() as usize;
        self.l.dirs_off + d * DIR_LEN
    }
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
/// Turn the file at `path` into a directory entry naming dir record `aux`.
fn file_as_dir(s: &Sample, b: &mut [u8], path: &str, aux: u32) {
    put32(b, s.attr(path) + attr::MODE, 0o040755);
    put64(b, s.attr(path) + attr::SIZE, 0);
    put32(b, s.attr(path) + attr::AUX, aux);
}

/// Set `flags` in the key record at `key` on top of the ones it has.
fn add_flags(b: &mut [u8], key: usize, flags: u16) {
    let old = u16::from_le_bytes([b[key + 14], b[key + 15]]);
    put16(b, key + 14, old | flags);
}
pub(crate) fn reseal(b: &mut [u8]) {
    format::seal(b);
}

/// Open `b` and check every directory (what lookups do lazily).
pub(crate) fn open_verified(b: Vec<u8>) -> Result<LayerIndex, IndexError> {
    let index = LayerIndex::from_bytes(b)?;
    index.verify()?;
    Ok(index)
}

/// Patch a copy of the sample, reseal it, and expect a `Malformed` error mentioning `reason`
/// (when opening, or from `verify` for the rules checked per directory).
fn malformed(patch: impl FnOnce(&Sample, &mut Vec<u8>), section: &str, reason: &str) {
    let s = sample();
    let mut b = s.bytes.clone();
    patch(&s, &mut b);
    reseal(&mut b);
    match open_verified(b) {
        Err(IndexError::Malformed {
            section: sec,
            reason: r,
            ..
        }) => {
            assert_eq!(sec, section, "{r}");
            assert!(r.contains(reason), "expected {reason:?}, got {r:?}");
        }
        other => panic!("expected malformed {section}: {reason}, got {other:?}"),
    }
}

#[test]
fn header_errors() {
    let s = sample();
    let mut b = s.bytes.clone();
    b[0] = b'X';
    assert!(matches!(
        LayerIndex::from_bytes(b),
        Err(IndexError::BadMagic { .. })
    ));
    let mut b = s.bytes.clone();
    put32(&mut b, hdr::VERSION, 3);
    reseal(&mut b);
    let err = LayerIndex::from_bytes(b).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        ),
        "{err}"
    );
    // The block table is under the header checksum: opening fails.
    let mut b = s.bytes.clone();
    b[s.l.blocks_off] ^= 1;
    let err = LayerIndex::from_bytes(b).unwrap_err();
    assert!(
        matches!(err, IndexError::ChecksumMismatch { .. }) && err.is_corrupt(),
        "{err}"
    );
    // A data byte is under its block's checksum (here the only block, which opening reads).
    let mut b = s.bytes.clone();
    b[s.l.blocks_off - 9] ^= 1;
    let err = LayerIndex::from_bytes(b).unwrap_err();
    assert!(
        matches!(err, IndexError::ChecksumMismatch { .. }) && err.is_corrupt(),
        "{err}"
    );
    let mut b = s.bytes.clone();
    b.extend_from_slice(&[0; 8]);
    assert!(matches!(
        LayerIndex::from_bytes(b),
        Err(IndexError::Malformed { .. })
    ));
}

#[test]
fn truncated_at_every_offset() {
    let s = sample();
    for n in 0..s.bytes.len() {
        let err = LayerIndex::from_bytes(&s.bytes[..n]).unwrap_err();
        assert!(matches!(err, IndexError::Truncated { .. }), "at {n}: {err}");
    }
}

#[test]
fn layout_errors() {
    malformed(|_, b| put64(b, hdr::ATTRS_OFF, 104), "header", "canonical");
    malformed(|_, b| put64(b, hdr::POOL_OFF, 0), "header", "canonical");
    malformed(|_, b| put32(b, hdr::ENTRY_COUNT, 0), "header", "no root");
    malformed(|_, b| put32(b, hdr::DIR_COUNT, 0), "header", "no root");
    malformed(
        |_, b| put32(b, hdr::ENTRY_COUNT, u32::MAX),
        "header",
        "canonical",
    );
    malformed(|_, b| put32(b, hdr::XATTR_COUNT, 1), "header", "canonical");
    malformed(
        |s, b| put64(b, hdr::FILE_LEN, s.l.file_len as u64 - 8),
        "header",
        "longer",
    );
    malformed(
        |_, b| put64(b, hdr::POOL_LEN, u64::MAX),
        "header",
        "pool longer",
    );
    malformed(
        |s, b| put64(b, hdr::NAMES_LEN, s.l.pool_len as u64 + 1),
        "header",
        "names region longer",
    );
    // Names are checked with their directory (with a matching prefix, so that the bytes
    // themselves are what is wrong).
    malformed(
        |s, b| {
            let k = s.key("z");
            let off = u32::from_le_bytes(b[k + 8..k + 12].try_into().unwrap()) as usize;
            b[s.l.pool_off + off] = b'/';
            put64(b, k, u64::from(b'/') << 56);
        },
        "keys",
        "contains `/` or NUL",
    );
    malformed(
        |s, b| {
            b[s.l.pool_off] = 0;
            put64(b, s.key("a"), 0);
        },
        "keys",
        "contains `/` or NUL",
    );
    malformed(
        |s, b| {
            let end = s.l.pool_off + s.l.pool_len;
            if end % 8 != 0 {
                b[end] = 1;
            } else {
                // No padding: make the pool's last byte padding, non-zero.
                put64(b, hdr::POOL_LEN, s.l.pool_len as u64 - 1);
                b[end - 1] = 1;
            }
        },
        "header",
        "padding after the pool",
    );
    malformed(
        |s, b| {
            assert_eq!(s.l.block_count % 2, 1, "the table is padded");
            let end = b.len() - 1;
            b[end] = 1;
        },
        "header",
        "padding after the block checksums",
    );
}

#[test]
fn entry_errors() {
    malformed(
        |s, b| put32(b, s.key("z") + 8, s.l.names_len as u32),
        "keys",
        "outside the names region",
    );
    malformed(
        |s, b| put16(b, s.key("z") + 12, u16::MAX),
        "keys",
        "outside the names region",
    );
    // Every name is checked when its directory is first looked at (a directory's own name
    // too: in its parent).
    malformed(
        |s, b| {
            put16(b, s.key("a") + 12, 0);
            put64(b, s.key("a"), 0);
        },
        "keys",
        "invalid name",
    );
    malformed(
        |s, b| {
            put16(b, s.key("z") + 12, 0);
            put64(b, s.key("z"), 0);
        },
        "keys",
        "invalid name",
    );
    malformed(|s, b| b[s.key("z")] ^= 1, "keys", "prefix does not match");
    malformed(
        |s, b| b[s.key("z") + 7] = b'y',
        "keys",
        "prefix does not match",
    );
    malformed(
        |s, b| add_flags(b, s.key("z"), 0x100),
        "keys",
        "unknown flag",
    );
    malformed(
        |s, b| put16(b, s.key("a/w") + 14, 3),
        "keys",
        "whiteout with other flags",
    );
    malformed(
        |s, b| put32(b, s.attr("a/w") + attr::MODE, 0o020644),
        "attrs",
        "whiteout",
    );
    malformed(
        |s, b| put32(b, s.attr("z") + attr::MODE, 0o140644),
        "attrs",
        "unknown file type",
    );
    malformed(
        |s, b| put32(b, s.attr("z") + attr::MODE, 0o1100644),
        "attrs",
        "outside type",
    );
    malformed(
        |s, b| put32(b, s.attr("z") + attr::MTIME_NSEC, 1_000_000_000),
        "attrs",
        "nanoseconds",
    );
    malformed(
        |s, b| put32(b, s.attr("z") + attr::AUX, 1),
        "attrs",
        "aux field",
    );
    malformed(
        |s, b| put64(b, s.attr("a/l") + attr::SIZE, 1 << 30),
        "attrs",
        "symlink target",
    );
    malformed(
        |s, b| add_flags(b, s.key("z"), 0x10),
        "keys",
        "non-directory",
    );
    malformed(
        |s, b| put16(b, s.key("a") + 14, 0x04),
        "keys",
        "hardlink flag on a directory",
    );
    malformed(
        |s, b| put32(b, s.attr("") + attr::MODE, 0o100755),
        "attrs",
        "not a directory",
    );
    malformed(
        |s, b| put32(b, s.attr("a") + attr::MODE, 0o100755),
        "attrs",
        "aux field set on a regular file",
    );
    malformed(
        |s, b| {
            put32(b, s.attr("a") + attr::MODE, 0o100755);
            put32(b, s.attr("a") + attr::AUX, 0);
        },
        "dirs",
        "own entry is not a directory",
    );
    malformed(
        |s, b| {
            put32(b, s.attr("z") + attr::MODE, 0o040755);
            put64(b, s.attr("z") + attr::SIZE, 0);
        },
        "attrs",
        "names no directory",
    );
    malformed(
        |s, b| put16(b, s.key("") + 12, 1),
        "keys",
        "root entry has a name",
    );
}

#[test]
fn size_and_aux_rules() {
    malformed(
        |s, b| put64(b, s.attr("null") + attr::SIZE, 1),
        "attrs",
        "device with a size",
    );
    malformed(
        |s, b| put64(b, s.attr("a") + attr::SIZE, 4096),
        "attrs",
        "directory with a size",
    );
    malformed(
        |s, b| put64(b, s.attr("") + attr::SIZE, 1),
        "attrs",
        "root entry does not name",
    );
    malformed(
        |s, b| put32(b, s.attr("a/w") + attr::AUX, 1),
        "attrs",
        "whiteout",
    );
    malformed(
        |s, b| put16(b, s.key("") + 14, 0x01),
        "keys",
        "bad flags on the root",
    );
    let s = sample();
    assert_eq!(s.index.get(b"null").unwrap().unwrap().rdev(), 0x103);
    assert_eq!(s.index.get(b"z").unwrap().unwrap().rdev(), 0);
}

#[test]
fn unsorted_and_inconsistent_directories() {
    // Two files of one directory swap names: unsorted.
    malformed(
        |s, b| {
            let (x, y) = (s.key("a/f2"), s.key("a/l"));
            for i in 0..14 {
                b.swap(x + i, y + i);
            }
        },
        "keys",
        "not strictly sorted",
    );
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::PATH_LEN, 1),
        "dirs",
        "joined with the entry name",
    );
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::FIRST_ENTRY, 1),
        "dirs",
        "contiguous",
    );
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::ENTRY_COUNT, 99),
        "dirs",
        "past the end",
    );
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::ENTRY_COUNT, 0),
        "dirs",
        "not covered",
    );
    malformed(
        |s, b| put32(b, s.dir("") + dir::SELF_ENTRY, 3),
        "dirs",
        "not the root",
    );
    malformed(
        |s, b| put32(b, s.dir("a") + dir::PATH_LEN, 999),
        "dirs",
        "past the end of the pool",
    );
    // Cycles: a directory as its own parent, or parented by its child.
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::PARENT, 2),
        "dirs",
        "parent",
    );
    malformed(
        |s, b| put32(b, s.dir("a") + dir::PARENT, 2),
        "dirs",
        "parent does not come before",
    );
    malformed(
        |s, b| put32(b, s.dir("a/b") + dir::SELF_ENTRY, s.id("a/f2") as u32),
        "attrs",
        "point back",
    );
    // A record no entry names, claiming an entry of another directory.
    malformed(
        |s, b| {
            put32(b, s.attr("a/b") + attr::MODE, 0o100644);
            put32(b, s.attr("a/b") + attr::AUX, 0);
            put32(b, s.dir("a/b") + dir::SELF_ENTRY, s.id("z") as u32);
        },
        "dirs",
        "own entry is not in the parent",
    );
    malformed(
        |s, b| put32(b, s.attr("a/b") + attr::AUX, 1),
        "attrs",
        "point back",
    );
    // A second directory entry naming a record that already has its own entry.
    malformed(|s, b| file_as_dir(s, b, "z", 1), "attrs", "point back");
    malformed(
        |s, b| put32(b, s.attr("a/b") + attr::AUX, 0),
        "attrs",
        "names no directory",
    );
    malformed(
        |s, b| file_as_dir(s, b, "z", 0),
        "attrs",
        "names no directory",
    );
    // A path that does not extend the parent's path.
    malformed(
        |s, b| {
            let (off, len) = (s.dir("a/b"), s.dir("a"));
            let a_path = u32::from_le_bytes(b[len..len + 4].try_into().unwrap());
            put32(b, off, a_path);
            put32(b, off + dir::PATH_LEN, 1);
        },
        "dirs",
        "joined with the entry name",
    );
}

#[test]
fn hardlink_and_xattr_table_errors() {
    let hl = |s: &Sample, i: usize| s.l.hardlinks_off + i * HARDLINK_LEN;
    let xa = |s: &Sample, i: usize| s.l.xattrs_off + i * XATTR_LEN;
    malformed(|s, b| put64(b, hl(s, 0), 8), "hardlinks", "inode differs");
    malformed(
        |s, b| put32(b, hl(s, 0) + 8, 99),
        "hardlinks",
        "out of range",
    );
    malformed(|s, b| put32(b, hl(s, 0) + 12, 1), "hardlinks", "reserved");
    malformed(
        |s, b| put32(b, hl(s, 1) + 8, s.id("a/f2") as u32),
        "hardlinks",
        "not strictly sorted",
    );
    malformed(
        |s, b| put32(b, hl(s, 1) + 8, s.id("z") as u32),
        "hardlinks",
        "lacks the hardlink flag",
    );
    malformed(
        |s, b| add_flags(b, s.key("z"), 0x04),
        "keys",
        "hardlink flag without a hardlinks record",
    );
    malformed(
        |s, b| put32(b, xa(s, 0), s.id("a") as u32),
        "xattrs",
        "lacks the has-xattrs flag",
    );
    malformed(
        |s, b| put32(b, xa(s, 1) + 4, u32::MAX),
        "xattrs",
        "past the end of the pool",
    );
    malformed(
        |s, b| put32(b, xa(s, 1) + 16, u32::MAX),
        "xattrs",
        "past the end of the pool",
    );
    malformed(
        |s, b| put32(b, xa(s, 1) + 8, 0),
        "xattrs",
        "invalid xattr name",
    );
    malformed(|s, b| put32(b, xa(s, 1) + 20, 9), "xattrs", "reserved");
    malformed(
        |s, b| {
            let (x, y) = (xa(s, 0), xa(s, 1));
            for i in 4..20 {
                b.swap(x + i, y + i);
            }
        },
        "xattrs",
        "not strictly sorted",
    );
    malformed(
        |s, b| put16(b, s.key("a/f2") + 14, 0x0c),
        "keys",
        "has-xattrs flag without an xattrs record",
    );
    malformed(|s, b| put32(b, s.dir("") + 4, 5), "dirs", "not the root");
}

#[test]
fn sample_is_valid_and_complete() {
    let s = sample();
    assert_eq!(s.l.hardlink_count, 2);
    assert_eq!(s.l.xattr_count, 3);
    assert_eq!(s.l.dir_count, 3);
    assert!(s.index.get(b"a/w").unwrap().unwrap().is_whiteout());
}

/// A directory whose entries break a rule is reported by every lookup that reaches it, every
/// time, while the rest of the file answers normally; `verify` finds it up front.
#[test]
fn a_bad_directory_fails_its_lookups_only() {
    let s = sample();
    let mut b = s.bytes.clone();
    let (x, y) = (s.key("a/f2"), s.key("a/l"));
    for i in 0..14 {
        b.swap(x + i, y + i);
    }
    reseal(&mut b);
    let index = LayerIndex::from_bytes(b).expect("the directory table is sound");
    fn is_unsorted<T>(r: Result<T, IndexError>) -> bool {
        matches!(r, Err(IndexError::Malformed { section: "keys", reason, .. })
            if reason.contains("not strictly sorted"))
    }
    for _ in 0..2 {
        assert!(is_unsorted(index.get(b"a/f3").map(|e| e.map(|e| e.id()))));
        assert!(is_unsorted(
            index.read_dir(b"a").map(|d| d.map(|d| d.len()))
        ));
        assert!(is_unsorted(index.hardlinks_of(7).map(|h| h.count())));
    }
    // Paths resolve component by component, so `a/b/f1` meets `a` on the way down.
    assert!(is_unsorted(index.get(b"a/b/f1").map(|e| e.map(|e| e.id()))));
    assert_eq!(index.get(b"z").unwrap().unwrap().size(), 1);
    assert!(index.get(b"a").unwrap().unwrap().is_dir());

    let stack = LayerStack::new(vec![index.clone()]);
    assert!(is_unsorted(stack.get(b"a/f2").map(|e| e.map(|e| e.id()))));
    assert!(is_unsorted(
        stack.read_dir(b"a").map(|d| d.map(|d| d.len()))
    ));
    // The stack resolves paths component by component, so it meets `a` on the way down.
    assert!(is_unsorted(stack.get(b"a/b/f1").map(|e| e.map(|e| e.id()))));
    assert!(stack.get(b"z").unwrap().is_some());
    let walked: Vec<_> = stack.walk().collect();
    let (ok, err): (Vec<_>, Vec<_>) = walked.iter().partition(|r| r.is_ok());
    assert_eq!(
        err.len(),
        1,
        "the walk reports the bad directory once, then ends"
    );
    assert!(walked.last().is_some_and(|r| r.is_err()));
    assert!(
        ok.len() >= 2,
        "the root and `a` come before the bad listing"
    );
    assert!(is_unsorted(index.verify().map(drop)));
    assert!(is_unsorted(stack.verify().map(drop)));
}

/// Version 2: a corrupted block fails exactly the lookups that read it (every time), not the
/// opening (which reads only the tables' blocks) nor the lookups elsewhere; `verify` finds it.
#[test]
fn a_bad_block_fails_only_the_lookups_that_read_it() {
    let mut b = IndexBuilder::new();
    b.add(b"big", dir()).unwrap();
    b.add(b"small", dir()).unwrap();
    for i in 0..3000 {
        b.add(format!("big/f{i:04}").as_bytes(), file(i)).unwrap();
    }
    b.add(b"small/x", file(7)).unwrap();
    let bytes = b.finish().unwrap();
    let (l, _) = validate(&bytes).unwrap();
    assert!(l.block_count >= 3, "{l:?}");
    let index = LayerIndex::from_bytes(bytes.clone()).unwrap();
    let victim = index.get(b"big/f1500").unwrap().unwrap().id() as usize;
    let at = l.attrs_off + victim * ATTR_LEN + attr::SIZE;
    let block = (at - 104) >> 16;
    assert!(
        block != (l.dirs_off - 104) >> 16 && block != 0,
        "the victim's block is not one that opening reads"
    );

    let mut bad = bytes;
    bad[at] ^= 1;
    let index = LayerIndex::from_bytes(bad).expect("opening does not read the block");
    assert_eq!(index.get(b"small/x").unwrap().unwrap().size(), 7);
    for _ in 0..2 {
        let err = index.get(b"big/f0001").unwrap_err();
        assert!(matches!(err, IndexError::ChecksumMismatch { .. }), "{err}");
    }
    assert!(index.read_dir(b"big").is_err());
    assert!(matches!(
        index.verify(),
        Err(IndexError::ChecksumMismatch { .. })
    ));
}

/// Version 1 files (one checksum over the whole file, checked at open) still open, answer
/// like the same tree in version 2, and get version 1's open-time checks.
#[test]
fn version_1_files_are_still_read() {
    let build = || {
        let mut b = IndexBuilder::new();
        b.add(b"a", dir()).unwrap();
        b.add(b"a/b", dir()).unwrap();
        b.add(b"a/b/f", file(3)).unwrap();
        b.add(b"a/.wh.gone", file(0)).unwrap();
        b.add_hardlink(b"a/g", b"a/b/f").unwrap();
        b
    };
    let v1 = build().finish_v1().unwrap();
    let v2 = build().finish().unwrap();
    assert_eq!(format::u32_at(&v1, hdr::VERSION), 1);
    assert_eq!(format::u32_at(&v2, hdr::VERSION), 2);
    let (i1, i2) = (
        open_verified(v1.clone()).unwrap(),
        open_verified(v2).unwrap(),
    );
    let (s1, s2) = (LayerStack::new(vec![i1.clone()]), LayerStack::new(vec![i2]));
    let walk = |s: &LayerStack| -> Vec<(Vec<u8>, u64, u32)> {
        s.walk()
            .map(|r| r.map(|(p, e)| (p, e.size(), e.nlink())).unwrap())
            .collect()
    };
    assert_eq!(walk(&s1), walk(&s2));
    assert_eq!(walk(&s1).len(), 5, "root, a, a/b, a/b/f, a/g");
    assert!(i1.get(b"a/gone").unwrap().unwrap().is_whiteout());

    // Any flipped byte fails at open: the checksum covers the whole file.
    let mut b = v1.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(
        LayerIndex::from_bytes(b),
        Err(IndexError::ChecksumMismatch { .. })
    ));
    // The names region is scanned and the directory paths' order checked at open.
    let (l, _) = validate(&v1).unwrap();
    let mut b = v1.clone();
    b[l.pool_off] = b'/';
    reseal(&mut b);
    assert!(matches!(
        LayerIndex::from_bytes(b),
        Err(IndexError::Malformed {
            section: "header",
            ..
        })
    ));
    let mut b = v1;
    let d2 = l.dirs_off + 2 * DIR_LEN;
    put32(&mut b, d2 + dir::PATH_LEN, 1);
    reseal(&mut b);
    assert!(matches!(
        LayerIndex::from_bytes(b),
        Err(IndexError::Malformed { section: "dirs", reason, .. }) if reason.contains("sorted")
    ));
}
