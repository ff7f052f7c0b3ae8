//! `msb_bytes`: a byte buffer the library hands to the caller (an extended attribute's value,
//! a list of attribute names), owned by the caller from then on and released with
//! `msb_bytes_free`.

/// Bytes owned by the caller: `len` bytes at `ptr`, not NUL-terminated, possibly containing
/// NUL bytes. Free them with `msb_bytes_free` (never with `free`). An empty buffer has `ptr`
/// NULL and `len` 0; so does the buffer of a call that failed.
#[repr(C)]
#[derive(Debug)]
pub struct msb_bytes {
    /// The first byte, or NULL when `len` is 0.
    pub ptr: *mut u8,
    /// The number of bytes.
    pub len: usize,
}

impl msb_bytes {
    /// The empty buffer (`ptr` NULL).
    pub(crate) fn empty() -> msb_bytes {
        msb_bytes {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// Hands `bytes` over to C.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> msb_bytes {
        if bytes.is_empty() {
            return msb_bytes::empty();
        }
        let len = bytes.len();
        let ptr = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
        msb_bytes { ptr, len }
    }

    /// Reads the bytes back (for tests).
    #[cfg(test)]
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: built by `from_vec` from a boxed slice of `len` bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Frees bytes returned by this library. A NULL `ptr` is a no-op. Pass the struct exactly as
/// the library filled it in (the same `ptr` and `len`).
#[unsafe(no_mangle)]
pub extern "C" fn msb_bytes_free(bytes: msb_bytes) {
    ffi_panic_boundary! {
        if !bytes.ptr.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(bytes.ptr, bytes.len);
            // SAFETY: `ptr` and `len` came from `msb_bytes::from_vec` (a boxed slice) and C gives
            // them back exactly once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_empty_is_null() {
        let b = msb_bytes::from_vec(b"a\0b".to_vec());
        assert_eq!((b.as_slice(), b.len), (&b"a\0b"[..], 3));
        msb_bytes_free(b);
        let e = msb_bytes::from_vec(Vec::new());
        assert!(e.ptr.is_null() && e.len == 0);
        msb_bytes_free(e);
        msb_bytes_free(msb_bytes::empty());
    }
}
