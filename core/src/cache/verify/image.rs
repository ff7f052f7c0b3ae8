//! Checking a layer's EROFS image (`layer.erofs`, when `meta.json` records one): it is there
//! with the length published (`blocks` × 4 KiB), our reader accepts it (`erofs/read.rs`:
//! superblock, checksum, every inode, directory and xattr), its tree equals the layer's index
//! entry by entry as the writer maps it, its hardlinks are the index's, and every regular
//! file's data matches the `contents` digest taken at extraction (the same comparison and
//! content check `layer.rs` runs on the directory tree).
//!
//! How the writer represents the index (`erofs/FORMAT.md`), and so what is compared: a
//! whiteout is a 0/0 character device without permissions; an opaque directory carries the
//! marker the record names (`trusted.` or `user.overlay.opaque = "y"`); the image's own
//! overlayfs xattrs and names no EROFS prefix covers are not written; times before 1970 are
//! 1970; an implicit directory is a directory like any other; a directory's size is its
//! blocks of entries. Every difference is one `erofsCorrupt` problem at the image's path,
//! its detail naming the path inside.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::layer::{Entries, Findings, Metadata, Summary, check_contents, compare_entries, shown};
use super::{LayerCheck, ProblemKind};
use crate::cache::ErofsRecord;
use crate::cache::contents::{self, Contents};
use crate::erofs::read::{ErofsImage, ImageEntry, ReadError};
use crate::erofs::{BLOCK_SIZE, OpaqueXattr};
use crate::index::{EntryKind, LayerIndex};
use crate::stat::mode;

/// What an image written with `opaque` at `path` has wrong against `index` and `contents`
/// (the check `verify` runs, for the tests and fuzzers that write images without a cache).
pub(crate) fn image_problems(
    path: &Path,
    blocks: u64,
    opaque: OpaqueXattr,
    index: &LayerIndex,
    contents: &Contents,
) -> Vec<super::Problem> {
    let mut check = LayerCheck {
        diff_id: crate::digest::Digest::sha256_of(b""),
        entries: 0,
        bytes: 0,
        recorded: true,
        problems: Vec::new(),
        more_problems: 0,
    };
    let mut found = Findings { check: &mut check };
    let record = ErofsRecord {
        blocks,
        opaque_xattr: opaque,
    };
    match super::layer::entries(index) {
        Ok(published) => check_image(
            path,
            record,
            Some((index, &published)),
            Some(contents),
            &mut found,
        ),
        Err(e) => found.add(ProblemKind::IndexCorrupt, None, e),
    }
    check.problems
}

/// Check the image at `path` against `record`, and (when the index could be read) against
/// the index's entries `published` and the `contents` digests.
pub(super) fn check_image(
    path: &Path,
    record: ErofsRecord,
    published: Option<(&LayerIndex, &Entries)>,
    contents: Option<&Contents>,
    found: &mut Findings<'_>,
) {
    let at = shown(path);
    let want = record.blocks.saturating_mul(BLOCK_SIZE);
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return found.add(ProblemKind::ErofsMissing, at, "published, now gone");
        }
        Err(e) => return found.add(ProblemKind::Unreadable, at, e.to_string()),
        Ok(m) if !m.is_file() => {
            return found.add(ProblemKind::ErofsCorrupt, at, "not a regular file");
        }
        Ok(m) if m.len() != want => {
            let why = format!(
                "{} bytes, published with {} blocks ({want} bytes)",
                m.len(),
                record.blocks
            );
            return found.add(ProblemKind::ErofsCorrupt, at, why);
        }
        Ok(_) => {}
    }
    let image = match ErofsImage::open(path) {
        Ok(image) => image,
        Err(e) => return report_read_error(e, at, found),
    };
    let Some((index, published)) = published else {
        return;
    };
    let mut files: HashMap<Vec<u8>, ImageEntry> = HashMap::new();
    let mut now: Entries = BTreeMap::new();
    let walked = image.walk(|e| {
        now.insert(e.path.clone(), (summary(e, record.opaque_xattr), e.nid));
        if e.file_type() == mode::S_IFREG {
            files.insert(e.path.clone(), e.clone());
        }
        Ok::<(), ReadError>(())
    });
    if let Err(e) = walked {
        return report_read_error(e, at, found);
    }
    // The comparisons of the directory tree, collected apart and reported as the image's.
    let mut inner = LayerCheck {
        diff_id: found.check.diff_id.clone(),
        entries: 0,
        bytes: 0,
        recorded: false,
        problems: Vec::new(),
        more_problems: 0,
    };
    let mut scratch = Findings { check: &mut inner };
    // The index's entries and its root (which the tree's comparison leaves out: the
    // extraction does not set the layer directory's metadata).
    let root = (as_in_image(&Summary::of(&index.root())), 0);
    let expected: Entries = std::iter::once((Vec::new(), root))
        .chain(
            published
                .iter()
                .map(|(p, (s, i))| (p.clone(), (as_in_image(s), *i))),
        )
        .collect();
    compare_entries(&expected, &now, &mut scratch);
    check_hardlinks(published, &now, &mut scratch);
    if let Some(contents) = contents {
        let mut digest = |p: &[u8]| -> std::io::Result<[u8; 32]> {
            let e = files
                .get(p)
                .ok_or_else(|| std::io::Error::other("not a file"))?;
            let data = image.file_data(e).map_err(std::io::Error::other)?;
            contents::digest_reader(data)
        };
        check_contents(&expected, &now, contents, &mut digest, &mut scratch);
    }
    found.check.bytes += inner.bytes;
    for p in inner.problems {
        let inside = p.path.unwrap_or_default();
        let why = format!("{}: {inside}: {}", p.kind.name(), p.detail);
        found.add(ProblemKind::ErofsCorrupt, at.clone(), why);
    }
    found.check.more_problems += inner.more_problems;
}

fn report_read_error(e: ReadError, at: Option<String>, found: &mut Findings<'_>) {
    let kind = match e {
        ReadError::Io { .. } => ProblemKind::Unreadable,
        _ => ProblemKind::ErofsCorrupt,
    };
    found.add(kind, at, e.to_string());
}

/// Whether a name is an overlayfs xattr (the writer drops the image's own).
fn is_overlay(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// What the image says of an entry, in the index's terms.
fn summary(e: &ImageEntry, opaque: OpaqueXattr) -> Summary {
    let kind = EntryKind::from_mode(e.mode);
    let whiteout = is_whiteout_form(kind, e.mode, e.rdev);
    let marker = opaque.name();
    let is_dir = kind == Some(EntryKind::Dir);
    let opaque = is_dir && e.xattrs.iter().any(|(n, v)| n == marker && v == b"y");
    let xattrs = e
        .xattrs
        .iter()
        .filter(|(n, _)| !(opaque && n == marker))
        .cloned()
        .collect();
    let devices = matches!(kind, Some(EntryKind::CharDevice | EntryKind::BlockDevice));
    Summary {
        kind: if whiteout { None } else { kind },
        size: if is_dir { 0 } else { e.size },
        mtime: (i64::try_from(e.mtime).unwrap_or(i64::MAX), e.mtime_nsec),
        rest: Metadata {
            mode: e.mode,
            owner: (e.uid, e.gid),
            rdev: if devices && !whiteout { e.rdev } else { 0 },
            link_target: e.link_target.clone(),
            xattrs,
            markers: [whiteout, opaque, false],
        },
    }
}

/// A 0/0 character device without permissions: how an image writes a whiteout (an index
/// entry of that exact form reads back the same way).
fn is_whiteout_form(kind: Option<EntryKind>, mode: u32, rdev: u32) -> bool {
    kind == Some(EntryKind::CharDevice) && mode & 0o7777 == 0 && rdev == 0
}

/// What the image holds for an index entry `s` (the writer's mapping, `FORMAT.md`).
fn as_in_image(s: &Summary) -> Summary {
    let r = &s.rest;
    let whiteout = r.markers[0] || is_whiteout_form(s.kind, r.mode, r.rdev);
    Summary {
        kind: if whiteout { None } else { s.kind },
        size: s.size,
        mtime: (s.mtime.0.max(0), s.mtime.1),
        rest: Metadata {
            mode: if whiteout { mode::S_IFCHR } else { r.mode },
            owner: r.owner,
            rdev: if whiteout { 0 } else { r.rdev },
            link_target: r.link_target.clone(),
            xattrs: if whiteout {
                Vec::new()
            } else {
                r.xattrs
                    .iter()
                    .filter(|(n, _)| !is_overlay(n) && crate::erofs::has_prefix(n))
                    .cloned()
                    .collect()
            },
            markers: [whiteout, r.markers[1], false],
        },
    }
}

/// Files sharing an inode in the index share one inode in the image, and no others do.
fn check_hardlinks(published: &Entries, now: &Entries, found: &mut Findings<'_>) {
    let mut nid_of: HashMap<u64, u64> = HashMap::new();
    let mut inode_of: HashMap<u64, u64> = HashMap::new();
    for (path, (s, inode)) in published {
        let Some((_, nid)) = now.get(path) else {
            continue;
        };
        if s.kind != Some(EntryKind::File) || *inode == 0 {
            continue;
        }
        let same_group = *nid_of.entry(*inode).or_insert(*nid) == *nid;
        let same_inode = *inode_of.entry(*nid).or_insert(*inode) == *inode;
        if !(same_group && same_inode) {
            let why = "its hardlinks differ from the index's (another inode in the image)";
            found.add(ProblemKind::MetadataChanged, tree(path), why);
        }
    }
}

fn tree(p: &[u8]) -> Option<String> {
    Some(String::from_utf8_lossy(p).into_owned())
}
