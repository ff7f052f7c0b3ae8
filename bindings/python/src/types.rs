//! The core's small value types as Python classes: `Platform`, `Reference`, `GlobalCache`,
//! `RegistryAuth` and `CancelToken`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use microsandbox_image as core;
use microsandbox_image::ErrorKind;
use pyo3::prelude::*;

use crate::cache;
use crate::convert;
use crate::errors::{core_error, raise_msg};

fn hash_of(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A target platform: OS, CPU architecture and optional variant, normalised
/// (`Platform("linux", "x86_64")` is `linux/amd64`).
#[pyclass(module = "msbimage", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub inner: core::Platform,
}

#[pymethods]
impl Platform {
    #[new]
    #[pyo3(signature = (os, architecture, variant = None))]
    fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let inner = match variant {
            Some(v) => core::Platform::with_variant(os, architecture, v),
            None => core::Platform::new(os, architecture),
        };
        Platform { inner }
    }

    /// Linux on the architecture of this machine.
    #[staticmethod]
    fn host_linux() -> Self {
        Platform {
            inner: core::Platform::host_linux(),
        }
    }

    /// Parses `os/arch[/variant]` (`"linux/arm/v7"`); raises InvalidArgumentError.
    #[staticmethod]
    fn parse(py: Python<'_>, s: &str) -> PyResult<Self> {
        s.parse()
            .map(|inner| Platform { inner })
            .map_err(|e| raise_msg(py, ErrorKind::InvalidArgument, format!("{e}")))
    }

    /// The operating system (`linux`).
    #[getter]
    fn os(&self) -> &str {
        self.inner.os()
    }

    /// The architecture as OCI names it (`amd64`, `arm64`, `arm`, …).
    #[getter]
    fn architecture(&self) -> &str {
        self.inner.architecture()
    }

    /// The variant (`v7`), or None.
    #[getter]
    fn variant(&self) -> Option<&str> {
        self.inner.variant()
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Platform.parse({:?})", self.inner.to_string())
    }
}

/// An image reference, normalised (`alpine` is `docker.io/library/alpine:latest`).
#[pyclass(module = "msbimage", frozen)]
#[derive(Clone)]
pub struct Reference {
    pub inner: core::Reference,
}

#[pymethods]
impl Reference {
    #[new]
    fn new(py: Python<'_>, s: &str) -> PyResult<Self> {
        Reference::parse(py, s)
    }

    /// Parses `[registry/]repository[:tag][@digest]`; raises InvalidReferenceError.
    #[staticmethod]
    fn parse(py: Python<'_>, s: &str) -> PyResult<Self> {
        s.parse::<core::Reference>()
            .map(|inner| Reference { inner })
            .map_err(|e| core_error(py, &core::Error::from(e)))
    }

    /// The registry (`docker.io`, `localhost:5000`).
    #[getter]
    fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository (`library/alpine`).
    #[getter]
    fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, or None.
    #[getter]
    fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest (`sha256:…`), or None.
    #[getter]
    fn digest(&self) -> Option<String> {
        self.inner.digest().map(|d| d.to_string())
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Reference({:?})", self.inner.to_string())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Reference>()
            .is_ok_and(|o| o.get().inner.to_string() == self.inner.to_string())
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.inner.to_string())
    }
}

/// The shared image cache at a directory (created if needed).
#[pyclass(module = "msbimage", frozen)]
pub struct GlobalCache {
    pub inner: core::GlobalCache,
}

#[pymethods]
impl GlobalCache {
    #[new]
    #[pyo3(signature = (path, *, group = None, read_only = false))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        group: Option<&Bound<'_, PyAny>>,
        read_only: bool,
    ) -> PyResult<Self> {
        let options = cache::cache_options(py, group, read_only)?;
        py.detach(move || core::GlobalCache::with_options(path, &options))
            .map(|inner| GlobalCache { inner })
            .map_err(|e| core_error(py, &core::Error::from(e)))
    }

    /// Whether the cache was opened read-only (it never writes).
    #[getter]
    fn read_only(&self) -> bool {
        self.inner.is_read_only()
    }

    /// The cache's root directory (absolute).
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.root().to_owned()
    }

    fn __repr__(&self) -> String {
        format!("GlobalCache({:?})", self.inner.root().display().to_string())
    }

    /// The images in the cache (``list[CachedImage]``), sorted by name.
    fn images<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        let images = py.detach(move || cache.images());
        cache::report(py, "CachedImage[]", images)
    }

    /// The layers in the cache (``list[CachedLayer]``) with their size and holders.
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        let layers = py.detach(move || cache.layers());
        cache::report(py, "CachedLayer[]", layers)
    }

    /// Where the cache's bytes are (``DiskUsage``).
    fn disk_usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cache = self.inner.clone();
        let usage = py.detach(move || cache.disk_usage());
        cache::report(py, "DiskUsage", usage)
    }

    /// Removes an image and the layers only it held (``GcReport``).
    #[pyo3(signature = (reference, platform = None))]
    fn remove_image<'py>(
        &self,
        py: Python<'py>,
        reference: &Bound<'py, PyAny>,
        platform: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let reference = cache::reference(py, reference)?;
        let platform = cache::platform(py, platform)?;
        let cache = self.inner.clone();
        let report = py.detach(move || cache.remove_image(&reference, platform.as_ref()));
        cache::report(py, "GcReport", report)
    }

    /// Collects garbage under a policy (``GcReport``).
    #[pyo3(signature = (*, dry_run = false, max_size = None, keep_recent = None))]
    fn gc<'py>(
        &self,
        py: Python<'py>,
        dry_run: bool,
        max_size: Option<i128>,
        keep_recent: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let policy = cache::gc_policy(py, dry_run, max_size, keep_recent)?;
        let cache = self.inner.clone();
        let report = py.detach(move || cache.gc(&policy));
        cache::report(py, "GcReport", report)
    }

    /// Checks the cache (``VerifyReport``): every layer's tree against its index and
    /// content digests, and the images' records and manifests; only the images named by
    /// ``references`` (and their layers) when given.
    #[pyo3(signature = (references = None))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        references: Option<Vec<Bound<'py, PyAny>>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let only = references
            .unwrap_or_default()
            .iter()
            .map(|r| cache::reference(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        let cache = self.inner.clone();
        let report = py.detach(move || cache.verify(&only));
        cache::report(py, "VerifyReport", report)
    }

    /// Holds a layer (``LayerLease``) so that no process deletes it until it is released.
    fn hold_layer(&self, py: Python<'_>, diff_id: &str) -> PyResult<cache::LayerLease> {
        let diff_id: core::Digest = diff_id
            .parse()
            .map_err(|e| raise_msg(py, ErrorKind::InvalidArgument, format!("diff_id: {e}")))?;
        let cache = self.inner.clone();
        py.detach(move || cache.hold_layer(&diff_id))
            .map(cache::LayerLease::new)
            .map_err(|e| core_error(py, &core::Error::from(e)))
    }
}

/// Credentials for a registry: anonymous, basic (user and password or token), a bearer
/// token or an identity token. Secrets never show in repr().
#[pyclass(module = "msbimage", frozen)]
pub struct RegistryAuth {
    pub inner: core::RegistryAuth,
}

#[pymethods]
impl RegistryAuth {
    /// No credentials.
    #[staticmethod]
    fn anonymous() -> Self {
        RegistryAuth {
            inner: core::RegistryAuth::Anonymous,
        }
    }

    /// A user name and a password (or access token).
    #[staticmethod]
    fn basic(username: String, password: String) -> Self {
        RegistryAuth {
            inner: core::RegistryAuth::Basic { username, password },
        }
    }

    /// A ready bearer token, sent as is.
    #[staticmethod]
    fn bearer(token: String) -> Self {
        RegistryAuth {
            inner: core::RegistryAuth::Bearer { token },
        }
    }

    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged for access tokens.
    #[staticmethod]
    #[pyo3(signature = (token, username = None))]
    fn identity_token(token: String, username: Option<String>) -> Self {
        RegistryAuth {
            inner: core::RegistryAuth::IdentityToken {
                username: username.unwrap_or_default(),
                token,
            },
        }
    }

    /// These credentials as the core's settings data (`{"type": "basic", …}`).
    fn to_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        format!("RegistryAuth({:?})", self.inner)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<RegistryAuth>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        hash_of(&format!("{:?}", self.inner))
    }
}

/// Cancels the pulls it is given to, from any thread: they stop, clean up, and raise
/// CancelledError.
#[pyclass(module = "msbimage", frozen)]
#[derive(Default)]
pub struct CancelToken {
    pub inner: core::CancelToken,
}

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        CancelToken::default()
    }

    /// Cancels every pull holding this token (idempotent).
    fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether cancel() was called.
    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    fn __repr__(&self) -> String {
        format!("CancelToken(cancelled={})", self.inner.is_cancelled())
    }
}
