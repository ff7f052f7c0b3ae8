//! The reader on images the writer made from the writer tests' trees (every entry read back
//! and compared with what was written), and on damaged copies of them.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{ErofsImage, ImageEntry, ReadError};
use crate::erofs::tests::{E, tree, write_image};
use crate::erofs::{ErofsOptions, OpaqueXattr};
use crate::stat::mode;

/// What the image should say of each path of `entries` (as the writer maps them: whiteouts
/// as 0/0 devices under the deleted name, overlay xattrs dropped, the opaque marker added).
fn expected(entries: &[E], opaque: OpaqueXattr) -> BTreeMap<Vec<u8>, (ImageEntry, Vec<u8>)> {
    let mut out: BTreeMap<Vec<u8>, (ImageEntry, Vec<u8>)> = BTreeMap::new();
    let mut by_inode: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut opaque_dirs = Vec::new();
    for e in entries {
        let m = &e.meta;
        let (dir, name) = match e.path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), e.path),
        };
        if name == ".wh..wh..opq" {
            opaque_dirs.push(dir.trim_end_matches('/').as_bytes().to_vec());
            continue;
        }
        let mut x = ImageEntry {
            path: e.path.as_bytes().to_vec(),
            nid: 0,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime_sec as u64,
            mtime_nsec: m.mtime_nsec,
            size: m.size,
            nlink: 1,
            rdev: m.rdev,
            link_target: m.link_target.clone(),
            xattrs: m
                .xattrs
                .iter()
                .filter(|(n, _)| !n.starts_with(b"trusted.overlay."))
                .cloned()
                .collect(),
            data: Default::default(),
        };
        if let Some(deleted) = name.strip_prefix(".wh.") {
            x.path = format!("{dir}{deleted}").into_bytes();
            (x.mode, x.size, x.xattrs) = (mode::S_IFCHR, 0, Vec::new());
        } else if m.mode & mode::S_IFMT == mode::S_IFREG {
            if let Some(first) = by_inode.get(&m.inode) {
                // A second name: the first one's inode.
                let (mut link, content) = out[first].clone();
                link.path = x.path.clone();
                out.insert(x.path, (link, content));
                continue;
            }
            by_inode.insert(m.inode, x.path.clone());
        }
        if let Some(t) = &x.link_target {
            x.size = t.len() as u64;
        }
        x.xattrs.sort();
        out.insert(x.path.clone(), (x, e.content.clone()));
    }
    for d in opaque_dirs {
        if let Some((x, _)) = out.get_mut(&d) {
            let name = match opaque {
                OpaqueXattr::Trusted => b"trusted.overlay.opaque".to_vec(),
                OpaqueXattr::User => b"user.overlay.opaque".to_vec(),
            };
            x.xattrs.push((name, b"y".to_vec()));
            x.xattrs.sort();
        }
    }
    out
}

fn written(dir: &Path, entries: &[E], opaque: OpaqueXattr) -> std::path::PathBuf {
    let img = dir.join("layer.erofs");
    let _ = std::fs::remove_file(&img);
    let options = ErofsOptions {
        opaque,
        ..Default::default()
    };
    write_image(entries, &img, options).unwrap();
    img
}

fn read_all(img: &ErofsImage, e: &ImageEntry) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    img.file_data(e)?
        .read_to_end(&mut out)
        .map_err(|source| ReadError::Io {
            path: String::new(),
            source,
        })?;
    Ok(out)
}

fn round_trip(opaque: OpaqueXattr) {
    let dir = tempfile::tempdir().unwrap();
    let entries = tree();
    let img = ErofsImage::open(&written(dir.path(), &entries, opaque)).unwrap();
    let got = img.entries().unwrap();
    let want = expected(&entries, opaque);
    let paths: Vec<&Vec<u8>> = got.iter().map(|e| &e.path).collect();
    assert_eq!(paths.len(), want.len(), "{paths:?}");
    let mut nids: BTreeMap<u64, &ImageEntry> = BTreeMap::new();
    for e in &got {
        let shown = String::from_utf8_lossy(&e.path);
        let (w, content) = &want[&e.path];
        assert_eq!(e.mode, w.mode, "{shown}");
        assert_eq!((e.uid, e.gid), (w.uid, w.gid), "{shown}");
        assert_eq!((e.mtime, e.mtime_nsec), (w.mtime, w.mtime_nsec), "{shown}");
        assert_eq!(e.rdev, w.rdev, "{shown}");
        assert_eq!(e.link_target, w.link_target, "{shown}");
        assert_eq!(e.xattrs, w.xattrs, "{shown}");
        if e.file_type() != mode::S_IFDIR {
            assert_eq!(e.size, w.size, "{shown}");
        }
        if e.file_type() == mode::S_IFREG {
            assert_eq!(&read_all(&img, e).unwrap(), content, "{shown}");
        }
        // One inode per hardlink group.
        if let Some(first) = nids.insert(e.nid, e) {
            assert_eq!(
                e.file_type(),
                mode::S_IFREG,
                "{shown} shares a directory's nid"
            );
            assert_eq!(first.nlink, 2);
        }
    }
    let at = |p: &str| got.iter().find(|e| e.path == p.as_bytes()).unwrap();
    assert_eq!(at("etc/link").nid, at("etc/small").nid);
    assert_eq!(at("etc/small").nlink, 2);
    assert_eq!(at("").nlink, 2 + 4, "etc, dev, gone and big");
    assert_eq!(at("big").file_type(), mode::S_IFDIR);
    assert!(at("big").size > 4 * 4096, "a directory of several blocks");
    // Walk order: the root first, each directory before its entries.
    assert_eq!(got[0].path, b"");
    for (i, e) in got.iter().enumerate().skip(1) {
        let parent = e.path.rsplitn(2, |&c| c == b'/').nth(1).unwrap_or(b"");
        assert!(got[..i].iter().any(|d| d.path == parent), "{:?}", e.path);
    }
}

#[test]
fn every_entry_the_writer_wrote_reads_back() {
    round_trip(OpaqueXattr::Trusted);
    round_trip(OpaqueXattr::User);
}

#[test]
fn the_writer_tests_images_read_back_with_fsck_agreeing() {
    let dir = tempfile::tempdir().unwrap();
    let img = written(dir.path(), &tree(), OpaqueXattr::Trusted);
    if let Some(complaint) = crate::erofs::tests::fsck(&img) {
        panic!("fsck.erofs: {complaint}");
    }
    let opened = ErofsImage::open(&img).unwrap();
    assert_eq!(
        opened.superblock().blocks * 4096,
        std::fs::metadata(&img).unwrap().len()
    );
    assert_eq!(opened.superblock().inodes, {
        let mut nids: Vec<u64> = opened.entries().unwrap().iter().map(|e| e.nid).collect();
        nids.sort_unstable();
        nids.dedup();
        nids.len() as u64
    });
}

/// The image of `tree()` and the offset of the inode of `path` in it.
fn image_and_inode(dir: &Path, path: &str) -> (std::path::PathBuf, u64) {
    let img = written(dir, &tree(), OpaqueXattr::Trusted);
    let opened = ErofsImage::open(&img).unwrap();
    let nid = opened
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.path == path.as_bytes())
        .unwrap()
        .nid;
    let at = opened.superblock().meta_blkaddr * 4096 + nid * 32;
    (img, at)
}

fn patch(img: &Path, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

fn patch_u32(img: &Path, at: u64, v: u32) {
    patch(img, at, &v.to_le_bytes());
}

fn read_u32(img: &Path, at: u64) -> u32 {
    let f = std::fs::File::open(img).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_le_bytes(b)
}

/// Open, walk and read every file: the first error.
fn read_everything(img: &Path) -> Result<usize, ReadError> {
    let opened = ErofsImage::open(img)?;
    let mut n = 0;
    opened.walk(|e| {
        n += 1;
        if e.file_type() == mode::S_IFREG {
            read_all(&opened, e)?;
        }
        Ok::<(), ReadError>(())
    })?;
    Ok(n)
}

fn assert_corrupt(r: Result<usize, ReadError>, what: &str) {
    match r {
        Err(ReadError::Corrupt { reason, .. }) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected a corrupt image ({what}), got {other:?}"),
    }
}

#[test]
fn a_flipped_superblock_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = written(dir.path(), &tree(), OpaqueXattr::Trusted);
    for at in [1024 + 14, 1024 + 36, 1024 + 40, 1024 + 100, 4095] {
        let mut b = [0u8; 1];
        std::fs::File::open(&img)
            .unwrap()
            .read_exact_at(&mut b, at)
            .unwrap();
        patch(&img, at, &[b[0] ^ 0x10]);
        assert_corrupt(read_everything(&img), "checksum");
        patch(&img, at, &b);
    }
    patch(&img, 1024, &[0]);
    assert_corrupt(read_everything(&img), "magic");
    assert!(read_everything(&std::path::PathBuf::from("/nonexistent")).is_err());
}

#[test]
fn a_truncated_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = written(dir.path(), &tree(), OpaqueXattr::Trusted);
    let len = std::fs::metadata(&img).unwrap().len();
    for cut in [len - 1, len - 4096, 4096, 2000, 0] {
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.set_len(cut).unwrap();
        assert!(
            matches!(read_everything(&img), Err(ReadError::Corrupt { .. })),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_data_block_outside_the_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (img, inode) = image_and_inode(dir.path(), "etc/large");
    assert!(read_everything(&img).is_ok());
    patch_u32(&img, inode + 16, 0x00ff_ff00);
    assert_corrupt(read_everything(&img), "outside the image");
    patch_u32(&img, inode + 16, 0);
    assert_corrupt(read_everything(&img), "outside the image");
}

#[test]
fn a_file_size_near_the_largest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // `big-uid` has an extended inode (its owner does not fit 16 bits): a 64-bit size.
    let (img, inode) = image_and_inode(dir.path(), "big-uid");
    patch(&img, inode + 8, &(u64::MAX - 10).to_le_bytes());
    assert_corrupt(read_everything(&img), "outside the image");
}

#[test]
fn a_dirent_name_offset_beyond_its_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (img, inode) = image_and_inode(dir.path(), "big");
    let first_block = u64::from(read_u32(&img, inode + 16)) * 4096;
    // The first dirent's name offset (which also says how many dirents the block has).
    patch(&img, first_block + 8, &5000u16.to_le_bytes());
    assert_corrupt(read_everything(&img), "name offset");
    patch(&img, first_block + 8, &(12u16 * 90).to_le_bytes());
    assert!(read_everything(&img).is_err());
    // A later dirent's offset past the block.
    let (img, inode) = image_and_inode(dir.path(), "big");
    let first_block = u64::from(read_u32(&img, inode + 16)) * 4096;
    patch(&img, first_block + 12 * 3 + 8, &4097u16.to_le_bytes());
    assert_corrupt(read_everything(&img), "name at");
}

#[test]
fn an_inode_of_unknown_layout_or_a_loop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (img, inode) = image_and_inode(dir.path(), "etc/tail");
    // A compressed layout (3).
    patch(&img, inode, &(1u16 | 3 << 1).to_le_bytes());
    assert!(matches!(
        read_everything(&img),
        Err(ReadError::Unsupported { .. })
    ));
    // A directory entry of `big` naming `big` itself: a loop.
    let (img, inode) = image_and_inode(dir.path(), "big");
    let nid = (inode - ErofsImage::open(&img).unwrap().superblock().meta_blkaddr * 4096) / 32;
    let first_block = u64::from(read_u32(&img, inode + 16)) * 4096;
    patch(&img, first_block + 2 * 12, &nid.to_le_bytes());
    patch(&img, first_block + 2 * 12 + 10, &[2]);
    assert!(matches!(
        read_everything(&img),
        Err(ReadError::Corrupt { .. })
    ));
}

/// Every byte of a small image's metadata flipped in turn: the reader errs or reads, never
/// panics, and never reads past the image.
#[test]
fn flipped_metadata_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let small: Vec<E> = tree().into_iter().take(20).collect();
    let img = written(dir.path(), &small, OpaqueXattr::Trusted);
    let meta = ErofsImage::open(&img).unwrap().superblock().meta_blkaddr * 4096;
    let len = std::fs::metadata(&img).unwrap().len();
    let original = std::fs::read(&img).unwrap();
    let mut refused = 0;
    // Every byte of the first metadata block, then every seventh byte after it.
    let offsets = (meta..meta + 4096).chain((meta + 4096..len).step_by(7));
    for at in offsets {
        for mask in [0x01u8, 0xff] {
            let byte = original[at as usize];
            patch(&img, at, &[byte ^ mask]);
            if read_everything(&img).is_err() {
                refused += 1;
            }
            patch(&img, at, &[byte]);
        }
    }
    assert!(refused > 0);
}
