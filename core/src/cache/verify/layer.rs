//! Checking one layer directory: its shape and `meta.json`, its index, and its tree against
//! the `contents` record taken when it was extracted.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{LayerCheck, MAX_LISTED_PROBLEMS, Problem, ProblemKind};
use crate::cache::contents::{self, Contents, Node};
use crate::cache::{GlobalCache, LayerMeta, Layout};
use crate::digest::Digest;
use crate::index::LayerIndex;

/// Collects a layer's problems, listing the first [`MAX_LISTED_PROBLEMS`].
struct Findings<'a> {
    check: &'a mut LayerCheck,
}

impl Findings<'_> {
    fn add(&mut self, kind: ProblemKind, path: Option<String>, detail: impl Into<String>) {
        if self.check.problems.len() < MAX_LISTED_PROBLEMS {
            self.check.problems.push(Problem::new(kind, path, detail));
        } else {
            self.check.more_problems += 1;
        }
    }
}

fn shown(p: &Path) -> Option<String> {
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
        if let Some(meta) = layer_meta(&dir, diff_id, &mut found) {
            check_index(&dir, &meta, &mut found);
            if let Some(recorded) = recorded_contents(&dir, &meta, &mut found) {
                found.check.recorded = true;
                check_tree(&Layout::fs_in(&dir), recorded, &mut found);
            }
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
    if !is_dir(&fs).unwrap_or(false) {
        found.add(
            ProblemKind::LayerMissing,
            shown(&fs),
            "the tree is gone or not a directory",
        );
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
fn check_index(dir: &Path, meta: &LayerMeta, found: &mut Findings<'_>) {
    let path = Layout::index_in(dir);
    let bytes = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .and_then(|f| {
            use std::io::Read;
            let mut bytes = Vec::new();
            (&f).read_to_end(&mut bytes).map(|_| bytes)
        }) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if meta.index_digest.is_some() {
                found.add(
                    ProblemKind::IndexMissing,
                    shown(&path),
                    "published, now gone",
                );
            }
            return;
        }
        Err(e) => return found.add(ProblemKind::Unreadable, shown(&path), e.to_string()),
    };
    if let Some(want) = &meta.index_digest
        && !want.matches(&bytes)
    {
        let why = format!("differs from the index published ({want})");
        return found.add(ProblemKind::IndexCorrupt, shown(&path), why);
    }
    if let Err(e) = LayerIndex::from_bytes(bytes).and_then(|index| index.verify()) {
        found.add(ProblemKind::IndexCorrupt, shown(&path), e.to_string());
    }
}

/// The `contents` record, when the layer was published with one and it is intact.
fn recorded_contents(dir: &Path, meta: &LayerMeta, found: &mut Findings<'_>) -> Option<Contents> {
    let want = meta.contents_digest.as_ref()?;
    let path = Layout::contents_in(dir);
    let bytes = match contents::read_bytes(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            found.add(
                ProblemKind::ContentsMissing,
                shown(&path),
                "published, now gone",
            );
            return None;
        }
        Err(e) => {
            found.add(ProblemKind::Unreadable, shown(&path), e.to_string());
            return None;
        }
    };
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

/// Walk the tree and compare every entry with the record; what the record has that the
/// tree lacks is missing.
fn check_tree(fs: &Path, mut recorded: Contents, found: &mut Findings<'_>) {
    let mut by_inode: HashMap<u64, [u8; 32]> = HashMap::new();
    let walked = contents::walk(fs, &mut |node: Node| {
        found.check.entries += 1;
        match recorded.remove(&node.path) {
            None => {
                let why = format!("a {} that was not published", node.kind.name());
                found.add(ProblemKind::Unexpected, tree_path(&node.path), why);
            }
            Some(want) => compare(&node, &want, &mut by_inode, found),
        }
        Ok(())
    });
    if let Err(e) = walked {
        // The walk stopped: what it did not reach is not known to be missing.
        return found.add(ProblemKind::Unreadable, None, e.0);
    }
    for path in recorded.into_keys() {
        found.add(
            ProblemKind::Missing,
            tree_path(&path),
            "published, now gone",
        );
    }
}

fn compare(
    node: &Node,
    want: &contents::Recorded,
    by_inode: &mut HashMap<u64, [u8; 32]>,
    found: &mut Findings<'_>,
) {
    let at = || tree_path(&node.path);
    if node.kind != want.kind {
        let why = format!("was a {}, is a {}", want.kind.name(), node.kind.name());
        return found.add(ProblemKind::KindChanged, at(), why);
    }
    if node.size != want.size {
        let why = format!("was {} bytes, is {}", want.size, node.size);
        found.add(ProblemKind::SizeChanged, at(), why);
    } else if let Some(content) = want.content {
        match file_digest(node, by_inode, found) {
            Ok(d) if d != content => {
                found.add(
                    ProblemKind::ContentChanged,
                    at(),
                    "content differs (same size)",
                );
            }
            Ok(_) => {}
            Err(e) => found.add(ProblemKind::Unreadable, at(), e.to_string()),
        }
    }
    if node.mtime != want.mtime {
        let why = format!(
            "modified at {}.{:09}, published with {}.{:09}",
            node.mtime.0, node.mtime.1, want.mtime.0, want.mtime.1
        );
        found.add(ProblemKind::TimeChanged, at(), why);
    }
    if node.xattrs != want.xattrs {
        let why = "user.* xattrs (the image's owner, mode or markers) differ";
        found.add(ProblemKind::XattrsChanged, at(), why);
    }
}

/// BLAKE3 of a file's content, read once per inode (hardlinks share one).
fn file_digest(
    node: &Node,
    by_inode: &mut HashMap<u64, [u8; 32]>,
    found: &mut Findings<'_>,
) -> std::io::Result<[u8; 32]> {
    if let Some(d) = by_inode.get(&node.ino) {
        return Ok(*d);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&node.full)?;
    let d = contents::digest_file(file)?;
    found.check.bytes += node.size;
    by_inode.insert(node.ino, d);
    Ok(d)
}
