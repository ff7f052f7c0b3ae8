//! # msbimage-ffi
//!
//! The C ABI of msbimage: `libmsbimage.so` plus `include/msbimage.h`, generated from this crate
//! by cbindgen. Nothing here decides anything about images: each function checks what C hands
//! it, converts, calls `microsandbox_image`, and converts back. The rules every function
//! follows (ownership, threads, errors) are in `ffi/README.md`.
//!
//! One module per C concept:
//!
//! | module | C concept |
//! |---|---|
//! | [`panic`] | the panic boundary around every exported body |
//! | [`status`] | `msb_status` codes and the per-thread last error message |
//! | [`arg`] | checking pointers and strings that come from C |
//! | [`slice`] | `msb_str`, a borrowed string handed to callbacks and in directory lists |
//! | [`string`] | strings handed to the caller, `msb_string_free` |
//! | [`bytes`] | `msb_bytes`, byte buffers handed to the caller, `msb_bytes_free` |
//! | [`runtime`] | the internal tokio runtime that drives every pull |
//! | [`cache`] | `msb_cache`, its reports (images, layers, disk usage, rm, gc) as JSON |
//! | [`lease`] | `msb_layer_lease`: a held layer that gc and rm leave alone |
//! | [`platform`] | `msb_platform` |
//! | [`registry`] | `msb_registry_builder`, `msb_registry` |
//! | [`pull_options`] | `msb_pull_options` |
//! | [`progress`] | `msb_progress_event`, `msb_progress_kind` |
//! | [`userdata`] | the progress callback and its `user_data` |
//! | [`pull`] | `msb_registry_pull`, `msb_pull_task` |
//! | [`pull_result`] | `msb_pull_result` |
//! | [`layer_stack`] | `msb_layer_stack`: the merged view of an image's layer indexes |
//! | [`stat`] | `msb_stat`, `msb_entry_kind`, `MSB_ENTRY_FLAG_*` |
//! | [`dir_list`] | `msb_dir_list`, a directory listing |
#![allow(non_camel_case_types)]

#[macro_use]
pub mod panic;
#[macro_use]
pub mod arg;
pub mod bytes;
pub mod cache;
pub mod dir_list;
pub mod layer_stack;
pub mod lease;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod pull_options;
pub mod pull_result;
pub mod registry;
pub mod runtime;
pub mod slice;
pub mod stat;
pub mod status;
pub mod string;
pub mod userdata;
pub mod verify;

use std::ffi::c_char;

/// The ABI major version: the `N` of the soname `libmsbimage.so.N`. It changes only when a
/// function, struct or constant changes incompatibly. Compare it with `msb_abi_version()` to
/// detect a header/library mismatch.
pub const MSB_ABI_VERSION: u32 = 0;

/// The library's version (`"0.1.0"`), a static NUL-terminated string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn msb_version() -> *const c_char {
    ffi_panic_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    }
}

/// The ABI major version of the loaded library (`MSB_ABI_VERSION` of the header it was built
/// with).
#[unsafe(no_mangle)]
pub extern "C" fn msb_abi_version() -> u32 {
    ffi_panic_boundary! {
        MSB_ABI_VERSION
    }
}
