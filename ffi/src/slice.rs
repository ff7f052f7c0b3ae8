//! `msb_str`: a borrowed string (pointer + length) handed to C inside a progress event. It is
//! valid only during the callback it is passed to and is not NUL-terminated.

use std::ffi::c_char;
use std::marker::PhantomData;

/// A borrowed UTF-8 string: `len` bytes at `ptr`, **not** NUL-terminated. Valid only during
/// the callback that received it; copy it to keep it. `ptr` is never NULL (an absent value is
/// the empty string).
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
        msb_str {
            ptr: s.as_ptr().cast(),
            len: s.len(),
            phantom: PhantomData,
        }
    }

    /// Reads the string back (for tests).
    #[cfg(test)]
    pub(crate) fn to_str(self) -> &'a str {
        // SAFETY: built by `borrow` from a `&'a str`.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr.cast(), self.len))
        }
    }
}

impl Default for msb_str<'_> {
    fn default() -> Self {
        msb_str::borrow("")
    }
}
