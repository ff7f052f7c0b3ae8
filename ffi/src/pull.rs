//! Pulls: blocking `msb_registry_pull`, and `msb_registry_pull_start` → `msb_pull_task` with
//! `wait`, `cancel` and `free`. Every pull runs as a task on the library's runtime; the
//! blocking form starts one and waits for it.
//!
//! A task's outcome is written once, after its progress gate is closed, so a caller that saw
//! the pull end never gets another callback. Cancelling trips the pull's `CancelToken`: the core
//! stops downloading, waits for its extraction workers to remove their staging directories,
//! and the outcome becomes `MSB_STATUS_CANCELLED` (so the cache holds no debris of a cancelled
//! pull once `wait` has returned).

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use microsandbox_image::{
    CancelToken, Error, ImageSource, ProgressCallback, PullProgress, PullResult,
};

use crate::arg;
use crate::pull_options::msb_pull_options;
use crate::pull_result::msb_pull_result;
use crate::registry::msb_registry;
use crate::runtime;
use crate::status::{self, fail, msb_status};
use crate::userdata::{ProgressGate, msb_progress_fn};

type Outcome = Result<PullResult, (msb_status, String)>;

#[derive(Default)]
struct Shared {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// A pull running in the background. Thread-safe: `wait` and `cancel` may be called from any
/// thread, also at the same time. Free it with `msb_pull_task_free` (which cancels it if it
/// is still running).
pub struct msb_pull_task {
    shared: Arc<Shared>,
    gate: Arc<ProgressGate>,
    cancel: CancelToken,
}

/// Owned by the running pull: records its outcome exactly once, also when the pull is
/// aborted (dropped without finishing) or panics.
struct Finish {
    shared: Arc<Shared>,
    gate: Arc<ProgressGate>,
    reference: String,
    recorded: bool,
}

impl Finish {
    fn record(&mut self, outcome: Outcome) {
        // Callbacks stop before anyone can see the outcome.
        self.gate.close();
        let mut slot = self
            .shared
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Some(outcome);
        self.recorded = true;
        self.shared.done.notify_all();
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let outcome = if std::thread::panicking() {
            (
                msb_status::Panic,
                format!("{}: the pull panicked (a bug)", self.reference),
            )
        } else {
            let cancelled = Error::Cancelled {
                reference: self.reference.clone(),
            };
            (cancelled.kind().into(), cancelled.to_string())
        };
        self.record(Err(outcome));
    }
}

fn start(
    registry: &msb_registry,
    reference: &str,
    options: &msb_pull_options,
    progress: msb_progress_fn,
    user_data: *mut c_void,
) -> Result<msb_pull_task, msb_status> {
    let source = ImageSource::parse_arg(reference).map_err(|e| status::from_error(&e))?;
    let runtime = runtime::get()?;
    let shared = Arc::new(Shared::default());
    let gate = Arc::new(ProgressGate::new(progress, user_data));
    let mut finish = Finish {
        shared: shared.clone(),
        gate: gate.clone(),
        reference: source.to_string(),
        recorded: false,
    };
    let callback: ProgressCallback = {
        let gate = gate.clone();
        Arc::new(move |event: &PullProgress| gate.emit(event))
    };
    let (registry, options) = (registry.inner.clone(), options.inner.clone());
    let cancel = CancelToken::new();
    let token = cancel.clone();
    runtime.spawn(async move {
        let result = registry
            .pull_source_with(&source, &options, Some(callback), &token)
            .await;
        finish.record(result.map_err(|e| (e.kind().into(), e.to_string())));
    });
    Ok(msb_pull_task {
        shared,
        gate,
        cancel,
    })
}

impl msb_pull_task {
    /// The outcome, waiting up to `timeout_ms` (negative: forever) for it.
    fn wait(&self, timeout_ms: i64) -> Result<PullResult, msb_status> {
        if timeout_ms != 0 && runtime::on_library_thread() {
            return Err(fail(
                msb_status::InvalidArgument,
                "cannot wait for a pull on a library thread (inside a progress callback)",
            ));
        }
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let mut slot = self
            .shared
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            match &*slot {
                Some(Ok(result)) => return Ok(result.clone()),
                Some(Err((status, message))) => return Err(fail(*status, message)),
                None => {}
            }
            slot = match deadline {
                None => self
                    .shared
                    .done
                    .wait(slot)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(fail(msb_status::Timeout, "the pull is still running"));
                    }
                    let waited = self.shared.done.wait_timeout(slot, left);
                    waited.unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for msb_pull_task {
    fn drop(&mut self) {
        // After free, user_data may be gone: no callback may run or start.
        self.gate.close();
        self.cancel.cancel();
        // Drop the stored result here and now, not whenever the runtime lets go of the shared
        // state: it holds the layers' leases, and a caller that freed its results expects
        // them released when this returns (a forced pull's replaced trees are deleted then).
        let stored = self
            .shared
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(stored);
    }
}

fn give_result(
    out: &mut *mut msb_pull_result,
    result: Result<PullResult, msb_status>,
) -> msb_status {
    match result {
        Ok(inner) => {
            *out = arg::into_handle(msb_pull_result { inner });
            msb_status::Ok
        }
        Err(status) => status,
    }
}

/// Pulls `reference` (e.g. `"docker.io/library/alpine:3.20"`), or an offline image:
/// `"oci-layout:DIR[:TAG|@DIGEST]"` (or `oci:`) or `"docker-archive:FILE[:NAME:TAG]"`, read
/// into the cache under its name through the same verification, and waits for the outcome. On
/// success stores a new result in `*out` (free it with `msb_pull_result_free`); on failure
/// `*out` is NULL and `msb_last_error_message()` says why.
///
/// `progress` (may be NULL) is called with every event on library threads, never after this
/// function returns; `user_data` is passed to it untouched. Must not be called from a progress
/// callback. Any number of threads may pull at once, through one registry or several.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_pull(
    registry: *const msb_registry,
    reference: *const c_char,
    options: *const msb_pull_options,
    progress: msb_progress_fn,
    user_data: *mut c_void,
    out: *mut *mut msb_pull_result,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let registry = try_arg!(arg::obj(registry, "registry"));
        let reference = try_arg!(arg::string(reference, "reference"));
        let options = try_arg!(arg::obj(options, "options"));
        if runtime::on_library_thread() {
            return fail(
                msb_status::InvalidArgument,
                "msb_registry_pull cannot run on a library thread (inside a progress callback)",
            );
        }
        let task = try_arg!(start(registry, reference, options, progress, user_data));
        give_result(out, task.wait(-1))
    }
}

/// Starts pulling `reference` (as `msb_registry_pull` takes it) in the background and stores the
/// task in `*out` (free it with `msb_pull_task_free`). Errors found before the pull starts
/// (NULL, bad UTF-8, a reference or source that does not parse) are returned here; all others
/// by `msb_pull_task_wait`.
///
/// `progress` (may be NULL) is called with every event on library threads, until the task
/// ends or is freed; `user_data` must stay valid until then.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_pull_start(
    registry: *const msb_registry,
    reference: *const c_char,
    options: *const msb_pull_options,
    progress: msb_progress_fn,
    user_data: *mut c_void,
    out: *mut *mut msb_pull_task,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let registry = try_arg!(arg::obj(registry, "registry"));
        let reference = try_arg!(arg::string(reference, "reference"));
        let options = try_arg!(arg::obj(options, "options"));
        let task = try_arg!(start(registry, reference, options, progress, user_data));
        *out = arg::into_handle(task);
        msb_status::Ok
    }
}

/// Waits up to `timeout_ms` milliseconds (0: just check; negative: no limit) for the pull to
/// end. Returns `MSB_STATUS_TIMEOUT` while it runs; otherwise the pull's status, with a new
/// result in `*out` on success (free it with `msb_pull_result_free`). May be called again
/// after the pull ended: it returns the same outcome (a new result copy each time). When it
/// has returned anything but `MSB_STATUS_TIMEOUT`, the progress callback will not be called
/// again. Must not wait (timeout ≠ 0) inside a progress callback.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_task_wait(
    task: *const msb_pull_task,
    timeout_ms: i64,
    out: *mut *mut msb_pull_result,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let task = try_arg!(arg::obj(task, "task"));
        give_result(out, task.wait(timeout_ms))
    }
}

/// Asks the pull to stop and returns at once; `msb_pull_task_wait` then returns
/// `MSB_STATUS_CANCELLED` (or the outcome, if the pull had already ended). Safe from any
/// thread, including the progress callback; cancelling twice is harmless. The cache stays
/// consistent: a layer is either published whole or not at all.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_task_cancel(task: *const msb_pull_task) -> msb_status {
    ffi_panic_boundary! {
        let task = try_arg!(arg::obj(task, "task"));
        task.cancel();
        msb_status::Ok
    }
}

/// Frees a task, cancelling the pull if it still runs. When it returns, the progress callback
/// is not running and will not be called again, so `user_data` may be released. NULL is a
/// no-op. Must not be called while another thread waits on the same task.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_task_free(task: *mut msb_pull_task) {
    ffi_panic_boundary! {
        arg::free_handle(task)
    }
}
