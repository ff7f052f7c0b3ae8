//! Core errors as JavaScript `Error` objects: `code` is the core's stable kind code
//! (`'NOT_CACHED'`), `image`, `layer` and `blob` are set when the core knows them, and a
//! cancelled pull's error is named `'AbortError'` (what `fetch` and `AbortSignal` users test
//! for). Every function of the package throws or rejects with these.

use microsandbox_image::{Error, ErrorKind, ErrorReport};
use napi::bindgen_prelude::*;

/// What a JS error is made of.
pub(crate) struct JsFailure<'a> {
    pub kind: ErrorKind,
    pub message: &'a str,
    pub image: Option<&'a str>,
    pub layer: Option<String>,
    pub blob: Option<String>,
}

/// The JS error for a core error.
pub(crate) fn core_error(env: &Env, error: &Error) -> napi::Error {
    report_error(env, &error.report())
}

/// The JS error for a core error already turned into data.
pub(crate) fn report_error(env: &Env, report: &ErrorReport) -> napi::Error {
    js_error(
        env,
        JsFailure {
            kind: report.kind,
            message: &report.message,
            image: report.image.as_deref(),
            layer: report.layer.as_ref().map(ToString::to_string),
            blob: report.blob.as_ref().map(ToString::to_string),
        },
    )
}

/// A JS error of `kind` with `message` and nothing else known.
pub(crate) fn kind_error(env: &Env, kind: ErrorKind, message: &str) -> napi::Error {
    js_error(
        env,
        JsFailure {
            kind,
            message,
            image: None,
            layer: None,
            blob: None,
        },
    )
}

/// Builds the `Error` object on the JS thread and wraps it so that napi throws (or rejects
/// with) that very object.
pub(crate) fn js_error(env: &Env, failure: JsFailure<'_>) -> napi::Error {
    let build = || -> Result<napi::Error> {
        let mut error = env.create_error(napi::Error::new(
            Status::GenericFailure,
            failure.message.to_owned(),
        ))?;
        error.set_named_property("code", failure.kind.code())?;
        if failure.kind == ErrorKind::Cancelled {
            error.set_named_property("name", "AbortError")?;
        }
        if let Some(image) = failure.image {
            error.set_named_property("image", image)?;
        }
        if let Some(layer) = &failure.layer {
            error.set_named_property("layer", layer.as_str())?;
        }
        if let Some(blob) = &failure.blob {
            error.set_named_property("blob", blob.as_str())?;
        }
        Ok(napi::Error::from(error.to_unknown()))
    };
    // Building fails only while the environment shuts down; a plain error is all that is
    // left to give then.
    build().unwrap_or_else(|e| e)
}
