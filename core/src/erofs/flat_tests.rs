//! Flat images of a two-layer stack built by hand: whiteouts, an opaque directory, a replaced
//! file, a hardlink pair and xattrs, checked by `fsck.erofs` and, as root, read back through
//! a loop mount.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{LayerFiles, write_flat};
use crate::erofs::LayerImageWriter;
use crate::erofs::{ErofsOptions, OpaqueXattr};
use crate::index::{EntryMeta, IndexBuilder, LayerIndex, LayerStack};

fn meta(mode: u32, size: u64, inode: u64) -> EntryMeta {
    EntryMeta {
        mode,
        size,
        inode,
        uid: 1000,
        gid: 100,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 5,
        ..Default::default()
    }
}

/// A layer under construction: its index, its tree of regular files on disk, and those
/// files (metadata, bytes) for its image.
struct Layer {
    index: IndexBuilder,
    tree: PathBuf,
    files: Vec<(EntryMeta, Vec<u8>)>,
}

impl Layer {
    fn new(tree: PathBuf) -> Layer {
        std::fs::create_dir_all(&tree).unwrap();
        Layer {
            index: IndexBuilder::new(),
            tree,
            files: Vec::new(),
        }
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        std::fs::create_dir_all(self.tree.join(path)).unwrap();
        self.index
            .add(path.as_bytes(), meta(0o040755, 0, 0))
            .unwrap();
        self
    }

    fn file(&mut self, path: &str, inode: u64, content: &[u8]) -> &mut Self {
        self.file_with(path, meta(0o100644, content.len() as u64, inode), content)
    }

    fn file_with(&mut self, path: &str, m: EntryMeta, content: &[u8]) -> &mut Self {
        std::fs::write(self.tree.join(path), content).unwrap();
        self.files.push((m.clone(), content.to_vec()));
        self.index.add(path.as_bytes(), m).unwrap();
        self
    }

    /// The layer's index, and its image written to `image`.
    fn finish(self, image: &Path) -> LayerIndex {
        let mut w = LayerImageWriter::create(image, options()).unwrap();
        for (m, content) in &self.files {
            let xattrs = m.xattrs.iter().map(|(n, v)| (n.as_slice(), v.as_slice()));
            w.begin_file(content.len() as u64, xattrs).unwrap();
            w.write(content).unwrap();
            w.end_file(m.inode).unwrap();
        }
        w.finish(&self.index).unwrap();
        LayerIndex::from_bytes(self.index.finish().unwrap()).unwrap()
    }
}

/// Lower: etc/{a, gone, link -> a}, usr/bin/{tool, tool2 (hardlink)}, opt/old.
/// Upper: etc/a replaced (0600, other bytes), etc/gone whited out, opt opaque with opt/new,
/// bin/cap with a capability xattr.
fn stack(dir: &Path) -> (LayerStack, LayerPaths) {
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut lower = Layer::new(dir.join("l0"));
    lower
        .dir("etc")
        .file("etc/a", 1, b"lower a")
        .file("etc/gone", 2, b"gone")
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/tool", 3, &big)
        .dir("opt")
        .file("opt/old", 4, b"old");
    lower
        .index
        .add_hardlink(b"usr/bin/tool2", b"usr/bin/tool")
        .unwrap();
    let mut link = meta(0o120777, 0, 5);
    link.link_target = Some(b"a".to_vec());
    lower.index.add(b"etc/link", link).unwrap();
    let mut upper = Layer::new(dir.join("l1"));
    upper.dir("etc").dir("opt").dir("bin");
    upper
        .file_with("etc/a", meta(0o100600, 7, 1), b"upper a")
        .file("opt/new", 2, b"new");
    upper
        .index
        .add(b"etc/.wh.gone", meta(0o100644, 0, 0))
        .unwrap();
    upper
        .index
        .add(b"opt/.wh..wh..opq", meta(0o100644, 0, 0))
        .unwrap();
    let mut capable = meta(0o100755, 3, 3);
    capable.xattrs = vec![(b"security.capability".to_vec(), cap())];
    upper.file_with("bin/cap", capable, b"cap");
    let trees = vec![lower.tree.clone(), upper.tree.clone()];
    let images = vec![dir.join("l0.erofs"), dir.join("l1.erofs")];
    let stack = LayerStack::new(vec![lower.finish(&images[0]), upper.finish(&images[1])]);
    (stack, LayerPaths { trees, images })
}

/// Each layer's tree and image.
struct LayerPaths {
    trees: Vec<PathBuf>,
    images: Vec<PathBuf>,
}

impl LayerPaths {
    fn files(&self) -> LayerFiles {
        LayerFiles::of(&self.trees, &self.images)
    }
}

/// A valid `vfs_cap_data` (revision 2, effective, `CAP_NET_BIND_SERVICE`): the kernel
/// refuses to return a malformed one.
fn cap() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 10, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

fn options() -> ErofsOptions {
    ErofsOptions {
        opaque: OpaqueXattr::Trusted,
        uuid: [7; 16],
    }
}

#[test]
fn the_same_stack_gives_the_same_bytes_and_fsck_erofs_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, layers) = stack(dir.path());
    let (a, b) = (dir.path().join("a.erofs"), dir.path().join("b.erofs"));
    write_flat(&stack, &mut layers.files(), &a, options()).unwrap();
    write_flat(&stack, &mut layers.files(), &b, options()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // A layer kept only as its image gives the same bytes.
    std::fs::remove_dir_all(&layers.trees[0]).unwrap();
    let c = dir.path().join("c.erofs");
    write_flat(&stack, &mut layers.files(), &c, options()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    if Command::new("fsck.erofs").arg("-V").output().is_err() {
        eprintln!("fsck.erofs not installed: not checked");
        return;
    }
    let out = Command::new("fsck.erofs").arg(&a).output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_kernel_reads_the_merged_tree_with_whiteouts_applied() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the flat image is not mounted");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (stack, layers) = stack(dir.path());
    let image = dir.path().join("flat.erofs");
    write_flat(&stack, &mut layers.files(), &image, options()).unwrap();
    let at = dir.path().join("mnt");
    std::fs::create_dir(&at).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "erofs", "-o", "loop,ro"])
        .arg(&image)
        .arg(&at)
        .status()
        .unwrap();
    if !mounted.success() {
        eprintln!("the kernel cannot mount EROFS here: not checked");
        return;
    }
    let xattr = |p: &str, name: &str| {
        let mut buf = vec![0u8; 256];
        let n = rustix::fs::lgetxattr(at.join(p), name, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    };
    let check = || {
        let read = |p: &str| std::fs::read(at.join(p)).unwrap();
        assert_eq!(read("etc/a"), b"upper a");
        let a = std::fs::metadata(at.join("etc/a")).unwrap();
        assert_eq!(a.permissions().mode() & 0o7777, 0o600);
        assert_eq!(
            (a.uid(), a.gid(), a.mtime(), a.mtime_nsec()),
            (1000, 100, 1_700_000_000, 5)
        );
        assert!(!at.join("etc/gone").exists(), "the whiteout hides etc/gone");
        assert!(!at.join("etc/.wh.gone").exists(), "no marker is left");
        assert!(
            !at.join("opt/old").exists(),
            "the opaque directory hides opt/old"
        );
        assert_eq!(read("opt/new"), b"new");
        let opaque = xattr("opt", "trusted.overlay.opaque");
        assert_eq!(opaque, None, "no overlay marker in a flat image");
        assert_eq!(
            std::fs::read_link(at.join("etc/link")).unwrap(),
            Path::new("a")
        );
        let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(read("usr/bin/tool"), big);
        let (t1, t2) = (
            std::fs::metadata(at.join("usr/bin/tool")).unwrap(),
            std::fs::metadata(at.join("usr/bin/tool2")).unwrap(),
        );
        assert_eq!((t1.ino(), t1.nlink()), (t2.ino(), 2));
        assert_eq!(xattr("bin/cap", "security.capability"), Some(cap()));
        assert_eq!(read("bin/cap"), b"cap");
    };
    let result = std::panic::catch_unwind(check);
    let _ = Command::new("umount").arg(&at).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
