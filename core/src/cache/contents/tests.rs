use std::collections::HashMap;

use super::*;

fn file(size: u64, content: u8) -> Recorded {
    Recorded {
        kind: NodeKind::File,
        size,
        mtime: (1_700_000_000, 5),
        xattrs: [7; DIGEST],
        content: Some([content; DIGEST]),
    }
}

fn dir() -> Recorded {
    Recorded {
        kind: NodeKind::Dir,
        size: 0,
        mtime: (-3, 999_999_999),
        xattrs: [1; DIGEST],
        content: None,
    }
}

#[test]
fn round_trip_sorts() {
    let bytes = encode(vec![
        (b"etc/hosts".to_vec(), file(10, 2)),
        (b"etc".to_vec(), dir()),
        (b"bin".to_vec(), file(0, 3)),
    ]);
    let back = decode(&bytes).expect("decodes");
    let paths: Vec<&[u8]> = back.keys().map(Vec::as_slice).collect();
    assert_eq!(paths, [&b"bin"[..], b"etc", b"etc/hosts"]);
    assert_eq!(back[&b"etc/hosts".to_vec()], file(10, 2));
    assert_eq!(back[&b"etc".to_vec()], dir());
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = encode(vec![(b"a".to_vec(), dir()), (b"a/b".to_vec(), file(4, 9))]);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(decode(&bad).is_err(), "flipping byte {i} went unnoticed");
    }
    for len in 0..bytes.len() {
        assert!(
            decode(&bytes[..len]).is_err(),
            "truncated to {len} accepted"
        );
    }
}

/// A body with a valid trailing digest can still be malformed: unsorted, duplicated, bad
/// kind, trailing bytes, absurd counts.
#[test]
fn malformed_bodies_with_valid_digests_are_refused() {
    let seal = |mut body: Vec<u8>| {
        let sum = *blake3::hash(&body).as_bytes();
        body.extend_from_slice(&sum);
        body
    };
    let good = encode(vec![(b"a".to_vec(), dir()), (b"b".to_vec(), dir())]);
    let body = good[..good.len() - DIGEST].to_vec();
    // Swap the two names: unsorted.
    let mut unsorted = body.clone();
    let a_at = 8 + 8 + 4;
    let rec_len = 4 + 1 + 1 + 8 + 8 + 4 + DIGEST;
    unsorted[a_at] = b'b';
    unsorted[a_at + rec_len] = b'a';
    assert!(decode(&seal(unsorted)).is_err());
    // Duplicate.
    let mut dup = body.clone();
    dup[a_at + rec_len] = b'a';
    assert!(decode(&seal(dup)).is_err());
    // Unknown kind.
    let mut kind = body.clone();
    kind[a_at + 1] = 9;
    assert!(decode(&seal(kind)).is_err());
    // Trailing byte.
    let mut trailing = body.clone();
    trailing.push(0);
    assert!(decode(&seal(trailing)).is_err());
    // A count far beyond the bytes.
    let mut count = body;
    count[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode(&seal(count)).is_err());
}

#[test]
fn record_tree_uses_extraction_digests_and_refuses_unknown_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    std::fs::create_dir(root.join("d")).expect("mkdir");
    std::fs::write(root.join("d/f"), b"hello").expect("write");
    std::fs::hard_link(root.join("d/f"), root.join("link")).expect("link");
    std::fs::write(root.join("empty"), b"").expect("write");
    rustix::fs::setxattr(
        root.join("d/f").as_path(),
        "user.msb.test",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("xattr");
    let ino = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(root.join(p)).expect("stat").ino()
    };
    let hello = *blake3::hash(b"hello").as_bytes();
    let digests = HashMap::from([(ino("d/f"), hello)]);
    let rec = decode(&record_tree(root, &digests).expect("records")).expect("decodes");
    let paths: Vec<&[u8]> = rec.keys().map(Vec::as_slice).collect();
    assert_eq!(paths, [&b"d"[..], b"d/f", b"empty", b"link"]);
    assert_eq!(rec[&b"link".to_vec()].content, Some(hello));
    assert_eq!(rec[&b"d/f".to_vec()].size, 5);
    assert_ne!(rec[&b"d/f".to_vec()].xattrs, rec[&b"empty".to_vec()].xattrs);
    let empty = *blake3::hash(&[]).as_bytes();
    assert_eq!(rec[&b"empty".to_vec()].content, Some(empty));
    // A non-empty file the extraction did not write, and a symlink, are refused.
    let err = record_tree(root, &HashMap::new()).expect_err("d/f unknown");
    assert!(err.0.contains("d/f"), "{err}");
    std::os::unix::fs::symlink("d", root.join("s")).expect("symlink");
    let err = record_tree(root, &digests).expect_err("symlink");
    assert!(err.0.contains("neither"), "{err}");
}

#[test]
fn digest_file_reads_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("big");
    let data: Vec<u8> = (0..700_000u32).map(|i| i as u8).collect();
    std::fs::write(&p, &data).expect("write");
    let got = digest_file(std::fs::File::open(&p).expect("open")).expect("digest");
    let want = *blake3::hash(&data).as_bytes();
    assert_eq!(got, want);
}
