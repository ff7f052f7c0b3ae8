//! [`PullContext`]: what every step of one pull shares (the image, the platform, the progress
//! sink, the cancel token), and the one place that builds the pull's error values with that
//! context, so each names the image (and the layer) the same way.

use std::sync::Arc;

use crate::cache::{CacheError, record_key};
use crate::cancel::CancelToken;
use crate::client::RegistryError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::offline::SourceError;
use crate::offline::local::LocalImage;
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::reference::Reference;

pub(super) struct PullContext<'a> {
    pub reference: &'a Reference,
    /// The normalised reference, as events and errors name it.
    pub image: Arc<str>,
    pub platform: Platform,
    pub progress: &'a ProgressSink,
    pub cancel: &'a CancelToken,
    /// The offline image blobs come from, when the pull reads one instead of the registry.
    pub local: Option<Arc<LocalImage>>,
}

impl<'a> PullContext<'a> {
    pub fn new(
        reference: &'a Reference,
        platform: Platform,
        progress: &'a ProgressSink,
        cancel: &'a CancelToken,
    ) -> Self {
        PullContext {
            reference,
            image: reference.to_string().into(),
            platform,
            progress,
            cancel,
            local: None,
        }
    }

    /// The same pull, reading `local` instead of the registry.
    pub fn reading(mut self, local: Arc<LocalImage>) -> Self {
        self.local = Some(local);
        self
    }

    /// Reading the offline image failed.
    pub fn source(&self, source: SourceError) -> Error {
        Error::Source {
            reference: self.image.to_string(),
            source: Box::new(source),
        }
    }

    /// The image record's key: one record per (reference, platform).
    pub fn record_key(&self) -> String {
        record_key(&self.image, &self.platform.to_string())
    }

    /// Runs `step` unless the caller cancels first.
    pub async fn until_cancelled<T>(&self, step: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(self.cancelled()),
            r = step => r,
        }
    }

    pub fn cancelled(&self) -> Error {
        Error::Cancelled {
            reference: self.image.to_string(),
        }
    }

    pub fn not_cached(&self) -> Error {
        Error::NotCached {
            reference: self.image.to_string(),
        }
    }

    pub fn registry(&self, source: RegistryError) -> Error {
        Error::Registry {
            reference: self.image.to_string(),
            source: Box::new(source),
        }
    }

    pub fn manifest(&self, source: ManifestError) -> Error {
        Error::Manifest {
            reference: self.image.to_string(),
            source,
        }
    }

    /// A layer failed: named by its diff_id, with its blob digest when it was being pulled.
    pub fn layer(&self, diff_id: &Digest, blob: Option<&Digest>, source: LayerError) -> Error {
        Error::Layer {
            reference: self.image.to_string(),
            diff_id: diff_id.clone(),
            digest: blob.cloned(),
            source: Box::new(source),
        }
    }

    /// The cache failed at a step of this image's pull that is not one layer's.
    pub fn cache(&self, source: CacheError) -> Error {
        Error::ImageCache {
            reference: self.image.to_string(),
            source,
        }
    }

    pub fn platform_not_found(&self, available: Vec<String>) -> Error {
        Error::PlatformNotFound {
            reference: self.image.to_string(),
            wanted: self.platform.clone(),
            available,
        }
    }
}
