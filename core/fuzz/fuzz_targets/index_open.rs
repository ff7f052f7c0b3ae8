//! Fuzz target: `LayerIndex::from_bytes` (the validation `LayerIndex::open` runs after
//! mapping) and every lookup, on arbitrary bytes and on mutated valid indexes.
//!
//! The first input byte picks the mode:
//! * even: the rest of the input is the index file, as is (most inputs then fail the magic,
//!   length or checksum checks; libFuzzer learns the magic from the comparisons);
//! * odd: a valid index built here (one of a few seeds) is patched with the rest of the input,
//!   read as `(offset: u16, value: u8)` triples, optionally truncated, and usually its
//!   checksums (header and blocks in version 2) are recomputed, so the structural checks
//!   behind them get exercised; otherwise the per-block checksums fail on first use.
//!
//! Whatever opens must answer every query without panicking or looping; a query may fail
//! (directories are checked on first use) only if `LayerIndex::verify` rejects the file. The
//! queries are `index::fuzzing::exercise`, shared with the in-tree fuzz test.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use microsandbox_image::index::fuzzing::{exercise, reseal};
use microsandbox_image::index::{EntryMeta, IndexBuilder, LayerIndex};

fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = EntryMeta {
            mode: 0o040755,
            ..EntryMeta::default()
        };
        let file = |size, inode| EntryMeta {
            mode: 0o100644,
            size,
            inode,
            xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
            ..EntryMeta::default()
        };
        let mut out = Vec::new();
        let mut b = IndexBuilder::new();
        let _ = b.add(b"", dir.clone());
        for d in ["etc", "usr", "usr/lib", "usr/lib/x", "var"] {
            let _ = b.add(d.as_bytes(), dir.clone());
        }
        for (i, f) in ["etc/a", "etc/bb", "usr/lib/x/libz.so.1", "var/log"]
            .iter()
            .enumerate()
        {
            let _ = b.add(f.as_bytes(), file(i as u64, i as u64 + 1));
        }
        let _ = b.add_hardlink(b"etc/c", b"etc/a");
        let link = EntryMeta {
            mode: 0o120777,
            link_target: Some(b"lib/x".to_vec()),
            ..EntryMeta::default()
        };
        let _ = b.add(b"usr/sh", link);
        let _ = b.add(b"usr/.wh.gone", file(0, 0));
        let _ = b.add(b"var/.wh..wh..opq", file(0, 0));
        let _ = b.add(b"dev", dir.clone());
        let dev = EntryMeta {
            mode: 0o020666,
            rdev: 0x103,
            ..EntryMeta::default()
        };
        let _ = b.add(b"dev/null", dev);
        out.extend(b.finish());
        out.extend(IndexBuilder::new().finish());
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let seeds = seeds();
        let Some(seed) = seeds.get(usize::from(mode / 2) % seeds.len().max(1)) else {
            return;
        };
        let mut b = seed.clone();
        for patch in rest.chunks_exact(3) {
            let off = usize::from(u16::from_le_bytes([patch[0], patch[1]]));
            if let Some(byte) = b.get_mut(off) {
                *byte = patch[2];
            }
        }
        if mode & 0x40 != 0 {
            let keep = rest.len() * 7 % (b.len() + 1);
            b.truncate(keep);
        }
        if mode & 0x80 == 0 {
            reseal(&mut b);
        }
        b
    };
    if let Ok(index) = LayerIndex::from_bytes(bytes) {
        exercise(&index);
    }
});
