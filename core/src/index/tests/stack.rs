//! Overlay rules of `LayerStack`, case by case, then a randomized differential test against
//! a model that applies layers one after another the way a container runtime would.

use std::collections::BTreeMap;

use super::*;
use crate::index::{EntryKind, LayerStack};

fn stack(layers: &[&[(&str, EntryMeta)]]) -> LayerStack {
    LayerStack::new(layers.iter().map(|l| build(l)).collect())
}

fn merged_names(s: &LayerStack, path: &str) -> Option<Vec<String>> {
    let entries = s.read_dir(path.as_bytes()).unwrap()?;
    Some(
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(e.name()).into_owned())
            .collect(),
    )
}

fn uid(u: u32, m: EntryMeta) -> EntryMeta {
    EntryMeta { uid: u, ..m }
}

#[test]
fn overlay_rules() {
    let wh = || file(0);
    // (layers bottom→top, path, expected (kind, uid, layer) or None, expected listing of path)
    type Case<'a> = (
        Vec<Vec<(&'a str, EntryMeta)>>,
        &'a str,
        Option<(EntryKind, u32, usize)>,
        Option<Vec<&'a str>>,
    );
    let cases: Vec<Case> = vec![
        // upper wins
        (
            vec![vec![("f", uid(1, file(1)))], vec![("f", uid(2, file(2)))]],
            "f",
            Some((EntryKind::File, 2, 1)),
            None,
        ),
        // whiteout hides a file, and a whole directory
        (
            vec![vec![("f", file(1)), ("g", file(1))], vec![(".wh.f", wh())]],
            "f",
            None,
            None,
        ),
        (
            vec![vec![("d", dir()), ("d/x", file(1))], vec![(".wh.d", wh())]],
            "d/x",
            None,
            None,
        ),
        (
            vec![vec![("f", file(1)), ("g", file(1))], vec![(".wh.f", wh())]],
            "",
            Some((EntryKind::Dir, 0, 1)),
            Some(vec!["g"]),
        ),
        // a whiteout with nothing below still hides nothing visible
        (
            vec![vec![("g", file(1))], vec![(".wh.x", wh())]],
            "",
            Some((EntryKind::Dir, 0, 1)),
            Some(vec!["g"]),
        ),
        // opaque cuts everything below, also from a middle layer
        (
            vec![
                vec![("d", dir()), ("d/a", file(1))],
                vec![
                    ("d", uid(3, dir())),
                    ("d/.wh..wh..opq", wh()),
                    ("d/c", file(1)),
                ],
            ],
            "d",
            Some((EntryKind::Dir, 3, 1)),
            Some(vec!["c"]),
        ),
        (
            vec![
                vec![("d", dir()), ("d/a", file(1))],
                vec![("d", dir()), ("d/.wh..wh..opq", wh()), ("d/b", file(1))],
                vec![("d", dir()), ("d/c", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 2)),
            Some(vec!["b", "c"]),
        ),
        (
            vec![
                vec![("d", dir()), ("d/a", file(1))],
                vec![("d", dir()), ("d/.wh..wh..opq", wh())],
            ],
            "d/a",
            None,
            None,
        ),
        // a file over a directory, a directory over a file
        (
            vec![
                vec![("d", dir()), ("d/x", file(1))],
                vec![("d", uid(4, file(1)))],
            ],
            "d",
            Some((EntryKind::File, 4, 1)),
            None,
        ),
        (
            vec![vec![("d", dir()), ("d/x", file(1))], vec![("d", file(1))]],
            "d/x",
            None,
            None,
        ),
        (
            vec![
                vec![("d", file(1))],
                vec![("d", uid(5, dir())), ("d/y", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 5, 1)),
            Some(vec!["y"]),
        ),
        (
            vec![
                vec![("d", dir()), ("d/x", file(1))],
                vec![("d", file(1))],
                vec![("d", dir()), ("d/y", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 2)),
            Some(vec!["y"]),
        ),
        // implicit directories take the nearest real lower directory's metadata
        (
            vec![
                vec![("d", uid(6, dir())), ("d/a", file(1))],
                vec![("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 6, 0)),
            Some(vec!["a", "b"]),
        ),
        (
            vec![
                vec![("d", uid(6, dir()))],
                vec![("d", implicit())],
                vec![("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 6, 0)),
            Some(vec!["b"]),
        ),
        (
            vec![
                vec![("e", dir())],
                vec![("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 1)),
            None,
        ),
        (
            vec![
                vec![("d", uid(6, dir()))],
                vec![(".wh.d", wh())],
                vec![("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 2)),
            Some(vec!["b"]),
        ),
        (
            vec![
                vec![("d", uid(6, file(1)))],
                vec![("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 1)),
            Some(vec!["b"]),
        ),
        // an implicit opaque directory: lower metadata, upper contents
        (
            vec![
                vec![("d", uid(6, dir())), ("d/a", file(1))],
                vec![
                    ("d", implicit()),
                    ("d/.wh..wh..opq", wh()),
                    ("d/b", file(1)),
                ],
            ],
            "d",
            Some((EntryKind::Dir, 6, 0)),
            Some(vec!["b"]),
        ),
        // same-layer whiteout + implicit directory: the lower one is gone, placeholder is real
        (
            vec![
                vec![("d", uid(6, dir())), ("d/a", file(1))],
                vec![(".wh.d", wh()), ("d", implicit()), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 0, 1)),
            Some(vec!["b"]),
        ),
        // whiteout, then re-added higher up
        (
            vec![
                vec![("f", uid(1, file(1)))],
                vec![(".wh.f", wh())],
                vec![("f", uid(3, file(3)))],
            ],
            "f",
            Some((EntryKind::File, 3, 2)),
            None,
        ),
        (
            vec![
                vec![("d", dir()), ("d/a", file(1))],
                vec![(".wh.d", wh())],
                vec![("d", uid(7, dir())), ("d/b", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 7, 2)),
            Some(vec!["b"]),
        ),
        // below an implicit directory an intermediate layer's real directory wins
        (
            vec![
                vec![("d", uid(1, dir()))],
                vec![("d", uid(2, dir()))],
                vec![("d", implicit()), ("d/z", file(1))],
            ],
            "d",
            Some((EntryKind::Dir, 2, 1)),
            None,
        ),
        // roots: implicit roots take the lower root's metadata; an opaque root cuts
        (
            vec![
                vec![("", uid(9, dir())), ("a", file(1))],
                vec![("b", file(1))],
            ],
            "",
            Some((EntryKind::Dir, 9, 0)),
            Some(vec!["a", "b"]),
        ),
        (
            vec![
                vec![("", uid(9, dir())), ("a", file(1))],
                vec![(".wh..wh..opq", wh()), ("b", file(1))],
            ],
            "",
            Some((EntryKind::Dir, 9, 0)),
            Some(vec!["b"]),
        ),
        // a non-directory in the middle of a path
        (
            vec![vec![("d", dir()), ("d/x", file(1))], vec![("f", file(1))]],
            "f/x",
            None,
            None,
        ),
    ];
    for (i, (layers, path, want, listing)) in cases.into_iter().enumerate() {
        let refs: Vec<&[(&str, EntryMeta)]> = layers.iter().map(|l| &l[..]).collect();
        let s = stack(&refs);
        let got = s
            .get(path.as_bytes())
            .unwrap()
            .map(|e| (e.kind(), e.uid(), e.layer()));
        assert_eq!(got, want, "case {i}: get {path:?}");
        if let Some(names) = listing {
            assert_eq!(
                merged_names(&s, path).unwrap(),
                names,
                "case {i}: read_dir {path:?}"
            );
        }
        if want.is_none_or(|w| w.0 != EntryKind::Dir) {
            assert!(
                s.read_dir(path.as_bytes()).unwrap().is_none(),
                "case {i}: read_dir of a non-directory"
            );
        }
    }
}

#[test]
fn walk_is_preorder_and_sorted() {
    let s = stack(&[
        &[
            ("a", dir()),
            ("a/b", file(1)),
            ("a-b", file(1)),
            ("c", dir()),
            ("c/.wh.x", file(0)),
        ],
        &[
            ("a", implicit()),
            ("a/a", dir()),
            ("a/a/z", file(1)),
            ("c", dir()),
            ("c/x", file(1)),
        ],
        &[(".wh.c", file(0)), ("0", file(2))],
    ]);
    let paths: Vec<String> = s
        .walk()
        .map(Result::unwrap)
        .map(|(p, _)| String::from_utf8(p).unwrap())
        .collect();
    assert_eq!(paths, ["", "0", "a", "a/a", "a/a/z", "a/b", "a-b"]);
    for (p, e) in s.walk().map(Result::unwrap) {
        assert_eq!(
            s.get(&p).unwrap(),
            Some(e),
            "{}",
            String::from_utf8_lossy(&p)
        );
    }
}

#[test]
fn empty_and_deep_stacks() {
    let empty = LayerStack::new(Vec::new());
    assert!(empty.get(b"").unwrap().is_none() && empty.get(b"x").unwrap().is_none());
    assert!(empty.read_dir(b"").unwrap().is_none());
    assert_eq!(empty.walk().map(Result::unwrap).count(), 0);
    // More layers than fit the inline contributor buffer.
    let layers: Vec<LayerIndex> = (0..40)
        .map(|i| build(&[("d", implicit()), (&format!("d/f{i:02}"), file(i))]))
        .collect();
    let s = LayerStack::new(layers);
    for i in 0..40 {
        let e = s.get(format!("d/f{i:02}").as_bytes()).unwrap().unwrap();
        assert_eq!((e.size(), e.layer()), (i, i as usize));
    }
    assert_eq!(s.read_dir(b"d").unwrap().unwrap().len(), 40);
    assert_eq!(s.walk().map(Result::unwrap).count(), 42);
    assert_eq!(s.layers().len(), 40);
}

/// Model of the merged tree: components → ((kind, uid, layer), placeholder?).
type Model = BTreeMap<Vec<Vec<u8>>, ((EntryKind, u32, usize), bool)>;

fn remove_subtree(m: &mut Model, p: &[Vec<u8>], keep_self: bool) {
    let doomed: Vec<_> = m
        .range(p.to_vec()..)
        .take_while(|(k, _)| k.starts_with(p))
        .filter(|(k, _)| !keep_self || k.len() > p.len())
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        m.remove(&k);
    }
}

/// Apply one layer's directory `d` onto the model, as a runtime extracting layers in order.
fn apply(m: &mut Model, index: &LayerIndex, layer: usize, d: &[u8], at: &mut Vec<Vec<u8>>) {
    let here = if d.is_empty() {
        index.root()
    } else {
        index.get(d).unwrap().unwrap()
    };
    if here.is_opaque() {
        remove_subtree(m, at, true);
    }
    for e in index.read_dir(d).unwrap().unwrap() {
        at.push(e.name().to_vec());
        let mut child = d.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(e.name());
        let lower = m.get(at.as_slice()).copied();
        let lower_dir = lower.is_some_and(|v| v.0.0 == EntryKind::Dir);
        // A placeholder below an implicit directory gives way to the upper placeholder.
        let lower_real = lower.is_some_and(|v| !v.1);
        let this = ((e.kind(), e.uid(), layer), e.is_implicit());
        if e.is_whiteout() {
            remove_subtree(m, at, false);
        } else if e.is_dir() {
            if !lower_dir {
                remove_subtree(m, at, false);
                m.insert(at.clone(), this);
            } else if !e.is_implicit() || !lower_real {
                m.insert(at.clone(), this);
            }
            apply(m, index, layer, &child, at);
        } else {
            remove_subtree(m, at, false);
            m.insert(at.clone(), this);
        }
        at.pop();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random layer over names {a, b, c} up to depth 3, every real entry with a unique uid.
fn random_layer(rng: &mut Rng, uid: &mut u32) -> LayerIndex {
    let mut b = IndexBuilder::new();
    if rng.below(4) == 0 {
        *uid += 1;
        b.add(b"", EntryMeta { uid: *uid, ..dir() }).unwrap();
    }
    for _ in 0..rng.below(12) {
        let depth = 1 + rng.below(3) as usize;
        let comps: Vec<&[u8]> = (0..depth)
            .map(|_| [&b"a"[..], b"b", b"c"][rng.below(3) as usize])
            .collect();
        let mut ok = true;
        for k in 1..depth {
            ok &= b.add(&comps[..k].join(&b'/'), implicit()).is_ok();
        }
        if !ok {
            continue;
        }
        let path = comps.join(&b'/');
        *uid += 1;
        let name = |prefix: &[u8]| {
            let mut p = comps[..depth - 1].join(&b'/');
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(prefix);
            p.extend_from_slice(if prefix == b".wh." {
                comps[depth - 1]
            } else {
                b""
            });
            p
        };
        let _ = match rng.below(6) {
            0 | 1 => b.add(
                &path,
                EntryMeta {
                    uid: *uid,
                    ..file(1)
                },
            ),
            2 => b.add(&path, EntryMeta { uid: *uid, ..dir() }),
            3 => b.add(&path, implicit()),
            4 => b.add(&name(b".wh."), file(0)),
            _ => b.add(&name(b".wh..wh..opq"), file(0)),
        };
    }
    LayerIndex::from_bytes(b.finish().unwrap()).unwrap()
}

#[test]
fn matches_sequential_application() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut uid = 0;
    for round in 0..3000 {
        let layers: Vec<LayerIndex> = (0..1 + rng.below(4))
            .map(|_| random_layer(&mut rng, &mut uid))
            .collect();
        let mut model = Model::new();
        let mut root = ((EntryKind::Dir, 0, 0), true);
        for (k, index) in layers.iter().enumerate() {
            if !index.root().is_implicit() || root.1 {
                root = (
                    (EntryKind::Dir, index.root().uid(), k),
                    index.root().is_implicit(),
                );
            }
            apply(&mut model, index, k, b"", &mut Vec::new());
        }
        let s = LayerStack::new(layers);
        let walked: Vec<(Vec<u8>, (EntryKind, u32, usize))> = s
            .walk()
            .map(Result::unwrap)
            .map(|(p, e)| (p, (e.kind(), e.uid(), e.layer())))
            .collect();
        let mut expected = vec![(Vec::new(), root.0)];
        expected.extend(model.iter().map(|(k, v)| (k.join(&b'/'), v.0)));
        assert_eq!(walked, expected, "round {round}");
        for (p, v) in &expected {
            let e = s.get(p).unwrap().unwrap();
            assert_eq!((e.kind(), e.uid(), e.layer()), *v, "round {round}");
            if v.0 == EntryKind::Dir {
                let listed = s.read_dir(p).unwrap().unwrap().len();
                let children = model.keys().filter(|k| {
                    let parent: Vec<u8> = k[..k.len() - 1].join(&b'/');
                    parent == *p
                });
                assert_eq!(listed, children.count(), "round {round}");
            }
        }
        for miss in [&b"a/a/a/a"[..], b"d", b"a/d", b"b/b/d"] {
            assert!(s.get(miss).unwrap().is_none());
        }
    }
}
