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

use crate::oracle::{sha256_hex, walk, xattrs_of};

/// The xattrs of `path` but overlayfs' own, sorted by name.
fn xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut all = xattrs_of(path)?;
    all.retain(|name, _| !name.starts_with(b"trusted.overlay."));
    Ok(all.into_iter().collect())
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
    walk(root, |path, rel| {
        out.push((line(path, &rel)?, rel));
        Ok(())
    })?;
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out.into_iter().map(|(l, _)| l).collect())
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
