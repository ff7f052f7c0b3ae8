//! Fuzz target: the layer extractor (`microsandbox_image::layer::fuzz_extract`: tar guard,
//! tar reader, extractor and index builder, with small limits) on hostile tars.
//!
//! Inputs starting with 0xff are used as the tar itself (so libFuzzer's byte mutations reach
//! the header parser); every other input drives the tar-aware generator the differential
//! harness uses too (`tests/harness/src/tar_gen.rs`, included by path), with stream faults
//! on: entries of every type with names built from hostile pieces (`..`, `.`, empty
//! components, absolute paths into the victim directory, whiteout markers, names over 100
//! and 255 bytes, invalid UTF-8, names and link targets reused from earlier entries),
//! written with GNU, ustar or v7 headers, GNU long name/link entries, ustar prefixes or PAX
//! records (including lying `size` records, big ids, sub-second mtimes and xattrs), bodies
//! that match their size or lie about it, then optionally truncated or followed by garbage.
//!
//! Each run extracts into `<run>/layer` next to a sentinel `<run>/victim/keep`, and checks:
//! nothing but `layer` and `victim` exists in `<run>`, the victim is untouched, the extracted
//! tree holds only regular files and directories (no symlink, device or FIFO), and no error
//! is an internal one (a panic or the guard changing what the tar reader sees). Then the same
//! tar is extracted again writing its EROFS image (`fuzz_extract_erofs`): when accepted, the
//! image must read back through our reader (`erofs/read.rs`) equal to the layer's index, its
//! files' data to the digests taken while extracting (`verify`'s image check).

#![no_main]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use microsandbox_image::layer::{fuzz_extract, fuzz_extract_erofs};
use microsandbox_image::{LayerError, OpaqueXattr};

#[path = "../../../tests/harness/src/tar_gen.rs"]
#[allow(dead_code)] // the seeded generator is the differential harness's
mod tar_gen;
use tar_gen::{Entropy, Profile};

const VICTIM_CONTENT: &[u8] = b"original victim content\n";

fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let b = std::env::temp_dir().join(format!("msb-extract-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&b);
        fs::create_dir_all(&b).expect("fuzz base dir");
        b
    })
}

fn run_dir() -> PathBuf {
    base().join("run")
}

fn victim_dir() -> PathBuf {
    run_dir().join("victim")
}

// ---------------------------------------------------------------- generation

/// The fuzzer's input as the generator's source of choices (zeros once it runs out).
struct Input<'a, 'b>(&'a mut Unstructured<'b>);

impl Entropy for Input<'_, '_> {
    fn below(&mut self, n: u64) -> u64 {
        self.0.int_in_range(0..=n.saturating_sub(1)).unwrap_or(0)
    }
}

fn generate(data: &[u8]) -> Vec<u8> {
    let profile = Profile {
        stream_faults: true,
        victim: Some(victim_dir().as_os_str().as_bytes().to_vec()),
        max_entries: 10,
    };
    tar_gen::generate(&mut Input(&mut Unstructured::new(data)), &profile)
}

// ---------------------------------------------------------------- checks

fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let p = e.expect("dir entry").path();
            let content = if p.is_file() {
                fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            (p, content)
        })
        .collect();
    out.sort();
    out
}

fn assert_only_files_and_dirs(dir: &Path) {
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("dir entry").path();
        let ft = fs::symlink_metadata(&p).expect("lstat").file_type();
        if ft.is_dir() {
            assert_only_files_and_dirs(&p);
        } else {
            assert!(
                ft.is_file(),
                "{} is neither file nor directory",
                p.display()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let tar = match data.split_first() {
        Some((0xff, rest)) => rest.to_vec(),
        _ => generate(data),
    };
    let run = run_dir();
    let _ = fs::remove_dir_all(&run);
    let layer = run.join("layer");
    let victim = victim_dir();
    fs::create_dir_all(&layer).expect("layer dir");
    fs::create_dir_all(&victim).expect("victim dir");
    fs::write(victim.join("keep"), VICTIM_CONTENT).expect("victim file");
    let before = listing(&run);

    let result = fuzz_extract(&tar, &layer);
    if let Err(LayerError::Internal(msg)) = &result {
        panic!("internal error: {msg}");
    }

    assert_eq!(
        listing(&run),
        before,
        "something appeared next to the layer"
    );
    assert_eq!(
        listing(&victim),
        vec![(victim.join("keep"), VICTIM_CONTENT.to_vec())],
        "the victim directory changed"
    );
    assert_only_files_and_dirs(&layer);

    // The same tar with its EROFS image written in the pass: an accepted layer's image must
    // read back (our reader) equal to its index, every file's data to its digest.
    let again = base().join("again");
    let image = base().join("layer.erofs");
    let _ = fs::remove_dir_all(&again);
    let _ = fs::remove_file(&image);
    let _ = fs::remove_file(base().join("layer.erofs.tails"));
    fs::create_dir_all(&again).expect("layer dir");
    let with_image = fuzz_extract_erofs(&tar, &again, &image, OpaqueXattr::Trusted);
    if let Err(LayerError::Internal(msg)) = &with_image {
        panic!("internal error writing the image: {msg}");
    }
    if let Ok(problems) = with_image {
        assert!(problems.is_empty(), "the image differs: {problems:#?}");
    }
});
