//! The two trees of extraction side by side: every tar, hostile or not, gives the same
//! result with the layer directory and with names alone (`memory.rs`): the same error,
//! or the same EROFS image byte for byte.

use super::*;

/// A raw tar entry: any name and link name (none of `tar::Builder`'s checks).
fn raw(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], body: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_size(body.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// One tar entry: name, type, link name or body.
type Spec = (&'static str, char, &'static str);

/// Each case: its name and entries.
fn cases() -> Vec<(&'static str, Vec<Spec>)> {
    // Types: f file (body), d directory, l symlink, h hardlink (link names).
    vec![
        (
            "plain",
            vec![("a/", 'd', ""), ("a/f", 'f', "x"), ("a/l", 'l', "f")],
        ),
        (
            "replace file by dir",
            vec![("x", 'f', "1"), ("x/", 'd', ""), ("x/y", 'f', "2")],
        ),
        (
            "replace dir by file",
            vec![("x/y", 'f', "1"), ("x", 'f', "22")],
        ),
        (
            "same file twice",
            vec![("x", 'f', "first body"), ("x", 'f', "second")],
        ),
        (
            "walk through a file",
            vec![("x", 'f', "1"), ("x/y", 'f', "2")],
        ),
        (
            "walk through a file (dir)",
            vec![("x", 'f', "1"), ("x/y/", 'd', "")],
        ),
        ("hardlink to missing", vec![("h", 'h', "nope")]),
        (
            "hardlink to a directory",
            vec![("d/", 'd', ""), ("h", 'h', "d")],
        ),
        ("hardlink to the root", vec![("h", 'h', "./")]),
        (
            "hardlink through a file",
            vec![("x", 'f', "1"), ("h", 'h', "x/y/..")],
        ),
        ("hardlink to itself", vec![("x", 'f', "1"), ("x", 'h', "x")]),
        (
            "hardlink below itself",
            vec![("x/y", 'f', "1"), ("x", 'h', "x/y")],
        ),
        (
            "hardlink into a missing dir",
            vec![("x", 'f', "1"), ("a/b/h", 'h', "x")],
        ),
        (
            "hardlink under a file",
            vec![("x", 'f', "1"), ("x/h", 'h', "x")],
        ),
        (
            "hardlink to a whiteout",
            vec![(".wh.x", 'f', ""), ("h", 'h', "x")],
        ),
        (
            "hardlink to a symlink",
            vec![("l", 'l', "/etc"), ("h", 'h', "l"), ("h/f", 'f', "1")],
        ),
        (
            "hardlink climbing out",
            vec![("x", 'f', "1"), ("h", 'h', "/../../x")],
        ),
        (
            "symlink loop",
            vec![("a", 'l', "b"), ("b", 'l', "a"), ("a/x", 'f', "1")],
        ),
        (
            "symlink to a file, walked",
            vec![("f", 'f', "1"), ("l", 'l', "f"), ("l/x", 'f', "2")],
        ),
        (
            "symlink out",
            vec![("l", 'l', "../../.."), ("l/etc/x", 'f', "1")],
        ),
        ("empty symlink", vec![("l", 'l', "")]),
        ("whiteout of the root", vec![(".wh.", 'f', "")]),
        ("whiteout of the parent", vec![("a/.wh..", 'f', "")]),
        (
            "whiteout then entry",
            vec![
                (".wh.x", 'f', ""),
                ("x/y", 'f', "1"),
                ("x/.wh..wh..opq", 'f', ""),
            ],
        ),
        (
            "whiteout of own entry",
            vec![("x/", 'd', ""), ("x/y", 'f', "1"), (".wh.x", 'f', "")],
        ),
        (
            "whiteout twice",
            vec![(".wh.x", 'f', ""), (".wh.x", 'f', ""), ("x", 'f', "1")],
        ),
        (
            "whiteout under a file",
            vec![("x", 'f', "1"), ("x/.wh.y", 'f', "")],
        ),
        (
            "opaque under a file",
            vec![("x", 'f', "1"), ("x/.wh..wh..opq", 'f', "")],
        ),
        (
            "file over a whiteout dir",
            vec![(".wh.a", 'f', ""), ("a/b/c", 'f', "1"), ("a", 'f', "2")],
        ),
        (
            "dir twice",
            vec![("d/", 'd', ""), ("d/f", 'f', "1"), ("d/", 'd', "")],
        ),
        (
            "root entries",
            vec![("./", 'd', ""), ("/", 'f', "1"), ("..", 'l', "x")],
        ),
        ("deep", vec![("n", 'f', ""), ("", 'f', "")]),
    ]
}

fn tar_of(entries: &[Spec]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut out = Vec::new();
    for (name, kind, arg) in entries {
        let name = if name.is_empty() {
            // A component of 256 bytes is refused on both trees.
            "a/".repeat(10) + &"n".repeat(80)
        } else {
            name.to_string()
        };
        match kind {
            'f' => raw(&mut out, name.as_bytes(), T::Regular, b"", arg.as_bytes()),
            'd' => raw(&mut out, name.as_bytes(), T::Directory, b"", b""),
            'l' => raw(&mut out, name.as_bytes(), T::Symlink, arg.as_bytes(), b""),
            'h' => raw(&mut out, name.as_bytes(), T::Link, arg.as_bytes(), b""),
            _ => unreachable!(),
        }
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// The image of `tar`, extracted into a directory too or not; the error's text otherwise.
fn image_of(tar: &[u8], limits: ExtractLimits, with_tree: bool) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let (tree, image) = (dir.path().join("fs"), dir.path().join("layer.erofs"));
    std::fs::create_dir(&tree).unwrap();
    let tree = with_tree.then_some(tree.as_path());
    crate::layer::extract_layer_image(tar, tree, &image, limits).map_err(|e| e.to_string())?;
    Ok(std::fs::read(image).unwrap())
}

#[test]
fn both_trees_refuse_the_same_tars_and_write_the_same_images() {
    let tight = ExtractLimits {
        max_depth: 8,
        max_path_len: 100,
        max_entries: 5,
        max_file_size: 6,
        ..ExtractLimits::default()
    };
    let mut refused = 0;
    for (name, entries) in cases() {
        let tar = tar_of(&entries);
        for limits in [ExtractLimits::default(), tight] {
            let on_disk = image_of(&tar, limits, true);
            let in_memory = image_of(&tar, limits, false);
            refused += on_disk.is_err() as usize;
            assert_eq!(on_disk, in_memory, "{name}, {limits:?}");
        }
    }
    assert!(refused >= 12, "the table refuses {refused} times");
}
