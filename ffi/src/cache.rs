//! `msb_cache`: a cache directory (layers, manifests, image records) shared safely by threads
//! and processes, and its life cycle: listing images and layers, disk usage, removing an
//! image, garbage collection. Reports leave as the core's JSON (the shapes are in
//! `core/api-surface.json` under `cacheReports`).

use std::ffi::c_char;

use microsandbox_image::{CacheError, Error, GcPolicy, GlobalCache, Reference};

use crate::arg;
use crate::platform::msb_platform;
use crate::status::{self, fail, msb_status};
use crate::string;

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

/// Stores the JSON form of a cache call's report in `*out`, or the call's error status.
fn give_report<T: serde::Serialize>(
    out: &mut *mut c_char,
    report: Result<T, CacheError>,
) -> msb_status {
    let report = match report {
        Ok(report) => report,
        Err(e) => return status::from_error(&Error::from(e)),
    };
    match serde_json::to_string(&report) {
        Ok(json) => string::give(out, &json),
        Err(e) => fail(
            msb_status::Internal,
            format!("cannot serialise a report: {e}"),
        ),
    }
}

/// The images in the cache as a JSON array of `CachedImage` objects (`names`, `platform`,
/// `manifestDigest`, `configDigest`, `layers`, `complete`, `lastUsed`, `pulledAt`), stored in
/// `*out_json`; free it with `msb_string_free`. Blocks while it reads the records.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_images_json(
    cache: *const msb_cache,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        give_report(out, cache.inner.images())
    }
}

/// The layers in the cache as a JSON array of `CachedLayer` objects (`diffId`, `bytes`,
/// `images`: the names of the images that hold it, empty when none does), stored in
/// `*out_json`; free it with `msb_string_free`. Blocks while it walks every layer tree.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_layers_json(
    cache: *const msb_cache,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        give_report(out, cache.inner.layers())
    }
}

/// Where the cache's bytes are, as one JSON `DiskUsage` object: `images` (each a
/// `CachedImage` with `exclusiveBytes` and `sharedBytes`), `layers`, `layerBytes`,
/// `unreferencedBytes`, `tmpBytes`; stored in `*out_json`, free it with `msb_string_free`.
/// Blocks while it walks every layer tree.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_disk_usage_json(
    cache: *const msb_cache,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        give_report(out, cache.inner.disk_usage())
    }
}

/// Removes the image `reference` (for `platform`, or for every platform it was pulled for
/// when `platform` is NULL) and the layers only it held, unless someone holds them (a pull
/// result, a layer stack, a `msb_layer_lease`, in any process: those are listed in
/// `inUseLayers` and left for a later gc). Stores the JSON `GcReport` (`dryRun`,
/// `removedImages`, `removedLayers`, `inUseLayers`, `removedManifests`, `removedFlatImages`,
/// `removedDebris`, `freedBytes`) in `*out_json`; free it with `msb_string_free`. A malformed reference is
/// `MSB_STATUS_INVALID_REFERENCE`; an image the cache does not hold, `MSB_STATUS_NOT_FOUND`.
/// Blocks while another gc or rm runs.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_remove_image_json(
    cache: *const msb_cache,
    reference: *const c_char,
    platform: *const msb_platform,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let reference = try_arg!(arg::string(reference, "reference"));
        let platform = arg::opt_obj(platform).map(|p| &p.inner);
        let reference: Reference = match reference.parse() {
            Ok(r) => r,
            Err(e) => return status::from_error(&Error::from(e)),
        };
        give_report(out, cache.inner.remove_image(&reference, platform))
    }
}

/// Collects garbage: debris of dead pulls, layers, manifests and configs no image refers to,
/// and the images `policy_json` evicts. `policy_json` is the core's `GcPolicy` as JSON, every
/// key optional: `{"dryRun": true}` (report, remove nothing), `"maxSize": BYTES` (evict least
/// recently used images until the layers fit), `"keepRecent": SECONDS` (never evict images
/// used more recently; alone, evict every other image); NULL or `"{}"` collects only what
/// nothing refers to. An unknown key or a bad value is `MSB_STATUS_INVALID_ARGUMENT`. Layers
/// someone holds are left and listed in `inUseLayers`. Stores the JSON `GcReport` in
/// `*out_json`; free it with `msb_string_free`. Safe while other threads and processes pull.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_gc_json(
    cache: *const msb_cache,
    policy_json: *const c_char,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let policy = try_arg!(arg::opt_json(policy_json, "policy_json", |json| {
            GcPolicy::from_json(json).map_err(|e| status::from_error(&e))
        }));
        give_report(out, cache.inner.gc(&policy))
    }
}
