//! `msb_str`: a borrowed string (pointer + length) handed to C inside a progress event (valid
//! only during the callback it is passed to) or as a name in an `msb_dir_list` (valid until
//! the list is freed). It is not NUL-terminated.

use std::ffi::c_char;
use std::marker::PhantomData;

/// A borrowed string: `len` bytes at `ptr`, **not** NUL-terminated. UTF-8, except file names
/// from `msb_dir_list_name`, which are the bytes the image stores. Valid only during the
/// callback that received it, or, for a name from `msb_dir_list_name`, until its list is
/// freed; copy it to keep it. `ptr` is never NULL (an absent value is the empty string).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct msb_str<'a> {
    /// The first byte.
    pub ptr: *const c_char,
    /// The number of bytes.
    pub len: usize,
    phantom: PhantomData<&'a str>,
}

impl<'a> msb_str<'a> {
    /// Borrows `s` for as long as it lives.
    pub(crate) fn borrow(s: &'a str) -> msb_str<'a> {
        msb_str::borrow_bytes(s.as_bytes())
    }

    /// Borrows the bytes `b` (a file name) for as long as they live.
    pub(crate) fn borrow_bytes(b: &'a [u8]) -> msb_str<'a> {
        msb_str {
            ptr: b.as_ptr().cast(),
            len: b.len(),
            phantom: PhantomData,
        }
    }

    /// Reads the string back (for tests).
    #[cfg(test)]
    pub(crate) fn to_str(self) -> &'a str {
        // SAFETY: built by `borrow` from a `&'a str`.
        unsafe { std::str::from_utf8_unchecked(self.to_bytes()) }
    }

    /// Reads the bytes back (for tests).
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> &'a [u8] {
        // SAFETY: built by `borrow_bytes` from a `&'a [u8]`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len) }
    }
}

impl Default for msb_str<'_> {
    fn default() -> Self {
        msb_str::borrow("")
    }
}
