//! [`ErrorReport`]: an [`Error`] as data (kind code, message, image, layer), the one JSON shape
//! in which every front door reports a failure: the CLI's `--json` and `--progress json`, and
//! the Python and Node bindings' exception attributes.

use crate::digest::Digest;
use crate::layer::LayerError;

use super::{Error, ErrorKind};

/// An error as plain data.
///
/// ```
/// use microsandbox_image::{Error, ErrorKind};
/// let e = Error::NotCached { reference: "docker.io/library/alpine:latest".into() };
/// let report = e.report();
/// assert_eq!(report.kind, ErrorKind::NotCached);
/// assert_eq!(report.image.as_deref(), Some("docker.io/library/alpine:latest"));
/// assert_eq!(serde_json::to_value(&report).unwrap()["kind"], "NOT_CACHED");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorReport {
    /// The stable kind; serialised as its code (`"NOT_CACHED"`).
    pub kind: ErrorKind,
    /// The whole message, naming the image and the layer.
    pub message: String,
    /// The image reference the error concerns, when there is one.
    pub image: Option<String>,
    /// The layer's diff_id, when one layer failed.
    pub layer: Option<Digest>,
    /// The layer's compressed blob digest, when one layer failed while its blob was pulled.
    pub blob: Option<Digest>,
}

impl Error {
    /// The image reference this error concerns, if any.
    pub fn image(&self) -> Option<&str> {
        match self {
            Error::NotCached { reference }
            | Error::PlatformNotFound { reference, .. }
            | Error::Registry { reference, .. }
            | Error::Manifest { reference, .. }
            | Error::Source { reference, .. }
            | Error::Layer { reference, .. }
            | Error::ImageCache { reference, .. }
            | Error::Cancelled { reference }
            | Error::DeadlineExceeded { reference, .. } => Some(reference),
            _ => None,
        }
    }

    /// The diff_id of the layer this error concerns, if one layer failed.
    pub fn layer(&self) -> Option<&Digest> {
        match self {
            Error::Layer { diff_id, .. } => Some(diff_id),
            _ => None,
        }
    }

    /// This error as data: what the CLI prints with `--json` and the bindings attach to
    /// their exceptions.
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            kind: self.kind(),
            message: self.to_string(),
            image: self.image().map(str::to_owned),
            layer: self.layer().cloned(),
            blob: match self {
                Error::Layer { digest, .. } => digest.clone(),
                _ => None,
            },
        }
    }
}

/// ` (blob <digest>)` when the compressed blob is what failed (it could not be fetched, had
/// the wrong size, did not inflate, or inflated to other content than its diff_id) and its
/// digest is not already in the message; empty otherwise.
pub(super) fn blob_note(digest: Option<&Digest>, source: &LayerError) -> String {
    let blob_failed = matches!(
        source,
        LayerError::Download(_)
            | LayerError::SizeMismatch { .. }
            | LayerError::Tar { .. }
            | LayerError::DiffIdMismatch { .. }
    );
    match digest {
        Some(d) if blob_failed => format!(" (blob {d})"),
        _ => String::new(),
    }
}
