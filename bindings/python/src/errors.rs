//! Core errors as Python exceptions. The exception classes are the Python package's (one per
//! core error kind, built from the kind list at import); it hands them over once with
//! `set_error_classes`, keyed by kind code, and every error raised here is an instance of the
//! class of its kind, carrying the core's error report (message, image, layer, blob).

use microsandbox_image::{Error, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

static CLASSES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// Registers the exception class of each error kind: `{"NOT_CACHED": NotCachedError, …}`.
/// Called once by the `msbimage` package when it is imported.
#[pyfunction]
pub fn set_error_classes(py: Python<'_>, classes: Bound<'_, PyDict>) -> PyResult<()> {
    CLASSES
        .set(py, classes.unbind())
        .map_err(|_| PyRuntimeError::new_err("error classes are already set"))
}

/// What an exception carries besides its kind.
#[derive(Default)]
pub struct Detail {
    pub message: String,
    pub image: Option<String>,
    pub layer: Option<String>,
    pub blob: Option<String>,
}

/// The exception of `kind` with `detail`: `cls(message, image=…, layer=…, blob=…)`.
pub fn raise(py: Python<'_>, kind: ErrorKind, detail: Detail) -> PyErr {
    let class = CLASSES
        .get(py)
        .and_then(|classes| classes.bind(py).get_item(kind.code()).ok().flatten());
    let Some(class) = class else {
        // Only when _native is used without the package.
        return PyRuntimeError::new_err(format!("{}: {}", kind.code(), detail.message));
    };
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("image", detail.image)?;
        kwargs.set_item("layer", detail.layer)?;
        kwargs.set_item("blob", detail.blob)?;
        let exception = class.call((detail.message,), Some(&kwargs))?;
        Ok(PyErr::from_value(exception))
    };
    build().unwrap_or_else(|e| e)
}

/// The exception of `kind` with only a message.
pub fn raise_msg(py: Python<'_>, kind: ErrorKind, message: impl Into<String>) -> PyErr {
    raise(
        py,
        kind,
        Detail {
            message: message.into(),
            ..Detail::default()
        },
    )
}

/// A core error as its Python exception.
pub fn core_error(py: Python<'_>, error: &Error) -> PyErr {
    let report = error.report();
    raise(
        py,
        report.kind,
        Detail {
            message: report.message,
            image: report.image,
            layer: report.layer.map(|d| d.to_string()),
            blob: report.blob.map(|d| d.to_string()),
        },
    )
}
