//! Sweeping `tmp/`: staging directories of pulls that died, layer trees that were replaced
//! or removed and are no longer held, and temp files of processes that are gone. A network
//! pull sweeps when it starts and `gc` sweeps every time, so debris never outlives the next
//! pull. Nothing in use is touched: a staging directory is removed only when its layer's
//! build lock is free (and, if it holds a whole published tree, as a trashed one), a trashed
//! tree only when no one holds a lease on its layer, and any
//! other temp file only when the process named in it is gone and it is over a minute old
//! (atomic writes last milliseconds; the age guards against pids of another pid namespace).

use std::time::{Duration, SystemTime};

use super::layout::TmpEntry;
use super::usage::disk_bytes;
use super::{CacheError, FileLock, GlobalCache};

/// Temp files younger than this are never swept by pid.
const MIN_AGE_BY_PID: Duration = Duration::from_secs(60);

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Entries of `tmp/` removed.
    pub entries: usize,
    /// Bytes they occupied.
    pub bytes: u64,
}

impl GlobalCache {
    /// Remove the debris in `tmp/` that no live process owns (blocking). With `dry_run`,
    /// only count it.
    pub(crate) fn sweep_debris(&self, dry_run: bool) -> Result<Swept, CacheError> {
        let tmp = self.layout().tmp();
        let mut swept = Swept::default();
        for entry in std::fs::read_dir(&tmp).map_err(CacheError::io("list", &tmp))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Hold what proves the entry is abandoned while removing it.
            let Some(_guard) = self.abandoned(name, &entry)? else {
                continue;
            };
            let path = entry.path();
            let bytes = disk_bytes(&path);
            if !dry_run {
                let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if removed.is_err() {
                    continue;
                }
            }
            swept.entries += 1;
            swept.bytes += bytes;
        }
        Ok(swept)
    }

    /// `Some` (with the locks that keep it so, if any) when the `tmp/` entry `name` belongs to
    /// no one.
    fn abandoned(
        &self,
        name: &str,
        entry: &std::fs::DirEntry,
    ) -> Result<Option<Vec<FileLock>>, CacheError> {
        Ok(match TmpEntry::parse(name) {
            TmpEntry::Staging(diff_id) => {
                let p = self.layout().layer_lock(&diff_id);
                let Some(lock) = FileLock::try_exclusive(&p, self.perms())
                    .map_err(CacheError::io("lock", &p))?
                else {
                    return Ok(None);
                };
                // With its `meta.json` it may be a published tree a crash caught between the
                // exchange with its replacement and its move to the trash (the generation
                // was not counted up yet): someone may still be using it, so it goes only as
                // a tree replaced at the current generation would.
                if !super::Layout::meta_in(&entry.path()).exists() {
                    return Ok(Some(vec![lock]));
                }
                let generation = super::lease::read_generation(self.layout(), &diff_id);
                let lease = self.layout().layer_lease(&diff_id);
                super::lease::trash_unheld(self.layout(), self.perms(), &diff_id, Some(generation))
                    .map_err(CacheError::io("lock", &lease))?
                    .map(|mut locks| {
                        locks.push(lock);
                        locks
                    })
            }
            TmpEntry::Trash(diff_id, generation) => {
                let lease = self.layout().layer_lease(&diff_id);
                super::lease::trash_unheld(self.layout(), self.perms(), &diff_id, generation)
                    .map_err(CacheError::io("lock", &lease))?
            }
            TmpEntry::Other { pid: Some(pid) } => {
                let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                    SystemTime::now().duration_since(t).unwrap_or_default() > MIN_AGE_BY_PID
                });
                (old && pid != std::process::id() && process_gone(pid)).then_some(Vec::new())
            }
            TmpEntry::Other { pid: None } => None,
        })
    }
}

/// Whether no process `pid` exists (as far as this pid namespace can tell).
fn process_gone(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn age(path: &std::path::Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        std::fs::File::open(path).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn sweeps_only_what_no_one_owns() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GlobalCache::new(dir.path()).unwrap();
        let tmp = cache.layout().tmp();
        let (busy, free) = (Digest::sha256_of(b"busy"), Digest::sha256_of(b"free"));
        let mk = |name: String| {
            let p = tmp.join(name);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("f"), b"x").unwrap();
            p
        };
        let building = mk(format!("layer-{}.1.0.0", busy.hex()));
        let crashed = mk(format!("layer-{}.1.0.0", free.hex()));
        let held_trash = mk(format!("trash-{}.1.0.0", busy.hex()));
        let free_trash = mk(format!("trash-{}.1.0.0", free.hex()));
        // A pid that cannot exist (above pid_max) and one that does (ours).
        let dead = tmp.join("x.json.4294967.0.0");
        let dead_young = tmp.join("y.json.4294967.0.0");
        let mine = tmp.join(format!("z.json.{}.0.0", std::process::id()));
        for f in [&dead, &dead_young, &mine] {
            std::fs::write(f, b"{}").unwrap();
        }
        age(&dead, 3600);
        age(&mine, 3600);
        let _building = cache.lock_layer(&busy).unwrap();
        let _lease = cache.hold_layer(&busy).unwrap();

        let counted = cache.sweep_debris(true).unwrap();
        assert_eq!(counted.entries, 3);
        assert!(crashed.exists(), "a dry run removes nothing");
        let swept = cache.sweep_debris(false).unwrap();
        assert_eq!(swept, counted);
        for (p, kept) in [
            (&building, true),
            (&held_trash, true),
            (&mine, true),
            (&dead_young, true),
            (&crashed, false),
            (&free_trash, false),
            (&dead, false),
        ] {
            assert_eq!(p.exists(), kept, "{}", p.display());
        }
    }

    /// Found by reading the soak's notes: a crash between the exchange that swaps a new tree
    /// in and the old tree's move to the trash leaves the old tree under a staging name.
    /// It may be in use, so it is swept only once the holders from before are gone.
    #[test]
    fn a_swapped_out_tree_under_a_staging_name_waits_for_its_holders() {
        let dir = tempfile::tempdir().unwrap();
        let cache = GlobalCache::new(dir.path()).unwrap();
        let d = Digest::sha256_of(b"swapped");
        let tmp = cache.layout().tmp();
        let prefix = super::super::Layout::staging_prefix(&d);
        let (old_tree, unfinished) = (
            tmp.join(format!("{prefix}.1.1.1")),
            tmp.join(format!("{prefix}.2.2.2")),
        );
        for p in [&old_tree, &unfinished] {
            std::fs::create_dir_all(p.join("fs")).unwrap();
        }
        std::fs::write(super::super::Layout::meta_in(&old_tree), b"{}").unwrap();
        let held = cache.hold_layer(&d).unwrap();
        cache.sweep_debris(false).unwrap();
        assert!(
            !unfinished.exists(),
            "an unfinished staging directory goes as before"
        );
        assert!(old_tree.exists(), "a published tree someone may use stays");
        drop(held);
        cache.sweep_debris(false).unwrap();
        assert!(!old_tree.exists(), "and goes once no one holds the layer");
    }
}
