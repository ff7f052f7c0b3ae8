//! A metadata-only walk of an extracted tree: every entry below the root, depth first, names
//! in byte order, never following a symlink, with its kind, size, mtime, inode and a digest of
//! its `user.*` xattrs. File contents are not read here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{ContentsError, bad};

/// What kind of entry a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Dir,
    File,
    /// Anything else (`S_IFMT` bits): never part of an extracted tree.
    Other(u32),
}

impl NodeKind {
    pub(super) fn code(self) -> u8 {
        match self {
            NodeKind::Dir => 1,
            NodeKind::File => 2,
            NodeKind::Other(_) => 0,
        }
    }

    pub(super) fn from_code(c: u8) -> Option<NodeKind> {
        match c {
            1 => Some(NodeKind::Dir),
            2 => Some(NodeKind::File),
            _ => None,
        }
    }

    /// For messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NodeKind::Dir => "directory",
            NodeKind::File => "regular file",
            NodeKind::Other(bits) => match bits & 0o170000 {
                0o120000 => "symlink",
                0o020000 => "character device",
                0o060000 => "block device",
                0o010000 => "FIFO",
                0o140000 => "socket",
                _ => "special file",
            },
        }
    }
}

/// One entry found by [`walk`].
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Relative to the walk's root.
    pub path: Vec<u8>,
    /// The same, as a host path (root joined).
    pub full: PathBuf,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ino: u64,
    pub xattrs: [u8; 32],
}

/// Visit every entry under `root` (not `root` itself); stops at the first error of `visit`
/// or of the file system.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(Node) -> Result<(), ContentsError>,
) -> Result<(), ContentsError> {
    walk_dir(root, &[], visit)
}

fn io_bad(op: &str, path: &Path, e: std::io::Error) -> ContentsError {
    bad(format!("cannot {op} {}: {e}", path.display()))
}

fn walk_dir(
    dir: &Path,
    rel: &[u8],
    visit: &mut dyn FnMut(Node) -> Result<(), ContentsError>,
) -> Result<(), ContentsError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_bad("list", dir, e))? {
        names.push(entry.map_err(|e| io_bad("list", dir, e))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let full = dir.join(&name);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_bad("inspect", &full, e))?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_file() {
            NodeKind::File
        } else {
            NodeKind::Other(meta.mode())
        };
        let mut path = rel.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        let node = Node {
            xattrs: user_xattrs_digest(&full)?,
            path,
            kind,
            size: if kind == NodeKind::Dir {
                0
            } else {
                meta.size()
            },
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ino: meta.ino(),
            full,
        };
        let (sub, sub_rel) = (node.full.clone(), node.path.clone());
        visit(node)?;
        if kind == NodeKind::Dir {
            walk_dir(&sub, &sub_rel, visit)?;
        }
    }
    Ok(())
}

/// BLAKE3 over the `user.*` xattrs of `path` (not followed), sorted by name, each name and
/// value prefixed with its u32 length. Other namespaces (`security.selinux`, …) belong to
/// the host, not to the layer.
fn user_xattrs_digest(path: &Path) -> Result<[u8; 32], ContentsError> {
    let fail = |op, e: rustix::io::Errno| io_bad(op, path, e.into());
    let mut list = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr(path, &mut [0u8; 0][..])
                    .map_err(|e| fail("list xattrs of", e))?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(e) => return Err(fail("list xattrs of", e)),
        }
    };
    let mut names: Vec<&[u8]> = list[..n]
        .split(|&b| b == 0)
        .filter(|name| name.starts_with(b"user."))
        .collect();
    names.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    let mut value = vec![0u8; 256];
    for name in names {
        let name_os = OsStr::from_bytes(name);
        let len = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr(path, name_os, &mut [0u8; 0][..])
                        .map_err(|e| fail("read an xattr of", e))?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                Err(e) => return Err(fail("read an xattr of", e)),
            }
        };
        hasher.update(&(name.len() as u32).to_le_bytes());
        hasher.update(name);
        hasher.update(&(len as u32).to_le_bytes());
        hasher.update(&value[..len]);
    }
    Ok(*hasher.finalize().as_bytes())
}
