//! `LayerStack`: the merged, overlay-style view of an image (upper layers win, whiteouts hide,
//! opaque directories cut off the layers below), answered from the layers' sidecar indexes
//! without touching the host trees. Paths inside the image are strings (`'/etc/hosts'` or
//! `'etc/hosts'`; `'/'` or `''` is the root); names that are not UTF-8 come out with U+FFFD.

use std::collections::HashMap;

use microsandbox_image as core;
use microsandbox_image::ErrorKind;
use microsandbox_image::index::{self, Entry, IndexError};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::kind_error;
use crate::result::path_string;

/// What an entry is.
#[napi(string_enum = "camelCase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (`readlink` gives its target).
    Symlink,
    /// A character device (`rdev` says which).
    CharDevice,
    /// A block device (`rdev` says which).
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A whiteout (a layer stack never returns one; listed for completeness).
    Whiteout,
}

impl From<index::EntryKind> for EntryKind {
    fn from(kind: index::EntryKind) -> Self {
        match kind {
            index::EntryKind::File => EntryKind::File,
            index::EntryKind::Dir => EntryKind::Dir,
            index::EntryKind::Symlink => EntryKind::Symlink,
            index::EntryKind::CharDevice => EntryKind::CharDevice,
            index::EntryKind::BlockDevice => EntryKind::BlockDevice,
            index::EntryKind::Fifo => EntryKind::Fifo,
            index::EntryKind::Whiteout => EntryKind::Whiteout,
        }
    }
}

/// The metadata of an entry as the image describes it (not as the host stores it: a
/// symlink's host file is a regular file holding the target).
#[napi(object)]
pub struct Stat {
    /// What the entry is.
    pub kind: EntryKind,
    /// The full mode: type bits, set-id and sticky bits, permissions (`0o100644`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count within the entry's layer.
    pub nlink: u32,
    /// A file's length, a symlink's target length; 0 for directories and special files.
    pub size: i64,
    /// A device's number (`(major << 8) | minor` below 256, as glibc's `makedev`).
    pub rdev: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds (below 10⁹).
    pub mtime_nsec: u32,
    /// Inode of the extracted file in its layer's tree on the host (0 if unknown).
    pub inode: i64,
    /// The layer the entry comes from, 0 = bottom.
    pub layer: u32,
    /// The directory hides the lower layers' contents (an opaque whiteout).
    pub opaque: bool,
    /// The entry shares its inode with another entry of its layer.
    pub hardlink: bool,
    /// A directory created only as a parent, with placeholder metadata.
    pub implicit: bool,
    /// The entry has extended attributes (`xattrs`).
    pub has_xattrs: bool,
}

impl From<&Entry<'_>> for Stat {
    fn from(e: &Entry<'_>) -> Self {
        Stat {
            kind: e.kind().into(),
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            nlink: e.nlink(),
            size: e.size() as i64,
            rdev: e.rdev(),
            mtime_sec: e.mtime_sec(),
            mtime_nsec: e.mtime_nsec(),
            inode: e.inode() as i64,
            layer: e.layer() as u32,
            opaque: e.is_opaque(),
            hardlink: e.is_hardlink(),
            implicit: e.is_implicit(),
            has_xattrs: e.has_xattrs(),
        }
    }
}

/// One entry of a directory.
#[napi(object)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Its metadata.
    pub stat: Stat,
}

/// One entry of `walk()`.
#[napi(object)]
pub struct WalkEntry {
    /// The entry's path without a leading slash (`''` for the root, `'etc/hosts'`).
    pub path: String,
    /// Its metadata.
    pub stat: Stat,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The merged view of an image's layers. Immutable; keeps the index files mapped until it is
/// garbage-collected.
#[napi]
pub struct LayerStack {
    inner: index::LayerStack,
    /// Each layer's extracted tree on the host, parallel to the stack's layers.
    trees: core::cache::LayerTrees,
}

impl LayerStack {
    /// Opens the indexes of `result`'s layers.
    pub(crate) fn open(env: &Env, result: &core::PullResult) -> Result<LayerStack> {
        let inner = result.layer_stack().map_err(|e| {
            let hint = match &e {
                IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    " (the layer has no index: pull with buildIndex on to create it)"
                }
                _ => "",
            };
            kind_error(env, e.kind(), &format!("{}: {e}{hint}", result.reference))
        })?;
        Ok(LayerStack {
            inner,
            trees: result.layer_trees(),
        })
    }

    fn lookup(&self, env: &Env, path: &str) -> Result<Entry<'_>> {
        match self.inner.get(path.as_bytes()) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(kind_error(
                env,
                ErrorKind::NotFound,
                &format!("{path}: no such file or directory"),
            )),
            Err(e) => Err(corrupt(env, path, &e)),
        }
    }
}

/// A lookup that met a directory breaking the index format.
fn corrupt(env: &Env, path: &str, e: &IndexError) -> napi::Error {
    kind_error(env, e.kind(), &format!("{path}: corrupt layer index: {e}"))
}

#[napi]
impl LayerStack {
    /// The number of layers.
    #[napi(getter)]
    pub fn layer_count(&self) -> u32 {
        self.inner.layers().len() as u32
    }

    /// The metadata of the visible entry at `path` (symlinks are not followed). Throws
    /// `NOT_FOUND` when the merged view has no such entry.
    #[napi]
    pub fn stat(&self, env: Env, path: String) -> Result<Stat> {
        Ok(Stat::from(&self.lookup(&env, &path)?))
    }

    /// The target of the symbolic link at `path`, as stored. Throws `NOT_FOUND`, or
    /// `INVALID_ARGUMENT` when it is not a symbolic link.
    #[napi]
    pub fn readlink(&self, env: Env, path: String) -> Result<String> {
        match self.lookup(&env, &path)?.link_target() {
            Some(target) => Ok(text(target)),
            None => Err(kind_error(
                &env,
                ErrorKind::InvalidArgument,
                &format!("{path}: not a symbolic link"),
            )),
        }
    }

    /// The entries of the directory at `path`, merged across layers, sorted by name. Throws
    /// `NOT_FOUND`, or `INVALID_ARGUMENT` when it is not a directory.
    #[napi]
    pub fn read_dir(&self, env: Env, path: String) -> Result<Vec<DirEntry>> {
        match self.inner.read_dir(path.as_bytes()) {
            Ok(Some(entries)) => Ok(entries
                .iter()
                .map(|e| DirEntry {
                    name: text(e.name()),
                    stat: Stat::from(e),
                })
                .collect()),
            Ok(None) => {
                self.lookup(&env, &path)?;
                Err(kind_error(
                    &env,
                    ErrorKind::InvalidArgument,
                    &format!("{path}: not a directory"),
                ))
            }
            Err(e) => Err(corrupt(&env, &path, &e)),
        }
    }

    /// The extended attributes of the entry at `path`, name → value (empty when it has
    /// none). Throws `NOT_FOUND`.
    #[napi]
    pub fn xattrs(&self, env: Env, path: String) -> Result<HashMap<String, Buffer>> {
        let entry = self.lookup(&env, &path)?;
        Ok(entry
            .xattrs()
            .map(|(name, value)| (text(name), Buffer::from(value.to_vec())))
            .collect())
    }

    /// Where the content of the entry at `path` lives on the host: the tree of the layer it
    /// comes from joined with its path. Open regular files there for reading; only this
    /// view tells the truth about metadata. Throws `NOT_FOUND`, or `INVALID_ARGUMENT` when
    /// the layer has no tree (pulled with outputs `["erofs-layers"]` only).
    #[napi]
    pub fn host_path(&self, env: Env, path: String) -> Result<String> {
        let entry = self.lookup(&env, &path)?;
        match self.trees.host_path(&entry) {
            Ok(host) => Ok(path_string(&host)),
            Err(e) => Err(kind_error(&env, e.kind(), &format!("{path}: {e}"))),
        }
    }

    /// Every visible entry, the root first, each directory before its contents, siblings
    /// sorted by name. Throws (`IO`) before yielding anything if an index is corrupt.
    #[napi(ts_return_type = "IterableIterator<WalkEntry>")]
    pub fn walk(&self, env: Env) -> Result<Walk> {
        let mut entries = Vec::new();
        for item in self.inner.walk() {
            let (path, entry) = item.map_err(|e| corrupt(&env, "walk", &e))?;
            entries.push(WalkEntry {
                path: text(&path),
                stat: Stat::from(&entry),
            });
        }
        entries.reverse();
        Ok(Walk { entries })
    }
}

/// The iterator `walk()` returns.
#[napi(iterator)]
pub struct Walk {
    /// Remaining entries, last first.
    entries: Vec<WalkEntry>,
}

#[napi]
impl Generator for Walk {
    type Yield = WalkEntry;
    type Next = ();
    type Return = ();

    fn next(&mut self, _: Option<()>) -> Option<WalkEntry> {
        self.entries.pop()
    }
}
