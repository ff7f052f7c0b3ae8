//! The sidecar index as a pull produces it: built during extraction, merged across layers
//! with overlay rules, equal to an index rebuilt from the extracted tree, and added later
//! (without network) to layers first pulled with `build_index: false`.

mod common;

use common::Fixture;
use microsandbox_image::index::{EntryKind, LayerIndex, LayerStack};
use microsandbox_image::stat::{encode_dev, mode};
use microsandbox_image::{PullOptions, PullProgress, PullResult};
use msbimage_testkit::fixtures::{LONG_PATH, OVERWRITTEN_FINAL, RANDOM_100K_LEN};

fn stack_of(res: &PullResult) -> LayerStack {
    LayerStack::new(
        res.layers
            .iter()
            .map(|fs| LayerIndex::open(fs.parent().unwrap().join("index")).unwrap())
            .collect(),
    )
}

/// Every visible entry as comparable text.
fn walk_text(stack: &LayerStack) -> Vec<String> {
    stack
        .walk()
        .map(Result::unwrap)
        .map(|(path, e)| {
            let xattrs: Vec<String> = e
                .xattrs()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect();
            format!(
                "{} {:o} {}:{} size={} rdev={} mtime={}.{} target={:?} xattrs={xattrs:?}",
                String::from_utf8_lossy(&path),
                e.mode(),
                e.uid(),
                e.gid(),
                e.size(),
                e.rdev(),
                e.mtime_sec(),
                e.mtime_nsec(),
                e.link_target()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            )
        })
        .collect()
}

#[tokio::test]
async fn merged_view_of_the_standard_image() {
    let f = Fixture::start().await;
    let registry = f.registry_client();
    let res = registry
        .pull(
            &f.reference("fixtures/standard:gzip"),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let stack = stack_of(&res);

    assert!(
        stack.get(b"etc/to-delete").unwrap().is_none(),
        "whiteout hides the lower file"
    );
    assert!(
        stack.get(b"opaque/old-a").unwrap().is_none(),
        "opaque dir cuts off the lower layer"
    );
    assert!(stack.get(b"opaque/new").unwrap().is_some());
    let names: Vec<Vec<u8>> = stack
        .read_dir(b"opaque")
        .unwrap()
        .unwrap()
        .iter()
        .map(|e| e.name().to_vec())
        .collect();
    assert_eq!(names, [b"new".to_vec()]);
    let overwritten = stack.get(b"etc/overwritten").unwrap().unwrap();
    assert_eq!(
        (overwritten.size(), overwritten.layer()),
        (OVERWRITTEN_FINAL.len() as u64, 1)
    );
    let suid = stack.get(b"usr/bin/suid").unwrap().unwrap();
    assert_eq!(suid.mode(), mode::S_IFREG | 0o4755);
    let link = stack.get(b"etc/abs-link").unwrap().unwrap();
    assert_eq!(link.kind(), EntryKind::Symlink);
    assert_eq!(link.link_target(), Some(&b"/usr/bin/tool"[..]));
    let tool = stack.get(b"usr/bin/tool").unwrap().unwrap();
    let hard = stack.get(b"usr/bin/tool-hardlink").unwrap().unwrap();
    assert_eq!(tool.inode(), hard.inode());
    assert_eq!(tool.nlink(), 2);
    let null = stack.get(b"dev/null").unwrap().unwrap();
    assert_eq!(
        (null.kind(), null.rdev()),
        (EntryKind::CharDevice, encode_dev(1, 3))
    );
    assert_eq!(
        stack.get(b"dev/fifo").unwrap().unwrap().kind(),
        EntryKind::Fifo
    );
    assert_eq!(
        stack.get(b"data/random-100k").unwrap().unwrap().size(),
        RANDOM_100K_LEN as u64
    );
    assert!(stack.get(LONG_PATH.as_bytes()).unwrap().is_some());
    let owned = stack.get(b"home/user/owned").unwrap().unwrap();
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    assert_eq!(
        stack
            .get(b"app/xattr-file")
            .unwrap()
            .unwrap()
            .xattr(b"user.test"),
        Some(&b"hello"[..])
    );
    // The host inode in the index is the file the runtime will open.
    let on_disk = std::fs::metadata(res.layers[0].join("usr/bin/tool")).unwrap();
    assert_eq!(tool.inode(), std::os::unix::fs::MetadataExt::ino(&on_disk));
    // No whiteout or marker is visible in the merged walk.
    let all = walk_text(&stack);
    assert!(all.iter().all(|l| !l.contains(".wh.")), "{all:#?}");
    assert!(all.len() > 30, "{}", all.len());
}

#[tokio::test]
async fn index_events_and_a_later_index_for_layers_pulled_without_one() {
    let mut f = Fixture::start().await;
    let registry = f.registry_client();
    let r = f.reference("fixtures/standard:zstd");
    let no_index = PullOptions {
        build_index: false,
        ..Default::default()
    };
    let res = registry.pull(&r, &no_index).await.unwrap();
    for l in &res.layers {
        assert!(!l.parent().unwrap().join("index").exists());
    }

    // Registry gone: indexing the cached layers needs no network.
    drop(std::mem::replace(
        &mut f.registry,
        msbimage_testkit::Registry::start(Default::default())
            .await
            .unwrap(),
    ));
    let (mut progress, task) = registry.pull_with_progress(&r, &PullOptions::default());
    let mut indexed = Vec::new();
    while let Some(ev) = progress.recv().await {
        if let PullProgress::LayerIndexComplete {
            layer_index,
            entries,
        } = ev
        {
            indexed.push((layer_index, entries));
        }
    }
    let again = task.await.unwrap().unwrap();
    assert!(again.cached);
    assert_eq!(
        indexed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let rebuilt = walk_text(&stack_of(&again));

    // The same image extracted with the index built on the fly gives the same merged view.
    let fresh = Fixture::start().await;
    let res2 = fresh
        .registry_client()
        .pull(
            &fresh.reference("fixtures/standard:zstd"),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let streamed = walk_text(&stack_of(&res2));
    assert_eq!(rebuilt, streamed);
}

#[tokio::test]
async fn index_events_come_after_verification_in_order() {
    let f = Fixture::start().await;
    let (mut progress, task) = f.registry_client().pull_with_progress(
        &f.reference("fixtures/standard:none"),
        &PullOptions::default(),
    );
    let mut events = Vec::new();
    while let Some(ev) = progress.recv().await {
        events.push(ev);
    }
    task.await.unwrap().unwrap();
    use PullProgress as P;
    for i in 0..3 {
        let at = |pred: &dyn Fn(&P) -> bool| {
            events
                .iter()
                .position(pred)
                .unwrap_or_else(|| panic!("{events:#?}"))
        };
        let dl =
            at(&|e| matches!(e, P::LayerDownloadComplete { layer_index, .. } if *layer_index == i));
        let ex =
            at(&|e| matches!(e, P::LayerExtractComplete { layer_index, .. } if *layer_index == i));
        let is = at(&|e| matches!(e, P::LayerIndexStarted { layer_index } if *layer_index == i));
        let ic =
            at(&|e| matches!(e, P::LayerIndexComplete { layer_index, .. } if *layer_index == i));
        assert!(dl < ex && ex < is && is < ic, "layer {i}: {events:#?}");
    }
}
