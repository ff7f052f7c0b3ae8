//! Hooks for fuzzing the index reader, shared by the coverage-guided target
//! (`core/fuzz/fuzz_targets/index_open.rs`, a separate crate that sees only the public API)
//! and the deterministic in-tree fuzz test (`index/tests/fuzz.rs`). They live in the library,
//! hidden from the docs, because that is the one place both can reach: the fuzz crate cannot
//! see `cfg(test)` code, and a `cfg(fuzzing)` module would not build under a plain
//! `cargo check` of the fuzz crate. Not part of the API.

use super::{IndexError, LayerIndex, LayerStack, format};

/// Rewrite the checksums of a patched index for the version and offsets its header claims, so
/// that mutations reach the structural checks behind them.
pub fn reseal(bytes: &mut [u8]) {
    format::seal(bytes);
}

/// Ask an index everything: lookups run first (so they meet each directory unchecked); they
/// may fail only on an index that `verify` rejects.
///
/// # Panics
/// When a lookup fails with an error that is not corruption, when a verified index fails a
/// lookup, or when the answers contradict each other (what the fuzzers look for). A panic or
/// an endless loop anywhere inside is a bug of the reader.
pub fn exercise(index: &LayerIndex) {
    let lazy = queries(index);
    if let Err(e) = &lazy {
        assert!(e.is_corrupt(), "{e}");
    }
    if index.verify().is_ok() {
        assert!(lazy.is_ok(), "a verified index failed a lookup: {lazy:?}");
    }
}

/// Paths looked up besides the ones the index lists: names of the fuzzers' seeds, a missing
/// one, and malformed ones.
const PROBES: [&[u8]; 7] = [
    b"etc/a",
    b"usr/lib/x/libz.so.1",
    b"usr/lib/x/so.1",
    b"nope",
    b"a/b",
    b"/",
    b"usr//lib",
];

/// Walk every directory with `read_dir`, look each entry up again by path and read all its
/// fields; then walk a two-layer stack of the index, and look up [`PROBES`].
fn queries(index: &LayerIndex) -> Result<(), IndexError> {
    let mut dirs = vec![Vec::new()];
    let mut seen = 0usize;
    while let Some(d) = dirs.pop() {
        for e in index.read_dir(&d)?.into_iter().flatten() {
            seen += 1;
            assert!(seen <= index.len(), "read_dir revisits entries");
            let path = e.path();
            assert_eq!(index.get(&path)?.map(|x| x.id()), Some(e.id()));
            let _ = (
                e.kind(),
                e.mode(),
                e.size(),
                e.rdev(),
                e.mtime_sec(),
                e.link_target(),
                e.nlink(),
            );
            let _ = e.xattrs().count() + e.xattr(b"user.k").map_or(0, <[u8]>::len);
            let _ = index.hardlinks_of(e.inode())?.count();
            if e.is_dir() {
                dirs.push(path);
            }
        }
    }
    let stack = LayerStack::new(vec![index.clone(), index.clone()]);
    for item in stack.walk() {
        let (p, e) = item?;
        assert_eq!(stack.get(&p)?.map(|x| x.id()), Some(e.id()));
        let _ = stack.read_dir(&p)?.map(|v| v.len());
    }
    for probe in PROBES {
        index.get(probe)?;
        stack.get(probe)?;
        index.lookup(probe, b"a")?;
    }
    Ok(())
}
