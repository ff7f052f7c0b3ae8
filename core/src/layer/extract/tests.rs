//! Unit tests of the extractor: the tar guard is transparent on valid archives and refuses
//! what it cannot buffer, and short bodies are errors.

use super::super::tar_guard::{MAX_PAX_HEADER, MAX_SPARSE_EXT_BLOCKS};
use super::*;

fn limits() -> ExtractLimits {
    ExtractLimits::default()
}

fn gnu(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h
}

/// A GNU sparse entry whose map needs an extension block: 6 chunks of 512 bytes.
fn sparse_with_extension(out: &mut Vec<u8>) {
    let mut h = gnu("sparse", tar::EntryType::GNUSparse, 6 * 512);
    let chunks: Vec<u64> = (0..6).map(|i| i * 4096).collect();
    {
        let g = h.as_gnu_mut().unwrap();
        for (i, off) in chunks.iter().take(4).enumerate() {
            g.sparse[i].set_offset(*off);
            g.sparse[i].set_length(512);
        }
        g.set_is_extended(true);
        g.set_real_size(5 * 4096 + 512);
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    let mut ext = tar::GnuExtSparseHeader::new();
    for (i, off) in chunks.iter().skip(4).enumerate() {
        ext.sparse[i].set_offset(*off);
        ext.sparse[i].set_length(512);
    }
    out.extend_from_slice(ext.as_bytes());
    out.extend((0..6 * 512).map(|i| (i % 7) as u8));
}

#[test]
fn the_guard_is_invisible_on_valid_archives() {
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(150));
    let mut h = gnu("x", tar::EntryType::Regular, 3);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let mut h = gnu("x", tar::EntryType::Symlink, 0);
    b.append_link(&mut h, "l", "t".repeat(300)).unwrap();
    b.append_pax_extensions([("path", &b"pax/path"[..]), ("SCHILY.xattr.user.a", b"v")])
        .unwrap();
    b.append(&gnu("ignored", tar::EntryType::Regular, 5), &b"hello"[..])
        .unwrap();
    // A PAX size that overrides a wrong header size.
    b.append_pax_extensions([("size", &b"700"[..])]).unwrap();
    let mut body = vec![9u8; 700];
    body.resize(1024, 0);
    let h = gnu("pax-sized", tar::EntryType::Regular, 3);
    let mut raw = b.into_inner().unwrap();
    raw.truncate(raw.len() - 1024); // drop the end blocks to go on by hand
    raw.extend_from_slice(h.as_bytes());
    raw.extend_from_slice(&body);
    sparse_with_extension(&mut raw);
    raw.extend_from_slice(gnu("empty", tar::EntryType::Regular, 0).as_bytes());
    raw.extend_from_slice(gnu("g", tar::EntryType::XGlobalHeader, 5).as_bytes());
    raw.extend_from_slice(&[b'x'; 512]);
    raw.extend_from_slice(&[0; 1024]);
    raw.extend_from_slice(b"trailing bytes after the archive");
    let mut bare = tar::Archive::new(&raw[..]);
    let kinds: Vec<String> = bare
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!("{}:{}", String::from_utf8_lossy(&e.path_bytes()), e.size())
        })
        .collect();
    assert_eq!(
        kinds[2..],
        [
            "pax/path:5",
            "pax-sized:700",
            "sparse:20992",
            "empty:0",
            "g:5"
        ],
        "{kinds:?}"
    );
    check_guard_transparent(&raw, &limits()).unwrap();
    // And every prefix of it (truncations end both readers the same way).
    for cut in (0..raw.len()).step_by(97) {
        check_guard_transparent(&raw[..cut], &limits())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
    }
}

fn extract(tar: &[u8], limits: ExtractLimits) -> Result<ExtractStats, LayerError> {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = open_archive(tar, &limits);
    Extractor::new(dir.path(), limits, true)?.run(&mut archive, &mut |_, _| {})
}

#[test]
fn the_guard_refuses_extension_headers_too_large_to_buffer() {
    let tight = ExtractLimits {
        max_path_len: 100,
        ..limits()
    };
    let mut tar = gnu("././@LongLink", tar::EntryType::GNULongName, 102)
        .as_bytes()
        .to_vec();
    tar.extend_from_slice(&[b'n'; 512]);
    assert!(matches!(
        extract(&tar, tight),
        Err(LayerError::Limit {
            limit: "max_path_len",
            value: 102,
            path: None,
            ..
        })
    ));
    let mut tar = gnu("PaxHeaders/x", tar::EntryType::XHeader, MAX_PAX_HEADER + 1)
        .as_bytes()
        .to_vec();
    tar.extend_from_slice(&[b'p'; 4096]);
    let err = extract(&tar, limits()).unwrap_err();
    assert!(err.to_string().contains("PAX extended header of"), "{err}");
    // A sparse map that never ends.
    let mut h = gnu("s", tar::EntryType::GNUSparse, 0);
    h.as_gnu_mut().unwrap().set_is_extended(true);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    let mut ext = tar::GnuExtSparseHeader::new();
    ext.set_is_extended(true);
    for _ in 0..=MAX_SPARSE_EXT_BLOCKS {
        tar.extend_from_slice(ext.as_bytes());
    }
    let err = extract(&tar, limits()).unwrap_err();
    assert!(err.to_string().contains("GNU sparse map longer"), "{err}");
}

#[test]
fn a_body_shorter_than_its_size_is_an_error() {
    let mut tar = gnu("f", tar::EntryType::Regular, 5000).as_bytes().to_vec();
    tar.extend_from_slice(&[1; 100]);
    let err = extract(&tar, limits()).unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected end of archive in \"f\": 100 of 5000"),
        "{err}"
    );
}

/// Every entry of an index, whiteouts included, sorted: path, mode, owner, size, flags,
/// symlink target.
fn describe(index: &crate::index::LayerIndex) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![Vec::new()];
    while let Some(dir) = dirs.pop() {
        for e in index.read_dir(&dir).unwrap().expect("a directory") {
            let path = match dir.is_empty() {
                true => e.name().to_vec(),
                false => [&dir[..], b"/", e.name()].concat(),
            };
            out.push(format!(
                "{} {:o} {}:{} {} wh={} opq={} imp={} {:?}",
                String::from_utf8_lossy(&path),
                e.mode(),
                e.uid(),
                e.gid(),
                e.size(),
                e.is_whiteout(),
                e.is_opaque(),
                e.is_implicit(),
                e.link_target().map(String::from_utf8_lossy)
            ));
            if e.is_dir() {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, body: &[u8]) {
    let mut h = gnu("x", kind, body.len() as u64);
    b.append_data(&mut h, path, body).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, target: &str) {
    let mut h = gnu("x", kind, 0);
    b.append_link(&mut h, path, target).unwrap();
}

/// Whiteouts of a lower name and of the layer's own entries (before and after), an opaque
/// directory, a `.wh.` directory, writes and a hardlink through a symlink.
fn marker_tar() -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "d/", T::Directory, b"");
    entry(&mut b, "d/.wh.gone", T::Regular, b"");
    entry(&mut b, "d/.wh..wh..opq", T::Regular, b"");
    entry(&mut b, ".wh.etc/somefile", T::Regular, b"non-empty");
    entry(&mut b, "d/kept/", T::Directory, b"");
    entry(&mut b, "d/.wh.kept", T::Regular, b"");
    entry(&mut b, ".wh.w", T::Regular, b"");
    entry(&mut b, "w/", T::Directory, b"");
    entry(&mut b, ".wh.v", T::Regular, b"");
    entry(&mut b, "v/inner", T::Regular, b"in");
    link(&mut b, "l", T::Symlink, "/d");
    entry(&mut b, "l/x", T::Regular, b"through");
    link(&mut b, "hard", T::Link, "l/x");
    b.into_inner().unwrap()
}

#[test]
fn whiteouts_are_stored_at_their_names_and_whiteout_prefixed_directories_are_content() {
    let dir = tempfile::tempdir().unwrap();
    let index = crate::layer::extract_layer_tar(&marker_tar(), dir.path(), limits()).unwrap();
    let index = crate::index::LayerIndex::from_bytes(index).unwrap();
    let fs = dir.path();
    assert_eq!(
        std::fs::read(fs.join(".wh.etc/somefile")).unwrap(),
        b"non-empty"
    );
    assert_eq!(std::fs::read(fs.join("d/x")).unwrap(), b"through");
    let xattr = |p: &str, name: &str| {
        let mut buf = [0u8; 8];
        rustix::fs::getxattr(fs.join(p), name, &mut buf)
            .ok()
            .map(|n| buf[..n].to_vec())
    };
    assert_eq!(xattr("d/gone", WHITEOUT_XATTR), Some(b"1".to_vec()));
    assert_eq!(xattr("d", OPAQUE_XATTR), Some(b"y".to_vec()));
    assert_eq!(
        xattr("d/kept", OPAQUE_XATTR),
        Some(b"y".to_vec()),
        "own entry whited out"
    );
    assert_eq!(
        xattr("w", OPAQUE_XATTR),
        Some(b"y".to_vec()),
        "marker then directory"
    );
    assert_eq!(
        xattr("v", OPAQUE_XATTR),
        Some(b"y".to_vec()),
        "marker then a file under it"
    );
    assert!(!fs.join(".wh.gone").exists() && !fs.join("d/.wh..wh..opq").exists());
    let wh = index.get(b".wh.etc").unwrap().unwrap();
    assert!(wh.is_dir() && !wh.is_whiteout());
    assert!(index.get(b"d/gone").unwrap().unwrap().is_whiteout());
    assert!(
        index.get(b"etc").unwrap().is_none(),
        ".wh.etc/… deletes nothing"
    );
    assert_eq!(
        index.get(b"hard").unwrap().unwrap().inode(),
        index.get(b"d/x").unwrap().unwrap().inode()
    );
}

#[test]
fn a_tree_rebuilds_the_index_it_was_extracted_with() {
    let dir = tempfile::tempdir().unwrap();
    let extracted = crate::layer::extract_layer_tar(&marker_tar(), dir.path(), limits()).unwrap();
    let (rebuilt, _) = crate::layer::reindex::index_from_tree(dir.path(), false).unwrap();
    let a = crate::index::LayerIndex::from_bytes(extracted).unwrap();
    let b = crate::index::LayerIndex::from_bytes(rebuilt).unwrap();
    assert_eq!(describe(&a), describe(&b));
}

/// A directory replaced by a file takes with it the times and implicit marks of everything
/// below it (found by range: a tar replacing many directories costs what it removes), and
/// nothing of a sibling whose name extends it.
#[test]
fn a_replaced_directory_takes_its_times_and_implicit_marks_along() {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mtime: u64| {
        let mut h = gnu("x", T::Directory, 0);
        h.set_mode(0o755);
        h.set_mtime(mtime);
        b.append_data(&mut h, path, &b""[..]).unwrap();
    };
    dir(&mut b, "a/", 100);
    entry(&mut b, "a/b/c", T::Regular, b"1"); // a/b implicit
    entry(&mut b, "a/b", T::Regular, b"2"); // and replaced
    dir(&mut b, "p/", 200);
    dir(&mut b, "p/q/", 300);
    dir(&mut b, "p-r/", 400);
    entry(&mut b, "p/q/i/f", T::Regular, b"3"); // p/q/i implicit
    entry(&mut b, "p", T::Regular, b"4"); // p, p/q, p/q/i gone
    entry(&mut b, "s/t/u", T::Regular, b"5"); // s, s/t implicit
    let tar = b.into_inner().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut archive = open_archive(&tar[..], &limits());
    let stats = Extractor::new(root.path(), limits(), true)
        .unwrap()
        .run(&mut archive, &mut |_, _| {})
        .unwrap();
    assert_eq!(stats.implicit_dirs, 2, "s and s/t");
    let mtime = |p: &str| {
        let m = std::fs::symlink_metadata(root.path().join(p)).unwrap();
        std::os::unix::fs::MetadataExt::mtime(&m)
    };
    assert_eq!((mtime("a"), mtime("p-r")), (100, 400));
    assert!(
        std::fs::symlink_metadata(root.path().join("p"))
            .unwrap()
            .is_file()
    );
}
