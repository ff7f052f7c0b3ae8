//! [`NameTree`]: the tree of names a layer's tar builds as it is applied, shared by the index
//! builder (`writer.rs`, every entry with its metadata) and the image-only extractor's table
//! of names (`layer/extract/memory.rs`). It is held for a whole layer, so it is laid out for
//! memory: every name once in one arena, a node of ids (no pointers, no per-node allocation),
//! children a doubly linked list (a hostile tar's removals cost what they remove), found by
//! name through one `(parent, name)` hash table.

use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};

// foldhash: several times faster than SipHash on short names, and seeded per process, so a
// hostile layer cannot precompute colliding names.
use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// No node (the root's parent, no child, the end of a sibling list).
pub(crate) const NONE: u32 = u32::MAX;

/// The root's id.
pub(crate) const ROOT: u32 = 0;

/// One node: where it hangs, and what the tree's user keeps in it (`data`, reached through
/// `Deref`).
#[derive(Debug, Clone)]
pub(crate) struct Named<T> {
    name_start: usize,
    name_len: u16,
    parent: u32,
    first_child: u32,
    next: u32,
    prev: u32,
    data: T,
}

impl<T> Deref for Named<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T> DerefMut for Named<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

/// A tree of named nodes, the root first. A removed node and its name stay in the arrays,
/// detached (bounded by the tar that made them); ids are never reused.
#[derive(Debug, Clone)]
pub(crate) struct NameTree<T> {
    nodes: Vec<Named<T>>,
    /// Every node's name, back to back.
    names: Vec<u8>,
    /// Node ids by `(parent, name)`, for every attached node but the root.
    by_name: HashTable<u32>,
    hasher: RandomState,
}

impl<T> NameTree<T> {
    /// A tree of just the root, holding `root`.
    pub(crate) fn new(root: T) -> Self {
        NameTree {
            nodes: vec![Named {
                name_start: 0,
                name_len: 0,
                parent: NONE,
                first_child: NONE,
                next: NONE,
                prev: NONE,
                data: root,
            }],
            names: Vec::new(),
            by_name: HashTable::new(),
            hasher: RandomState::default(),
        }
    }

    /// Every node ever inserted (detached ones too), by id.
    pub(crate) fn nodes(&self) -> &[Named<T>] {
        &self.nodes
    }

    /// The data of node `id`, to change.
    pub(crate) fn get_mut(&mut self, id: u32) -> &mut T {
        &mut self.nodes[id as usize].data
    }

    /// The id the next inserted node gets.
    pub(crate) fn next_id(&self) -> usize {
        self.nodes.len()
    }

    /// The name of node `id`.
    pub(crate) fn name(&self, id: u32) -> &[u8] {
        let n = &self.nodes[id as usize];
        &self.names[n.name_start..n.name_start + usize::from(n.name_len)]
    }

    /// The children of node `id`, the latest inserted first.
    pub(crate) fn children(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.nodes[id as usize].first_child;
        std::iter::successors((first != NONE).then_some(first), |&c| {
            let next = self.nodes[c as usize].next;
            (next != NONE).then_some(next)
        })
    }

    fn hash(&self, parent: u32, name: &[u8]) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// The attached child `name` of `parent`.
    pub(crate) fn child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let h = self.hash(parent, name);
        self.by_name
            .find(h, |&id| {
                self.nodes[id as usize].parent == parent && self.name(id) == name
            })
            .copied()
    }

    /// A new node `name` under `parent` (which has no child of that name), holding `data`.
    /// `None` when the tree already holds `u32::MAX` nodes or the name is longer than 65535
    /// bytes (a layer's names are checked far below both).
    pub(crate) fn insert(&mut self, parent: u32, name: &[u8], data: T) -> Option<u32> {
        let id = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id != NONE)?;
        let name_len = u16::try_from(name.len()).ok()?;
        let next = self.nodes[parent as usize].first_child;
        self.nodes.push(Named {
            name_start: self.names.len(),
            name_len,
            parent,
            first_child: NONE,
            next,
            prev: NONE,
            data,
        });
        self.names.extend_from_slice(name);
        if next != NONE {
            self.nodes[next as usize].prev = id;
        }
        self.nodes[parent as usize].first_child = id;
        let h = self.hash(parent, name);
        let (nodes, names, hasher) = (&self.nodes, &self.names, &self.hasher);
        self.by_name.insert_unique(h, id, |&other| {
            let n = &nodes[other as usize];
            let name = &names[n.name_start..n.name_start + usize::from(n.name_len)];
            hasher.hash_one((n.parent, name))
        });
        Some(id)
    }

    /// Detach node `id` (not the root) and everything under it; returns how many nodes
    /// that was.
    pub(crate) fn remove(&mut self, id: u32) -> usize {
        let Named {
            parent, prev, next, ..
        } = self.nodes[id as usize];
        if prev == NONE {
            self.nodes[parent as usize].first_child = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        }
        let mut removed = 0;
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            removed += 1;
            stack.extend(self.children(n));
            let h = self.hash(self.nodes[n as usize].parent, self.name(n));
            if let Ok(entry) = self.by_name.find_entry(h, |&x| x == n) {
                entry.remove();
            }
            let node = &mut self.nodes[n as usize];
            node.first_child = NONE;
            node.parent = NONE;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_detaches_a_whole_subtree_and_only_it() {
        let mut t = NameTree::new('r');
        let d = t.insert(ROOT, b"d", 'd').unwrap();
        let x = t.insert(d, b"x", 'x').unwrap();
        t.insert(x, b"y", 'y').unwrap();
        let e = t.insert(ROOT, b"d-e", 'e').unwrap();
        assert_eq!(t.child(ROOT, b"d"), Some(d));
        assert_eq!(t.children(ROOT).collect::<Vec<_>>(), [e, d]);
        assert_eq!(t.remove(d), 3);
        assert_eq!((t.child(ROOT, b"d"), t.child(d, b"x")), (None, None));
        assert_eq!(t.children(ROOT).collect::<Vec<_>>(), [e]);
        let again = t.insert(ROOT, b"d", 'D').unwrap();
        assert_ne!(again, d, "ids are never reused");
        assert_eq!(t.child(again, b"x"), None);
        assert_eq!((t.name(e), *t.nodes()[again as usize]), (&b"d-e"[..], 'D'));
    }

    #[test]
    fn a_name_longer_than_the_node_holds_is_refused() {
        let mut t = NameTree::new(());
        assert_eq!(t.insert(ROOT, &[b'n'; 65536], ()), None);
        assert!(t.insert(ROOT, &[b'n'; 65535], ()).is_some());
    }
}
