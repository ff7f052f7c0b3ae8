//! `msb_layer_lease`: a held layer. While a lease is alive, no process deletes the layer's
//! tree (`gc`, `rm`, a forced pull), e.g. while a sandbox has it mounted.

use std::ffi::c_char;
use std::sync::Arc;

use microsandbox_image::{Digest, Error, LayerLease};

use crate::arg;
use crate::cache::msb_cache;
use crate::status::{self, fail, msb_status};
use crate::string;

/// A lease on one layer of a cache. Thread-safe. Free it with `msb_layer_lease_free` to let
/// gc collect the layer once nothing else holds it or refers to it.
pub struct msb_layer_lease {
    inner: Arc<LayerLease>,
}

/// Holds the layer `diff_id` (`"sha256:<64 hex>"`, the uncompressed digest a pull result or
/// `msb_cache_layers_json` names) and stores the lease in `*out`. Holding a layer that is not
/// in the cache is allowed: it then keeps one published later from being collected. Blocks
/// for the few milliseconds a gc may be deleting that very layer. A `diff_id` that is not a
/// digest is `MSB_STATUS_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_hold_layer(
    cache: *const msb_cache,
    diff_id: *const c_char,
    out: *mut *mut msb_layer_lease,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let diff_id = try_arg!(arg::string(diff_id, "diff_id"));
        let diff_id: Digest = match diff_id.parse() {
            Ok(d) => d,
            Err(e) => return fail(msb_status::InvalidArgument, format!("diff_id: {e}")),
        };
        match cache.inner.hold_layer(&diff_id) {
            Ok(inner) => {
                *out = arg::into_handle(msb_layer_lease { inner });
                msb_status::Ok
            }
            Err(e) => status::from_error(&Error::from(e)),
        }
    }
}

/// The held layer's diff_id (`"sha256:…"`), stored in `*out`; free it with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_lease_diff_id(
    lease: *const msb_layer_lease,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let lease = try_arg!(arg::obj(lease, "lease"));
        string::give(out, &lease.inner.diff_id().to_string())
    }
}

/// Releases a lease. NULL is a no-op. The layer stays held while other leases, pull results
/// or layer stacks of this process, or anyone in another process, hold it.
#[unsafe(no_mangle)]
pub extern "C" fn msb_layer_lease_free(lease: *mut msb_layer_lease) {
    ffi_panic_boundary! {
        arg::free_handle(lease)
    }
}
