//! Inflate throughput on one core: msbimage's gzip path (flate2's `MultiGzDecoder` on zlib-rs,
//! over a 256 KiB `BufReader` around a SHA-256 `HashingReader`, read in 128 KiB blocks, as in
//! core/src/layer/decompress.rs and pipe.rs) against ISA-L's igzip on the same bytes: our own
//! streaming wrapper of `isal_inflate` with the same buffering ([`isal_gz`]), and isal-rs's
//! `read::Decoder` for reference. Not part of the workspace (it builds ISA-L from source).
//!
//! `taskset -c 1 target/release/msbimage-inflate-bench [--rounds N] [--block BYTES] [--check]
//! BLOB...` first checks that the decoders give the same bytes and fail alike (multi-member,
//! tiny, trailing garbage, truncated, corrupted, header fields, and the blobs themselves;
//! `--check` stops there), then for each blob (read into memory first) runs the decoders in
//! turn, A B C A B C …, N rounds (default 7), inflate alone and inflate while hashing the blob,
//! and prints MB/s of output by thread CPU time and by wall time (median, min-max) with the
//! ratio isal / zlib-rs (of the medians, and the median of the per-round ratios). See
//! tests/bench/RESULTS.notes.md.

mod isal_gz;

use std::io::{self, BufRead, BufReader, Read};
use std::time::Instant;

use sha2::{Digest as _, Sha256};

/// Input buffer of the decoders (core/src/layer/decompress.rs `BUF`).
const BUF: usize = 256 * 1024;
/// Bytes per read (core/src/layer/pipe.rs `BLOCK`); `--block N` changes it for the timed runs.
const BLOCK: usize = 128 << 10;

/// core/src/digest.rs `HashingReader`, SHA-256 only.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// The compressed source: hashed (as in a pull) or not.
enum Source<'a> {
    Plain(&'a [u8]),
    Hashed(HashingReader<&'a [u8]>),
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Hashed(r) => r.read(buf),
        }
    }
}

impl Source<'_> {
    fn new(blob: &[u8], hash: bool) -> Source<'_> {
        if hash {
            Source::Hashed(HashingReader {
                inner: blob,
                hasher: Sha256::new(),
                count: 0,
            })
        } else {
            Source::Plain(blob)
        }
    }

    /// Blob digest (hex) and bytes read, when hashed.
    fn finish(self) -> Option<(String, u64)> {
        match self {
            Source::Plain(_) => None,
            Source::Hashed(h) => Some((hex(&h.hasher.finalize()), h.count)),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    /// flate2 1.1.11 `bufread::MultiGzDecoder` on zlib-rs 0.6.8 (with `std`): msbimage's path.
    ZlibRs,
    /// [`isal_gz::IsalGzDecoder`] over the same `BufReader`.
    Isal,
    /// isal-rs 0.5.3 `read::Decoder` (its own 16 KiB input buffer) over the source.
    IsalRs,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::ZlibRs => "zlib-rs",
            Impl::Isal => "isal",
            Impl::IsalRs => "isal-rs",
        }
    }
}

/// What a decode saw.
struct Outcome {
    out_bytes: u64,
    out_sha: String,
    /// Blob digest and the compressed bytes read, when hashed: the pipe's `into_inner()` then
    /// drains the rest, so this is the position of the source after the stream.
    blob: Option<(String, u64)>,
    /// Bytes the decoder's reader still had after the stream (`into_inner`, then drained).
    rest: Option<u64>,
    result: Result<(), (io::ErrorKind, String)>,
}

/// Read until `buf` is full or the stream ends (core/src/layer/pipe.rs `read_full`).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Inflate `r` in BLOCK reads; with `hash_out`, SHA-256 of the output too.
fn pump(r: &mut impl Read, block: &mut [u8], hash_out: bool) -> (u64, String, io::Result<()>) {
    let mut h = hash_out.then(Sha256::new);
    let mut total = 0u64;
    let res = loop {
        match read_full(r, block) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                total += n as u64;
                if let Some(h) = h.as_mut() {
                    h.update(&block[..n]);
                }
            }
            Err(e) => break Err(e),
        }
    };
    (
        total,
        h.map(|h| hex(&h.finalize())).unwrap_or_default(),
        res,
    )
}

fn decode(which: Impl, blob: &[u8], hash_blob: bool, hash_out: bool, block: &mut [u8]) -> Outcome {
    let src = Source::new(blob, hash_blob);
    let ((out_bytes, out_sha, res), (rest, src)) = match which {
        Impl::ZlibRs => {
            let mut d = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(BUF, src));
            (pump(&mut d, block, hash_out), drain(d.into_inner()))
        }
        Impl::Isal => {
            let mut d = isal_gz::IsalGzDecoder::new(BufReader::with_capacity(BUF, src));
            (pump(&mut d, block, hash_out), drain(d.into_inner()))
        }
        Impl::IsalRs => {
            let mut d = isal::read::Decoder::new(src, isal::Codec::Gzip);
            let p = pump(&mut d, block, hash_out);
            // No into_inner: it may have read ahead of the stream's end.
            (
                p,
                (None, std::mem::replace(d.get_ref_mut(), Source::Plain(&[]))),
            )
        }
    };
    Outcome {
        out_bytes,
        out_sha,
        blob: src.finish(),
        rest,
        result: res.map_err(|e| (e.kind(), e.to_string())),
    }
}

/// Drain the buffered reader (the pipe's "hash the rest"), counting what was left.
fn drain(mut r: BufReader<Source<'_>>) -> (Option<u64>, Source<'_>) {
    let n = io::copy(&mut r, &mut io::sink()).unwrap_or(u64::MAX);
    let _ = r.fill_buf();
    (Some(n), r.into_inner())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).expect("into memory");
    e.finish().expect("into memory")
}

/// Same bytes out, same errors (kind), same consumption, on awkward inputs and the blobs.
fn check(blobs: &[(String, Vec<u8>)]) -> Result<(), String> {
    let mut block = vec![0u8; BLOCK];
    let text: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
        .collect();
    let mut x = 1u32;
    let noise: Vec<u8> = (0..1_500_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let one = gzip(&text, 6);
    let mut multi = gzip(&text[..1_000_000], 1);
    multi.extend(gzip(&noise, 6));
    multi.extend(gzip(b"", 6));
    multi.extend(gzip(&text[1_000_000..], 9));
    let mut with_name = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::GzBuilder::new()
            .filename("layer.tar")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4])
            .mtime(12345)
            .write(&mut with_name, flate2::Compression::default());
        e.write_all(&text[..100_000]).expect("into memory");
        e.finish().expect("into memory");
    }
    // FHCRC: a hand-made header with a header CRC (flate2 cannot write one).
    let mut hcrc = vec![0x1f, 0x8b, 8, 0x02, 0, 0, 0, 0, 0, 3];
    let mut c = flate2::Crc::new();
    c.update(&hcrc);
    hcrc.extend((c.sum() as u16).to_le_bytes());
    hcrc.extend(&gzip(b"header crc", 6)[10..]);
    let mut bad_hcrc = hcrc.clone();
    bad_hcrc[10] ^= 1;
    let mut trailing = one.clone();
    trailing.extend(b"trailing garbage after the stream");
    let mut zeros = one.clone();
    zeros.extend([0u8; 1024]);
    let mut corrupt = one.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5a);
    let mut bad_crc = one.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 1;
    let mut bad_len = one.clone();
    bad_len[n - 2] ^= 1;
    let mut reserved = one.clone();
    reserved[3] = 0x20;

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("one member".into(), one.clone()),
        ("four members (one empty)".into(), multi),
        ("tiny: gzip of 2 bytes".into(), gzip(b"hi", 6)),
        ("tiny: gzip of nothing".into(), gzip(b"", 6)),
        ("name, comment, extra".into(), with_name),
        ("header crc".into(), hcrc),
        ("bad header crc".into(), bad_hcrc),
        ("trailing garbage".into(), trailing),
        ("trailing zeros".into(), zeros),
        (
            "truncated in the body".into(),
            one[..one.len() / 2].to_vec(),
        ),
        (
            "truncated in the trailer".into(),
            one[..one.len() - 3].to_vec(),
        ),
        ("truncated in the header".into(), one[..5].to_vec()),
        ("empty".into(), Vec::new()),
        ("corrupt body".into(), corrupt),
        ("bad crc".into(), bad_crc),
        ("bad length".into(), bad_len),
        ("reserved flag".into(), reserved),
    ];
    // The real blobs, and the first two of them concatenated (two big members).
    if blobs.len() >= 2 {
        let mut two = blobs[0].1.clone();
        two.extend(&blobs[1].1);
        cases.push((format!("{} + {}", blobs[0].0, blobs[1].0), two));
    }
    let mut bad = 0;
    let all: Vec<(&str, &[u8])> = cases
        .iter()
        .map(|(n, b)| (n.as_str(), &b[..]))
        .chain(blobs.iter().map(|(n, b)| (n.as_str(), &b[..])))
        .collect();
    for (name, blob) in all {
        let a = decode(Impl::ZlibRs, blob, true, true, &mut block);
        let b = decode(Impl::Isal, blob, true, true, &mut block);
        let c = decode(Impl::IsalRs, blob, false, true, &mut block);
        let show = |o: &Outcome| match &o.result {
            Ok(()) => format!("ok {} bytes sha256 {}", o.out_bytes, &o.out_sha[..12]),
            Err((k, m)) => format!("{k:?} \"{m}\" after {} bytes", o.out_bytes),
        };
        let same_out = a.out_sha == b.out_sha && a.out_bytes == b.out_bytes;
        let same_err = a.result.as_ref().map_err(|e| e.0) == b.result.as_ref().map_err(|e| e.0);
        let same_blob = a.blob == b.blob;
        // After a clean end both must have consumed the same compressed bytes.
        let same_rest = a.result.is_err() || a.rest == b.rest;
        let ok = same_out && same_err && same_blob && same_rest;
        bad += usize::from(!ok);
        let isalrs_same = c.out_sha == a.out_sha && c.result.is_ok() == a.result.is_ok();
        println!(
            "{} {name}: zlib-rs {} | isal {} | rest after stream {:?}/{:?}{}{} | isal-rs {}",
            if ok { "SAME" } else { "DIFF" },
            show(&a),
            show(&b),
            a.rest,
            b.rest,
            if same_blob {
                ""
            } else {
                " | BLOB DIGEST DIFFERS"
            },
            if same_out || a.result.is_err() {
                ""
            } else {
                " | OUTPUT DIFFERS"
            },
            if isalrs_same {
                "same".to_string()
            } else {
                show(&c)
            },
        );
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(format!("{bad} case(s) differ"))
    }
}

/// CPU time of this thread, in seconds (not inflated by other processes on the core).
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rounds = 7;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    let mut only_check = false;
    let mut block_size = BLOCK;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().ok_or("--rounds N")?.parse()?,
            "--check" => only_check = true,
            "--block" => block_size = args.next().ok_or("--block BYTES")?.parse()?,
            _ => paths.push(a),
        }
    }
    let mut blobs = Vec::new();
    for p in &paths {
        let name = std::path::Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone());
        blobs.push((name, std::fs::read(p)?));
    }
    let cpus = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list"))
        .map(|l| l.to_string())
        .unwrap_or_default();
    println!("# {cpus}; {rounds} rounds; read size {block_size}, input buffer {BUF}");
    check(&blobs)?;
    if only_check {
        return Ok(());
    }
    let impls = [Impl::ZlibRs, Impl::Isal, Impl::IsalRs];
    let mut block = vec![0u8; block_size];
    // rows[clock] = table lines; clock 0 = thread CPU time, 1 = wall time.
    let mut rows: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (name, blob) in &blobs {
        for hash_blob in [false, true] {
            // mbs[clock][impl] = MB/s of output, one per round.
            let mut mbs: [Vec<Vec<f64>>; 2] =
                [vec![Vec::new(); impls.len()], vec![Vec::new(); impls.len()]];
            let mut out_mb = 0.0;
            for _ in 0..rounds {
                for (i, &which) in impls.iter().enumerate() {
                    let (c0, t) = (thread_cpu(), Instant::now());
                    let o = decode(which, blob, hash_blob, false, &mut block);
                    let (cpu, wall) = (thread_cpu() - c0, t.elapsed().as_secs_f64());
                    if let Err((k, m)) = o.result {
                        return Err(format!("{name}: {} failed: {k:?} {m}", which.name()).into());
                    }
                    std::hint::black_box(&o.blob);
                    out_mb = o.out_bytes as f64 / 1e6;
                    mbs[0][i].push(out_mb / cpu);
                    mbs[1][i].push(out_mb / wall);
                }
            }
            for (clock, mbs) in mbs.iter().enumerate() {
                let mut ratios: Vec<f64> = mbs[1].iter().zip(&mbs[0]).map(|(b, a)| b / a).collect();
                let (rmin, rmax) = minmax(&ratios);
                let rmed = median(&mut ratios);
                let mut cells = Vec::new();
                let mut meds = Vec::new();
                for v in mbs {
                    let (lo, hi) = minmax(v);
                    let m = median(&mut v.clone());
                    meds.push(m);
                    cells.push(format!("{m:.0} ({lo:.0}-{hi:.0})"));
                }
                let row = format!(
                    "| {name} | {} | {:.1} | {out_mb:.1} | {} | {} | {} | {:.2} | {rmed:.2} ({rmin:.2}-{rmax:.2}) |",
                    if hash_blob {
                        "inflate + SHA-256 of blob"
                    } else {
                        "inflate"
                    },
                    blob.len() as f64 / 1e6,
                    cells[0],
                    cells[1],
                    cells[2],
                    meds[1] / meds[0],
                );
                println!("{} {row}", ["cpu", "wall"][clock]);
                rows[clock].push(row);
            }
        }
    }
    for (clock, title) in ["thread CPU time", "wall time"].iter().enumerate() {
        println!("\nMB/s of output by {title}: median of {rounds} rounds (min-max)\n");
        println!(
            "| layer | mode | compressed MB | output MB | zlib-rs | isal | isal-rs | isal/zlib-rs (medians) | per-round isal/zlib-rs, median (min-max) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &rows[clock] {
            println!("{r}");
        }
    }
    Ok(())
}

fn minmax(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}
