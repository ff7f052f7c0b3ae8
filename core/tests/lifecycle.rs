//! The cache after the pull: listing, removing, `gc` (unreferenced, size cap, age), leases
//! that keep layers in use, forced re-pulls that never leave readers without a tree, sweeping
//! of debris, and warm pulls that do not trust a damaged layer directory. All against a real
//! registry on loopback.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Env, tmp_entries};
use microsandbox_image::{CacheError, ErrorKind, GcPolicy, PullOptions, PullPolicy};
use msbimage_testkit::{Compression, Image, ImageBuilder, LayerBuilder, RegistryOptions};

/// `base` = the bottom layer both images share; `a` and `b` each add one of their own.
fn images() -> (Image, Image) {
    let base = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/base", vec![7u8; 200_000], 0o644)
        .build(Compression::Gzip);
    let own = |name: &str, len: usize| {
        LayerBuilder::new()
            .dir("app", 0o755)
            .file(&format!("app/{name}"), vec![name.as_bytes()[0]; len], 0o644)
            .build(Compression::Gzip)
    };
    let a = ImageBuilder::new("linux", "amd64")
        .layer(base.clone())
        .layer(own("a", 300_000))
        .build();
    let b = ImageBuilder::new("linux", "amd64")
        .layer(base)
        .layer(own("b", 500_000))
        .build();
    (a, b)
}

async fn env_with_images() -> Env {
    let env = Env::start(RegistryOptions::plain()).await;
    let (a, b) = images();
    env.push("lc/a", "1", &a).await;
    env.push("lc/a", "latest", &a).await;
    env.push("lc/b", "1", &b).await;
    env
}

async fn pull(env: &Env, repo_tag: &str) -> microsandbox_image::PullResult {
    env.registry_client()
        .pull(&env.reference(repo_tag), &PullOptions::default())
        .await
        .unwrap_or_else(|e| panic!("pull {repo_tag}: {e}"))
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("thread")
}

fn set_last_use(cache: &Path, hours_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(hours_ago * 3600);
    for e in std::fs::read_dir(cache.join("images")).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(e.unwrap().path())
            .unwrap();
        f.set_modified(t).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_groups_names_of_one_digest_and_du_splits_shared_bytes() {
    let env = env_with_images().await;
    for r in ["lc/a:1", "lc/a:latest", "lc/b:1"] {
        drop(pull(&env, r).await);
    }
    let cache = env.cache();
    let images = blocking({
        let c = cache.clone();
        move || c.images().unwrap()
    });
    assert_eq!(images.len(), 2, "{images:?}");
    let a = &images[0];
    assert_eq!(
        a.names,
        [
            env.reference("lc/a:1").to_string(),
            env.reference("lc/a:latest").to_string()
        ]
    );
    assert!(a.complete);
    assert_eq!(a.layers.len(), 2);
    let usage = blocking(move || cache.disk_usage().unwrap());
    assert_eq!(usage.layers.len(), 3);
    let shared = usage
        .layers
        .iter()
        .find(|l| l.images.len() == 3)
        .expect("base layer held by all names");
    for u in &usage.images {
        assert_eq!(u.shared_bytes, shared.bytes, "{u:?}");
        assert!(u.exclusive_bytes > 0);
    }
    assert!(
        usage.images[1].exclusive_bytes > usage.images[0].exclusive_bytes,
        "b's own layer is larger"
    );
    assert_eq!(usage.unreferenced_bytes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_removes_a_name_then_the_layers_only_it_held() {
    let env = env_with_images().await;
    for r in ["lc/a:1", "lc/a:latest", "lc/b:1"] {
        drop(pull(&env, r).await);
    }
    let cache = env.cache();
    let a1 = env.reference("lc/a:1");
    let c = cache.clone();
    let report = blocking(move || c.remove_image(&a1, None).unwrap());
    assert_eq!(report.removed_images.len(), 1);
    assert!(
        report.removed_layers.is_empty(),
        "lc/a:latest still names the image"
    );
    let (c, latest) = (cache.clone(), env.reference("lc/a:latest"));
    let report = blocking(move || c.remove_image(&latest, None).unwrap());
    assert_eq!(
        report.removed_layers.len(),
        1,
        "only a's own layer: the base is b's too"
    );
    assert!(report.freed_bytes >= 300_000);
    let c = cache.clone();
    let left = blocking(move || c.images().unwrap());
    assert_eq!(left.len(), 1);
    assert!(left[0].complete, "b keeps the shared base layer");
    // Removing it again names the image and says it is not there.
    let (c, latest) = (cache.clone(), env.reference("lc/a:latest"));
    let err = blocking(move || c.remove_image(&latest, None).unwrap_err());
    assert!(matches!(err, CacheError::NoSuchImage { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // The removed image pulls again.
    let again = pull(&env, "lc/a:latest").await;
    assert!(!again.cached);
    assert!(again.layers.iter().all(|p| p.is_dir()));
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_collects_unreferenced_layers_but_not_held_ones() {
    let env = env_with_images().await;
    let held = pull(&env, "lc/a:1").await;
    drop(pull(&env, "lc/b:1").await);
    let cache = env.cache();
    // Forget the records (as a crash between publish and record could leave the layers).
    for e in std::fs::read_dir(cache.root().join("images")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let c = cache.clone();
    let dry = blocking(move || {
        c.gc(&GcPolicy {
            dry_run: true,
            ..GcPolicy::default()
        })
        .unwrap()
    });
    assert_eq!(
        dry.removed_layers.len(),
        1,
        "b's own layer; a's two are held: {dry:?}"
    );
    assert_eq!(dry.in_use_layers.len(), 2);
    assert_eq!(
        common::layer_dirs(cache.root()).len(),
        3,
        "a dry run removes nothing"
    );
    let c = cache.clone();
    let report = blocking(move || c.gc(&GcPolicy::default()).unwrap());
    assert_eq!(report.removed_layers, dry.removed_layers);
    assert!(held.layers.iter().all(|p| p.is_dir()), "held layers stay");
    drop(held);
    let c = cache.clone();
    let report = blocking(move || c.gc(&GcPolicy::default()).unwrap());
    assert_eq!(report.removed_layers.len(), 2);
    assert!(common::layer_dirs(cache.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_with_a_cap_evicts_least_recently_used_first() {
    let env = env_with_images().await;
    drop(pull(&env, "lc/a:1").await);
    drop(pull(&env, "lc/b:1").await);
    set_last_use(env.cache_dir.path(), 48);
    // A warm pull of b moves its last use forward (its record was older than five minutes).
    let warm = pull(&env, "lc/b:1").await;
    assert!(warm.cached);
    drop(warm);
    let cache = env.cache();
    let c = cache.clone();
    let usage = blocking(move || c.disk_usage().unwrap());
    let b = usage
        .images
        .iter()
        .find(|u| u.image.names[0].contains("lc/b"))
        .unwrap();
    // A cap that fits b alone: a (least recently used) goes.
    let cap = b.exclusive_bytes + b.shared_bytes;
    let c = cache.clone();
    let report = blocking(move || {
        c.gc(&GcPolicy {
            max_size: Some(cap),
            ..GcPolicy::default()
        })
        .unwrap()
    });
    assert_eq!(report.removed_images.len(), 1);
    assert!(
        report.removed_images[0].names[0].contains("lc/a"),
        "{report:?}"
    );
    let c = cache.clone();
    let usage = blocking(move || c.disk_usage().unwrap());
    assert!(usage.layer_bytes <= cap);
    // keep-recent protects b even under a cap of zero; without a cap it prunes by age.
    let c = cache.clone();
    let policy = GcPolicy {
        max_size: Some(0),
        keep_recent: Some(Duration::from_secs(3600)),
        ..GcPolicy::default()
    };
    let report = blocking(move || c.gc(&policy).unwrap());
    assert!(report.removed_images.is_empty());
    set_last_use(env.cache_dir.path(), 48);
    let c = cache.clone();
    let policy = GcPolicy {
        keep_recent: Some(Duration::from_secs(3600)),
        ..GcPolicy::default()
    };
    let report = blocking(move || c.gc(&policy).unwrap());
    assert_eq!(report.removed_images.len(), 1);
    assert!(common::layer_dirs(cache.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_re_pull_keeps_a_held_tree_until_it_is_released() {
    let env = env_with_images().await;
    let first = pull(&env, "lc/a:1").await;
    let marker = first.layers[1].join("app/a");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&marker).unwrap());
    // A reader with an open handle into the old tree (as a process with its cwd there).
    let old_tree = std::fs::File::open(&first.layers[1]).unwrap();
    let forced = env
        .registry_client()
        .pull(
            &env.reference("lc/a:1"),
            &PullOptions {
                force: true,
                ..PullOptions::default()
            },
        )
        .await
        .unwrap();
    let new_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&marker).unwrap());
    assert_ne!(inode, new_inode, "the layer was rebuilt and swapped in");
    let trash: Vec<String> = tmp_entries(env.cache_dir.path())
        .into_iter()
        .filter(|n| n.starts_with("trash-"))
        .collect();
    assert_eq!(trash.len(), 2, "both old trees wait while held: {trash:?}");
    let listing = std::fs::read_dir(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&old_tree)
    ))
    .unwrap()
    .count();
    assert!(listing > 0, "the reader still sees its tree");
    drop((first, forced, old_tree));
    // The last holder in this process deleted them.
    assert!(tmp_entries(env.cache_dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_pull_does_not_trust_a_layer_without_its_tree() {
    let env = env_with_images().await;
    let first = pull(&env, "lc/a:1").await;
    let damaged = first.layers[1].clone();
    drop(first);
    std::fs::remove_dir_all(&damaged).unwrap();
    let never = env
        .registry_client()
        .pull(
            &env.reference("lc/a:1"),
            &PullOptions {
                pull_policy: PullPolicy::Never,
                ..PullOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(never.kind(), ErrorKind::NotCached, "{never}");
    let again = pull(&env, "lc/a:1").await;
    assert!(!again.cached);
    assert!(damaged.join("app/a").is_file(), "rebuilt");
    // A layer directory replaced by a symlink is not a layer either.
    let layer_dir = damaged.parent().unwrap().to_owned();
    let elsewhere = env.cache_dir.path().join("elsewhere");
    drop(again);
    std::fs::rename(&layer_dir, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &layer_dir).unwrap();
    let again = pull(&env, "lc/a:1").await;
    assert!(!again.cached);
    assert!(
        std::fs::symlink_metadata(&layer_dir).unwrap().is_dir(),
        "the symlink was swapped out"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_and_pulls_in_one_process_never_lose_a_layer() {
    let env = env_with_images().await;
    let cache = env.cache();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                cache
                    .gc(&GcPolicy {
                        max_size: Some(0),
                        ..GcPolicy::default()
                    })
                    .unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let registry = env.registry_client();
    for i in 0..40 {
        let tag = ["lc/a:1", "lc/b:1", "lc/a:latest"][i % 3];
        let result = registry
            .pull(&env.reference(tag), &PullOptions::default())
            .await
            .unwrap();
        for (tree, index) in result.layers.iter().zip(&result.layer_indexes) {
            assert!(
                tree.is_dir() && index.is_file(),
                "pull {i}: {} lost",
                tree.display()
            );
        }
        let stack = result.layer_stack().unwrap();
        drop(result);
        assert!(
            stack.get(b"etc/base").unwrap().is_some(),
            "pull {i}: the stack's layers stay"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = collector.join().unwrap();
    assert!(rounds > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_cache_is_refused_and_planted_symlinks_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let env = env_with_images().await;
    let root = env.cache_dir.path().to_owned();
    drop(pull(&env, "lc/a:1").await);
    let refused = |what: &str| {
        let e = microsandbox_image::GlobalCache::new(&root)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing") && e.contains("fix:"), "{what}: {e}");
        e
    };
    // Writable by others.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(refused("0777 root").contains("chmod go-w"));
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    // `layers/` swapped for a symlink to someone else's tree.
    let theirs = tempfile::tempdir().unwrap();
    std::fs::rename(root.join("layers"), theirs.path().join("layers")).unwrap();
    std::os::unix::fs::symlink(theirs.path().join("layers"), root.join("layers")).unwrap();
    assert!(refused("symlinked layers/").contains("is a symlink"));
    std::fs::remove_file(root.join("layers")).unwrap();
    std::fs::rename(theirs.path().join("layers"), root.join("layers")).unwrap();
    // Owned by another user (only root can make one).
    if rustix::process::geteuid().is_root() {
        let images = root.join("images");
        std::os::unix::fs::chown(&images, Some(4242), Some(4242)).unwrap();
        assert!(refused("foreign images/").contains("uid 4242"));
        std::os::unix::fs::chown(&images, Some(0), Some(0)).unwrap();
    }
    // A symlink planted at a lock file: the pull fails instead of creating the target.
    let (_, b_layers) = images();
    let planted = root.join(format!(
        "locks/layer-{}.lock",
        b_layers.layers[1].diff_id.trim_start_matches("sha256:")
    ));
    let target = theirs.path().join("created-through-the-link");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    let err = env
        .registry_client()
        .pull(&env.reference("lc/b:1"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lock"), "{err}");
    assert!(!target.exists(), "nothing created through the planted link");
}
