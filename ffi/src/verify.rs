//! Checking and repairing the cache, looking at a remote image, exporting a pulled image as a
//! plain directory, saving an image as an OCI layout or a docker archive, and opening a cache
//! with options. Reports leave as the core's JSON (the
//! shapes of `VerifyReport` and its parts are in `core/api-surface.json` under
//! `cacheReports`; `problemKinds` lists the kinds of a problem).

use std::ffi::c_char;
use std::future::Future;

use microsandbox_image::cache::CacheOptions;
use microsandbox_image::unpack::UnpackOptions;
use microsandbox_image::{Error, GlobalCache, ImageSource, Reference, VerifyReport};

use crate::arg;
use crate::cache::msb_cache;
use crate::platform::msb_platform;
use crate::pull_result::msb_pull_result;
use crate::registry::msb_registry;
use crate::runtime;
use crate::status::{self, fail, msb_status};
use crate::string;

/// Stores the JSON form of `value` in `*out`.
fn give_json<T: serde::Serialize>(out: &mut *mut c_char, value: &T) -> msb_status {
    match serde_json::to_string(value) {
        Ok(json) => string::give(out, &json),
        Err(e) => fail(
            msb_status::Internal,
            format!("cannot serialise a report: {e}"),
        ),
    }
}

/// Runs a registry call to its end on the library's runtime (never from a library thread).
fn block<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, msb_status> {
    if runtime::on_library_thread() {
        return Err(fail(
            msb_status::InvalidArgument,
            format!("{what} cannot run on a library thread (inside a progress callback)"),
        ));
    }
    Ok(runtime::get()?.block_on(fut))
}

/// Runs a registry call (as [`block`]) and stores its report's JSON form in `*out`.
fn block_json<T: serde::Serialize>(
    what: &str,
    out: &mut *mut c_char,
    fut: impl Future<Output = Result<T, Error>>,
) -> msb_status {
    match block(what, fut) {
        Ok(Ok(report)) => give_json(out, &report),
        Ok(Err(e)) => status::from_error(&e),
        Err(status) => status,
    }
}

fn parse_reference(s: &str) -> Result<Reference, msb_status> {
    s.parse::<Reference>()
        .map_err(|e| status::from_error(&Error::from(e)))
}

fn parse_source(s: &str) -> Result<ImageSource, msb_status> {
    ImageSource::parse_arg(s).map_err(|e| status::from_error(&e))
}

/// Opens (creating it if needed) the cache directory `path` with `options_json`, the core's
/// `CacheOptions` as JSON, every key optional: `{"group": "sandboxes"}` or `{"group": 1001}`
/// (share it read-only with a group), `{"readOnly": true}` (a reader that never writes: warm
/// pulls, inspect, listings and layer stacks work; anything that writes fails, naming what is
/// missing). NULL or `"{}"`: as
/// `msb_cache_open`. An unknown key or a bad value is `MSB_STATUS_INVALID_ARGUMENT`. Stores a
/// new handle in `*out`; free it with `msb_cache_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_open_with_options(
    path: *const c_char,
    options_json: *const c_char,
    out: *mut *mut msb_cache,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let path = try_arg!(arg::string(path, "path"));
        let options = try_arg!(arg::opt_json(options_json, "options_json", |json| {
            serde_json::from_str::<CacheOptions>(json)
                .map_err(|e| fail(msb_status::InvalidArgument, format!("cache options: {e}")))
        }));
        match GlobalCache::with_options(path, &options) {
            Ok(inner) => {
                *out = arg::into_handle(msb_cache { inner });
                msb_status::Ok
            }
            Err(e) => status::from_error(&Error::from(e)),
        }
    }
}

/// Checks the cache against what was published and stores the JSON `VerifyReport` (`images`:
/// `ImageCheck`s, `layers`: `LayerCheck`s with their `problems`, each `{kind, path, detail}`,
/// `records`) in `*out_json`; free it with `msb_string_free`. `references` is NULL (check
/// every image record, image and layer in the cache) or a NULL-terminated array of references
/// (the images pulled under those names and their layers; a name the cache holds no image for
/// is `MSB_STATUS_NOT_FOUND`). Blocks while it reads every byte of every layer it checks.
#[unsafe(no_mangle)]
pub extern "C" fn msb_cache_verify_json(
    cache: *const msb_cache,
    references: *const *const c_char,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let cache = try_arg!(arg::obj(cache, "cache"));
        let names = try_arg!(arg::opt_string_array(references, "references")).unwrap_or_default();
        let mut refs = Vec::with_capacity(names.len());
        for name in names {
            refs.push(try_arg!(parse_reference(name)));
        }
        match cache.inner.verify(&refs) {
            Ok(report) => give_json(out, &report),
            Err(e) => status::from_error(&Error::from(e)),
        }
    }
}

/// Repairs what a verify found: `report_json` is the JSON `VerifyReport` that
/// `msb_cache_verify_json` produced (for this registry's cache). Invalid image records are
/// removed and each damaged image is fetched again by its manifest digest, rebuilding only its
/// damaged layers. Stores the JSON `RepairReport` (`repairedImages`, `rebuiltLayers`,
/// `removedRecords`, `orphanedLayers`, `failed`: `{image, error}`) in `*out_json`; free it
/// with `msb_string_free`. JSON that is not a verify report is `MSB_STATUS_INVALID_ARGUMENT`.
/// Blocks until done; must not be called from a progress callback.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_repair_json(
    registry: *const msb_registry,
    report_json: *const c_char,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let registry = try_arg!(arg::obj(registry, "registry"));
        let json = try_arg!(arg::string(report_json, "report_json"));
        let report: VerifyReport = match serde_json::from_str(json) {
            Ok(r) => r,
            Err(e) => return fail(msb_status::InvalidArgument, format!("verify report: {e}")),
        };
        block_json("msb_registry_repair_json", out, registry.inner.repair(&report))
    }
}

/// What `reference` resolves to on its registry, without downloading a layer or writing to the
/// cache: stores the JSON `RemoteImage` (`reference`, `digest`, `indexDigest`, `platforms`,
/// `platform`, `manifestDigest`, `configDigest`, `config`, `layers`: `{digest, size,
/// mediaType, diffId}`, `downloadSize`) in `*out_json`; free it with `msb_string_free`.
/// `platform` NULL: the registry's platform. Blocks; must not be called from a progress
/// callback.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_inspect_json(
    registry: *const msb_registry,
    reference: *const c_char,
    platform: *const msb_platform,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let registry = try_arg!(arg::obj(registry, "registry"));
        let reference = try_arg!(parse_reference(try_arg!(arg::string(reference, "reference"))));
        let platform = arg::opt_obj(platform).map(|p| p.inner.clone());
        let fut = registry.inner.inspect(&reference, platform);
        block_json("msb_registry_inspect_json", out, fut)
    }
}

/// Writes the image `source` names (as `msb_registry_pull` takes it: a reference, an
/// `oci-layout:` or a `docker-archive:`) to `target`, `"oci-layout:DIR[:TAG]"` or
/// `"docker-archive:FILE[:NAME:TAG]"`, for `platform` (NULL: the registry's), to carry it where
/// no registry is; a registry image is fetched again (the cache keeps extracted layers, not
/// blobs). Stores the JSON `SaveReport` (`reference`, `target`, `manifestDigest`,
/// `configDigest`, `blobsWritten`, `bytesWritten`) in `*out_json`; free it with
/// `msb_string_free`. A target that is not a layout or an archive is
/// `MSB_STATUS_INVALID_ARGUMENT`. Blocks; must not be called from a progress callback.
#[unsafe(no_mangle)]
pub extern "C" fn msb_registry_save_json(
    registry: *const msb_registry,
    source: *const c_char,
    target: *const c_char,
    platform: *const msb_platform,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let registry = try_arg!(arg::obj(registry, "registry"));
        let source = try_arg!(parse_source(try_arg!(arg::string(source, "source"))));
        let target = try_arg!(parse_source(try_arg!(arg::string(target, "target"))));
        let platform = arg::opt_obj(platform).map(|p| p.inner.clone());
        let fut = registry.inner.save(&source, &target, platform);
        block_json("msb_registry_save_json", out, fut)
    }
}

/// Writes the pulled image's merged root filesystem under `dest` (missing or an empty
/// directory) as an ordinary tree. `rootless`: 1 writes owners as `user.rootlesscontainers`
/// xattrs and devices as empty files (as `umoci unpack --rootless`), 0 sets owners and makes
/// devices (root only), -1 is rootless unless running as root; any other value is
/// `MSB_STATUS_INVALID_ARGUMENT`. Stores the JSON `UnpackReport` (`entries`, `bytes`,
/// `rootless`, `skippedXattrs`) in `*out_json`; free it with `msb_string_free`. A destination
/// that is not empty is `MSB_STATUS_INVALID_ARGUMENT`, a file-system failure `MSB_STATUS_IO`.
/// Blocks.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_unpack_json(
    result: *const msb_pull_result,
    dest: *const c_char,
    rootless: i32,
    out_json: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out_json, "out_json"));
        let result = try_arg!(arg::obj(result, "result"));
        let dest = try_arg!(arg::string(dest, "dest"));
        let rootless = match rootless {
            -1 => None,
            0 => Some(false),
            1 => Some(true),
            n => return fail(msb_status::InvalidArgument, format!("rootless: {n} is not -1, 0 or 1")),
        };
        let opts = UnpackOptions { rootless };
        match result.inner.unpack(dest.as_ref(), &opts) {
            Ok(report) => give_json(out, &report),
            Err(e) => fail(e.kind().into(), &e),
        }
    }
}
