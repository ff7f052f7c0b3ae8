//! The panic boundary. Every exported body runs inside [`ffi_panic_boundary!`]: a Rust panic
//! becomes `MSB_STATUS_PANIC` (or the function's neutral value: `NULL`, `0`, nothing) with a
//! last error message, and never unwinds into C (since Rust 1.81 that would abort the host).
//! This needs `panic = "unwind"`, which the workspace profiles keep.

use std::any::Any;

use crate::status::{self, msb_status};

/// What an exported function returns when its body panicked.
pub trait PanicOrDefault {
    /// The value reported to C after a panic.
    fn value_on_panic() -> Self;
}

impl PanicOrDefault for msb_status {
    fn value_on_panic() -> Self {
        msb_status::Panic
    }
}

impl PanicOrDefault for () {
    fn value_on_panic() -> Self {}
}

impl PanicOrDefault for u32 {
    fn value_on_panic() -> Self {
        0
    }
}

impl<T> PanicOrDefault for *const T {
    fn value_on_panic() -> Self {
        std::ptr::null()
    }
}

/// Records the panic as the thread's last error and picks the value to return.
pub(crate) fn on_panic<T: PanicOrDefault>(payload: Box<dyn Any + Send>) -> T {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    status::set_last_error(&format!("msbimage panicked (a bug): {what}"));
    T::value_on_panic()
}

/// Runs the body, catching any panic (see the module docs). The body may `return` early.
macro_rules! ffi_panic_boundary {
    ( $($body:tt)* ) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || { $($body)* })) {
            Ok(value) => value,
            Err(payload) => $crate::panic::on_panic(payload),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explodes(really: bool) -> msb_status {
        ffi_panic_boundary! {
            if really {
                panic!("boom");
            }
            msb_status::Ok
        }
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        assert_eq!(explodes(false), msb_status::Ok);
        assert_eq!(explodes(true), msb_status::Panic);
        assert!(status::last_error().contains("boom"));
    }

    #[test]
    fn a_panic_in_a_pointer_function_returns_null() {
        let p: *const u8 = ffi_panic_boundary! { panic!("no pointer for you") };
        assert!(p.is_null());
    }
}
