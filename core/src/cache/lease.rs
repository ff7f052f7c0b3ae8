//! Layer leases: how a user of a layer (a [`PullResult`](crate::PullResult), a
//! [`LayerStack`](crate::LayerStack) made from one, a runtime that mounted the layer) keeps it
//! from being deleted by `gc`, `rm` or `pull --force` in any process.
//!
//! A lease is a shared `flock` on `locks/lease-<hex>.lock`. Whoever deletes a layer tree takes
//! the exclusive lock first, without waiting; when it cannot, the tree stays (`gc` skips the
//! layer). Within one process every holder of a layer shares one open file (one descriptor
//! per layer, however many results hold it).
//!
//! A tree replaced by a forced re-pull or a repair (`tmp/trash-<hex>.g<gen>.*`) needs less:
//! only the holders that took their lease before it was replaced can be using it (whoever
//! takes a lease later finds the new tree at the layer's path). So a lease also holds a
//! shared lock on `locks/lease-<hex>.<gen>.lock`, `gen` being the layer's generation when the
//! lease was taken (`locks/lease-<hex>.gen`, how many times its tree was replaced; bumped
//! after each replacement, under the layer's build lock). The tree replaced at generation
//! `g` is deleted once nobody holds the generation lock of `g` or of an earlier generation,
//! even while newer holders keep the layer busy; before, a layer that was never free for a
//! moment (four processes pulling one image in turn) kept every replaced tree (the soak test,
//! `tests/soak/`, filled 6 GB that way). Generation lock files are never unlinked either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::layout::{Layout, TmpEntry, write_atomic};
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
    /// The shared lock on the generation current when the lease was taken (for a read-only
    /// cache: the newest generation whose lock file exists, which is as careful or more);
    /// `None` only while dropping.
    generation_lock: Option<FileLock>,
    /// Where the lock files are, to see on drop whether the trees below can go.
    layout: Layout,
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
        drop(self.generation_lock.take());
        drop(self.lock.take());
        for trash in pending {
            let generation =
                trash
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| match TmpEntry::parse(n) {
                        TmpEntry::Trash(_, generation) => generation,
                        _ => None,
                    });
            let unheld = trash_unheld(&self.layout, self.perms, &self.diff_id, generation);
            if let Ok(Some(_free)) = unheld {
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
        let layout = self.layout();
        let path = layout.layer_lease(diff_id);
        if self.is_read_only() {
            let lock = self.reader_lock(&path, diff_id)?;
            let generation_lock = self.reader_generation_lock(diff_id)?;
            return Ok(self.new_lease(diff_id, lock, generation_lock));
        }
        let lock = FileLock::shared(&path, self.perms()).map_err(CacheError::io("lease", &path))?;
        // The generation's lock, taken before the caller looks at the tree. If the tree was
        // replaced meanwhile (the generation moved on), take the new one's instead: a lease
        // counts as taken at the generation it was still current at after locking.
        let generation_lock = loop {
            let generation = read_generation(layout, diff_id);
            let p = layout.lease_generation_lock(diff_id, generation);
            let held = FileLock::shared(&p, self.perms()).map_err(CacheError::io("lease", &p))?;
            if read_generation(layout, diff_id) == generation {
                break held;
            }
        };
        Ok(self.new_lease(diff_id, lock, generation_lock))
    }

    fn new_lease(
        &self,
        diff_id: &Digest,
        lock: FileLock,
        generation_lock: FileLock,
    ) -> Arc<LayerLease> {
        self.inner.leases.insert(&Arc::new(LayerLease {
            diff_id: diff_id.clone(),
            lock: Some(lock),
            generation_lock: Some(generation_lock),
            layout: self.layout().clone(),
            perms: self.perms(),
            pending_trash: Mutex::default(),
        }))
    }

    /// A reader's lock on an existing lock file (it cannot create one).
    fn reader_lock(
        &self,
        path: &std::path::Path,
        diff_id: &Digest,
    ) -> Result<FileLock, CacheError> {
        FileLock::shared_existing(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CacheError::ReadOnly {
                path: path.to_owned(),
                need: format!("layer {diff_id} has no lease file, and creating it is a write"),
                fix: "ask the cache's owner to pull the image again (that creates it)".into(),
            },
            _ => self.denied_or("lease", path)(e),
        })
    }

    /// A reader's generation lock: the newest existing one not past the current generation
    /// (holding an older generation keeps every tree replaced since then too).
    fn reader_generation_lock(&self, diff_id: &Digest) -> Result<FileLock, CacheError> {
        let layout = self.layout();
        let current = read_generation(layout, diff_id);
        let newest = layout
            .lease_generations(diff_id)
            .unwrap_or_default()
            .into_iter()
            .filter(|g| *g <= current)
            .max()
            .unwrap_or(current);
        self.reader_lock(&layout.lease_generation_lock(diff_id, newest), diff_id)
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

/// The layer's generation: how many times its tree was replaced (0 when never, or when the
/// file cannot be read: an older generation only makes holders more careful).
pub(crate) fn read_generation(layout: &Layout, diff_id: &Digest) -> u64 {
    std::fs::read_to_string(layout.lease_generation(diff_id))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Record that the layer's tree was replaced at `replaced` (best effort, by whoever holds the
/// layer's build lock, after the old tree went to the trash): later leases take generation
/// `replaced + 1`. If this fails they take `replaced` again, which only keeps the replaced
/// tree longer.
pub(crate) fn bump_generation(layout: &Layout, perms: Perms, diff_id: &Digest, replaced: u64) {
    let next = format!("{}\n", replaced.saturating_add(1));
    let _ = write_atomic(
        &layout.tmp(),
        &layout.lease_generation(diff_id),
        next.as_bytes(),
        perms,
    );
}

/// Whether a tree of `diff_id` in the trash can be deleted: nobody holds the layer at all,
/// or (for a tree replaced at `generation`) nobody holds a lease taken at that generation
/// or an earlier one. `Some` carries the exclusive locks that keep it so; hold them while
/// deleting. Never waits.
pub(crate) fn trash_unheld(
    layout: &Layout,
    perms: Perms,
    diff_id: &Digest,
    generation: Option<u64>,
) -> std::io::Result<Option<Vec<FileLock>>> {
    if let Some(free) = FileLock::try_exclusive(&layout.layer_lease(diff_id), perms)? {
        return Ok(Some(vec![free]));
    }
    let Some(generation) = generation else {
        return Ok(None);
    };
    let mut guards = Vec::new();
    // A lease taken before the tree was replaced locked an existing file (it is created
    // before the lease is counted), so listing now sees every one that matters; one taken
    // later sees the new tree.
    for older in layout.lease_generations(diff_id)? {
        if older > generation {
            continue;
        }
        match FileLock::try_exclusive(&layout.lease_generation_lock(diff_id, older), perms)? {
            Some(free) => guards.push(free),
            None => return Ok(None),
        }
    }
    Ok(Some(guards))
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

    /// Found by the soak test: four processes pulling one image in turn (some with
    /// `--force`) never left the layer free for a moment, so every replaced tree stayed in
    /// `tmp/` until the disk was full. A replaced tree now goes once the holders from before
    /// the replacement are gone, whoever holds the layer since.
    #[test]
    fn a_replaced_tree_goes_once_the_holders_from_before_it_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        // Two caches on one root: two processes, as far as flock is concerned.
        let (a, b) = (
            GlobalCache::new(dir.path()).unwrap(),
            GlobalCache::new(dir.path()).unwrap(),
        );
        let d = Digest::sha256_of(b"layer");
        let layout = a.layout().clone();
        let tree = |generation: u64| {
            let p = layout.replaced_trash(&d, generation);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("f"), b"x").unwrap();
            p
        };
        let p = Perms::PRIVATE;
        let unheld = |generation| trash_unheld(&layout, p, &d, generation).unwrap().is_some();

        let old = a.hold_layer(&d).unwrap(); // generation 0
        let first = tree(0);
        bump_generation(&layout, p, &d, 0); // the tree was replaced
        assert_eq!(read_generation(&layout, &d), 1);
        let new = b.hold_layer(&d).unwrap(); // generation 1
        assert!(!unheld(Some(0)), "`old` may be using the replaced tree");
        a.sweep_debris(false).unwrap();
        assert!(first.exists());

        drop(old);
        assert!(
            unheld(Some(0)),
            "only `new` is left, and it never saw that tree"
        );
        assert!(
            !unheld(None),
            "the layer itself is held: gc may not delete it"
        );
        let second = tree(1);
        bump_generation(&layout, p, &d, 1);
        assert!(
            !unheld(Some(1)),
            "`new` may be using the tree replaced at 1"
        );
        a.sweep_debris(false).unwrap();
        assert!(!first.exists(), "swept");
        assert!(second.exists(), "kept for `new`");

        drop(new);
        a.sweep_debris(false).unwrap();
        assert!(!second.exists());
        // Taken after both replacements: generation 2, whatever older lock files exist.
        let _late = a.hold_layer(&d).unwrap();
        assert!(unheld(Some(1)));
        assert_eq!(layout.lease_generations(&d).unwrap().len(), 3);
    }
}
