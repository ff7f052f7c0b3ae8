//! [`SourceError`]: what reading or writing an offline image (an OCI layout, a docker
//! archive) fails with. Every message names the file it concerns.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::ErrorKind;

/// Why an offline image could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source or target string does not parse.
    #[error("invalid image source {input:?}: {reason}")]
    Invalid {
        /// What was given.
        input: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What we tried.
        op: &'static str,
        /// The file (for a member of an archive: `ARCHIVE:MEMBER`).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what its format says (bad JSON, a bad tar, a missing field).
    #[error("{}: {detail}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The image asked for is not there.
    #[error("{}: no image {wanted}; it has: {}", path.display(), list(available))]
    NoSuchImage {
        /// The layout's `index.json` or the archive.
        path: PathBuf,
        /// What was asked for.
        wanted: String,
        /// What it has (tags, names or digests).
        available: Vec<String>,
    },
    /// No image was named and there are several.
    #[error("{}: holds several images, name one ({})", path.display(), list(available))]
    Ambiguous {
        /// The layout's `index.json` or the archive.
        path: PathBuf,
        /// The names to choose from.
        available: Vec<String>,
    },
    /// A blob the image needs is missing.
    #[error("{}: blob {digest} is missing", path.display())]
    MissingBlob {
        /// Where it should be.
        path: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A blob's size differs from its descriptor's.
    #[error("{}: {size} bytes, the descriptor says {expected}", path.display())]
    SizeMismatch {
        /// The blob.
        path: PathBuf,
        /// Its size on disk.
        size: u64,
        /// The descriptor's size.
        expected: u64,
    },
    /// A blob does not hash to its digest.
    #[error("{}: content is {actual}, expected {expected}", path.display())]
    DigestMismatch {
        /// The blob.
        path: PathBuf,
        /// The digest it should have.
        expected: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// A file is larger than we read into memory.
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A path of the layout or archive leaves it or is not a plain file (a symlink in
    /// `blobs/`, a device, a link chain out of the archive).
    #[error("{}: refused: {reason}", path.display())]
    Unsafe {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `save` could not get the image's blobs: the cache keeps extracted layers only, so
    /// saving needs the registry.
    #[error(
        "{reference}: the cache holds this image's extracted layers but not its blobs, which `save` writes; the registry is needed: {detail}"
    )]
    BlobsNotCached {
        /// The image.
        reference: String,
        /// What the registry said.
        detail: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

impl SourceError {
    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Invalid { .. } | SourceError::Ambiguous { .. } => {
                ErrorKind::InvalidArgument
            }
            SourceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            SourceError::Io { .. } => ErrorKind::Io,
            SourceError::NoSuchImage { .. } | SourceError::MissingBlob { .. } => {
                ErrorKind::NotFound
            }
            SourceError::SizeMismatch { .. } | SourceError::DigestMismatch { .. } => {
                ErrorKind::DigestMismatch
            }
            SourceError::Malformed { .. } | SourceError::TooLarge { .. } => ErrorKind::Unsupported,
            SourceError::Unsafe { .. } => ErrorKind::Extraction,
            SourceError::BlobsNotCached { .. } => ErrorKind::Registry,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        SourceError::Malformed {
            path: path.into(),
            detail: detail.to_string(),
        }
    }
}
