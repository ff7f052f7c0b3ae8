//! The tree of an image-only extraction: which names exist and whether each is a directory,
//! with an inode number per entry (hardlinks share one), and nothing else. Every primitive
//! fails with the `errno` the kernel gives for the same operation on the layer directory
//! (`ENOENT`, `ENOTDIR`, `EEXIST`, `EISDIR`, `EPERM`, `ENAMETOOLONG`, checked in the kernel's
//! order), so the extractor refuses the same tars in both modes. Metadata, flags and file
//! data are not kept: the image takes its metadata from the index builder and its file data
//! from the extractor's copy loop.
//!
//! It is held beside the index builder for the whole layer, so it is the builder's kind of
//! tree ([`NameTree`]: every name once in one arena, one `(parent, name)` hash table): per
//! entry a 40-byte node, its name and a table slot, where a map of full paths took about
//! three times that.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::Timespec;
use rustix::io::Errno;

use super::Meta;
use super::tree::{LayerTree, Stat};
use crate::index::name_tree::{NONE, NameTree, ROOT};
use crate::layer::LayerError;

/// The host's `NAME_MAX`: longer names fail on the layer directory.
const NAME_MAX: usize = 255;
/// The host's `PATH_MAX`, its NUL included.
const PATH_MAX: usize = 4096;

/// The inode number of the root.
const ROOT_INO: u64 = 1;

/// What is kept of an entry.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// A directory.
    dir: bool,
    /// The node whose creation gave this entry its inode (itself, or a hardlink's target).
    ino_of: u32,
}

/// Names and types of the entries written so far.
#[derive(Debug)]
pub(crate) struct MemoryTree {
    tree: NameTree<Node>,
}

impl Default for MemoryTree {
    fn default() -> Self {
        MemoryTree {
            tree: NameTree::new(Node {
                dir: true,
                ino_of: ROOT,
            }),
        }
    }
}

/// Where a path leads: its parent directory and last name, and the node there if any
/// (`name` is `None` for the root, which is always there).
struct Found<'p> {
    parent: u32,
    name: Option<&'p [u8]>,
    node: Option<u32>,
}

/// `rel`'s names, checked as the kernel checks them before walking: `ENAMETOOLONG` for a
/// path or a name too long. `.` components are skipped.
fn names(rel: &Path) -> Result<impl Iterator<Item = &[u8]> + Clone, Errno> {
    if rel.as_os_str().len() >= PATH_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    for c in rel.components() {
        match c {
            Component::Normal(name) if name.len() > NAME_MAX => return Err(Errno::NAMETOOLONG),
            Component::Normal(_) | Component::CurDir => {}
            // The extractor's paths are resolved and relative: nothing else reaches here.
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Errno::INVAL);
            }
        }
    }
    Ok(rel.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.as_bytes()),
        _ => None,
    }))
}

impl MemoryTree {
    fn node(&self, id: u32) -> Node {
        *self.tree.nodes()[id as usize]
    }

    fn stat_of(&self, id: u32) -> Stat {
        let n = self.node(id);
        Stat {
            dir: n.dir,
            ino: ROOT_INO + u64::from(n.ino_of),
        }
    }

    /// Walk `rel` as the kernel does: `ENOENT` at the first missing parent, `ENOTDIR` at
    /// the first non-directory one; the last name may be missing.
    fn lookup<'p>(&self, rel: &'p Path) -> Result<Found<'p>, Errno> {
        let mut names = names(rel)?;
        let Some(mut name) = names.next() else {
            return Ok(Found {
                parent: NONE,
                name: None,
                node: Some(ROOT),
            });
        };
        let mut parent = ROOT;
        for next in names {
            parent = match self.tree.child(parent, name) {
                None => return Err(Errno::NOENT),
                Some(id) if !self.node(id).dir => return Err(Errno::NOTDIR),
                Some(id) => id,
            };
            name = next;
        }
        Ok(Found {
            parent,
            name: Some(name),
            node: self.tree.child(parent, name),
        })
    }

    /// A new node `name` under `parent`, its inode that of `ino_of` (`None`: its own).
    fn insert(
        &mut self,
        parent: u32,
        name: &[u8],
        dir: bool,
        ino_of: Option<u32>,
    ) -> Result<u32, Errno> {
        // Ids are u32 (as the index's): a layer of four billion entries is refused as a
        // file system out of inodes would refuse it.
        let own = u32::try_from(self.tree.next_id()).map_err(|_| Errno::NOSPC)?;
        let node = Node {
            dir,
            ino_of: ino_of.unwrap_or(own),
        };
        self.tree.insert(parent, name, node).ok_or(Errno::NOSPC)
    }

    /// A new entry at `rel` (which must not exist).
    fn add(&mut self, rel: &Path, dir: bool) -> Result<u32, Errno> {
        match self.lookup(rel)? {
            Found {
                parent,
                name: Some(name),
                node: None,
            } => self.insert(parent, name, dir, None),
            _ => Err(Errno::EXIST),
        }
    }
}

impl LayerTree for MemoryTree {
    /// The entry's inode number.
    type Handle = u64;
    /// The image takes directories' times from the index.
    const KEEPS_DIR_TIMES: bool = false;

    fn open_root(&self) -> Result<u64, LayerError> {
        Ok(ROOT_INO)
    }

    fn create(&mut self, rel: &Path) -> Result<u64, Errno> {
        let id = self.add(rel, false)?;
        Ok(self.stat_of(id).ino)
    }

    fn mkdir(&mut self, rel: &Path) -> Result<(), Errno> {
        self.add(rel, true).map(drop)
    }

    fn open_dir(&self, rel: &Path) -> Result<u64, Errno> {
        match self.lookup(rel)?.node.map(|id| self.stat_of(id)) {
            Some(s) if s.dir => Ok(s.ino),
            Some(_) => Err(Errno::NOTDIR),
            None => Err(Errno::NOENT),
        }
    }

    fn stat(&self, rel: &Path) -> Result<Option<Stat>, Errno> {
        match self.lookup(rel) {
            Ok(found) => Ok(found.node.map(|id| self.stat_of(id))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn unlink(&mut self, rel: &Path) -> Result<(), Errno> {
        match self.lookup(rel)?.node {
            None => Err(Errno::NOENT),
            Some(id) if self.node(id).dir => Err(Errno::ISDIR),
            Some(id) => {
                self.tree.remove(id);
                Ok(())
            }
        }
    }

    fn remove_tree(&mut self, rel: &Path) -> Result<(), Errno> {
        match self.lookup(rel)?.node {
            None => Err(Errno::NOENT),
            Some(id) if !self.node(id).dir => Err(Errno::NOTDIR),
            // (The root is never removed: `rmdir` of `.` is refused.)
            Some(ROOT) => Err(Errno::INVAL),
            Some(id) => {
                self.tree.remove(id);
                Ok(())
            }
        }
    }

    fn link(&mut self, target: &Path, rel: &Path) -> Result<(), Errno> {
        // As `linkat`: the target is looked up, then the new name's parent, then whether the
        // name is taken, then whether the target may be linked.
        let Some(found) = self.lookup(target)?.node else {
            return Err(Errno::NOENT);
        };
        let (parent, name) = match self.lookup(rel)? {
            Found {
                parent,
                name: Some(name),
                node: None,
            } => (parent, name),
            _ => return Err(Errno::EXIST),
        };
        if self.node(found).dir {
            return Err(Errno::PERM);
        }
        let ino_of = self.node(found).ino_of;
        self.insert(parent, name, false, Some(ino_of)).map(drop)
    }

    fn inode(&self, h: &u64, _rel: &Path) -> Result<u64, LayerError> {
        Ok(*h)
    }

    fn fix_mode(&self, _: &u64, _: &Path, _: bool) -> Result<(), LayerError> {
        Ok(())
    }

    fn set_meta(&self, _: &u64, _: &Path, _: &Meta) -> Result<(), LayerError> {
        Ok(())
    }

    fn set_flag(&self, _: &u64, _: &Path, _: &str, _: &[u8]) -> Result<(), LayerError> {
        Ok(())
    }

    fn remove_flag(&self, _: &u64, _: &Path, _: &str) -> Result<(), LayerError> {
        Ok(())
    }

    fn clear_image_xattrs(&self, _: &u64, _: &Path) -> Result<(), LayerError> {
        Ok(())
    }

    fn write(&self, _: &mut u64, _: &Path, _: &[u8]) -> Result<(), LayerError> {
        Ok(())
    }

    fn set_dir_time(&self, _: &Path, _: Timespec) -> Result<(), LayerError> {
        Ok(())
    }
}

// What the module comment says a node costs.
const _: () = assert!(std::mem::size_of::<crate::index::name_tree::Named<Node>>() == 40);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::extract::disk::DiskTree;

    /// Run the same operations on a real directory and on a memory tree: the same result,
    /// `errno` for `errno`.
    #[test]
    fn every_primitive_fails_as_the_kernel_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = DiskTree::open(dir.path()).unwrap();
        let mut mem = MemoryTree::default();
        let long = "n".repeat(256);
        let deep = format!("d/{}", "x/".repeat(2100));
        let ops: &[(&str, &str, &str)] = &[
            ("mkdir", "d", ""),
            ("create", "d/f", ""),
            ("create", "d/f", ""),
            ("mkdir", "d/f", ""),
            ("mkdir", "d", ""),
            ("create", "d/f/x", ""),
            ("mkdir", "d/f/x", ""),
            ("create", "missing/x", ""),
            ("mkdir", "missing/x/y", ""),
            ("stat", "d/f/x", ""),
            ("stat", "missing/x", ""),
            ("stat", "d", ""),
            ("stat", ".", ""),
            ("link", "d", "l"),
            ("link", "nope", "l"),
            ("link", "d/f", "d"),
            ("link", "d/f", "missing/l"),
            ("link", "d/f/x", "l"),
            ("link", "d/f", "d/f/l"),
            ("link", "nope", "missing/l"),
            ("link", "d", "d/f"),
            ("link", "d/f", "l"),
            ("stat", "l", ""),
            ("unlink", "d", ""),
            ("unlink", "nope", ""),
            ("unlink", "d/f/x", ""),
            ("unlink", "l", ""),
            ("remove_tree", "d/f", ""),
            ("remove_tree", "nope", ""),
            ("mkdir", "d/e", ""),
            ("create", "d/e/g", ""),
            ("mkdir", "d-e", ""),
            ("remove_tree", "d", ""),
            ("stat", "d/e/g", ""),
            ("stat", "d-e", ""),
            ("create", &long, ""),
            ("mkdir", &deep, ""),
            ("open_dir", "d-e", ""),
            ("create", "d-e/f", ""),
            ("open_dir", "d-e/f", ""),
            ("open_dir", "nope", ""),
            ("mkdir", "r", ""),
            ("mkdir", "r/s", ""),
            ("create", "r/s/x", ""),
            ("link", "r/s/x", "r/y"),
            ("remove_tree", "r", ""),
            ("mkdir", "r", ""),
            ("stat", "r/s", ""),
            ("stat", "r/y", ""),
            ("mkdir", "r/s", ""),
            ("stat", "r/s/x", ""),
            ("create", "r/s/x", ""),
        ];
        fn run<T: LayerTree>(t: &mut T, op: &str, a: &str, b: &str) -> Result<Option<bool>, Errno> {
            let (a, b) = (Path::new(a), Path::new(b));
            match op {
                "mkdir" => t.mkdir(a).map(|()| None),
                "create" => t.create(a).map(|_| None),
                "stat" => t.stat(a).map(|s| s.map(|s| s.dir)),
                "link" => t.link(a, b).map(|()| None),
                "unlink" => t.unlink(a).map(|()| None),
                "remove_tree" => t.remove_tree(a).map(|()| None),
                "open_dir" => t.open_dir(a).map(|_| None),
                _ => unreachable!(),
            }
        }
        for (op, a, b) in ops {
            let on_disk = run(&mut disk, op, a, b);
            let in_memory = run(&mut mem, op, a, b);
            assert_eq!(on_disk, in_memory, "{op} {:.40} {b}", a);
        }
    }

    #[test]
    fn hardlinks_share_the_inode_and_replaced_files_get_new_ones() {
        let mut mem = MemoryTree::default();
        let a = mem.create(Path::new("a")).unwrap();
        mem.link(Path::new("a"), Path::new("b")).unwrap();
        assert_eq!(mem.stat(Path::new("b")).unwrap().unwrap().ino, a);
        mem.unlink(Path::new("a")).unwrap();
        let again = mem.create(Path::new("a")).unwrap();
        assert_ne!(again, a);
        assert_eq!(mem.stat(Path::new(".")).unwrap().unwrap().ino, ROOT_INO);
    }
}
