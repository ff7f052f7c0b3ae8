//! Test fronts that sit between a client and a real registry, speaking hand-rolled
//! HTTP/1.1 on `127.0.0.1` and forwarding through reqwest: [`RedirectFront`] answers blob
//! GETs with a cross-host `307` to a recording blob host, and [`FaultProxy`] injects
//! resets, corruption, error statuses and stalls into blob downloads. Both forward every
//! other request unchanged (headers, `Authorization` and body included) and rewrite
//! upstream `Location` headers to point back at the front. [`ConnectProxy`] is not a front
//! but an HTTP proxy (`CONNECT` tunnels and absolute-form requests) that counts its use.

mod connect_proxy;
mod fault;
mod forward;
mod redirect;

use std::path::{Path, PathBuf};

pub use connect_proxy::ConnectProxy;
pub use fault::{BlobServed, Fault, FaultProxy};
pub use redirect::RedirectFront;

/// Settings shared by the fronts.
#[derive(Debug, Clone, Default)]
pub struct FrontOptions {
    /// CA PEM the front trusts when its upstream is HTTPS.
    pub ca_pem: Option<PathBuf>,
    /// Credentials the redirect front's blob host uses towards the upstream (Basic, or
    /// for a token request).
    pub credentials: Option<(String, String)>,
    /// Apply a [`FaultProxy`]'s fault only to this blob digest.
    pub only_digest: Option<String>,
    /// Apply a [`FaultProxy`]'s fault to manifest GETs too (`only_digest` still limits
    /// which blobs).
    pub manifests: bool,
    /// A [`FaultProxy`] appends one JSON line ([`BlobServed`]) per blob GET it faults or
    /// could fault to this file (created if missing) as the GET ends.
    pub log: Option<PathBuf>,
}

impl FrontOptions {
    /// Trust `pem_path` for an HTTPS upstream.
    pub fn ca(mut self, pem_path: &Path) -> Self {
        self.ca_pem = Some(pem_path.to_path_buf());
        self
    }

    /// Credentials for the blob host's upstream requests.
    pub fn credentials(mut self, user: &str, pass: &str) -> Self {
        self.credentials = Some((user.to_string(), pass.to_string()));
        self
    }

    /// Log every blob GET to `path` (see [`FrontOptions::log`]).
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_path_buf());
        self
    }

    /// Restrict faults to blob `digest`.
    pub fn only_digest(mut self, digest: &str) -> Self {
        self.only_digest = Some(digest.to_string());
        self
    }

    /// Fault manifest GETs too.
    pub fn manifests(mut self) -> Self {
        self.manifests = true;
        self
    }
}
