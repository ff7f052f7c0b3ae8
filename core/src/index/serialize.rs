//! Serialisation of an [`IndexBuilder`]'s tree into the byte layout of
//! `FORMAT.md` (version 2; version 1 for the reader's compatibility tests): directories sorted
//! by path, entries grouped per directory and sorted by name, interned string pool (entry names
//! first), derived flags (HARDLINK, HAS_XATTRS, OPAQUE from same-layer whiteouts) and link
//! counts, then the CRC32C.
//!
//! [`serialize`] runs the steps in file order: order the tree ([`Tree::of`]), write the entry
//! records ([`write_entries`]) and the directory records ([`write_dirs`]) straight into the
//! output, then append the hardlink and xattr tables and the pool and seal ([`write_tail`]).
//! The pool is filled in that same order, so the bytes do not depend on how the steps are cut.

// foldhash: several times faster than SipHash on short names, and seeded per process, so a
// hostile layer cannot precompute colliding names.
use foldhash::{HashMap, HashMapExt};

use super::IndexError;
use super::format::{
    self, ATTR_LEN, DIR_LEN, HARDLINK_LEN, HEADER_LEN, KEY_LEN, Layout, XATTR_LEN, attr, flag, key,
};
use super::name_tree::Named;
use super::writer::{IndexBuilder, Meta, Node};

/// Interned byte strings.
struct Pool<'a> {
    bytes: Vec<u8>,
    seen: HashMap<&'a [u8], u32>,
}

impl<'a> Pool<'a> {
    /// Append `s` without interning it (for strings known to be unique).
    fn append(&mut self, s: &[u8]) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s);
        off
    }

    /// Append `s`, or return where an equal string already is.
    fn add(&mut self, s: &'a [u8]) -> u32 {
        if let Some(&off) = self.seen.get(s) {
            return off;
        }
        let off = self.append(s);
        self.seen.insert(s, off);
        off
    }
}

fn too_large(what: &'static str, value: usize, max: u64) -> IndexError {
    IndexError::TooLarge {
        what,
        value: value as u64,
        max,
    }
}

fn count_u32(what: &'static str, n: usize) -> Result<u32, IndexError> {
    u32::try_from(n).map_err(|_| too_large(what, n, u32::MAX.into()))
}

/// A directory of the final tree.
struct Dir {
    path: Vec<u8>,
    node: u32,
    parent_node: u32,
}

/// The final tree in file order, with the maps between builder nodes and records.
struct Tree {
    /// Live directories (reachable from the root), sorted by path.
    dirs: Vec<Dir>,
    /// Node of each entry record: the root, then each directory's children by name.
    entries: Vec<u32>,
    /// Per directory: its first entry and its number of entries.
    groups: Vec<(u32, u32)>,
    /// Per directory: how many of its entries are directories.
    subdirs: Vec<u32>,
    /// Node → directory record (`u32::MAX` for non-directories).
    dir_of_node: Vec<u32>,
    /// Node → entry record.
    entry_of_node: Vec<u32>,
}

/// The hardlink and xattr tables, gathered while the entry records are written and appended
/// after them.
#[derive(Default)]
struct Tables {
    /// `(inode, entry)`, sorted.
    hardlinks: Vec<(u64, u32)>,
    /// `[entry, name_off, name_len, value_off, value_len]`, in entry order.
    xattrs: Vec<[u32; 5]>,
}

/// Sizes of the hardlink groups still present in the tree (the index's serialiser and the
/// EROFS writer count links the same way).
#[derive(Default)]
pub(crate) struct LinkGroups(HashMap<u32, u32>);

impl LinkGroups {
    /// A node that can be a hardlink: neither a directory nor a whiteout.
    pub(crate) fn plain(n: &Node) -> bool {
        !n.is_dir() && !n.is_whiteout()
    }

    fn count(nodes: &[Named<Node>], entries: &[u32]) -> LinkGroups {
        let mut links = LinkGroups::default();
        for &n in entries {
            links.add(&nodes[n as usize]);
        }
        links
    }

    /// Count `n` (a node present in the tree) in its group.
    pub(crate) fn add(&mut self, n: &Node) {
        if Self::plain(n) {
            *self.0.entry(n.group).or_default() += 1;
        }
    }

    /// The link count of `n` when it shares its inode with another entry.
    pub(crate) fn nlink(&self, n: &Node) -> Option<u32> {
        if !Self::plain(n) {
            return None;
        }
        self.0.get(&n.group).copied().filter(|&c| c > 1)
    }
}

pub(crate) fn serialize(b: &IndexBuilder, version: u32) -> Result<Vec<u8>, IndexError> {
    let tree = Tree::of(b)?;
    let links = LinkGroups::count(b.nodes(), &tree.entries);
    // Entry names first: they form the names region at the start of the pool.
    let mut pool = Pool {
        bytes: Vec::new(),
        seen: HashMap::new(),
    };
    let name_offs: Vec<u32> = tree.entries.iter().map(|&n| pool.add(b.name(n))).collect();
    let names_len = pool.bytes.len();
    // Keys, attrs and dirs go straight into the output: their offsets depend only on the
    // entry and directory counts (the later sections are appended), so the largest tables
    // are never held twice.
    let head = Layout::canonical(version, tree.entries.len(), tree.dirs.len(), 0, 0, 0, 0)
        .ok_or(too_large("index size", usize::MAX, usize::MAX as u64))?;
    let mut out = vec![0u8; head.hardlinks_off];
    let tables = write_entries(&mut out, &head, b, &tree, &links, &mut pool, &name_offs)?;
    write_dirs(&mut out, head.dirs_off, &tree, &mut pool)?;
    if pool.bytes.len() > u32::MAX as usize {
        return Err(too_large("string pool", pool.bytes.len(), u32::MAX.into()));
    }
    let layout = Layout::canonical(
        version,
        tree.entries.len(),
        tree.dirs.len(),
        tables.hardlinks.len(),
        tables.xattrs.len(),
        pool.bytes.len(),
        names_len,
    )
    .ok_or(too_large("index size", usize::MAX, usize::MAX as u64))?;
    debug_assert_eq!(
        (
            layout.keys_off,
            layout.attrs_off,
            layout.dirs_off,
            layout.hardlinks_off
        ),
        (
            head.keys_off,
            head.attrs_off,
            head.dirs_off,
            head.hardlinks_off
        )
    );
    write_tail(&mut out, &layout, &tables, &pool.bytes);
    Ok(out)
}

impl Tree {
    fn of(b: &IndexBuilder) -> Result<Tree, IndexError> {
        let nodes = b.nodes();
        let dirs = sorted_dirs(b);
        let mut dir_of_node = vec![u32::MAX; nodes.len()];
        for (d, dir) in dirs.iter().enumerate() {
            dir_of_node[dir.node as usize] = d as u32;
        }
        // Entries: the root, then each directory's children by name.
        let mut entries: Vec<u32> = vec![0];
        let mut groups: Vec<(u32, u32)> = Vec::with_capacity(dirs.len());
        let mut subdirs = vec![0u32; dirs.len()];
        for (d, dir) in dirs.iter().enumerate() {
            let mut children: Vec<(&[u8], u32)> =
                b.children(dir.node).map(|id| (b.name(id), id)).collect();
            children.sort_unstable_by(|a, b| a.0.cmp(b.0));
            groups.push((entries.len() as u32, children.len() as u32));
            subdirs[d] = children
                .iter()
                .filter(|c| nodes[c.1 as usize].is_dir())
                .count() as u32;
            entries.extend(children.iter().map(|c| c.1));
        }
        count_u32("entry count", entries.len())?;
        count_u32("directory count", dirs.len())?;
        let mut entry_of_node = vec![0u32; nodes.len()];
        for (e, &n) in entries.iter().enumerate() {
            entry_of_node[n as usize] = e as u32;
        }
        Ok(Tree {
            dirs,
            entries,
            groups,
            subdirs,
            dir_of_node,
            entry_of_node,
        })
    }
}

/// The directories reachable from the root, with their paths, sorted by path.
fn sorted_dirs(b: &IndexBuilder) -> Vec<Dir> {
    let mut dirs = vec![Dir {
        path: Vec::new(),
        node: 0,
        parent_node: 0,
    }];
    let mut i = 0;
    while let Some(d) = dirs.get(i) {
        let (dnode, dpath) = (d.node, d.path.clone());
        for c in b.children(dnode) {
            if b.nodes()[c as usize].is_dir() {
                let mut path = dpath.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(b.name(c));
                dirs.push(Dir {
                    path,
                    node: c,
                    parent_node: dnode,
                });
            }
        }
        i += 1;
    }
    dirs.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    dirs
}

/// Write every entry's key and attr records into `out`; symlink targets and xattrs go into
/// the pool, in entry order, and the hardlink and xattr tables are returned.
fn write_entries<'a>(
    out: &mut [u8],
    head: &Layout,
    b: &'a IndexBuilder,
    tree: &Tree,
    links: &LinkGroups,
    pool: &mut Pool<'a>,
    name_offs: &[u32],
) -> Result<Tables, IndexError> {
    let mut tables = Tables::default();
    for (e, &n) in tree.entries.iter().enumerate() {
        let node = &b.nodes()[n as usize];
        let m = &node.meta;
        let mut flags = node.flags & (flag::WHITEOUT | flag::OPAQUE | flag::IMPLICIT);
        let mut nlink = 1u32;
        let aux = if node.is_dir() {
            let d = tree.dir_of_node[n as usize];
            nlink = 2u32.saturating_add(tree.subdirs[d as usize]);
            if node.is_opaque_dir() {
                flags |= flag::OPAQUE;
            }
            if node.lower_deleted {
                flags &= !flag::IMPLICIT;
            }
            d
        } else if let Some(t) = m.link_target() {
            count_u32("symlink target length", t.len())?;
            pool.add(t)
        } else {
            m.rdev
        };
        if let Some(group_nlink) = links.nlink(node) {
            flags |= flag::HARDLINK;
            nlink = group_nlink;
            tables.hardlinks.push((m.inode, e as u32));
        }
        if !node.is_whiteout() && !m.xattrs().is_empty() {
            flags |= flag::HAS_XATTRS;
            for (xn, xv) in m.xattrs() {
                let value_len = count_u32("xattr value length", xv.len())?;
                tables.xattrs.push([
                    e as u32,
                    pool.add(xn),
                    xn.len() as u32,
                    pool.add(xv),
                    value_len,
                ]);
            }
        }
        put_key(
            out,
            head.keys_off + e * KEY_LEN,
            b.name(n),
            name_offs[e],
            flags,
        );
        put_attr(out, head.attrs_off + e * ATTR_LEN, m, nlink, aux);
    }
    tables.hardlinks.sort_unstable();
    count_u32("xattr count", tables.xattrs.len())?;
    Ok(tables)
}

/// One key record: name prefix, name offset and length, flags.
fn put_key(out: &mut [u8], k: usize, name: &[u8], name_off: u32, flags: u16) {
    let prefix = format::name_prefix(name);
    format::put(out, k + key::PREFIX, &prefix.to_le_bytes());
    format::put(out, k + key::NAME_OFF, &name_off.to_le_bytes());
    format::put(out, k + key::NAME_LEN, &(name.len() as u16).to_le_bytes());
    format::put(out, k + key::FLAGS, &flags.to_le_bytes());
}

/// One attr record: the entry's stat fields.
fn put_attr(out: &mut [u8], a: usize, m: &Meta, nlink: u32, aux: u32) {
    for (off, v) in [
        (attr::MODE, m.mode),
        (attr::UID, m.uid),
        (attr::GID, m.gid),
        (attr::NLINK, nlink),
        (attr::MTIME_NSEC, m.mtime_nsec),
        (attr::AUX, aux),
    ] {
        format::put(out, a + off, &v.to_le_bytes());
    }
    for (off, v) in [
        (attr::SIZE, m.size),
        (attr::MTIME_SEC, m.mtime_sec as u64),
        (attr::INODE, m.inode),
    ] {
        format::put(out, a + off, &v.to_le_bytes());
    }
}

/// Write the directory records; their paths are appended to the pool.
fn write_dirs(
    out: &mut [u8],
    dirs_off: usize,
    tree: &Tree,
    pool: &mut Pool<'_>,
) -> Result<(), IndexError> {
    for (d, dir) in tree.dirs.iter().enumerate() {
        let (first, count) = tree.groups[d];
        let path_len = count_u32("directory path length", dir.path.len())?;
        let rec = [
            // Directory paths are unique and long: hashing them to intern would find nothing.
            pool.append(&dir.path),
            path_len,
            first,
            count,
            tree.entry_of_node[dir.node as usize],
            tree.dir_of_node[dir.parent_node as usize],
        ];
        for (j, v) in rec.iter().enumerate() {
            format::put(out, dirs_off + d * DIR_LEN + j * 4, &v.to_le_bytes());
        }
    }
    Ok(())
}

/// Grow `out` to the whole file, write the header, the hardlink and xattr tables and the
/// pool, and seal it.
fn write_tail(out: &mut Vec<u8>, layout: &Layout, tables: &Tables, pool: &[u8]) {
    out.resize(layout.file_len, 0);
    layout.write_header(&mut out[..HEADER_LEN]);
    for (i, (inode, e)) in tables.hardlinks.iter().enumerate() {
        let off = layout.hardlinks_off + i * HARDLINK_LEN;
        format::put(out, off, &inode.to_le_bytes());
        format::put(out, off + 8, &e.to_le_bytes());
    }
    for (i, rec) in tables.xattrs.iter().enumerate() {
        for (j, v) in rec.iter().enumerate() {
            format::put(
                out,
                layout.xattrs_off + i * XATTR_LEN + j * 4,
                &v.to_le_bytes(),
            );
        }
    }
    format::put(out, layout.pool_off, pool);
    format::seal(out);
}
