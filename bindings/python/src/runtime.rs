//! The one tokio runtime that drives every pull of the process, started on first use.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The process's runtime (multi-threaded; its threads are named `msbimage`).
pub fn get() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("msbimage")
            .build()
            .expect("cannot start the msbimage runtime")
    })
}
