//! The trusted root: a runtime mounts what is in the cache without checking it again, so no
//! one but the cache's owner may be able to write there. A new cache is created `0700` (or
//! `2750` with its group when shared, `cache/perms.rs`); an existing root or any of its
//! directories that belongs to another user, is writable by group or others, or (below the
//! root) is a symlink, is refused with an error that names the path and the fix. A read-only
//! opener accepts a root of another user instead, provided every cache directory has the
//! root's owner and nothing is writable by group or others. Lock, record and temp files are
//! opened with `O_NOFOLLOW` elsewhere, so a planted symlink cannot redirect a write.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CacheError;
use super::perms::{Perms, SHARED_DIR_MODE};

/// Mode bits that would let someone else write.
const FOREIGN_WRITE: u32 = 0o022;

/// Create `dir` with `perms` if it does not exist (its parents are created normally; a
/// shared cache's new directory gets the group).
pub(crate) fn create_cache_dir(dir: &Path, perms: Perms) -> Result<(), CacheError> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        // Named after the cache directory asked for: that is the path the user knows.
        std::fs::create_dir_all(parent).map_err(CacheError::io("create", dir))?;
    }
    match perms.create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(CacheError::io("create", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Give a cache directory of ours the shared group and mode (`2750`) when `perms` shares the
/// cache and it has not got them (new, or a private cache being shared now). A private
/// `perms` leaves it as it is.
pub(crate) fn conform(dir: &Path, perms: Perms) -> Result<(), CacheError> {
    let Some(gid) = perms.gid() else {
        return Ok(());
    };
    let meta = std::fs::symlink_metadata(dir).map_err(CacheError::io("inspect", dir))?;
    if meta.gid() != gid {
        let group = Some(rustix::fs::Gid::from_raw(gid));
        rustix::fs::chown(dir, None, group).map_err(|e| CacheError::Io {
            op: "share",
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!("chgrp {gid}: {e} (the cache's owner must be root or in group {gid})"),
            ),
        })?;
    }
    if meta.permissions().mode() & 0o7777 != perms.dir_mode() || meta.gid() != gid {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(perms.dir_mode()))
            .map_err(CacheError::io("chmod", dir))?;
    }
    Ok(())
}

/// The group a cache root is shared with, if it is: a writer that names no group keeps
/// sharing it. Only the exact mode a shared cache's root gets (`2750`) counts, so a private
/// root that merely inherited a setgid bit from its parent is never shared by accident.
pub(crate) fn shared_group(root: &Path) -> Option<u32> {
    let meta = std::fs::metadata(root).ok()?;
    (meta.permissions().mode() & 0o7777 == SHARED_DIR_MODE).then_some(meta.gid())
}

fn untrusted(dir: &Path, reason: String, fix: String) -> CacheError {
    CacheError::Untrusted {
        path: dir.to_owned(),
        reason,
        fix,
    }
}

/// Refuse a symlink (below the root), a non-directory, or a directory others can write.
fn check_shape(dir: &Path, meta: &std::fs::Metadata, is_root: bool) -> Result<(), CacheError> {
    if meta.file_type().is_symlink() && !is_root {
        return Err(untrusted(
            dir,
            "is a symlink".into(),
            format!("remove it (`rm {}`); the cache recreates it", dir.display()),
        ));
    }
    if !meta.is_dir() {
        return Err(untrusted(
            dir,
            "is not a directory".into(),
            "remove it".into(),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & FOREIGN_WRITE != 0 {
        return Err(untrusted(
            dir,
            format!("is writable by group or others (mode {mode:o})"),
            format!("`chmod go-w {}`", dir.display()),
        ));
    }
    Ok(())
}

/// Refuse `dir` unless it is a directory of ours that only we can write (`is_root`: the
/// cache root, which may be reached through a symlink the user chose; the caller passes its
/// canonical path).
pub(crate) fn check_trusted(dir: &Path, is_root: bool) -> Result<(), CacheError> {
    let meta = std::fs::symlink_metadata(dir).map_err(CacheError::io("inspect", dir))?;
    if meta.file_type().is_symlink() && !is_root {
        return check_shape(dir, &meta, is_root);
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.is_dir() && meta.uid() != me {
        return Err(untrusted(
            dir,
            format!("belongs to uid {}, not to this user (uid {me})", meta.uid()),
            format!(
                "use a cache of your own (--cache), or `chown -R {me} {}`; to read a cache \
                 another user shares with you, open it read-only (--read-only)",
                dir.display()
            ),
        ));
    }
    check_shape(dir, &meta, is_root)
}

/// For a read-only opener: refuse `dir` unless it is a directory nobody but its owner can
/// write, owned by `owner` (the root's owner; `None` for the root itself), that this user can
/// read and enter. Returns its owner. Nothing is created: a missing directory is
/// [`CacheError::ReadOnly`].
pub(crate) fn check_shared(
    dir: &Path,
    is_root: bool,
    owner: Option<u32>,
) -> Result<u32, CacheError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CacheError::ReadOnly {
            path: dir.to_owned(),
            need: "a cache directory is missing, and creating it is a write".into(),
            fix: "ask the cache's owner to open the cache once (any pull or `ls` as the owner \
                  recreates it)"
                .into(),
        },
        _ => no_access(dir, e),
    })?;
    check_shape(dir, &meta, is_root)?;
    if let Some(owner) = owner
        && meta.uid() != owner
    {
        return Err(untrusted(
            dir,
            format!(
                "belongs to uid {}, not to the cache's owner (uid {owner})",
                meta.uid()
            ),
            format!(
                "the cache's owner should remove it (`rm -r {}`); the cache recreates it",
                dir.display()
            ),
        ));
    }
    let rx = rustix::fs::Access::READ_OK | rustix::fs::Access::EXEC_OK;
    rustix::fs::access(dir, rx).map_err(|e| no_access(dir, e.into()))?;
    Ok(meta.uid())
}

/// Refuse to share a cache with group `gid` (before creating anything) unless this process
/// can give files that group: root, or a member of it.
pub(crate) fn check_may_share(dir: &Path, gid: u32) -> Result<(), CacheError> {
    let me = rustix::process::geteuid().as_raw();
    if me == 0 || in_group(gid) {
        return Ok(());
    }
    Err(CacheError::Io {
        op: "share",
        path: dir.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "this user (uid {me}) is not in group {gid}; only root or a member of the \
                 group can share a cache with it"
            ),
        ),
    })
}

/// Whether this process has group `gid` (effective or supplementary).
fn in_group(gid: u32) -> bool {
    rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|gs| gs.iter().any(|g| g.as_raw() == gid))
}

/// The error for a cache directory this user may not read: who owns it and what to ask for.
pub(crate) fn no_access(path: &Path, e: std::io::Error) -> CacheError {
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return CacheError::io("inspect", path)(e);
    }
    // The nearest ancestor we can `stat` says whose it is.
    let owner = path
        .ancestors()
        .find_map(|a| std::fs::metadata(a).ok().map(|m| (a.to_owned(), m)));
    let me = rustix::process::geteuid().as_raw();
    let (reason, fix) = match owner {
        Some((dir, m)) => (
            format!(
                "permission denied ({} belongs to uid {}, group {}, mode {:o})",
                dir.display(),
                m.uid(),
                m.gid(),
                m.permissions().mode() & 0o7777
            ),
            if in_group(m.gid()) {
                format!(
                    "ask the cache's owner to make it group-readable (`chmod g+rX {}`; made \
                     before the cache was shared?)",
                    dir.display()
                )
            } else {
                format!(
                    "ask the cache's owner to add this user (uid {me}) to group {}, or use a \
                     cache of your own (--cache)",
                    m.gid()
                )
            },
        ),
        None => (
            "permission denied".into(),
            "use a cache of your own (--cache)".into(),
        ),
    };
    CacheError::NoAccess {
        path: path.to_owned(),
        reason,
        fix,
    }
}

/// The directories that must be trusted: the root and every directory the layout has.
pub(crate) fn checked_dirs(root: &Path, dirs: &[PathBuf]) -> Vec<(PathBuf, bool)> {
    let mut out = vec![(root.to_owned(), true)];
    for d in dirs {
        // Intermediate directories (`layers/` of `layers/sha256`) too.
        let mut partial = root.to_owned();
        if let Ok(rel) = d.strip_prefix(root) {
            for c in rel.components() {
                partial.push(c);
                if !out.iter().any(|(p, _)| *p == partial) {
                    out.push((partial.clone(), false));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_foreign_writable_and_symlinked_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("c");
        create_cache_dir(&d, Perms::PRIVATE).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        check_trusted(&d, true).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_trusted(&d, true).unwrap_err().to_string();
        assert!(
            e.contains("writable by group or others") && e.contains("chmod go-w"),
            "{e}"
        );
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_trusted(&d, true).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = check_trusted(&link, false).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
    }

    #[test]
    fn only_a_2750_root_counts_as_shared() {
        let dir = tempfile::tempdir().unwrap();
        let gid = std::fs::metadata(dir.path()).unwrap().gid();
        let mode = |m| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m));
        mode(0o700).unwrap();
        assert_eq!(shared_group(dir.path()), None);
        mode(0o2750).unwrap();
        assert_eq!(shared_group(dir.path()), Some(gid));
        mode(0o2755).unwrap();
        assert_eq!(
            shared_group(dir.path()),
            None,
            "a setgid root of other mode is private"
        );
    }

    #[test]
    fn a_reader_creates_nothing_and_refuses_what_others_may_write() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = check_shared(&missing, false, None).unwrap_err();
        assert!(matches!(e, CacheError::ReadOnly { .. }), "{e}");
        assert!(!missing.exists());
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2770)).unwrap();
        let e = check_shared(&d, false, None).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2750)).unwrap();
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(check_shared(&d, false, Some(me)).unwrap(), me);
        let e = check_shared(&d, false, Some(me + 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not to the cache's owner"), "{e}");
    }
}
