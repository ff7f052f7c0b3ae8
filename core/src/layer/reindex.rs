//! The sidecar index of a layer that was extracted without one (an earlier pull with
//! `build_index: false`): one walk of the published tree, reading back what the extractor
//! stored in xattrs, written atomically next to `fs/`. The normal path never walks: it feeds
//! the index while extracting.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::LayerError;
use super::extract::{IMPLICIT_DIR_XATTR, OPAQUE_XATTR, WHITEOUT_XATTR};
use crate::cache::{GlobalCache, LayerMeta, write_atomic};
use crate::digest::Digest;
use crate::index::{EntryMeta, IndexBuilder};
use crate::stat::{XATTR_PREFIX, mode, read_override_stat};

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LayerError + 'a {
    move |source| LayerError::Io {
        op,
        path: path.to_string_lossy().into_owned(),
        source,
    }
}

fn xattr(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => buf.resize(buf.len() * 4, 0),
            Err(_) => return None,
        }
    }
}

/// An image xattr: original name and value.
type Xattr = (Vec<u8>, Vec<u8>);

fn image_xattrs(path: &Path) -> Result<Vec<Xattr>, LayerError> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < (1 << 20) => {
                names.resize(names.len() * 4, 0)
            }
            Err(e) => return Err(io("list xattrs of", path)(e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if let Some(orig) = name.strip_prefix(XATTR_PREFIX.as_bytes())
            && let Some(value) = xattr(path, name)
        {
            out.push((orig.to_vec(), value));
        }
    }
    Ok(out)
}

/// Build the index bytes of an extracted tree. `legacy_markers`: the tree is of
/// `tree_format` 1, whose whiteouts are `.wh.` files under their tar names.
pub(crate) fn index_from_tree(
    fs: &Path,
    legacy_markers: bool,
) -> Result<(Vec<u8>, u64), LayerError> {
    let mut builder = IndexBuilder::new();
    let mut links: HashMap<u64, Vec<u8>> = HashMap::new();
    if let Some(meta) = entry_meta(fs, &std::fs::symlink_metadata(fs).map_err(io("stat", fs))?)? {
        builder.add(b"", meta)?;
    }
    if xattr(fs, OPAQUE_XATTR.as_bytes()).is_some() {
        builder.set_opaque(b"")?;
    }
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(fs.to_owned(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io("read", &dir))?
            .collect::<Result<_, _>>()
            .map_err(io("read", &dir))?;
        children.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for child in children {
            let path = child.path();
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(child.file_name().as_bytes());
            let md = std::fs::symlink_metadata(&path).map_err(io("stat", &path))?;
            if md.file_type().is_symlink() {
                return Err(LayerError::UnsafePath {
                    path: path.to_string_lossy().into_owned(),
                    reason: "a real symlink inside an extracted layer",
                });
            }
            if !md.is_dir() && md.nlink() > 1 {
                if let Some(first) = links.get(&md.ino()) {
                    builder.add_hardlink(&child_rel, first)?;
                    continue;
                }
                links.insert(md.ino(), child_rel.clone());
            }
            add_entry(&mut builder, &path, &md, &child_rel, legacy_markers)?;
            if md.is_dir() {
                subdirs.push((path, child_rel));
            }
        }
        // Depth first, in name order: parents are always added before their children.
        stack.extend(subdirs.into_iter().rev());
    }
    let entries = builder.len() as u64;
    Ok((builder.finish()?, entries))
}

/// Add the entry at `path` as the extractor left it: a whiteout marker file, or a real
/// entry (opaque if its directory is marked so) whatever its name.
fn add_entry(
    builder: &mut IndexBuilder,
    path: &Path,
    md: &std::fs::Metadata,
    rel: &[u8],
    legacy_markers: bool,
) -> Result<(), LayerError> {
    let meta = entry_meta(path, md)?.unwrap_or_else(|| EntryMeta {
        mode: if md.is_dir() {
            mode::S_IFDIR | 0o755
        } else {
            mode::S_IFREG | 0o644
        },
        size: if md.is_dir() { 0 } else { md.len() },
        inode: md.ino(),
        implicit: md.is_dir(),
        ..EntryMeta::default()
    });
    if legacy_markers {
        let name = rel.rsplit(|b| *b == b'/').next().unwrap_or_default();
        // Markers naming nothing and aufs bookkeeping were kept as inert files there.
        let inert = matches!(name, b".wh." | b".wh.." | b".wh...")
            || (name.starts_with(b".wh..wh.") && name != b".wh..wh..opq");
        if !inert {
            builder.add(rel, meta)?; // `.wh.` names are markers there
        }
        return Ok(());
    }
    if !md.is_dir() && xattr(path, WHITEOUT_XATTR.as_bytes()).is_some() {
        builder.add_whiteout(rel, meta)?;
        return Ok(());
    }
    builder.add_literal(rel, meta)?;
    if md.is_dir() && xattr(path, OPAQUE_XATTR.as_bytes()).is_some() {
        builder.set_opaque(rel)?;
    }
    Ok(())
}

/// What the extractor recorded about one path; `None` when it carries no override record.
fn entry_meta(path: &Path, md: &std::fs::Metadata) -> Result<Option<EntryMeta>, LayerError> {
    let Some(st) = read_override_stat(path).map_err(io("read xattr of", path))? else {
        return Ok(None);
    };
    let kind = st.mode & mode::S_IFMT;
    let link_target = if kind == mode::S_IFLNK {
        Some(std::fs::read(path).map_err(io("read", path))?)
    } else {
        None
    };
    Ok(Some(EntryMeta {
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: if kind == mode::S_IFREG { md.len() } else { 0 },
        rdev: st.rdev,
        mtime_sec: md.mtime(),
        mtime_nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
        inode: md.ino(),
        link_target,
        xattrs: image_xattrs(path)?,
        implicit: md.is_dir() && xattr(path, IMPLICIT_DIR_XATTR.as_bytes()).is_some(),
    }))
}

/// The `tree_format` of a published layer (1 when `meta.json` is unreadable or older).
fn tree_format(layer_dir: &Path) -> u32 {
    LayerMeta::read(layer_dir).map_or(1, |m| m.tree_format)
}

/// Give a published layer its index if it has none (blocking; takes the layer lock).
/// Returns the entry count when an index was built.
pub(crate) fn ensure_index(
    cache: &GlobalCache,
    diff_id: &Digest,
) -> Result<Option<u64>, LayerError> {
    let index = cache.layer_index(diff_id);
    if index.exists() {
        return Ok(None);
    }
    let _lock = cache.lock_layer(diff_id)?;
    if index.exists() {
        return Ok(None);
    }
    let legacy = tree_format(&cache.layer_dir(diff_id)) < 2;
    let (bytes, entries) = index_from_tree(&cache.layer_fs(diff_id), legacy)?;
    // Adding a file by rename is the one write a published layer may see: readers find either
    // no index or the whole one.
    write_atomic(&cache.layout().tmp(), &index, &bytes, cache.perms())?;
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    /// `verify` relies on this: an index rebuilt from an untouched tree is byte for byte the
    /// one the extraction wrote (whiteouts, opaque directories, hardlinks, symlinks, devices,
    /// xattrs, owners and times included).
    #[test]
    fn index_from_tree_reproduces_the_extraction_index() {
        for (i, layer) in msbimage_testkit::fixtures::standard_layers()
            .iter()
            .enumerate()
        {
            let tmp = tempfile::tempdir().unwrap();
            let fs = tmp.path().join("fs");
            std::fs::create_dir(&fs).unwrap();
            let tar = layer.tar_bytes();
            let a = crate::layer::extract_layer_tar(&tar, &fs, Default::default()).unwrap();
            let (b, _) = super::index_from_tree(&fs, false).unwrap();
            assert!(a == b, "layer {i}: the rebuilt index differs");
        }
    }
}
