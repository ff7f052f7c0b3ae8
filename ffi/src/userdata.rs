//! The progress callback and its `user_data`, in one place: `msb_progress_fn`, and the gate
//! that makes the promise in the header true — once a pull has finished, been cancelled or
//! freed, the callback is never called again, and calls of one pull never overlap.

use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use microsandbox_image::PullProgress;

use crate::progress::{msb_progress_event, with_c_event};

/// Receives the progress events of a pull.
///
/// Called on a library thread (never the thread that started the pull), one call at a time
/// for one pull, in order for milestones; it must return quickly, as the pull waits for it.
/// `event` and the strings in it are borrowed and valid only during the call. The callback
/// may call `msb_pull_task_cancel`; it must not wait for a pull (`msb_registry_pull` and
/// `msb_pull_task_wait` with a timeout fail with `MSB_STATUS_INVALID_ARGUMENT` there).
pub type msb_progress_fn =
    Option<unsafe extern "C" fn(event: *const msb_progress_event<'_>, user_data: *mut c_void)>;

/// `user_data` as C gave it: opaque to us, handed back to the callback untouched.
struct UserData(*mut c_void);

// SAFETY: the caller promises (header) that user_data may be used from library threads; we
// never dereference it.
unsafe impl Send for UserData {}
// SAFETY: as above; the gate's mutex keeps calls from overlapping.
unsafe impl Sync for UserData {}

/// Delivers events to the callback while open; `close` shuts it for good.
pub(crate) struct ProgressGate {
    callback: msb_progress_fn,
    user_data: UserData,
    open: AtomicBool,
    calling: Mutex<()>,
}

thread_local! {
    /// The gate whose callback this thread is running, if any.
    static IN_CALLBACK: Cell<*const ProgressGate> = const { Cell::new(std::ptr::null()) };
}

impl ProgressGate {
    /// A gate for `callback` (NULL: events are dropped) and its `user_data`.
    pub(crate) fn new(callback: msb_progress_fn, user_data: *mut c_void) -> ProgressGate {
        ProgressGate {
            callback,
            user_data: UserData(user_data),
            open: AtomicBool::new(callback.is_some()),
            calling: Mutex::new(()),
        }
    }

    /// Calls the callback with `event`, unless the gate is closed.
    pub(crate) fn emit(&self, event: &PullProgress) {
        let Some(callback) = self.callback else {
            return;
        };
        let _one_at_a_time = self.calling.lock().unwrap_or_else(|p| p.into_inner());
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        with_c_event(event, |c_event| {
            let outer = IN_CALLBACK.replace(self);
            // SAFETY: a C function pointer the caller registered with this user_data.
            unsafe { callback(c_event, self.user_data.0) };
            IN_CALLBACK.set(outer);
        });
    }

    /// Closes the gate: when this returns, no call is running (except the caller's own, when
    /// the callback itself closes its gate) and none will start.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Release);
        let reentrant = IN_CALLBACK.get() == std::ptr::from_ref(self);
        if !reentrant {
            drop(self.calling.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    unsafe extern "C" fn count(_: *const msb_progress_event<'_>, user_data: *mut c_void) {
        let n = unsafe { &*(user_data as *const AtomicUsize) };
        n.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_closed_gate_calls_nobody() {
        let n = Arc::new(AtomicUsize::new(0));
        let gate = ProgressGate::new(Some(count), Arc::as_ptr(&n) as *mut c_void);
        let event = PullProgress::LayerIndexStarted { layer_index: 0 };
        gate.emit(&event);
        gate.close();
        gate.emit(&event);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
