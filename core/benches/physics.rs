//! Single-core "physics" of a pull (issue 6): how fast this machine inflates gzip and computes
//! SHA-256 with the libraries msbimage itself uses (flate2 on zlib-rs with runtime CPU
//! detection; `sha2` with SHA-NI where the CPU has it), on one real layer blob. A cold pull
//! must at least inflate the blob and hash both the blob (its digest) and the tar (its
//! diff_id), so `tar / inflate rate + (blob + tar) / sha256 rate` is the CPU floor per image;
//! `tests/bench/run.sh` compares msbimage's user+sys with it.
//!
//! `MSB_BENCH_BLOB=<gzip layer blob> cargo bench -p microsandbox-image --bench physics`
//! prints one JSON object (seconds, bytes and MB/s; best of 3 runs each).

use std::io::Read;
use std::time::Instant;

use sha2::Digest as _;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::var_os("MSB_BENCH_BLOB") else {
        eprintln!("physics: set MSB_BENCH_BLOB to a gzip layer blob; skipped");
        return Ok(());
    };
    let blob = std::fs::read(&path)?;
    let (inflate_s, tar) = best_of(3, || -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(blob.len() * 3);
        flate2::read::MultiGzDecoder::new(&blob[..]).read_to_end(&mut out)?;
        Ok(out)
    });
    let tar = tar?;
    let (sha_blob_s, _) = best_of(3, || sha2::Sha256::digest(std::hint::black_box(&blob)));
    let (sha_tar_s, _) = best_of(3, || sha2::Sha256::digest(std::hint::black_box(&tar)));
    let mb = |bytes: usize, s: f64| bytes as f64 / 1e6 / s;
    println!(
        "{{\"blob_bytes\": {}, \"tar_bytes\": {}, \"inflate_s\": {inflate_s:.3}, \
         \"inflate_mb_s_out\": {:.1}, \"sha256_blob_s\": {sha_blob_s:.3}, \
         \"sha256_tar_s\": {sha_tar_s:.3}, \"sha256_mb_s\": {:.1}}}",
        blob.len(),
        tar.len(),
        mb(tar.len(), inflate_s),
        mb(blob.len() + tar.len(), sha_blob_s + sha_tar_s),
    );
    Ok(())
}
