//! `msb_pull_result`: what a pull produced (layer paths, digests, the image config). Every
//! string accessor hands out a new copy: free it with `msb_string_free`.

use std::ffi::c_char;

use microsandbox_image::PullResult;

use crate::arg;
use crate::status::{fail, msb_status};
use crate::string;

/// The outcome of a successful pull. Immutable; may be read from several threads at once.
pub struct msb_pull_result {
    pub(crate) inner: PullResult,
}

/// Stores a copy of the string `value` picks from the result (NULL when it picks none).
fn give_string(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
    value: impl FnOnce(&PullResult) -> Option<String>,
) -> msb_status {
    let out = try_arg!(arg::out_ptr(out, "out"));
    let result = try_arg!(arg::obj(result, "result"));
    string::give_opt(out, value(&result.inner).as_deref())
}

/// Stores the length of the list `list` picks from the result.
fn give_count(
    result: *const msb_pull_result,
    out: *mut usize,
    list: impl FnOnce(&PullResult) -> &[String],
) -> msb_status {
    let out = try_arg!(arg::out(out, "out"));
    let result = try_arg!(arg::obj(result, "result"));
    *out = list(&result.inner).len();
    msb_status::Ok
}

/// Stores a copy of item `index` of the list `list` picks from the result.
fn give_item(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
    what: &str,
    list: impl FnOnce(&PullResult) -> &[String],
) -> msb_status {
    let out = try_arg!(arg::out_ptr(out, "out"));
    let result = try_arg!(arg::obj(result, "result"));
    let list = list(&result.inner);
    match list.get(index) {
        Some(item) => string::give(out, item),
        None => fail(
            msb_status::InvalidArgument,
            format!(
                "{what} index {index} is out of range (there are {})",
                list.len()
            ),
        ),
    }
}

/// The number of layers (the length of the layer lists, bottom to top).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_layer_count(
    result: *const msb_pull_result,
    out: *mut usize,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let result = try_arg!(arg::obj(result, "result"));
        *out = result.inner.layers.len();
        msb_status::Ok
    }
}

/// Stores a copy of path `index` of the list `paths` picks from the result.
fn give_layer_path(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
    paths: impl FnOnce(&PullResult) -> &[std::path::PathBuf],
) -> msb_status {
    let out = try_arg!(arg::out_ptr(out, "out"));
    let result = try_arg!(arg::obj(result, "result"));
    let layers = paths(&result.inner);
    let Some(path) = layers.get(index) else {
        return fail(
            msb_status::InvalidArgument,
            format!(
                "layer index {index} is out of range (there are {})",
                layers.len()
            ),
        );
    };
    match path.to_str() {
        Some(path) => string::give(out, path),
        None => fail(
            msb_status::Io,
            format!("layer path {} is not valid UTF-8", path.display()),
        ),
    }
}

/// The extracted tree of layer `index` (0 = bottom): `<cache>/layers/sha256/<diff_id>/fs`.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_layer_path(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_layer_path(result, index, out, |r| &r.layers)
    }
}

/// The sidecar index file of layer `index` (0 = bottom), as `msb_layer_stack_open_paths`
/// takes it. The file is absent only if the layer was pulled with the index turned off.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_layer_index_path(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_layer_path(result, index, out, |r| &r.layer_indexes)
    }
}

/// The EROFS image of layer `index` (0 = bottom), `…/layers/sha256/<diff_id>/layer.erofs`.
/// The file is there when this pull or an earlier one of the layer had `"erofs-layers"` among
/// its `outputs` (`msb_pull_options_set_json`). Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_layer_image_path(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_layer_path(result, index, out, |r| &r.layer_images)
    }
}

/// The flat EROFS image of the whole image, `…/flat/sha256/<manifest hex>.erofs`, or NULL in
/// `*out` when the pull did not have `"erofs-flat"` among its `outputs`
/// (`msb_pull_options_set_json`). Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_flat_image_path(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let result = try_arg!(arg::obj(result, "result"));
        match result.inner.flat_image.as_deref().map(|p| (p, p.to_str())) {
            None => string::give_opt(out, None),
            Some((_, Some(path))) => string::give(out, path),
            Some((path, None)) => fail(
                msb_status::InvalidArgument,
                format!("flat image path {} is not valid UTF-8", path.display()),
            ),
        }
    }
}

/// The uncompressed digest of layer `index` (0 = bottom), `"sha256:…"`. Free `*out` with
/// `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_layer_diff_id(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let result = try_arg!(arg::obj(result, "result"));
        let ids = &result.inner.layer_diff_ids;
        match ids.get(index) {
            Some(id) => string::give(out, &id.to_string()),
            None => fail(
                msb_status::InvalidArgument,
                format!("layer index {index} is out of range (there are {})", ids.len()),
            ),
        }
    }
}

/// Whether the answer came from the cache without contacting the registry.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_cached(
    result: *const msb_pull_result,
    out: *mut bool,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out(out, "out"));
        let result = try_arg!(arg::obj(result, "result"));
        *out = result.inner.cached;
        msb_status::Ok
    }
}

/// The normalised reference pulled (`"docker.io/library/alpine:3.20"`).
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_reference(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| Some(r.reference.to_string()))
    }
}

/// The platform pulled for (`"linux/amd64"`).
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_platform(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| Some(r.platform.to_string()))
    }
}

/// The platform manifest's digest (`"sha256:…"`).
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_manifest_digest(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| Some(r.manifest_digest.to_string()))
    }
}

/// The image index's digest, or NULL in `*out` when the reference named a plain manifest.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_index_digest(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| r.index_digest.as_ref().map(ToString::to_string))
    }
}

/// The config blob's digest (the image ID).
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_config_digest(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| Some(r.config_digest.to_string()))
    }
}

/// The image config as a JSON object (as the CLI prints it under `"config"`): env, cmd,
/// entrypoint, working_dir, user, exposed_ports, volumes, labels, stop_signal, os,
/// architecture, variant.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_config_json(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| serde_json::to_string(&r.config).ok())
    }
}

/// The working directory, or NULL in `*out` when the image sets none.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_working_dir(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| r.config.working_dir.clone())
    }
}

/// The user (`"user[:group]"`, by name or id), or NULL in `*out` when the image sets none.
/// Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_user(
    result: *const msb_pull_result,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_string(result, out, |r| r.config.user.clone())
    }
}

/// The number of `KEY=value` environment entries.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_env_count(
    result: *const msb_pull_result,
    out: *mut usize,
) -> msb_status {
    ffi_panic_boundary! {
        give_count(result, out, |r| &r.config.env)
    }
}

/// Environment entry `index` (`"KEY=value"`). Free `*out` with
/// `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_env(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_item(result, index, out, "env", |r| &r.config.env)
    }
}

/// The number of words of the default command (0 when the image sets none).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_cmd_count(
    result: *const msb_pull_result,
    out: *mut usize,
) -> msb_status {
    ffi_panic_boundary! {
        give_count(result, out, |r| r.config.cmd.as_deref().unwrap_or_default())
    }
}

/// Word `index` of the default command. Free `*out` with
/// `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_cmd(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_item(result, index, out, "cmd", |r| r.config.cmd.as_deref().unwrap_or_default())
    }
}

/// The number of words of the entrypoint (0 when the image sets none).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_entrypoint_count(
    result: *const msb_pull_result,
    out: *mut usize,
) -> msb_status {
    ffi_panic_boundary! {
        give_count(result, out, |r| r.config.entrypoint.as_deref().unwrap_or_default())
    }
}

/// Word `index` of the entrypoint. Free `*out` with
/// `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_entrypoint(
    result: *const msb_pull_result,
    index: usize,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        give_item(result, index, out, "entrypoint", |r| r.config.entrypoint.as_deref().unwrap_or_default())
    }
}

/// Frees a result. NULL is a no-op. The layer directories stay in the cache.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_result_free(result: *mut msb_pull_result) {
    ffi_panic_boundary! {
        arg::free_handle(result)
    }
}
