//! Pushing fixtures through the registry HTTP API (distribution spec): monolithic blob
//! uploads (`POST …/blobs/uploads/` then `PUT <location>?digest=`), skipped when `HEAD`
//! finds the blob; manifest and index `PUT`s. It answers 401 challenges with Basic
//! credentials or a Bearer token (push scope) via the crate's authenticator.

use std::path::Path;

use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};

use crate::auth::{AuthError, Authenticator};
use crate::image::{Image, ImageIndex};
use crate::layer::sha256_digest;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Transport or authentication failure.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: {status}: {body}")]
    Status {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Response status code.
        status: u16,
        /// Response body (registry error JSON, usually).
        body: String,
    },
    /// Reading a CA file or building the client failed.
    #[error("setup: {0}")]
    Setup(String),
}

impl PushError {
    /// The HTTP status if the registry refused, e.g. 401 for an anonymous push.
    pub fn status(&self) -> Option<u16> {
        match self {
            PushError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for PushError {
    fn from(e: reqwest::Error) -> Self {
        PushError::Auth(AuthError::Http(e))
    }
}

/// Pushes blobs, manifests, images and indexes to one registry.
pub struct Pusher {
    base_url: String,
    credentials: Option<(String, String)>,
    /// The CA PEM to trust and the client identity PEM (certificate + key) to present.
    tls: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    auth: Authenticator,
}

impl Pusher {
    /// A pusher for `registry_base_url` (e.g. [`crate::Registry::base_url`]), anonymous.
    pub fn new(registry_base_url: &str) -> Self {
        let base_url = registry_base_url.trim_end_matches('/').to_string();
        Pusher::assemble(base_url, None, (None, None)).expect("default client")
    }

    fn assemble(
        base_url: String,
        credentials: Option<(String, String)>,
        tls: (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    ) -> Result<Self, PushError> {
        let client = crate::tls::client_trusting(tls.0.as_deref(), tls.1.as_deref())
            .map_err(|e| PushError::Setup(e.to_string()))?;
        Ok(Pusher {
            auth: Authenticator::new(client, credentials.clone()),
            base_url,
            credentials,
            tls,
        })
    }

    /// Uses `user`/`pass` for Basic challenges and for token requests.
    pub fn with_basic(self, user: &str, pass: &str) -> Self {
        let creds = Some((user.to_string(), pass.to_string()));
        Pusher::assemble(self.base_url, creds, self.tls).expect("client")
    }

    /// Trusts only the CA in `pem_path` (for a TLS registry).
    ///
    /// # Panics
    /// If the file can't be read or parsed.
    pub fn with_ca(self, pem_path: &Path) -> Self {
        let tls = (Some(pem_path.to_path_buf()), self.tls.1);
        Pusher::assemble(self.base_url, self.credentials, tls)
            .unwrap_or_else(|e| panic!("Pusher::with_ca({}): {e}", pem_path.display()))
    }

    /// Presents the client certificate and key in `pem_path` (one PEM file holding both; see
    /// [`crate::Registry::client_identity_path`]), for a registry that requires one.
    ///
    /// # Panics
    /// If the file can't be read or parsed.
    pub fn with_client_identity(self, pem_path: &Path) -> Self {
        let tls = (self.tls.0, Some(pem_path.to_path_buf()));
        Pusher::assemble(self.base_url, self.credentials, tls)
            .unwrap_or_else(|e| panic!("Pusher::with_client_identity({}): {e}", pem_path.display()))
    }

    fn scope(repo: &str) -> String {
        format!("repository:{repo}:pull,push")
    }

    async fn send(
        &self,
        repo: &str,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, PushError> {
        let scope = Pusher::scope(repo);
        let client = self.auth.client().clone();
        let resp = self
            .auth
            .send(repo, Some(&scope), || {
                let mut req = client.request(method.clone(), url);
                if let Some(ct) = content_type {
                    req = req.header(CONTENT_TYPE, ct);
                }
                match body {
                    Some(b) => req.header(CONTENT_LENGTH, b.len()).body(b.to_vec()),
                    None if method == Method::POST || method == Method::PUT => {
                        req.header(CONTENT_LENGTH, 0)
                    }
                    None => req,
                }
            })
            .await?;
        Ok(resp)
    }

    async fn expect(
        resp: reqwest::Response,
        method: &str,
        url: &str,
        ok: &[u16],
    ) -> Result<reqwest::Response, PushError> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(PushError::Status {
            method: method.to_string(),
            url: url.to_string(),
            status,
            body,
        })
    }

    /// Uploads `bytes` as a blob of `repo` unless it is already there; returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, PushError> {
        let digest = sha256_digest(bytes);
        let head_url = format!("{}/v2/{repo}/blobs/{digest}", self.base_url);
        let head = self.send(repo, Method::HEAD, &head_url, None, None).await?;
        if head.status().is_success() {
            return Ok(digest);
        }
        let start_url = format!("{}/v2/{repo}/blobs/uploads/", self.base_url);
        let resp = self
            .send(repo, Method::POST, &start_url, None, None)
            .await?;
        let resp = Pusher::expect(resp, "POST", &start_url, &[202]).await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Setup(format!("POST {start_url}: no Location")))?
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base_url)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let resp = self
            .send(
                repo,
                Method::PUT,
                &put_url,
                Some("application/octet-stream"),
                Some(bytes),
            )
            .await?;
        Pusher::expect(resp, "PUT", &put_url, &[201]).await?;
        Ok(digest)
    }

    /// Puts a manifest (or index) under `reference` (tag or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<String, PushError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base_url);
        let resp = self
            .send(repo, Method::PUT, &url, Some(media_type), Some(bytes))
            .await?;
        let resp = Pusher::expect(resp, "PUT", &url, &[201]).await?;
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| sha256_digest(bytes));
        Ok(digest)
    }

    /// Pushes `image`'s layers and config, then its manifest under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &Image) -> Result<(), PushError> {
        self.push_image_blobs(repo, image).await?;
        self.push_manifest(repo, tag, &image.manifest, &image.manifest_media_type)
            .await?;
        Ok(())
    }

    async fn push_image_blobs(&self, repo: &str, image: &Image) -> Result<(), PushError> {
        for layer in &image.layers {
            self.push_blob(repo, &layer.blob).await?;
        }
        self.push_blob(repo, &image.config).await?;
        Ok(())
    }

    /// Pushes each of `images` by digest (all manifests the index refers to, attestation
    /// manifests included), then `index` under `tag`.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        index: &ImageIndex,
        images: &[&Image],
    ) -> Result<(), PushError> {
        for image in images {
            self.push_image_blobs(repo, image).await?;
            self.push_manifest(
                repo,
                &image.manifest_digest,
                &image.manifest,
                &image.manifest_media_type,
            )
            .await?;
        }
        self.push_manifest(repo, tag, &index.bytes, &index.media_type)
            .await?;
        Ok(())
    }
}
