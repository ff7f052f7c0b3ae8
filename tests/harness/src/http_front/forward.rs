//! Forwarding one request to the upstream registry and relaying its response back,
//! streamed chunk by chunk, with optional body faults (cut, corrupt, stall) applied on
//! the way. Also recognises blob GET paths (`/v2/<name>/blobs/<digest>`).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http1::{self, Request};

/// Request headers never forwarded (hop-by-hop, or set by reqwest for the upstream).
const SKIP_REQUEST: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "upgrade",
    "expect",
];

/// Response headers never relayed (hop-by-hop; framing is redone here).
const SKIP_RESPONSE: &[&str] = &["connection", "keep-alive", "transfer-encoding"];

/// The registry behind a front.
pub(crate) struct Upstream {
    base: String,
    client: reqwest::Client,
}

impl Upstream {
    pub fn new(base_url: &str, ca_pem: Option<&Path>) -> io::Result<Upstream> {
        Ok(Upstream {
            base: base_url.trim_end_matches('/').to_string(),
            client: crate::tls::client_trusting(ca_pem, None)?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `req` to the upstream unchanged but for hop-by-hop headers.
    pub async fn forward(&self, req: &Request) -> reqwest::Result<reqwest::Response> {
        let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET);
        let url = format!("{}{}", self.base, req.target);
        let mut builder = self.client.request(method, url);
        for (k, v) in &req.headers {
            if !SKIP_REQUEST.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                builder = builder.header(k.as_str(), v.as_str());
            }
        }
        if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
            builder = builder.body(req.body.clone());
        }
        builder.send().await
    }
}

/// Faults applied to a relayed body; offsets count bytes of this response's body.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyPlan {
    /// Add every body byte written to the client to these counters.
    pub served: Vec<Arc<AtomicU64>>,
    /// Send this many body bytes, then drop the connection (with RST).
    pub cut_after: Option<u64>,
    /// Flip every bit of the byte at this offset.
    pub corrupt_at: Option<u64>,
    /// After this many bytes, pause for the duration (once; before a cut at the same offset).
    pub stall: Option<(u64, Duration)>,
    /// Leave `Content-Length` out: the body ends when the connection closes.
    pub no_length: bool,
}

/// If `req` is `GET /v2/<name>/blobs/<digest>`, its (name, digest).
pub(crate) fn blob_get(req: &Request) -> Option<(String, String)> {
    if req.method != "GET" {
        return None;
    }
    let rest = req.path().strip_prefix("/v2/")?;
    let (name, digest) = rest.rsplit_once("/blobs/")?;
    if name.is_empty() || digest.is_empty() || digest.contains('/') || digest == "uploads" {
        return None;
    }
    Some((name.to_string(), digest.to_string()))
}

/// Answers 502 when the upstream could not be reached.
pub(crate) async fn bad_gateway(stream: &mut TcpStream, err: &reqwest::Error) -> io::Result<()> {
    http1::write_simple(stream, 502, &[], format!("upstream: {err}").as_bytes()).await
}

/// Relays `resp` to `stream`: status, headers (upstream `Location`s under `upstream_base`
/// rewritten to `front_base`), then the body per `plan`.
pub(crate) async fn relay(
    stream: &mut TcpStream,
    mut resp: reqwest::Response,
    upstream_base: &str,
    front_base: &str,
    plan: BodyPlan,
) -> io::Result<()> {
    let mut headers = Vec::new();
    for (k, v) in resp.headers() {
        let name = k.as_str();
        if SKIP_RESPONSE.contains(&name) || (plan.no_length && name == "content-length") {
            continue;
        }
        let mut value = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if name == "location"
            && let Some(rest) = value.strip_prefix(upstream_base)
        {
            value = format!("{front_base}{rest}");
        }
        headers.push((name.to_string(), value));
    }
    http1::write_head(stream, resp.status().as_u16(), &headers).await?;

    let mut sent: u64 = 0;
    let mut stalled = false;
    let count = |n: usize| {
        for served in &plan.served {
            served.fetch_add(n as u64, Ordering::SeqCst);
        }
    };
    while let Some(chunk) = resp.chunk().await.map_err(io::Error::other)? {
        let mut chunk = chunk.to_vec();
        let end = sent + chunk.len() as u64;
        if let Some(at) = plan.corrupt_at
            && (sent..end).contains(&at)
        {
            chunk[(at - sent) as usize] ^= 0xFF;
        }
        let mut offset = 0usize;
        if let Some((after, pause)) = plan.stall
            && !stalled
            && (sent..end).contains(&after)
        {
            let upto = (after - sent) as usize;
            if plan.cut_after.is_none_or(|cut| after <= cut) {
                stream.write_all(&chunk[..upto]).await?;
                stream.flush().await?;
                count(upto);
                tokio::time::sleep(pause).await;
                offset = upto;
            }
            stalled = true;
        }
        if let Some(cut) = plan.cut_after
            && cut < end
        {
            let upto = cut.saturating_sub(sent) as usize;
            if upto > offset {
                stream.write_all(&chunk[offset..upto]).await?;
                count(upto - offset);
            }
            stream.flush().await?;
            stream.set_zero_linger()?;
            return Ok(());
        }
        stream.write_all(&chunk[offset..]).await?;
        count(chunk.len() - offset);
        sent = end;
    }
    if let Some((after, pause)) = plan.stall
        && !stalled
        && after >= sent
    {
        stream.flush().await?;
        tokio::time::sleep(pause).await;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn recognises_blob_gets() {
        assert_eq!(
            blob_get(&get("/v2/a/b/blobs/sha256:00")),
            Some(("a/b".to_string(), "sha256:00".to_string()))
        );
        assert_eq!(blob_get(&get("/v2/a/blobs/uploads/")), None);
        assert_eq!(blob_get(&get("/v2/a/blobs/uploads/123")), None);
        assert_eq!(blob_get(&get("/v2/a/manifests/latest")), None);
    }
}
