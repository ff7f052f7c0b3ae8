//! Benchmarks of the sidecar lookup index on a synthetic, Debian-like image of three layers
//! (about 21 000 entries: a base system with thousands of libraries in
//! `usr/lib/x86_64-linux-gnu`, `usr/share/doc/*`, man pages and locales; a Python install
//! on top; an application layer with whiteouts and an opaque directory).
//!
//! Measures: building an index from tar-order entries, opening (map + checksum + full
//! validation), merged `get` of existing and missing paths, merged `read_dir` of large
//! directories, a full `walk`, and single-layer `get` for comparison.
//! Targets (issue 4): ≥ 2 M merged gets/s on one core, open < 100 µs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use microsandbox_image::index::{EntryMeta, IndexBuilder, LayerIndex, LayerStack};

/// Entries of one layer in tar order: `(path, meta, hardlink target)`.
type Layer = Vec<(Vec<u8>, EntryMeta, Option<Vec<u8>>)>;

struct Gen {
    layer: Layer,
    inode: u64,
}

impl Gen {
    fn new() -> Self {
        Gen {
            layer: Vec::new(),
            inode: 1000,
        }
    }
    fn meta(&mut self, mode: u32, size: u64) -> EntryMeta {
        self.inode += 1;
        EntryMeta {
            mode,
            size,
            mtime_sec: 1_700_000_000,
            inode: self.inode,
            ..EntryMeta::default()
        }
    }
    fn dir(&mut self, p: &str) {
        let m = self.meta(0o040755, 0);
        self.layer.push((p.as_bytes().to_vec(), m, None));
    }
    fn implicit(&mut self, p: &str) {
        let m = EntryMeta {
            implicit: true,
            ..self.meta(0o040755, 0)
        };
        self.layer.push((p.as_bytes().to_vec(), m, None));
    }
    fn file(&mut self, p: &str, size: u64) {
        let m = self.meta(0o100644, size);
        self.layer.push((p.as_bytes().to_vec(), m, None));
    }
    fn symlink(&mut self, p: &str, target: &str) {
        let m = EntryMeta {
            link_target: Some(target.as_bytes().to_vec()),
            ..self.meta(0o120777, 0)
        };
        self.layer.push((p.as_bytes().to_vec(), m, None));
    }
    fn hardlink(&mut self, p: &str, target: &str) {
        let m = self.meta(0o100644, 0);
        let t = Some(target.as_bytes().to_vec());
        self.layer.push((p.as_bytes().to_vec(), m, t));
    }
}

const MULTIARCH: &str = "usr/lib/x86_64-linux-gnu";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }

    /// A pronounceable word of 2 to 4 syllables, sometimes with a digit or a second word,
    /// like Debian package and file names (`gobaxi`, `lerano2`, `tivo-camesa`).
    fn word(&mut self) -> String {
        const SYL: [&str; 32] = [
            "a", "ba", "ce", "di", "do", "e", "fa", "ge", "gi", "ha", "ka", "la", "le", "li", "lo",
            "ma", "me", "mi", "na", "ne", "o", "pa", "pi", "ra", "re", "ro", "sa", "se", "ta",
            "ti", "vo", "xi",
        ];
        let mut w = String::new();
        for _ in 0..2 + self.below(3) {
            w.push_str(SYL[self.below(SYL.len())]);
        }
        match self.below(6) {
            0 => w.push_str(&self.below(10).to_string()),
            1 => {
                w.push('-');
                w.push_str(&self.word());
            }
            _ => {}
        }
        w
    }
}

/// Names the upper layers refer to.
struct Base {
    layer: Layer,
    libs: Vec<String>,
    packages: Vec<String>,
}

fn base_layer(rng: &mut Rng) -> Base {
    let mut g = Gen::new();
    g.dir("");
    for d in [
        "boot", "dev", "etc", "home", "media", "mnt", "opt", "proc", "root", "run",
    ] {
        g.dir(d);
    }
    for d in [
        "srv",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/share",
    ] {
        g.dir(d);
    }
    for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        g.symlink(l, t);
    }
    g.symlink("lib64", "usr/lib64");
    for d in [
        "etc/apt",
        "etc/default",
        "etc/init.d",
        "etc/security",
        "etc/ssl",
    ] {
        g.dir(d);
        for _ in 0..40 {
            g.file(&format!("{d}/{}", rng.word()), 700);
        }
    }
    for _ in 0..200 {
        g.file(&format!("etc/{}.conf", rng.word()), 300);
    }
    let mut first_tool = String::new();
    for i in 0..500 {
        let t = rng.word();
        g.file(&format!("usr/bin/{t}"), 40_000 + i);
        if i == 7 {
            first_tool = format!("usr/bin/{t}");
        }
    }
    g.hardlink("usr/bin/perl5.36", &first_tool);
    for _ in 0..150 {
        g.file(&format!("usr/sbin/{}", rng.word()), 30_000);
    }
    g.dir(MULTIARCH);
    let mut libs = Vec::new();
    for i in 0..1500 {
        let (w, major) = (rng.word(), rng.below(9));
        let real = format!("lib{w}.so.{major}.{}.0", rng.below(20));
        g.file(&format!("{MULTIARCH}/{real}"), 200_000);
        g.symlink(&format!("{MULTIARCH}/lib{w}.so.{major}"), &real);
        if i % 10 == 0 {
            g.symlink(&format!("{MULTIARCH}/lib{w}.so"), &real);
        }
        libs.push(real);
    }
    for _ in 0..40 {
        let d = format!("{MULTIARCH}/{}", rng.word());
        g.dir(&d);
        for _ in 0..20 {
            g.file(&format!("{d}/{}.so", rng.word()), 9000);
        }
    }
    g.dir("usr/share/doc");
    let mut packages = Vec::new();
    for p in 0..800 {
        let pkg = rng.word();
        let d = format!("usr/share/doc/{pkg}");
        g.dir(&d);
        g.file(&format!("{d}/changelog.Debian.gz"), 2000);
        g.file(&format!("{d}/copyright"), 5000);
        if p % 3 == 0 {
            g.file(&format!("{d}/README.Debian"), 900);
        }
        packages.push(pkg);
    }
    g.dir("usr/share/locale");
    for _ in 0..80 {
        let lang = format!("usr/share/locale/{}", rng.word());
        let d = format!("{lang}/LC_MESSAGES");
        g.dir(&lang);
        g.dir(&d);
        for _ in 0..12 {
            g.file(&format!("{d}/{}.mo", rng.word()), 12_000);
        }
    }
    g.dir("usr/share/man");
    for s in 1..=8 {
        g.dir(&format!("usr/share/man/man{s}"));
        for _ in 0..190 {
            g.file(&format!("usr/share/man/man{s}/{}.{s}.gz", rng.word()), 3000);
        }
    }
    g.dir("usr/include");
    for _ in 0..900 {
        g.file(&format!("usr/include/{}.h", rng.word()), 8000);
    }
    for d in [
        "var",
        "var/lib",
        "var/lib/dpkg",
        "var/lib/dpkg/info",
        "var/lib/apt",
    ] {
        g.dir(d);
    }
    g.dir("var/lib/apt/lists");
    for pkg in packages.iter().take(750) {
        g.file(&format!("var/lib/dpkg/info/{pkg}.list"), 3000);
        g.file(&format!("var/lib/dpkg/info/{pkg}.md5sums"), 3000);
    }
    for i in 0..20 {
        g.file(&format!("var/lib/apt/lists/deb_{i:02}_Packages"), 9_000_000);
    }
    Base {
        layer: g.layer,
        libs,
        packages,
    }
}

fn python_layer(rng: &mut Rng, base: &Base) -> Layer {
    let mut g = Gen::new();
    g.inode = 1_000_000;
    for d in [
        "usr",
        "usr/lib",
        MULTIARCH,
        "usr/share",
        "usr/share/doc",
        "usr/bin",
    ] {
        g.implicit(d);
    }
    g.dir("usr/lib/python3.11");
    for _ in 0..260 {
        let d = format!("usr/lib/python3.11/{}", rng.word());
        g.dir(&d);
        g.dir(&format!("{d}/__pycache__"));
        for _ in 0..10 {
            let m = rng.word();
            g.file(&format!("{d}/{m}.py"), 6000);
            g.file(&format!("{d}/__pycache__/{m}.cpython-311.pyc"), 9000);
        }
    }
    for _ in 0..300 {
        g.file(&format!("{MULTIARCH}/libpy{}.so.1", rng.word()), 100_000);
    }
    for lib in base.libs.iter().step_by(30) {
        g.file(&format!("{MULTIARCH}/{lib}"), 210_000);
    }
    for _ in 0..200 {
        let d = format!("usr/share/doc/python3-{}", rng.word());
        g.dir(&d);
        g.file(&format!("{d}/copyright"), 5000);
        g.file(&format!("{d}/changelog.Debian.gz"), 2000);
    }
    g.file("usr/bin/python3.11", 6_000_000);
    g.symlink("usr/bin/python3", "python3.11");
    for d in ["var", "var/lib", "var/lib/apt", "var/lib/apt/lists"] {
        g.implicit(d);
    }
    for i in 0..20 {
        g.file(&format!("var/lib/apt/lists/.wh.deb_{i:02}_Packages"), 0);
    }
    g.layer
}

fn app_layer(rng: &mut Rng, base: &Base) -> Layer {
    let mut g = Gen::new();
    g.inode = 2_000_000;
    g.dir("app");
    for _ in 0..60 {
        let d = format!("app/{}", rng.word());
        g.dir(&d);
        for _ in 0..20 {
            g.file(&format!("{d}/{}.py", rng.word()), 4000);
        }
    }
    g.implicit("etc");
    g.file("etc/hosts.conf", 400);
    g.file("etc/.wh.motd", 0);
    g.implicit("usr");
    g.implicit("usr/share");
    g.implicit("usr/share/doc");
    let opaque = format!("usr/share/doc/{}", base.packages[1]);
    g.dir(&opaque);
    g.file(&format!("{opaque}/.wh..wh..opq"), 0);
    g.file(&format!("{opaque}/NOTICE"), 10);
    for pkg in base.packages.iter().step_by(40) {
        g.file(&format!("usr/share/doc/.wh.{pkg}"), 0);
    }
    g.dir("var");
    g.dir("var/cache");
    g.dir("var/cache/app");
    for i in 0..100 {
        g.file(&format!("var/cache/app/blob{i:03}"), 100);
    }
    g.layer
}

fn build(layer: &Layer) -> Vec<u8> {
    let mut b = IndexBuilder::new();
    for (path, meta, link) in layer {
        match link {
            Some(t) => b.add_hardlink(path, t).expect("hardlink"),
            None => b.add(path, meta.clone()).expect("add"),
        }
    }
    b.finish().expect("finish")
}

/// Merged `get` of `hits` (existing paths) and of `misses`, per path.
fn bench_gets(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    stack: &LayerStack,
    hits: &[&[u8]],
    misses: &[Vec<u8>],
) {
    g.throughput(Throughput::Elements(hits.len() as u64));
    g.bench_function("merged_get_hit", |b| {
        b.iter(|| {
            for p in hits {
                black_box(stack.get(black_box(p)).expect("get"));
            }
        })
    });
    g.throughput(Throughput::Elements(misses.len() as u64));
    g.bench_function("merged_get_miss", |b| {
        b.iter(|| {
            for p in misses {
                black_box(stack.get(black_box(p)).expect("get"));
            }
        })
    });
}

fn benches(c: &mut Criterion) {
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let base = base_layer(&mut rng);
    let python = python_layer(&mut rng, &base);
    let app = app_layer(&mut rng, &base);
    let layers = [base.layer, python, app];
    let bytes: Vec<Vec<u8>> = layers.iter().map(build).collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        let p = tmp.path().join(format!("index{i}"));
        std::fs::write(&p, b).expect("write index");
        paths.push(p);
    }
    let indexes: Vec<LayerIndex> = paths.iter().map(|p| LayerIndex::open(p).unwrap()).collect();
    let total: usize = indexes.iter().map(LayerIndex::len).sum();
    let stack = LayerStack::new(indexes.clone());
    let visible: Vec<Vec<u8>> = stack.walk().map(Result::unwrap).map(|(p, _)| p).collect();
    eprintln!(
        "stack: {total} entries in 3 layers ({:?} bytes of index), {} visible paths",
        bytes.iter().map(Vec::len).collect::<Vec<_>>(),
        visible.len()
    );

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    const BATCH: usize = 4096;
    let hits: Vec<&[u8]> = (0..BATCH)
        .map(|_| visible[rng.below(visible.len())].as_slice())
        .collect();
    let misses: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            let p = &visible[rng.below(visible.len())];
            match i % 3 {
                0 => [p.as_slice(), b".missing"].concat(),
                1 => format!("{MULTIARCH}/libnope{i:04}.so").into_bytes(),
                _ => format!("usr/share/doc/nopkg-{i}/copyright").into_bytes(),
            }
        })
        .collect();
    assert!(hits.iter().all(|p| stack.get(p).unwrap().is_some()));
    assert!(misses.iter().all(|p| stack.get(p).unwrap().is_none()));

    let mut g = c.benchmark_group("index");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);

    bench_gets(&mut g, &stack, &hits, &misses);
    let base = &indexes[0];
    let base_hits: Vec<&[u8]> = hits
        .iter()
        .copied()
        .filter(|p| base.get(p).unwrap().is_some())
        .collect();
    g.throughput(Throughput::Elements(base_hits.len() as u64));
    g.bench_function("single_layer_get_hit", |b| {
        b.iter(|| {
            for p in &base_hits {
                black_box(base.get(black_box(p)).unwrap());
            }
        })
    });

    for dir in [MULTIARCH, "usr/share/doc", "usr/lib/python3.11", "etc"] {
        let n = stack
            .read_dir(dir.as_bytes())
            .unwrap()
            .map_or(0, |v| v.len());
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("merged_read_dir", dir), dir, |b, dir| {
            b.iter(|| black_box(stack.read_dir(black_box(dir.as_bytes())).unwrap()))
        });
    }
    g.throughput(Throughput::Elements(visible.len() as u64));
    g.bench_function("merged_walk", |b| {
        b.iter(|| stack.walk().map(Result::unwrap).count())
    });

    for (i, name) in ["base", "python", "app"].iter().enumerate() {
        g.throughput(Throughput::Elements(indexes[i].len() as u64));
        g.bench_with_input(BenchmarkId::new("open", name), &paths[i], |b, p| {
            b.iter(|| LayerIndex::open(black_box(p)).expect("open"))
        });
    }
    g.throughput(Throughput::Elements(indexes[0].len() as u64));
    g.bench_function("build/base", |b| b.iter(|| build(black_box(&layers[0]))));
    g.finish();
}

/// Open time and merged lookups on real index files: `MSB_BENCH_INDEX_FILES` lists an image's
/// index files bottom to top, separated by `:` (for example the `index` of each layer a pull
/// returned). Skipped when unset.
fn real_indexes(c: &mut Criterion) {
    let Some(list) = std::env::var_os("MSB_BENCH_INDEX_FILES") else {
        return;
    };
    let paths: Vec<std::path::PathBuf> = std::env::split_paths(&list).collect();
    let indexes: Vec<LayerIndex> = paths
        .iter()
        .map(|p| LayerIndex::open(p).expect("open index"))
        .collect();
    let stack = LayerStack::new(indexes.clone());
    stack.verify().expect("valid indexes");
    let visible: Vec<Vec<u8>> = stack
        .walk()
        .map(|r| r.expect("walk").0)
        .filter(|p| !p.is_empty())
        .collect();
    eprintln!(
        "real image: {} layers, {} entries, {} visible paths",
        indexes.len(),
        indexes.iter().map(LayerIndex::len).sum::<usize>(),
        visible.len()
    );
    let mut rng = Rng(0x5eed_0000_1111_2222);
    const BATCH: usize = 4096;
    let hits: Vec<&[u8]> = (0..BATCH)
        .map(|_| visible[rng.below(visible.len())].as_slice())
        .collect();
    let misses: Vec<Vec<u8>> = hits
        .iter()
        .map(|p| [p, &b".missing"[..]].concat())
        .collect();
    let mut g = c.benchmark_group("real");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(30);
    bench_gets(&mut g, &stack, &hits, &misses);
    for (i, p) in paths.iter().enumerate() {
        let bytes = std::fs::metadata(p).map_or(0, |m| m.len());
        let id = format!("{i}:{}entries/{}KiB", indexes[i].len(), bytes >> 10);
        g.throughput(Throughput::Elements(indexes[i].len() as u64));
        g.bench_with_input(BenchmarkId::new("open", &id), p, |b, p| {
            b.iter(|| LayerIndex::open(black_box(p)).expect("open"))
        });
        // What the lazy checks move from `open` to the first lookups: open, then look up
        // one path of this layer (its directories and their blocks are checked on the way).
        let deepest = LayerStack::new(vec![indexes[i].clone()])
            .walk()
            .filter_map(Result::ok)
            .map(|(p, _)| p)
            .max_by_key(|p| (p.iter().filter(|&&c| c == b'/').count(), p.len()))
            .unwrap_or_default();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("open_then_get_deepest", &id), p, |b, p| {
            b.iter(|| {
                let index = LayerIndex::open(black_box(p)).expect("open");
                index.get(&deepest).expect("get").map(|e| e.size())
            })
        });
    }
    g.finish();
}

criterion_group!(index, benches, real_indexes);
criterion_main!(index);
