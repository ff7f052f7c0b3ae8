//! Layer leases: how a user of a layer (a [`PullResult`](crate::PullResult), a
//! [`LayerStack`](crate::LayerStack) made from one, a runtime that mounted the layer) keeps it
//! from being deleted by `gc`, `rm` or `pull --force` in any process.
//!
//! A lease is a shared `flock` on `locks/lease-<hex>.lock`. Whoever deletes a layer tree takes
//! the exclusive lock first, without waiting; when it cannot, the tree stays (a forced
//! re-pull leaves the old tree in `tmp/trash-<hex>.*`, `gc` skips the layer) and the next
//! sweep deletes it once no one holds it. Within one process every holder of a layer shares one
//! open file (one descriptor per layer, however many results hold it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::perms::Perms;
use super::{CacheError, FileLock, GlobalCache};
use crate::digest::Digest;

/// A held lease on one layer: while any clone of it is alive, no process deletes the
/// layer's tree. Dropping the last holder in this process releases it.
///
/// ```no_run
/// use microsandbox_image::GlobalCache;
/// # fn f(cache: GlobalCache, diff_id: microsandbox_image::Digest) -> Result<(), microsandbox_image::CacheError> {
/// let lease = cache.hold_layer(&diff_id)?;      // e.g. while the layer is mounted
/// // … mount cache.layer_fs(&diff_id) …
/// drop(lease);                                  // gc may now remove it if nothing refers to it
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LayerLease {
    diff_id: Digest,
    /// The shared lock; `None` only while dropping.
    lock: Option<FileLock>,
    /// The lease lock file, to see on drop whether anyone else still holds the layer.
    path: std::path::PathBuf,
    /// How the cache creates lock files.
    perms: Perms,
    /// Replaced trees of this layer that this process left in `tmp/` because it held the
    /// layer itself (a forced re-pull): deleted when the last holder here lets go, if no one
    /// else holds the layer then (otherwise the next sweep does it).
    pending_trash: Mutex<Vec<std::path::PathBuf>>,
}

impl Drop for LayerLease {
    fn drop(&mut self) {
        let pending = std::mem::take(
            self.pending_trash
                .get_mut()
                .unwrap_or_else(|p| p.into_inner()),
        );
        drop(self.lock.take());
        if pending.is_empty() {
            return;
        }
        if let Ok(Some(_free)) = FileLock::try_exclusive(&self.path, self.perms) {
            for trash in pending {
                let _ = std::fs::remove_dir_all(trash);
            }
        }
    }
}

impl LayerLease {
    /// The layer this lease holds.
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }
}

/// The leases this process holds, one per layer.
#[derive(Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<Digest, Weak<LayerLease>>>,
}

impl Leases {
    fn get(&self, diff_id: &Digest) -> Option<Arc<LayerLease>> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(diff_id).and_then(Weak::upgrade)
    }

    fn insert(&self, lease: &Arc<LayerLease>) -> Arc<LayerLease> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have taken the same lease meanwhile: keep one.
        if let Some(existing) = held.get(&lease.diff_id).and_then(Weak::upgrade) {
            return existing;
        }
        held.retain(|_, w| w.strong_count() > 0);
        held.insert(lease.diff_id.clone(), Arc::downgrade(lease));
        lease.clone()
    }
}

impl GlobalCache {
    /// Hold `diff_id`'s layer so that no process deletes its tree while the returned lease
    /// (or a clone) is alive (blocking: waits while a `gc` is deleting that very layer, which
    /// takes milliseconds). Holding a layer that is not in the cache is allowed: it then keeps a
    /// layer published later from being collected.
    ///
    /// A [read-only](crate::cache::CacheOptions::read_only) cache takes the lease on the
    /// existing lease file, opened read-only; when there is none (the owner creates one for
    /// every layer it pulls) the error is [`CacheError::ReadOnly`] naming it.
    pub fn hold_layer(&self, diff_id: &Digest) -> Result<Arc<LayerLease>, CacheError> {
        let leases = &self.inner.leases;
        if let Some(lease) = leases.get(diff_id) {
            return Ok(lease);
        }
        let path = self.layout().layer_lease(diff_id);
        let lock = if self.is_read_only() {
            FileLock::shared_existing(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CacheError::ReadOnly {
                    path: path.clone(),
                    need: format!("layer {diff_id} has no lease file, and creating it is a write"),
                    fix: "ask the cache's owner to pull the image again (that creates it)".into(),
                },
                _ => self.denied_or("lease", &path)(e),
            })?
        } else {
            FileLock::shared(&path, self.perms()).map_err(CacheError::io("lease", &path))?
        };
        Ok(leases.insert(&Arc::new(LayerLease {
            diff_id: diff_id.clone(),
            lock: Some(lock),
            path,
            perms: self.perms(),
            pending_trash: Mutex::default(),
        })))
    }

    /// A replaced tree of `diff_id` left at `trash` because the layer is held: if this
    /// process holds it, its last holder here deletes the tree (when no one else holds the
    /// layer by then); otherwise the next sweep does.
    pub(crate) fn defer_trash(&self, diff_id: &Digest, trash: std::path::PathBuf) {
        if let Some(lease) = self.inner.leases.get(diff_id) {
            lease
                .pending_trash
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(trash);
        }
    }

    /// Hold every layer of `diff_ids` (blocking), in order, without duplicates.
    pub(crate) fn hold_layers(
        &self,
        diff_ids: &[Digest],
    ) -> Result<Vec<Arc<LayerLease>>, CacheError> {
        let mut out: Vec<Arc<LayerLease>> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            if !out.iter().any(|l| l.diff_id() == d) {
                out.push(self.hold_layer(d)?);
            }
        }
        Ok(out)
    }

    /// Whether nobody (in any process) holds `diff_id`; if so, the returned lock keeps new
    /// holders out until it is dropped. Never waits.
    pub(crate) fn try_exclude_holders(
        &self,
        diff_id: &Digest,
    ) -> Result<Option<FileLock>, CacheError> {
        let path = self.layout().layer_lease(diff_id);
        FileLock::try_exclusive(&path, self.perms()).map_err(CacheError::io("lock", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_layer_cannot_be_excluded_and_holders_share_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GlobalCache::new(dir.path()).unwrap();
        let d = Digest::sha256_of(b"layer");
        let a = cache.hold_layer(&d).unwrap();
        let b = cache.hold_layer(&d).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one lock per layer per process");
        assert!(cache.try_exclude_holders(&d).unwrap().is_none());
        drop(a);
        assert!(
            cache.try_exclude_holders(&d).unwrap().is_none(),
            "b still holds it"
        );
        drop(b);
        let excluded = cache.try_exclude_holders(&d).unwrap();
        assert!(excluded.is_some());
        let other = Digest::sha256_of(b"other");
        assert_eq!(cache.hold_layers(&[other.clone(), other]).unwrap().len(), 1);
    }
}
