//! Kept prefixes of blobs being downloaded: `blobs/sha256/<hex>.partial`, so that a pull
//! killed in the middle of a large layer resumes, at the next pull in any process, from the
//! bytes already on disk.
//!
//! The rules (also in `LAYOUT.md`):
//! * Whoever writes, reads or removes a `.partial` holds `locks/blob-<hex>.lock`, taken
//!   without waiting (under the layer's own lock): a pull that cannot take it simply neither
//!   resumes nor keeps bytes.
//! * A partial is only ever appended to, with the bytes as they arrive, and never trusted:
//!   the pull that resumes feeds it through the same digest, inflate and extract stream as the
//!   network bytes after it, so a torn or corrupted tail fails the blob's digest check (and the
//!   pull starts again from zero). No `fsync`: a process that is killed loses nothing written,
//!   and a power cut at worst leaves a tail the digest check refuses.
//! * It is removed once its blob is verified (before the layer is published), when the layer
//!   turns out to be published already, and when the blob proved bad. A cancelled pull, or one whose download failed,
//!   keeps it: that is the point of resuming.
//! * `gc` removes partials no one holds that have not grown for [`PARTIAL_MAX_AGE`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::layout::Layout;
use super::sweep::Swept;
use super::{CacheError, FileLock, GlobalCache};
use crate::digest::Digest;

/// A partial that no one holds and that has not grown for this long is collected by `gc`.
pub(crate) const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The kept prefix of one blob, held (its blob lock taken) by the pull that downloads it.
/// Dropping it keeps the file; [`PartialBlob::remove`] deletes it.
#[derive(Debug)]
pub(crate) struct PartialBlob {
    path: PathBuf,
    /// Bytes an earlier pull kept: where this download resumes.
    kept: u64,
    /// Whether new bytes are appended.
    keep_new: bool,
    _lock: FileLock,
}

/// Appends downloaded bytes to a `.partial`. A write that fails (a full disk) stops the
/// keeping: what was written is still a prefix of the blob.
#[derive(Debug)]
pub(crate) struct PartialWriter {
    file: Option<File>,
}

impl PartialWriter {
    /// Append `bytes`, or stop keeping if that fails.
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.file
            && f.write_all(bytes).is_err()
        {
            self.file = None;
        }
    }
}

impl PartialBlob {
    /// Bytes kept by an earlier pull (0 when there were none).
    pub(crate) fn kept(&self) -> u64 {
        self.kept
    }

    /// A reader over the kept bytes, to feed before the network's.
    pub(crate) fn prefix(&self) -> Result<std::io::Take<File>, CacheError> {
        let f = File::open(&self.path).map_err(CacheError::io("open", &self.path))?;
        Ok(f.take(self.kept))
    }

    /// Where the bytes of this download go: appended after the kept ones. `None` when this
    /// pull keeps nothing new (no earlier partial and the blob is below the threshold).
    pub(crate) fn writer(&self) -> Result<Option<PartialWriter>, CacheError> {
        if !self.keep_new {
            return Ok(None);
        }
        // Private even in a shared cache: only the owner ever resumes from it.
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(CacheError::io("open", &self.path))?;
        // We hold the blob lock, so the file is as long as we measured: appends continue
        // exactly at the resume offset.
        let len = f
            .metadata()
            .map_err(CacheError::io("stat", &self.path))?
            .len();
        if len != self.kept {
            f.set_len(self.kept)
                .map_err(CacheError::io("truncate", &self.path))?;
        }
        Ok(Some(PartialWriter { file: Some(f) }))
    }

    /// Delete the kept bytes (the blob is verified, or they proved bad).
    pub(crate) fn remove(self) -> Result<(), CacheError> {
        remove_if_present(&self.path)
    }
}

fn remove_if_present(path: &std::path::Path) -> Result<(), CacheError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(CacheError::io("remove", path)(e))
        }
        _ => Ok(()),
    }
}

impl GlobalCache {
    /// Take hold of the partial of `blob` (of `size` bytes) for a download (blocking):
    /// the bytes an earlier pull kept, and whether to keep this download's (`keep_new`; an
    /// existing partial is always continued). `None` when there is nothing to resume or keep,
    /// or when someone else holds the blob's partial.
    pub(crate) fn open_partial(
        &self,
        blob: &Digest,
        size: u64,
        keep_new: bool,
    ) -> Result<Option<PartialBlob>, CacheError> {
        let path = self.layout().blob_partial(blob);
        let exists = std::fs::symlink_metadata(&path).is_ok();
        if !exists && !keep_new {
            return Ok(None);
        }
        let lock_path = self.layout().blob_lock(blob);
        let Some(lock) = FileLock::try_exclusive(&lock_path, self.perms())
            .map_err(CacheError::io("lock", &lock_path))?
        else {
            return Ok(None);
        };
        let kept = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= size => m.len(),
            // Longer than the blob, or not a file: it cannot be a prefix.
            Ok(_) => {
                remove_if_present(&path)?;
                0
            }
            Err(_) => 0,
        };
        Ok(Some(PartialBlob {
            path,
            kept,
            keep_new: keep_new || kept > 0,
            _lock: lock,
        }))
    }

    /// Remove the partial of `blob`, unless someone holds it (blocking): its layer is
    /// published already, so its bytes will not be needed.
    pub(crate) fn drop_partial(&self, blob: &Digest) -> Result<(), CacheError> {
        let path = self.layout().blob_partial(blob);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(());
        }
        let lock_path = self.layout().blob_lock(blob);
        match FileLock::try_exclusive(&lock_path, self.perms())
            .map_err(CacheError::io("lock", &lock_path))?
        {
            Some(_lock) => remove_if_present(&path),
            None => Ok(()),
        }
    }

    /// Remove the partials no one holds that have not grown for [`PARTIAL_MAX_AGE`]
    /// (blocking). With `dry_run`, only count them.
    pub(crate) fn sweep_partials(&self, dry_run: bool) -> Result<Swept, CacheError> {
        let dir = self.layout().blobs_dir();
        let mut swept = Swept::default();
        for entry in std::fs::read_dir(&dir).map_err(CacheError::io("list", &dir))? {
            let Ok(entry) = entry else { continue };
            let Some(blob) = entry.file_name().to_str().and_then(Layout::partial_blob_of) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            let stale = meta.modified().is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() > PARTIAL_MAX_AGE
            });
            if !stale {
                continue;
            }
            let lock_path = self.layout().blob_lock(&blob);
            let Some(_lock) = FileLock::try_exclusive(&lock_path, self.perms())
                .map_err(CacheError::io("lock", &lock_path))?
            else {
                continue;
            };
            let bytes = super::usage::disk_bytes(&entry.path());
            if !dry_run && std::fs::remove_file(entry.path()).is_err() {
                continue;
            }
            swept.entries += 1;
            swept.bytes += bytes;
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &std::path::Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn resumes_from_what_was_kept_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GlobalCache::new(dir.path()).unwrap();
        let blob = Digest::sha256_of(b"blob");
        assert!(cache.open_partial(&blob, 10, false).unwrap().is_none());

        let p = cache.open_partial(&blob, 10, true).unwrap().unwrap();
        assert_eq!(p.kept(), 0);
        p.writer().unwrap().unwrap().append(b"abcd");
        // Held: nobody else may open or drop it.
        assert!(cache.open_partial(&blob, 10, true).unwrap().is_none());
        cache.drop_partial(&blob).unwrap();
        drop(p);

        // Continued even when new partials are not wanted.
        let p = cache.open_partial(&blob, 10, false).unwrap().unwrap();
        assert_eq!(p.kept(), 4);
        let mut prefix = String::new();
        p.prefix().unwrap().read_to_string(&mut prefix).unwrap();
        assert_eq!(prefix, "abcd");
        p.writer().unwrap().unwrap().append(b"ef");
        drop(p);
        let path = cache.layout().blob_partial(&blob);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");

        // Longer than the blob: not a prefix of it, so it is dropped.
        let p = cache.open_partial(&blob, 5, false).unwrap().unwrap();
        assert_eq!(p.kept(), 0);
        assert!(!path.exists());
        drop(p);

        std::fs::write(&path, b"xy").unwrap();
        cache
            .open_partial(&blob, 10, true)
            .unwrap()
            .unwrap()
            .remove()
            .unwrap();
        assert!(!path.exists());
        std::fs::write(&path, b"xy").unwrap();
        cache.drop_partial(&blob).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_sweep_takes_old_partials_no_one_holds() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GlobalCache::new(dir.path()).unwrap();
        let [held, stale, fresh] =
            ["held", "stale", "fresh"].map(|b| Digest::sha256_of(b.as_bytes()));
        for d in [&held, &stale, &fresh] {
            std::fs::write(cache.layout().blob_partial(d), vec![7u8; 5000]).unwrap();
        }
        age(
            &cache.layout().blob_partial(&held),
            2 * PARTIAL_MAX_AGE.as_secs(),
        );
        age(
            &cache.layout().blob_partial(&stale),
            2 * PARTIAL_MAX_AGE.as_secs(),
        );
        let holder = cache.open_partial(&held, 5000, true).unwrap().unwrap();

        let counted = cache.sweep_partials(true).unwrap();
        assert_eq!(counted.entries, 1);
        assert!(counted.bytes >= 4096, "{counted:?}");
        assert!(
            cache.layout().blob_partial(&stale).exists(),
            "a dry run removes nothing"
        );
        assert_eq!(cache.sweep_partials(false).unwrap(), counted);
        assert!(!cache.layout().blob_partial(&stale).exists());
        assert!(cache.layout().blob_partial(&held).exists());
        assert!(cache.layout().blob_partial(&fresh).exists());
        drop(holder);
        assert_eq!(cache.sweep_partials(false).unwrap().entries, 1);
        assert!(!cache.layout().blob_partial(&held).exists());
    }
}
