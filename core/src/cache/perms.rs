//! The modes the cache creates things with: private (files `0600`, directories `0700`, the
//! default) or shared read-only with one group (files `0640`, directories `2750`: setgid, so
//! everything created below a cache directory takes its group without a `chown` per file).
//! Nothing is ever group-writable. Every file and directory the cache or the extractor creates
//! gets its mode from here; in group mode, a umask that would strip the group's read bits
//! (`077`) is undone with an `fchmod` per created entry.

use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use rustix::fs::Mode;

/// The mode of a shared cache's directories: setgid, the group may read and enter.
pub(crate) const SHARED_DIR_MODE: u32 = 0o2750;

/// How this process creates entries in one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Perms {
    /// The group the cache is shared with, if it is.
    gid: Option<u32>,
    /// The umask would strip bits of the modes below: set them again after creating.
    fix_modes: bool,
}

impl Perms {
    /// Files `0600`, directories `0700`.
    pub(crate) const PRIVATE: Perms = Perms {
        gid: None,
        fix_modes: false,
    };

    /// Shared read-only with group `gid`.
    pub(crate) fn group(gid: u32) -> Perms {
        Perms {
            gid: Some(gid),
            fix_modes: umask().is_none_or(|m| m & 0o750 != 0),
        }
    }

    /// The group the cache is shared with.
    pub(crate) fn gid(&self) -> Option<u32> {
        self.gid
    }

    /// Mode of a new file.
    pub(crate) fn file_mode(&self) -> u32 {
        if self.gid.is_some() { 0o640 } else { 0o600 }
    }

    /// Mode of a new directory (with setgid in group mode).
    pub(crate) fn dir_mode(&self) -> u32 {
        if self.gid.is_some() {
            SHARED_DIR_MODE
        } else {
            0o700
        }
    }

    /// What to pass to `open`/`mkdir` (the kernel takes setgid from the parent directory).
    pub(crate) fn create_mode(&self, dir: bool) -> Mode {
        let mode = if dir {
            self.dir_mode()
        } else {
            self.file_mode()
        };
        Mode::from_raw_mode(mode & 0o777)
    }

    /// After creating `fd` with [`Perms::create_mode`]: give it the exact mode if the umask
    /// took bits away (group mode only; a no-op otherwise).
    pub(crate) fn fix_fd(&self, fd: impl AsFd, dir: bool) -> rustix::io::Result<()> {
        if !self.fix_modes {
            return Ok(());
        }
        let mode = if dir {
            self.dir_mode()
        } else {
            self.file_mode()
        };
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
    }

    /// Create the directory `path` with this mode (the umask undone in group mode).
    pub(crate) fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .mode(self.dir_mode() & 0o777)
            .create(path)?;
        if self.fix_modes {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.dir_mode()))?;
        }
        Ok(())
    }
}

/// This process's umask, read without changing it (`/proc/self/status`, Linux 4.7+).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_per_kind() {
        assert_eq!(Perms::PRIVATE.file_mode(), 0o600);
        assert_eq!(Perms::PRIVATE.dir_mode(), 0o700);
        let g = Perms::group(12);
        assert_eq!(
            (g.file_mode(), g.dir_mode(), g.gid()),
            (0o640, 0o2750, Some(12))
        );
        assert!(umask().is_some(), "/proc/self/status has a Umask line");
    }
}
