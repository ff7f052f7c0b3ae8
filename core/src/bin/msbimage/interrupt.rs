//! Ctrl-C (SIGINT) handling.
//!
//! The crate enables tokio without its `signal` feature, so this installs a minimal handler
//! itself: the first SIGINT sets a flag that [`interrupted`] notices; a second SIGINT (the user
//! insisting while the pull winds down) exits at once with status 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
mod sys {
    use std::ffi::c_int;
    use std::sync::atomic::Ordering;

    const SIGINT: c_int = 2;

    unsafe extern "C" {
        /// `signal(2)`; the previous handler is returned as a pointer-sized value.
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        /// `_exit(2)`: async-signal-safe.
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn on_sigint(_: c_int) {
        // Only async-signal-safe work here: an atomic swap and `_exit`.
        if super::INTERRUPTED.swap(true, Ordering::SeqCst) {
            // SAFETY: `_exit` is async-signal-safe and takes no pointers.
            unsafe { _exit(130) }
        }
    }

    pub(super) fn install() {
        // SAFETY: `on_sigint` only touches an atomic and calls `_exit`, both allowed in a
        // signal handler; SIGINT is a valid signal number on every Unix Linux target.
        unsafe {
            signal(SIGINT, on_sigint);
        }
    }
}

/// Start catching SIGINT (from now on Ctrl-C no longer kills the process by itself).
pub fn install() {
    #[cfg(unix)]
    sys::install();
}

/// Resolves once SIGINT has arrived (after [`install`]).
pub async fn interrupted() {
    while !INTERRUPTED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
