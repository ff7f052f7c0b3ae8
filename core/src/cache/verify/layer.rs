//! Checking one layer directory: its shape and `meta.json`; its index (the bytes published,
//! then valid throughout); its tree's metadata, by rebuilding the index from the tree
//! (`layer/reindex.rs`, which gives the published bytes for an untouched tree) and comparing
//! the two entry by entry; and its files' contents against the `contents` digests.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::image;
use super::{LayerCheck, MAX_LISTED_PROBLEMS, Problem, ProblemKind};
use crate::cache::contents::{self, Contents};
use crate::cache::{GlobalCache, LayerMeta, Layout};
use crate::digest::Digest;
use crate::index::{Entry, EntryKind, LayerIndex};
use crate::layer::LayerError;

/// Collects a layer's problems, listing the first [`MAX_LISTED_PROBLEMS`].
pub(super) struct Findings<'a> {
    pub(super) check: &'a mut LayerCheck,
}

impl Findings<'_> {
    pub(super) fn add(
        &mut self,
        kind: ProblemKind,
        path: Option<String>,
        detail: impl Into<String>,
    ) {
        if self.check.problems.len() < MAX_LISTED_PROBLEMS {
            self.check.problems.push(Problem::new(kind, path, detail));
        } else {
            self.check.more_problems += 1;
        }
    }
}

pub(super) fn shown(p: &Path) -> Option<String> {
    Some(p.display().to_string())
}

fn tree_path(p: &[u8]) -> Option<String> {
    Some(String::from_utf8_lossy(p).into_owned())
}

impl GlobalCache {
    /// Check one layer (blocking; reads its whole tree): see [`GlobalCache::verify`].
    pub fn verify_layer(&self, diff_id: &Digest) -> LayerCheck {
        let mut check = LayerCheck {
            diff_id: diff_id.clone(),
            entries: 0,
            bytes: 0,
            recorded: false,
            problems: Vec::new(),
            more_problems: 0,
        };
        let dir = self.layer_dir(diff_id);
        let mut found = Findings { check: &mut check };
        let Some(meta) = layer_meta(&dir, diff_id, &mut found) else {
            return check;
        };
        let published =
            published_index(&dir, &meta, &mut found).and_then(|index| match entries(&index) {
                Ok(e) => Some((index, e)),
                Err(e) => {
                    found.add(ProblemKind::IndexCorrupt, shown(&Layout::index_in(&dir)), e);
                    None
                }
            });
        let mut contents = None;
        if let Some((index, published)) = &published {
            let fs = Layout::fs_in(&dir);
            // A layer published as its EROFS image alone has no tree to compare or hash:
            // its image is checked against the index and the contents below.
            let now = match meta.image_only {
                true => None,
                false => check_metadata(&fs, index, published, meta.tree_format < 2, &mut found),
            };
            contents = recorded_contents(&dir, &meta, &mut found);
            if let Some(contents) = &contents {
                found.check.recorded = true;
                if let Some(now) = now {
                    let mut digest = |path: &[u8]| digest_at(&fs, path);
                    check_contents(published, &now, contents, &mut digest, &mut found);
                }
            }
        }
        if let Some(record) = meta.erofs {
            let published = published.as_ref().map(|(i, p)| (i, p));
            let path = Layout::erofs_in(&dir);
            image::check_image(&path, record, published, contents.as_ref(), &mut found);
        }
        check
    }
}

/// The layer directory's shape and its `meta.json`; `None` when there is nothing more to
/// check.
fn layer_meta(dir: &Path, diff_id: &Digest, found: &mut Findings<'_>) -> Option<LayerMeta> {
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.is_dir());
    match is_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            found.add(ProblemKind::LayerMissing, shown(dir), "not in the cache");
            return None;
        }
        Err(e) => {
            found.add(ProblemKind::Unreadable, shown(dir), e.to_string());
            return None;
        }
        Ok(false) => {
            let what = "not a directory (a symlink or a file)";
            found.add(ProblemKind::LayerInvalid, shown(dir), what);
            return None;
        }
        Ok(true) => {}
    }
    let fs = Layout::fs_in(dir);
    // (A layer published as its EROFS image alone has no tree, as its `meta.json` says.)
    let image_only = || LayerMeta::read(dir).is_ok_and(|m| m.image_only);
    if !is_dir(&fs).unwrap_or(false) && !image_only() {
        let why = "the tree is gone or not a directory";
        found.add(ProblemKind::LayerMissing, shown(&fs), why);
        return None;
    }
    let meta = match LayerMeta::read(dir) {
        Ok(meta) => meta,
        Err(why) => {
            found.add(ProblemKind::LayerInvalid, shown(&Layout::meta_in(dir)), why);
            return None;
        }
    };
    if &meta.diff_id != diff_id {
        let why = format!("describes layer {}", meta.diff_id);
        found.add(ProblemKind::LayerInvalid, shown(&Layout::meta_in(dir)), why);
        return None;
    }
    Some(meta)
}

/// The index: the bytes published (when their digest was recorded), and valid throughout.
/// `None` when there is none (or it is damaged): the tree has nothing to be compared with.
fn published_index(dir: &Path, meta: &LayerMeta, found: &mut Findings<'_>) -> Option<LayerIndex> {
    let path = Layout::index_in(dir);
    let missing = meta
        .index_digest
        .is_some()
        .then_some(ProblemKind::IndexMissing);
    let bytes = read_sidecar(&path, MAX_INDEX_BYTES, missing, found)?;
    if let Some(want) = &meta.index_digest
        && !want.matches(&bytes)
    {
        let why = format!("differs from the index published ({want})");
        found.add(ProblemKind::IndexCorrupt, shown(&path), why);
        return None;
    }
    match LayerIndex::from_bytes(bytes).and_then(|index| index.verify().map(|()| index)) {
        Ok(index) => Some(index),
        Err(e) => {
            found.add(ProblemKind::IndexCorrupt, shown(&path), e.to_string());
            None
        }
    }
}

/// Largest index read (the format's offsets are 32-bit).
const MAX_INDEX_BYTES: u64 = 4 << 30;

/// The bytes of the sidecar file at `path`: not through a symlink, at most `limit`.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// A sidecar file's bytes (`read_bounded`); a missing file is the `missing` problem (none:
/// its absence is fine), any other failure `unreadable`.
fn read_sidecar(
    path: &Path,
    limit: u64,
    missing: Option<ProblemKind>,
    found: &mut Findings<'_>,
) -> Option<Vec<u8>> {
    match read_bounded(path, limit) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(kind) = missing {
                found.add(kind, shown(path), "published, now gone");
            }
            None
        }
        Err(e) => {
            found.add(ProblemKind::Unreadable, shown(path), e.to_string());
            None
        }
    }
}

/// The `contents` digests, when the layer was published with them and they are intact.
fn recorded_contents(dir: &Path, meta: &LayerMeta, found: &mut Findings<'_>) -> Option<Contents> {
    let want = meta.contents_digest.as_ref()?;
    let path = Layout::contents_in(dir);
    let missing = Some(ProblemKind::ContentsMissing);
    let bytes = read_sidecar(&path, contents::MAX_CONTENTS_BYTES, missing, found)?;
    if !want.matches(&bytes) {
        let why = format!("differs from the record published ({want})");
        found.add(ProblemKind::ContentsCorrupt, shown(&path), why);
        return None;
    }
    match contents::decode(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            found.add(ProblemKind::ContentsCorrupt, shown(&path), e.0);
            None
        }
    }
}

/// What the index says about one path, inode aside (a file rewritten with the same content
/// and metadata is not damage).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Summary {
    pub(super) kind: Option<EntryKind>,
    pub(super) size: u64,
    pub(super) mtime: (i64, u32),
    /// Everything else of the image's metadata.
    pub(super) rest: Metadata,
}

/// Mode, owner, device, link target, xattrs, and the whiteout, opaque and implicit markers.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Metadata {
    pub(super) mode: u32,
    pub(super) owner: (u32, u32),
    pub(super) rdev: u32,
    pub(super) link_target: Option<Vec<u8>>,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whiteout, opaque, implicit.
    pub(super) markers: [bool; 3],
}

impl Summary {
    pub(super) fn of(e: &Entry<'_>) -> Summary {
        Summary {
            kind: (!e.is_whiteout()).then(|| e.kind()),
            size: e.size(),
            mtime: (e.mtime_sec(), e.mtime_nsec()),
            rest: Metadata {
                mode: e.mode(),
                owner: (e.uid(), e.gid()),
                rdev: e.rdev(),
                link_target: e.link_target().map(<[u8]>::to_vec),
                xattrs: e.xattrs().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                markers: [e.is_whiteout(), e.is_opaque(), e.is_implicit()],
            },
        }
    }

    pub(super) fn kind_name(&self) -> String {
        match self.kind {
            None => "whiteout".into(),
            Some(k) => format!("{k:?}").to_lowercase(),
        }
    }
}

/// Every entry of `index` by path (whiteouts included), with the inode of regular files.
pub(super) fn entries(index: &LayerIndex) -> Result<BTreeMap<Vec<u8>, (Summary, u64)>, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![Vec::new()];
    while let Some(dir) = dirs.pop() {
        let Some(children) = index.read_dir(&dir).map_err(|e| e.to_string())? else {
            continue;
        };
        for e in children {
            let path = e.path();
            if e.is_dir() && !e.is_whiteout() {
                dirs.push(path.clone());
            }
            out.insert(path, (Summary::of(&e), e.inode()));
        }
    }
    Ok(out)
}

/// Entries by path, with the inode of each.
pub(super) type Entries = BTreeMap<Vec<u8>, (Summary, u64)>;

/// Rebuild the index from the tree and compare with the published one; reports each path
/// that differs and returns the tree's entries (`None` when the tree could not be read).
fn check_metadata(
    fs: &Path,
    index: &LayerIndex,
    published: &Entries,
    legacy: bool,
    found: &mut Findings<'_>,
) -> Option<Entries> {
    let rebuilt = match crate::layer::index_from_tree(fs, legacy) {
        Ok((bytes, _)) => bytes,
        Err(LayerError::UnsafePath { path, reason }) => {
            // A real symlink planted in the tree: the tree is not compared further (nothing
            // under it is read through it).
            let prefix = format!("{}/", fs.display());
            let rel = path.strip_prefix(&prefix).unwrap_or(&path).to_owned();
            found.add(ProblemKind::KindChanged, Some(rel), reason);
            return None;
        }
        Err(e) => {
            found.add(ProblemKind::Unreadable, shown(fs), e.to_string());
            return None;
        }
    };
    found.check.entries = index.len() as u64;
    if rebuilt == index.bytes() {
        return entries(index).ok();
    }
    let now = match LayerIndex::from_bytes(rebuilt)
        .map_err(|e| e.to_string())
        .and_then(|i| entries(&i))
    {
        Ok(now) => now,
        Err(e) => {
            found.add(ProblemKind::Unreadable, shown(fs), e);
            return None;
        }
    };
    compare_entries(published, &now, found);
    Some(now)
}

/// Report every path that differs between `published` and `now`, or is in one only.
pub(super) fn compare_entries(published: &Entries, now: &Entries, found: &mut Findings<'_>) {
    for (path, (want, _)) in published {
        let Some((got, _)) = now.get(path) else {
            found.add(ProblemKind::Missing, tree_path(path), "published, now gone");
            continue;
        };
        if want != got {
            report_difference(path, want, got, found);
        }
    }
    for (path, (got, _)) in now {
        if !published.contains_key(path) {
            let why = format!("a {} that was not published", got.kind_name());
            found.add(ProblemKind::Unexpected, tree_path(path), why);
        }
    }
}

fn report_difference(path: &[u8], want: &Summary, got: &Summary, found: &mut Findings<'_>) {
    let at = tree_path(path);
    if want.kind != got.kind {
        let why = format!("was a {}, is a {}", want.kind_name(), got.kind_name());
        return found.add(ProblemKind::KindChanged, at, why);
    }
    if want.size != got.size {
        let why = format!("was {} bytes, is {}", want.size, got.size);
        found.add(ProblemKind::SizeChanged, at.clone(), why);
    }
    if want.mtime != got.mtime {
        let why = format!(
            "modified at {}.{:09}, published with {}.{:09}",
            got.mtime.0, got.mtime.1, want.mtime.0, want.mtime.1
        );
        found.add(ProblemKind::TimeChanged, at.clone(), why);
    }
    if want.rest != got.rest {
        let why = "the image's metadata (mode, owner, xattrs, markers or link target) differs";
        found.add(ProblemKind::MetadataChanged, at, why);
    }
}

/// Hash every regular file the index lists that is still a file of the same size (other
/// differences are reported already) with `digest` (by path: the tree's file, or the
/// image's) and compare with the digests taken when it was extracted.
pub(super) fn check_contents(
    published: &Entries,
    now: &Entries,
    contents: &Contents,
    digest: &mut dyn FnMut(&[u8]) -> std::io::Result<[u8; 32]>,
    found: &mut Findings<'_>,
) {
    let mut by_inode: HashMap<u64, [u8; 32]> = HashMap::new();
    for (path, (want, inode)) in published {
        let comparable = now
            .get(path)
            .is_some_and(|(got, _)| got.kind == want.kind && got.size == want.size);
        if want.kind != Some(EntryKind::File) || !comparable {
            continue;
        }
        let Some(recorded) = contents.get(inode) else {
            found.add(
                ProblemKind::ContentsCorrupt,
                tree_path(path),
                "no digest recorded",
            );
            continue;
        };
        let digest = match by_inode.get(inode) {
            Some(d) => *d,
            None => match digest(path) {
                Ok(d) => {
                    found.check.bytes += want.size;
                    by_inode.insert(*inode, d);
                    d
                }
                Err(e) => {
                    found.add(ProblemKind::Unreadable, tree_path(path), e.to_string());
                    continue;
                }
            },
        };
        if &digest != recorded {
            found.add(
                ProblemKind::ContentChanged,
                tree_path(path),
                "content differs (same size)",
            );
        }
    }
}

/// BLAKE3 of the file at `path` under `fs`, not following a symlink.
fn digest_at(fs: &Path, path: &[u8]) -> std::io::Result<[u8; 32]> {
    use std::os::unix::ffi::OsStrExt;
    let full = fs.join(std::ffi::OsStr::from_bytes(path));
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&full)
        .and_then(contents::digest_file)
}
