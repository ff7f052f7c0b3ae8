//! Strings the library hands to the caller: NUL-terminated UTF-8 `char *`, owned by the
//! caller from then on and released with `msb_string_free` (never with `free`).

use std::ffi::{CString, c_char};

use crate::arg;
use crate::status::{fail, msb_status};

/// Copies `s` into a new C string. A string with a NUL byte inside cannot be one:
/// `MSB_STATUS_UNSUPPORTED`.
pub(crate) fn to_c(s: &str) -> Result<*mut c_char, msb_status> {
    CString::new(s).map(CString::into_raw).map_err(|_| {
        fail(
            msb_status::Unsupported,
            "the value contains a NUL byte and cannot be returned as a C string",
        )
    })
}

/// Stores a copy of `s` in `out`.
pub(crate) fn give(out: &mut *mut c_char, s: &str) -> msb_status {
    match to_c(s) {
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
