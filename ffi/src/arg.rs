//! Everything C hands us passes through here: handles, out-pointers and strings. C promises
//! that a pointer is either NULL or valid for its type; this module is the one place that
//! trusts that promise. NULL is answered with `MSB_STATUS_INVALID_ARGUMENT` naming the
//! parameter, never dereferenced; strings must be NUL-terminated UTF-8, except paths inside
//! an image and extended attribute names, which are NUL-terminated bytes.
//!
//! Handles cross the boundary as `Box::into_raw` pointers and come back to exactly one free
//! function, which turns them back into a `Box`.

use std::ffi::{CStr, CString, c_char};

use crate::status::{fail, msb_status};

/// Unwraps a `Result<T, msb_status>`, returning the status from the calling function on error.
macro_rules! try_arg {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(status) => return status,
        }
    };
}

fn null(name: &str) -> msb_status {
    fail(msb_status::InvalidArgument, format!("{name} is NULL"))
}

/// A shared reference to a handle or value.
pub(crate) fn obj<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, msb_status> {
    // SAFETY: C passes NULL or a valid pointer obtained from this library.
    unsafe { ptr.as_ref() }.ok_or_else(|| null(name))
}

/// A shared reference to an optional handle or value: NULL is `None`.
pub(crate) fn opt_obj<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: C passes NULL or a valid pointer obtained from this library.
    unsafe { ptr.as_ref() }
}

/// An exclusive reference to a handle the caller owns (builders, options).
pub(crate) fn obj_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, msb_status> {
    // SAFETY: as for `obj`; C must not use one builder from two threads at once (documented).
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// An out-parameter for a plain value (`size_t *`, `bool *`).
pub(crate) fn out<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, msb_status> {
    // SAFETY: C passes NULL or a pointer to writable memory of type T.
    unsafe { ptr.as_mut() }.ok_or_else(|| null(name))
}

/// An out-parameter for a pointer (a handle or a string), set to NULL at once so that it is
/// NULL whenever the call fails.
pub(crate) fn out_ptr<'a, T>(ptr: *mut *mut T, name: &str) -> Result<&'a mut *mut T, msb_status> {
    let slot = out(ptr, name)?;
    *slot = std::ptr::null_mut();
    Ok(slot)
}

/// Apply the JSON object `json` onto `target` with `merge` (the core's `merge_json` of its
/// type), all or nothing: on an error `target` is unchanged and the status is
/// `MSB_STATUS_INVALID_ARGUMENT`, naming `what` and the key.
pub(crate) fn merge_json<T: Clone>(
    target: &mut T,
    json: *const c_char,
    what: &str,
    merge: impl FnOnce(&mut T, &str) -> Result<(), serde_json::Error>,
) -> msb_status {
    let json = match string(json, "json") {
        Ok(json) => json,
        Err(status) => return status,
    };
    let mut merged = target.clone();
    match merge(&mut merged, json) {
        Ok(()) => {
            *target = merged;
            msb_status::Ok
        }
        Err(e) => fail(msb_status::InvalidArgument, format!("{what}: {e}")),
    }
}

/// An optional JSON argument: `T::default()` when `ptr` is NULL, else the string parsed by
/// `parse` (which sets the error and gives its status when it cannot).
pub(crate) fn opt_json<T: Default>(
    ptr: *const c_char,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, msb_status>,
) -> Result<T, msb_status> {
    match ptr.is_null() {
        true => Ok(T::default()),
        false => parse(string(ptr, name)?),
    }
}

/// A NUL-terminated UTF-8 string, borrowed for the call.
pub(crate) fn string<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, msb_status> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: C passes a NUL-terminated string that outlives the call.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        fail(
            msb_status::InvalidArgument,
            format!("{name} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// A NULL-terminated array of strings (NULL itself: no array, `None`), borrowed for the call.
pub(crate) fn opt_string_array<'a>(
    ptr: *const *const c_char,
    name: &str,
) -> Result<Option<Vec<&'a str>>, msb_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    let mut items = Vec::new();
    for i in 0.. {
        // SAFETY: C passes an array of string pointers ended by NULL, valid for the call.
        let item = unsafe { *ptr.add(i) };
        if item.is_null() {
            break;
        }
        items.push(string(item, &format!("{name}[{i}]"))?);
    }
    Ok(Some(items))
}

/// NUL-terminated bytes (not necessarily UTF-8), borrowed for the call.
pub(crate) fn bytes<'a>(ptr: *const c_char, name: &str) -> Result<&'a [u8], msb_status> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: C passes a NUL-terminated string that outlives the call.
    Ok(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// A path inside an image: NUL-terminated bytes, borrowed for the call, with its leading and
/// trailing slashes removed (`"/etc/hosts"` and `"etc/hosts"` are the same path; `"/"` and
/// `""` are the root).
pub(crate) fn image_path<'a>(ptr: *const c_char, name: &str) -> Result<&'a [u8], msb_status> {
    let path = bytes(ptr, name)?;
    let start = path.iter().position(|&c| c != b'/').unwrap_or(path.len());
    let end = path
        .iter()
        .rposition(|&c| c != b'/')
        .map_or(start, |i| i + 1);
    Ok(&path[start..end])
}

/// Hands a value to C as an owned handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back a string handed out by `string::to_c` and drops it. NULL is a no-op.
pub(crate) fn free_c_string(ptr: *mut c_char) {
    if !ptr.is_null() {
        // SAFETY: the pointer came from `CString::into_raw` and C gives it back exactly once.
        drop(unsafe { CString::from_raw(ptr) });
    }
}

/// Takes back a handle from C and drops it. NULL is a no-op.
pub(crate) fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the pointer came from `into_handle` and C gives it back exactly once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}
