//! `msb_pull_options`: the options of one pull (policy, force, index, platform, and any
//! other key of the core's `PullOptions` through `msb_pull_options_set_json`).

use std::ffi::c_char;

use microsandbox_image::{PullOptions, PullPolicy};

use crate::arg;
use crate::platform::msb_platform;
use crate::status::{fail, msb_status};

/// When a pull contacts the registry. Passed as a `uint32_t` to
/// `msb_pull_options_set_policy`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum msb_pull_policy {
    /// Answer from the cache when the image is complete there (no network); pull otherwise.
    /// The default.
    IfMissing = 0,
    /// Always fetch the manifest again; layers already cached are reused.
    Always = 1,
    /// Never touch the network: the image must be in the cache (else
    /// `MSB_STATUS_NOT_CACHED`).
    Never = 2,
}

/// Options of a pull. Not thread-safe while being modified; a pull copies them when it
/// starts, so they may be changed or freed right after.
pub struct msb_pull_options {
    pub(crate) inner: PullOptions,
}

/// New options with the defaults: policy IF_MISSING, no force, build the index, the
/// registry's platform. Free with `msb_pull_options_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_new(out: *mut *mut msb_pull_options) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        *out = arg::into_handle(msb_pull_options { inner: PullOptions::default() });
        msb_status::Ok
    }
}

/// Sets the pull policy: one of the `MSB_PULL_POLICY_*` values (others:
/// `MSB_STATUS_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_set_policy(
    options: *mut msb_pull_options,
    policy: u32,
) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        options.inner.pull_policy = match policy {
            p if p == msb_pull_policy::IfMissing as u32 => PullPolicy::IfMissing,
            p if p == msb_pull_policy::Always as u32 => PullPolicy::Always,
            p if p == msb_pull_policy::Never as u32 => PullPolicy::Never,
            other => {
                return fail(
                    msb_status::InvalidArgument,
                    format!("unknown pull policy {other} (expected 0, 1 or 2)"),
                );
            }
        };
        msb_status::Ok
    }
}

/// Downloads and extracts every layer again, even if cached (implies a manifest fetch; not
/// allowed with policy NEVER, which the pull reports as `MSB_STATUS_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_set_force(
    options: *mut msb_pull_options,
    force: bool,
) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        options.inner.force = force;
        msb_status::Ok
    }
}

/// Whether to build each layer's sidecar lookup index (default true).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_set_build_index(
    options: *mut msb_pull_options,
    build_index: bool,
) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        options.inner.build_index = build_index;
        msb_status::Ok
    }
}

/// Pulls for `platform` instead of the registry's platform (copied: `platform` may be freed
/// afterwards).
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_set_platform(
    options: *mut msb_pull_options,
    platform: *const msb_platform,
) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        options.inner.platform = Some(platform.inner.clone());
        msb_status::Ok
    }
}

/// Applies the options in `json`, a JSON object whose keys are those of the core's
/// `PullOptions` (camelCase: `"pullPolicy"`, `"force"`, `"buildIndex"`, `"platform"`,
/// `"outputs"`, `"erofsOpaqueXattr"`; the list and defaults are in `core/api-surface.json`).
/// Keys it does not name keep their value, so every option is reachable this way, including
/// those without a setter of their own. Fails with `MSB_STATUS_INVALID_ARGUMENT` (naming the
/// key) on malformed JSON, an unknown key or a value of the wrong type, and then changes
/// nothing.
///
/// ```c
/// msb_pull_options_set_json(o, "{\"outputs\": [\"directory\", \"erofs-layers\"]}");
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_set_json(
    options: *mut msb_pull_options,
    json: *const c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        arg::merge_json(&mut options.inner, json, "pull options", PullOptions::merge_json)
    }
}

/// Goes back to the registry's platform.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_clear_platform(options: *mut msb_pull_options) -> msb_status {
    ffi_panic_boundary! {
        let options = try_arg!(arg::obj_mut(options, "options"));
        options.inner.platform = None;
        msb_status::Ok
    }
}

/// Frees options. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn msb_pull_options_free(options: *mut msb_pull_options) {
    ffi_panic_boundary! {
        arg::free_handle(options)
    }
}
