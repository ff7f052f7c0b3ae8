//! The umoci oracle: unpack an OCI layout with `umoci unpack --rootless` and describe the
//! resulting root filesystem entry by entry, in a form another unpacker's merged view can be
//! compared with line for line.
//!
//! What rootless umoci can and cannot express, and so what the comparison covers: owners come
//! from the `user.rootlesscontainers` xattr (protobuf: field 1 uid, field 2 gid; absent means
//! 0:0); device nodes become empty regular files (so devices are compared as such, their
//! numbers are checked elsewhere); everything else (type, permission bits including
//! setuid/setgid/sticky, size, content hash, symlink target, xattrs) is compared exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use sha2::{Digest as _, Sha256};

/// The kind of an entry as the oracle compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file (and, for rootless umoci, a device node).
    File,
    /// Symbolic link.
    Symlink,
    /// FIFO.
    Fifo,
}

/// One entry of a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OracleEntry {
    /// Path relative to the root, `/`-separated, no leading slash.
    pub path: Vec<u8>,
    /// Kind.
    pub kind: Kind,
    /// Permission bits, `mode & 0o7777`.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of a regular file (0 otherwise).
    pub size: u64,
    /// SHA-256 of a regular file's content, hex.
    pub sha256: Option<String>,
    /// Target of a symlink.
    pub link_target: Option<Vec<u8>>,
    /// xattrs other than umoci's bookkeeping, sorted by name.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl fmt::Display for OracleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {:04o} {}:{} size={}",
            String::from_utf8_lossy(&self.path),
            self.kind,
            self.perm,
            self.uid,
            self.gid,
            self.size
        )?;
        if let Some(h) = &self.sha256 {
            write!(f, " sha256={}", &h[..16])?;
        }
        if let Some(t) = &self.link_target {
            write!(f, " -> {}", String::from_utf8_lossy(t))?;
        }
        for (k, v) in &self.xattrs {
            write!(
                f,
                " {}={:?}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )?;
        }
        Ok(())
    }
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decode `user.rootlesscontainers` (uid = field 1, gid = field 2, both varints; the proto's
/// NoopID, `u32::MAX`, stands for the unpacking user, i.e. root inside the image).
fn rootless_owner(value: &[u8]) -> (u32, u32) {
    let (mut uid, mut gid, mut i) = (0u32, 0u32, 0usize);
    while i < value.len() {
        let Some(tag) = varint(value, &mut i) else {
            break;
        };
        let Some(v) = varint(value, &mut i) else {
            break;
        };
        match tag {
            0x08 => uid = v as u32,
            0x10 => gid = v as u32,
            _ => {}
        }
    }
    // NoopID (u32::MAX) means "unchanged": the unpacking user, who is root in the image.
    let unmapped = |id: u32| if id == u32::MAX { 0 } else { id };
    (unmapped(uid), unmapped(gid))
}

pub(crate) fn xattrs_of(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names).map_err(io::Error::from)?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name, &mut value).map_err(io::Error::from)?;
        out.insert(name.to_vec(), value[..len].to_vec());
    }
    Ok(out)
}

/// Call `f` with every entry under `root` (not `root` itself) and its `/`-separated path
/// relative to `root`, directories before their children (symlinks are not followed).
pub(crate) fn walk(
    root: &Path,
    mut f: impl FnMut(&Path, Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut stack = vec![(root.to_path_buf(), Vec::<u8>::new())];
    while let Some((dir, rel)) = stack.pop() {
        for child in std::fs::read_dir(&dir)? {
            let child = child?;
            let path = child.path();
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(child.file_name().as_bytes());
            if child.file_type()?.is_dir() {
                stack.push((path.clone(), child_rel.clone()));
            }
            f(&path, child_rel)?;
        }
    }
    Ok(())
}

/// Describe every entry under `root` (not `root` itself), sorted by path.
pub fn describe_tree(root: &Path) -> io::Result<Vec<OracleEntry>> {
    let mut out = Vec::new();
    walk(root, |path, child_rel| {
        let md = std::fs::symlink_metadata(path)?;
        let ft = md.file_type();
        let mut xattrs = xattrs_of(path)?;
        let (uid, gid) = match xattrs.remove(&b"user.rootlesscontainers"[..]) {
            Some(v) => rootless_owner(&v),
            None => (0, 0),
        };
        let (kind, size, sha256, link_target) = if ft.is_dir() {
            (Kind::Dir, 0, None, None)
        } else if ft.is_symlink() {
            let t = std::fs::read_link(path)?.as_os_str().as_bytes().to_vec();
            (Kind::Symlink, 0, None, Some(t))
        } else if ft.is_fifo() {
            (Kind::Fifo, 0, None, None)
        } else if ft.is_char_device() || ft.is_block_device() {
            (Kind::File, 0, Some(sha256_hex(b"")), None)
        } else {
            let bytes = std::fs::read(path)?;
            (Kind::File, md.len(), Some(sha256_hex(&bytes)), None)
        };
        out.push(OracleEntry {
            path: child_rel,
            kind,
            perm: md.mode() & 0o7777,
            uid,
            gid,
            size,
            sha256,
            link_target,
            xattrs,
        });
        Ok(())
    })?;
    out.sort();
    Ok(out)
}

/// `umoci unpack --rootless --image <layout>:<tag>` into a temporary bundle, described.
pub fn umoci_unpack(layout: &Path, tag: &str) -> io::Result<Vec<OracleEntry>> {
    let bundle = tempfile::tempdir()?;
    let target = bundle.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--rootless")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&target)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "umoci unpack failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    describe_tree(&target.join("rootfs"))
}

/// Lines that differ between two sorted descriptions, as a readable report (empty = equal).
pub fn diff(ours: &[OracleEntry], oracle: &[OracleEntry]) -> Vec<String> {
    let a: BTreeMap<&[u8], &OracleEntry> = ours.iter().map(|e| (e.path.as_slice(), e)).collect();
    let b: BTreeMap<&[u8], &OracleEntry> = oracle.iter().map(|e| (e.path.as_slice(), e)).collect();
    let mut out = Vec::new();
    for (p, e) in &a {
        match b.get(p) {
            None => out.push(format!("only ours:  {e}")),
            Some(o) if o != e => out.push(format!("ours:       {e}\numoci:      {o}")),
            _ => {}
        }
    }
    for (p, o) in &b {
        if !a.contains_key(p) {
            out.push(format!("only umoci: {o}"));
        }
    }
    out
}
