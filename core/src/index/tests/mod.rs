//! Unit tests of the index module: builder → bytes → reader round trips, corrupt-input
//! rejection, overlay rules of the merged view, and a deterministic mutation fuzz loop.

mod builder;
mod corrupt;
mod fuzz;
mod stack;

use super::{EntryMeta, IndexBuilder, LayerIndex};

pub(super) fn dir() -> EntryMeta {
    EntryMeta {
        mode: 0o040755,
        ..EntryMeta::default()
    }
}

pub(super) fn implicit() -> EntryMeta {
    EntryMeta {
        implicit: true,
        ..dir()
    }
}

pub(super) fn file(size: u64) -> EntryMeta {
    EntryMeta {
        mode: 0o100644,
        size,
        ..EntryMeta::default()
    }
}

/// Build an index from `(path, meta)` pairs.
pub(super) fn build(entries: &[(&str, EntryMeta)]) -> LayerIndex {
    let mut b = IndexBuilder::new();
    for (p, m) in entries {
        b.add(p.as_bytes(), m.clone()).expect("add");
    }
    LayerIndex::from_bytes(b.finish().expect("finish")).expect("valid index")
}

/// Names in directory `path` of `index`.
pub(super) fn names(index: &LayerIndex, path: &str) -> Vec<String> {
    index
        .read_dir(path.as_bytes())
        .unwrap()
        .expect("directory")
        .map(|e| String::from_utf8_lossy(e.name()).into_owned())
        .collect()
}
