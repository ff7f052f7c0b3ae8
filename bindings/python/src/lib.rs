//! `msbimage._native`: the pyo3 module under the `msbimage` Python package.
//!
//! It converts and calls the core (`microsandbox_image`), nothing more: registry settings and
//! pull options arrive as the core's JSON (the Python package turns keyword arguments into
//! it), results, events and error reports leave as the core's serde data, and the lists that
//! the Python package builds its classes from (error kinds, event types, settings) come from
//! the core's API surface document. The Python package (`python/msbimage/`) holds the
//! dataclasses, enums, exceptions and the command line.

mod cache;
mod convert;
mod errors;
mod layer_stack;
mod pull;
mod runtime;
mod types;

use pyo3::prelude::*;

/// The native half of `msbimage`: use the `msbimage` package, not this module.
#[pymodule(name = "_native")]
mod native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::cache::{LayerLease, set_report_decoder};
    #[pymodule_export]
    use super::errors::set_error_classes;
    #[pymodule_export]
    use super::layer_stack::LayerStack;
    #[pymodule_export]
    use super::pull::{PullIter, PullResult, Registry};
    #[pymodule_export]
    use super::types::{CancelToken, GlobalCache, Platform, Reference, RegistryAuth};

    /// The core's API surface document (`core/api-surface.json`): error kinds, event types
    /// with their fields, registry settings and pull options with their defaults.
    #[pyfunction]
    fn api_surface() -> String {
        microsandbox_image::surface::api_surface_json()
    }

    /// The default cache directory (`$MSBIMAGE_CACHE`, `$XDG_CACHE_HOME/msbimage` or
    /// `~/.cache/msbimage`), or None when none of those is set.
    #[pyfunction]
    fn default_cache_path() -> Option<std::path::PathBuf> {
        microsandbox_image::GlobalCache::default_path()
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
