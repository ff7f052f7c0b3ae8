//! [`LocalImage`]: an offline image opened for a pull. It answers the questions the pull
//! asks a registry (the manifest the source names, a manifest or blob by digest, a layer's
//! bytes) from an OCI layout or a docker archive, checking every size and digest as a
//! registry pull does; the pipeline verifies the layers themselves.

use std::collections::HashMap;

use super::blobs::{BlobReader, Blobs, missing_as_blob};
use super::{ImageSource, SourceError, docker_archive, layout};
use crate::client::FetchedManifest;
use crate::digest::Digest;
use crate::manifest::{LayerDescriptor, MAX_MANIFEST_BYTES};
use crate::reference::Reference;

/// The manifest (or index) the source names.
#[derive(Debug, Clone)]
pub(super) struct Top {
    pub digest: Digest,
    pub size: Option<u64>,
    pub media_type: Option<String>,
}

/// An offline image, opened.
#[derive(Debug)]
pub(crate) struct LocalImage {
    /// The name the image is recorded under in the cache.
    pub name: Reference,
    pub(super) blobs: Blobs,
    pub(super) top: Top,
    /// Manifests made up for archives that carry none (docker's `manifest.json`), by digest.
    pub(super) made: HashMap<Digest, Vec<u8>>,
    /// Blobs stored under other names than `blobs/<alg>/<hex>` (docker archive members).
    pub(super) named: HashMap<Digest, String>,
}

impl LocalImage {
    /// Opens `source` (not a registry): reads its index or `manifest.json` and picks the
    /// image. Blocking.
    pub fn open(source: &ImageSource) -> Result<LocalImage, SourceError> {
        match source {
            ImageSource::OciLayout { dir, reference } => {
                layout::open(Blobs::dir(dir)?, layout::Selector::from(reference.as_ref()))
            }
            ImageSource::DockerArchive { file, name } => docker_archive::open(file, name.as_ref()),
            ImageSource::Registry(r) => Err(SourceError::Invalid {
                input: r.to_string(),
                reason: "a registry reference is not a local image".into(),
            }),
        }
    }

    fn name_of(&self, digest: &Digest) -> String {
        self.named
            .get(digest)
            .cloned()
            .unwrap_or_else(|| Blobs::blob_name(digest))
    }

    /// The manifest the source names (`None`), or the manifest `digest`; verified.
    pub fn manifest(&self, digest: Option<&Digest>) -> Result<FetchedManifest, SourceError> {
        let (digest, size, content_type) = match digest {
            None => (&self.top.digest, self.top.size, self.top.media_type.clone()),
            Some(d) => (d, None, None),
        };
        let bytes = match self.made.get(digest) {
            Some(bytes) => bytes.clone(),
            None => {
                self.blobs
                    .read_verified(&self.name_of(digest), digest, size, MAX_MANIFEST_BYTES)?
            }
        };
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest: digest.clone(),
        })
    }

    /// Blob `digest` whole (a config), at most `limit` bytes; verified.
    pub fn blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, SourceError> {
        self.blobs
            .read_verified(&self.name_of(digest), digest, None, limit)
    }

    /// A layer's bytes; its size is checked here, its digest by whoever reads it.
    pub fn open_layer(&self, layer: &LayerDescriptor) -> Result<BlobReader, SourceError> {
        let name = self.name_of(&layer.digest);
        let (reader, size) = self
            .blobs
            .open(&name)
            .map_err(|e| missing_as_blob(e, &layer.digest))?;
        if size != layer.size {
            return Err(SourceError::SizeMismatch {
                path: self.blobs.display(&name),
                size,
                expected: layer.size,
            });
        }
        Ok(reader)
    }

    /// Checks that every layer is there with its size, before any is extracted.
    pub fn check_layers(&self, layers: &[LayerDescriptor]) -> Result<(), SourceError> {
        layers.iter().try_for_each(|l| self.open_layer(l).map(drop))
    }
}
