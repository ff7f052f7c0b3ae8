//! The layer's tree as an EROFS image lays it out, taken from the [`IndexBuilder`] that the
//! extraction filled: one inode record per entry (one per hardlink group), in breadth-first
//! order from the root with each directory's entries sorted by name, so the root is `nid` 0's
//! neighbour and the order does not depend on the tar's. Directory listings (with `.` and
//! `..`) are built from the same tree when their blocks are written.

use foldhash::{HashMap, HashMapExt};

use super::ErofsError;
use super::format::{NAME_MAX, file_type, file_type_of};
use crate::index::{IndexBuilder, LinkGroups};

/// The records of a tree in `nid` order, and what directory entries need to point at them.
pub(crate) struct Records {
    /// The node of each record (a hardlink group's first member), in `nid` order.
    pub order: Vec<u32>,
    /// Each record's parent directory node (the root is its own parent).
    pub parent: Vec<u32>,
    /// The record of each node (`u32::MAX` for nodes not in the tree).
    pub record_of: Vec<u32>,
    /// Members per hardlink group.
    pub links: LinkGroups,
}

impl Records {
    /// Walk the tree from the root. Errors on a name EROFS cannot hold.
    pub(crate) fn of(b: &IndexBuilder) -> Result<Records, ErofsError> {
        let mut rec = Records {
            order: vec![0],
            parent: vec![0],
            record_of: vec![u32::MAX; b.nodes().len()],
            links: LinkGroups::default(),
        };
        rec.record_of[0] = 0;
        let mut group_record: HashMap<u32, u32> = HashMap::new();
        let mut i = 0;
        while let Some(&dir) = rec.order.get(i) {
            if b.nodes()[dir as usize].is_dir() {
                for child in sorted_children(b, dir)? {
                    let node = &b.nodes()[child as usize];
                    rec.links.add(node);
                    if LinkGroups::plain(node) {
                        if let Some(&r) = group_record.get(&node.group) {
                            rec.record_of[child as usize] = r;
                            continue;
                        }
                        group_record.insert(node.group, rec.order.len() as u32);
                    }
                    rec.record_of[child as usize] = rec.order.len() as u32;
                    rec.order.push(child);
                    rec.parent.push(dir);
                }
            }
            i += 1;
        }
        Ok(rec)
    }

    /// The link count of record `r`'s node: 2 plus its subdirectories for a directory, the
    /// group's size for a hardlinked file, 1 otherwise.
    pub(crate) fn nlink(&self, b: &IndexBuilder, node: u32) -> u32 {
        let n = &b.nodes()[node as usize];
        if n.is_dir() {
            let subdirs = b.children(node).filter(|&c| b.nodes()[c as usize].is_dir());
            return 2u32.saturating_add(subdirs.count() as u32);
        }
        self.links.nlink(n).unwrap_or(1)
    }
}

/// The children of `dir` sorted by name (bytewise, as the kernel's lookup compares).
pub(crate) fn sorted_children(b: &IndexBuilder, dir: u32) -> Result<Vec<u32>, ErofsError> {
    let mut children: Vec<u32> = b.children(dir).collect();
    for &c in &children {
        let name = b.name(c);
        if name.len() > NAME_MAX {
            return Err(ErofsError::NameTooLong {
                name: String::from_utf8_lossy(name).into_owned(),
                len: name.len(),
            });
        }
    }
    children.sort_unstable_by(|&x, &y| b.name(x).cmp(b.name(y)));
    Ok(children)
}

/// One directory entry before `nid`s are known: name, the record it points at, file type.
pub(crate) struct Listed<'a> {
    pub name: &'a [u8],
    pub record: u32,
    pub file_type: u8,
}

/// The entries of directory record `r` (`.`, `..` and its children), sorted by name as
/// erofs-utils sorts them (the dots among the rest).
pub(crate) fn listing<'a>(
    b: &'a IndexBuilder,
    rec: &Records,
    r: u32,
) -> Result<Vec<Listed<'a>>, ErofsError> {
    let dir = rec.order[r as usize];
    let parent = rec.parent[r as usize];
    let mut out = vec![
        Listed {
            name: b".",
            record: r,
            file_type: file_type::DIR,
        },
        Listed {
            name: b"..",
            record: rec.record_of[parent as usize],
            file_type: file_type::DIR,
        },
    ];
    for c in sorted_children(b, dir)? {
        let node = &b.nodes()[c as usize];
        out.push(Listed {
            name: b.name(c),
            record: rec.record_of[c as usize],
            file_type: if node.is_whiteout() {
                file_type::CHR
            } else {
                file_type_of(node.meta.mode)
            },
        });
    }
    out.sort_by(|x, y| x.name.cmp(y.name));
    Ok(out)
}
