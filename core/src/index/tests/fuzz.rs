//! Deterministic mutation fuzzing of `LayerIndex::from_bytes` and every lookup, runnable as a
//! plain unit test (the coverage-guided target is `core/fuzz/fuzz_targets/index_open.rs`).
//! Valid indexes are mutated (bit flips, interesting integers at field offsets, splices,
//! truncation, extension), usually resealed with a correct checksum so the structural checks
//! are what is exercised. Whatever opens must then answer every query without panicking (the
//! queries are `index::fuzzing::exercise`, shared with the coverage-guided target).
//! `MSB_INDEX_FUZZ_ITERS` raises the iteration count (default 20 000).

use super::corrupt::reseal;
use super::*;
use crate::index::fuzzing::exercise;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = IndexBuilder::new();
    b.add(b"", dir()).unwrap();
    for d in ["etc", "usr", "usr/lib", "usr/lib/x", "var"] {
        b.add(d.as_bytes(), dir()).unwrap();
    }
    for (i, f) in [
        "etc/a",
        "etc/b",
        "usr/lib/x/so.1",
        "usr/lib/x/so.2",
        "var/log",
    ]
    .iter()
    .enumerate()
    {
        let x = vec![
            (b"user.k".to_vec(), vec![i as u8]),
            (b"user.l".to_vec(), Vec::new()),
        ];
        b.add(
            f.as_bytes(),
            EntryMeta {
                inode: i as u64 + 1,
                xattrs: x,
                ..file(i as u64)
            },
        )
        .unwrap();
    }
    b.add_hardlink(b"etc/c", b"etc/a").unwrap();
    b.add_hardlink(b"var/d", b"etc/a").unwrap();
    b.add(
        b"usr/sh",
        EntryMeta {
            mode: 0o120777,
            link_target: Some(b"lib/x".to_vec()),
            ..EntryMeta::default()
        },
    )
    .unwrap();
    b.add(b"usr/.wh.gone", file(0)).unwrap();
    b.add(b"var/.wh..wh..opq", file(0)).unwrap();
    b.add(b"tmp", implicit()).unwrap();
    out.push(b.finish().unwrap());
    out.push(IndexBuilder::new().finish().unwrap());
    let mut b = IndexBuilder::new();
    b.add(b"a", dir()).unwrap();
    b.add(b"a/.wh.b", file(0)).unwrap();
    out.push(b.finish().unwrap());
    out
}

const INTERESTING: [u32; 10] = [0, 1, 2, 7, 8, 24, 96, 0x7fff_ffff, 0xffff_fffe, u32::MAX];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = b.len().max(1);
        match rng.below(7) {
            0 => {
                let i = rng.below(len);
                if let Some(c) = b.get_mut(i) {
                    *c ^= 1 << rng.below(8);
                }
            }
            1 | 2 => {
                let i = rng.below(len / 2) * 2;
                let v = if rng.below(2) == 0 {
                    INTERESTING[rng.below(INTERESTING.len())]
                } else {
                    rng.below(len) as u32
                };
                let n = [2, 4, 8][rng.below(3)].min(b.len().saturating_sub(i));
                let bytes = u64::from(v).to_le_bytes();
                if let Some(dst) = b.get_mut(i..i + n) {
                    dst.copy_from_slice(&bytes[..n]);
                }
            }
            3 => {
                // Copy one 8-byte chunk over another (swaps fields and records around).
                let (i, j) = (rng.below(len / 8) * 8, rng.below(len / 8) * 8);
                if i + 8 <= b.len() && j + 8 <= b.len() {
                    let chunk: Vec<u8> = b[i..i + 8].to_vec();
                    b[j..j + 8].copy_from_slice(&chunk);
                }
            }
            4 => b.truncate(rng.below(len)),
            5 => b.extend(std::iter::repeat_n(0, 8 * (1 + rng.below(4)))),
            _ => {
                let i = rng.below(len);
                if let Some(c) = b.get_mut(i) {
                    *c = rng.below(256) as u8;
                }
            }
        }
    }
    if rng.below(8) != 0 && b.len() >= 16 {
        reseal(&mut b);
    }
    b
}

#[test]
fn mutated_indexes_never_panic() {
    let iters: usize = std::env::var("MSB_INDEX_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seeds = seeds();
    for s in &seeds {
        exercise(&LayerIndex::from_bytes(s.clone()).unwrap());
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut opened = 0usize;
    for _ in 0..iters {
        let bytes = mutate(&mut rng, &seeds);
        if let Ok(index) = LayerIndex::from_bytes(bytes) {
            opened += 1;
            exercise(&index);
        }
    }
    // Some mutations are harmless (a byte of a name, an mtime): make sure the loop reaches
    // the lookups at all.
    assert!(
        opened > iters / 100,
        "only {opened} of {iters} mutants opened"
    );
}

#[test]
fn random_bytes_after_a_valid_header_never_panic() {
    let mut rng = Rng(7);
    let seed = &seeds()[0];
    for _ in 0..2_000 {
        let mut b = seed.clone();
        for c in b.iter_mut().skip(96) {
            *c = rng.below(256) as u8;
        }
        reseal(&mut b);
        if let Ok(index) = LayerIndex::from_bytes(b) {
            exercise(&index);
        }
    }
}
