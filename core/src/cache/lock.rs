//! Cross-process locks: `flock` on lock files under `<cache>/locks/`. This is the only place
//! that locks files. Lock files are created once and never unlinked, so two processes can
//! never end up holding locks on two different inodes of the same name.
//!
//! All functions here block; call them from `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::perms::Perms;

/// A held lock; released when dropped (the file is closed).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

/// Open (creating, with `perms`' file mode) a lock file; a symlink planted at its name is not
/// followed (`ELOOP`). In a shared cache a lock file of ours with another mode (made before
/// the cache was shared, or under a strict umask) gets the shared mode, so readers can take
/// leases on it.
fn open(path: &Path, perms: Perms) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(perms.file_mode())
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    if perms.gid().is_some() {
        let meta = file.metadata()?;
        let mine = meta.uid() == rustix::process::geteuid().as_raw();
        if mine && meta.mode() & 0o7777 != perms.file_mode() {
            rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(perms.file_mode()))?;
        }
    }
    Ok(file)
}

impl FileLock {
    /// Wait for the exclusive lock on `path`.
    pub(crate) fn exclusive(path: &Path, perms: Perms) -> std::io::Result<FileLock> {
        let file = open(path, perms)?;
        file.lock()?;
        Ok(FileLock { _file: file })
    }

    /// Wait for a shared lock on `path`, creating the file (with `perms`, which an owner's
    /// open also restores on an existing file) if it does not exist. Where the file cannot
    /// be opened for writing (a read-only mount, no write permission) an existing lock file
    /// is opened read-only: `flock` needs no more, and that lets such a cache serve warm
    /// pulls.
    pub(crate) fn shared(path: &Path, perms: Perms) -> std::io::Result<FileLock> {
        use rustix::io::Errno;
        let file = match open(path, perms) {
            Ok(file) => file,
            Err(e)
                if [Errno::ROFS, Errno::ACCESS, Errno::PERM]
                    .iter()
                    .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
            {
                Self::open_existing(path).map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        file.lock_shared()?;
        Ok(FileLock { _file: file })
    }

    /// Wait for a shared lock on the existing file `path`, opened read-only (a reader of a
    /// cache it cannot write: `flock` works on a read-only descriptor). `NotFound` when the
    /// file does not exist; it is never created.
    pub(crate) fn shared_existing(path: &Path) -> std::io::Result<FileLock> {
        let file = Self::open_existing(path)?;
        file.lock_shared()?;
        Ok(FileLock { _file: file })
    }

    /// `path` opened read-only, not through a symlink.
    fn open_existing(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
    }

    /// Write this process's pid into the lock file (best effort), for [`FileLock::holder`].
    pub(crate) fn record_holder(&self) {
        use std::os::unix::fs::FileExt;
        let pid = format!("{}\n", std::process::id());
        if self._file.set_len(0).is_ok() {
            let _ = self._file.write_all_at(pid.as_bytes(), 0);
        }
    }

    /// The pid recorded in the lock file at `path` by its last exclusive holder.
    pub(crate) fn holder(path: &Path) -> Option<u32> {
        use std::io::Read;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .ok()?;
        let mut text = String::new();
        file.take(16).read_to_string(&mut text).ok()?;
        text.trim().parse().ok()
    }

    /// Take the exclusive lock if nobody holds the lock now.
    pub(crate) fn try_exclusive(path: &Path, perms: Perms) -> std::io::Result<Option<FileLock>> {
        let file = open(path, perms)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Perms = Perms::PRIVATE;

    #[test]
    fn exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = FileLock::exclusive(&p, P).unwrap();
        assert!(FileLock::try_exclusive(&p, P).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&p, P).unwrap().is_some());
        let s1 = FileLock::shared(&p, P).unwrap();
        let s2 = FileLock::shared(&p, P).unwrap();
        assert!(FileLock::try_exclusive(&p, P).unwrap().is_none());
        drop((s1, s2));
        assert!(p.exists(), "lock files are never unlinked");
        // A reader's lease: read-only, never creating.
        let r = FileLock::shared_existing(&p).unwrap();
        assert!(FileLock::try_exclusive(&p, P).unwrap().is_none());
        drop(r);
        let missing = dir.path().join("missing.lock");
        let e = FileLock::shared_existing(&missing).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(!missing.exists());
    }

    #[test]
    fn a_shared_lock_needs_no_write_access_to_an_existing_lock_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        drop(FileLock::exclusive(&p, P).unwrap());
        // Root may write anyway; read-only mode bits stand in for a read-only mount.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        let shared = FileLock::shared(&p, P).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            FileLock::try_exclusive(&p, P).unwrap().is_none(),
            "it is held"
        );
        drop(shared);
    }

    #[test]
    fn a_symlink_at_a_lock_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (p, target) = (dir.path().join("x.lock"), dir.path().join("elsewhere"));
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(FileLock::exclusive(&p, P).is_err());
        assert!(FileLock::shared(&p, P).is_err());
        assert!(!target.exists(), "nothing was created through the link");
    }
}
