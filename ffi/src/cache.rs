//! `msb_cache`: a cache directory (layers, manifests, image records) shared safely by threads
//! and processes.

use std::ffi::c_char;

use microsandbox_image::{Error, GlobalCache};

use crate::arg;
use crate::status::{self, msb_status};

/// An open cache directory. Thread-safe. A registry keeps its own reference to the cache, so
/// the cache may be freed as soon as the registries that use it are built.
pub struct msb_cache {
    pub(crate) inner: GlobalCache,
}

/// Opens (creating it if needed) the cache directory `path` and stores a new handle in `*out`;
/// free it with `msb_cache_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_open(path: *const c_char, out: *mut *mut msb_cache) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let path = try_arg!(arg::string(path, "path"));
        match GlobalCache::new(path) {
            Ok(inner) => {
                *out = arg::into_handle(msb_cache { inner });
                msb_status::Ok
            }
            Err(e) => status::from_error(&Error::from(e)),
        }
    }
}

/// Frees a cache handle. NULL is a no-op. Registries built from it stay usable.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_free(cache: *mut msb_cache) {
    ffi_panic_boundary! {
        arg::free_handle(cache)
    }
}
