//! The trusted root: a runtime mounts what is in the cache without checking it again, so no
//! one but the cache's owner may be able to write there. A new cache is created `0700`; an
//! existing root or any of its directories that belongs to another user, is writable by group
//! or others, or (below the root) is a symlink, is refused with an error that names the path
//! and the fix. Lock, record and temp files are opened with `O_NOFOLLOW` elsewhere, so a
//! planted symlink cannot redirect a write.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CacheError;

/// Mode bits that would let someone else write.
const FOREIGN_WRITE: u32 = 0o022;

/// Create `dir` (mode 0700) if it does not exist; its parents are created normally.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), CacheError> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        // Named after the cache directory asked for: that is the path the user knows.
        std::fs::create_dir_all(parent).map_err(CacheError::io("create", dir))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(CacheError::io("create", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Refuse `dir` unless it is a directory of ours that only we can write (`is_root`: the
/// cache root, which may be reached through a symlink the user chose; the caller passes its
/// canonical path).
pub(crate) fn check_trusted(dir: &Path, is_root: bool) -> Result<(), CacheError> {
    let meta = std::fs::symlink_metadata(dir).map_err(CacheError::io("inspect", dir))?;
    let untrusted = |reason: String, fix: String| CacheError::Untrusted {
        path: dir.to_owned(),
        reason,
        fix,
    };
    if meta.file_type().is_symlink() && !is_root {
        return Err(untrusted(
            "is a symlink".into(),
            format!("remove it (`rm {}`); the cache recreates it", dir.display()),
        ));
    }
    if !meta.is_dir() {
        return Err(untrusted("is not a directory".into(), "remove it".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(untrusted(
            format!("belongs to uid {}, not to this user (uid {me})", meta.uid()),
            format!(
                "use a cache of your own (--cache), or `chown -R {me} {}`",
                dir.display()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & FOREIGN_WRITE != 0 {
        return Err(untrusted(
            format!("is writable by group or others (mode {mode:o})"),
            format!("`chmod go-w {}`", dir.display()),
        ));
    }
    Ok(())
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
        create_private_dir(&d).unwrap();
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
}
