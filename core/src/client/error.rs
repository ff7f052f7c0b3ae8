//! Errors of the registry client, each naming the URL or host involved.

use crate::digest::Digest;
use crate::error::ErrorKind;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The request could not be sent or the response not read (connection refused, reset,
    /// TLS failure, timeout).
    #[error("request to {url} failed: {detail}")]
    Network {
        /// The URL.
        url: String,
        /// reqwest's message chain.
        detail: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{url} answered HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// The URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Registry error codes and messages from the body, if any.
        detail: String,
    },
    /// The manifest or blob does not exist.
    #[error("not found: {url}{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    NotFound {
        /// The URL.
        url: String,
        /// Registry error codes and messages from the body, if any.
        detail: String,
    },
    /// Authentication failed or access was denied.
    #[error("{host}: authentication failed: {detail}")]
    Auth {
        /// The registry (or token service) host.
        host: String,
        /// What the server said.
        detail: String,
    },
    /// Content did not hash to the digest it was fetched by.
    #[error("{what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// "manifest", "config", …
        what: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A response exceeded the size we accept for its kind.
    #[error("{what} from {url} is larger than {limit} bytes")]
    TooLarge {
        /// "manifest", "config", …
        what: &'static str,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The registry sent something that breaks the protocol (bad header, bad redirect).
    #[error("{url}: protocol error: {detail}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The TLS settings are unusable (unreadable or invalid CA bundle).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// A registry configuration file makes no sense for this reference (a `location` that
    /// does not make an image name).
    #[error("registry configuration: {0}")]
    Config(String),
    /// A registry configuration file blocks the reference (`blocked = true`).
    #[error("{reference}: blocked by {} (prefix {prefix:?})", source_file.display())]
    Blocked {
        /// The image name (`registry/repository`).
        reference: String,
        /// The prefix of the blocking entry.
        prefix: String,
        /// The file that blocks it.
        source_file: std::path::PathBuf,
    },
    /// A download averaged less than the `lowSpeedLimit` setting over `lowSpeedTime`.
    #[error(
        "{url}: too slow: {bytes} bytes in {secs} s, under the lowSpeedLimit of {limit} bytes/s"
    )]
    TooSlow {
        /// Where the bytes came from.
        url: String,
        /// Bytes received in the window.
        bytes: u64,
        /// The window (`lowSpeedTime`), in seconds.
        secs: u64,
        /// The limit, bytes per second.
        limit: u64,
    },
}

impl RegistryError {
    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Auth { .. } => ErrorKind::Auth,
            RegistryError::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            RegistryError::TlsConfig(_) | RegistryError::Config(_) => ErrorKind::InvalidArgument,
            RegistryError::Blocked { .. } => ErrorKind::RegistryBlocked,
            _ => ErrorKind::Registry,
        }
    }

    /// The URL the error names, if it names one.
    pub(crate) fn url(&self) -> Option<&str> {
        match self {
            RegistryError::Network { url, .. }
            | RegistryError::Status { url, .. }
            | RegistryError::NotFound { url, .. }
            | RegistryError::TooLarge { url, .. }
            | RegistryError::Protocol { url, .. }
            | RegistryError::TooSlow { url, .. } => Some(url),
            _ => None,
        }
    }

    /// What went wrong, without the URL (a retry's reason: `HTTP 503`, a reset).
    pub(crate) fn reason(&self) -> String {
        match self {
            RegistryError::Network { detail, .. } => detail.clone(),
            RegistryError::Status { status, detail, .. } if detail.is_empty() => {
                format!("HTTP {status}")
            }
            RegistryError::Status { status, detail, .. } => format!("HTTP {status}: {detail}"),
            other => other.to_string(),
        }
    }

    /// Whether trying again (or trying a mirror's upstream) could help.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Network { .. } => true,
            RegistryError::Status { status, .. } => {
                matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

/// How to give a client certificate.
const CLIENT_CERT_HINT: &str = "give one as client.cert and client.key in a directory named for \
     the host in a certsDirs directory, as Docker's certs.d";

/// A reqwest error as a [`RegistryError::Network`], with its whole source chain (the URL
/// once, in the error's own field: reqwest's message repeats it, signed query and all).
pub(crate) fn network(url: &str, e: &reqwest::Error) -> RegistryError {
    let mut detail = e.to_string();
    if let Some(u) = e.url() {
        detail = detail.replace(&format!(" for url ({u})"), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    // A server that requires a client certificate refuses a client that shows none with an
    // alert (`CertificateRequired`, Go's `BadCertificate`) or, in TLS 1.3, by closing the
    // connection after the handshake (then the alert may never be read, and the first write
    // of the request may meet a broken pipe or a reset instead).
    let refused = [
        "CertificateRequired",
        "BadCertificate",
        "connection closed",
        "broken pipe",
        "reset by peer",
    ];
    if url.starts_with("https://") && refused.iter().any(|r| detail.contains(r)) {
        detail.push_str(&format!(
            " (if the server requires a client certificate: {CLIENT_CERT_HINT})"
        ));
    }
    RegistryError::Network {
        url: url.to_owned(),
        detail,
    }
}

/// The `errors` array of a distribution-spec error body, as `CODE: message; …`.
pub(crate) fn describe_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => b
            .errors
            .iter()
            .map(|i| {
                format!(
                    "{}: {}",
                    i.code.as_deref().unwrap_or("UNKNOWN"),
                    i.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned(),
    }
}
