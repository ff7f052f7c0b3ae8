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
