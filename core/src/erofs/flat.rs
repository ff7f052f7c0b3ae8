//! One EROFS image of a whole image: the merged tree of its layers ([`LayerStack`]: upper
//! entries win, whiteouts and opaque directories applied), with no overlay markers left, so
//! a guest mounts one block device and needs no overlayfs.
//!
//! The tree goes into an [`IndexBuilder`] as if it were one layer, and each regular file's
//! bytes are copied into the image from the layer that provides it, in the order the merged
//! walk visits them; the metadata is then written as for a layer image (`meta.rs`). A
//! hardlink group keeps the names of it that are still visible; its bytes are copied once.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{ErofsError, ErofsOptions, ImageSummary, LayerImageWriter};
use crate::index::{Entry, EntryKind, EntryMeta, IndexBuilder, LayerStack};

/// Bytes read from a layer file at a time.
const COPY_BUF: usize = 256 << 10;

/// Where a flat image's file bytes come from: the tree of each layer (bottom to top), in
/// the cache's layer format (an entry's bytes are at its path under its layer's tree).
#[derive(Debug, Clone)]
pub(crate) struct LayerTrees<'a>(pub &'a [PathBuf]);

impl LayerTrees<'_> {
    /// Open the bytes of `path` in layer `layer`.
    fn open(&self, layer: usize, path: &[u8]) -> Result<std::fs::File, ErofsError> {
        let root = self.0.get(layer).ok_or_else(|| {
            ErofsError::Internal(format!("layer {layer} of {} has no tree", self.0.len()))
        })?;
        let file = root.join(Path::new(std::ffi::OsStr::from_bytes(path)));
        std::fs::File::open(&file).map_err(ErofsError::io("read", &file))
    }
}

/// Write the merged tree of `stack` as one image at `dest`, file bytes from `trees`.
pub(crate) fn write_flat(
    stack: &LayerStack,
    trees: &LayerTrees<'_>,
    dest: &Path,
    options: ErofsOptions,
) -> Result<ImageSummary, ErofsError> {
    let mut image = LayerImageWriter::create(dest, options)?;
    let mut tree = IndexBuilder::new();
    // The first visible name of each hardlink group, by (layer, inode in that layer).
    let mut groups: HashMap<(usize, u64), Vec<u8>> = HashMap::new();
    let mut next_key = 1u64;
    let mut buf = vec![0u8; COPY_BUF];
    for item in stack.walk() {
        let (path, entry) = item.map_err(ErofsError::Index)?;
        if entry.kind() == EntryKind::File && (entry.nlink() > 1 || entry.is_hardlink()) {
            let group = (entry.layer(), entry.inode());
            if let Some(first) = groups.get(&group) {
                tree.add_hardlink(&path, first).map_err(ErofsError::Index)?;
                continue;
            }
            groups.insert(group, path.clone());
        }
        let key = next_key;
        next_key += 1;
        if entry.kind() == EntryKind::File {
            copy_file(&mut image, trees, &path, &entry, key, &mut buf)?;
        }
        tree.add_literal(&path, meta_of(&entry, key))
            .map_err(ErofsError::Index)?;
    }
    image.finish(&tree)
}

/// Copy the bytes of the regular file `entry` at `path` into the image as file `key`.
fn copy_file(
    image: &mut LayerImageWriter,
    trees: &LayerTrees<'_>,
    path: &[u8],
    entry: &Entry<'_>,
    key: u64,
    buf: &mut [u8],
) -> Result<(), ErofsError> {
    let size = entry.size();
    image.begin_file(size, entry.xattrs())?;
    let mut from = trees.open(entry.layer(), path)?.take(size);
    let mut copied = 0u64;
    loop {
        let n = from.read(buf).map_err(|source| ErofsError::Io {
            op: "read",
            path: String::from_utf8_lossy(path).into_owned(),
            source,
        })?;
        if n == 0 {
            break;
        }
        image.write(&buf[..n])?;
        copied += n as u64;
    }
    if copied != size {
        return Err(ErofsError::Internal(format!(
            "{}: the layer's file holds {copied} bytes, its index says {size}",
            String::from_utf8_lossy(path)
        )));
    }
    image.end_file(key)
}

/// The metadata `entry` keeps in the flat image, under file key `key`.
fn meta_of(entry: &Entry<'_>, key: u64) -> EntryMeta {
    EntryMeta {
        mode: entry.mode(),
        uid: entry.uid(),
        gid: entry.gid(),
        size: entry.size(),
        rdev: entry.rdev(),
        mtime_sec: entry.mtime_sec(),
        mtime_nsec: entry.mtime_nsec(),
        inode: key,
        link_target: entry.link_target().map(<[u8]>::to_vec),
        xattrs: entry
            .xattrs()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        implicit: entry.is_implicit(),
    }
}

#[cfg(test)]
#[path = "flat_tests.rs"]
mod tests;
