//! One EROFS image of a whole image: the merged tree of its layers ([`LayerStack`]: upper
//! entries win, whiteouts and opaque directories applied), with no overlay markers left, so
//! a guest mounts one block device and needs no overlayfs.
//!
//! The tree goes into an [`IndexBuilder`] as if it were one layer, and each regular file's
//! bytes are copied into the image from the layer that provides it (its tree, or its EROFS
//! image when it has no tree), in the order the merged walk visits them; the metadata is
//! then written as for a layer image (`meta.rs`). A
//! hardlink group keeps the names of it that are still visible; its bytes are copied once.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::read::{ErofsImage, ImageEntry, ReadError};
use super::{ErofsError, ErofsOptions, ImageSummary, LayerImageWriter};
use crate::index::{Entry, EntryKind, EntryMeta, IndexBuilder, LayerStack};

/// Bytes read from a layer file at a time.
const COPY_BUF: usize = 256 << 10;

/// Where a flat image's file bytes come from, per layer (bottom to top): the layer's tree in
/// the cache's layer format (an entry's bytes are at its path under it), or, for a layer
/// kept only as an EROFS image, that image (read with our own reader; its regular files are
/// listed once, when the first is asked for).
#[derive(Debug)]
pub(crate) struct LayerFiles {
    layers: Vec<Source>,
}

#[derive(Debug)]
enum Source {
    Tree(PathBuf),
    Image {
        path: PathBuf,
        opened: Option<(ErofsImage, HashMap<Vec<u8>, ImageEntry>)>,
    },
}

impl LayerFiles {
    /// Each layer's tree where it has one, else its image (`trees` and `images` parallel).
    pub(crate) fn of(trees: &[PathBuf], images: &[PathBuf]) -> LayerFiles {
        let layers = trees
            .iter()
            .zip(images)
            .map(|(tree, image)| match tree.is_dir() {
                true => Source::Tree(tree.clone()),
                false => Source::Image {
                    path: image.clone(),
                    opened: None,
                },
            })
            .collect();
        LayerFiles { layers }
    }

    /// Copy the `size` bytes of `path` in layer `layer` into `image`.
    fn copy(
        &mut self,
        layer: usize,
        path: &[u8],
        size: u64,
        image: &mut LayerImageWriter,
        buf: &mut [u8],
    ) -> Result<(), ErofsError> {
        let count = self.layers.len();
        let source = self.layers.get_mut(layer).ok_or_else(|| {
            ErofsError::Internal(format!("layer {layer} of {count} has no source"))
        })?;
        match source {
            Source::Tree(root) => {
                let file = root.join(Path::new(std::ffi::OsStr::from_bytes(path)));
                let from = std::fs::File::open(&file).map_err(ErofsError::io("read", &file))?;
                copy_from(from.take(size), path, size, image, buf)
            }
            Source::Image { path: at, opened } => {
                if opened.is_none() {
                    *opened = Some(list_files(at)?);
                }
                let Some((reader, files)) = opened else {
                    return Err(ErofsError::Internal("the layer image is not open".into()));
                };
                let entry = files.get(path).ok_or_else(|| ErofsError::Read {
                    image: at.display().to_string(),
                    detail: format!("{} is not a regular file there", shown(path)),
                })?;
                let from = reader.file_data(entry).map_err(|e| read_error(at, e))?;
                copy_from(from.take(size), path, size, image, buf)
            }
        }
    }
}

/// Open the layer image `path` and list its regular files by path.
fn list_files(path: &Path) -> Result<(ErofsImage, HashMap<Vec<u8>, ImageEntry>), ErofsError> {
    let image = ErofsImage::open(path).map_err(|e| read_error(path, e))?;
    let mut files = HashMap::new();
    image
        .walk(|e| {
            if e.file_type() == crate::stat::mode::S_IFREG {
                files.insert(e.path.clone(), e.clone());
            }
            Ok::<(), ReadError>(())
        })
        .map_err(|e| read_error(path, e))?;
    Ok((image, files))
}

fn read_error(path: &Path, e: ReadError) -> ErofsError {
    ErofsError::Read {
        image: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Write the merged tree of `stack` as one image at `dest`, file bytes from `files`.
pub(crate) fn write_flat(
    stack: &LayerStack,
    files: &mut LayerFiles,
    dest: &Path,
    options: ErofsOptions,
) -> Result<ImageSummary, ErofsError> {
    let mut image = LayerImageWriter::create(dest, options)?;
    let mut buf = vec![0u8; COPY_BUF];
    let tree = merged_tree(stack, |path, entry, key| {
        image.begin_file(entry.size(), entry.xattrs())?;
        files.copy(entry.layer(), path, entry.size(), &mut image, &mut buf)?;
        image.end_file(key)
    })?;
    image.finish(&tree)
}

/// The tree a flat image of `stack` holds, as one layer's index builder: every visible
/// entry of the merge, in its walk's order, each under a key of its own (the names of a
/// hardlink group still visible share the first one's). `file` is told of each regular file
/// once (its merged path, its entry, its key), in that order.
pub(crate) fn merged_tree(
    stack: &LayerStack,
    mut file: impl FnMut(&[u8], &Entry<'_>, u64) -> Result<(), ErofsError>,
) -> Result<IndexBuilder, ErofsError> {
    let mut tree = IndexBuilder::new();
    // The first visible name of each hardlink group, by (layer, inode in that layer).
    let mut groups: HashMap<(usize, u64), Vec<u8>> = HashMap::new();
    let mut next_key = 1u64;
    for item in stack.walk() {
        let (path, entry) = item?;
        if entry.kind() == EntryKind::File && (entry.nlink() > 1 || entry.is_hardlink()) {
            let group = (entry.layer(), entry.inode());
            if let Some(first) = groups.get(&group) {
                tree.add_hardlink(&path, first)?;
                continue;
            }
            groups.insert(group, path.clone());
        }
        let key = next_key;
        next_key += 1;
        if entry.kind() == EntryKind::File {
            file(&path, &entry, key)?;
        }
        tree.add_literal(&path, meta_of(&entry, key))?;
    }
    Ok(tree)
}

/// Copy `size` bytes of `path` from `from` into the image's current file.
fn copy_from(
    mut from: impl Read,
    path: &[u8],
    size: u64,
    image: &mut LayerImageWriter,
    buf: &mut [u8],
) -> Result<(), ErofsError> {
    let mut copied = 0u64;
    loop {
        let n = from.read(buf).map_err(|source| ErofsError::Io {
            op: "read",
            path: shown(path),
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
            "{}: the layer holds {copied} bytes of it, its index says {size}",
            shown(path)
        )));
    }
    Ok(())
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
