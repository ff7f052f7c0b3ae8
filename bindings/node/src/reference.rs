//! `parseReference`: an image reference, normalised, and its parts.

use microsandbox_image::{Error, ImageSource, Reference};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::core_error;

/// An image reference, normalised (`alpine` → `docker.io/library/alpine:latest`).
#[napi(object)]
pub struct ReferenceParts {
    /// The whole normalised reference.
    pub reference: String,
    /// The registry (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// The repository (`library/alpine`).
    pub repository: String,
    /// The tag; `undefined` only when a digest was given without one.
    pub tag: Option<String>,
    /// The pinned digest (`sha256:…`), if any.
    pub digest: Option<String>,
}

impl From<&Reference> for ReferenceParts {
    fn from(r: &Reference) -> Self {
        ReferenceParts {
            reference: r.to_string(),
            registry: r.registry().to_owned(),
            repository: r.repository().to_owned(),
            tag: r.tag().map(str::to_owned),
            digest: r.digest().map(ToString::to_string),
        }
    }
}

/// Parses and normalises an image reference. Throws `INVALID_REFERENCE` when it is malformed.
#[napi]
pub fn parse_reference(env: Env, reference: String) -> Result<ReferenceParts> {
    parse(&env, &reference).map(|r| ReferenceParts::from(&r))
}

/// The core's reference for `reference`, or the JS error.
pub(crate) fn parse(env: &Env, reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| core_error(env, &Error::from(e)))
}

/// The core's image source for `source` (a reference, `oci-layout:…` or `docker-archive:…`),
/// or the JS error (`INVALID_REFERENCE` for a bad reference, `INVALID_ARGUMENT` for a bad
/// transport string).
pub(crate) fn parse_source(env: &Env, source: &str) -> Result<ImageSource> {
    ImageSource::parse_arg(source).map_err(|e| core_error(env, &e))
}
