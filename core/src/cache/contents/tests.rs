use std::collections::HashMap;

use super::*;

fn sample() -> HashMap<u64, [u8; DIGEST]> {
    HashMap::from([(42, [1; DIGEST]), (7, [2; DIGEST]), (1 << 40, [3; DIGEST])])
}

#[test]
fn round_trip_sorts_by_inode() {
    let back = decode(&encode(&sample())).expect("decodes");
    assert_eq!(back.keys().copied().collect::<Vec<_>>(), [7, 42, 1 << 40]);
    assert_eq!(back[&42], [1; DIGEST]);
    assert!(decode(&encode(&HashMap::new())).expect("empty").is_empty());
}

#[test]
fn every_flipped_byte_and_every_truncation_is_refused() {
    let bytes = encode(&sample());
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

/// A body with a valid trailing digest can still be malformed: unsorted, duplicated, a count
/// that does not match.
#[test]
fn malformed_bodies_with_valid_digests_are_refused() {
    let seal = |mut body: Vec<u8>| {
        let sum = *blake3::hash(&body).as_bytes();
        body.extend_from_slice(&sum);
        body
    };
    let good = encode(&HashMap::from([(1, [0; DIGEST]), (2, [0; DIGEST])]));
    let body = good[..good.len() - DIGEST].to_vec();
    let first = 16;
    let second = first + RECORD;
    let mut unsorted = body.clone();
    unsorted[first] = 3;
    assert!(decode(&seal(unsorted)).is_err());
    let mut dup = body.clone();
    dup[second] = 1;
    assert!(decode(&seal(dup)).is_err());
    let mut count = body.clone();
    count[8] = 3;
    assert!(decode(&seal(count)).is_err());
    let mut trailing = body;
    trailing.push(0);
    assert!(decode(&seal(trailing)).is_err());
}

#[test]
fn digest_file_reads_all() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("big");
    let data: Vec<u8> = (0..700_000u32).map(|i| i as u8).collect();
    std::fs::write(&p, &data).expect("write");
    let got = digest_file(std::fs::File::open(&p).expect("open")).expect("digest");
    assert_eq!(got, *blake3::hash(&data).as_bytes());
}
