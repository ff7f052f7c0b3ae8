//! One writer, many readers: an owner (root here) pulls into a cache shared with a group
//! (`--cache-group`); a second, non-root uid in that group reads it with `--read-only` (warm
//! `if-missing`, `never` and `always` pulls, `inspect`, `ls`, `du`, and a layer stack through
//! the Rust API in a child process) without writing anything; the same uid without
//! `--read-only` is refused as untrusted, a uid outside the group gets a permission error,
//! and pulls that would have to write fail with the read-only error. A layer a reader holds
//! (a lease on a read-only descriptor) survives the owner's `rm` and `gc`.
//!
//! Needs root (to create the users and switch to them with `setpriv`); run as anyone else,
//! every test says so loudly and passes without running.
#![cfg(feature = "cli")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::Fixture;
use microsandbox_image::cache::{CacheGroup, CacheOptions};
use microsandbox_image::{GcPolicy, GlobalCache, Platform, PullOptions, PullPolicy, Registry};
use msbimage_testkit::{Compression, ImageBuilder, LayerBuilder};

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");
/// The group the cache is shared with.
const GROUP: &str = "msbshare";
/// A user in [`GROUP`] (a supplementary group; its primary group is its own).
const READER: &str = "msbreader";
/// A user outside [`GROUP`].
const STRANGER: &str = "msbstranger";
/// A non-root user in [`GROUP`] that owns a cache.
const SERVICE: &str = "msbservice";
/// Set for the child process of [`reader_stack_child`]: `<reference> <cache dir>`.
const CHILD_ENV: &str = "MSBIMAGE_SHARED_CACHE_CHILD";

/// Create the group and users once; `false` (after saying so loudly) when not root.
fn users() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!(
                "\n!!!!!! SKIPPED: shared_cache tests need root (to create users {READER} and \
                 {STRANGER} and run as them); run them as root (CI does) !!!!!!\n"
            );
            return false;
        }
        let run = |args: &[&str]| {
            let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
            assert!(o.status.success(), "{args:?}: {o:?}");
        };
        run(&["groupadd", "-f", GROUP]);
        for (user, in_group) in [(READER, true), (SERVICE, true), (STRANGER, false)] {
            if Command::new("id")
                .arg(user)
                .output()
                .unwrap()
                .status
                .success()
            {
                continue;
            }
            let mut args = vec!["useradd", "-M", "-U", "-s", "/usr/sbin/nologin"];
            if in_group {
                args.extend(["-G", GROUP]);
            }
            args.push(user);
            run(&args);
        }
        true
    })
}

fn uid_of(user: &str) -> u32 {
    let o = Command::new("id").args(["-u", user]).output().unwrap();
    text(&o.stdout).trim().parse().unwrap()
}

fn group_gid() -> u32 {
    CacheGroup::Name(GROUP.into()).gid().unwrap()
}

/// A fixture whose cache root sits in a directory every user can enter.
struct Shared {
    f: Fixture,
    cache: PathBuf,
}

async fn shared() -> Shared {
    let f = Fixture::start().await;
    std::fs::set_permissions(f.cache_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = f.cache_dir.path().join("cache");
    Shared { f, cache }
}

/// [`shared`], with the standard image pulled by the owner (root) into the cache shared with
/// [`GROUP`]; `None` when not root (the tests are skipped).
async fn shared_with_gzip() -> Option<(Shared, String)> {
    if !users() {
        return None;
    }
    let s = shared().await;
    let gzip = s.reference("fixtures/standard:gzip");
    s.owner(&["pull", &gzip, "--cache-group", GROUP, "--progress", "none"]);
    Some((s, gzip))
}

impl Shared {
    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.f.host())
    }

    /// `msbimage ARGS --cache <cache>` as root with umask 077 (the modes must not depend on it).
    fn owner(&self, args: &[&str]) -> Output {
        let out = Command::new("sh")
            .args(["-c", "umask 077; exec \"$@\"", "sh", BIN])
            .args(args)
            .arg("--cache")
            .arg(&self.cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "owner {args:?}: {}",
            text(&out.stderr)
        );
        out
    }

    /// `msbimage ARGS --cache <cache>` as `user`.
    fn as_user(&self, user: &str, args: &[&str]) -> Output {
        as_user(user, Path::new(BIN), args)
            .arg("--cache")
            .arg(&self.cache)
            .output()
            .unwrap()
    }

    /// The reader's process of [`reader_stack_child`] for `reference`.
    fn reader_stack(&self, reference: &str) -> Command {
        let me = std::env::current_exe().unwrap();
        let mut cmd = as_user(
            READER,
            &me,
            &["--exact", "reader_stack_child", "--nocapture"],
        );
        cmd.env(CHILD_ENV, format!("{reference} {}", self.cache.display()));
        cmd
    }

    fn owner_cache(&self) -> GlobalCache {
        GlobalCache::new(&self.cache).unwrap()
    }
}

/// A command run as `user` (its own groups), with a home it cannot write to nothing in.
fn as_user(user: &str, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .arg("--init-groups")
        .arg(program)
        .args(args)
        .env("HOME", "/nonexistent")
        .env_remove("MSBIMAGE_CACHE_GROUP")
        .env_remove("MSBIMAGE_CACHE_READ_ONLY");
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\n{}",
        o.status,
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn fails(o: &Output, code: i32, contains: &[&str], what: &str) {
    let err = text(&o.stderr);
    eprintln!("{what}: {}", err.trim_end());
    assert_eq!(o.status.code(), Some(code), "{what}: {err}");
    for c in contains {
        assert!(err.contains(c), "{what}: {c:?} missing from {err}");
    }
}

/// Every entry under `root`: mode, owner, group, size, mtime and ctime (nanoseconds).
type Listing = BTreeMap<PathBuf, (u32, u32, u32, u64, i128, i128)>;

fn listing(root: &Path) -> Listing {
    let mut out = Listing::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            out.insert(
                p.strip_prefix(root).unwrap().to_owned(),
                (
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.len(),
                    ns(m.mtime(), m.mtime_nsec()),
                    ns(m.ctime(), m.ctime_nsec()),
                ),
            );
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Every directory is `2750` and every other entry a `0640` file, all of `owner` and the
/// group (at least `min_layer_entries` of them in layer directories).
fn assert_shared_modes(cache: &Path, owner: u32, min_layer_entries: usize) {
    let gid = group_gid();
    let root = std::fs::metadata(cache).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o2750, "root");
    assert_eq!(root.gid(), gid, "root");
    let all = listing(cache);
    let in_layers = all.keys().filter(|p| p.starts_with("layers")).count();
    assert!(
        in_layers >= min_layer_entries,
        "layer trees are listed ({in_layers})"
    );
    for (path, (mode, uid, g, ..)) in &all {
        let (kind, perm) = (mode & 0o170000, mode & 0o7777);
        match kind {
            0o040000 => assert_eq!(perm, 0o2750, "{} mode {perm:o}", path.display()),
            0o100000 => assert_eq!(perm, 0o640, "{} mode {perm:o}", path.display()),
            _ => panic!("{}: not a file or directory ({mode:o})", path.display()),
        }
        assert_eq!((*uid, *g), (owner, gid), "{} owner", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_in_the_group_reads_without_writing() {
    let Some((s, gzip)) = shared_with_gzip().await else {
        return;
    };
    assert_shared_modes(&s.cache, 0, 30);
    // The owner's next run without the flag keeps sharing (the root says so).
    s.owner(&["pull", &gzip, "--policy", "always", "--progress", "none"]);
    assert_eq!(s.owner_cache().group(), Some(group_gid()));
    assert_shared_modes(&s.cache, 0, 30);
    let before = listing(&s.cache);

    for policy in ["if-missing", "never", "always"] {
        let o = s.as_user(
            READER,
            &["pull", &gzip, "--read-only", "--json", "--policy", policy],
        );
        let doc: serde_json::Value = serde_json::from_str(&ok(&o, policy)).unwrap();
        assert_eq!(doc["cached"], policy != "always", "{policy}: {doc}");
        assert_eq!(doc["layers"].as_array().unwrap().len(), 3);
    }
    let o = s.as_user(READER, &["inspect", &gzip, "--read-only"]);
    assert!(ok(&o, "inspect").contains("fixtures/standard:gzip"));
    let o = s.as_user(READER, &["ls", "--read-only"]);
    assert!(ok(&o, "ls").contains("fixtures/standard:gzip"));
    ok(&s.as_user(READER, &["du", "--read-only"]), "du");

    // The Rust API: a read-only cache, a `Never` pull and a layer stack, in a process of
    // the reader's.
    let child = s.reader_stack(&gzip).stdin(Stdio::null()).output().unwrap();
    let out = ok(&child, "layer stack as the reader");
    assert!(out.contains("HOLDING") && out.contains("1 passed"), "{out}");

    // What needs a write fails clearly, and writes nothing either.
    let zstd = s.reference("fixtures/standard:zstd");
    for (args, what) in [
        (vec!["pull", &zstd, "--read-only"], "cold if-missing"),
        (
            vec!["pull", &zstd, "--read-only", "--policy", "always"],
            "cold always",
        ),
        (vec!["pull", &gzip, "--read-only", "--force"], "force"),
    ] {
        let o = s.as_user(READER, &args);
        fails(
            &o,
            9,
            &["opened the cache read-only", "ask the cache's owner"],
            what,
        );
    }
    fails(
        &s.as_user(READER, &["pull", &zstd, "--read-only", "--policy", "never"]),
        3,
        &[],
        "cold never",
    );
    fails(
        &s.as_user(READER, &["gc", "--read-only"]),
        9,
        &["read-only"],
        "gc",
    );
    assert_eq!(before, listing(&s.cache), "the reader wrote nothing");

    // Without --read-only the reader is refused (the cache is another user's).
    let o = s.as_user(READER, &["ls"]);
    fails(
        &o,
        9,
        &["belongs to uid 0", "--read-only"],
        "ls without --read-only",
    );
    let o = s.as_user(READER, &["pull", &gzip]);
    fails(&o, 9, &["belongs to uid 0"], "pull without --read-only");
    // Outside the group: a permission error that says which group to ask for.
    let o = s.as_user(STRANGER, &["ls", "--read-only"]);
    let gid = group_gid().to_string();
    fails(
        &o,
        9,
        &["cannot read", "permission denied", &gid],
        "stranger",
    );
    let o = s.as_user(STRANGER, &["inspect", &gzip, "--read-only"]);
    fails(&o, 9, &["cannot read"], "stranger inspect");
    assert_eq!(before, listing(&s.cache), "nothing was written");
}

/// Not a test of its own: the reader's process of
/// [`a_reader_in_the_group_reads_without_writing`] and
/// [`gc_spares_what_a_reader_holds`]: opens the cache read-only, pulls with `Never`, opens the
/// layer stack and holds it until stdin ends. Run without [`CHILD_ENV`], it returns.
#[tokio::test(flavor = "multi_thread")]
async fn reader_stack_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (reference, cache) = spec.split_once(' ').unwrap();
    let options = CacheOptions {
        read_only: true,
        ..CacheOptions::default()
    };
    let cache = GlobalCache::with_options(cache, &options).unwrap();
    assert!(cache.is_read_only());
    let registry = Registry::new(Platform::new("linux", "amd64"), cache).unwrap();
    let opts = PullOptions {
        pull_policy: PullPolicy::Never,
        ..PullOptions::default()
    };
    let result = registry
        .pull(&reference.parse().unwrap(), &opts)
        .await
        .unwrap();
    let stack = result.layer_stack().unwrap();
    let hello = stack.get(b"app/hello.txt").unwrap().expect("app/hello.txt");
    assert_eq!(hello.size(), "hello from layer 3\n".len() as u64);
    drop(result);
    let mut out = std::io::stdout().lock();
    writeln!(out, "HOLDING").unwrap();
    out.flush().unwrap();
    // Held until the parent closes our stdin.
    let _ = std::io::stdin().lines().count();
    drop(stack);
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_spares_what_a_reader_holds() {
    let Some((s, gzip)) = shared_with_gzip().await else {
        return;
    };
    let mut child = s
        .reader_stack(&gzip)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let held = lines.any(|l| l.is_ok_and(|l| l.contains("HOLDING")));
    assert!(held, "the reader holds its stack");

    // A forced pull swaps new trees in; the ones the reader holds wait in tmp/.
    s.owner(&["pull", &gzip, "--force", "--progress", "none"]);
    let trash = || {
        let tmp = common::tmp_entries(&s.cache);
        tmp.iter().filter(|n| n.starts_with("trash-")).count()
    };
    assert_eq!(trash(), 3, "the replaced trees wait for the reader");
    assert_shared_modes(&s.cache, 0, 30);

    let cache = s.owner_cache();
    let layers = std::thread::spawn({
        let cache = cache.clone();
        move || {
            let report = cache.remove_image(&gzip.parse().unwrap(), None).unwrap();
            let gc = cache.gc(&GcPolicy::default()).unwrap();
            (report, gc)
        }
    })
    .join()
    .unwrap();
    let (rm, gc) = layers;
    assert_eq!(rm.removed_images.len(), 1);
    assert!(rm.removed_layers.is_empty(), "{rm:?}");
    assert_eq!(rm.in_use_layers.len(), 3, "{rm:?}");
    assert!(gc.removed_layers.is_empty(), "{gc:?}");
    assert_eq!(common::layer_dirs(&s.cache).len(), 3);

    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "reader: {status:?}");
    let gc = std::thread::spawn(move || cache.gc(&GcPolicy::default()).unwrap())
        .join()
        .unwrap();
    assert_eq!(gc.removed_layers.len(), 3, "{gc:?}");
    assert!(common::layer_dirs(&s.cache).is_empty());
    assert_eq!(
        trash(),
        0,
        "gc swept the replaced trees once no one held them"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_index_or_lease_file_is_a_clear_read_only_error() {
    if !users() {
        return;
    }
    let s = shared().await;
    let image = ImageBuilder::new("linux", "amd64")
        .layer(
            LayerBuilder::new()
                .dir("x", 0o755)
                .file("x/y", "z\n", 0o600)
                .build(Compression::Gzip),
        )
        .build();
    s.f.push("ro/plain", "1", &image).await;
    let plain = s.reference("ro/plain:1");
    s.owner(&[
        "pull",
        &plain,
        "--cache-group",
        GROUP,
        "--no-index",
        "--progress",
        "none",
    ]);
    assert_shared_modes(&s.cache, 0, 4);

    let o = s.as_user(READER, &["pull", &plain, "--read-only"]);
    fails(&o, 9, &["has no index", "read-only"], "missing index");
    let o = s.as_user(
        READER,
        &["pull", &plain, "--read-only", "--no-index", "--json"],
    );
    ok(&o, "--no-index");
    // `inspect` needs no index.
    ok(
        &s.as_user(READER, &["inspect", &plain, "--read-only"]),
        "inspect",
    );

    let hex = image.layers[0]
        .diff_id
        .trim_start_matches("sha256:")
        .to_owned();
    std::fs::remove_file(s.cache.join(format!("locks/lease-{hex}.lock"))).unwrap();
    let o = s.as_user(READER, &["pull", &plain, "--read-only", "--no-index"]);
    fails(
        &o,
        9,
        &["has no lease file", "pull the image again"],
        "missing lease file",
    );
    // The owner's next pull creates it again, readable by the group.
    s.owner(&["pull", &plain, "--no-index", "--progress", "none"]);
    assert_shared_modes(&s.cache, 0, 4);
    let o = s.as_user(READER, &["pull", &plain, "--read-only", "--no-index"]);
    ok(&o, "after the owner's pull");

    // A lease file only the owner may read (made before the cache was shared): the reader
    // is told what to ask for, and the owner's next pull makes it group-readable.
    let lease = s.cache.join(format!("locks/lease-{hex}.lock"));
    std::fs::set_permissions(&lease, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = s.as_user(READER, &["pull", &plain, "--read-only", "--no-index"]);
    fails(
        &o,
        9,
        &["permission denied", "mode 600", "group-readable"],
        "private lease file",
    );
    s.owner(&["pull", &plain, "--no-index", "--progress", "none"]);
    assert_shared_modes(&s.cache, 0, 4);
    let o = s.as_user(READER, &["pull", &plain, "--read-only", "--no-index"]);
    ok(&o, "after the owner's pull fixed the lease file");
}

/// A reader accepts only what the owner alone can have written: a cache directory the group
/// may write, or one a third user owns (swapped in), is refused, naming it.
#[test]
fn a_reader_refuses_what_someone_else_could_have_changed() {
    if !users() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = base.path().join("cache");
    let shared = CacheOptions {
        group: Some(GROUP.parse().unwrap()),
        ..CacheOptions::default()
    };
    GlobalCache::with_options(&cache, &shared).unwrap();
    let ls = || {
        as_user(READER, Path::new(BIN), &["ls", "--read-only", "--cache"])
            .arg(&cache)
            .output()
            .unwrap()
    };
    ok(&ls(), "ls of a fresh shared cache");

    let layers = cache.join("layers");
    std::fs::set_permissions(&layers, std::fs::Permissions::from_mode(0o2770)).unwrap();
    fails(
        &ls(),
        9,
        &["layers", "writable by group or others", "chmod go-w"],
        "g+w",
    );
    let e = GlobalCache::new(&cache).unwrap_err().to_string();
    assert!(
        e.contains("writable by group or others"),
        "the owner refuses it too: {e}"
    );
    std::fs::set_permissions(&layers, std::fs::Permissions::from_mode(0o2750)).unwrap();

    let stranger = uid_of(STRANGER);
    let images = cache.join("images");
    std::os::unix::fs::chown(&images, Some(stranger), None).unwrap();
    let o = ls();
    fails(
        &o,
        9,
        &["images", "not to the cache's owner (uid 0)"],
        "swapped in",
    );
    std::os::unix::fs::chown(&images, Some(0), None).unwrap();

    std::fs::remove_dir(cache.join("tmp")).unwrap();
    std::os::unix::fs::symlink(base.path(), cache.join("tmp")).unwrap();
    fails(&ls(), 9, &["tmp", "is a symlink"], "symlink");
    std::fs::remove_file(cache.join("tmp")).unwrap();
    fails(&ls(), 9, &["tmp", "is missing", "read-only"], "missing");
    GlobalCache::new(&cache).unwrap();
    ok(&ls(), "ls once the owner has put things right");
}

/// The owner need not be root: a service user in the group shares its cache (the same modes,
/// under umask 077) with a reader; a user outside the group cannot share one with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_user_in_the_group_owns_a_shared_cache() {
    if !users() {
        return;
    }
    let s = shared().await;
    let gzip = s.reference("fixtures/standard:gzip");
    let pull_as = |user: &str, cache: &Path| {
        let sh = ["-c", "umask 077; exec \"$@\"", "sh", BIN, "pull", &gzip];
        as_user(user, Path::new("/bin/sh"), &sh)
            .args(["--cache-group", GROUP, "--progress", "none", "--cache"])
            .arg(cache)
            .output()
            .unwrap()
    };

    let service = uid_of(SERVICE);
    std::os::unix::fs::chown(s.f.cache_dir.path(), Some(service), None).unwrap();
    ok(&pull_as(SERVICE, &s.cache), "the service's pull");
    assert_shared_modes(&s.cache, service, 30);
    let o = s.as_user(READER, &["pull", &gzip, "--read-only", "--policy", "never"]);
    ok(&o, "the reader's pull");
    let o = s.as_user(READER, &["ls"]);
    fails(
        &o,
        9,
        &[&format!("belongs to uid {service}")],
        "without --read-only",
    );

    let theirs = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(theirs.path(), Some(uid_of(STRANGER)), None).unwrap();
    let o = pull_as(STRANGER, &theirs.path().join("cache"));
    let not_in = format!("is not in group {}", group_gid());
    fails(
        &o,
        9,
        &[&not_in, "only root or a member"],
        "outside the group",
    );
    assert!(!theirs.path().join("cache").exists(), "nothing was created");
}
