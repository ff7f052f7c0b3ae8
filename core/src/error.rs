//! The crate's top-level error: what a pull can fail with, each variant carrying the image (and
//! layer) it concerns. Lower layers (`client`, `cache`, `layer`, `manifest`) have their own enums;
//! this one adds the pull's context and a stable [`ErrorKind`] that the C, Python and Node
//! bindings map to their own error codes.

use crate::cache::CacheError;
use crate::client::RegistryError;
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::platform::Platform;
use crate::reference::ReferenceError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a pull can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image reference does not parse.
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),

    /// An option or argument is invalid (bad platform string, unreadable CA file, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// `PullPolicy::Never` was asked for an image that is not completely in the cache.
    #[error("{reference}: not in the cache (pull policy is Never)")]
    NotCached {
        /// The image.
        reference: String,
    },

    /// The image index has no manifest for the requested platform.
    #[error("{reference}: no manifest for platform {wanted}; available: {}", available.join(", "))]
    PlatformNotFound {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: Platform,
        /// The platforms the index lists (attestations excluded).
        available: Vec<String>,
    },

    /// Talking to the registry failed (network, HTTP status, authentication, digest of a
    /// manifest or config).
    #[error("{reference}: {source}")]
    Registry {
        /// The image.
        reference: String,
        /// What went wrong.
        #[source]
        source: Box<RegistryError>,
    },

    /// A manifest, index or config is malformed or unsupported.
    #[error("{reference}: {source}")]
    Manifest {
        /// The image.
        reference: String,
        /// What went wrong.
        #[source]
        source: ManifestError,
    },

    /// Downloading, verifying or extracting one layer failed.
    #[error("{reference}: layer {digest}: {source}")]
    Layer {
        /// The image.
        reference: String,
        /// The layer's compressed digest as listed in the manifest (its diff_id when the layer
        /// was already in the cache and only its index was being built).
        digest: Digest,
        /// What went wrong.
        #[source]
        source: Box<LayerError>,
    },

    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),

    /// The pull was cancelled.
    #[error("{reference}: pull cancelled")]
    Cancelled {
        /// The image.
        reference: String,
    },

    /// A bug: a task panicked or vanished. The message says where.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A stable classification of [`Error`]s, shared by every language binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad argument or option.
    InvalidArgument,
    /// A malformed image reference.
    InvalidReference,
    /// Not in the cache and the policy forbids the network.
    NotCached,
    /// No manifest for the requested platform.
    PlatformNotFound,
    /// The registry refused the credentials (401/403).
    Auth,
    /// Network or HTTP failure, or a registry answer that makes no sense.
    Registry,
    /// Content did not hash to its digest.
    DigestMismatch,
    /// A layer could not be decompressed or extracted (bad tar, limits, unsafe paths).
    Extraction,
    /// A local file-system error.
    Io,
    /// The pull was cancelled.
    Cancelled,
    /// A malformed or unsupported manifest/config.
    Unsupported,
    /// A bug in this library.
    Internal,
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReference(_) => ErrorKind::InvalidReference,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotCached { .. } => ErrorKind::NotCached,
            Error::PlatformNotFound { .. } => ErrorKind::PlatformNotFound,
            Error::Registry { source, .. } => source.kind(),
            Error::Manifest { .. } => ErrorKind::Unsupported,
            Error::Layer { source, .. } => source.kind(),
            Error::Cache(_) => ErrorKind::Io,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}
