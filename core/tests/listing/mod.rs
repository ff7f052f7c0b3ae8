//! The canonical listing of a merged view (`LayerStack` over the layers' indexes, contents
//! read from their `fs/` trees), line for line the format `tests/differential/oracle` prints
//! for a real tree applied by containerd (see `tests/differential/README.md`, "The
//! listing"), and a one-call extraction of layer tars into a throwaway cache-like directory.
//! Used by `core/tests/breakouts.rs` and `core/examples/differential.rs`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use microsandbox_image::index::{Entry, EntryKind, LayerIndex, LayerStack};
use microsandbox_image::layer::extract_layer_tar;
use microsandbox_image::{ExtractLimits, LayerError};
use sha2::{Digest as _, Sha256};

/// Extracted layers: `<dir>/<n>/fs` trees and their indexes, bottom to top.
pub struct Extracted {
    pub dir: tempfile::TempDir,
    pub stack: LayerStack,
}

impl Extracted {
    /// The `fs/` tree of layer `n`.
    pub fn fs(&self, n: usize) -> PathBuf {
        self.dir.path().join(n.to_string()).join("fs")
    }
}

/// Extract `layers` (uncompressed tars, bottom to top) one by one, each into its own empty
/// directory as a pull does; the first refused layer ends it: `Err((n, error))`.
pub fn extract_all(
    layers: &[Vec<u8>],
    limits: ExtractLimits,
) -> Result<Extracted, (usize, LayerError)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut indexes = Vec::new();
    for (n, tar) in layers.iter().enumerate() {
        let fs = dir.path().join(n.to_string()).join("fs");
        std::fs::create_dir_all(&fs).expect("layer dir");
        let bytes = extract_layer_tar(tar, &fs, limits).map_err(|e| (n, e))?;
        indexes.push(LayerIndex::from_bytes(bytes).expect("our own index opens"));
    }
    Ok(Extracted {
        dir,
        stack: LayerStack::new(indexes),
    })
}

/// The merged view of pulled layers (`…/<diff_id>/fs` paths, bottom to top).
pub fn stack_of(layers: &[PathBuf]) -> LayerStack {
    LayerStack::new(
        layers
            .iter()
            .map(|fs| {
                let dir = fs.parent().expect("a layer's fs/ has a parent");
                LayerIndex::open(dir.join("index")).expect("the layer's index opens")
            })
            .collect(),
    )
}

/// The listing of the merged view of `layers` (their `fs/` trees, bottom to top).
pub fn listing(stack: &LayerStack, layers: &[PathBuf]) -> Vec<String> {
    let entries: Vec<(Vec<u8>, Entry<'_>)> = stack
        .walk()
        .collect::<Result<_, _>>()
        .expect("a valid merged view");
    let mut groups: HashMap<(usize, u64), Vec<&[u8]>> = HashMap::new();
    for (path, e) in &entries {
        if !e.is_dir() {
            groups.entry((e.layer(), e.inode())).or_default().push(path);
        }
    }
    entries
        .iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, e)| {
            let group = groups.get(&(e.layer(), e.inode()));
            // The group's name: its smallest path, byte-wise (not its first in walk order).
            let first = group
                .filter(|g| !e.is_dir() && g.len() > 1)
                .and_then(|g| g.iter().min().copied());
            render(path, e, &layers[e.layer()], first)
        })
        .collect()
}

/// One line: `PATH TYPE PERM UID:GID DETAIL [t=MTIME] [x:NAME=VALUE]… [=FIRST]`.
fn render(path: &[u8], e: &Entry<'_>, fs: &Path, link_group: Option<&[u8]>) -> String {
    let perm = e.mode() & 0o7777;
    let (perm, owner) = match link_group {
        // containerd applies each hardlink record's mode and owner to the shared inode;
        // GNU tar, umoci and msbimage keep the target's: not compared.
        Some(_) => ("----".to_string(), "-:-".to_string()),
        None => (format!("{perm:04o}"), format!("{}:{}", e.uid(), e.gid())),
    };
    let mut line = escape(path);
    match e.kind() {
        EntryKind::Dir => line += &format!(" d {perm} {owner}"),
        EntryKind::File => {
            let content = std::fs::read(fs.join(OsStr::from_bytes(path)))
                .expect("content of an extracted file");
            let sum = hex::encode(Sha256::digest(&content));
            line += &format!(" f {perm} {owner} size={} sha256={}", e.size(), &sum[..16]);
        }
        EntryKind::Symlink => {
            let target = escape(e.link_target().unwrap_or_default());
            line += &format!(" l {owner} -> {target}");
        }
        EntryKind::CharDevice | EntryKind::BlockDevice => {
            let kind = if e.kind() == EntryKind::CharDevice {
                "c"
            } else {
                "b"
            };
            let (major, minor) = decode_dev(e.rdev());
            line += &format!(" {kind} {perm} {owner} {major},{minor}");
        }
        EntryKind::Fifo => line += &format!(" p {perm} {owner}"),
        other => line += &format!(" ? {other:?}"),
    }
    if e.kind() != EntryKind::Dir && link_group.is_none() {
        line += &format!(" t={}.{:09}", e.mtime_sec(), e.mtime_nsec());
    }
    for (name, value) in e.xattrs() {
        if kept_by_the_kernel(e.kind(), name) {
            line += &format!(" x:{}={}", escape(name), escape(value));
        }
    }
    if let Some(first) = link_group {
        line += &format!(" ={}", escape(first));
    }
    line
}

/// Whether a kernel (so containerd, applying for real) can hold xattr `name` on an entry of
/// `kind`: `user.*` only on regular files and directories, `trusted.*` not from an image.
fn kept_by_the_kernel(kind: EntryKind, name: &[u8]) -> bool {
    if name.starts_with(b"trusted.") {
        return false;
    }
    !name.starts_with(b"user.") || matches!(kind, EntryKind::File | EntryKind::Dir)
}

/// The kernel's `new_decode_dev`.
fn decode_dev(rdev: u32) -> (u32, u32) {
    (
        (rdev >> 8) & 0xfff,
        (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
    )
}

/// Printable ASCII but space and backslash kept; every other byte `\xHH`.
pub fn escape(raw: &[u8]) -> String {
    let mut s = String::with_capacity(raw.len());
    for &c in raw {
        if c > 0x20 && c < 0x7f && c != b'\\' {
            s.push(c as char);
        } else {
            s += &format!("\\x{c:02x}");
        }
    }
    s
}

/// The listing of a real tree (a mount of our images), line for line what the oracle's
/// `describe` prints for the tree containerd made: the same walk (names in byte order, each
/// directory before its children, an entry that vanishes on lookup — a lower layer's
/// whiteout listed by overlayfs in a directory it does not merge — skipped), hardlink groups
/// by device and inode, and the xattrs the kernel lets containerd keep ([`listing`]'s rule:
/// no `trusted.*`, `user.*` on files and directories only).
pub fn describe_tree(root: &Path) -> std::io::Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut entries: Vec<(Vec<u8>, std::fs::Metadata)> = Vec::new();
    walk_tree(root, Vec::new(), &mut entries)?;
    let mut groups: HashMap<(u64, u64), Vec<&[u8]>> = HashMap::new();
    for (path, m) in &entries {
        if !m.is_dir() {
            groups.entry((m.dev(), m.ino())).or_default().push(path);
        }
    }
    let mut out = Vec::new();
    for (path, m) in &entries {
        let first = groups
            .get(&(m.dev(), m.ino()))
            .filter(|g| !m.is_dir() && g.len() > 1)
            .and_then(|g| g.iter().min().copied());
        out.push(render_real(root, path, m, first)?);
    }
    Ok(out)
}

fn walk_tree(
    root: &Path,
    rel: Vec<u8>,
    out: &mut Vec<(Vec<u8>, std::fs::Metadata)>,
) -> std::io::Result<()> {
    let dir = root.join(OsStr::from_bytes(&rel));
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let mut path = rel.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let m = match std::fs::symlink_metadata(root.join(OsStr::from_bytes(&path))) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let is_dir = m.is_dir();
        out.push((path.clone(), m));
        if is_dir {
            walk_tree(root, path, out)?;
        }
    }
    Ok(())
}

fn render_real(
    root: &Path,
    path: &[u8],
    m: &std::fs::Metadata,
    link_group: Option<&[u8]>,
) -> std::io::Result<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let full = root.join(OsStr::from_bytes(path));
    let (perm, owner) = match link_group {
        Some(_) => ("----".to_string(), "-:-".to_string()),
        None => (
            format!("{:04o}", m.mode() & 0o7777),
            format!("{}:{}", m.uid(), m.gid()),
        ),
    };
    let ft = m.file_type();
    let mut line = escape(path);
    let kind = if ft.is_dir() {
        line += &format!(" d {perm} {owner}");
        EntryKind::Dir
    } else if ft.is_file() {
        let sum = hex::encode(Sha256::digest(std::fs::read(&full)?));
        line += &format!(" f {perm} {owner} size={} sha256={}", m.len(), &sum[..16]);
        EntryKind::File
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&full)?;
        line += &format!(" l {owner} -> {}", escape(target.as_os_str().as_bytes()));
        EntryKind::Symlink
    } else if ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_char_device() { "c" } else { "b" };
        let rdev = m.rdev();
        let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
        line += &format!(" {kind} {perm} {owner} {major},{minor}");
        if ft.is_char_device() {
            EntryKind::CharDevice
        } else {
            EntryKind::BlockDevice
        }
    } else if ft.is_fifo() {
        line += &format!(" p {perm} {owner}");
        EntryKind::Fifo
    } else {
        line += &format!(" ? {:o}", m.mode());
        EntryKind::Whiteout
    };
    if kind != EntryKind::Dir && link_group.is_none() {
        line += &format!(" t={}.{:09}", m.mtime(), m.mtime_nsec());
    }
    let mut names = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(&full, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<&[u8]> = names[..n]
        .split(|&c| c == 0)
        .filter(|n| !n.is_empty() && !n.starts_with(b"trusted.overlay."))
        .filter(|n| kept_by_the_kernel(kind, n))
        .collect();
    names.sort();
    for name in names {
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(&full, name, &mut value)?;
        line += &format!(" x:{}={}", escape(name), escape(&value[..len]));
    }
    if let Some(first) = link_group {
        line += &format!(" ={}", escape(first));
    }
    Ok(line)
}
