//! Images written from hand-built trees, checked by erofs-utils' `fsck.erofs` and, as root,
//! by the kernel: every entry read back through a loop mount.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::index::EntryMeta;

/// One entry of a test tree.
pub(super) struct E {
    pub(super) path: &'static str,
    pub(super) meta: EntryMeta,
    pub(super) content: Vec<u8>,
}

pub(super) fn dir(path: &'static str, perm: u32) -> E {
    E {
        path,
        meta: EntryMeta {
            mode: 0o040000 | perm,
            mtime_sec: 1_600_000_000,
            ..Default::default()
        },
        content: Vec::new(),
    }
}

pub(super) fn file(path: &'static str, inode: u64, content: Vec<u8>) -> E {
    E {
        path,
        meta: EntryMeta {
            mode: 0o100644,
            size: content.len() as u64,
            inode,
            uid: 1000,
            gid: 1000,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 123_456_789,
            ..Default::default()
        },
        content,
    }
}

pub(super) fn with(mut e: E, f: impl FnOnce(&mut EntryMeta)) -> E {
    f(&mut e.meta);
    e
}

/// Pseudo-random bytes (xorshift), so block-sized runs differ.
pub(super) fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Write the image of `entries` (in order, as a tar would list them) to `out`.
pub(super) fn write_image(
    entries: &[E],
    out: &Path,
    options: ErofsOptions,
) -> Result<ImageSummary, ErofsError> {
    let mut b = IndexBuilder::new();
    let mut w = LayerImageWriter::create(out, options)?;
    let mut written: std::collections::HashMap<u64, &[u8]> = std::collections::HashMap::new();
    for e in entries {
        let regular = e.meta.mode & 0o170000 == 0o100000 && !e.path.contains(".wh.");
        // A second name of a file is a tar link entry: no data of its own.
        if let (true, Some(target)) = (regular, written.get(&e.meta.inode)) {
            b.add_hardlink(e.path.as_bytes(), target).unwrap();
            continue;
        }
        if regular {
            written.insert(e.meta.inode, e.path.as_bytes());
            w.begin_file(
                e.content.len() as u64,
                e.meta
                    .xattrs
                    .iter()
                    .map(|(n, v)| (n.as_slice(), v.as_slice())),
            )?;
            for chunk in e.content.chunks(3000) {
                w.write(chunk)?;
            }
            w.end_file(e.meta.inode)?;
        }
        b.add(e.path.as_bytes(), e.meta.clone()).unwrap();
    }
    w.finish(&b)
}

pub(super) fn fsck(image: &Path) -> Option<String> {
    let out = Command::new("fsck.erofs").arg(image).output().ok()?;
    Some(format!(
        "status {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
    .filter(|_| !out.status.success())
}

fn fsck_available() -> bool {
    Command::new("fsck.erofs").arg("-V").output().is_ok()
}

/// A loop mount of an image, unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    fn new(image: &Path, at: &Path) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "erofs", "-o", "loop,ro"])
            .arg(image)
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The image of [`tree`] written with `options` and loop-mounted (root only); unmounted,
/// then removed, on drop.
struct MountedTree {
    mnt: PathBuf,
    _mount: Mounted,
    _dir: tempfile::TempDir,
}

impl MountedTree {
    fn new(options: ErofsOptions) -> MountedTree {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("layer.erofs");
        write_image(&tree(), &img, options).unwrap();
        let mnt = dir.path().join("mnt");
        let Some(mount) = Mounted::new(&img, &mnt) else {
            panic!("cannot loop-mount an EROFS image as root here");
        };
        MountedTree {
            mnt,
            _mount: mount,
            _dir: dir,
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A valid `vfs_cap_data` (revision 2, effective): the kernel refuses to return a malformed one.
pub(super) fn cap_net_bind_service() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    for word in [1u32 << 10, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

pub(super) fn tree() -> Vec<E> {
    let mut many: Vec<E> = Vec::new();
    for i in 0..300 {
        let name: &'static str =
            Box::leak(format!("big/{i:04}-{}", "n".repeat(40)).into_boxed_str());
        many.push(file(name, 10_000 + i, format!("{i}").into_bytes()));
    }
    let mut t = vec![
        dir("", 0o755),
        dir("etc", 0o755),
        file("etc/empty", 1, Vec::new()),
        file("etc/small", 2, b"hello\n".to_vec()),
        file("etc/block", 3, bytes(4096, 3)),
        file("etc/tail", 4, bytes(5000, 4)),
        file("etc/large", 5, bytes(3 * 4096 + 4000, 5)),
        with(file("etc/cap1", 6, b"x".to_vec()), |m| {
            m.xattrs = vec![(b"security.capability".to_vec(), cap_net_bind_service())];
        }),
        with(file("etc/cap2", 7, b"y".to_vec()), |m| {
            m.xattrs = vec![
                (b"security.capability".to_vec(), cap_net_bind_service()),
                (b"user.note".to_vec(), b"kept".to_vec()),
                (b"trusted.overlay.redirect".to_vec(), b"/etc".to_vec()),
            ];
        }),
        with(file("etc/link", 2, b"hello\n".to_vec()), |m| m.size = 6),
        with(file("etc/sym", 0, Vec::new()), |m| {
            m.mode = 0o120777;
            m.link_target = Some(b"small".to_vec());
            m.size = 0;
        }),
        with(file("dev", 20, Vec::new()), |m| m.mode = 0o040755),
        with(file("dev/null", 21, Vec::new()), |m| {
            m.mode = 0o020666;
            m.rdev = crate::stat::encode_dev(1, 3);
        }),
        with(file("dev/fifo", 22, Vec::new()), |m| m.mode = 0o010600),
        with(file("big-uid", 23, b"z".to_vec()), |m| {
            m.uid = 100_000;
            m.gid = 70_000;
        }),
        dir("gone", 0o755),
        file("gone/.wh..wh..opq", 30, Vec::new()),
        file(".wh.removed", 31, Vec::new()),
        dir("big", 0o700),
    ];
    t.extend(many);
    t
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.erofs"), dir.path().join("b.erofs"));
    write_image(&tree(), &a, ErofsOptions::default()).unwrap();
    write_image(&tree(), &b, ErofsOptions::default()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(
        !dir.path().join("a.erofs.tails").exists(),
        "side file removed"
    );
}

#[test]
fn fsck_erofs_accepts_the_image() {
    if !fsck_available() {
        panic!("fsck.erofs (Debian erofs-utils) is required: .ci/setup installs it");
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("layer.erofs");
    let summary = write_image(&tree(), &img, ErofsOptions::default()).unwrap();
    assert_eq!(
        std::fs::metadata(&img).unwrap().len(),
        summary.blocks * 4096
    );
    if let Some(complaint) = fsck(&img) {
        panic!("fsck.erofs: {complaint}");
    }
    // Every file's content is read back by fsck's own reader.
    let out = dir.path().join("out");
    let st = Command::new("fsck.erofs")
        .arg(format!("--extract={}", out.display()))
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for e in tree()
        .iter()
        .filter(|e| e.meta.mode & 0o170000 == 0o100000 && !e.path.contains(".wh."))
    {
        assert_eq!(
            std::fs::read(out.join(e.path)).unwrap(),
            e.content,
            "{}",
            e.path
        );
    }
}

#[test]
fn the_kernel_mounts_the_image_and_reads_back_every_entry() {
    if !is_root() {
        eprintln!("not root: the loop mount is checked where tests run as root (CI)");
        return;
    }
    let mounted = MountedTree::new(ErofsOptions::default());
    let mnt = &mounted.mnt;
    let md = |p: &str| std::fs::symlink_metadata(mnt.join(p)).unwrap();
    for e in tree() {
        if e.path.contains(".wh.") {
            continue;
        }
        let m = md(e.path);
        assert_eq!(m.mode(), e.meta.mode, "{}", e.path);
        if m.is_file() {
            assert_eq!(
                std::fs::read(mnt.join(e.path)).unwrap(),
                e.content,
                "{}",
                e.path
            );
            assert_eq!((m.uid(), m.gid()), (e.meta.uid, e.meta.gid), "{}", e.path);
            assert_eq!(
                (m.mtime(), m.mtime_nsec()),
                (e.meta.mtime_sec, i64::from(e.meta.mtime_nsec))
            );
        }
    }
    assert_eq!(md("etc/link").ino(), md("etc/small").ino(), "hardlink");
    assert_eq!(md("etc/small").nlink(), 2);
    assert_eq!(
        std::fs::read_link(mnt.join("etc/sym")).unwrap(),
        Path::new("small")
    );
    assert!(md("dev/null").file_type().is_char_device());
    assert_eq!(md("dev/null").rdev(), rustix::fs::makedev(1, 3));
    assert!(md("dev/fifo").file_type().is_fifo());
    // The whiteout is a 0/0 character device; the opaque directory carries the marker.
    assert!(md("removed").file_type().is_char_device());
    assert_eq!(md("removed").rdev(), 0);
    let xattr = |p: &str, name: &str| {
        let mut buf = vec![0u8; 256];
        let n = rustix::fs::lgetxattr(mnt.join(p), name, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    };
    assert_eq!(
        xattr("gone", "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr("etc", "trusted.overlay.opaque"), None);
    assert_eq!(
        xattr("etc/cap2", "user.note").as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        xattr("etc/cap1", "security.capability"),
        xattr("etc/cap2", "security.capability")
    );
    assert!(xattr("etc/cap1", "security.capability").is_some());
    assert_eq!(
        xattr("etc/cap2", "trusted.overlay.redirect"),
        None,
        "overlay xattrs of the image dropped"
    );
    assert_eq!(md("big").permissions().mode() & 0o7777, 0o700);
    let listed = std::fs::read_dir(mnt.join("big")).unwrap().count();
    assert_eq!(listed, 300);
}

#[test]
fn user_xattr_opaque_markers_for_rootless_overlays() {
    if !is_root() {
        eprintln!("not root: the loop mount is checked where tests run as root (CI)");
        return;
    }
    let mounted = MountedTree::new(ErofsOptions {
        opaque: OpaqueXattr::User,
        ..Default::default()
    });
    let mnt = &mounted.mnt;
    let mut buf = [0u8; 8];
    let n = rustix::fs::lgetxattr(mnt.join("gone"), "user.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(rustix::fs::lgetxattr(mnt.join("gone"), "trusted.overlay.opaque", &mut buf).is_err());
}

#[test]
fn names_erofs_cannot_hold_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let long: &'static str = Box::leak(format!("d/{}", "x".repeat(256)).into_boxed_str());
    let entries = vec![
        dir("", 0o755),
        dir("d", 0o755),
        file(long, 1, b"x".to_vec()),
    ];
    let err = write_image(&entries, &tmp.path().join("i"), ErofsOptions::default()).unwrap_err();
    assert!(
        matches!(err, ErofsError::NameTooLong { len: 256, .. }),
        "{err}"
    );
}
