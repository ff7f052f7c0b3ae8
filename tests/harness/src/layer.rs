//! Layer fixtures from real bytes: a declarative [`LayerBuilder`] (in the spirit of
//! containerd's `tartest`) that writes an actual tar archive in memory with the `tar`
//! crate — directories, files with owners and modes, links, devices, FIFOs, whiteouts,
//! PAX xattrs, and raw hostile headers — and [`Layer`], that tar compressed as a blob with
//! its media type, digest and diff ID. Output is deterministic: same input, same digests.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

/// Modification time written into every entry (2023-11-14T22:13:20Z).
pub const FIXTURE_MTIME: u64 = 1_700_000_000;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// How a layer's tar is compressed into its blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip (`…tar+gzip`).
    Gzip,
    /// zstd (`…tar+zstd`).
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Compresses `tar` (gzip default level, zstd level 3).
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(tar).expect("gzip into memory");
                enc.finish().expect("gzip into memory")
            }
            Compression::Zstd => zstd::stream::encode_all(tar, 3).expect("zstd into memory"),
        }
    }
}

/// A layer blob and what describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The uncompressed tar.
    pub tar: Vec<u8>,
    /// The blob as pushed (compressed per `media_type`).
    pub blob: Vec<u8>,
    /// The descriptor media type.
    pub media_type: String,
    /// `sha256:` digest of `blob`.
    pub digest: String,
    /// `sha256:` digest of `tar` (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
}

impl Layer {
    /// A layer from an already-made tar.
    pub fn from_tar(tar: Vec<u8>, c: Compression) -> Layer {
        let blob = c.compress(&tar);
        Layer {
            media_type: c.media_type().to_string(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(&tar),
            tar,
            blob,
        }
    }

    /// Size of the blob in bytes.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }
}

#[derive(Debug, Clone)]
enum Item {
    Dir {
        mode: u32,
    },
    File {
        content: Vec<u8>,
        mode: u32,
        uid: u64,
        gid: u64,
    },
    Symlink {
        target: String,
    },
    Hardlink {
        target: String,
    },
    Device {
        kind: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    },
    Fifo {
        mode: u32,
    },
    Raw {
        header: Box<Header>,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    item: Item,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Declares a layer's entries, in archive order. Paths are relative ("/x" and "./x" are
/// normalised to "x"); parents are not added implicitly.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
}

/// Normalises a path: no leading "/" or "./", no trailing "/".
fn norm(path: &str) -> String {
    let mut p = path.trim_start_matches('/');
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p.trim_end_matches('/').to_string()
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, path: &str, item: Item) -> Self {
        self.entries.push(Entry {
            path: norm(path),
            item,
            xattrs: Vec::new(),
        });
        self
    }

    /// A directory with permission bits `mode` (e.g. `0o755`, `0o1777`), owned 0:0.
    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.push(path, Item::Dir { mode })
    }

    /// A regular file owned 0:0.
    pub fn file(self, path: &str, content: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.file_owned(path, content, mode, 0, 0)
    }

    /// A regular file owned `uid:gid`.
    pub fn file_owned(
        self,
        path: &str,
        content: impl Into<Vec<u8>>,
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        let content = content.into();
        self.push(
            path,
            Item::File {
                content,
                mode,
                uid,
                gid,
            },
        )
    }

    /// A symlink to `target`, written verbatim (relative or absolute).
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.push(
            path,
            Item::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// A hard link to `target` (an earlier entry's path, normalised like any path).
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.push(
            path,
            Item::Hardlink {
                target: norm(target),
            },
        )
    }

    /// A character device `major:minor`.
    pub fn char_device(self, path: &str, major: u32, minor: u32, mode: u32) -> Self {
        self.push(
            path,
            Item::Device {
                kind: EntryType::Char,
                major,
                minor,
                mode,
            },
        )
    }

    /// A block device `major:minor`.
    pub fn block_device(self, path: &str, major: u32, minor: u32, mode: u32) -> Self {
        self.push(
            path,
            Item::Device {
                kind: EntryType::Block,
                major,
                minor,
                mode,
            },
        )
    }

    /// A FIFO.
    pub fn fifo(self, path: &str, mode: u32) -> Self {
        self.push(path, Item::Fifo { mode })
    }

    /// A whiteout deleting `path` from lower layers: an empty file `<dir>/.wh.<name>`.
    pub fn whiteout(self, path: &str) -> Self {
        let p = norm(path);
        let wh = match p.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{p}"),
        };
        self.file(&wh, Vec::new(), 0o644)
    }

    /// An opaque-directory marker: an empty file `<dir>/.wh..wh..opq`.
    pub fn opaque(self, dir: &str) -> Self {
        let d = norm(dir);
        self.file(&format!("{d}/.wh..wh..opq"), Vec::new(), 0o644)
    }

    /// Adds PAX record `SCHILY.xattr.<key>` = `value` to the latest entry at `path`.
    ///
    /// # Panics
    /// If no entry at `path` was added before.
    pub fn xattr(mut self, path: &str, key: &str, value: &[u8]) -> Self {
        let p = norm(path);
        let entry = self
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("xattr: no entry at {path:?} yet"));
        entry.xattrs.push((key.to_string(), value.to_vec()));
        self
    }

    /// Appends `header` exactly as given (no path checks, no checksum fix-up) followed by
    /// `data` padded to 512 bytes. Build hostile headers with [`raw_header`].
    pub fn raw_entry(mut self, header: Header, data: Vec<u8>) -> Self {
        self.entries.push(Entry {
            path: String::new(),
            item: Item::Raw {
                header: Box::new(header),
                data,
            },
            xattrs: Vec::new(),
        });
        self
    }

    /// The uncompressed tar archive.
    pub fn tar_bytes(&self) -> Vec<u8> {
        let mut ar = tar::Builder::new(Vec::new());
        for e in &self.entries {
            write_entry(&mut ar, e).unwrap_or_else(|err| panic!("tar entry {:?}: {err}", e.path));
        }
        ar.into_inner().expect("tar into memory")
    }

    /// The layer: tar, compressed blob, media type, digest and diff ID.
    pub fn build(&self, c: Compression) -> Layer {
        Layer::from_tar(self.tar_bytes(), c)
    }
}

fn base_header(kind: EntryType, mode: u32, uid: u64, gid: u64, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(size);
    h.set_mtime(FIXTURE_MTIME);
    // Zero-filled octal rather than NULs, as GNU tar writes for non-device entries.
    h.set_device_major(0).expect("GNU header has device fields");
    h.set_device_minor(0).expect("GNU header has device fields");
    h
}

fn write_entry(ar: &mut tar::Builder<Vec<u8>>, e: &Entry) -> std::io::Result<()> {
    if !e.xattrs.is_empty() {
        let keys: Vec<String> = e
            .xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{k}"))
            .collect();
        let records = keys
            .iter()
            .zip(&e.xattrs)
            .map(|(k, (_, v))| (k.as_str(), v.as_slice()));
        ar.append_pax_extensions(records)?;
    }
    let empty: &[u8] = &[];
    match &e.item {
        Item::Dir { mode } => {
            let mut h = base_header(EntryType::Directory, *mode, 0, 0, 0);
            ar.append_data(&mut h, format!("{}/", e.path), empty)
        }
        Item::File {
            content,
            mode,
            uid,
            gid,
        } => {
            let mut h = base_header(EntryType::Regular, *mode, *uid, *gid, content.len() as u64);
            ar.append_data(&mut h, &e.path, content.as_slice())
        }
        Item::Symlink { target } => {
            let mut h = base_header(EntryType::Symlink, 0o777, 0, 0, 0);
            ar.append_link(&mut h, &e.path, target)
        }
        Item::Hardlink { target } => {
            let mut h = base_header(EntryType::Link, 0o644, 0, 0, 0);
            ar.append_link(&mut h, &e.path, target)
        }
        Item::Device {
            kind,
            major,
            minor,
            mode,
        } => {
            let mut h = base_header(*kind, *mode, 0, 0, 0);
            h.set_device_major(*major)?;
            h.set_device_minor(*minor)?;
            ar.append_data(&mut h, &e.path, empty)
        }
        Item::Fifo { mode } => {
            let mut h = base_header(EntryType::Fifo, *mode, 0, 0, 0);
            ar.append_data(&mut h, &e.path, empty)
        }
        Item::Raw { header, data } => ar.append(header, data.as_slice()),
    }
}

/// A GNU header whose name (and optional link name) bytes are copied in verbatim —
/// "../x", "/etc/passwd", embedded NULs, anything up to 100 bytes — with the checksum
/// computed, for hostile-archive tests via [`LayerBuilder::raw_entry`].
///
/// # Panics
/// If `name` or `link_name` is longer than 100 bytes.
pub fn raw_header(
    name: &[u8],
    link_name: Option<&[u8]>,
    entry_type: EntryType,
    size: u64,
    mode: u32,
) -> Header {
    assert!(name.len() <= 100, "raw_header: name longer than 100 bytes");
    let mut h = base_header(entry_type, mode, 0, 0, size);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
    if let Some(link) = link_name {
        assert!(
            link.len() <= 100,
            "raw_header: link name longer than 100 bytes"
        );
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_cksum();
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_and_opaque_names() {
        let tar = LayerBuilder::new()
            .whiteout("/etc/gone")
            .whiteout("top")
            .opaque("var/lib/")
            .tar_bytes();
        let mut ar = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["etc/.wh.gone", ".wh.top", "var/lib/.wh..wh..opq"]);
    }

    #[test]
    fn raw_header_keeps_hostile_names() {
        let tar = LayerBuilder::new()
            .raw_entry(
                raw_header(b"../../evil", None, EntryType::Regular, 3, 0o644),
                b"bad".to_vec(),
            )
            .tar_bytes();
        let mut ar = tar::Archive::new(tar.as_slice());
        let mut entries = ar.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), b"../../evil");
    }

    #[test]
    fn build_is_deterministic() {
        let b = LayerBuilder::new().dir("a", 0o755).file("a/b", "x", 0o644);
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(b.build(c), b.build(c));
        }
        let l = b.build(Compression::None);
        assert_eq!(l.digest, l.diff_id);
    }
}
