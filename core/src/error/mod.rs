//! The crate's top-level error: what a pull can fail with, each variant carrying the image (and
//! layer) it concerns. Lower layers (`client`, `cache`, `layer`, `manifest`) have their own enums;
//! this one adds the pull's context and a stable [`ErrorKind`] that the C, Python and Node
//! bindings map to their own error codes.

use crate::cache::CacheError;
use crate::client::RegistryError;
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::manifest::ManifestError;
use crate::offline::SourceError;
use crate::platform::Platform;
use crate::reference::ReferenceError;

mod kind;
mod report;

pub use kind::ErrorKind;
pub use report::ErrorReport;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The original `microsandbox-image` crate's name for [`Error`].
pub type ImageError = Error;

/// The original `microsandbox-image` crate's name for [`Result`].
pub type ImageResult<T> = Result<T, Error>;

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

    /// The image index has no manifest for the requested platform, or the single-platform
    /// image the reference names is built for another platform.
    #[error("{reference}: no manifest for platform {wanted}; available: {}", available.join(", "))]
    PlatformNotFound {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: Platform,
        /// The platforms the index lists (attestations excluded), or the one platform of a
        /// single-platform image.
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

    /// Downloading, verifying or extracting one layer failed. The message names the layer by
    /// its diff_id (as paths and progress events do), with the compressed blob's digest beside
    /// it when the blob is what failed.
    #[error("{reference}: layer {diff_id}{}: {source}", report::blob_note(digest.as_ref(), source))]
    Layer {
        /// The image.
        reference: String,
        /// The layer's uncompressed digest (its cache key).
        diff_id: Digest,
        /// The compressed blob's digest as listed in the manifest (`None` when the layer was
        /// already in the cache and only its index was being built).
        digest: Option<Digest>,
        /// What went wrong.
        #[source]
        source: Box<LayerError>,
    },

    /// An offline image (an OCI layout, a docker archive) could not be read or written: the
    /// message names the file.
    #[error("{reference}: {source}")]
    Source {
        /// The image (or the source, before its image is known).
        reference: String,
        /// What went wrong.
        #[source]
        source: Box<SourceError>,
    },

    /// The cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),

    /// The cache could not be read or written while pulling an image, outside any one
    /// layer's work (storing its manifests, holding its layers, writing its record). The
    /// message names the image, the path and the OS error (`Read-only file system`, `Disk
    /// quota exceeded`, …).
    #[error("{reference}: {source}")]
    ImageCache {
        /// The image.
        reference: String,
        /// What went wrong, and where.
        #[source]
        source: CacheError,
    },

    /// Writing an image's merged tree out as a plain directory failed
    /// ([`PullResult::unpack`](crate::PullResult::unpack)).
    #[error(transparent)]
    Unpack(#[from] crate::unpack::UnpackError),

    /// Writing the flat EROFS image of an image (`outputs: ["erofs-flat"]`) failed: the
    /// message names the image and what failed (a layer file, the image file).
    #[error("{reference}: writing its flat EROFS image: {source}")]
    FlatImage {
        /// The image.
        reference: String,
        /// What went wrong.
        #[source]
        source: Box<crate::erofs::ErofsError>,
    },

    /// The pull was cancelled.
    #[error("{reference}: pull cancelled")]
    Cancelled {
        /// The image.
        reference: String,
    },

    /// The pull did not finish within the `deadline` setting. It stopped as a cancelled pull
    /// does: nothing half-published, a layer blob's bytes kept for the next pull to resume
    /// (as `partialMinSize` says).
    #[error("{reference}: the pull did not finish within its deadline of {} s{}", seconds, last_retry.as_ref().map(|r| format!(" (it was retrying {r})")).unwrap_or_default())]
    DeadlineExceeded {
        /// The image.
        reference: String,
        /// The deadline, in seconds.
        seconds: f64,
        /// The last retry of a request the pull reported, when it had one (`GET <url> in 30.0
        /// s (attempt 2/5): HTTP 503 …`): usually what it was waiting for.
        last_retry: Option<String>,
    },

    /// A credential file or helper could not be read or written (`login`, `logout`). The
    /// message names the file or helper, never a secret.
    #[error("credential store {store}: {detail}")]
    CredentialStore {
        /// The file's path or the helper's program name.
        store: String,
        /// What went wrong.
        detail: String,
    },

    /// A bug: a task panicked or vanished. The message says where.
    #[error("internal error: {0}")]
    Internal(String),
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
            Error::Source { source, .. } => source.kind(),
            Error::Cache(e) | Error::ImageCache { source: e, .. } => e.kind(),
            Error::Unpack(e) => e.kind(),
            Error::FlatImage { source, .. } => source.kind(),
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            Error::CredentialStore { .. } => ErrorKind::Io,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}
