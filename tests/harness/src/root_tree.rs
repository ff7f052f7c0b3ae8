//! A root filesystem as root sees it, one canonical line per entry: what the EROFS tests
//! compare between a kernel mount of our images and `umoci unpack` run as root (not
//! rootless, so owners, device nodes and their numbers are real).
//!
//! A line is `PATH TYPE PERM UID:GID DETAIL t=SEC.NSEC [NAME=VALUE]...`, where `TYPE` is one
//! of `d f l c b p s`, `DETAIL` is `size=N sha256=<16 hex>` for files, `-> TARGET` for
//! symlinks, `MAJOR,MINOR` for devices and `-` otherwise; xattrs are sorted by name, with
//! overlayfs' own (`trusted.overlay.*`) left out as an overlay mount hides them. Symlinks'
//! own times are not compared (umoci does not set them on every filesystem).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use crate::oracle::sha256_hex;

fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names).map_err(io::Error::from)?;
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name, &mut value).map_err(io::Error::from)?;
        out.push((name.to_vec(), value[..len].to_vec()));
    }
    out.sort();
    Ok(out)
}

/// Bytes as a listing line writes them: printable ASCII as is, anything else as `\xNN`.
pub fn escape(raw: &[u8]) -> String {
    raw.iter()
        .map(|&b| {
            if b.is_ascii_graphic() && b != b'\\' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// One entry's line.
fn line(path: &Path, rel: &[u8]) -> io::Result<String> {
    let md = std::fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let (kind, detail) = if ft.is_dir() {
        ("d", "-".to_owned())
    } else if ft.is_symlink() {
        let t = std::fs::read_link(path)?;
        ("l", format!("-> {}", escape(t.as_os_str().as_bytes())))
    } else if ft.is_char_device() || ft.is_block_device() {
        let dev = md.rdev();
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        let kind = if ft.is_char_device() { "c" } else { "b" };
        (kind, format!("{major},{minor}"))
    } else if ft.is_fifo() {
        ("p", "-".to_owned())
    } else if ft.is_socket() {
        ("s", "-".to_owned())
    } else {
        let bytes = std::fs::read(path)?;
        (
            "f",
            format!("size={} sha256={}", bytes.len(), &sha256_hex(&bytes)[..16]),
        )
    };
    let mut s = format!(
        "{} {kind} {:04o} {}:{} {detail}",
        escape(rel),
        md.mode() & 0o7777,
        md.uid(),
        md.gid()
    );
    if !ft.is_symlink() {
        s += &format!(" t={}.{:09}", md.mtime(), md.mtime_nsec());
    }
    for (name, value) in xattrs(path)? {
        s += &format!(" {}={}", escape(&name), escape(&value));
    }
    Ok(s)
}

/// Every entry under `root` (not `root` itself), sorted by path.
pub fn describe(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
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
            out.push((child_rel.clone(), line(&path, &child_rel)?));
        }
    }
    out.sort();
    Ok(out.into_iter().map(|(_, l)| l).collect())
}

/// `umoci unpack --image <layout>:<tag>` as root into `bundle` (which must not exist); the
/// root filesystem is `bundle/rootfs`.
pub fn umoci_unpack_as_root(layout: &Path, tag: &str, bundle: &Path) -> io::Result<()> {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "umoci unpack failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Lines only in one of two sorted descriptions (empty when equal), as a readable report.
pub fn diff(ours: &[String], theirs: &[String]) -> Vec<String> {
    let a: std::collections::BTreeSet<&String> = ours.iter().collect();
    let b: std::collections::BTreeSet<&String> = theirs.iter().collect();
    let mut out: Vec<String> = a.difference(&b).map(|l| format!("ours:   {l}")).collect();
    out.extend(b.difference(&a).map(|l| format!("theirs: {l}")));
    out.sort_by(|x, y| x[8..].cmp(&y[8..]));
    out
}
