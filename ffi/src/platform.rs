//! `msb_platform`: a target platform `os/arch[/variant]`, normalised by the core
//! (`aarch64` → `arm64/v8`, `x86_64` → `amd64`).

use std::ffi::c_char;

use microsandbox_image::Platform;

use crate::arg;
use crate::status::{fail, msb_status};
use crate::string;

/// A target platform. Immutable; may be shared between threads.
pub struct msb_platform {
    pub(crate) inner: Platform,
}

fn give(out: &mut *mut msb_platform, inner: Platform) -> msb_status {
    // Normalisation accepts anything; a platform must also print as a valid `os/arch[/v]`.
    if let Err(e) = inner.to_string().parse::<Platform>() {
        return fail(msb_status::InvalidArgument, e);
    }
    *out = arg::into_handle(msb_platform { inner });
    msb_status::Ok
}

/// Linux on the architecture this library was built for (`linux/amd64` on x86-64).
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_host(out: *mut *mut msb_platform) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        give(out, Platform::host_linux())
    }
}

/// `os`/`architecture` with the architecture's default variant (`"linux"`, `"arm64"` →
/// `linux/arm64/v8`).
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_new(
    os: *const c_char,
    architecture: *const c_char,
    out: *mut *mut msb_platform,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let os = try_arg!(arg::string(os, "os"));
        let architecture = try_arg!(arg::string(architecture, "architecture"));
        give(out, Platform::new(os, architecture))
    }
}

/// `os`/`architecture`/`variant` (`"linux"`, `"arm"`, `"v6"`). An empty variant means the
/// architecture's default.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_new_with_variant(
    os: *const c_char,
    architecture: *const c_char,
    variant: *const c_char,
    out: *mut *mut msb_platform,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let os = try_arg!(arg::string(os, "os"));
        let architecture = try_arg!(arg::string(architecture, "architecture"));
        let variant = try_arg!(arg::string(variant, "variant"));
        give(out, Platform::with_variant(os, architecture, variant))
    }
}

/// Parses `"os/arch"` or `"os/arch/variant"` (as given to a `--platform` flag).
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_parse(
    platform: *const c_char,
    out: *mut *mut msb_platform,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let text = try_arg!(arg::string(platform, "platform"));
        match text.parse::<Platform>() {
            Ok(inner) => give(out, inner),
            Err(e) => fail(msb_status::InvalidArgument, e),
        }
    }
}

/// The operating system (`"linux"`). Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_os(
    platform: *const msb_platform,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        string::give(out, platform.inner.os())
    }
}

/// The architecture (`"amd64"`, `"arm64"`, …). Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_architecture(
    platform: *const msb_platform,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        string::give(out, platform.inner.architecture())
    }
}

/// The variant (`"v8"`), or NULL in `*out` when there is none. Free `*out` with
/// `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_variant(
    platform: *const msb_platform,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        string::give_opt(out, platform.inner.variant())
    }
}

/// The platform as `"os/arch[/variant]"`. Free `*out` with `msb_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_to_string(
    platform: *const msb_platform,
    out: *mut *mut c_char,
) -> msb_status {
    ffi_panic_boundary! {
        let out = try_arg!(arg::out_ptr(out, "out"));
        let platform = try_arg!(arg::obj(platform, "platform"));
        string::give(out, &platform.inner.to_string())
    }
}

/// Frees a platform. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn msb_platform_free(platform: *mut msb_platform) {
    ffi_panic_boundary! {
        arg::free_handle(platform)
    }
}
