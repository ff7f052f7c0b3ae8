//! The one multi-thread tokio runtime that drives every pull, created on first use and kept
//! for the life of the process. Progress callbacks run on its threads.

use std::cell::Cell;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::status::{fail, msb_status};

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

thread_local! {
    /// Set on the runtime's worker and blocking threads.
    static LIBRARY_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// The runtime, started on first use.
pub(crate) fn get() -> Result<&'static Runtime, msb_status> {
    let runtime = RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .enable_all()
            .thread_name("msbimage")
            .on_thread_start(|| LIBRARY_THREAD.set(true))
            .build()
            .map_err(|e| e.to_string())
    });
    runtime.as_ref().map_err(|e| {
        fail(
            msb_status::Internal,
            format!("cannot start the msbimage runtime: {e}"),
        )
    })
}

/// Whether the current thread belongs to the runtime (a progress callback runs there). Such a
/// thread must never block waiting for a pull: the pull may need that very thread.
pub(crate) fn on_library_thread() -> bool {
    LIBRARY_THREAD.get()
}
