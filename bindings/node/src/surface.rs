//! Package-level facts taken from the core: its version and its list of error codes.

use microsandbox_image::ErrorKind;
use napi_derive::napi;

/// The version of the core library this addon was built from.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Every error code the package's errors can carry (`'NOT_CACHED'`, …), in the core's order.
#[napi(ts_return_type = "ErrorCode[]")]
pub fn error_codes() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|k| k.code()).collect()
}

/// The core's API surface document (`core/api-surface.json`): error kinds, event schema,
/// registry settings and pull options with their defaults.
#[napi(ts_return_type = "Record<string, unknown>")]
pub fn api_surface() -> serde_json::Value {
    microsandbox_image::surface::api_surface()
}
