//! `LayerStack`: the merged view of an image's layers, answered from their sidecar indexes
//! (the core's `index::LayerStack`), plus where each entry's content lives on the host.
//! Image paths arrive as bytes (the package encodes `str` paths with `os.fsencode`); entries
//! leave as dicts that the package turns into its `Entry` dataclass.

use std::path::{Path, PathBuf};

use microsandbox_image::ErrorKind;
use microsandbox_image::cache::LayerTrees;
use microsandbox_image::index::{Entry, IndexError, LayerIndex, LayerStack as CoreStack};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::errors::raise_msg;

/// The layers of an image, bottom to top, seen as one tree. Immutable and usable from any
/// thread; it keeps the index files mapped while it lives.
#[pyclass(module = "msbimage._native", frozen)]
pub struct LayerStack {
    inner: CoreStack,
    /// Each layer's extracted tree on the host, parallel to the layers.
    trees: LayerTrees,
}

/// `/etc/hosts` for messages.
fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// A directory of an index that breaks the format (checked when a lookup first reaches it).
fn corrupt(py: Python<'_>, path: &[u8], error: &IndexError) -> PyErr {
    raise_msg(
        py,
        ErrorKind::Io,
        format!("{}: corrupt layer index: {error}", shown(path)),
    )
}

fn not_found(py: Python<'_>, path: &[u8]) -> PyErr {
    raise_msg(
        py,
        ErrorKind::NotFound,
        format!("{}: no such file or directory", shown(path)),
    )
}

/// The image path without leading and trailing slashes (`/etc/` → `etc`).
fn trim(path: &[u8]) -> &[u8] {
    let start = path.iter().position(|&c| c != b'/').unwrap_or(path.len());
    let end = path
        .iter()
        .rposition(|&c| c != b'/')
        .map_or(start, |i| i + 1);
    path.get(start..end.max(start)).unwrap_or_default()
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = base.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

impl LayerStack {
    /// The same stack, also holding the layers' leases (see the core's `LayerLease`).
    pub fn holding(self, leases: Vec<std::sync::Arc<microsandbox_image::LayerLease>>) -> Self {
        LayerStack {
            inner: self.inner.holding(leases),
            trees: self.trees,
        }
    }

    /// Opens the indexes at `paths` (bottom to top) with the layer trees `trees`.
    pub fn open_with_trees(
        py: Python<'_>,
        paths: &[PathBuf],
        trees: LayerTrees,
    ) -> PyResult<LayerStack> {
        let mut layers = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let index = LayerIndex::open(path).map_err(|e| {
                let hint = match &e {
                    IndexError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        " (the layer has no index: pull with build_index=True to create it)"
                    }
                    _ => "",
                };
                let message = format!("layer {i}: index {}: {e}{hint}", path.display());
                raise_msg(py, e.kind(), message)
            })?;
            layers.push(index);
        }
        Ok(LayerStack {
            inner: CoreStack::new(layers),
            trees,
        })
    }

    fn lookup(&self, py: Python<'_>, path: &[u8]) -> PyResult<Entry<'_>> {
        match self.inner.get(path) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => Err(not_found(py, path)),
            Err(e) => Err(corrupt(py, path, &e)),
        }
    }

    /// Where `entry` lives on the host (`None` when its layer has no tree: pulled with
    /// outputs `["erofs-layers"]` only).
    fn host_path_of(&self, entry: &Entry<'_>) -> Option<PathBuf> {
        self.trees.host_path(entry).ok()
    }

    /// An entry as the dict the package's `Entry` is built from.
    fn entry<'py>(
        &self,
        py: Python<'py>,
        path: &[u8],
        e: &Entry<'_>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let name = path.rsplit(|&c| c == b'/').next().unwrap_or_default();
        d.set_item("name", PyBytes::new(py, name))?;
        d.set_item("path", PyBytes::new(py, path))?;
        d.set_item("kind", format!("{:?}", e.kind()))?;
        d.set_item("mode", e.mode())?;
        d.set_item("uid", e.uid())?;
        d.set_item("gid", e.gid())?;
        d.set_item("size", e.size())?;
        d.set_item("nlink", e.nlink())?;
        d.set_item("rdev", e.rdev())?;
        d.set_item(
            "mtime_ns",
            i128::from(e.mtime_sec()) * 1_000_000_000 + i128::from(e.mtime_nsec()),
        )?;
        d.set_item("inode", e.inode())?;
        d.set_item("layer", e.layer())?;
        d.set_item("opaque", e.is_opaque())?;
        d.set_item("hardlink", e.is_hardlink())?;
        d.set_item("link_target", e.link_target().map(|t| PyBytes::new(py, t)))?;
        d.set_item("host_path", self.host_path_of(e))?;
        Ok(d)
    }
}

#[pymethods]
impl LayerStack {
    /// Opens index files (bottom to top); each layer's tree is the `fs` beside its index.
    #[staticmethod]
    fn open(py: Python<'_>, index_paths: Vec<PathBuf>) -> PyResult<LayerStack> {
        let trees = LayerTrees::beside_indexes(&index_paths);
        LayerStack::open_with_trees(py, &index_paths, trees)
    }

    /// The number of layers.
    fn __len__(&self) -> usize {
        self.inner.layers().len()
    }

    /// The visible entry at `path`; NotFoundError when there is none.
    fn stat<'py>(&self, py: Python<'py>, path: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let path = trim(path);
        let entry = self.lookup(py, path)?;
        self.entry(py, path, &entry)
    }

    /// The visible entry at `path`, or None.
    fn get<'py>(&self, py: Python<'py>, path: &[u8]) -> PyResult<Option<Bound<'py, PyDict>>> {
        let path = trim(path);
        match self.inner.get(path) {
            Ok(Some(entry)) => self.entry(py, path, &entry).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(corrupt(py, path, &e)),
        }
    }

    /// The entries of the directory at `path`, merged, sorted by name.
    fn read_dir<'py>(&self, py: Python<'py>, path: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let path = trim(path);
        let entries = match self.inner.read_dir(path) {
            Ok(Some(entries)) => entries,
            Ok(None) => {
                self.lookup(py, path)?;
                return Err(raise_msg(
                    py,
                    ErrorKind::InvalidArgument,
                    format!("{}: not a directory", shown(path)),
                ));
            }
            Err(e) => return Err(corrupt(py, path, &e)),
        };
        let list = PyList::empty(py);
        for e in &entries {
            list.append(self.entry(py, &join(path, e.name()), e)?)?;
        }
        Ok(list)
    }

    /// The target of the symbolic link at `path`, as stored.
    fn readlink<'py>(&self, py: Python<'py>, path: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let path = trim(path);
        match self.lookup(py, path)?.link_target() {
            Some(target) => Ok(PyBytes::new(py, target)),
            None => Err(raise_msg(
                py,
                ErrorKind::InvalidArgument,
                format!("{}: not a symbolic link", shown(path)),
            )),
        }
    }

    /// The extended attributes of the entry at `path`: name → value.
    fn xattrs<'py>(&self, py: Python<'py>, path: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, value) in self.lookup(py, trim(path))?.xattrs() {
            d.set_item(PyBytes::new(py, name), PyBytes::new(py, value))?;
        }
        Ok(d)
    }

    /// Every visible entry, parents before their contents, siblings sorted by name, as
    /// `(path, entry)` pairs (collected at once).
    fn walk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for item in self.inner.walk() {
            let (path, entry) = item.map_err(|e| corrupt(py, b"", &e))?;
            let pair = PyTuple::new(
                py,
                [
                    PyBytes::new(py, &path).into_any(),
                    self.entry(py, &path, &entry)?.into_any(),
                ],
            )?;
            list.append(pair)?;
        }
        Ok(list)
    }

    /// Checks every index completely, so that no later lookup can fail.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.verify().map_err(|e| corrupt(py, b"", &e))
    }

    /// The host directories of the layers, bottom to top (`None` for a layer without one:
    /// pulled with outputs `["erofs-layers"]` only).
    #[getter]
    fn layer_trees(&self) -> Vec<Option<PathBuf>> {
        self.trees
            .iter()
            .map(|t| t.map(Path::to_path_buf))
            .collect()
    }
}
