//! How this process may use a cache: opening it as its owner (creating what is missing, with
//! the group's modes when it is shared) or as a reader that creates and writes nothing, and
//! the guard every write of a read-only cache meets (`CacheError::ReadOnly`, naming what
//! would have been written). The rules are in `LAYOUT.md`, "Sharing a cache with a group".

use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::perms::Perms;
use super::{CacheError, CacheGroup, CacheOptions, GlobalCache, trust};

impl GlobalCache {
    /// Whether this cache was opened [read-only](CacheOptions::read_only).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The group the cache is shared with (its files `0640`, directories `2750`), if it is
    /// and this process writes it.
    pub fn group(&self) -> Option<u32> {
        self.inner.perms.gid()
    }

    /// How this process creates files and directories in the cache.
    pub(crate) fn perms(&self) -> Perms {
        self.inner.perms
    }

    /// `Ok` unless the cache is read-only; then the error says that `need` (which would write
    /// `path`) cannot be done here.
    pub(crate) fn writable(
        &self,
        path: &Path,
        need: impl FnOnce() -> String,
    ) -> Result<(), CacheError> {
        if !self.inner.read_only {
            return Ok(());
        }
        Err(CacheError::ReadOnly {
            path: path.to_owned(),
            need: need(),
            fix: "ask the cache's owner to do it (e.g. pull the image), or open the cache \
                  without read-only as its owner"
                .into(),
        })
    }

    /// An I/O error on `path`; for a reader that may not read it, [`CacheError::NoAccess`].
    pub(crate) fn denied_or(
        &self,
        op: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.to_owned();
        move |e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => trust::no_access(&path, e),
            _ => CacheError::Io {
                op,
                path,
                source: e,
            },
        }
    }
}

/// Open (creating what is missing) a cache this user owns and writes; returns its canonical
/// root and how to create entries in it.
pub(super) fn open_writable(
    given: &Path,
    options: &CacheOptions,
) -> Result<(PathBuf, Perms), CacheError> {
    let asked = options.group.as_ref().map(CacheGroup::gid).transpose()?;
    if let Some(gid) = asked {
        trust::check_may_share(given, gid)?;
    }
    trust::create_cache_dir(given, asked.map_or(Perms::PRIVATE, Perms::group))?;
    let root = std::fs::canonicalize(given).map_err(CacheError::io("resolve", given))?;
    trust::check_trusted(&root, true)?;
    // A shared cache stays shared: a writer that names no group keeps the root's.
    let perms = asked
        .or_else(|| trust::shared_group(&root))
        .map_or(Perms::PRIVATE, Perms::group);
    let layout = Layout::new(root.clone());
    for (dir, is_root) in trust::checked_dirs(&root, &layout.dirs()) {
        trust::create_cache_dir(&dir, perms)?;
        trust::check_trusted(&dir, is_root)?;
        trust::conform(&dir, perms)?;
    }
    Ok((root, perms))
}

/// Check, creating nothing, a cache this user only reads; returns its canonical root.
pub(super) fn open_read_only(given: &Path) -> Result<PathBuf, CacheError> {
    let root = std::fs::canonicalize(given).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CacheError::ReadOnly {
            path: given.to_owned(),
            need: "there is no cache here, and creating one is a write".into(),
            fix: "ask the cache's owner to pull an image into it first".into(),
        },
        _ => trust::no_access(given, e),
    })?;
    let owner = trust::check_shared(&root, true, None)?;
    let layout = Layout::new(root.clone());
    for (dir, is_root) in trust::checked_dirs(&root, &layout.dirs()) {
        if !is_root {
            trust::check_shared(&dir, false, Some(owner))?;
        }
    }
    Ok(root)
}
