//! [`ErrorKind`]: the one list of error kinds. Each kind is declared once, below, with its
//! stable string code, its C status number (`msb_status`), its CLI exit code and its doc; the
//! C ABI, the CLI, Go, Python and Node all take these from here (or a test checks them
//! against it: `core/api-surface.json`).
//!
//! Codes and numbers are stable: a kind is never renumbered or reused, new kinds take new
//! numbers.

/// Declares [`ErrorKind`] and its tables from one list:
/// `Variant = "CODE", status N, exit N, "doc";`
macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal, status $status:literal, exit $exit:literal;)+) => {
        /// A stable classification of errors, shared by every front door (Rust, CLI, C, Go,
        /// Python, Node). [`ErrorKind::code`] is the string every binding exposes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(into = "&'static str", try_from = "&str")]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),+];

            /// The stable string code (`"NOT_CACHED"`), as Python's `.kind`, Node's `.code`
            /// and the CLI's JSON errors carry it.
            pub const fn code(self) -> &'static str {
                match self { $(ErrorKind::$variant => $code,)+ }
            }

            /// The `msb_status` number of this kind in the C ABI.
            pub const fn status(self) -> u32 {
                match self { $(ErrorKind::$variant => $status,)+ }
            }

            /// The `msbimage` CLI's exit code for this kind.
            pub const fn exit_code(self) -> u8 {
                match self { $(ErrorKind::$variant => $exit,)+ }
            }

            /// The kind's one-line description.
            pub const fn doc(self) -> &'static str {
                match self { $(ErrorKind::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }

            /// The Rust variant name (`"NotCached"`), from which bindings derive class names.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorKind::$variant => stringify!($variant),)+ }
            }
        }
    };
}

error_kinds! {
    /// A bad argument or option (unreadable CA file, bad platform string, invalid setting).
    InvalidArgument = "INVALID_ARGUMENT", status 1, exit 2;
    /// A malformed image reference.
    InvalidReference = "INVALID_REFERENCE", status 2, exit 2;
    /// The image is not completely in the cache and the pull policy forbids the network.
    NotCached = "NOT_CACHED", status 3, exit 3;
    /// The image has no manifest for the requested platform.
    PlatformNotFound = "PLATFORM_NOT_FOUND", status 4, exit 4;
    /// The registry refused the credentials (HTTP 401/403).
    Auth = "AUTH", status 5, exit 5;
    /// Network or HTTP failure (a missing tag or blob included), or a registry answer that makes no sense.
    Registry = "REGISTRY", status 6, exit 6;
    /// Content did not hash to its digest.
    DigestMismatch = "DIGEST_MISMATCH", status 7, exit 7;
    /// A layer could not be decompressed or extracted (bad tar, limits, unsafe paths).
    Extraction = "EXTRACTION", status 8, exit 8;
    /// A local file-system error (cache not writable, disk full, corrupt layer index, …).
    Io = "IO", status 9, exit 9;
    /// A malformed or unsupported manifest, config or index version.
    Unsupported = "UNSUPPORTED", status 10, exit 10;
    /// The pull was cancelled.
    Cancelled = "CANCELLED", status 11, exit 130;
    /// A bug in this library (a task panicked or vanished).
    Internal = "INTERNAL", status 13, exit 70;
    /// A layer stack lookup found nothing at that path (or no such extended attribute).
    NotFound = "NOT_FOUND", status 15, exit 11;
    /// Waiting for a layer that another pull holds took longer than `lockTimeout`.
    LockTimeout = "LOCK_TIMEOUT", status 16, exit 12;
    /// A registry configuration file (`registries.conf`, `blocked = true`) forbids pulling from this registry or namespace.
    RegistryBlocked = "REGISTRY_BLOCKED", status 17, exit 13;
    /// The pull did not finish within the `deadline` setting.
    DeadlineExceeded = "DEADLINE_EXCEEDED", status 18, exit 14;
}

impl ErrorKind {
    /// The kind whose [`code`](ErrorKind::code) is `code`.
    ///
    /// ```
    /// use microsandbox_image::ErrorKind;
    /// assert_eq!(ErrorKind::from_code("NOT_CACHED"), Some(ErrorKind::NotCached));
    /// ```
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// The kind whose C status number is `status`.
    pub fn from_status(status: u32) -> Option<ErrorKind> {
        ErrorKind::ALL
            .iter()
            .copied()
            .find(|k| k.status() == status)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl From<ErrorKind> for &'static str {
    fn from(kind: ErrorKind) -> &'static str {
        kind.code()
    }
}

impl TryFrom<&str> for ErrorKind {
    type Error = String;
    fn try_from(code: &str) -> Result<ErrorKind, String> {
        ErrorKind::from_code(code).ok_or_else(|| format!("unknown error kind {code:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_statuses_and_names_are_unique() {
        let all = ErrorKind::ALL;
        let codes: HashSet<_> = all.iter().map(|k| k.code()).collect();
        let statuses: HashSet<_> = all.iter().map(|k| k.status()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(statuses.len(), all.len());
        assert!(statuses.iter().all(|s| *s != 0), "0 is MSB_STATUS_OK");
        for k in all {
            assert_eq!(ErrorKind::from_code(k.code()), Some(*k));
            assert_eq!(ErrorKind::from_status(k.status()), Some(*k));
            assert!(!k.doc().is_empty());
        }
    }

    #[test]
    fn stable_numbers_do_not_move() {
        // The C ABI's numbers, once published, never change.
        assert_eq!(ErrorKind::InvalidArgument.status(), 1);
        assert_eq!(ErrorKind::Auth.status(), 5);
        assert_eq!(ErrorKind::Cancelled.status(), 11);
        assert_eq!(ErrorKind::NotFound.status(), 15);
        assert_eq!(ErrorKind::Cancelled.exit_code(), 130);
        assert_eq!(ErrorKind::Internal.exit_code(), 70);
    }

    #[test]
    fn serialises_as_its_code() {
        let json = serde_json::to_string(&ErrorKind::DigestMismatch).unwrap();
        assert_eq!(json, "\"DIGEST_MISMATCH\"");
        let back: ErrorKind = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ErrorKind::DigestMismatch);
    }
}
