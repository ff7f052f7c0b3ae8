//! Hostile layers, each pushed as a real image to a real `docker-registry` and pulled: unsafe
//! paths, escapes through symlinks and hardlinks (containerd's own `TestBreakouts` table is
//! `breakouts.rs`), decompression bombs and limits, and corrupt streams.
//!
//! Every refused layer is checked the same way ([`Bench::refused`]): the error has the
//! expected kind and message; nothing was published (no layer directory for it, no image
//! record); `<cache>/tmp` holds no staging debris; and nothing outside the cache changed — a
//! sentinel `victim/` directory next to the cache, which the hostile entries aim at by
//! absolute and relative paths, is byte-for-byte as before.
//!
//! Names are read as containerd reads them: leading `/` and `..` above the root are dropped,
//! and paths through the layer's own symlinks are resolved inside the layer root (in our
//! format a symlink is a regular file holding its target, so the kernel never follows one).
//! So "escapes" are accepted when they land inside the layer ([`Bench::pulled`] checks that
//! nothing outside the cache changed) and refused when they name nothing the layer has.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use microsandbox_image::index::{EntryKind, LayerIndex, LayerStack};
use microsandbox_image::{Error, ErrorKind, ExtractLimits, LayerError, PullResult};
use msbimage_testkit::{Compression, Layer, LayerBuilder, raw_header, sha256_digest};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

mod common;
mod victim;
use victim::{Bench, UP_TO_BENCH, layer_error, small_limits};

fn layer(b: LayerBuilder) -> Layer {
    b.build(Compression::Gzip)
}

fn assert_unsafe(e: &Error, want_path: &str, want_reason: &str) {
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    match layer_error(e) {
        LayerError::UnsafePath { path, reason } => {
            assert!(path.contains(want_path), "path {path:?} in {e}");
            assert!(reason.contains(want_reason), "reason {reason:?} in {e}");
        }
        other => panic!("expected UnsafePath({want_reason}), got {other}"),
    }
}

fn assert_limit(e: &Error, want: &str) {
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    match layer_error(e) {
        LayerError::Limit {
            limit, value, max, ..
        } => {
            assert_eq!(*limit, want, "{e}");
            assert!(value > max, "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        other => panic!("expected limit {want}, got {other}"),
    }
}

fn assert_stream(e: &Error, want_detail: &str) {
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    match layer_error(e) {
        LayerError::Tar { detail } => assert!(detail.contains(want_detail), "{e}"),
        other => panic!("expected a bad stream ({want_detail}), got {other}"),
    }
}

/// A tar with one PAX header of `records` before a regular file `name` holding `content`.
fn pax_tar(records: &[(&str, &[u8])], name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(content.len() as u64);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

// ------------------------------------------------------------------ paths

/// The file at `rel` in the single layer of a pull.
fn inside(res: &PullResult, rel: &str) -> Vec<u8> {
    std::fs::read(res.layers[0].join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[tokio::test]
async fn absolute_names_land_inside_the_layer() {
    // GNU tar, containerd and umoci strip the leading `/`: `<victim>/pwned` is that path
    // under the layer root.
    let b = Bench::start().await;
    let name = format!("{}/pwned", b.victim_str());
    let l = layer(LayerBuilder::new().raw_entry(
        raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
        b"pwned".to_vec(),
    ));
    let res = b.pulled("paths/absolute", &[l], small_limits()).await;
    assert_eq!(inside(&res, name.trim_start_matches('/')), b"pwned");
}

#[tokio::test]
async fn dotdot_components_are_clamped_at_the_layer_root() {
    let b = Bench::start().await;
    for (i, name) in [
        format!("{UP_TO_BENCH}/victim/pwned"),
        format!("a/{UP_TO_BENCH}/../victim/pwned"),
    ]
    .iter()
    .enumerate()
    {
        let l = layer(LayerBuilder::new().dir("a", 0o755).raw_entry(
            raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
            b"pwned".to_vec(),
        ));
        let res = b
            .pulled(&format!("paths/dotdot{i}"), &[l], small_limits())
            .await;
        assert_eq!(inside(&res, "victim/pwned"), b"pwned", "{name}");
    }
}

#[tokio::test]
async fn non_directory_entries_naming_the_root_are_ignored() {
    // containerd skips every entry that resolves to its root; a directory entry there
    // gives the root its metadata.
    let b = Bench::start().await;
    let mut lb = LayerBuilder::new().dir("a", 0o755);
    for name in ["./", ".", "././.", "", "..", "a/..", "/"] {
        lb = lb.raw_entry(
            raw_header(name.as_bytes(), Some(b"/etc"), EntryType::Symlink, 0, 0o777),
            Vec::new(),
        );
        lb = lb.raw_entry(
            raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
            b"pwned".to_vec(),
        );
    }
    let res = b.pulled("paths/root", &[layer(lb)], small_limits()).await;
    let s = stack_of(&res);
    let names: Vec<Vec<u8>> = s.walk().map(|e| e.unwrap().0).collect();
    assert_eq!(names, [b"".to_vec(), b"a".to_vec()]);
    assert!(std::fs::symlink_metadata(&res.layers[0]).unwrap().is_dir());
}

#[tokio::test]
async fn nul_in_a_pax_path_is_refused() {
    let b = Bench::start().await;
    let evil = format!("ok\0{UP_TO_BENCH}/victim/pwned");
    let tar = pax_tar(&[("path", evil.as_bytes())], "placeholder", b"pwned");
    let e = b
        .refused(
            "paths/nul",
            &[Layer::from_tar(tar, Compression::Gzip)],
            small_limits(),
        )
        .await;
    assert_unsafe(&e, "ok", "NUL byte in path");
}

#[tokio::test]
async fn component_longer_than_255_bytes_is_refused() {
    let b = Bench::start().await;
    let name = format!("dir/{}", "n".repeat(256));
    let tar = pax_tar(&[("path", name.as_bytes())], "placeholder", b"x");
    let e = b
        .refused(
            "paths/namemax",
            &[Layer::from_tar(tar, Compression::Gzip)],
            small_limits(),
        )
        .await;
    assert_unsafe(&e, "dir/nnn", "longer than 255 bytes (NAME_MAX)");
}

#[tokio::test]
async fn path_longer_than_max_path_len_is_refused() {
    let b = Bench::start().await;
    let limits = ExtractLimits {
        max_path_len: 300,
        ..small_limits()
    };
    let name = format!("{}/{}", "a".repeat(200), "b".repeat(200));
    // As a PAX path (the path is checked) and as a GNU long name (refused before the tar
    // reader buffers it).
    let pax = pax_tar(&[("path", name.as_bytes())], "placeholder", b"x");
    let e = b
        .refused(
            "paths/long-pax",
            &[Layer::from_tar(pax, Compression::Gzip)],
            limits,
        )
        .await;
    assert_limit(&e, "max_path_len");
    let gnu = LayerBuilder::new()
        .file(&name, "x", 0o644)
        .build(Compression::Gzip);
    let e = b.refused("paths/long-gnu", &[gnu], limits).await;
    assert_limit(&e, "max_path_len");
}

#[tokio::test]
async fn depth_beyond_max_depth_is_refused() {
    let b = Bench::start().await;
    let deep = (0..9)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let l = layer(LayerBuilder::new().file(&deep, "deep", 0o644));
    let e = b.refused("paths/deep", &[l], small_limits()).await;
    assert_limit(&e, "max_depth");
    assert!(e.to_string().contains("9 > 8"), "{e}");
}

#[tokio::test]
async fn unicode_and_invalid_utf8_names_are_kept_byte_exact() {
    let b = Bench::start().await;
    let invalid: &[u8] = b"bad-\xff\xfe-name";
    let l = layer(
        LayerBuilder::new()
            .file("caf\u{e9}/\u{1f980}.txt", "unicode", 0o644)
            .raw_entry(
                raw_header(invalid, None, EntryType::Regular, 4, 0o644),
                b"raw!".to_vec(),
            ),
    );
    b.push("paths/bytes", &[l]).await;
    let res = b.pull("paths/bytes", small_limits()).await.expect("pull");
    let fs = &res.layers[0];
    assert_eq!(
        std::fs::read(fs.join("caf\u{e9}/\u{1f980}.txt")).unwrap(),
        b"unicode"
    );
    let raw = fs.join(std::ffi::OsStr::from_bytes(invalid));
    assert_eq!(std::fs::read(&raw).unwrap(), b"raw!");
    let names: Vec<Vec<u8>> = std::fs::read_dir(fs)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    assert!(names.contains(&invalid.to_vec()), "{names:?}");
    let index = LayerIndex::open(fs.parent().unwrap().join("index")).unwrap();
    assert_eq!(index.get(invalid).unwrap().unwrap().size(), 4);
    assert_eq!(
        index
            .get("caf\u{e9}/\u{1f980}.txt".as_bytes())
            .unwrap()
            .unwrap()
            .size(),
        7
    );
}

// ------------------------------------------------------------------ escapes

/// Pull one layer whose last entry writes `path` (content `pwned`) and return the result.
async fn write_through(b: &Bench, repo: &str, steps: LayerBuilder, path: &str) -> PullResult {
    let l = layer(steps.file(path, "pwned", 0o644));
    b.pulled(repo, &[l], small_limits()).await
}

#[tokio::test]
async fn writes_through_an_absolute_symlink_land_inside_the_layer() {
    // `link -> <victim>` then `link/pwned`: resolved inside the layer root, as containerd
    // resolves it, so the file is `<victim without its leading />/pwned` of the layer.
    let b = Bench::start().await;
    let steps = LayerBuilder::new().symlink("link", &b.victim_str());
    let res = write_through(&b, "escape/abs", steps, "link/pwned").await;
    let at = format!("{}/pwned", b.victim_str());
    assert_eq!(inside(&res, at.trim_start_matches('/')), b"pwned");
    let s = stack_of(&res);
    assert_eq!(s.get(b"link").unwrap().unwrap().kind(), EntryKind::Symlink);
}

#[tokio::test]
async fn writes_through_a_relative_symlink_stop_at_the_layer_root() {
    let b = Bench::start().await;
    let steps = LayerBuilder::new().symlink("link", &format!("{UP_TO_BENCH}/victim"));
    let res = write_through(&b, "escape/rel", steps, "link/pwned").await;
    assert_eq!(inside(&res, "victim/pwned"), b"pwned");
}

#[tokio::test]
async fn writes_through_a_symlink_chain_land_inside_the_layer() {
    let b = Bench::start().await;
    let steps = LayerBuilder::new()
        .symlink("a", "b")
        .symlink("b", "c")
        .symlink("c", &format!("{UP_TO_BENCH}/victim"));
    let res = write_through(&b, "escape/chain", steps, "a/pwned").await;
    assert_eq!(inside(&res, "victim/pwned"), b"pwned");
}

#[tokio::test]
async fn mkdir_through_a_symlink_lands_inside_the_layer() {
    let b = Bench::start().await;
    let l = layer(
        LayerBuilder::new()
            .symlink("d", &b.victim_str())
            .dir("d/sub", 0o755),
    );
    let res = b.pulled("escape/mkdir", &[l], small_limits()).await;
    let at = format!("{}/sub", b.victim_str());
    assert!(res.layers[0].join(at.trim_start_matches('/')).is_dir());
}

#[tokio::test]
async fn a_symlink_loop_is_refused() {
    let b = Bench::start().await;
    let l = layer(
        LayerBuilder::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", "x", 0o644),
    );
    let e = b.refused("escape/loop", &[l], small_limits()).await;
    assert_unsafe(&e, "a/x", "more than 255 symlinks");
}

#[tokio::test]
async fn symlink_replaced_by_a_directory_and_back_is_contained() {
    // symlink → directory (with a child) → symlink again: the last entry wins each time and
    // the final `x` is a symlink file; a write through it afterwards lands inside the layer.
    let b = Bench::start().await;
    let steps = LayerBuilder::new()
        .symlink("x", &b.victim_str())
        .dir("x", 0o755)
        .file("x/inside", "inside", 0o644)
        .symlink("x", &b.victim_str());
    let res = b
        .pulled("escape/flip", &[layer(steps.clone())], small_limits())
        .await;
    let x = res.layers[0].join("x");
    assert!(std::fs::symlink_metadata(&x).unwrap().is_file());
    assert_eq!(std::fs::read(&x).unwrap(), b.victim_str().as_bytes());
    let stack = stack_of(&res);
    assert_eq!(stack.get(b"x").unwrap().unwrap().kind(), EntryKind::Symlink);
    assert!(stack.get(b"x/inside").unwrap().is_none());
    let res = write_through(&b, "escape/flip-write", steps, "x/pwned").await;
    let at = format!("{}/pwned", b.victim_str());
    assert_eq!(inside(&res, at.trim_start_matches('/')), b"pwned");
}

#[tokio::test]
async fn hardlinks_to_absolute_or_dotdot_targets_resolve_inside_the_layer() {
    // `<victim>/keep` and `../../../../victim/keep` name paths of the layer, which has no
    // such entry: refused, and the victim's file gains no link.
    let b = Bench::start().await;
    let keep = format!("{}/keep", b.victim_str());
    let nlink = std::fs::metadata(&keep).unwrap().nlink();
    for (i, target) in [keep.clone(), format!("{UP_TO_BENCH}/victim/keep")]
        .iter()
        .enumerate()
    {
        let l = layer(LayerBuilder::new().raw_entry(
            raw_header(b"x", Some(target.as_bytes()), EntryType::Link, 0, 0o644),
            Vec::new(),
        ));
        let e = b
            .refused(&format!("escape/hardlink{i}"), &[l], small_limits())
            .await;
        assert_unsafe(&e, "x -> ", "not an earlier entry of this layer");
    }
    assert_eq!(std::fs::metadata(&keep).unwrap().nlink(), nlink);
}

#[tokio::test]
async fn hardlink_through_a_symlink_to_the_host_is_refused() {
    // `l -> /etc`, then hardlink `x` → `l/passwd`: that is `etc/passwd` of the layer, which
    // has none; the host's /etc/passwd is never reached.
    let b = Bench::start().await;
    let passwd_links = std::fs::metadata("/etc/passwd").unwrap().nlink();
    let l = layer(
        LayerBuilder::new()
            .symlink("l", "/etc")
            .hardlink("x", "l/passwd"),
    );
    let e = b.refused("escape/hardlink-sym", &[l], small_limits()).await;
    assert_unsafe(&e, "x -> l/passwd", "not an earlier entry of this layer");
    assert_eq!(
        std::fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd_links
    );
}

#[tokio::test]
async fn hardlink_to_a_missing_or_directory_target_is_refused() {
    let b = Bench::start().await;
    let missing = layer(LayerBuilder::new().hardlink("x", "nowhere"));
    let e = b
        .refused("escape/link-missing", &[missing], small_limits())
        .await;
    assert_unsafe(
        &e,
        "x -> nowhere",
        "hardlink target is not an earlier entry of this layer",
    );
    let dir = layer(LayerBuilder::new().dir("d", 0o755).hardlink("x", "d"));
    let e = b.refused("escape/link-dir", &[dir], small_limits()).await;
    assert_unsafe(&e, "x -> d", "hardlink to a directory");
}

#[tokio::test]
async fn symlink_with_an_unusable_target_is_refused() {
    // Targets the kernel could not hold as a symlink: empty, with a NUL (via PAX linkpath).
    let b = Bench::start().await;
    let empty = layer(LayerBuilder::new().raw_entry(
        raw_header(b"s", Some(b""), EntryType::Symlink, 0, 0o777),
        Vec::new(),
    ));
    let e = b
        .refused("escape/link-empty", &[empty], small_limits())
        .await;
    assert_unsafe(&e, "s", "empty symlink target");

    let mut t = tar::Builder::new(Vec::new());
    t.append_pax_extensions([("linkpath", &b"/etc\0/passwd"[..])])
        .unwrap();
    let h = raw_header(b"s", Some(b"placeholder"), EntryType::Symlink, 0, 0o777);
    t.append(&h, &[][..]).unwrap();
    let nul = Layer::from_tar(t.into_inner().unwrap(), Compression::Gzip);
    let e = b.refused("escape/link-nul", &[nul], small_limits()).await;
    assert_unsafe(&e, "s", "NUL byte in symlink target");
}

fn stack_of(res: &PullResult) -> LayerStack {
    LayerStack::new(
        res.layers
            .iter()
            .map(|fs| LayerIndex::open(fs.parent().unwrap().join("index")).unwrap())
            .collect(),
    )
}

// ------------------------------------------------------------------ bombs and limits

/// A tar of `files` files of `each` zero bytes, compressed as it is made (never held whole):
/// returns the layer (diff_id of the full tar) and the tar's length.
fn zero_bomb(c: Compression, files: u64, each: u64) -> (Layer, u64) {
    struct Tee<W: std::io::Write> {
        out: W,
        hash: Sha256,
        len: u64,
    }
    impl<W: std::io::Write> std::io::Write for Tee<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.out.write(b)?;
            self.hash.update(&b[..n]);
            self.len += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.out.flush()
        }
    }
    fn fill<W: std::io::Write>(w: &mut Tee<W>, files: u64, each: u64) {
        let zeros = vec![0u8; 1 << 20];
        for i in 0..files {
            let mut h = tar::Header::new_gnu();
            h.set_path(format!("zero-{i}")).unwrap();
            h.set_entry_type(EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(each);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            w.write_all(h.as_bytes()).unwrap();
            let mut left = each;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                w.write_all(&zeros[..n as usize]).unwrap();
                left -= n;
            }
            let pad = (512 - each % 512) % 512;
            w.write_all(&zeros[..pad as usize]).unwrap();
        }
        w.write_all(&zeros[..1024]).unwrap();
    }
    let (blob, diff, len) = match c {
        Compression::Gzip => {
            let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let mut t = Tee {
                out: enc,
                hash: Sha256::new(),
                len: 0,
            };
            fill(&mut t, files, each);
            let blob = t.out.finish().unwrap();
            (blob, t.hash.finalize(), t.len)
        }
        Compression::Zstd => {
            let enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            let mut t = Tee {
                out: enc,
                hash: Sha256::new(),
                len: 0,
            };
            fill(&mut t, files, each);
            let blob = t.out.finish().unwrap();
            (blob, t.hash.finalize(), t.len)
        }
        Compression::None => unreachable!("bombs are compressed"),
    };
    let layer = Layer {
        tar: Vec::new(), // never materialised
        media_type: c.media_type().to_string(),
        digest: sha256_digest(&blob),
        diff_id: format!("sha256:{}", hex::encode(diff)),
        blob,
    };
    (layer, len)
}

#[tokio::test]
async fn gzip_bomb_stops_at_max_file_size() {
    // One file of 1 GiB of zeros (about 1 MiB of gzip) against a 16 MiB max_file_size: the
    // header alone is refused, before any of it is inflated.
    let b = Bench::start().await;
    let (l, tar_len) = tokio::task::spawn_blocking(|| zero_bomb(Compression::Gzip, 1, 1 << 30))
        .await
        .unwrap();
    assert!(
        tar_len > 1 << 30 && l.blob.len() < 2 << 20,
        "{}",
        l.blob.len()
    );
    let e = b.refused("bombs/gzip-one", &[l], small_limits()).await;
    assert_limit(&e, "max_file_size");
    assert!(e.to_string().contains("1073741824 > 16777216"), "{e}");
}

#[tokio::test]
async fn gzip_bomb_stops_at_max_total_bytes() {
    // 64 files of 16 MiB of zeros (1 GiB) against max_total_bytes = 64 MiB: the fifth file
    // crosses it; the stream is abandoned there.
    let b = Bench::start().await;
    let (l, _) = tokio::task::spawn_blocking(|| zero_bomb(Compression::Gzip, 64, 16 << 20))
        .await
        .unwrap();
    let e = b.refused("bombs/gzip-many", &[l], small_limits()).await;
    assert_limit(&e, "max_total_bytes");
    assert!(e.to_string().contains("zero-4"), "{e}");
}

#[tokio::test]
async fn zstd_bomb_stops_at_the_limits() {
    let b = Bench::start().await;
    let (one, _) = tokio::task::spawn_blocking(|| zero_bomb(Compression::Zstd, 1, 1 << 30))
        .await
        .unwrap();
    assert!(one.blob.len() < 2 << 20, "{}", one.blob.len());
    let e = b.refused("bombs/zstd-one", &[one], small_limits()).await;
    assert_limit(&e, "max_file_size");
    let (many, _) = tokio::task::spawn_blocking(|| zero_bomb(Compression::Zstd, 64, 16 << 20))
        .await
        .unwrap();
    let e = b.refused("bombs/zstd-many", &[many], small_limits()).await;
    assert_limit(&e, "max_total_bytes");
}

#[tokio::test]
async fn gnu_long_name_bomb_is_refused_before_it_is_buffered() {
    // A GNU long-name entry claiming 1 GiB (zeros, ~1 MiB of gzip): the tar crate would read
    // it whole into memory; the guard under it refuses it by max_path_len first.
    let b = Bench::start().await;
    let l = tokio::task::spawn_blocking(|| {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(1 << 30);
        h.set_mode(0o644);
        h.set_cksum();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(h.as_bytes()).unwrap();
        let zeros = vec![b'a'; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        let blob = enc.finish().unwrap();
        Layer {
            tar: Vec::new(),
            media_type: Compression::Gzip.media_type().to_string(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(b"never computed"),
            blob,
        }
    })
    .await
    .unwrap();
    let e = b.refused("bombs/longname", &[l], small_limits()).await;
    assert_limit(&e, "max_path_len");
    assert!(e.to_string().contains("1073741824 > 4096"), "{e}");
    // No path: the guard refused the header; had the tar crate buffered the name, the path
    // check would have refused it later, naming the (1 GiB) path.
    assert!(
        matches!(layer_error(&e), LayerError::Limit { path: None, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn pax_header_bomb_is_refused_before_it_is_buffered() {
    let b = Bench::start().await;
    let l = tokio::task::spawn_blocking(|| {
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").unwrap();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(1 << 30);
        h.set_mode(0o644);
        h.set_cksum();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(h.as_bytes()).unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&chunk).unwrap();
        }
        let blob = enc.finish().unwrap();
        Layer {
            tar: Vec::new(),
            media_type: Compression::Gzip.media_type().to_string(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(b"never computed"),
            blob,
        }
    })
    .await
    .unwrap();
    let e = b.refused("bombs/pax", &[l], small_limits()).await;
    assert_stream(&e, "PAX extended header of 1073741824 bytes");
}

#[tokio::test]
async fn huge_size_with_a_short_body_is_an_error() {
    // The header claims 512 MiB, the stream ends after 10 bytes (and the end blocks).
    let b = Bench::start().await;
    let mut tar = raw_header(b"short", None, EntryType::Regular, 512 << 20, 0o644)
        .as_bytes()
        .to_vec();
    tar.extend_from_slice(b"0123456789");
    tar.resize(tar.len() + 1024 - 10, 0);
    let l = Layer::from_tar(tar, Compression::Gzip);
    let limits = ExtractLimits {
        max_file_size: 1 << 30,
        max_total_bytes: 1 << 30,
        ..small_limits()
    };
    let e = b.refused("bombs/short", &[l], limits).await;
    assert_stream(&e, "unexpected end of archive in \"short\"");
}

#[tokio::test]
async fn more_entries_than_max_entries_is_refused() {
    let b = Bench::start().await;
    let mut lb = LayerBuilder::new();
    for i in 0..101 {
        lb = lb.file(&format!("f{i}"), "", 0o644);
    }
    let e = b
        .refused("limits/entries", &[layer(lb)], small_limits())
        .await;
    assert_limit(&e, "max_entries");
    assert!(e.to_string().contains("101 > 100"), "{e}");
}

// ------------------------------------------------------------------ corruption

fn corrupt(blob: Vec<u8>, c: Compression, diff_id: &str) -> Layer {
    Layer {
        tar: Vec::new(),
        media_type: c.media_type().to_string(),
        digest: sha256_digest(&blob),
        diff_id: diff_id.to_string(),
        blob,
    }
}

fn some_tar() -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/data", vec![7u8; 200_000], 0o644)
        .file("etc/more", "more", 0o644)
        .tar_bytes()
}

#[tokio::test]
async fn truncated_gzip_is_an_error() {
    let b = Bench::start().await;
    let tar = some_tar();
    let gz = Compression::Gzip.compress(&tar);
    let l = corrupt(
        gz[..gz.len() / 2].to_vec(),
        Compression::Gzip,
        &sha256_digest(&tar),
    );
    let e = b.refused("corrupt/gzip", &[l], small_limits()).await;
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    assert!(matches!(layer_error(&e), LayerError::Tar { .. }), "{e}");
    assert!(e.to_string().contains("bad layer stream"), "{e}");
}

#[tokio::test]
async fn truncated_zstd_is_an_error() {
    let b = Bench::start().await;
    let tar = some_tar();
    let zs = Compression::Zstd.compress(&tar);
    let l = corrupt(
        zs[..zs.len() / 2].to_vec(),
        Compression::Zstd,
        &sha256_digest(&tar),
    );
    let e = b.refused("corrupt/zstd", &[l], small_limits()).await;
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    assert!(matches!(layer_error(&e), LayerError::Tar { .. }), "{e}");
}

#[tokio::test]
async fn truncated_plain_tar_is_an_error() {
    let b = Bench::start().await;
    let tar = some_tar();
    // Cut inside etc/data's body, and inside a header.
    let in_body = corrupt(
        tar[..100_000].to_vec(),
        Compression::None,
        &sha256_digest(&tar),
    );
    let e = b
        .refused("corrupt/tar-body", &[in_body], small_limits())
        .await;
    assert_stream(&e, "unexpected end of archive in \"etc/data\"");
    let header_at = tar.len() - 1024 - 512 - 512; // etc/more's header
    let in_header = corrupt(
        tar[..header_at + 100].to_vec(),
        Compression::None,
        &sha256_digest(&tar),
    );
    let e = b
        .refused("corrupt/tar-header", &[in_header], small_limits())
        .await;
    assert_stream(&e, "failed to read entire block");
}

#[tokio::test]
async fn wrong_header_checksum_is_an_error() {
    let b = Bench::start().await;
    let mut tar = some_tar();
    tar[0] ^= 0x20; // "etc/" → "Etc/" without fixing the checksum
    let l = Layer::from_tar(tar, Compression::Gzip);
    let e = b.refused("corrupt/checksum", &[l], small_limits()).await;
    assert_stream(&e, "checksum mismatch");
}

#[tokio::test]
async fn trailing_garbage_after_the_gzip_stream_is_an_error() {
    let b = Bench::start().await;
    let tar = some_tar();
    let mut gz = Compression::Gzip.compress(&tar);
    gz.extend_from_slice(b"this is not a gzip member, just garbage after the stream");
    let l = corrupt(gz, Compression::Gzip, &sha256_digest(&tar));
    let e = b.refused("corrupt/trailing", &[l], small_limits()).await;
    assert_eq!(e.kind(), ErrorKind::Extraction, "{e}");
    assert!(matches!(layer_error(&e), LayerError::Tar { .. }), "{e}");
}
