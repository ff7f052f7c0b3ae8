//! Helpers shared by the harness's integration tests: an HTTP client trusting a test CA,
//! and plain registry-API reads (manifests, blobs) used to check what was pushed.

#![allow(dead_code)]

use std::path::Path;

use reqwest::header::{ACCEPT, AUTHORIZATION};

/// Every manifest and index media type, for `Accept`.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A client that trusts only `ca` (if given) and never follows redirects.
pub fn client(ca: Option<&Path>) -> reqwest::Client {
    let mut b = msbimage_testkit::tls::client_builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
    }
    b.build().unwrap()
}

/// What a GET returned.
pub struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
    pub digest_header: Option<String>,
    pub content_type: Option<String>,
}

/// `GET {base}/v2/{repo}/manifests/{reference}` with all manifest types accepted.
pub async fn get_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    auth: Option<&str>,
) -> Fetched {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    let mut req = client.get(url).header(ACCEPT, ACCEPT_MANIFESTS);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    fetched(req.send().await.unwrap()).await
}

/// `GET {base}/v2/{repo}/blobs/{digest}`.
pub async fn get_blob(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    digest: &str,
    auth: Option<&str>,
) -> Fetched {
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    fetched(req.send().await.unwrap()).await
}

async fn fetched(resp: reqwest::Response) -> Fetched {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let digest_header = header("docker-content-digest");
    let content_type = header("content-type");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap().to_vec();
    Fetched {
        status,
        body,
        digest_header,
        content_type,
    }
}

/// `Basic` header value.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}
