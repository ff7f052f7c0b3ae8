//! Fidelity of the extracted format (`cache/LAYOUT.md`): every tar feature a layer may use,
//! each on a real image pushed to a real `docker-registry` and pulled, checked on disk
//! (override xattrs, content, times), in the sidecar index, and — where rootless umoci can
//! express it — against `umoci unpack --rootless` of the same image through the merged view
//! (`common/oracle_support.rs`). Each test prints how many entries it compared with umoci.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::oracle_support::{compare, describe_pull, push_and_pull, stack, umoci_diff};
use microsandbox_image::index::{EntryKind, LayerIndex};
use microsandbox_image::layer::IMPLICIT_DIR_XATTR;
use microsandbox_image::stat::{OverrideStat, encode_dev, mode, read_override_stat};
use microsandbox_image::{ErrorKind, LayerError, PullOptions};
use msbimage_testkit::{
    Compression, Image, ImageBuilder, Layer, LayerBuilder, RegistryOptions, raw_header,
};
use tar::{EntryType, Header};

/// The shared registry and cache, with the push-and-pull steps these tests repeat.
struct Env(common::Env);

impl Env {
    async fn start() -> Env {
        Env(common::Env::start(RegistryOptions::plain()).await)
    }

    fn cache(&self) -> &Path {
        self.0.cache_dir.path()
    }

    /// Push, pull and compare with umoci; returns the pull and the entries compared.
    async fn oracle(&self, repo: &str, image: &Image) -> (microsandbox_image::PullResult, usize) {
        let (res, n) = compare(&self.0.registry, self.cache(), repo, "latest", image).await;
        println!("{repo}: {n} entries compared with umoci");
        (res, n)
    }

    async fn pull(&self, repo: &str, image: &Image) -> microsandbox_image::PullResult {
        push_and_pull(&self.0.registry, self.cache(), repo, "latest", image).await
    }

    /// Push `image` and pull it, expecting an error.
    async fn pull_err(&self, repo: &str, image: &Image) -> microsandbox_image::Error {
        self.0.push(repo, "latest", image).await;
        self.0
            .registry_client()
            .pull(
                &self.0.reference(&format!("{repo}:latest")),
                &PullOptions::default(),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("{repo}: the pull succeeded"))
    }
}

fn image(layers: Vec<Layer>) -> Image {
    let mut b = ImageBuilder::new("linux", "amd64");
    for l in layers {
        b = b.layer(l);
    }
    b.build()
}

fn one(b: LayerBuilder) -> Image {
    image(vec![b.build(Compression::Gzip)])
}

fn ov(p: &Path) -> OverrideStat {
    read_override_stat(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .unwrap_or_else(|| panic!("{}: no override_stat", p.display()))
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    rustix::fs::lgetxattr(p, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

fn index_of(layer_fs: &Path) -> LayerIndex {
    LayerIndex::open(layer_fs.parent().unwrap().join("index")).unwrap()
}

/// A tar builder for entries the testkit's `LayerBuilder` does not write: PAX records of any
/// key before an entry, hand-made headers.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> Tar {
        self.0
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    fn file(mut self, path: &str, content: &[u8], mode: u32) -> Tar {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(mode);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        self.0.append_data(&mut h, path, content).unwrap();
        self
    }

    fn dir(mut self, path: &str, mode: u32) -> Tar {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn raw(mut self, h: &Header, data: &[u8]) -> Tar {
        self.0.append(h, data).unwrap();
        self
    }

    fn layer(self) -> Layer {
        Layer::from_tar(self.0.into_inner().unwrap(), Compression::Gzip)
    }
}

#[tokio::test]
async fn every_entry_type_matches_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/tool", "#!/bin/sh\necho hi\n", 0o755)
        .symlink("bin/rel", "tool")
        .symlink("bin/abs", "/bin/tool")
        .symlink("bin/dangling", "../nowhere")
        .hardlink("bin/tool-again", "bin/tool")
        .dir("dev", 0o755)
        .char_device("dev/null", 1, 3, 0o666)
        .char_device("dev/big-minor", 4095, 0x12345, 0o600)
        .block_device("dev/sda", 8, 0, 0o660)
        .fifo("dev/fifo", 0o644)
        .file_owned("home/u/owned", "mine", 0o640, 1000, 100));
    let (res, _) = env.oracle("fidelity/types", &img).await;
    let fs = &res.layers[0];
    assert_eq!(ov(&fs.join("dev/null")).mode, mode::S_IFCHR | 0o666);
    assert_eq!(ov(&fs.join("dev/null")).rdev, encode_dev(1, 3));
    assert_eq!(
        ov(&fs.join("dev/big-minor")).rdev,
        encode_dev(4095, 0x12345)
    );
    assert_eq!(ov(&fs.join("dev/sda")).mode, mode::S_IFBLK | 0o660);
    assert_eq!(ov(&fs.join("dev/sda")).rdev, encode_dev(8, 0));
    assert_eq!(ov(&fs.join("dev/fifo")).mode, mode::S_IFIFO | 0o644);
    for dev in ["dev/null", "dev/sda", "dev/fifo"] {
        let md = std::fs::symlink_metadata(fs.join(dev)).unwrap();
        assert!(
            md.is_file() && md.len() == 0,
            "{dev} is an empty regular file"
        );
    }
    let idx = index_of(fs);
    assert_eq!(
        idx.get(b"dev/sda").unwrap().unwrap().kind(),
        EntryKind::BlockDevice
    );
    assert_eq!(
        idx.get(b"dev/sda").unwrap().unwrap().rdev(),
        encode_dev(8, 0)
    );
    assert_eq!(
        idx.get(b"dev/fifo").unwrap().unwrap().kind(),
        EntryKind::Fifo
    );
    assert_eq!(
        idx.get(b"bin/dangling").unwrap().unwrap().link_target(),
        Some(&b"../nowhere"[..])
    );
    assert_eq!(idx.get(b"bin/tool-again").unwrap().unwrap().nlink(), 2);
    let ino = |p: &str| std::fs::metadata(fs.join(p)).unwrap().ino();
    assert_eq!(ino("bin/tool"), ino("bin/tool-again"));
}

#[tokio::test]
async fn gnu_long_names_and_long_link_targets_match_umoci() {
    let env = Env::start().await;
    let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(90));
    let long_file = format!("{long_dir}/{}", "f".repeat(200));
    let long_target = format!("../../{}", "t".repeat(150));
    let img = one(LayerBuilder::new()
        .dir(&long_dir, 0o755)
        .file(&long_file, "long", 0o644)
        .symlink("short-to-long", &long_target)
        .symlink(&format!("{long_dir}/{}", "s".repeat(130)), &long_target)
        .hardlink(&format!("{long_dir}/{}", "h".repeat(140)), &long_file));
    let (res, _) = env.oracle("fidelity/long", &img).await;
    let fs = &res.layers[0];
    assert_eq!(std::fs::read(fs.join(&long_file)).unwrap(), b"long");
    assert_eq!(
        std::fs::read(fs.join("short-to-long")).unwrap(),
        long_target.as_bytes()
    );
    let idx = index_of(fs);
    assert_eq!(
        idx.get(format!("{long_dir}/{}", "s".repeat(130)).as_bytes())
            .unwrap()
            .unwrap()
            .link_target(),
        Some(long_target.as_bytes())
    );
}

#[tokio::test]
async fn pax_mtime_keeps_nanoseconds() {
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .pax(&[("mtime", b"1700000000.123456789")])
            .dir("d", 0o755)
            .pax(&[("mtime", b"1600000000.5")])
            .file("d/f", b"x", 0o644)
            .pax(&[("mtime", b"-1.25")])
            .file("old", b"y", 0o644)
            .pax(&[("mtime", b"-0.5")])
            .file("just-before", b"z", 0o644)
            .layer(),
    ]);
    let res = env.pull("fidelity/mtime", &img).await;
    let fs = &res.layers[0];
    let idx = index_of(fs);
    let f = idx.get(b"d/f").unwrap().unwrap();
    assert_eq!(
        (f.mtime_sec(), f.mtime_nsec()),
        (1_600_000_000, 500_000_000)
    );
    let md = std::fs::metadata(fs.join("d/f")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 500_000_000));
    // A directory's time is set after its children are written.
    let d = idx.get(b"d").unwrap().unwrap();
    assert_eq!(
        (d.mtime_sec(), d.mtime_nsec()),
        (1_700_000_000, 123_456_789)
    );
    let md = std::fs::metadata(fs.join("d")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_700_000_000, 123_456_789));
    // Before the epoch: -1.25 s is 2 s before plus 0.75 s.
    let old = idx.get(b"old").unwrap().unwrap();
    assert_eq!((old.mtime_sec(), old.mtime_nsec()), (-2, 750_000_000));
    let md = std::fs::metadata(fs.join("old")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (-2, 750_000_000));
    // "-0.5" is half a second before the epoch (the integer part alone reads as +0).
    let jb = idx.get(b"just-before").unwrap().unwrap();
    assert_eq!((jb.mtime_sec(), jb.mtime_nsec()), (-1, 500_000_000));
}

#[tokio::test]
async fn pax_ids_beyond_the_octal_fields_match_umoci() {
    // 3 000 000 000 does not fit the 8-byte octal uid/gid fields (max 2 097 151).
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .pax(&[("uid", b"3000000000"), ("gid", b"4000000000")])
            .file("big-ids", b"x", 0o644)
            .pax(&[("uid", b"2097152")])
            .dir("just-over", 0o755)
            .layer(),
    ]);
    let (res, _) = env.oracle("fidelity/ids", &img).await;
    let fs = &res.layers[0];
    let s = ov(&fs.join("big-ids"));
    assert_eq!((s.uid, s.gid), (3_000_000_000, 4_000_000_000));
    assert_eq!(ov(&fs.join("just-over")).uid, 2_097_152);
    let e = index_of(fs);
    assert_eq!(e.get(b"big-ids").unwrap().unwrap().uid(), 3_000_000_000);
}

/// `ping`'s file capability: `cap_net_raw+ep` (VFS_CAP_REVISION_2).
const PING_CAP: &[u8] = &[
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

#[tokio::test]
async fn schily_xattrs_match_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/ping", "ELF", 0o755)
        .xattr("bin/ping", "security.capability", PING_CAP)
        .file("bin/tagged", "x", 0o644)
        .xattr("bin/tagged", "user.foo", b"bar")
        .xattr("bin/tagged", "user.empty", b"")
        .file("bin/cleared", "x", 0o644)
        .xattr("bin/cleared", "user.gone", b"set")
        .xattr("bin/cleared", "user.gone", b""));
    let (res, _) = env.oracle("fidelity/xattrs", &img).await;
    let fs = &res.layers[0];
    assert_eq!(
        xattr(&fs.join("bin/ping"), "user.msb.xattr.security.capability").as_deref(),
        Some(PING_CAP)
    );
    assert_eq!(
        xattr(&fs.join("bin/ping"), "security.capability"),
        None,
        "the capability is recorded, not granted on the host"
    );
    let idx = index_of(fs);
    assert_eq!(
        idx.get(b"bin/ping")
            .unwrap()
            .unwrap()
            .xattr(b"security.capability"),
        Some(PING_CAP)
    );
    // A record with an empty value deletes the keyword (POSIX pax, as Go's archive/tar and
    // so umoci read it): no xattr, and an earlier value of the same name is dropped too.
    assert_eq!(
        idx.get(b"bin/tagged")
            .unwrap()
            .unwrap()
            .xattr(b"user.empty"),
        None
    );
    assert_eq!(
        idx.get(b"bin/cleared")
            .unwrap()
            .unwrap()
            .xattr(b"user.gone"),
        None
    );
    assert_eq!(
        xattr(&fs.join("bin/cleared"), "user.msb.xattr.user.gone"),
        None
    );
}

#[tokio::test]
async fn libarchive_base64_xattrs_are_decoded() {
    // umoci (Go's archive/tar) ignores LIBARCHIVE.xattr records, so no oracle here.
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .pax(&[
                ("LIBARCHIVE.xattr.user.foo", b"aGVsbG8gd29ybGQ="),
                (
                    "LIBARCHIVE.xattr.security.capability",
                    b"AQAAAgAgAAAAAAAAAAAAAAAAAAA=",
                ),
            ])
            .file("f", b"x", 0o644)
            .layer(),
    ]);
    let res = env.pull("fidelity/libarchive", &img).await;
    let f = res.layers[0].join("f");
    assert_eq!(
        xattr(&f, "user.msb.xattr.user.foo").as_deref(),
        Some(&b"hello world"[..])
    );
    assert_eq!(
        xattr(&f, "user.msb.xattr.security.capability").as_deref(),
        Some(PING_CAP)
    );
    let idx = index_of(&res.layers[0]);
    assert_eq!(
        idx.get(b"f").unwrap().unwrap().xattr(b"user.foo"),
        Some(&b"hello world"[..])
    );
}

/// A GNU sparse (`S`) entry: data chunks at `map` offsets, holes between, `real` bytes.
fn gnu_sparse(name: &str, map: &[(u64, Vec<u8>)], real: u64) -> (Header, Vec<u8>) {
    assert!(map.len() <= 4, "header map only");
    let mut h = Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    let mut data = Vec::new();
    {
        let gnu = h.as_gnu_mut().unwrap();
        for (i, (off, chunk)) in map.iter().enumerate() {
            gnu.sparse[i].set_offset(*off);
            gnu.sparse[i].set_length(chunk.len() as u64);
            data.extend_from_slice(chunk);
        }
        gnu.set_real_size(real);
    }
    h.set_size(data.len() as u64);
    h.set_cksum();
    (h, data)
}

#[tokio::test]
async fn gnu_sparse_files_are_expanded() {
    // Holes come back as zeros; the stored chunks (512-byte multiples but the last) where the
    // map puts them. The expanded size (1 MiB + 300) is larger than the tar itself, which
    // also exercises the progress arithmetic (it once underflowed on such entries).
    let env = Env::start().await;
    let real = (1 << 20) + 300;
    let (h, data) = gnu_sparse(
        "sparse",
        &[
            (0, vec![b'A'; 512]),
            (4096, vec![b'B'; 1024]),
            ((1 << 20) + 100, vec![b'C'; 100]),
            // The map ends at the real size, with an empty chunk after a trailing hole (as
            // GNU tar writes it; the tar crate refuses a map that stops short).
            (real, Vec::new()),
        ],
        real,
    );
    let img = image(vec![
        Tar::new()
            .raw(&h, &data)
            .file("after", b"after the sparse file", 0o644)
            .layer(),
    ]);
    // (No umoci comparison: umoci refuses the entry, "unknown typeflag 'S'".)
    let res = env.pull("fidelity/sparse", &img).await;
    assert_eq!(
        std::fs::read(res.layers[0].join("after")).unwrap(),
        b"after the sparse file"
    );
    let got = std::fs::read(res.layers[0].join("sparse")).unwrap();
    let mut want = vec![0u8; real as usize];
    want[..512].fill(b'A');
    want[4096..5120].fill(b'B');
    want[(1 << 20) + 100..(1 << 20) + 200].fill(b'C');
    assert!(got == want, "sparse content differs");
    assert_eq!(
        index_of(&res.layers[0])
            .get(b"sparse")
            .unwrap()
            .unwrap()
            .size(),
        real
    );
}

#[tokio::test]
async fn pax_sparse_files_are_refused_clearly() {
    // GNU tar's PAX sparse formats (0.x/1.0) keep the real name and map in GNU.sparse.*
    // records the tar crate does not apply: refused rather than extracted as a wrong file.
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .pax(&[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"real-name"),
                ("GNU.sparse.realsize", b"4096"),
            ])
            .file("GNUSparseFile.0/real-name", b"1\n0\n512\n", 0o644)
            .layer(),
    ]);
    let err = env.pull_err("fidelity/pax-sparse", &img).await;
    assert_eq!(err.kind(), ErrorKind::Extraction, "{err}");
    match &err {
        microsandbox_image::Error::Layer { source, .. } => {
            assert!(matches!(**source, LayerError::Tar { .. }), "{err}")
        }
        other => panic!("not a layer error: {other}"),
    }
    assert!(
        err.to_string()
            .contains("PAX-format sparse file (GNU.sparse.major) is not supported"),
        "{err}"
    );
}

#[tokio::test]
async fn repeated_paths_last_one_wins_like_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        // file → file
        .file("f", "first", 0o600)
        .file("f", "second", 0o644)
        // file → dir (with a child)
        .file("fd", "was a file", 0o644)
        .dir("fd", 0o750)
        .file("fd/child", "child", 0o644)
        // dir (with children) → file
        .dir("df", 0o755)
        .file("df/gone", "gone", 0o644)
        .dir("df/sub", 0o755)
        .file("df", "now a file", 0o640)
        // dir → dir: children kept, the last metadata applies (xattrs included)
        .dir("dd", 0o700)
        .xattr("dd", "user.first", b"1")
        .file("dd/kept", "kept", 0o644)
        .dir("dd", 0o751)
        .xattr("dd", "user.second", b"2")
        // symlink → file and file → symlink
        .symlink("sf", "target")
        .file("sf", "file now", 0o644)
        .file("fs", "file first", 0o644)
        .symlink("fs", "elsewhere"));
    let (res, _) = env.oracle("fidelity/repeat", &img).await;
    let fs = &res.layers[0];
    assert_eq!(std::fs::read(fs.join("f")).unwrap(), b"second");
    assert_eq!(ov(&fs.join("fd")).mode, mode::S_IFDIR | 0o750);
    assert_eq!(std::fs::read(fs.join("df")).unwrap(), b"now a file");
    assert!(!fs.join("df/gone").exists());
    assert_eq!(ov(&fs.join("dd")).mode, mode::S_IFDIR | 0o751);
    assert_eq!(xattr(&fs.join("dd"), "user.msb.xattr.user.first"), None);
    assert_eq!(
        xattr(&fs.join("dd"), "user.msb.xattr.user.second").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(std::fs::read(fs.join("dd/kept")).unwrap(), b"kept");
    assert_eq!(ov(&fs.join("fs")).mode & mode::S_IFMT, mode::S_IFLNK);
}

#[tokio::test]
async fn directory_entry_after_its_children_like_umoci() {
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .file("a/b/file", b"child", 0o644)
            .pax(&[("mtime", b"1500000000.25")])
            .dir("a/b", 0o710)
            .pax(&[("uid", b"42")])
            .dir("a", 0o750)
            .layer(),
    ]);
    let (res, _) = env.oracle("fidelity/dir-after", &img).await;
    let fs = &res.layers[0];
    assert_eq!(ov(&fs.join("a/b")).mode, mode::S_IFDIR | 0o710);
    assert_eq!(ov(&fs.join("a")).uid, 42);
    assert_eq!(std::fs::read(fs.join("a/b/file")).unwrap(), b"child");
    for d in ["a", "a/b"] {
        assert_eq!(xattr(&fs.join(d), IMPLICIT_DIR_XATTR), None, "{d}");
    }
    let md = std::fs::metadata(fs.join("a/b")).unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_500_000_000, 250_000_000));
    let idx = index_of(fs);
    assert!(!idx.get(b"a").unwrap().unwrap().is_implicit());
    assert_eq!(idx.get(b"a/b").unwrap().unwrap().mode() & 0o7777, 0o710);
}

#[tokio::test]
async fn implicit_parents_take_the_lower_layers_metadata_like_umoci() {
    let env = Env::start().await;
    let lower = LayerBuilder::new()
        .dir("x", 0o711)
        .file_owned("x/lower-file", "lower", 0o644, 7, 7)
        .build(Compression::Gzip);
    // `x` and `x/y` are not listed by the upper layer.
    let upper = LayerBuilder::new()
        .file("x/y/z", "upper", 0o644)
        .build(Compression::Gzip);
    let img = image(vec![lower, upper]);
    let (res, _) = env.oracle("fidelity/implicit", &img).await;
    let up = &res.layers[1];
    for d in ["x", "x/y"] {
        assert_eq!(
            xattr(&up.join(d), IMPLICIT_DIR_XATTR).as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(ov(&up.join(d)).mode, mode::S_IFDIR | 0o755, "placeholder");
    }
    let idx = index_of(up);
    assert!(idx.get(b"x").unwrap().unwrap().is_implicit());
    let s = stack(&res);
    let x = s.get(b"x").unwrap().unwrap();
    assert_eq!(
        x.mode() & 0o7777,
        0o711,
        "the merged view takes the lower layer's x"
    );
    assert!(s.get(b"x/lower-file").unwrap().is_some());
    assert_eq!(s.get(b"x/y/z").unwrap().unwrap().size(), 5);
}

#[tokio::test]
async fn setuid_setgid_sticky_bits_like_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", "su", 0o4755)
        .file("usr/bin/wall", "wall", 0o2755)
        .file("usr/bin/both", "both", 0o6711)
        .dir("tmp", 0o1777)
        .dir("shared", 0o2775));
    let (res, _) = env.oracle("fidelity/modes", &img).await;
    let fs = &res.layers[0];
    assert_eq!(ov(&fs.join("usr/bin/su")).mode, mode::S_IFREG | 0o4755);
    assert_eq!(ov(&fs.join("usr/bin/wall")).mode, mode::S_IFREG | 0o2755);
    assert_eq!(ov(&fs.join("usr/bin/both")).mode, mode::S_IFREG | 0o6711);
    assert_eq!(ov(&fs.join("tmp")).mode, mode::S_IFDIR | 0o1777);
    assert_eq!(ov(&fs.join("shared")).mode, mode::S_IFDIR | 0o2775);
    let host = std::fs::metadata(fs.join("usr/bin/su")).unwrap().mode() & 0o7777;
    assert_eq!(host, 0o600, "no setuid bit on the host");
}

#[tokio::test]
async fn whiteout_of_a_path_the_layer_also_adds() {
    // The OCI spec: a whiteout applies to lower layers only; an entry of the same layer is
    // hidden only by a later layer. So whichever order, the upper layer's own `w` and `v`
    // stay, and the lower ones are deleted (hidden) in the merged view.
    let env = Env::start().await;
    let lower = LayerBuilder::new()
        .file("w", "lower w", 0o644)
        .file("v", "lower v", 0o644)
        .file("keep", "keep", 0o644)
        .build(Compression::Gzip);
    let upper = LayerBuilder::new()
        .file("w", "upper w", 0o644)
        .whiteout("w") // after the entry
        .whiteout("v") // before the entry
        .file("v", "upper v", 0o644)
        .build(Compression::Gzip);
    let img = image(vec![lower, upper]);
    let res = env.pull("fidelity/wh-same", &img).await;
    let up = &res.layers[1];
    // No marker is stored: the layer's own `w` and `v` are there (only a whiteout of a
    // name the layer does not have leaves a marker file).
    assert!(!up.join(".wh.w").exists() && !up.join(".wh.v").exists());
    let s = stack(&res);
    for (p, want) in [("w", "upper w"), ("v", "upper v")] {
        let e = s.get(p.as_bytes()).unwrap().unwrap();
        assert_eq!(e.layer(), 1, "{p}");
        assert_eq!(std::fs::read(up.join(p)).unwrap(), want.as_bytes());
    }
    assert_eq!(s.get(b"keep").unwrap().unwrap().layer(), 0);
    // umoci reads the spec the same way.
    let diff = umoci_diff(&res, &img, "latest");
    assert!(diff.is_empty(), "{diff:#?}");
    println!(
        "fidelity/wh-same: {} entries compared with umoci",
        describe_pull(&res).len()
    );
}

#[tokio::test]
async fn whiteouts_inside_opaque_directories_like_umoci() {
    let env = Env::start().await;
    let lower = LayerBuilder::new()
        .dir("d", 0o755)
        .file("d/a", "a", 0o644)
        .file("d/b", "b", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/c", "c", 0o644)
        .dir("e", 0o755)
        .file("e/x", "x", 0o644)
        .build(Compression::Gzip);
    let upper = LayerBuilder::new()
        .dir("d", 0o755)
        .opaque("d")
        .whiteout("d/a") // redundant under the opaque marker
        .file("d/b", "new b", 0o644)
        .file("d/new", "new", 0o644)
        .dir("e", 0o755)
        .whiteout("e/x")
        .whiteout("e/never-existed")
        .build(Compression::Gzip);
    let img = image(vec![lower, upper]);
    let (res, n) = env.oracle("fidelity/opaque", &img).await;
    assert_eq!(n, 4, "d, d/b, d/new, e, and nothing else");
    let s = stack(&res);
    assert!(
        s.get(b"d/sub/c").unwrap().is_none()
            && s.get(b"d/a").unwrap().is_none()
            && s.get(b"e/x").unwrap().is_none()
    );
}

#[tokio::test]
async fn hardlink_to_a_file_later_replaced_keeps_the_old_content_like_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        .file("f", "old", 0o644)
        .hardlink("h", "f")
        .file("f", "new", 0o600));
    let (res, _) = env.oracle("fidelity/link-replaced", &img).await;
    let fs = &res.layers[0];
    assert_eq!(std::fs::read(fs.join("h")).unwrap(), b"old");
    assert_eq!(std::fs::read(fs.join("f")).unwrap(), b"new");
    let ino = |p: &str| std::fs::metadata(fs.join(p)).unwrap().ino();
    assert_ne!(ino("f"), ino("h"));
    let idx = index_of(fs);
    assert_eq!(idx.get(b"h").unwrap().unwrap().mode() & 0o7777, 0o644);
    assert_eq!(idx.get(b"f").unwrap().unwrap().nlink(), 1);
}

#[tokio::test]
async fn hardlink_chains_like_umoci() {
    let env = Env::start().await;
    let img = one(LayerBuilder::new()
        .file_owned("a", "shared", 0o750, 3, 4)
        .hardlink("b", "a")
        .hardlink("c", "b")
        .dir("sub", 0o755)
        .hardlink("sub/d", "c"));
    let (res, _) = env.oracle("fidelity/link-chain", &img).await;
    let fs = &res.layers[0];
    let ino = |p: &str| std::fs::metadata(fs.join(p)).unwrap().ino();
    assert!(["b", "c", "sub/d"].iter().all(|p| ino(p) == ino("a")));
    let idx = index_of(fs);
    let d = idx.get(b"sub/d").unwrap().unwrap();
    assert_eq!(
        (d.nlink(), d.uid(), d.gid(), d.mode() & 0o7777),
        (4, 3, 4, 0o750)
    );
}

#[tokio::test]
async fn old_style_directory_entries_like_umoci() {
    // A pre-POSIX header: type NUL and a name ending in `/` is a directory (GNU tar, Go);
    // type NUL without the slash is a regular file.
    let env = Env::start().await;
    let mut dir = raw_header(b"olddir/", None, EntryType::Directory, 0, 0o751);
    dir.as_old_mut().linkflag = [0];
    dir.set_cksum();
    let mut file = raw_header(b"olddir/file", None, EntryType::Regular, 2, 0o644);
    file.as_old_mut().linkflag = [0];
    file.set_cksum();
    let img = one(LayerBuilder::new()
        .raw_entry(dir, Vec::new())
        .raw_entry(file, b"ok".to_vec()));
    let (res, _) = env.oracle("fidelity/v7", &img).await;
    let fs = &res.layers[0];
    assert_eq!(ov(&fs.join("olddir")).mode, mode::S_IFDIR | 0o751);
    assert_eq!(std::fs::read(fs.join("olddir/file")).unwrap(), b"ok");
}

#[tokio::test]
async fn root_entry_and_dot_prefixed_names_like_umoci() {
    // `./` sets the layer root's metadata; `./x`, `x` and `.//x` are one path.
    let env = Env::start().await;
    let img = image(vec![
        Tar::new()
            .raw(
                &raw_header(b"./", None, EntryType::Directory, 0, 0o751),
                b"",
            )
            .raw(
                &raw_header(b"./etc/a", None, EntryType::Regular, 1, 0o644),
                b"1",
            )
            .raw(
                &raw_header(b".//etc//b", None, EntryType::Regular, 1, 0o644),
                b"2",
            )
            .raw(
                &raw_header(b"etc/./c/", None, EntryType::Directory, 0, 0o700),
                b"",
            )
            .layer(),
    ]);
    let (res, _) = env.oracle("fidelity/dots", &img).await;
    let fs = &res.layers[0];
    assert_eq!(std::fs::read(fs.join("etc/a")).unwrap(), b"1");
    assert_eq!(std::fs::read(fs.join("etc/b")).unwrap(), b"2");
    assert_eq!(ov(&fs.join("etc/c")).mode, mode::S_IFDIR | 0o700);
    assert_eq!(ov(fs).mode, mode::S_IFDIR | 0o751);
    assert!(!index_of(fs).get(b"").unwrap().unwrap().is_implicit());
}
