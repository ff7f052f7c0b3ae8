//! A pull on a file system that refuses a write: full (`ENOSPC`), over quota (`EDQUOT`),
//! read-only (`EROFS`) or not writable by the user (`EACCES`). Each time the pull fails with
//! kind `IO` (exit code 9), a message naming the image, the path and the cause, and nothing
//! published: no record, no directory for the layer that failed, no staging left in `tmp/`;
//! and the same pull succeeds once the cause is fixed.
//!
//! Each scenario is a shell script run in a mount namespace of its own (`unshare -m`), so its
//! mounts go away with it whatever happens. They need root (mounts, loop devices, `setpriv`);
//! CI runs as root. Without root they print why and pass.
#![cfg(feature = "cli")]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::Fixture;
use microsandbox_image::ErrorKind;

const BIN: &str = env!("CARGO_BIN_EXE_msbimage");

/// Shell functions every scenario uses. `pull NAME REF [ARGS…]` pulls REF into `$C` (as the
/// command in `$AS`, if set: e.g. `setpriv …`) with `--json`, and prints `NAME.code`,
/// `NAME.err` (stderr on one line), `NAME.json` (stdout), then what the cache holds:
/// `NAME.tmp` (entries of `tmp/`), `NAME.records` (of `images/`), `NAME.layers` (of
/// `layers/sha256/`), listed as root.
const PRELUDE: &str = r#"
set -u
pull() {
    name=$1 ref=$2
    shift 2
    ${AS:-} "$BIN" pull "$ref" --progress none --json --cache "$C" "$@" >"$T/$name.out" 2>"$T/$name.err"
    echo "$name.code=$?"
    echo "$name.err=$(tr '\n' ' ' <"$T/$name.err")"
    echo "$name.json=$(tr '\n' ' ' <"$T/$name.out")"
    echo "$name.tmp=$(ls -A "$C/tmp" | tr '\n' ' ')"
    echo "$name.records=$(ls -A "$C/images" | tr '\n' ' ')"
    echo "$name.layers=$(ls -A "$C/layers/sha256" | tr '\n' ' ')"
}
"#;

/// The `key=value` lines a scenario printed.
struct Scenario {
    text: String,
    values: BTreeMap<String, String>,
}

impl Scenario {
    /// Runs `script` (after [`PRELUDE`]) with `sh` in a mount namespace of its own, with
    /// `$BIN`, `$T` (a scratch directory) and `env` set. `None` when not root.
    fn run(t: &std::path::Path, script: &str, env: &[(&str, &str)]) -> Option<Scenario> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: this scenario needs root (mounts, loop devices, setpriv)");
            return None;
        }
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c", &format!("{PRELUDE}\n{script}")])
            .env("BIN", BIN)
            .env("T", t)
            .envs(env.iter().copied())
            .output()
            .expect("unshare");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Shown when the test fails (or with --nocapture).
        eprintln!("{text}");
        assert!(
            out.status.success(),
            "the scenario's setup failed ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let values = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        Some(Scenario { text, values })
    }

    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in:\n{}", self.text))
    }

    fn json(&self, key: &str) -> serde_json::Value {
        serde_json::from_str(self.get(key))
            .unwrap_or_else(|e| panic!("{key} is not JSON ({e}):\n{}", self.text))
    }

    /// The pull `name` failed as a refused write must: exit code and kind `IO`, the message
    /// naming the image, `path` and `cause`; the records unchanged (`records`: as they were
    /// before), no directory for the layer that failed (if one did), nothing in `tmp/`.
    fn assert_failed_cleanly(
        &self,
        name: &str,
        image: &str,
        cause: &str,
        path: &str,
        records: &str,
    ) {
        let text = &self.text;
        assert_eq!(
            self.get(&format!("{name}.code")),
            ErrorKind::Io.exit_code().to_string(),
            "{name}: exit code of kind IO:\n{text}"
        );
        let err = self.get(&format!("{name}.err"));
        assert!(err.contains(cause), "{name}: the cause {cause:?} in {err}");
        assert!(err.contains(path), "{name}: {path:?} in {err}");
        // `cannot <op> <path>: <cause>`, the path quoted (inside a layer) or absolute.
        let call = err
            .split_once("cannot ")
            .and_then(|(_, rest)| rest.split_once(&format!(": {cause}")))
            .map(|(call, _)| call);
        assert!(
            call.is_some_and(|c| c.contains('"') || c.contains('/')),
            "{name}: a path in {err}"
        );
        assert!(err.contains(image), "{name}: the image in {err}");
        let report = &self.json(&format!("{name}.json"))["error"];
        assert_eq!(report["kind"], "IO", "{name}: {report}");
        assert_eq!(report["image"], image, "{name}: {report}");
        assert_eq!(
            self.get(&format!("{name}.tmp")),
            "",
            "{name}: staging removed:\n{text}"
        );
        assert_eq!(
            self.get(&format!("{name}.records")),
            records,
            "{name}: no record:\n{text}"
        );
        if let Some(layer) = report["layer"].as_str() {
            let hex = layer.trim_start_matches("sha256:");
            assert!(
                !self.get(&format!("{name}.layers")).contains(hex),
                "{name}: the failed layer {hex} is not published:\n{text}"
            );
        }
    }

    /// The pull `name` succeeded and left its record and nothing in `tmp/`.
    fn assert_succeeded(&self, name: &str) {
        let text = &self.text;
        assert_eq!(self.get(&format!("{name}.code")), "0", "{name}:\n{text}");
        assert_eq!(self.get(&format!("{name}.err")), "", "{name}:\n{text}");
        assert!(
            self.json(&format!("{name}.json"))["manifest_digest"].is_string(),
            "{name}:\n{text}"
        );
        assert_eq!(self.get(&format!("{name}.tmp")), "", "{name}:\n{text}");
        assert_ne!(self.get(&format!("{name}.records")), "", "{name}:\n{text}");
    }
}

/// A scratch directory others may enter (the non-root pulls reach the cache through it).
fn scratch() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn image(f: &Fixture, tag: &str) -> String {
    format!("{}/fixtures/standard:{tag}", f.host())
}

/// A scenario on a file system its script mounts at `$MNT`, with the cache at `$C` (`cache`
/// below the mount), `$REF` the standard image (gzip) and `$OTHER` the same layers under
/// another manifest (zstd).
struct Mounted {
    s: Scenario,
    cache: std::path::PathBuf,
    reference: String,
    other: String,
    _registry: Fixture,
    _scratch: tempfile::TempDir,
}

async fn on_a_mount(cache: &str, script: &str) -> Option<Mounted> {
    let f = Fixture::start().await;
    let t = scratch();
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let c = mnt.join(cache);
    let (reference, other) = (image(&f, "gzip"), image(&f, "zstd"));
    let env = [
        ("MNT", mnt.to_str().unwrap()),
        ("C", c.to_str().unwrap()),
        ("REF", reference.as_str()),
        ("OTHER", other.as_str()),
    ];
    let s = Scenario::run(t.path(), script, &env)?;
    Some(Mounted {
        s,
        cache: c,
        reference,
        other,
        _registry: f,
        _scratch: t,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_the_pull_cleanly_and_the_next_pull_succeeds() {
    // A 1.5 MiB tmpfs as the cache's file system, too small for the standard image's 3 MiB
    // file; then more room.
    let script = r#"
        mount -t tmpfs -o size=1536k,mode=0755 tmpfs "$MNT" || exit 90
        pull full "$REF"
        mount -o remount,size=64m "$MNT" || exit 91
        pull fixed "$REF"
    "#;
    let Some(m) = on_a_mount("c", script).await else {
        return;
    };
    // Whichever layer's file the disk was full for first (the 3 MiB one, or a small one of
    // a layer extracted beside it).
    let s = &m.s;
    s.assert_failed_cleanly(
        "full",
        &m.reference,
        "No space left on device",
        "cannot ",
        "",
    );
    s.assert_succeeded("fixed");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_quota_fails_the_pull_cleanly_and_a_raised_quota_lets_it_succeed() {
    // This kernel has no quotas on tmpfs (CONFIG_TMPFS_QUOTA), nor on ext4 or XFS
    // (CONFIG_QFMT_V2, CONFIG_XFS_QUOTA): a btrfs qgroup limit on the subvolume holding the
    // cache is the quota that answers EDQUOT here (it applies to root too). The file system
    // is a sparse 256 MiB image on a loop device (detached with the namespace's mount).
    let script = r#"
        truncate -s 256M "$T/btrfs.img" || exit 90
        mkfs.btrfs -q -f "$T/btrfs.img" >/dev/null || exit 91
        mount -o loop "$T/btrfs.img" "$MNT" || exit 92
        btrfs quota enable "$MNT" || exit 93
        btrfs subvolume create "$MNT/quota" >/dev/null || exit 94
        btrfs qgroup limit 2M "$MNT/quota" || exit 95
        pull over "$REF"
        btrfs qgroup limit none "$MNT/quota" || exit 96
        pull raised "$REF"
        umount "$MNT"
    "#;
    let Some(m) = on_a_mount("quota/c", script).await else {
        return;
    };
    let s = &m.s;
    s.assert_failed_cleanly("over", &m.reference, "Disk quota exceeded", "cannot ", "");
    s.assert_succeeded("raised");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_cache_serves_warm_pulls_and_fails_a_pull_that_must_write() {
    // The whole file system read-only: the gzip image, pulled before, is still served (leases
    // are taken on read-only descriptors); the zstd one (same layers, another manifest) must
    // store its manifest, and fails.
    let script = r#"
        mount -t tmpfs -o size=64m,mode=0755 tmpfs "$MNT" || exit 90
        pull before "$REF"
        mount -o remount,ro "$MNT" || exit 91
        pull warm "$REF"
        pull warm_never "$REF" --policy never
        pull ro "$OTHER"
        mount -o remount,rw "$MNT" || exit 92
        pull rw "$OTHER"
    "#;
    let Some(m) = on_a_mount("c", script).await else {
        return;
    };
    let s = &m.s;
    s.assert_succeeded("before");
    for warm in ["warm", "warm_never"] {
        s.assert_succeeded(warm);
        assert_eq!(s.json(&format!("{warm}.json"))["cached"], true, "{warm}");
    }
    let tmp = format!("{}/tmp/", m.cache.display());
    let records = s.get("before.records").to_owned();
    s.assert_failed_cleanly("ro", &m.other, "Read-only file system", &tmp, &records);
    s.assert_succeeded("rw");
    assert_ne!(s.get("rw.records"), records, "a record for the zstd image");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_tmp_fails_the_layer_that_must_be_staged_and_nothing_else() {
    // The image was pulled and removed (its manifests stay): the next pull writes nothing
    // before it stages a layer in tmp/, which is a read-only bind mount, then unmounted.
    let script = r#"
        mount -t tmpfs -o size=64m,mode=0755 tmpfs "$MNT" || exit 90
        pull before "$REF"
        "$BIN" rm "$REF" --cache "$C" >/dev/null || exit 91
        mount --bind "$C/tmp" "$C/tmp" || exit 92
        mount -o remount,bind,ro "$C/tmp" || exit 93
        pull ro "$REF"
        umount "$C/tmp" || exit 94
        pull rw "$REF"
    "#;
    let Some(m) = on_a_mount("c", script).await else {
        return;
    };
    let s = &m.s;
    s.assert_succeeded("before");
    let staging = format!("cannot create {}/tmp/layer-", m.cache.display());
    s.assert_failed_cleanly("ro", &m.reference, "Read-only file system", &staging, "");
    assert!(
        s.json("ro.json")["error"]["layer"].is_string(),
        "a layer's error: {}",
        s.text
    );
    assert_eq!(s.get("ro.layers"), "", "no layer published");
    s.assert_succeeded("rw");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_the_user_cannot_write_fails_the_pull_cleanly_until_it_is_fixed() {
    let f = Fixture::start().await;
    let t = scratch();
    // Run as nobody (root would not be refused); one cache per directory taken away, each
    // created by nobody first. tmp/: the manifest's temp file; layers/sha256/: the publish
    // rename, after extraction; images/: the record, after every layer was published (they
    // stay: complete, shared, and what the next pull reuses).
    let script = r#"
        AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
        export HOME="$T"
        for dir in tmp layers/sha256 images; do
            n=$(echo "$dir" | tr / _)
            C="$T/$n"
            mkdir -m 0700 "$C" && chown 65534:65534 "$C" || exit 90
            $AS "$BIN" ls --cache "$C" >/dev/null || exit 90
            $AS chmod 0500 "$C/$dir" || exit 91
            pull "$n.denied" "$REF"
            $AS chmod 0700 "$C/$dir" || exit 92
            pull "$n.fixed" "$REF"
        done
    "#;
    let reference = image(&f, "gzip");
    let env = [("REF", reference.as_str())];
    let Some(s) = Scenario::run(t.path(), script, &env) else {
        return;
    };
    let root = t.path().display();
    let denied = "Permission denied";
    s.assert_failed_cleanly(
        "tmp.denied",
        &reference,
        denied,
        &format!("cannot create temp file {root}/tmp/tmp/"),
        "",
    );
    s.assert_failed_cleanly(
        "layers_sha256.denied",
        &reference,
        denied,
        &format!("cannot publish {root}/layers_sha256/layers/sha256/"),
        "",
    );
    assert_eq!(s.get("layers_sha256.denied.layers"), "", "{}", s.text);
    s.assert_failed_cleanly(
        "images.denied",
        &reference,
        denied,
        &format!("cannot rename a temp file to {root}/images/images/"),
        "",
    );
    assert_eq!(
        s.get("images.denied.layers").split_whitespace().count(),
        f.gzip
            .layers
            .iter()
            .map(|l| &l.diff_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "the layers were published before the record: {}",
        s.text
    );
    for dir in ["tmp", "layers_sha256", "images"] {
        s.assert_succeeded(&format!("{dir}.fixed"));
    }
}
