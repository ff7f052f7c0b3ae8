//! Removing images and collecting what nothing refers to: `msbimage rm` and `msbimage gc`.
//!
//! Safe under load (the protocol, also in `LAYOUT.md`): one `gc` or `rm` runs at a time
//! (`locks/gc.lock`). Records go first (an image whose record is gone is simply not cached any
//! more). A layer tree is deleted only while the collector holds, without having waited for
//! them, both the layer's build lock (no pull is building or indexing it) and the exclusive
//! side of its lease lock (no pull, result or stack holds it), and only if no record names
//! it when read again *after* those locks were taken. A pull takes its leases before it looks
//! at a layer and keeps them past writing its record, so either the collector re-reads a record
//! that names the layer (and keeps it), or the pull takes its lease after the deletion and
//! finds the layer absent (and pulls it again). Nothing a pull is about to use or has just
//! published can disappear under it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::inventory::{CachedImage, group_images};
use super::layout::Layout;
use super::usage::disk_bytes;
use super::{CacheError, FileLock, GlobalCache};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;

/// Unreferenced manifests and configs younger than this are kept: a pull stores them before it
/// writes the record that refers to them.
const MANIFEST_GRACE: Duration = Duration::from_secs(3600);

/// Candidates locked at once (each holds two open files).
const BATCH: usize = 256;

/// What `gc` may remove besides what nothing refers to.
///
/// ```
/// use std::time::Duration;
/// use microsandbox_image::GcPolicy;
/// // Keep the cache under 10 GB, never evicting an image used in the last day.
/// let policy = GcPolicy {
///     max_size: Some(10_000_000_000),
///     keep_recent: Some(Duration::from_secs(86_400)),
///     ..GcPolicy::default()
/// };
/// # let _ = policy;
/// ```
///
/// Its serde form, which the C, Go, Python and Node front doors hand over, uses camelCase keys
/// and seconds for `keepRecent`, and refuses unknown keys by name:
///
/// ```
/// let policy = microsandbox_image::GcPolicy::from_json(r#"{"maxSize": 1000, "keepRecent": 60}"#)?;
/// assert_eq!(policy.keep_recent, Some(std::time::Duration::from_secs(60)));
/// assert!(microsandbox_image::GcPolicy::from_json(r#"{"max_size": 1}"#).is_err());
/// # Ok::<(), microsandbox_image::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct GcPolicy {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Evict least-recently-used images until the layers take at most this many bytes.
    pub max_size: Option<u64>,
    /// Images used within this long are never evicted. Without `max_size`, every image
    /// unused for longer is evicted (prune by age). In seconds in the serde form.
    #[serde(with = "crate::settings::opt_seconds")]
    pub keep_recent: Option<Duration>,
}

impl GcPolicy {
    /// A policy from its JSON form (`{"dryRun": true, "maxSize": 1e9, "keepRecent": 86400}`;
    /// every key optional). A malformed document, an unknown key or a bad value is an
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming it.
    pub fn from_json(json: &str) -> Result<GcPolicy, crate::Error> {
        serde_json::from_str(json)
            .map_err(|e| crate::Error::InvalidArgument(format!("gc policy: {e}")))
    }
}

cache_report! {
/// An image that `gc` evicted or `rm` removed.
pub struct RemovedImage {
    /// The names removed.
    pub names: Vec<String>,
    /// Its platform.
    pub platform: String,
    /// Its platform manifest's digest.
    pub manifest_digest: Digest,
}
}

cache_report! {
/// What a `gc` or `rm` did (or, with `dry_run`, would do).
#[derive(Default)]
pub struct GcReport {
    /// Nothing was removed; this is what would have been.
    pub dry_run: bool,
    /// Images whose records were removed.
    pub removed_images: Vec<RemovedImage>,
    /// Layer trees deleted.
    pub removed_layers: Vec<Digest>,
    /// Layers no image refers to any more that someone still holds (a running sandbox, a
    /// pull): left for a later `gc`.
    pub in_use_layers: Vec<Digest>,
    /// Manifests and configs deleted.
    pub removed_manifests: usize,
    /// Flat EROFS images (`flat/sha256/`) of manifests no image refers to any more, deleted.
    pub removed_flat_images: usize,
    /// Staging directories, replaced trees and temp files of dead processes deleted, and
    /// stale partial downloads (`blobs/sha256/<hex>.partial`).
    pub removed_debris: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
}
}

impl GlobalCache {
    /// Collect garbage (blocking): debris in `tmp/`, layers, manifests and configs no image
    /// refers to, and the images `policy` evicts. Safe while other processes pull (see the
    /// module comment); layers in use are left for later and listed in the report.
    ///
    /// ```no_run
    /// use microsandbox_image::{GcPolicy, GlobalCache};
    /// let cache = GlobalCache::new("/tmp/msb-cache")?;
    /// let report = cache.gc(&GcPolicy { max_size: Some(5 << 30), ..GcPolicy::default() })?;
    /// println!("freed {} bytes", report.freed_bytes);
    /// # Ok::<(), microsandbox_image::CacheError>(())
    /// ```
    pub fn gc(&self, policy: &GcPolicy) -> Result<GcReport, CacheError> {
        self.collect(policy, None)
    }

    /// [`gc`](Self::gc), never evicting the image whose record is stored under `keep` (the
    /// one a pull has just written; `cacheMaxSize`). Its layers are not protected here: the
    /// pull holds their leases.
    pub(crate) fn gc_keeping(&self, policy: &GcPolicy, keep: &str) -> Result<GcReport, CacheError> {
        self.collect(policy, Some(keep))
    }

    fn collect(&self, policy: &GcPolicy, keep: Option<&str>) -> Result<GcReport, CacheError> {
        let _one_at_a_time = self.gc_lock()?;
        let mut report = GcReport {
            dry_run: policy.dry_run,
            ..GcReport::default()
        };
        let swept = self.sweep_debris(policy.dry_run)?;
        let partials = self.sweep_partials(policy.dry_run)?;
        report.removed_debris = swept.entries + partials.entries;
        report.freed_bytes += swept.bytes + partials.bytes;

        let images = group_images(self.stored_records()?);
        let evicted = self.choose_evictions(&images, policy, keep)?;
        let (mut kept_layers, mut gone) = (BTreeSet::new(), BTreeSet::new());
        for (i, image) in images.iter().enumerate() {
            if evicted.contains(&i) {
                gone.extend(self.remove_image_records(image, policy.dry_run, &mut report)?);
            } else {
                kept_layers.extend(image.layers.iter().cloned());
            }
        }
        let candidates: Vec<Digest> = self
            .layer_ids()?
            .into_iter()
            .filter(|d| !kept_layers.contains(d))
            .collect();
        // A real run re-reads the records it did not remove (a record under a removed key is a
        // pull's new one, and protects its layers); a dry run pretends the removal happened.
        let ignore = if policy.dry_run {
            gone
        } else {
            BTreeSet::new()
        };
        self.collect_layers(&candidates, &ignore, policy.dry_run, &mut report)?;
        self.collect_manifests(&ignore, policy.dry_run, &mut report)?;
        Ok(report)
    }

    /// Remove the image `reference` (for `platform`, or for every platform it was pulled
    /// for) and the layers only it held (blocking). Other names of the same image keep it.
    /// An image that is not in the cache is a [`CacheError::NoSuchImage`].
    ///
    /// ```no_run
    /// let cache = microsandbox_image::GlobalCache::new("/tmp/msb-cache")?;
    /// let report = cache.remove_image(&"alpine:3.20".parse()?, None)?;
    /// println!("freed {} bytes", report.freed_bytes);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_image(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<GcReport, CacheError> {
        let _one_at_a_time = self.gc_lock()?;
        let (name, platform) = (reference.to_string(), platform.map(Platform::to_string));
        let mut report = GcReport::default();
        let mut dropped = BTreeSet::new();
        for mut image in group_images(self.stored_records()?) {
            let picked: Vec<usize> = (0..image.names.len())
                .filter(|&i| {
                    image.names[i] == name && platform.as_ref().is_none_or(|p| *p == image.platform)
                })
                .collect();
            if picked.is_empty() {
                continue;
            }
            image.names = picked.iter().map(|&i| image.names[i].clone()).collect();
            image.keys = picked.iter().map(|&i| image.keys[i].clone()).collect();
            dropped.extend(image.layers.iter().cloned());
            self.remove_image_records(&image, false, &mut report)?;
        }
        if report.removed_images.is_empty() {
            return Err(CacheError::NoSuchImage {
                reference: name,
                platform,
            });
        }
        let candidates: Vec<Digest> = dropped.into_iter().collect();
        self.collect_layers(&candidates, &BTreeSet::new(), false, &mut report)?;
        Ok(report)
    }

    fn gc_lock(&self) -> Result<FileLock, CacheError> {
        let p = self.layout().gc_lock();
        self.writable(&p, || "removing images and layers (gc, rm)".into())?;
        FileLock::exclusive(&p, self.perms()).map_err(CacheError::io("lock", &p))
    }

    /// The indexes (into `images`) of the images `policy` evicts: unused for longer than
    /// `keep_recent`, least recently used first, until the layers fit in `max_size`; never
    /// the image with the record `keep`.
    fn choose_evictions(
        &self,
        images: &[CachedImage],
        policy: &GcPolicy,
        keep: Option<&str>,
    ) -> Result<BTreeSet<usize>, CacheError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut eligible: Vec<usize> = (0..images.len())
            .filter(|&i| {
                policy
                    .keep_recent
                    .is_none_or(|recent| now.saturating_sub(images[i].last_used) > recent.as_secs())
                    && keep.is_none_or(|k| !images[i].keys.iter().any(|key| key == k))
            })
            .collect();
        let Some(cap) = policy.max_size else {
            let prune_by_age = policy.keep_recent.is_some();
            return Ok(if prune_by_age {
                eligible.into_iter().collect()
            } else {
                BTreeSet::new()
            });
        };
        eligible.sort_by_key(|&i| images[i].last_used);
        let mut holders: HashMap<&Digest, usize> = HashMap::new();
        for image in images {
            for d in unique(&image.layers) {
                *holders.entry(d).or_default() += 1;
            }
        }
        let sizes: BTreeMap<&Digest, u64> = holders
            .keys()
            .map(|d| (*d, disk_bytes(&self.layer_dir(d))))
            .collect();
        let mut total: u64 = sizes.values().sum();
        let mut evicted = BTreeSet::new();
        for i in eligible {
            if total <= cap {
                break;
            }
            evicted.insert(i);
            for d in unique(&images[i].layers) {
                let n = holders.entry(d).or_default();
                *n = n.saturating_sub(1);
                if *n == 0 {
                    total = total.saturating_sub(sizes.get(d).copied().unwrap_or(0));
                }
            }
        }
        Ok(evicted)
    }

    /// Remove the records of `image` (all its keys), unless one was used since it was read;
    /// returns the keys removed (with `dry_run`, that would be).
    fn remove_image_records(
        &self,
        image: &CachedImage,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<Vec<String>, CacheError> {
        let (mut names, mut keys) = (Vec::new(), Vec::new());
        for (key, name) in image.keys.iter().zip(&image.names) {
            if !dry_run {
                let used_since = self.read_record(key).is_some_and(|r| {
                    r.last_used
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .is_ok_and(|t| t.as_secs() > image.last_used)
                });
                if used_since {
                    continue;
                }
                self.remove_record(key)?;
            }
            names.push(name.clone());
            keys.push(key.clone());
        }
        if !names.is_empty() {
            report.removed_images.push(RemovedImage {
                names,
                platform: image.platform.clone(),
                manifest_digest: image.manifest_digest.clone(),
            });
        }
        Ok(keys)
    }

    /// The records that count: every valid one except those under `gone` (that a dry run
    /// would have removed).
    fn live_records(
        &self,
        gone: &BTreeSet<String>,
    ) -> Result<Vec<super::record::ImageRecord>, CacheError> {
        Ok(self
            .stored_records()?
            .into_iter()
            .filter(|(key, _)| !gone.contains(key))
            .map(|(_, s)| s.record)
            .collect())
    }

    /// Delete the trees of `candidates` that no record names and no one holds.
    fn collect_layers(
        &self,
        candidates: &[Digest],
        gone: &BTreeSet<String>,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), CacheError> {
        for batch in candidates.chunks(BATCH) {
            let mut locked = Vec::new();
            for d in batch {
                if std::fs::symlink_metadata(self.layer_dir(d)).is_err() {
                    continue;
                }
                match self.exclude_everyone(d)? {
                    Some(locks) => locked.push((d, locks)),
                    None => report.in_use_layers.push(d.clone()),
                }
            }
            // Read the records again now that no pull can start using these layers.
            let referenced: BTreeSet<Digest> = self
                .live_records(gone)?
                .into_iter()
                .flat_map(|r| r.layers.into_iter().map(|l| l.diff_id))
                .collect();
            for (d, _locks) in locked {
                if referenced.contains(d) {
                    continue;
                }
                report.freed_bytes += disk_bytes(&self.layer_dir(d));
                if !dry_run {
                    self.delete_layer_tree(d)?;
                }
                report.removed_layers.push(d.clone());
            }
        }
        Ok(())
    }

    /// Both locks that keep everyone off a layer, if no one is on it now.
    fn exclude_everyone(&self, d: &Digest) -> Result<Option<(FileLock, FileLock)>, CacheError> {
        let p = self.layout().layer_lock(d);
        let Some(build) =
            FileLock::try_exclusive(&p, self.perms()).map_err(CacheError::io("lock", &p))?
        else {
            return Ok(None);
        };
        Ok(self.try_exclude_holders(d)?.map(|lease| (build, lease)))
    }

    /// Move a layer's directory out of `layers/` (one rename: readers see it or nothing),
    /// then delete it. The caller holds both of the layer's locks.
    fn delete_layer_tree(&self, d: &Digest) -> Result<(), CacheError> {
        let (dir, trash) = (self.layer_dir(d), self.layout().trash(d));
        std::fs::rename(&dir, &trash).map_err(CacheError::io("move aside", &dir))?;
        std::fs::remove_dir_all(&trash).map_err(CacheError::io("remove", &trash))
    }

    /// Delete manifests and configs no record names, and the flat images of manifests no
    /// record names (each older than [`MANIFEST_GRACE`]).
    fn collect_manifests(
        &self,
        gone: &BTreeSet<String>,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(), CacheError> {
        let records = self.live_records(gone)?;
        let manifests: BTreeSet<String> = records
            .iter()
            .map(|r| r.manifest_digest.hex().to_owned())
            .collect();
        let referenced: BTreeSet<String> = records
            .into_iter()
            .flat_map(|r| [r.index_digest, Some(r.config_digest)])
            .flatten()
            .map(|d| d.hex().to_owned())
            .chain(manifests.iter().cloned())
            .collect();
        let dir = self.layout().manifests_dir();
        let (n, bytes) = remove_unnamed(&dir, |name| referenced.contains(name), dry_run)?;
        report.removed_manifests += n;
        report.freed_bytes += bytes;
        let flat = self.layout().flat_dir();
        if flat.exists() {
            let named = |name: &str| {
                Layout::flat_manifest_of(name).is_some_and(|d| manifests.contains(d.hex()))
            };
            let (n, bytes) = remove_unnamed(&flat, named, dry_run)?;
            report.removed_flat_images += n;
            report.freed_bytes += bytes;
        }
        Ok(())
    }
}

/// Delete the files of `dir` that are not `named` and are older than [`MANIFEST_GRACE`]:
/// how many, and their bytes.
fn remove_unnamed(
    dir: &Path,
    named: impl Fn(&str) -> bool,
    dry_run: bool,
) -> Result<(usize, u64), CacheError> {
    let (mut n, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(CacheError::io("list", dir))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        let young = meta
            .modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age < MANIFEST_GRACE);
        if named(&name) || young {
            continue;
        }
        if !dry_run && std::fs::remove_file(entry.path()).is_err() {
            continue;
        }
        n += 1;
        bytes += meta.len();
    }
    Ok((n, bytes))
}

/// Each digest once, in order.
fn unique(layers: &[Digest]) -> impl Iterator<Item = &Digest> {
    let mut seen = BTreeSet::new();
    layers.iter().filter(move |d| seen.insert(*d))
}
