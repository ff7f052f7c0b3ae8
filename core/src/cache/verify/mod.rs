//! `verify`: checks what the cache holds against what was published, and says exactly what
//! is wrong: each image record (strictly parsed), each manifest, index and config (their
//! bytes against their digests), and each layer (`layer.rs`): its directory and
//! `meta.json`, its index (whole-file digest from publish time, then every block and
//! directory validated), its tree's metadata (an index rebuilt from the tree must equal the
//! published one: every path, kind, size, time, owner, mode, xattr and marker), and every
//! file's content against the digests taken when it was extracted (`contents`); and, when
//! the layer was published with one, its EROFS image (`image.rs`: its length, the reader's
//! checks, its tree against the index and its files' data against the same digests).
//!
//! Nothing here writes; `Registry::repair` (`pull/repair.rs`) re-pulls what a report found
//! damaged. Verification reads every byte of every layer it checks, so it is never part of a
//! pull: a warm pull checks only that the layer's directory, tree, metadata and index exist.

mod flat;
mod image;
mod layer;

use std::collections::{BTreeMap, BTreeSet};

pub(crate) use image::image_problems;

use super::inventory::group_images;
use super::{CacheError, GlobalCache, record};
use crate::digest::Digest;
use crate::reference::Reference;

/// Most problems listed per layer; the rest are counted in
/// [`LayerCheck::more_problems`].
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// What kind of damage a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ProblemKind {
    /// An image record that cannot be read, parsed or is stored under the wrong key.
    RecordInvalid,
    /// A manifest, index or config an image record names is not in the cache.
    ManifestMissing,
    /// A stored manifest, index or config whose bytes do not match its digest.
    ManifestCorrupt,
    /// A layer an image names is not in the cache (or is incomplete: no tree, no
    /// `meta.json`).
    LayerMissing,
    /// A layer directory that is not what a publish leaves: a symlink, an unreadable or
    /// invalid `meta.json`, a `meta.json` of another layer.
    LayerInvalid,
    /// A layer published with an index has none.
    IndexMissing,
    /// The index differs from the one published, or fails validation.
    IndexCorrupt,
    /// A layer published with a `contents` record has none.
    ContentsMissing,
    /// The `contents` record differs from the one published, or cannot be parsed.
    ContentsCorrupt,
    /// A layer published with an EROFS image (`layer.erofs`) has none.
    ErofsMissing,
    /// The layer's EROFS image is damaged: not its published length, refused by the reader,
    /// or its tree or a file's data differs from the layer's index and content digests (the
    /// detail names the path in the image).
    ErofsCorrupt,
    /// A path of the published tree is gone.
    Missing,
    /// A path that was not in the published tree.
    Unexpected,
    /// A path that changed kind (a file became a directory, a symlink appeared, …).
    KindChanged,
    /// A file whose size changed.
    SizeChanged,
    /// A file whose content changed (same size).
    ContentChanged,
    /// An entry whose modification time changed.
    TimeChanged,
    /// An entry whose image metadata changed: mode, owner, device number, xattrs, symlink
    /// target, whiteout/opaque markers (what the index says about it).
    MetadataChanged,
    /// A path that could not be read or listed.
    Unreadable,
}

impl ProblemKind {
    /// Every kind, in declaration order.
    pub const ALL: &[ProblemKind] = &[
        ProblemKind::RecordInvalid,
        ProblemKind::ManifestMissing,
        ProblemKind::ManifestCorrupt,
        ProblemKind::LayerMissing,
        ProblemKind::LayerInvalid,
        ProblemKind::IndexMissing,
        ProblemKind::IndexCorrupt,
        ProblemKind::ContentsMissing,
        ProblemKind::ContentsCorrupt,
        ProblemKind::ErofsMissing,
        ProblemKind::ErofsCorrupt,
        ProblemKind::Missing,
        ProblemKind::Unexpected,
        ProblemKind::KindChanged,
        ProblemKind::SizeChanged,
        ProblemKind::ContentChanged,
        ProblemKind::TimeChanged,
        ProblemKind::MetadataChanged,
        ProblemKind::Unreadable,
    ];

    /// Its JSON name (`"contentChanged"`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// In report schemas a kind is a string (its JSON name); the surface lists the names under
/// `problemKinds`.
impl crate::progress::SchemaType for ProblemKind {
    const NAME: &'static str = "string";
}

cache_report! {
/// One thing found wrong.
    #[derive(serde::Deserialize)]
    pub struct Problem {
        /// What kind of damage (a `ProblemKind`: `contentChanged`, `missing`, …).
        pub kind: ProblemKind,
        /// Where: a path in the layer's tree (relative to `fs/`), or a file of the cache
        /// (null when the problem has no one place).
        pub path: Option<String>,
        /// What was expected and found.
        pub detail: String,
    }
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, path: Option<String>, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            path,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match &self.path {
            Some(p) => write!(f, "{kind}: {p}: {}", self.detail),
            None => write!(f, "{kind}: {}", self.detail),
        }
    }
}

cache_report! {
/// The check of one layer.
#[derive(serde::Deserialize)]
pub struct LayerCheck {
    /// The layer (its uncompressed digest).
    pub diff_id: Digest,
    /// Entries of its tree checked.
    pub entries: u64,
    /// File bytes read and hashed.
    pub bytes: u64,
    /// Whether the layer has content digests to check its files against (layers published
    /// before `verify` existed, or without an index, have none: their metadata is checked
    /// against their index only).
    pub recorded: bool,
    /// What is wrong (at most [`MAX_LISTED_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub more_problems: u64,
}
}

impl LayerCheck {
    /// Nothing is wrong with it.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

cache_report! {
/// The check of one image (its record, manifests and which of its layers are damaged).
#[derive(serde::Deserialize)]
pub struct ImageCheck {
    /// The references it was pulled as.
    pub names: Vec<String>,
    /// The platform it was pulled for.
    pub platform: String,
    /// Its platform manifest's digest.
    pub manifest_digest: Digest,
    /// What is wrong with its manifests and its flat EROFS image, if it has one (layer
    /// damage is in the report's `layers`).
    pub problems: Vec<Problem>,
    /// Its layers that are missing or have problems (diff_ids, bottom to top).
    pub damaged_layers: Vec<Digest>,
}
}

impl ImageCheck {
    /// Nothing is wrong with it or its layers.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.damaged_layers.is_empty()
    }
}

cache_report! {
/// What [`GlobalCache::verify`] found.
#[derive(Default, serde::Deserialize)]
pub struct VerifyReport {
    /// Every image checked.
    pub images: Vec<ImageCheck>,
    /// Every layer checked.
    pub layers: Vec<LayerCheck>,
    /// Image records that are not valid (a whole-cache check only).
    pub records: Vec<Problem>,
}
}

impl VerifyReport {
    /// Nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problem_count() == 0
    }

    /// Problems found, listed or not.
    pub fn problem_count(&self) -> u64 {
        let images: usize = self.images.iter().map(|i| i.problems.len()).sum();
        let layers: u64 = self
            .layers
            .iter()
            .map(|l| l.problems.len() as u64 + l.more_problems)
            .sum();
        images as u64 + layers + self.records.len() as u64
    }

    /// The check of layer `diff_id`, if it was checked.
    pub fn layer(&self, diff_id: &Digest) -> Option<&LayerCheck> {
        self.layers.iter().find(|l| &l.diff_id == diff_id)
    }
}

impl GlobalCache {
    /// Check the cache (blocking; reads every byte of every layer checked). With no
    /// references: every image record, every image, and every layer in the cache, named by
    /// an image or not. With references: the images pulled under those names (any
    /// platform) and their layers; a name the cache has no image for is an error.
    ///
    /// ```no_run
    /// use microsandbox_image::GlobalCache;
    /// let cache = GlobalCache::new("/tmp/msb-cache")?;
    /// let report = cache.verify(&[])?;
    /// for layer in report.layers.iter().filter(|l| !l.is_ok()) {
    ///     for problem in &layer.problems {
    ///         eprintln!("{}: {problem}", layer.diff_id);
    ///     }
    /// }
    /// # Ok::<(), microsandbox_image::CacheError>(())
    /// ```
    pub fn verify(&self, only: &[Reference]) -> Result<VerifyReport, CacheError> {
        let names: BTreeSet<String> = only.iter().map(Reference::to_string).collect();
        let mut images = group_images(self.stored_records()?);
        if !names.is_empty() {
            images.retain(|i| i.names.iter().any(|n| names.contains(n)));
            if let Some(absent) = names
                .iter()
                .find(|n| !images.iter().any(|i| i.names.contains(n)))
            {
                return Err(CacheError::NoSuchImage {
                    reference: absent.clone(),
                    platform: None,
                });
            }
        }
        let mut wanted: BTreeSet<Digest> = images
            .iter()
            .flat_map(|i| i.layers.iter().cloned())
            .collect();
        let mut report = VerifyReport::default();
        if names.is_empty() {
            wanted.extend(self.layer_ids()?);
            report.records = self.invalid_records()?;
        }
        let checks: BTreeMap<Digest, LayerCheck> = wanted
            .into_iter()
            .map(|d| {
                let check = self.verify_layer(&d);
                (d, check)
            })
            .collect();
        for image in images {
            let mut problems = Vec::new();
            for d in [&image.manifest_digest, &image.config_digest] {
                problems.extend(self.check_manifest(d));
            }
            problems.extend(self.verify_flat(&image.manifest_digest, &image.layers));
            let damaged_layers = image
                .layers
                .iter()
                .filter(|d| checks.get(*d).is_some_and(|c| !c.is_ok()))
                .cloned()
                .collect();
            report.images.push(ImageCheck {
                names: image.names,
                platform: image.platform,
                manifest_digest: image.manifest_digest,
                problems,
                damaged_layers,
            });
        }
        report.layers = checks.into_values().collect();
        Ok(report)
    }

    /// A stored manifest, index or config: present and matching its digest.
    fn check_manifest(&self, digest: &Digest) -> Option<Problem> {
        if self.get_manifest(digest).is_some() {
            return None;
        }
        let p = self.inner.layout.manifest_file(digest);
        let shown = Some(p.display().to_string());
        Some(if std::fs::symlink_metadata(&p).is_ok() {
            Problem::new(
                ProblemKind::ManifestCorrupt,
                shown,
                format!("its bytes do not match {digest}"),
            )
        } else {
            Problem::new(
                ProblemKind::ManifestMissing,
                shown,
                format!("{digest} is not stored"),
            )
        })
    }

    /// Remove the image records at `paths` (as a report names them) that are still not
    /// valid (blocking); returns how many were removed. Only files of `images/` are touched,
    /// whatever the paths say.
    pub(crate) fn remove_invalid_records(&self, paths: &[String]) -> Result<usize, CacheError> {
        let mut removed = 0;
        for p in paths {
            let Some(key) = std::path::Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let path = self.inner.layout.image_record(key);
            let exists = std::fs::symlink_metadata(&path).is_ok();
            if exists && record::read_record_file(&path, key).is_none() {
                self.remove_record(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Image records that are not whole, valid records under their own key.
    fn invalid_records(&self) -> Result<Vec<Problem>, CacheError> {
        Ok(self
            .record_files()?
            .into_iter()
            .filter(|(key, path)| record::read_record_file(path, key).is_none())
            .map(|(_, path)| {
                Problem::new(
                    ProblemKind::RecordInvalid,
                    Some(path.display().to_string()),
                    "not a whole, valid image record of this version under its own key",
                )
            })
            .collect())
    }
}
