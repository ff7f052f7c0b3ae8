//! What the cache holds, for people and tools: the images (one per manifest and platform,
//! under every name it was pulled as), the layers and who holds them, and the bytes each
//! image occupies alone or shares (`msbimage ls`, `msbimage du`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use super::usage::disk_bytes;
use super::{CacheError, GlobalCache, StoredRecord};
use crate::digest::Digest;

cache_report! {
/// An image in the cache: one platform manifest pulled for one platform, under every
/// reference that resolved to it (tags that resolve to one digest are one image).
pub struct CachedImage {
    /// The normalised references it was pulled as, sorted.
    pub names: Vec<String>,
    /// The platform it was pulled for (`linux/amd64`).
    pub platform: String,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The config blob's digest (the image ID).
    pub config_digest: Digest,
    /// Layers bottom to top (diff_ids).
    pub layers: Vec<Digest>,
    /// Whether every layer is in the cache (an image whose layer was collected or damaged
    /// is re-pulled by the next pull).
    pub complete: bool,
    /// Last use (pull, warm pull) in seconds since the Unix epoch; a warm pull updates it
    /// when it is more than five minutes old.
    pub last_used: u64,
    /// When it was last pulled from a registry, in seconds since the Unix epoch.
    pub pulled_at: u64,
    #[skip]
    /// The record files behind it (`images/<key>.json`), one per name.
    pub(crate) keys: Vec<String>,
}
}

cache_report! {
/// A layer in the cache.
pub struct CachedLayer {
    /// Its uncompressed digest (the cache key).
    pub diff_id: Digest,
    /// Bytes it occupies on disk (tree, index and metadata).
    pub bytes: u64,
    /// The names of the images that hold it; empty when nothing refers to it (`gc`
    /// removes it).
    pub images: Vec<String>,
}
}

cache_report! {
/// One image's share of the disk.
pub struct ImageUsage {
    #[flatten]
    /// The image.
    pub image: CachedImage,
    /// Bytes of the layers no other image holds (what removing it frees).
    pub exclusive_bytes: u64,
    /// Bytes of the layers it shares with other images.
    pub shared_bytes: u64,
}
}

cache_report! {
/// Where the cache's bytes are.
pub struct DiskUsage {
    /// Per image.
    pub images: Vec<ImageUsage>,
    /// Per layer.
    pub layers: Vec<CachedLayer>,
    /// Bytes of all layers.
    pub layer_bytes: u64,
    /// Bytes of layers no image refers to.
    pub unreferenced_bytes: u64,
    /// Bytes in `tmp/` (pulls in progress, debris, trees waiting for their holders).
    pub tmp_bytes: u64,
    /// Bytes of flat EROFS images (`flat/sha256/`, `outputs: ["erofs-flat"]`).
    pub flat_bytes: u64,
}
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Group records by (manifest digest, platform).
pub(crate) fn group_images(records: Vec<(String, StoredRecord)>) -> Vec<CachedImage> {
    let mut images: BTreeMap<(String, Digest), CachedImage> = BTreeMap::new();
    for (key, stored) in records {
        let rec = stored.record;
        let last_used = unix_secs(stored.last_used);
        let image = images
            .entry((rec.platform.clone(), rec.manifest_digest.clone()))
            .or_insert_with(|| CachedImage {
                names: Vec::new(),
                platform: rec.platform.clone(),
                manifest_digest: rec.manifest_digest.clone(),
                config_digest: rec.config_digest.clone(),
                layers: rec.layers.iter().map(|l| l.diff_id.clone()).collect(),
                complete: false,
                last_used: 0,
                pulled_at: 0,
                keys: Vec::new(),
            });
        image.names.push(rec.reference);
        image.keys.push(key);
        image.last_used = image.last_used.max(last_used);
        image.pulled_at = image.pulled_at.max(rec.pulled_at);
    }
    let mut out: Vec<CachedImage> = images.into_values().collect();
    for image in &mut out {
        // Names and their record keys stay pairwise aligned.
        let mut pairs: Vec<(String, String)> =
            image.names.drain(..).zip(image.keys.drain(..)).collect();
        pairs.sort();
        (image.names, image.keys) = pairs.into_iter().unzip();
    }
    out.sort_by(|a, b| a.names.cmp(&b.names).then(a.platform.cmp(&b.platform)));
    out
}

impl GlobalCache {
    /// The images in the cache (blocking; reads the records and `stat`s the layers).
    ///
    /// ```no_run
    /// let cache = microsandbox_image::GlobalCache::new("/tmp/msb-cache")?;
    /// for image in cache.images()? {
    ///     println!("{} {} {}", image.names.join(","), image.platform, image.manifest_digest);
    /// }
    /// # Ok::<(), microsandbox_image::CacheError>(())
    /// ```
    pub fn images(&self) -> Result<Vec<CachedImage>, CacheError> {
        let mut images = group_images(self.stored_records()?);
        for image in &mut images {
            image.complete = image.layers.iter().all(|d| self.has_layer(d));
        }
        Ok(images)
    }

    /// The diff_ids of the layer directories in the cache (blocking).
    pub(crate) fn layer_ids(&self) -> Result<BTreeSet<Digest>, CacheError> {
        let dir = self.layout().layers_dir();
        let mut out = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).map_err(CacheError::io("list", &dir))? {
            let entry = entry.map_err(CacheError::io("list", &dir))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            {
                out.insert(d);
            }
        }
        Ok(out)
    }

    /// The layers in the cache, with their size and the images that hold them (blocking;
    /// walks every layer tree to count its blocks).
    pub fn layers(&self) -> Result<Vec<CachedLayer>, CacheError> {
        let images = self.images()?;
        self.layers_of(&images)
    }

    fn layers_of(&self, images: &[CachedImage]) -> Result<Vec<CachedLayer>, CacheError> {
        let mut holders: BTreeMap<&Digest, BTreeSet<&str>> = BTreeMap::new();
        for image in images {
            for d in &image.layers {
                holders
                    .entry(d)
                    .or_default()
                    .extend(image.names.iter().map(String::as_str));
            }
        }
        Ok(self
            .layer_ids()?
            .into_iter()
            .map(|diff_id| CachedLayer {
                bytes: disk_bytes(&self.layer_dir(&diff_id)),
                images: holders
                    .get(&diff_id)
                    .map(|names| names.iter().map(|n| (*n).to_owned()).collect())
                    .unwrap_or_default(),
                diff_id,
            })
            .collect())
    }

    /// Bytes per image (exclusive and shared) and per layer (blocking; walks every layer
    /// tree).
    pub fn disk_usage(&self) -> Result<DiskUsage, CacheError> {
        let images = self.images()?;
        let layers = self.layers_of(&images)?;
        let (tmp, flat) = (self.layout().tmp(), self.layout().flat_dir());
        Ok(usage_of(
            images,
            layers,
            disk_bytes(&tmp),
            disk_bytes(&flat),
        ))
    }
}

/// Split each image's layers into exclusive and shared bytes.
pub(crate) fn usage_of(
    images: Vec<CachedImage>,
    layers: Vec<CachedLayer>,
    tmp_bytes: u64,
    flat_bytes: u64,
) -> DiskUsage {
    let mut holders: BTreeMap<&Digest, usize> = BTreeMap::new();
    for image in &images {
        for d in image.layers.iter().collect::<BTreeSet<_>>() {
            *holders.entry(d).or_default() += 1;
        }
    }
    let size: BTreeMap<&Digest, u64> = layers.iter().map(|l| (&l.diff_id, l.bytes)).collect();
    let usage: Vec<ImageUsage> = images
        .iter()
        .map(|image| {
            let (mut exclusive_bytes, mut shared_bytes) = (0, 0);
            for d in image.layers.iter().collect::<BTreeSet<_>>() {
                let bytes = size.get(d).copied().unwrap_or(0);
                if holders.get(d).copied().unwrap_or(0) > 1 {
                    shared_bytes += bytes;
                } else {
                    exclusive_bytes += bytes;
                }
            }
            ImageUsage {
                image: image.clone(),
                exclusive_bytes,
                shared_bytes,
            }
        })
        .collect();
    DiskUsage {
        layer_bytes: layers.iter().map(|l| l.bytes).sum(),
        unreferenced_bytes: layers
            .iter()
            .filter(|l| l.images.is_empty())
            .map(|l| l.bytes)
            .sum(),
        images: usage,
        layers,
        tmp_bytes,
        flat_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::record::{ImageRecord, RECORD_VERSION, record_key};

    #[test]
    fn names_of_one_manifest_group_and_stay_paired_with_their_records() {
        let stored = |name: &str| {
            let record = ImageRecord {
                version: RECORD_VERSION,
                reference: name.into(),
                platform: "linux/amd64".into(),
                manifest_digest: Digest::sha256_of(b"m"),
                index_digest: None,
                config_digest: Digest::sha256_of(b"c"),
                layers: Vec::new(),
                pulled_at: 0,
            };
            let key = record_key(name, "linux/amd64");
            (
                key,
                StoredRecord {
                    record,
                    last_used: UNIX_EPOCH,
                },
            )
        };
        // Records come in key order, which is not name order.
        let mut records: Vec<_> = ["r/x:1", "r/x:2", "r/x:3", "r/x:4"]
            .into_iter()
            .map(stored)
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let images = group_images(records);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].names, ["r/x:1", "r/x:2", "r/x:3", "r/x:4"]);
        for (name, key) in images[0].names.iter().zip(&images[0].keys) {
            assert_eq!(*key, record_key(name, "linux/amd64"));
        }
    }
}
