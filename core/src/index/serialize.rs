//! Serialisation of an [`IndexBuilder`](super::IndexBuilder)'s tree into the byte layout of
//! `FORMAT.md` (version 2; version 1 for the reader's compatibility tests): directories sorted by path, entries grouped per directory and
//! sorted by name, interned string pool (entry names first), derived flags (HARDLINK, HAS_XATTRS, OPAQUE from
//! same-layer whiteouts) and link counts, then the CRC32C.

// foldhash: several times faster than SipHash on short names, and seeded per process, so a
// hostile layer cannot precompute colliding names.
use foldhash::{HashMap, HashMapExt};

use super::IndexError;
use super::format::{
    self, ATTR_LEN, DIR_LEN, HARDLINK_LEN, HEADER_LEN, KEY_LEN, Layout, XATTR_LEN, attr, flag, key,
};
use super::writer::{IndexBuilder, Node};

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

pub(crate) fn serialize(b: &IndexBuilder, version: u32) -> Result<Vec<u8>, IndexError> {
    let nodes = &b.nodes[..];
    // Directories (live ones are reachable from the root), sorted by path.
    let mut dirs = vec![Dir {
        path: Vec::new(),
        node: 0,
        parent_node: 0,
    }];
    let mut i = 0;
    while let Some(d) = dirs.get(i) {
        let (dnode, dpath) = (d.node, d.path.clone());
        for c in b.children(dnode) {
            let child = &nodes[c as usize];
            if child.is_dir() {
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
    let entry_count = count_u32("entry count", entries.len())?;
    count_u32("directory count", dirs.len())?;
    let mut entry_of_node = vec![0u32; nodes.len()];
    for (e, &n) in entries.iter().enumerate() {
        entry_of_node[n as usize] = e as u32;
    }

    // Hardlink groups still present.
    let plain = |n: &Node| !n.is_dir() && !n.is_whiteout();
    let mut group_size: HashMap<u32, u32> = HashMap::new();
    for &n in &entries {
        if plain(&nodes[n as usize]) {
            *group_size.entry(nodes[n as usize].group).or_default() += 1;
        }
    }
    let linked = |n: &Node| plain(n) && group_size.get(&n.group).is_some_and(|&c| c > 1);

    // Entry names first: they form the names region at the start of the pool.
    let mut pool = Pool {
        bytes: Vec::new(),
        seen: HashMap::new(),
    };
    let name_offs: Vec<u32> = entries.iter().map(|&n| pool.add(b.name(n))).collect();
    let names_len = pool.bytes.len();
    // Keys, attrs and dirs go straight into the output: their offsets depend only on the
    // entry and directory counts (the later sections are appended), so the largest tables
    // are never held twice.
    let head = Layout::canonical(version, entries.len(), dirs.len(), 0, 0, 0, 0)
        .ok_or(too_large("index size", usize::MAX, usize::MAX as u64))?;
    let mut out = vec![0u8; head.hardlinks_off];
    let (keys_off, attrs_off, dirs_off) = (head.keys_off, head.attrs_off, head.dirs_off);
    let mut hardlinks: Vec<(u64, u32)> = Vec::new();
    let mut xattrs: Vec<[u32; 5]> = Vec::new();
    for (e, &n) in entries.iter().enumerate() {
        let node = &nodes[n as usize];
        let m = &node.meta;
        let mut flags = node.flags & (flag::WHITEOUT | flag::OPAQUE | flag::IMPLICIT);
        let mut nlink = 1u32;
        let aux = if node.is_dir() {
            let d = dir_of_node[n as usize];
            nlink = 2u32.saturating_add(subdirs[d as usize]);
            if node.lower_deleted {
                flags = (flags | flag::OPAQUE) & !flag::IMPLICIT;
            }
            d
        } else if let Some(t) = m.link_target() {
            count_u32("symlink target length", t.len())?;
            pool.add(t)
        } else {
            m.rdev
        };
        if linked(node) {
            flags |= flag::HARDLINK;
            nlink = group_size.get(&node.group).copied().unwrap_or(1);
            hardlinks.push((m.inode, e as u32));
        }
        if !node.is_whiteout() && !m.xattrs().is_empty() {
            flags |= flag::HAS_XATTRS;
            for (xn, xv) in m.xattrs() {
                let value_len = count_u32("xattr value length", xv.len())?;
                xattrs.push([
                    e as u32,
                    pool.add(xn),
                    xn.len() as u32,
                    pool.add(xv),
                    value_len,
                ]);
            }
        }
        let k = keys_off + e * KEY_LEN;
        let name = b.name(n);
        let prefix = format::name_prefix(name);
        format::put(&mut out, k + key::PREFIX, &prefix.to_le_bytes());
        format::put(&mut out, k + key::NAME_OFF, &name_offs[e].to_le_bytes());
        format::put(
            &mut out,
            k + key::NAME_LEN,
            &(name.len() as u16).to_le_bytes(),
        );
        format::put(&mut out, k + key::FLAGS, &flags.to_le_bytes());
        let a = attrs_off + e * ATTR_LEN;
        for (off, v) in [
            (attr::MODE, m.mode),
            (attr::UID, m.uid),
            (attr::GID, m.gid),
            (attr::NLINK, nlink),
            (attr::MTIME_NSEC, m.mtime_nsec),
            (attr::AUX, aux),
        ] {
            format::put(&mut out, a + off, &v.to_le_bytes());
        }
        for (off, v) in [
            (attr::SIZE, m.size),
            (attr::MTIME_SEC, m.mtime_sec as u64),
            (attr::INODE, m.inode),
        ] {
            format::put(&mut out, a + off, &v.to_le_bytes());
        }
    }
    hardlinks.sort_unstable();
    count_u32("xattr count", xattrs.len())?;

    for (d, dir) in dirs.iter().enumerate() {
        let (first, count) = groups[d];
        let path_len = count_u32("directory path length", dir.path.len())?;
        let rec = [
            // Directory paths are unique and long: hashing them to intern would find nothing.
            pool.append(&dir.path),
            path_len,
            first,
            count,
            entry_of_node[dir.node as usize],
            dir_of_node[dir.parent_node as usize],
        ];
        for (j, v) in rec.iter().enumerate() {
            format::put(&mut out, dirs_off + d * DIR_LEN + j * 4, &v.to_le_bytes());
        }
    }
    if pool.bytes.len() > u32::MAX as usize {
        return Err(too_large("string pool", pool.bytes.len(), u32::MAX.into()));
    }

    let layout = Layout::canonical(
        version,
        entry_count as usize,
        dirs.len(),
        hardlinks.len(),
        xattrs.len(),
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
        (keys_off, attrs_off, dirs_off, head.hardlinks_off)
    );
    out.resize(layout.file_len, 0);
    layout.write_header(&mut out[..HEADER_LEN]);
    for (i, (inode, e)) in hardlinks.iter().enumerate() {
        let off = layout.hardlinks_off + i * HARDLINK_LEN;
        format::put(&mut out, off, &inode.to_le_bytes());
        format::put(&mut out, off + 8, &e.to_le_bytes());
    }
    for (i, rec) in xattrs.iter().enumerate() {
        for (j, v) in rec.iter().enumerate() {
            format::put(
                &mut out,
                layout.xattrs_off + i * XATTR_LEN + j * 4,
                &v.to_le_bytes(),
            );
        }
    }
    format::put(&mut out, layout.pool_off, &pool.bytes);
    format::seal(&mut out);
    Ok(out)
}
