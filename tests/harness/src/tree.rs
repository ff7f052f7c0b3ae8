//! Layers made from real host directories (for benchmarks and distro-like fixtures): a
//! deterministic tar of one or more host trees, each placed at a path inside the image,
//! keeping modes, ownership, mtimes, symlinks, hardlinks and device nodes.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A tar of `sources` (host directory, path inside the image), plus whiteouts
/// (`.wh.<name>` files) for each path in `whiteouts`.
pub fn tar_from_trees(sources: &[(PathBuf, String)], whiteouts: &[String]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for (src, dest) in sources {
        let dest = dest.trim_matches('/').to_string();
        add_parents(&mut b, &dest)?;
        walk(&mut b, src, &dest, &mut links)?;
    }
    for w in whiteouts {
        let w = w.trim_matches('/');
        let (dir, name) = w.rsplit_once('/').unwrap_or(("", w));
        let path = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, path, io::empty())?;
    }
    b.into_inner()
}

fn add_parents(b: &mut tar::Builder<Vec<u8>>, dest: &str) -> io::Result<()> {
    let mut prefix = String::new();
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("{prefix}/"), io::empty())?;
    }
    Ok(())
}

fn header_for(md: &fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid().into());
    h.set_gid(md.gid().into());
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(size);
    h
}

fn walk(
    b: &mut tar::Builder<Vec<u8>>,
    src: &Path,
    dest: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let md = fs::symlink_metadata(src)?;
    let ft = md.file_type();
    if ft.is_dir() {
        let mut h = header_for(&md, tar::EntryType::Directory, 0);
        // An empty destination is the image root: `./`, children without a prefix.
        b.append_data(
            &mut h,
            format!("{}/", if dest.is_empty() { "." } else { dest }),
            io::empty(),
        )?;
        let mut children: Vec<_> = fs::read_dir(src)?.collect::<io::Result<_>>()?;
        children.sort_by_key(|e| e.file_name());
        for c in children {
            let name = c.file_name();
            let child_dest = if dest.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{dest}/{}", name.to_string_lossy())
            };
            walk(b, &c.path(), &child_dest, links)?;
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(src)?;
        let mut h = header_for(&md, tar::EntryType::Symlink, 0);
        b.append_link(&mut h, dest, target)?;
    } else if ft.is_file() {
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = links.get(&key) {
                let mut h = header_for(&md, tar::EntryType::Link, 0);
                b.append_link(&mut h, dest, first)?;
                return Ok(());
            }
            links.insert(key, dest.to_string());
        }
        let mut h = header_for(&md, tar::EntryType::Regular, md.len());
        b.append_data(&mut h, dest, fs::File::open(src)?)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        };
        let mut h = header_for(&md, kind, 0);
        let rdev = md.rdev();
        let major = ((rdev >> 8) & 0xfff) as u32 | ((rdev >> 32) & !0xfff) as u32;
        let minor = (rdev & 0xff) as u32 | ((rdev >> 12) & !0xff) as u32;
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
        b.append_data(&mut h, dest, io::empty())?;
    }
    // Sockets are skipped: they cannot be stored in an image.
    Ok(())
}

/// A Debian root filesystem made by `debootstrap --variant=minbase <suite>`, built once per
/// machine under `$MSBIMAGE_DEBOOTSTRAP_DIR` (default `/var/tmp/msbimage-debootstrap`) and
/// reused. Needs root and access to the Debian archive. Returns the rootfs path.
pub fn debootstrap_rootfs(suite: &str) -> io::Result<PathBuf> {
    let base = std::env::var_os("MSBIMAGE_DEBOOTSTRAP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/msbimage-debootstrap"));
    fs::create_dir_all(&base)?;
    let done = base.join(suite);
    if done.join("etc/debian_version").is_file() {
        return Ok(done);
    }
    let lock = fs::File::create(base.join(format!("{suite}.lock")))?;
    lock.lock()?;
    if done.join("etc/debian_version").is_file() {
        return Ok(done);
    }
    let staging = base.join(format!("{suite}.partial"));
    let _ = fs::remove_dir_all(&staging);
    let out = std::process::Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&staging)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "debootstrap failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // Sockets and the like are not part of an image; apt's caches only add bulk.
    let _ = fs::remove_dir_all(staging.join("var/cache/apt/archives"));
    fs::rename(&staging, &done)?;
    Ok(done)
}

/// Three layers of a Debian minbase image, as real tars: everything but `/usr`; `/usr`;
/// then a layer that deletes `/usr/share/doc` and `/etc/motd`, makes `/etc/apt/apt.conf.d`
/// opaque (keeping one new file in it) and adds `/etc/msbimage-release`.
pub fn debian_layers(rootfs: &Path) -> io::Result<[Vec<u8>; 3]> {
    let mut top = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(rootfs)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "usr" {
            top.push((e.path(), name));
        }
    }
    let base = tar_from_trees(&top, &[])?;
    let usr = tar_from_trees(&[(rootfs.join("usr"), "usr".to_string())], &[])?;
    let extra = tempfile::tempdir()?;
    fs::create_dir_all(extra.path().join("etc/apt/apt.conf.d"))?;
    fs::write(extra.path().join("etc/msbimage-release"), "layer 3\n")?;
    fs::write(
        extra.path().join("etc/apt/apt.conf.d/99msbimage"),
        "APT::Install-Recommends \"0\";\n",
    )?;
    let delta = tar_from_trees(
        &[
            (
                extra.path().join("etc/msbimage-release"),
                "etc/msbimage-release".to_string(),
            ),
            (
                extra.path().join("etc/apt/apt.conf.d"),
                "etc/apt/apt.conf.d".to_string(),
            ),
        ],
        &[
            "usr/share/doc".to_string(),
            "etc/motd".to_string(),
            "etc/apt/apt.conf.d/.wh..opq".to_string(),
        ],
    )?;
    Ok([base, usr, delta])
}
