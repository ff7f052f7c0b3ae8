//! `msb_status`, the result of every fallible call, and the per-thread last error message
//! that explains a non-OK status.
//!
//! The numbers are stable: a code is never renumbered or reused. They follow the core's
//! `ErrorKind`, plus the outcomes that exist only at this boundary (panic, timeout).

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::fmt::Display;

use microsandbox_image::{Error, ErrorKind};

/// The result of a call. `MSB_STATUS_OK` is 0; every other value is a failure whose message
/// `msb_last_error_message()` returns on the same thread.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum msb_status {
    /// Success.
    Ok = 0,
    /// A NULL pointer, a string that is not UTF-8, an index out of range, a value out of
    /// range, or an option the core rejects (unreadable CA file, bad platform string, …).
    InvalidArgument = 1,
    /// The image reference does not parse.
    InvalidReference = 2,
    /// The image is not completely in the cache and the pull policy is NEVER.
    NotCached = 3,
    /// The image index has no manifest for the requested platform.
    PlatformNotFound = 4,
    /// The registry refused the credentials (HTTP 401/403).
    Auth = 5,
    /// Network or HTTP failure (a missing tag or blob included), or a registry answer that
    /// makes no sense.
    Registry = 6,
    /// Content did not hash to its digest.
    DigestMismatch = 7,
    /// A layer could not be decompressed or extracted (bad tar, limits, unsafe paths).
    Extraction = 8,
    /// A local file-system error (cache not writable, disk full, …).
    Io = 9,
    /// A malformed or unsupported manifest or config, or a returned string that cannot be a C
    /// string (it contains a NUL byte).
    Unsupported = 10,
    /// The pull was cancelled (`msb_pull_task_cancel`, `msb_pull_task_free`).
    Cancelled = 11,
    /// A bug: Rust code panicked. The panic was caught; the library stays usable.
    Panic = 12,
    /// A bug or an impossible state (the runtime could not start, a task vanished).
    Internal = 13,
    /// `msb_pull_task_wait` returned because its timeout elapsed; the pull is still running.
    Timeout = 14,
    /// A layer stack lookup found nothing: the path is not in the merged view (it never
    /// existed, a whiteout or an opaque directory hides it, or a parent is not a directory),
    /// or the entry has no extended attribute of that name. Only from `msb_layer_stack_*`.
    NotFound = 15,
    /// Waiting for a layer that another pull holds took longer than the `lockTimeout`
    /// setting.
    LockTimeout = 16,
    /// A registry configuration file (`registries.conf`, `blocked = true`) forbids pulling
    /// from this registry or namespace.
    RegistryBlocked = 17,
    /// The pull did not finish within the `deadline` setting.
    DeadlineExceeded = 18,
}

impl From<ErrorKind> for msb_status {
    /// The status with the kind's number from the core's table (`ErrorKind::status`); the
    /// test `statuses_follow_the_core_table` checks that every kind has its status here.
    fn from(kind: ErrorKind) -> Self {
        msb_status::from_code(kind.status()).unwrap_or(msb_status::Internal)
    }
}

impl msb_status {
    /// The constant's name in the header, e.g. `"MSB_STATUS_AUTH"`.
    pub fn name(self) -> &'static CStr {
        match self {
            msb_status::Ok => c"MSB_STATUS_OK",
            msb_status::InvalidArgument => c"MSB_STATUS_INVALID_ARGUMENT",
            msb_status::InvalidReference => c"MSB_STATUS_INVALID_REFERENCE",
            msb_status::NotCached => c"MSB_STATUS_NOT_CACHED",
            msb_status::PlatformNotFound => c"MSB_STATUS_PLATFORM_NOT_FOUND",
            msb_status::Auth => c"MSB_STATUS_AUTH",
            msb_status::Registry => c"MSB_STATUS_REGISTRY",
            msb_status::DigestMismatch => c"MSB_STATUS_DIGEST_MISMATCH",
            msb_status::Extraction => c"MSB_STATUS_EXTRACTION",
            msb_status::Io => c"MSB_STATUS_IO",
            msb_status::Unsupported => c"MSB_STATUS_UNSUPPORTED",
            msb_status::Cancelled => c"MSB_STATUS_CANCELLED",
            msb_status::Panic => c"MSB_STATUS_PANIC",
            msb_status::Internal => c"MSB_STATUS_INTERNAL",
            msb_status::Timeout => c"MSB_STATUS_TIMEOUT",
            msb_status::NotFound => c"MSB_STATUS_NOT_FOUND",
            msb_status::LockTimeout => c"MSB_STATUS_LOCK_TIMEOUT",
            msb_status::RegistryBlocked => c"MSB_STATUS_REGISTRY_BLOCKED",
            msb_status::DeadlineExceeded => c"MSB_STATUS_DEADLINE_EXCEEDED",
        }
    }

    fn from_code(code: u32) -> Option<msb_status> {
        const ALL: [msb_status; 19] = [
            msb_status::Ok,
            msb_status::InvalidArgument,
            msb_status::InvalidReference,
            msb_status::NotCached,
            msb_status::PlatformNotFound,
            msb_status::Auth,
            msb_status::Registry,
            msb_status::DigestMismatch,
            msb_status::Extraction,
            msb_status::Io,
            msb_status::Unsupported,
            msb_status::Cancelled,
            msb_status::Panic,
            msb_status::Internal,
            msb_status::Timeout,
            msb_status::NotFound,
            msb_status::LockTimeout,
            msb_status::RegistryBlocked,
            msb_status::DeadlineExceeded,
        ];
        ALL.into_iter().find(|s| *s as u32 == code)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replaces this thread's last error message (NUL bytes in it become spaces).
pub(crate) fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // During thread teardown the slot may be gone; there is nobody left to read it then.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// This thread's last error message (for tests).
#[cfg(test)]
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Records `message` and returns `status`: the one way a function fails.
pub(crate) fn fail(status: msb_status, message: impl Display) -> msb_status {
    set_last_error(&message.to_string());
    status
}

/// The status and message of a core error.
pub(crate) fn from_error(error: &Error) -> msb_status {
    fail(error.kind().into(), error)
}

/// The message of the last call on this thread that did not return `MSB_STATUS_OK`, or `""`
/// if there was none.
///
/// Never NULL. The string is borrowed from the library: do not free it. It stays valid until
/// the next `msb_*` call on the same thread; copy it if you need it longer. Messages are
/// per thread, so read it on the thread that made the failing call (in Go: with the
/// goroutine locked to its thread).
#[unsafe(no_mangle)]
pub extern "C" fn msb_last_error_message() -> *const c_char {
    ffi_panic_boundary! {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    }
}

/// The name of a status code (`"MSB_STATUS_AUTH"` for 5), or `"MSB_STATUS_UNKNOWN"` for a
/// number this library does not define. Static: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn msb_status_name(status: u32) -> *const c_char {
    ffi_panic_boundary! {
        msb_status::from_code(status)
            .map_or(c"MSB_STATUS_UNKNOWN", msb_status::name)
            .as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(msb_status::Ok as u32, 0);
        assert_eq!(msb_status::Auth as u32, 5);
        assert_eq!(msb_status::Cancelled as u32, 11);
        assert_eq!(msb_status::Timeout as u32, 14);
        assert_eq!(msb_status::NotFound as u32, 15);
        assert_eq!(msb_status::LockTimeout as u32, 16);
        assert_eq!(msb_status::RegistryBlocked as u32, 17);
        assert_eq!(msb_status::DeadlineExceeded as u32, 18);
        for code in 0..19 {
            assert_eq!(msb_status::from_code(code).map(|s| s as u32), Some(code));
        }
        assert_eq!(msb_status::from_code(19), None);
    }

    /// Every error kind of the core has a status here with its number and the name
    /// `MSB_STATUS_<CODE>`; the only statuses without a kind are the boundary's own.
    #[test]
    fn statuses_follow_the_core_table() {
        for kind in ErrorKind::ALL {
            let status = msb_status::from(*kind);
            assert_eq!(status as u32, kind.status(), "{kind:?}");
            assert_eq!(
                status.name().to_str().unwrap(),
                format!("MSB_STATUS_{}", kind.code()),
                "{kind:?}"
            );
        }
        for code in 0..19u32 {
            let status = msb_status::from_code(code).unwrap();
            let boundary_only = matches!(
                status,
                msb_status::Ok | msb_status::Panic | msb_status::Timeout
            );
            assert_eq!(
                ErrorKind::from_status(code).is_some(),
                !boundary_only,
                "{status:?}"
            );
        }
    }

    #[test]
    fn names_match_the_header() {
        let name = |c| {
            unsafe { CStr::from_ptr(msb_status_name(c)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(name(5), "MSB_STATUS_AUTH");
        assert_eq!(name(15), "MSB_STATUS_NOT_FOUND");
        assert_eq!(name(9999), "MSB_STATUS_UNKNOWN");
    }

    #[test]
    fn last_error_is_per_thread() {
        fail(msb_status::Io, "here");
        std::thread::spawn(|| assert_eq!(last_error(), ""))
            .join()
            .unwrap();
        assert_eq!(last_error(), "here");
    }
}
