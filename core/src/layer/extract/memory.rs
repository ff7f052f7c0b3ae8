//! The tree of an image-only extraction: which names exist and whether each is a directory,
//! with an inode number per entry (hardlinks share one), and nothing else. Every primitive
//! fails with the `errno` the kernel gives for the same operation on the layer directory
//! (`ENOENT`, `ENOTDIR`, `EEXIST`, `EISDIR`, `EPERM`, `ENAMETOOLONG`, checked in the kernel's
//! order), so the extractor refuses the same tars in both modes. Metadata, flags and file
//! data are not kept: the image takes its metadata from the index builder and its file data
//! from the extractor's copy loop.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::Timespec;
use rustix::io::Errno;

use super::Meta;
use super::tree::{LayerTree, Stat};
use crate::layer::LayerError;

/// The host's `NAME_MAX`: longer names fail on the layer directory.
const NAME_MAX: usize = 255;
/// The host's `PATH_MAX`, its NUL included.
const PATH_MAX: usize = 4096;

/// The inode number of the root.
const ROOT_INO: u64 = 1;

/// An entry's path as a map key: its components joined by NUL, which no name holds and
/// which orders below every other byte, so keys order component by component as paths do
/// (a directory's descendants follow it, before any sibling that extends its name) and
/// compare as plain bytes.
type Key = Vec<u8>;

/// The separator of a [`Key`]'s components.
const SEP: u8 = 0;

/// Names and types of the entries written so far.
#[derive(Debug)]
pub(crate) struct MemoryTree {
    /// Every entry but the root, by key (a removed directory is one range of it).
    entries: BTreeMap<Key, Stat>,
    /// The next inode number (never reused: a replaced file's data keeps its own key).
    next_ino: u64,
}

impl Default for MemoryTree {
    fn default() -> Self {
        MemoryTree {
            entries: BTreeMap::new(),
            next_ino: ROOT_INO + 1,
        }
    }
}

/// The root's entry.
const ROOT: Stat = Stat {
    dir: true,
    ino: ROOT_INO,
};

/// `rel` as a key: `None` for the root (`.` or empty).
fn key(rel: &Path) -> Result<Option<Key>, Errno> {
    if rel.as_os_str().len() >= PATH_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    let mut key = Key::with_capacity(rel.as_os_str().len());
    for c in rel.components() {
        match c {
            Component::Normal(name) if name.len() > NAME_MAX => return Err(Errno::NAMETOOLONG),
            Component::Normal(name) => {
                if !key.is_empty() {
                    key.push(SEP);
                }
                key.extend_from_slice(name.as_bytes());
            }
            Component::CurDir => {}
            // The extractor's paths are resolved and relative: nothing else reaches here.
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Errno::INVAL);
            }
        }
    }
    Ok((!key.is_empty()).then_some(key))
}

/// Whether `key` is `dir` or below it.
fn within(key: &[u8], dir: &[u8]) -> bool {
    key.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest[0] == SEP)
}

impl MemoryTree {
    fn get(&self, key: &[u8]) -> Option<Stat> {
        if key.is_empty() {
            Some(ROOT)
        } else {
            self.entries.get(key).copied()
        }
    }

    /// Walk to `key`'s parent as the kernel does: `ENOENT` at the first missing component,
    /// `ENOTDIR` at the first non-directory.
    fn parent_of(&self, key: &[u8]) -> Result<(), Errno> {
        let parent = key
            .iter()
            .rposition(|&b| b == SEP)
            .map_or(&key[..0], |i| &key[..i]);
        if self.get(parent).is_some_and(|s| s.dir) {
            // Every directory's parents are directories.
            return Ok(());
        }
        let ends = parent
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == SEP)
            .map(|(i, _)| i);
        for end in ends.chain([parent.len()]) {
            match self.get(&parent[..end]) {
                None => return Err(Errno::NOENT),
                Some(s) if !s.dir => return Err(Errno::NOTDIR),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What is at `rel`, its parents walked first.
    fn lookup(&self, rel: &Path) -> Result<(Option<Key>, Option<Stat>), Errno> {
        let Some(path) = key(rel)? else {
            return Ok((None, Some(ROOT)));
        };
        self.parent_of(&path)?;
        let stat = self.get(&path);
        Ok((Some(path), stat))
    }

    /// A new entry at `rel` (which must not exist).
    fn add(&mut self, rel: &Path, dir: bool) -> Result<u64, Errno> {
        let (path, stat) = self.lookup(rel)?;
        let (Some(path), None) = (path, stat) else {
            return Err(Errno::EXIST);
        };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.entries.insert(path, Stat { dir, ino });
        Ok(ino)
    }
}

impl LayerTree for MemoryTree {
    /// The entry's inode number.
    type Handle = u64;

    fn open_root(&self) -> Result<u64, LayerError> {
        Ok(ROOT_INO)
    }

    fn create(&mut self, rel: &Path) -> Result<u64, Errno> {
        self.add(rel, false)
    }

    fn mkdir(&mut self, rel: &Path) -> Result<(), Errno> {
        self.add(rel, true).map(drop)
    }

    fn open_dir(&self, rel: &Path) -> Result<u64, Errno> {
        match self.lookup(rel)?.1 {
            Some(s) if s.dir => Ok(s.ino),
            Some(_) => Err(Errno::NOTDIR),
            None => Err(Errno::NOENT),
        }
    }

    fn stat(&self, rel: &Path) -> Result<Option<Stat>, Errno> {
        match self.lookup(rel) {
            Ok((_, stat)) => Ok(stat),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn unlink(&mut self, rel: &Path) -> Result<(), Errno> {
        match self.lookup(rel)? {
            (_, None) => Err(Errno::NOENT),
            (None, Some(_)) | (_, Some(Stat { dir: true, .. })) => Err(Errno::ISDIR),
            (Some(path), Some(_)) => {
                self.entries.remove(&path);
                Ok(())
            }
        }
    }

    fn remove_tree(&mut self, rel: &Path) -> Result<(), Errno> {
        let path = match self.lookup(rel)? {
            (_, None) => return Err(Errno::NOENT),
            (_, Some(Stat { dir: false, .. })) => return Err(Errno::NOTDIR),
            // (The root is never removed: `rmdir` of `.` is refused.)
            (None, Some(_)) => return Err(Errno::INVAL),
            (Some(path), Some(_)) => path,
        };
        let gone: Vec<Key> = self
            .entries
            .range(path.clone()..)
            .map(|(p, _)| p)
            .take_while(|p| within(p, &path))
            .cloned()
            .collect();
        for p in gone {
            self.entries.remove(&p);
        }
        Ok(())
    }

    fn link(&mut self, target: &Path, rel: &Path) -> Result<(), Errno> {
        // As `linkat`: the target is looked up, then the new name's parent, then whether the
        // name is taken, then whether the target may be linked.
        let (_, found) = self.lookup(target)?;
        let Some(found) = found else {
            return Err(Errno::NOENT);
        };
        let (path, taken) = self.lookup(rel)?;
        let (Some(path), None) = (path, taken) else {
            return Err(Errno::EXIST);
        };
        if found.dir {
            return Err(Errno::PERM);
        }
        self.entries.insert(path, found);
        Ok(())
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
