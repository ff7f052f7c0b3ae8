//! Repairing what `GlobalCache::verify` found: invalid image records are removed, and each
//! image with damage is resolved again by its manifest digest (so a tag that moved since does
//! not matter) and has only its damaged layers rebuilt; its manifests and config are fetched
//! again and replace stored copies that no longer match their digests. A rebuilt layer is
//! swapped in like a forced one (`renameat2(RENAME_EXCHANGE)`), so a reader holding the old
//! tree keeps it until it lets go; one published with an EROFS image is rebuilt with one
//! (the image's other layers lacking one get theirs in the same pull). Image records are left
//! as they are (they were valid).

use std::collections::{BTreeSet, HashSet};

use crate::cache::{CacheError, ImageCheck, VerifyReport, cache_report};
use crate::cancel::CancelToken;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::Rebuild;
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::reference::Reference;

use super::context::PullContext;
use super::{PullOptions, Puller, blocking};

cache_report! {
/// What [`Registry::repair`](crate::Registry::repair) did.
#[derive(Default)]
pub struct RepairReport {
    /// Images fetched again (their first name and platform), with their damaged layers.
    pub repaired_images: Vec<String>,
    /// Layers rebuilt from the registry.
    pub rebuilt_layers: Vec<Digest>,
    /// Invalid image records removed (the next pull of their image writes a new one).
    pub removed_records: usize,
    /// Damaged layers no image names: nothing says where to fetch them from; `gc` removes
    /// them.
    pub orphaned_layers: Vec<Digest>,
    /// Images that could not be repaired, and why.
    pub failed: Vec<RepairFailure>,
}
}

cache_report! {
/// An image [`Registry::repair`](crate::Registry::repair) could not repair.
pub struct RepairFailure {
    /// The image (first name and platform).
    pub image: String,
    /// Why.
    pub error: String,
}
}

impl Puller {
    pub(crate) async fn repair(&self, report: &VerifyReport) -> Result<RepairReport> {
        self.cache
            .writable(self.cache.root(), || "repair the cache".into())?;
        let mut out = RepairReport {
            removed_records: self.remove_invalid_records(report).await?,
            ..RepairReport::default()
        };
        let named: HashSet<&Digest> = report
            .images
            .iter()
            .flat_map(|i| i.damaged_layers.iter())
            .collect();
        out.orphaned_layers = report
            .layers
            .iter()
            .filter(|l| !l.is_ok() && !named.contains(&l.diff_id))
            .map(|l| l.diff_id.clone())
            .collect();
        let mut rebuilt = BTreeSet::new();
        for image in report.images.iter().filter(|i| !i.is_ok()) {
            let Some(name) = image.names.first() else {
                continue;
            };
            let shown = format!("{name} ({})", image.platform);
            let damaged: HashSet<Digest> = image
                .damaged_layers
                .iter()
                .filter(|d| !rebuilt.contains(*d))
                .cloned()
                .collect();
            let flat = self.cache.flat_image(&image.manifest_digest);
            let flat = flat.to_str().unwrap_or_default();
            let flat_damaged = image
                .problems
                .iter()
                .any(|p| p.path.as_deref() == Some(flat));
            match self.repair_image(name, image, &damaged, flat_damaged).await {
                Ok(()) => {
                    rebuilt.extend(damaged);
                    out.repaired_images.push(shown);
                }
                Err(e) => out.failed.push(RepairFailure {
                    image: shown,
                    error: e.to_string(),
                }),
            }
        }
        out.rebuilt_layers = rebuilt.into_iter().collect();
        Ok(out)
    }

    /// Remove the records `report` found invalid that are still invalid (a pull may have
    /// replaced one since).
    async fn remove_invalid_records(&self, report: &VerifyReport) -> Result<usize> {
        let cache = self.cache.clone();
        let paths: Vec<String> = report
            .records
            .iter()
            .filter_map(|p| p.path.clone())
            .collect();
        Ok(blocking(move || cache.remove_invalid_records(&paths)).await??)
    }

    /// Resolve `name` pinned to `image`'s manifest and rebuild `damaged`; the others are used
    /// as they are. A damaged flat image is deleted and written again from the layers.
    async fn repair_image(
        &self,
        name: &str,
        image: &ImageCheck,
        damaged: &HashSet<Digest>,
        flat_damaged: bool,
    ) -> Result<()> {
        let (platform, manifest_digest) = (&image.platform, &image.manifest_digest);
        let reference = name
            .parse::<Reference>()
            .map_err(|e| Error::InvalidArgument(format!("{name}: {e}")))?
            .with_digest(manifest_digest.clone());
        let platform = platform
            .parse::<Platform>()
            .map_err(|e| Error::InvalidArgument(format!("{platform}: {e}")))?;
        let (progress, cancel) = (ProgressSink::none(), CancelToken::new());
        let cx = PullContext::new(&reference, platform, &progress, &cancel);
        let image = self.resolve_image(&cx).await?;
        let leases = self.prepare_cache(&cx, &image).await?;
        // A damaged layer published with an EROFS image gets it again (with its marker).
        let cache = self.cache.clone();
        let layers: Vec<Digest> = damaged.iter().cloned().collect();
        let image_marker =
            blocking(move || layers.iter().find_map(|d| cache.erofs_marker(d))).await?;
        let mut opts = PullOptions::default();
        if let Some(marker) = image_marker {
            opts.outputs.push(super::Output::ErofsLayers);
            opts.erofs_opaque_xattr = marker;
        }
        self.run_layers(&cx, &image, &opts, Rebuild::Only(damaged.clone()))
            .await?;
        if flat_damaged {
            let flat = self.cache.flat_image(manifest_digest);
            std::fs::remove_file(&flat)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| cx.cache(CacheError::io("remove", &flat)(e)))?;
            opts.outputs.push(super::Output::ErofsFlat);
            let result = image
                .into_result(&self.cache, cx.reference.clone(), cx.platform.clone())
                .holding(leases);
            self.flat_if_asked(&cx, result, &opts).await?;
        }
        Ok(())
    }
}
