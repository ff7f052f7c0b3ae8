//! Hostile layers, each pushed as a real image to a real `docker-registry` and pulled: unsafe
//! paths, escapes through symlinks and hardlinks (containerd's `TestBreakouts` table
//! re-expressed for our format), decompression bombs and limits, and corrupt streams.
//!
//! Every refused layer is checked the same way ([`Bench::refused`]): the error has the
//! expected kind and message; nothing was published (no layer directory for it, no image
//! record); `<cache>/tmp` holds no staging debris; and nothing outside the cache changed — a
//! sentinel `victim/` directory next to the cache, which the hostile entries aim at by
//! absolute and relative paths, is byte-for-byte as before.
//!
//! In our format a symlink is a regular file holding its target, so no write can follow
//! one: a path through a symlink fails with "a parent directory is a non-directory entry of
//! this layer" instead of being resolved inside the root as containerd does.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use microsandbox_image::index::{EntryKind, LayerIndex, LayerStack};
use microsandbox_image::{
    Error, ErrorKind, ExtractLimits, GlobalCache, LayerError, Platform, PullOptions, PullResult,
    Registry,
};
use msbimage_testkit::{
    Compression, ImageBuilder, Layer, LayerBuilder, Pusher, Registry as TestRegistry,
    RegistryOptions, raw_header, sha256_digest,
};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

const VICTIM_FILE: &[u8] = b"the victim's own content\n";
/// From a layer's `fs/` (`<bench>/cache/tmp/layer-…/fs`) up to `<bench>`.
const UP_TO_BENCH: &str = "../../../..";

/// A registry, a cache and a victim directory beside it.
struct Bench {
    registry: TestRegistry,
    dir: tempfile::TempDir,
}

/// What a path looked like: kind, permission bits, size and content hash (or link target).
type Snapshot = BTreeMap<PathBuf, (char, u32, u64, String)>;

fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("under root").to_owned();
            let perm = md.permissions().mode() & 0o7777;
            let entry = if md.is_dir() {
                walk(root, &p, out);
                ('d', perm, 0, String::new())
            } else if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                ('l', perm, 0, t.to_string_lossy().into_owned())
            } else {
                let bytes = std::fs::read(&p).expect("read");
                ('f', perm, md.len(), hex::encode(Sha256::digest(&bytes)))
            };
            out.insert(rel, entry);
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn small_limits() -> ExtractLimits {
    ExtractLimits {
        max_entries: 100,
        max_total_bytes: 64 << 20,
        max_file_size: 16 << 20,
        max_depth: 8,
        max_path_len: 4096,
    }
}

/// The `LayerError` inside a pull error.
fn layer_error(e: &Error) -> &LayerError {
    match e {
        Error::Layer { source, .. } => source,
        other => panic!("not a layer error: {other}"),
    }
}

impl Bench {
    async fn start() -> Bench {
        let registry = TestRegistry::start(RegistryOptions::plain())
            .await
            .expect("start docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::create_dir_all(victim.join("etc")).unwrap();
        std::fs::write(victim.join("keep"), VICTIM_FILE).unwrap();
        std::fs::write(victim.join("etc/passwd"), VICTIM_FILE).unwrap();
        std::fs::write(victim.join("perm400"), VICTIM_FILE).unwrap();
        std::fs::set_permissions(
            victim.join("perm400"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("cache")).unwrap();
        Bench { registry, dir }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The sentinel directory, as an absolute path (hostile entries aim at it).
    fn victim(&self) -> PathBuf {
        self.dir.path().join("victim")
    }

    fn victim_str(&self) -> String {
        self.victim().to_string_lossy().into_owned()
    }

    async fn push(&self, repo: &str, layers: &[Layer]) {
        let mut b = ImageBuilder::new("linux", "amd64");
        for l in layers {
            b = b.layer(l.clone());
        }
        Pusher::new(&self.registry.base_url())
            .push_image(repo, "latest", &b.build())
            .await
            .expect("push");
    }

    async fn pull(&self, repo: &str, limits: ExtractLimits) -> Result<PullResult, Error> {
        let cache = GlobalCache::new(self.cache_dir()).expect("cache");
        let registry = Registry::builder(Platform::new("linux", "amd64"), cache)
            .durable(false)
            .limits(limits)
            .build()
            .expect("registry");
        let reference = format!("{}/{repo}:latest", self.registry.host())
            .parse()
            .expect("reference");
        registry.pull(&reference, &PullOptions::default()).await
    }

    /// Push `layers` as `repo`, pull, and check the pull failed on the last layer leaving
    /// nothing behind: returns the error. Earlier layers may be published (they are valid).
    async fn refused(&self, repo: &str, layers: &[Layer], limits: ExtractLimits) -> Error {
        self.push(repo, layers).await;
        let outside_before = self.outside_cache();
        let layers_before = names_in(&self.cache_dir().join("layers/sha256"));
        let images_before = names_in(&self.cache_dir().join("images"));
        let err = self
            .pull(repo, limits)
            .await
            .err()
            .unwrap_or_else(|| panic!("{repo}: the pull succeeded"));
        let hostile = layers.last().expect("a layer");
        let published = names_in(&self.cache_dir().join("layers/sha256"));
        assert!(
            !published
                .iter()
                .any(|d| hostile.diff_id.ends_with(d.as_str())),
            "{repo}: the hostile layer was published ({err})"
        );
        for new in published.iter().filter(|d| !layers_before.contains(d)) {
            assert!(
                layers[..layers.len() - 1]
                    .iter()
                    .any(|l| l.diff_id.ends_with(new.as_str())),
                "{repo}: {new} published ({err})"
            );
        }
        assert!(
            names_in(&self.cache_dir().join("tmp")).is_empty(),
            "{repo}: staging debris {:?} ({err})",
            names_in(&self.cache_dir().join("tmp"))
        );
        assert_eq!(
            names_in(&self.cache_dir().join("images")),
            images_before,
            "{repo}: an image record was written ({err})"
        );
        assert_eq!(
            self.outside_cache(),
            outside_before,
            "{repo}: something outside the cache changed ({err})"
        );
        err
    }

    /// Everything under the bench directory but the cache (the victim, and anything a
    /// `../` could have reached).
    fn outside_cache(&self) -> Snapshot {
        snapshot(self.dir.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("cache"))
            .collect()
    }
}

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

const NOT_A_DIR: &str = "non-directory entry of this layer";

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

#[tokio::test]
async fn absolute_path_into_the_victim_is_refused() {
    let b = Bench::start().await;
    let name = format!("{}/pwned", b.victim_str());
    let l = layer(LayerBuilder::new().raw_entry(
        raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
        b"pwned".to_vec(),
    ));
    let e = b.refused("paths/absolute", &[l], small_limits()).await;
    assert_unsafe(&e, "/pwned", "absolute path");
}

#[tokio::test]
async fn dotdot_components_are_refused_leading_middle_trailing() {
    let b = Bench::start().await;
    for (i, name) in [
        format!("{UP_TO_BENCH}/victim/pwned"),
        format!("a/{UP_TO_BENCH}/../victim/pwned"),
        "a/..".to_string(),
        "..".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let l = layer(LayerBuilder::new().dir("a", 0o755).raw_entry(
            raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
            b"pwned".to_vec(),
        ));
        let e = b
            .refused(&format!("paths/dotdot{i}"), &[l], small_limits())
            .await;
        assert_unsafe(&e, name, "`..` component");
    }
}

#[tokio::test]
async fn dot_only_file_entry_is_refused() {
    let b = Bench::start().await;
    for (i, name) in ["./", ".", "././."].iter().enumerate() {
        let l = layer(LayerBuilder::new().raw_entry(
            raw_header(name.as_bytes(), None, EntryType::Regular, 5, 0o644),
            b"pwned".to_vec(),
        ));
        let e = b
            .refused(&format!("paths/dot{i}"), &[l], small_limits())
            .await;
        assert_unsafe(&e, name, "non-directory entry for the layer root");
    }
}

#[tokio::test]
async fn empty_name_is_refused() {
    let b = Bench::start().await;
    let l = layer(LayerBuilder::new().raw_entry(
        raw_header(b"", None, EntryType::Regular, 5, 0o644),
        b"pwned".to_vec(),
    ));
    let e = b.refused("paths/empty", &[l], small_limits()).await;
    assert_unsafe(&e, "", "empty path");
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

#[tokio::test]
async fn symlink_then_write_through_it() {
    // `link -> <victim>` then `link/pwned`: the symlink is a plain file here, so the write
    // has no directory to go into and the layer is refused.
    let b = Bench::start().await;
    let l = layer(LayerBuilder::new().symlink("link", &b.victim_str()).file(
        "link/pwned",
        "pwned",
        0o644,
    ));
    let e = b
        .refused("escape/symlink-write", &[l], small_limits())
        .await;
    assert_unsafe(&e, "link/pwned", NOT_A_DIR);
}

#[tokio::test]
async fn relative_symlink_then_write_through_it() {
    let b = Bench::start().await;
    let l = layer(
        LayerBuilder::new()
            .symlink("link", &format!("{UP_TO_BENCH}/victim"))
            .file("link/pwned", "pwned", 0o644),
    );
    let e = b.refused("escape/rel-symlink", &[l], small_limits()).await;
    assert_unsafe(&e, "link/pwned", NOT_A_DIR);
}

#[tokio::test]
async fn symlink_chain_then_write_through_it() {
    let b = Bench::start().await;
    let l = layer(
        LayerBuilder::new()
            .symlink("a", "b")
            .symlink("b", "c")
            .symlink("c", &b.victim_str())
            .file("a/pwned", "pwned", 0o644),
    );
    let e = b.refused("escape/chain", &[l], small_limits()).await;
    assert_unsafe(&e, "a/pwned", NOT_A_DIR);
}

#[tokio::test]
async fn symlink_then_mkdir_through_it() {
    let b = Bench::start().await;
    let l = layer(
        LayerBuilder::new()
            .symlink("d", &b.victim_str())
            .dir("d/sub", 0o755),
    );
    let e = b.refused("escape/mkdir", &[l], small_limits()).await;
    assert_unsafe(&e, "d/sub", NOT_A_DIR);
}

#[tokio::test]
async fn symlink_replaced_by_a_directory_and_back_is_contained() {
    // symlink → directory (with a child) → symlink again: the last entry wins each time and
    // the final `x` is a symlink file; a write through it afterwards is refused.
    let b = Bench::start().await;
    let steps = LayerBuilder::new()
        .symlink("x", &b.victim_str())
        .dir("x", 0o755)
        .file("x/inside", "inside", 0o644)
        .symlink("x", &b.victim_str());
    b.push("escape/flip", &[layer(steps.clone())]).await;
    let res = b.pull("escape/flip", small_limits()).await.expect("pull");
    let x = res.layers[0].join("x");
    assert!(std::fs::symlink_metadata(&x).unwrap().is_file());
    assert_eq!(std::fs::read(&x).unwrap(), b.victim_str().as_bytes());
    let stack = stack_of(&res);
    assert_eq!(stack.get(b"x").unwrap().unwrap().kind(), EntryKind::Symlink);
    assert!(stack.get(b"x/inside").unwrap().is_none());
    let e = b
        .refused(
            "escape/flip-write",
            &[layer(steps.file("x/pwned", "pwned", 0o644))],
            small_limits(),
        )
        .await;
    assert_unsafe(&e, "x/pwned", NOT_A_DIR);
}

#[tokio::test]
async fn hardlink_to_an_absolute_target_is_refused() {
    let b = Bench::start().await;
    let target = format!("{}/keep", b.victim_str());
    let nlink = std::fs::metadata(&target).unwrap().nlink();
    let l = layer(LayerBuilder::new().raw_entry(
        raw_header(b"x", Some(target.as_bytes()), EntryType::Link, 0, 0o644),
        Vec::new(),
    ));
    let e = b.refused("escape/hardlink-abs", &[l], small_limits()).await;
    assert_unsafe(&e, "/keep", "absolute path");
    assert_eq!(std::fs::metadata(&target).unwrap().nlink(), nlink);
}

#[tokio::test]
async fn hardlink_to_a_dotdot_target_is_refused() {
    let b = Bench::start().await;
    let target = format!("{UP_TO_BENCH}/victim/keep");
    let l = layer(LayerBuilder::new().raw_entry(
        raw_header(b"x", Some(target.as_bytes()), EntryType::Link, 0, 0o644),
        Vec::new(),
    ));
    let e = b.refused("escape/hardlink-up", &[l], small_limits()).await;
    assert_unsafe(&e, "victim/keep", "`..` component");
}

#[tokio::test]
async fn hardlink_through_a_symlink_is_refused() {
    // `l -> /etc`, then hardlink `x` → `l/passwd`: the target's parent is a symlink file.
    let b = Bench::start().await;
    let passwd_links = std::fs::metadata("/etc/passwd").unwrap().nlink();
    let l = layer(
        LayerBuilder::new()
            .symlink("l", "/etc")
            .hardlink("x", "l/passwd"),
    );
    let e = b.refused("escape/hardlink-sym", &[l], small_limits()).await;
    assert_unsafe(&e, "x -> l/passwd", "non-directory entry of this layer");
    assert_eq!(
        std::fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd_links
    );
}

#[tokio::test]
async fn symlink_named_dotdot_is_refused() {
    let b = Bench::start().await;
    for (i, name) in ["..", "a/..", "../.."].iter().enumerate() {
        let l = layer(LayerBuilder::new().dir("a", 0o755).raw_entry(
            raw_header(
                name.as_bytes(),
                Some(b.victim_str().as_bytes()),
                EntryType::Symlink,
                0,
                0o777,
            ),
            Vec::new(),
        ));
        let e = b
            .refused(&format!("escape/dotdot-link{i}"), &[l], small_limits())
            .await;
        assert_unsafe(&e, name, "`..` component");
    }
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

#[tokio::test]
async fn whiteout_name_used_as_a_parent_is_refused() {
    // containerd's WhiteoutDirectoryName: `.wh.etc/somefile`. A `.wh.` name is a marker, not
    // a directory; refusing it keeps the extracted tree and the index in agreement.
    let b = Bench::start().await;
    let l = layer(LayerBuilder::new().file(".wh.etc/somefile", "non-empty", 0o644));
    let e = b.refused("escape/wh-parent", &[l], small_limits()).await;
    assert_unsafe(&e, ".wh.etc/somefile", "whiteout name used as a parent");
}

fn stack_of(res: &PullResult) -> LayerStack {
    LayerStack::new(
        res.layers
            .iter()
            .map(|fs| LayerIndex::open(fs.parent().unwrap().join("index")).unwrap())
            .collect(),
    )
}

/// containerd `pkg/archive` `TestBreakouts`, case by case, in our terms. Entry names are
/// relative (real layers' are; an absolute name is refused on its own, see
/// `absolute_path_into_the_victim_is_refused`); symlink targets are kept as containerd wrote
/// them, with `/etc` standing for the host's `/etc`.
#[tokio::test]
async fn containerd_breakouts() {
    enum Expect {
        /// The layer (the last one) is refused with this reason.
        Refused(&'static str),
        /// Pulled; then this check on the result.
        Pulled(Box<dyn Fn(&PullResult)>),
    }
    use Expect::{Pulled, Refused};
    let b = Bench::start().await;
    let etc = || {
        LayerBuilder::new()
            .dir("etc", 0o770)
            .file("etc/passwd", "inside", 0o644)
    };
    let same_inode = |a: &'static str, c: &'static str| -> Box<dyn Fn(&PullResult)> {
        Box::new(move |r: &PullResult| {
            let fs = &r.layers[r.layers.len() - 1];
            let (ia, ic) = (
                std::fs::metadata(fs.join(a)).unwrap().ino(),
                std::fs::metadata(fs.join(c)).unwrap().ino(),
            );
            assert_eq!(ia, ic, "{a} and {c} are one file");
        })
    };
    let passwd_inside = |r: &PullResult| {
        let s = stack_of(r);
        let e = s
            .get(b"etc/passwd")
            .unwrap()
            .expect("etc/passwd in the merged view");
        assert_eq!(e.kind(), EntryKind::File);
    };
    let victim = b.victim_str();
    let perm400 = format!("{victim}/perm400");
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<LayerBuilder>, Expect)> = vec![
        (
            "SymlinkAbsolute",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o755)
                    .symlink("localetc", "/etc")
                    .file("localetc/unbroken", "unbroken", 0o644),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "SymlinkUpAndOut",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("localetc", "/dummy/../etc")
                    .file("localetc/unbroken", "unbroken", 0o644),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "SymlinkMultipleAbsolute",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("dummy/etc", "/etc")
                    .symlink("localetc", "/dummy/etc")
                    .file("dummy/etc/unbroken", "unbroken", 0o644),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "SymlinkMultipleRelative",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("dummy/etc", "/etc")
                    .symlink("localetc", "./dummy/etc")
                    .file("dummy/etc/unbroken", "unbroken", 0o644),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "SymlinkEmptyFile",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o755)
                    .file("etc/emptied", "notempty", 0o644)
                    .symlink("localetc", "/etc")
                    .file("localetc/emptied", "", 0o644),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkRelative",
            vec![
                etc()
                    .dir("breakouts", 0o755)
                    .symlink("breakouts/d1", "../../etc")
                    .hardlink("breakouts/mypasswd", "breakouts/d1/passwd"),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkDownAndOut",
            vec![
                etc()
                    .dir("breakouts", 0o755)
                    .dir("downandout", 0o755)
                    .symlink("breakouts/d1", "../downandout/../../etc")
                    .hardlink("breakouts/mypasswd", "breakouts/d1/passwd"),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkAbsolute",
            vec![
                etc()
                    .symlink("localetc", "/etc")
                    .hardlink("localpasswd", "localetc/passwd"),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkRelativeLong",
            vec![
                etc()
                    .symlink("localetc", "../../../../../../../etc")
                    .hardlink("localpasswd", "localetc/passwd"),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkRelativeUpAndOut",
            vec![
                etc()
                    .symlink("localetc", "upandout/../../../etc")
                    .hardlink("localpasswd", "localetc/passwd"),
            ],
            Refused(NOT_A_DIR),
        ),
        (
            "HardlinkDirectRelative",
            vec![etc().raw_entry(
                raw_header(
                    b"localpasswd",
                    Some(b"../../../../../etc/passwd"),
                    EntryType::Link,
                    0,
                    0o644,
                ),
                Vec::new(),
            )],
            Refused("`..` component"),
        ),
        (
            "HardlinkDirectAbsolute",
            vec![etc().raw_entry(
                raw_header(
                    b"localpasswd",
                    Some(b"/etc/passwd"),
                    EntryType::Link,
                    0,
                    0o644,
                ),
                Vec::new(),
            )],
            Refused("absolute path"),
        ),
        (
            "SymlinkParentDirectory",
            vec![etc().raw_entry(
                raw_header(b"..", Some(b"/etc/"), EntryType::Symlink, 0, 0o777),
                Vec::new(),
            )],
            Refused("`..` component"),
        ),
        (
            "SymlinkEmptyFilename",
            vec![etc().raw_entry(
                raw_header(b"", Some(b"/etc/"), EntryType::Symlink, 0, 0o777),
                Vec::new(),
            )],
            Refused("empty path"),
        ),
        (
            "SymlinkParentRelative",
            vec![etc().raw_entry(
                raw_header(
                    b"localetc/sub/..",
                    Some(b"/etc/"),
                    EntryType::Symlink,
                    0,
                    0o777,
                ),
                Vec::new(),
            )],
            Refused("`..` component"),
        ),
        (
            "SymlinkSlashEnded",
            vec![
                etc()
                    .dir("localetc/", 0o770)
                    .hardlink("localetc/localpasswd", "etc/passwd"),
            ],
            Pulled(same_inode("localetc/localpasswd", "etc/passwd")),
        ),
        (
            "SymlinkOverrideDirectory",
            vec![
                etc().dir("localetc", 0o755),
                LayerBuilder::new()
                    .symlink("localetc", "/etc")
                    .hardlink("localetc/localpasswd", "etc/passwd"),
            ],
            // (linkat reports the target missing from this layer before the bad parent.)
            Refused("hardlink target is not an earlier entry of this layer"),
        ),
        (
            "SymlinkOverrideDirectoryRelative",
            vec![
                etc().dir("localetc", 0o755),
                LayerBuilder::new()
                    .symlink("localetc", "../../etc")
                    .hardlink("localetc/localpasswd", "etc/passwd"),
            ],
            Refused("hardlink target is not an earlier entry of this layer"),
        ),
        (
            // Hardlinks cannot reach into a lower layer.
            "DirectoryOverrideSymlink",
            vec![
                etc().symlink("localetc", "/etc"),
                LayerBuilder::new()
                    .dir("localetc", 0o755)
                    .hardlink("localetc/localpasswd", "etc/passwd"),
            ],
            Refused("hardlink target is not an earlier entry of this layer"),
        ),
        (
            "DirectoryOverrideSymlinkAndHardlink",
            vec![
                etc().symlink("localetc", "etc"),
                LayerBuilder::new().dir("localetc", 0o755).file(
                    "localetc/localpasswd",
                    "different",
                    0o644,
                ),
            ],
            Pulled(Box::new(|r: &PullResult| {
                assert_eq!(
                    std::fs::read(r.layers[0].join("etc/passwd")).unwrap(),
                    b"inside"
                );
                assert_eq!(
                    std::fs::read(r.layers[1].join("localetc/localpasswd")).unwrap(),
                    b"different"
                );
                let s = stack_of(r);
                assert_eq!(s.get(b"localetc").unwrap().unwrap().kind(), EntryKind::Dir);
            })),
        ),
        (
            // `.wh...`, `etc/.wh...`, `.wh..`, `etc/.wh..` name nothing: kept as files, no
            // effect on the merged view (containerd refuses the archive).
            "WhiteoutRootParent+WhiteoutParent+WhiteoutRoot+WhiteoutCurrentDirectory",
            vec![
                etc(),
                LayerBuilder::new()
                    .file(".wh...", "", 0o644)
                    .dir("etc", 0o770)
                    .file("etc/.wh...", "", 0o644)
                    .file(".wh..", "", 0o644)
                    .file("etc/.wh..", "", 0o644),
            ],
            Pulled(Box::new(passwd_inside)),
        ),
        (
            "WhiteoutSymlink",
            vec![
                etc().symlink("localetc", "/etc"),
                LayerBuilder::new().whiteout("localetc"),
            ],
            Pulled(Box::new(|r: &PullResult| {
                let s = stack_of(r);
                assert!(s.get(b"localetc").unwrap().is_none());
                assert_eq!(
                    s.get(b"etc/passwd").unwrap().unwrap().kind(),
                    EntryKind::File
                );
            })),
        ),
        (
            // The whiteout applies under the upper layer's own `localetc` directory, not
            // through the lower symlink: etc/whitedout stays.
            "WhiteoutSymlinkPath",
            vec![
                etc()
                    .file("etc/whitedout", "ahhhh whiteout", 0o644)
                    .symlink("localetc", "/etc"),
                LayerBuilder::new().whiteout("localetc/whitedout"),
            ],
            Pulled(Box::new(|r: &PullResult| {
                let s = stack_of(r);
                assert!(s.get(b"etc/whitedout").unwrap().is_some());
                assert!(s.get(b"etc/passwd").unwrap().is_some());
                assert!(s.get(b"localetc/whitedout").unwrap().is_none());
            })),
        ),
        (
            "WhiteoutDirectoryName",
            vec![
                etc(),
                LayerBuilder::new().file(".wh.etc/somefile", "non-empty", 0o644),
            ],
            Refused("whiteout name used as a parent"),
        ),
        (
            "WhiteoutDeadSymlinkParent",
            vec![
                etc().symlink("localetc", "/dne"),
                LayerBuilder::new().whiteout("localetc/etc"),
            ],
            Pulled(Box::new(passwd_inside)),
        ),
        (
            "WhiteoutRelativePath",
            vec![
                etc().symlink("localetc", "/dne"),
                LayerBuilder::new().raw_entry(
                    raw_header(b"dne/../.wh.etc", None, EntryType::Regular, 0, 0o644),
                    Vec::new(),
                ),
            ],
            Refused("`..` component"),
        ),
        (
            // The hardlink is to the symlink file itself; /etc/passwd on the host is not
            // touched and the layer's etc/passwd is its own file.
            "HardlinkSymlinkBeforeCreateTarget",
            vec![
                LayerBuilder::new()
                    .dir("etc", 0o770)
                    .symlink("localpasswd", "/etc/passwd")
                    .hardlink("localpasswd-dup", "localpasswd")
                    .file("etc/passwd", "after", 0o644),
            ],
            Pulled(Box::new(|r: &PullResult| {
                let fs = &r.layers[0];
                let ino = |p: &str| std::fs::metadata(fs.join(p)).unwrap().ino();
                assert_eq!(ino("localpasswd"), ino("localpasswd-dup"));
                assert_ne!(ino("localpasswd"), ino("etc/passwd"));
                assert_eq!(
                    std::fs::read(fs.join("localpasswd-dup")).unwrap(),
                    b"/etc/passwd"
                );
                assert_eq!(std::fs::read(fs.join("etc/passwd")).unwrap(), b"after");
                let s = stack_of(r);
                assert_eq!(
                    s.get(b"localpasswd-dup").unwrap().unwrap().link_target(),
                    Some(&b"/etc/passwd"[..])
                );
            })),
        ),
        (
            "HardlinkSymlinkRelative",
            vec![
                etc()
                    .symlink("passwdlink", "../../../../../etc/passwd")
                    .hardlink("localpasswd", "passwdlink"),
            ],
            Pulled(Box::new(|r: &PullResult| {
                let fs = &r.layers[0];
                let ino = |p: &str| std::fs::metadata(fs.join(p)).unwrap().ino();
                assert_eq!(ino("localpasswd"), ino("passwdlink"));
                assert_ne!(ino("localpasswd"), ino("etc/passwd"));
                let s = stack_of(r);
                assert_eq!(
                    s.get(b"localpasswd").unwrap().unwrap().kind(),
                    EntryKind::Symlink
                );
            })),
        ),
        (
            "HardlinkSymlinkAbsolute",
            vec![
                etc()
                    .symlink("passwdlink", "/etc/passwd")
                    .hardlink("localpasswd", "passwdlink"),
            ],
            Pulled(same_inode("localpasswd", "passwdlink")),
        ),
        (
            // containerd names the symlink by an absolute path outside the root.
            "HardlinkSymlinkChmod",
            vec![
                LayerBuilder::new()
                    .symlink("also-exists-outside-root", &perm400)
                    .hardlink("sketchylink", "also-exists-outside-root")
                    .raw_entry(
                        raw_header(
                            format!("{victim}/also-exists-outside-root").as_bytes(),
                            Some(perm400.as_bytes()),
                            EntryType::Symlink,
                            0,
                            0o777,
                        ),
                        Vec::new(),
                    ),
            ],
            Refused("absolute path"),
        ),
    ];
    let count = cases.len();
    for (i, (name, layers, expect)) in cases.into_iter().enumerate() {
        let layers: Vec<Layer> = layers.into_iter().map(layer).collect();
        let repo = format!("breakouts/case{i}");
        match expect {
            Refused(reason) => {
                let e = b.refused(&repo, &layers, small_limits()).await;
                assert_eq!(e.kind(), ErrorKind::Extraction, "{name}: {e}");
                match layer_error(&e) {
                    LayerError::UnsafePath { reason: r, .. } => {
                        assert!(r.contains(reason), "{name}: {e}")
                    }
                    other => panic!("{name}: expected UnsafePath({reason}), got {other}"),
                }
            }
            Pulled(check) => {
                let before = b.outside_cache();
                b.push(&repo, &layers).await;
                let res = b
                    .pull(&repo, small_limits())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                check(&res);
                assert_eq!(b.outside_cache(), before, "{name}: outside changed");
            }
        }
    }
    let perm = std::fs::metadata(b.victim().join("perm400")).unwrap();
    assert_eq!(perm.permissions().mode() & 0o7777, 0o400);
    println!("containerd breakouts: {count} cases");
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
