//! Builder → bytes → reader round trips: metadata of every kind, repeated paths, whiteouts,
//! opaque markers, implicit directories, hardlinks, and refused inputs.

use super::*;
use crate::index::{EntryKind, IndexError};

#[test]
fn round_trips_every_kind_and_field() {
    let mut b = IndexBuilder::new();
    b.add(
        b"",
        EntryMeta {
            uid: 7,
            mtime_sec: 99,
            ..dir()
        },
    )
    .unwrap();
    b.add(b"dev", dir()).unwrap();
    let full = EntryMeta {
        mode: 0o104755,
        uid: 1000,
        gid: 0xdead_beef,
        size: 1 << 40,
        rdev: 55, // dropped: not a device
        mtime_sec: -5,
        mtime_nsec: 999_999_999,
        inode: u64::MAX,
        link_target: Some(b"ignored".to_vec()),
        xattrs: vec![
            (b"user.b".to_vec(), b"1".to_vec()),
            (b"security.capability".to_vec(), vec![0, 1, 2]),
            (b"user.b".to_vec(), b"2".to_vec()),
        ],
        implicit: false,
    };
    b.add(b"dev/file", full.clone()).unwrap();
    let link = EntryMeta {
        mode: 0o120777,
        size: 1,
        link_target: Some(b"../target".to_vec()),
        ..EntryMeta::default()
    };
    b.add(b"dev/link", link).unwrap();
    b.add(
        b"dev/null",
        EntryMeta {
            mode: 0o020666,
            rdev: 0x103,
            size: 9,
            ..EntryMeta::default()
        },
    )
    .unwrap();
    b.add(
        b"dev/sda",
        EntryMeta {
            mode: 0o060660,
            rdev: 0x800,
            ..EntryMeta::default()
        },
    )
    .unwrap();
    b.add(
        b"dev/pipe",
        EntryMeta {
            mode: 0o010600,
            ..EntryMeta::default()
        },
    )
    .unwrap();
    assert_eq!(b.len(), 6);
    let index = LayerIndex::from_bytes(b.finish().unwrap()).unwrap();
    assert_eq!(index.len(), 6);

    let root = index.root();
    assert_eq!(
        (
            root.kind(),
            root.uid(),
            root.mtime_sec(),
            root.is_implicit()
        ),
        (EntryKind::Dir, 7, 99, false)
    );
    assert_eq!(root.nlink(), 3);
    let f = index.get(b"dev/file").unwrap().unwrap();
    assert_eq!(f.kind(), EntryKind::File);
    assert_eq!(f.mode(), 0o104755);
    assert_eq!(
        (f.uid(), f.gid(), f.size(), f.rdev()),
        (1000, 0xdead_beef, 1 << 40, 0)
    );
    assert_eq!(
        (f.mtime_sec(), f.mtime_nsec(), f.inode()),
        (-5, 999_999_999, u64::MAX)
    );
    assert_eq!(f.link_target(), None);
    assert!(f.has_xattrs() && !f.is_hardlink() && !f.is_whiteout() && f.nlink() == 1);
    let xattrs: Vec<_> = f.xattrs().collect();
    assert_eq!(
        xattrs,
        [
            (&b"security.capability"[..], &[0u8, 1, 2][..]),
            (b"user.b", b"2")
        ]
    );
    assert_eq!(f.xattr(b"user.b"), Some(&b"2"[..]));
    assert_eq!(f.xattr(b"user.c"), None);
    assert_eq!(f.path(), b"dev/file");

    let l = index.get(b"dev/link").unwrap().unwrap();
    assert_eq!(
        (l.kind(), l.size(), l.link_target()),
        (EntryKind::Symlink, 9, Some(&b"../target"[..]))
    );
    let n = index.get(b"dev/null").unwrap().unwrap();
    assert_eq!(
        (n.kind(), n.rdev(), n.size()),
        (EntryKind::CharDevice, 0x103, 0)
    );
    assert_eq!(
        index.get(b"dev/sda").unwrap().unwrap().kind(),
        EntryKind::BlockDevice
    );
    assert_eq!(
        index.get(b"dev/pipe").unwrap().unwrap().kind(),
        EntryKind::Fifo
    );
    assert_eq!(index.get(b"dev").unwrap().unwrap().xattrs().len(), 0);
}

#[test]
fn lookups_are_sorted_and_need_canonical_paths() {
    let index = build(&[
        ("a", dir()),
        ("a/b", dir()),
        ("a-b", file(1)),
        ("a/b/z", file(2)),
        ("a/b/A", file(3)),
        ("a/b/m", dir()),
        ("a/c", file(4)),
    ]);
    assert_eq!(names(&index, ""), ["a", "a-b"]);
    assert_eq!(names(&index, "a/b"), ["A", "m", "z"]);
    assert_eq!(names(&index, "/a/b/"), ["A", "m", "z"]);
    assert_eq!(index.get(b"/a/b/z/").unwrap().unwrap().size(), 2);
    assert_eq!(index.lookup(b"a/b", b"A").unwrap().unwrap().size(), 3);
    assert_eq!(index.lookup(b"", b"a-b").unwrap().unwrap().size(), 1);
    for missing in ["a//b", "a/./b", "a/b/../c", "a/x", "x/y", "a/c/d", "a-b/x"] {
        assert!(
            index.get(missing.as_bytes()).unwrap().is_none(),
            "{missing}"
        );
    }
    assert!(index.read_dir(b"a/c").unwrap().is_none(), "not a directory");
    assert!(index.lookup(b"a/c", b"x").unwrap().is_none());
    assert_eq!(index.get(b"a/b/m").unwrap().unwrap().path(), b"a/b/m");
    assert_eq!(index.get(b"a").unwrap().unwrap().nlink(), 3);
    assert!(index.root().path().is_empty());
}

#[test]
fn repeated_paths_behave_as_on_disk() {
    let index = build(&[
        ("f", file(1)),
        ("f", file(2)),
        ("d", dir()),
        ("d/keep", file(3)),
        ("d", EntryMeta { uid: 5, ..dir() }),
        ("gone", dir()),
        ("gone/sub", dir()),
        ("gone/sub/x", file(1)),
        ("gone", file(9)),
        ("was_file", file(1)),
        ("was_file", dir()),
        ("was_file/y", file(1)),
    ]);
    assert_eq!(index.get(b"f").unwrap().unwrap().size(), 2);
    assert_eq!(
        index.get(b"d").unwrap().unwrap().uid(),
        5,
        "directory over directory takes new metadata"
    );
    assert_eq!(names(&index, "d"), ["keep"], "and keeps the children");
    let gone = index.get(b"gone").unwrap().unwrap();
    assert_eq!((gone.kind(), gone.size()), (EntryKind::File, 9));
    assert!(
        index.get(b"gone/sub").unwrap().is_none() && index.read_dir(b"gone/sub").unwrap().is_none()
    );
    assert_eq!(names(&index, "was_file"), ["y"]);
    assert_eq!(index.len(), 6);
}

#[test]
fn implicit_directories() {
    let mut b = IndexBuilder::new();
    b.add(b"a", implicit()).unwrap();
    b.add(b"a/b", implicit()).unwrap();
    b.add(b"a/b/f", file(1)).unwrap();
    b.add(b"a", EntryMeta { uid: 3, ..dir() }).unwrap(); // explicit later: clears implicit
    b.add(b"a/b", implicit()).unwrap(); // implicit again: no effect
    b.add(b"f", file(1)).unwrap();
    let err = b.add(b"f", implicit()).unwrap_err();
    assert!(matches!(err, IndexError::InvalidEntry { .. }), "{err}");
    let index = LayerIndex::from_bytes(b.finish().unwrap()).unwrap();
    assert!(
        index.root().is_implicit(),
        "no ./ entry: the root is a placeholder"
    );
    assert_eq!(index.root().mode(), 0o040755);
    let a = index.get(b"a").unwrap().unwrap();
    assert!(!a.is_implicit() && a.uid() == 3);
    assert!(index.get(b"a/b").unwrap().unwrap().is_implicit());
}

#[test]
fn whiteouts_and_opaque_markers() {
    let index = build(&[
        ("d", dir()),
        (
            "d/.wh.gone",
            EntryMeta {
                uid: 4,
                mtime_sec: 8,
                ..file(0)
            },
        ),
        ("d/.wh..wh..opq", file(0)),
        // `.wh..wh.x` deletes `.wh.x` (as containerd and umoci read it)
        ("d/.wh..wh.plnk", file(0)),
        // whiteout after the real entry: the entry stays, a directory becomes opaque
        ("d/kept", dir()),
        ("d/kept/x", file(1)),
        ("d/.wh.kept", file(0)),
        ("d/.wh.file", file(0)),
        ("d/file", file(3)),
        // whiteout before a real directory: replaced, opaque
        ("d/.wh.sub", file(0)),
        ("d/sub", dir()),
        // whiteout then implicit directory: opaque, and the placeholder becomes real
        ("d/.wh.imp", file(0)),
        ("d/imp", implicit()),
        ("d/imp/y", file(1)),
        ("e", dir()),
    ]);
    assert_eq!(
        names(&index, "d"),
        [".wh.plnk", "file", "gone", "imp", "kept", "sub"]
    );
    assert!(index.get(b"d/.wh.plnk").unwrap().unwrap().is_whiteout());
    let gone = index.get(b"d/gone").unwrap().unwrap();
    assert_eq!(gone.kind(), EntryKind::Whiteout);
    assert!(gone.is_whiteout());
    assert_eq!(
        (gone.mode(), gone.rdev(), gone.uid(), gone.mtime_sec()),
        (0o020000, 0, 4, 8)
    );
    assert!(index.get(b"d").unwrap().unwrap().is_opaque());
    assert!(!index.get(b"e").unwrap().unwrap().is_opaque());
    let kept = index.get(b"d/kept").unwrap().unwrap();
    assert!(kept.is_dir() && kept.is_opaque());
    assert_eq!(names(&index, "d/kept"), ["x"]);
    assert_eq!(index.get(b"d/file").unwrap().unwrap().size(), 3);
    assert!(index.get(b"d/sub").unwrap().unwrap().is_opaque());
    let imp = index.get(b"d/imp").unwrap().unwrap();
    assert!(imp.is_opaque() && !imp.is_implicit());
    assert!(index.get(b"d/.wh.gone").unwrap().is_none());
    assert_eq!(index.get(b"d").unwrap().unwrap().nlink(), 5);
}

#[test]
fn whiteouts_of_nothing_or_of_a_directory_itself_are_refused() {
    for bad in [&b"d/.wh."[..], b"d/.wh..", b"d/.wh...", b".wh.."] {
        let mut b = IndexBuilder::new();
        b.add(b"d", dir()).unwrap();
        let err = b.add(bad, file(0)).unwrap_err();
        assert!(
            matches!(err, IndexError::InvalidEntry { .. }),
            "{}: {err}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut b = IndexBuilder::new();
    assert!(b.add_whiteout(b"", file(0)).is_err());
}

#[test]
fn literal_entries_keep_whiteout_like_names_and_markers_can_be_explicit() {
    let mut b = IndexBuilder::new();
    b.add(b"etc", dir()).unwrap();
    b.add_literal(b".wh.etc", implicit()).unwrap();
    b.add(b".wh.etc/somefile", file(9)).unwrap();
    b.add_whiteout(b"etc", file(0)).unwrap();
    b.add_whiteout(b"gone", EntryMeta { uid: 7, ..file(0) })
        .unwrap();
    b.set_opaque(b".wh.etc").unwrap();
    b.set_opaque(b"").unwrap();
    let index = LayerIndex::from_bytes(b.finish().unwrap()).unwrap();
    assert_eq!(names(&index, ""), [".wh.etc", "etc", "gone"]);
    let wh_dir = index.get(b".wh.etc").unwrap().unwrap();
    assert!(wh_dir.is_dir() && wh_dir.is_opaque());
    assert_eq!(index.get(b".wh.etc/somefile").unwrap().unwrap().size(), 9);
    let etc = index.get(b"etc").unwrap().unwrap();
    assert!(
        etc.is_dir() && etc.is_opaque(),
        "a whiteout of a real directory"
    );
    assert_eq!(index.get(b"gone").unwrap().unwrap().uid(), 7);
    assert!(index.root().is_opaque());
}

#[test]
fn hardlinks() {
    let mut b = IndexBuilder::new();
    b.add(b"bin", dir()).unwrap();
    b.add(
        b"bin/a",
        EntryMeta {
            inode: 10,
            xattrs: vec![(b"k".to_vec(), b"v".to_vec())],
            ..file(5)
        },
    )
    .unwrap();
    b.add_hardlink(b"bin/b", b"bin/a").unwrap();
    b.add_hardlink(b"c", b"bin/b").unwrap();
    b.add_hardlink(b"c", b"c").unwrap(); // to itself: nothing
    b.add(
        b"solo",
        EntryMeta {
            inode: 11,
            ..file(1)
        },
    )
    .unwrap();
    b.add_hardlink(b"pair", b"solo").unwrap();
    b.add(
        b"solo",
        EntryMeta {
            inode: 12,
            ..file(1)
        },
    )
    .unwrap(); // replaced: pair is alone
    b.add(
        b"lnk",
        EntryMeta {
            mode: 0o120777,
            link_target: Some(b"x".to_vec()),
            inode: 13,
            ..EntryMeta::default()
        },
    )
    .unwrap();
    b.add_hardlink(b"lnk2", b"lnk").unwrap();
    let e = |r: Result<(), IndexError>| assert!(matches!(r, Err(IndexError::InvalidEntry { .. })));
    e(b.add_hardlink(b"x", b"missing"));
    e(b.add_hardlink(b"x", b"bin"));
    e(b.add_hardlink(b"x", b""));
    e(b.add_hardlink(b"", b"c"));
    e(b.add_hardlink(b"x", b"nodir/y"));
    let index = LayerIndex::from_bytes(b.finish().unwrap()).unwrap();
    let group: Vec<Vec<u8>> = index.hardlinks_of(10).unwrap().map(|e| e.path()).collect();
    // Entry order: the root's group comes before bin's.
    assert_eq!(group, [b"c".to_vec(), b"bin/a".to_vec(), b"bin/b".to_vec()]);
    for p in ["bin/a", "bin/b", "c"] {
        let e = index.get(p.as_bytes()).unwrap().unwrap();
        assert!(
            e.is_hardlink() && e.nlink() == 3 && e.size() == 5 && e.inode() == 10,
            "{p}"
        );
        assert_eq!(e.xattr(b"k"), Some(&b"v"[..]));
    }
    let pair = index.get(b"pair").unwrap().unwrap();
    assert!(!pair.is_hardlink() && pair.nlink() == 1);
    assert_eq!(index.hardlinks_of(11).unwrap().count(), 0);
    assert_eq!(index.hardlinks_of(12).unwrap().count(), 0);
    assert_eq!(
        index.get(b"lnk2").unwrap().unwrap().link_target(),
        Some(&b"x"[..])
    );
    assert_eq!(index.hardlinks_of(13).unwrap().count(), 2);
    assert_eq!(index.hardlinks_of(9).unwrap().count(), 0);
}

#[test]
fn refuses_what_the_extractor_cannot_produce() {
    let mut b = IndexBuilder::new();
    b.add(b"f", file(1)).unwrap();
    for (path, meta) in [
        (&b"/abs"[..], file(1)),
        (b"a//b", file(1)),
        (b"a/./b", file(1)),
        (b"../x", file(1)),
        (b"nul\0", file(1)),
        (b"missing/x", file(1)),
        (b"f/x", file(1)),
        (
            b"bad",
            EntryMeta {
                mode: 0o140755,
                ..EntryMeta::default()
            },
        ),
        (
            b"bad",
            EntryMeta {
                mtime_nsec: 1_000_000_000,
                ..file(1)
            },
        ),
        (
            b"bad",
            EntryMeta {
                implicit: true,
                ..file(1)
            },
        ),
        (
            b"bad",
            EntryMeta {
                xattrs: vec![(Vec::new(), Vec::new())],
                ..file(1)
            },
        ),
        (b"", file(1)),
    ] {
        let err = b.add(path, meta).unwrap_err();
        assert!(matches!(err, IndexError::InvalidEntry { .. }), "{err}");
        assert!(!err.is_corrupt());
    }
    let long = vec![b'n'; 70_000];
    assert!(b.add(&long, file(1)).is_err());
    assert_eq!(b.len(), 1);
}

#[test]
fn empty_layer() {
    let index = LayerIndex::from_bytes(IndexBuilder::default().finish().unwrap()).unwrap();
    assert!(index.is_empty());
    assert_eq!(index.read_dir(b"").unwrap().unwrap().len(), 0);
    assert!(index.get(b"x").unwrap().is_none());
    assert!(index.root().is_implicit());
}

#[test]
fn open_maps_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("index");
    let mut b = IndexBuilder::new();
    b.add(b"etc", dir()).unwrap();
    std::fs::write(&path, b.finish().unwrap()).unwrap();
    let index = LayerIndex::open(&path).unwrap();
    assert!(index.get(b"etc").unwrap().unwrap().is_dir());
    let copy = index.clone();
    drop(index);
    assert_eq!(copy.len(), 1);
    let err = LayerIndex::open(tmp.path().join("nope")).unwrap_err();
    assert!(matches!(err, IndexError::Io { op: "open", .. }), "{err}");
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(
        LayerIndex::open(&path),
        Err(IndexError::Truncated { .. })
    ));
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LayerIndex>();
    send_sync::<crate::index::LayerStack>();
    send_sync::<crate::index::Entry<'static>>();
    send_sync::<IndexBuilder>();
}
