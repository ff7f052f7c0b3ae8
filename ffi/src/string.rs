//! Strings the library hands to the caller: NUL-terminated `char *` (UTF-8, except paths and
//! link targets inside an image, which are bytes), owned by the caller from then on and
//! released with `msb_string_free` (never with `free`).

use std::ffi::{CString, c_char};

use crate::arg;
use crate::status::{fail, msb_status};

/// Copies the bytes `b` (a UTF-8 string, or a path) into a new C string. Bytes with a NUL
/// inside cannot be one: `MSB_STATUS_UNSUPPORTED`.
pub(crate) fn to_c(b: &[u8]) -> Result<*mut c_char, msb_status> {
    CString::new(b).map(CString::into_raw).map_err(|_| {
        fail(
            msb_status::Unsupported,
            "the value contains a NUL byte and cannot be returned as a C string",
        )
    })
}

/// Stores a copy of `s` in `out`.
pub(crate) fn give(out: &mut *mut c_char, s: &str) -> msb_status {
    give_bytes(out, s.as_bytes())
}

/// Stores a copy of the bytes `b` in `out`, NUL-terminated.
pub(crate) fn give_bytes(out: &mut *mut c_char, b: &[u8]) -> msb_status {
    match to_c(b) {
        Ok(c) => {
            *out = c;
            msb_status::Ok
        }
        Err(status) => status,
    }
}

/// Stores a copy of `s` in `out`, or NULL when there is no value.
pub(crate) fn give_opt(out: &mut *mut c_char, s: Option<&str>) -> msb_status {
    match s {
        Some(s) => give(out, s),
        None => {
            *out = std::ptr::null_mut();
            msb_status::Ok
        }
    }
}

/// Frees a string returned by this library. NULL is a no-op. Never pass a string from
/// elsewhere, nor the one from `msb_last_error_message`, `msb_version` or `msb_status_name`.
#[unsafe(no_mangle)]
pub extern "C" fn msb_string_free(s: *mut c_char) {
    ffi_panic_boundary! {
        arg::free_c_string(s)
    }
}
