//! Index build overhead as a fraction of extraction (issue 4's "< 5 %" target), measured in one
//! run: the same uncompressed layer tar is extracted with the index on and off, alternating
//! (A B B A A B …), each run into a fresh empty directory, and the medians are compared. Building
//! includes serialising the index (sorting, string interning, checksum); writing the file is
//! one more `write` and is left out. Decompression and hashing are left out too, so the
//! fraction is an upper bound of what the index adds to a real pull.
//!
//! Input: `MSB_BENCH_TAR=<layer.tar>`, or else a tar built in memory from the real files under
//! `MSB_BENCH_TREE` (default `/usr`), at most `MSB_BENCH_ENTRIES` entries (default 30 000) and
//! 400 MB. Output directories go under `MSB_BENCH_DIR` (default `/dev/shm`, a tmpfs, so that
//! ext4's slowdown after large deletions does not swamp the figures). `MSB_BENCH_RUNS` runs
//! of each (default 9).
//!
//! `cargo bench -p microsandbox-image --bench index_overhead`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use microsandbox_image::index::{EntryMeta, IndexBuilder};
use microsandbox_image::layer::bench_extract;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tar of the tree under `root`, in directory order, with at most `max_entries` entries and
/// `max_bytes` of file content.
fn tar_of_tree(root: &Path, max_entries: usize, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let (mut entries, mut bytes) = (0usize, 0u64);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut children: Vec<_> = std::fs::read_dir(root.join(&rel))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for name in children.into_iter().rev() {
            if entries >= max_entries {
                return b.into_inner();
            }
            let rel = rel.join(name);
            let path = root.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_file() {
                if bytes + meta.len() > max_bytes {
                    continue;
                }
                bytes += meta.len();
            } else if !ft.is_dir() && !ft.is_symlink() {
                continue;
            }
            if b.append_path_with_name(&path, &rel).is_err() {
                continue;
            }
            entries += 1;
            if ft.is_dir() {
                stack.push(rel);
            }
        }
    }
    b.into_inner()
}

/// The index alone, without the filesystem: `IndexBuilder::add` for every tar entry (metadata
/// from its header), then `finish`. Returns the two times.
fn index_only(tar: &[u8]) -> Result<(Duration, Duration), Box<dyn std::error::Error>> {
    let mut ar = tar::Archive::new(tar);
    let mut metas = Vec::new();
    for entry in ar.entries()? {
        let entry = entry?;
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 0o040000,
            tar::EntryType::Symlink => 0o120000,
            _ => 0o100000,
        };
        let meta = EntryMeta {
            mode: kind | (h.mode()? & 0o7777),
            uid: h.uid()? as u32,
            gid: h.gid()? as u32,
            size: h.size()?,
            mtime_sec: h.mtime()? as i64,
            inode: metas.len() as u64 + 2,
            link_target: h.link_name_bytes().map(|t| t.into_owned()),
            ..EntryMeta::default()
        };
        let path = entry.path_bytes().into_owned();
        let path = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
        metas.push((path, meta));
    }
    let t = Instant::now();
    let mut b = IndexBuilder::new();
    for (path, meta) in metas {
        b.add(&path, meta)?;
    }
    let added = t.elapsed();
    let t = Instant::now();
    std::hint::black_box(b.finish()?);
    Ok((added, t.elapsed()))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; a filter argument that does not name us skips the run.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"index_overhead".contains(&filter)
    {
        return Ok(());
    }
    let tar = match std::env::var_os("MSB_BENCH_TAR") {
        Some(p) => std::fs::read(p)?,
        None => {
            let tree = std::env::var_os("MSB_BENCH_TREE").unwrap_or_else(|| "/usr".into());
            tar_of_tree(
                Path::new(&tree),
                env_or("MSB_BENCH_ENTRIES", 30_000),
                400 << 20,
            )?
        }
    };
    let base =
        PathBuf::from(std::env::var_os("MSB_BENCH_DIR").unwrap_or_else(|| "/dev/shm".into()));
    let work = tempfile::Builder::new()
        .prefix("msb-index-overhead-")
        .tempdir_in(&base)?;
    let runs: usize = env_or("MSB_BENCH_RUNS", 9);
    if std::env::var_os("MSB_BENCH_INDEX_ONLY").is_some() {
        for _ in 0..runs {
            let (add, finish) = index_only(&tar)?;
            println!("index alone: add {add:.2?} + finish {finish:.2?}");
        }
        return Ok(());
    }
    let mut times = [Vec::new(), Vec::new()];
    let mut entries = 0;
    let mut index_len = 0;
    for run in 0..=runs {
        // ABBA order, so that neither variant always runs right after the other's cleanup.
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for slot in order {
            let build_index = slot == 1;
            let root = work.path().join(format!("{run}-{slot}"));
            std::fs::create_dir(&root)?;
            let t = Instant::now();
            let (n, len) = bench_extract(&tar, &root, build_index)?;
            let elapsed = t.elapsed();
            std::fs::remove_dir_all(&root)?;
            if run == 0 {
                continue; // warm-up: page cache, allocator, directory caches
            }
            times[slot].push(elapsed);
            entries = n;
            index_len = index_len.max(len);
        }
    }
    let pairs: Vec<f64> = times[0]
        .iter()
        .zip(&times[1])
        .map(|(a, b)| b.as_secs_f64() / a.as_secs_f64())
        .collect();
    let mut pairs_sorted = pairs.clone();
    pairs_sorted.sort_by(f64::total_cmp);
    let (min0, max0) = (
        times[0].iter().min().copied(),
        times[0].iter().max().copied(),
    );
    let (min1, max1) = (
        times[1].iter().min().copied(),
        times[1].iter().max().copied(),
    );
    let [without, with] = &mut times;
    let (m0, m1) = (median(without), median(with));
    println!(
        "tar: {} MB, {entries} entries; index {} KB; {runs} alternating runs each under {}",
        tar.len() >> 20,
        index_len >> 10,
        base.display()
    );
    let d = |t: Option<Duration>| t.unwrap_or_default();
    println!(
        "extract without index: median {m0:.2?} (min {:.2?}, max {:.2?})",
        d(min0),
        d(max0)
    );
    println!(
        "extract with index:    median {m1:.2?} (min {:.2?}, max {:.2?})",
        d(min1),
        d(max1)
    );
    println!(
        "index overhead: {:+.1} % of extraction (medians); pair-by-pair median {:+.1} %",
        (m1.as_secs_f64() / m0.as_secs_f64() - 1.0) * 100.0,
        (pairs_sorted[pairs_sorted.len() / 2] - 1.0) * 100.0
    );
    let (mut adds, mut finishes): (Vec<_>, Vec<_>) = (0..runs)
        .map(|_| index_only(&tar))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    println!(
        "index alone (no filesystem): add {:.2?} + finish {:.2?} (medians)",
        median(&mut adds),
        median(&mut finishes)
    );
    Ok(())
}
