//! `Registry` and its three ways to pull, all on the core's `Registry::pull_source_with` (a
//! source is a reference, `oci-layout:…` or `docker-archive:…`) and one process-wide runtime:
//!
//! - `pull`: blocks the calling thread with the GIL released, waking every few milliseconds
//!   to let Python run signal handlers; a `KeyboardInterrupt` cancels the pull, waits for
//!   its workers to clean up, and is raised.
//! - `start`: runs the pull in the background and calls `done(result, error)` once (what
//!   `pull_async` awaits).
//! - `pull_iter`: an iterator over the events (the core's bounded queue: byte counts of a
//!   slow reader are merged, milestones kept), then the result.
//!
//! Progress callbacks run on library threads, one at a time, each with the GIL taken for that
//! event. An exception raised by one cancels the pull, no callback runs after it, and the
//! pull raises that exception.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use microsandbox_image as core;
use microsandbox_image::{ErrorKind, ProgressCallback, PullOptions, PullProgress, RegistryConfig};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::cache;
use crate::convert;
use crate::errors::{core_error, raise_msg};
use crate::layer_stack::LayerStack;
use crate::runtime;
use crate::types::{CancelToken, GlobalCache, Platform};

/// How long a blocked thread waits before it lets Python handle signals (Ctrl-C).
const SLICE: Duration = Duration::from_millis(10);

/// A registry client with its settings (the core's `RegistryConfig` as JSON).
#[pyclass(module = "msbimage._native", frozen)]
pub struct Registry {
    inner: core::Registry,
}

/// What a pull needs, parsed before it starts; shared with its progress callback.
struct Job {
    source: core::ImageSource,
    options: PullOptions,
    cancel: core::CancelToken,
    callback: Option<ProgressCallback>,
    /// The first exception a progress callback raised. Locked only while detached from
    /// Python (or once no callback can run), never while waiting for the GIL.
    failure: Arc<Mutex<Option<PyErr>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Job {
    fn new(
        py: Python<'_>,
        source: &str,
        options_json: &str,
        cancel: Option<&CancelToken>,
    ) -> PyResult<Job> {
        let source = core::ImageSource::parse_arg(source).map_err(|e| core_error(py, &e))?;
        let options: PullOptions = serde_json::from_str(options_json)
            .map_err(|e| raise_msg(py, ErrorKind::InvalidArgument, format!("pull options: {e}")))?;
        Ok(Job {
            source,
            options,
            cancel: cancel.map(|c| c.inner.clone()).unwrap_or_default(),
            callback: None,
            failure: Arc::default(),
        })
    }

    /// Calls `progress(event_data)` for every event, one call at a time, each with the GIL
    /// taken. The first exception is kept and cancels the pull; later events are dropped.
    fn with_progress(mut self, progress: Option<Py<PyAny>>) -> Job {
        let Some(progress) = progress else {
            return self;
        };
        let failure = self.failure.clone();
        let cancel = self.cancel.clone();
        self.callback = Some(Arc::new(move |event: &PullProgress| {
            // Taken before the GIL: a thread waiting here holds nothing Python needs.
            let mut failed = lock(&failure);
            if failed.is_some() {
                return;
            }
            let outcome = Python::attach(|py| {
                let event = convert::to_py(py, event)?;
                progress.call1(py, (event,)).map(drop)
            });
            if let Err(e) = outcome {
                *failed = Some(e);
                cancel.cancel();
            }
        }));
        self
    }

    /// The pull, to be spawned on the runtime.
    fn run(
        &self,
        registry: &core::Registry,
    ) -> impl Future<Output = core::Result<core::PullResult>> + Send + 'static {
        let registry = registry.clone();
        let (source, options) = (self.source.clone(), self.options.clone());
        let (callback, cancel) = (self.callback.clone(), self.cancel.clone());
        async move {
            registry
                .pull_source_with(&source, &options, callback, &cancel)
                .await
        }
    }

    /// Runs the pull on the runtime; the receiver gets its outcome.
    fn spawn(&self, registry: &core::Registry) -> Receiver<core::Result<core::PullResult>> {
        let (tx, rx) = mpsc::channel();
        let pull = self.run(registry);
        runtime::get().spawn(async move {
            let _ = tx.send(pull.await);
        });
        rx
    }

    /// The pull's outcome as Python sees it: a callback's exception wins over the error it
    /// caused (CancelledError).
    fn finish(
        &self,
        py: Python<'_>,
        outcome: core::Result<core::PullResult>,
    ) -> PyResult<PullResult> {
        let failure = py.detach(|| lock(&self.failure).take());
        if let Some(e) = failure {
            return Err(e);
        }
        outcome
            .map(|inner| PullResult { inner })
            .map_err(|e| core_error(py, &e))
    }
}

/// Waits for `rx` with the GIL released, in short slices between which Python runs its
/// signal handlers. When one raises (Ctrl-C: KeyboardInterrupt), the pull is cancelled, its
/// end awaited (its workers remove their staging directories first), and the exception
/// returned.
fn wait<T: Send>(py: Python<'_>, mut rx: Receiver<T>, cancel: &core::CancelToken) -> PyResult<T> {
    let mut interrupted: Option<PyErr> = None;
    loop {
        let (got, back) = py.detach(move || (rx.recv_timeout(SLICE), rx));
        rx = back;
        match got {
            Ok(value) => return interrupted.map_or(Ok(value), Err),
            Err(RecvTimeoutError::Timeout) => {
                if interrupted.is_none()
                    && let Err(e) = py.check_signals()
                {
                    cancel.cancel();
                    interrupted = Some(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(raise_msg(
                    py,
                    ErrorKind::Internal,
                    "the pull task ended without a result",
                ));
            }
        }
    }
}

#[pymethods]
impl Registry {
    #[new]
    fn new(
        py: Python<'_>,
        platform: &Platform,
        cache: &GlobalCache,
        config_json: &str,
    ) -> PyResult<Self> {
        let config = RegistryConfig::from_json(config_json).map_err(|e| {
            raise_msg(
                py,
                ErrorKind::InvalidArgument,
                format!("registry settings: {e}"),
            )
        })?;
        core::Registry::from_config(platform.inner.clone(), cache.inner.clone(), config)
            .map(|inner| Registry { inner })
            .map_err(|e| core_error(py, &e))
    }

    /// The default target platform.
    #[getter]
    fn platform(&self) -> Platform {
        Platform {
            inner: self.inner.platform().clone(),
        }
    }

    /// The cache pulled into.
    #[getter]
    fn cache(&self) -> GlobalCache {
        GlobalCache {
            inner: self.inner.cache().clone(),
        }
    }

    /// Pulls with the GIL released; Ctrl-C cancels (see the module docs).
    #[pyo3(signature = (source, options_json, progress = None, cancel = None))]
    fn pull(
        &self,
        py: Python<'_>,
        source: &str,
        options_json: &str,
        progress: Option<Py<PyAny>>,
        cancel: Option<&CancelToken>,
    ) -> PyResult<PullResult> {
        let job = Job::new(py, source, options_json, cancel)?.with_progress(progress);
        let rx = job.spawn(&self.inner);
        let outcome = wait(py, rx, &job.cancel)?;
        job.finish(py, outcome)
    }

    /// Starts a pull and returns at once; `done(result, None)` or `done(None, exception)` is
    /// called on a library thread when it ends.
    fn start(
        &self,
        py: Python<'_>,
        source: &str,
        options_json: &str,
        progress: Option<Py<PyAny>>,
        cancel: &CancelToken,
        done: Py<PyAny>,
    ) -> PyResult<()> {
        let job = Job::new(py, source, options_json, Some(cancel))?.with_progress(progress);
        let pull = runtime::get().spawn(job.run(&self.inner));
        runtime::get().spawn(async move {
            // A panicking pull still settles the awaiting future.
            let outcome = pull.await.unwrap_or_else(|e| {
                Err(core::Error::Internal(format!("the pull task failed: {e}")))
            });
            // Taking the GIL may wait: not on a runtime worker.
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let (result, error) = match job.finish(py, outcome) {
                        Ok(result) => (Some(result), None),
                        Err(e) => (None, Some(e.into_value(py))),
                    };
                    if let Err(e) = done.call1(py, (result, error)) {
                        e.write_unraisable(py, None);
                    }
                })
            });
        });
        Ok(())
    }

    /// Starts a pull whose events are read by iterating over the returned object.
    #[pyo3(signature = (source, options_json, cancel = None))]
    fn pull_iter(
        &self,
        py: Python<'_>,
        source: &str,
        options_json: &str,
        cancel: Option<&CancelToken>,
    ) -> PyResult<PullIter> {
        let mut job = Job::new(py, source, options_json, cancel)?;
        let (events, sender) = core::progress_channel();
        job.callback = Some(Arc::new(move |event: &PullProgress| {
            sender.send(event.clone())
        }));
        let rx = job.spawn(&self.inner);
        // The sender lives in the callback, which the pull drops when it ends: the event
        // stream closes then.
        job.callback = None;
        Ok(PullIter {
            events: Some(events),
            outcome: Some(Mutex::new(rx)),
            result: None,
            job,
        })
    }

    /// What `reference` resolves to on its registry (``RemoteImage``), without downloading a
    /// layer; blocks with the GIL released.
    #[pyo3(signature = (reference, platform = None))]
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        reference: &Bound<'py, PyAny>,
        platform: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let reference = cache::reference(py, reference)?;
        let platform = cache::platform(py, platform)?;
        let registry = self.inner.clone();
        let image = py.detach(move || {
            runtime::get().block_on(async { registry.inspect(&reference, platform).await })
        });
        cache::report(py, "RemoteImage", image)
    }

    /// Writes the image `source` names to `target` (`oci-layout:DIR[:TAG]` or
    /// `docker-archive:FILE[:NAME:TAG]`) for `platform` (``SaveReport``); blocks with the GIL
    /// released.
    #[pyo3(signature = (source, target, platform = None))]
    fn save<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        target: &str,
        platform: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let source = core::ImageSource::parse_arg(source).map_err(|e| core_error(py, &e))?;
        let target = core::ImageSource::parse_arg(target).map_err(|e| core_error(py, &e))?;
        let platform = cache::platform(py, platform)?;
        let registry = self.inner.clone();
        let saved = py.detach(move || {
            runtime::get().block_on(async { registry.save(&source, &target, platform).await })
        });
        cache::report(py, "SaveReport", saved)
    }

    /// Repairs what `GlobalCache.verify` found (``RepairReport``), given as the core's JSON
    /// form of a ``VerifyReport``; blocks with the GIL released.
    fn repair<'py>(&self, py: Python<'py>, report_json: &str) -> PyResult<Bound<'py, PyAny>> {
        let report: core::cache::VerifyReport = serde_json::from_str(report_json).map_err(|e| {
            raise_msg(
                py,
                ErrorKind::InvalidArgument,
                format!("verify report: {e}"),
            )
        })?;
        let registry = self.inner.clone();
        let repaired =
            py.detach(move || runtime::get().block_on(async { registry.repair(&report).await }));
        cache::report(py, "RepairReport", repaired)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The events of a running pull; when they end, the pull's result or error.
#[pyclass(module = "msbimage._native")]
pub struct PullIter {
    events: Option<core::PullProgressHandle>,
    /// In a mutex only to make the class `Sync` (a receiver is not).
    outcome: Option<Mutex<Receiver<core::Result<core::PullResult>>>>,
    result: Option<Py<PullResult>>,
    job: Job,
}

#[pymethods]
impl PullIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next event's data; at the end, raises the pull's error or stops.
    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut interrupted: Option<PyErr> = None;
        while let Some(events) = self.events.as_mut() {
            // The timer is made inside the runtime (in the async block).
            let recv = async { tokio::time::timeout(SLICE, events.recv()).await };
            let got = py.detach(|| runtime::get().block_on(recv));
            match got {
                Ok(Some(event)) if interrupted.is_none() => {
                    return convert::to_py(py, &event).map(Some);
                }
                Ok(Some(_)) => {}
                Ok(None) => self.events = None,
                Err(_) => {
                    if interrupted.is_none()
                        && let Err(e) = py.check_signals()
                    {
                        self.job.cancel.cancel();
                        interrupted = Some(e);
                    }
                }
            }
        }
        if let Some(rx) = self.outcome.take() {
            let rx = rx.into_inner().unwrap_or_else(|p| p.into_inner());
            let outcome = wait(py, rx, &self.job.cancel)?;
            let result = self.job.finish(py, outcome)?;
            self.result = Some(Py::new(py, result)?);
        }
        match interrupted {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// The pull's result, once the iteration has ended.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PullResult>> {
        self.result
            .as_ref()
            .map(|r| r.clone_ref(py))
            .ok_or_else(|| PyRuntimeError::new_err("the pull has not finished: iterate first"))
    }

    /// Cancels the pull; the iteration then ends with CancelledError.
    fn cancel(&self) {
        self.job.cancel.cancel();
    }
}

impl Drop for PullIter {
    fn drop(&mut self) {
        // Abandoned before the end: stop the pull (it cleans up in the background).
        if self.outcome.is_some() {
            self.job.cancel.cancel();
        }
    }
}

/// What a pull produced (the core's `PullResult`).
#[pyclass(module = "msbimage._native", frozen)]
pub struct PullResult {
    pub inner: core::PullResult,
}

#[pymethods]
impl PullResult {
    /// The result as the core's serde data (a dict).
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_py(py, &self.inner)
    }

    /// The JSON document `msbimage pull --json` prints.
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Writes the merged root filesystem under `dest` (missing or an empty directory) as an
    /// ordinary tree (``UnpackReport``); `rootless` None: rootless unless running as root.
    #[pyo3(signature = (dest, rootless = None))]
    fn unpack<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        rootless: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let result = self.inner.clone();
        let opts = core::unpack::UnpackOptions { rootless };
        let report = py.detach(move || result.unpack(&dest, &opts));
        cache::report(py, "UnpackReport", report)
    }

    /// The merged view of the image's layers.
    fn layer_stack(&self, py: Python<'_>) -> PyResult<LayerStack> {
        let trees = self.inner.layer_trees();
        let stack = LayerStack::open_with_trees(py, &self.inner.layer_indexes, trees)?;
        // The stack keeps the layers from being collected after the result is gone.
        Ok(stack.holding(self.inner.leases().to_vec()))
    }
}
