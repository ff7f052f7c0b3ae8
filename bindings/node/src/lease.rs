//! `LayerLease`: a held layer. While it is held, no process deletes the layer's tree (`gc`,
//! `removeImage`, a forced pull), e.g. while a sandbox has it mounted.

use std::sync::{Arc, Mutex};

use microsandbox_image as core;
use napi_derive::napi;

/// A held layer (from `cache.holdLayer(diffId)`). Call `release()` when done; a lease that is
/// garbage-collected is released then.
#[napi]
pub struct LayerLease {
    diff_id: String,
    held: Mutex<Option<Arc<core::LayerLease>>>,
}

impl LayerLease {
    pub(crate) fn new(lease: Arc<core::LayerLease>) -> LayerLease {
        LayerLease {
            diff_id: lease.diff_id().to_string(),
            held: Mutex::new(Some(lease)),
        }
    }
}

#[napi]
impl LayerLease {
    /// The held layer's diff_id (`sha256:…`).
    #[napi(getter)]
    pub fn diff_id(&self) -> String {
        self.diff_id.clone()
    }

    /// Whether `release()` was called.
    #[napi(getter)]
    pub fn released(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Lets go of the layer (idempotent). It stays held while anything else holds it (a pull
    /// result, a layer stack, another lease, another process).
    #[napi]
    pub fn release(&self) {
        let lease = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(lease);
    }
}
