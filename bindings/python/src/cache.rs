//! The cache's life cycle from Python: `GlobalCache.images/layers/disk_usage/remove_image/gc`
//! (methods in `types.rs` that call these functions) and `LayerLease`. The calls block (file
//! system walks, flocks), so they run with the GIL released. Reports leave as the core's
//! serde data, turned into the package's report classes (`msbimage.reports`, built from the
//! core's report schemas) by the decoder the package registers with `set_report_decoder`.

use std::sync::{Arc, Mutex};

use microsandbox_image as core;
use microsandbox_image::{ErrorKind, GcPolicy};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::convert;
use crate::errors::{core_error, raise_msg};

static DECODER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Registers `decode(type_name, data)`, which turns the core's JSON data of a report type
/// (`"CachedImage[]"`, `"GcReport"`, …) into the package's objects. Called once by the
/// `msbimage` package when it is imported.
#[pyfunction]
pub fn set_report_decoder(py: Python<'_>, decode: Py<PyAny>) -> PyResult<()> {
    DECODER
        .set(py, decode)
        .map_err(|_| PyRuntimeError::new_err("the report decoder is already set"))
}

/// `report` (of the core's report type `ty`) as the package's object, or its error raised.
pub fn report<'py, T: serde::Serialize, E>(
    py: Python<'py>,
    ty: &str,
    report: Result<T, E>,
) -> PyResult<Bound<'py, PyAny>>
where
    core::Error: From<E>,
{
    let report = report.map_err(|e| core_error(py, &core::Error::from(e)))?;
    let data = convert::to_py(py, &report)?;
    match DECODER.get(py) {
        Some(decode) => decode.bind(py).call1((ty, data)),
        // Only when _native is used without the package: plain data.
        None => Ok(data),
    }
}

/// A reference given as `str` or `Reference`, parsed (InvalidReferenceError).
pub fn reference(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<core::Reference> {
    value
        .str()?
        .to_cow()?
        .parse::<core::Reference>()
        .map_err(|e| core_error(py, &core::Error::from(e)))
}

/// A platform given as `str`, `Platform` or None, parsed (InvalidArgumentError).
pub fn platform(
    py: Python<'_>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<core::Platform>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    value
        .str()?
        .to_cow()?
        .parse::<core::Platform>()
        .map(Some)
        .map_err(|e| raise_msg(py, ErrorKind::InvalidArgument, format!("platform: {e}")))
}

/// How `GlobalCache(path, group=…, read_only=…)` opens its cache, through the core's JSON
/// form of `CacheOptions` (so the core checks every value: InvalidArgumentError). `group` is
/// a group name (`str`) or gid (`int`).
pub fn cache_options(
    py: Python<'_>,
    group: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<core::cache::CacheOptions> {
    let group = match group.filter(|g| !g.is_none()) {
        None => serde_json::Value::Null,
        Some(g) if g.is_instance_of::<pyo3::types::PyInt>() => g.extract::<u32>()?.into(),
        Some(g) => g.str()?.to_cow()?.into_owned().into(),
    };
    let json = serde_json::json!({ "group": group, "readOnly": read_only });
    serde_json::from_value(json).map_err(|e| {
        raise_msg(
            py,
            ErrorKind::InvalidArgument,
            format!("cache options: {e}"),
        )
    })
}

/// The core's gc policy from `GlobalCache.gc`'s keyword arguments, through its JSON form (so
/// the core checks every value: InvalidArgumentError). `keep_recent` is seconds or a
/// `datetime.timedelta`.
pub fn gc_policy(
    py: Python<'_>,
    dry_run: bool,
    max_size: Option<i128>,
    keep_recent: Option<&Bound<'_, PyAny>>,
) -> PyResult<GcPolicy> {
    let invalid =
        |e: serde_json::Error| raise_msg(py, ErrorKind::InvalidArgument, format!("gc: {e}"));
    let keep_recent = match keep_recent.filter(|v| !v.is_none()) {
        None => None,
        Some(v) if v.hasattr("total_seconds")? => {
            Some(v.call_method0("total_seconds")?.extract::<f64>()?)
        }
        Some(v) => Some(v.extract::<f64>()?),
    };
    let json = serde_json::json!({
        "dryRun": dry_run,
        "maxSize": serde_json::to_value(max_size).map_err(invalid)?,
        "keepRecent": keep_recent,
    });
    GcPolicy::from_json(&json.to_string()).map_err(|e| core_error(py, &e))
}

/// A held layer: while it is held, no process deletes the layer's tree (`gc`, `remove_image`,
/// a forced pull). A context manager (`with cache.hold_layer(diff_id): …`); `release()` lets
/// go early, and garbage collection releases a forgotten one.
#[pyclass(module = "msbimage", frozen)]
pub struct LayerLease {
    diff_id: String,
    held: Mutex<Option<Arc<core::LayerLease>>>,
}

impl LayerLease {
    pub fn new(lease: Arc<core::LayerLease>) -> LayerLease {
        LayerLease {
            diff_id: lease.diff_id().to_string(),
            held: Mutex::new(Some(lease)),
        }
    }

    fn take(&self) -> Option<Arc<core::LayerLease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl LayerLease {
    /// The held layer's diff_id (`sha256:…`).
    #[getter]
    fn diff_id(&self) -> &str {
        &self.diff_id
    }

    /// Whether `release()` was called (or the `with` block ended).
    #[getter]
    fn released(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Lets go of the layer (idempotent). It stays held while anything else holds it.
    fn release(&self, py: Python<'_>) {
        if let Some(lease) = self.take() {
            // The last holder may delete a replaced tree: file system work, without the GIL.
            py.detach(move || drop(lease));
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (_exc_type, _exc, _traceback, /))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) {
        self.release(py);
    }

    fn __repr__(&self) -> String {
        let state = if self.released() { ", released" } else { "" };
        format!("LayerLease({:?}{state})", self.diff_id)
    }
}
