//! The network side of parallel byte ranges: which blobs are fetched as several `Range`
//! requests ([`RangeOptions`]), the bound on blob connections per registry
//! ([`ConnectionLimits`]), the bound on bytes that ranges fetched ahead may hold across every
//! download of a client ([`RangeBuffers`]), the check that a `206` answers exactly the range
//! asked for ([`ContentRange`]), and where a blob's later ranges go once the first one was
//! redirected to a storage host ([`BlobSource`]). The scheduling of the ranges of one blob is
//! `layer/ranged.rs`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{BlobResponse, Need, RegistryClient, RegistryError, expect_success, header_str};
use crate::digest::Digest;
use crate::reference::Reference;

/// Bytes that ranges fetched ahead of the one being consumed may hold, across every download
/// of a client: what bounds a pull's memory however many large layers run at once. 24 MiB:
/// with four large layers at once over the bench's `wan` link, each request waits a round trip
/// before its bytes flow, so the reservation bounds the rate (about reservation ÷ (RTT + chunk
/// ÷ per-connection rate)). The big image took 12.8 s (mean of three) against 13.6 s at
/// 16 MiB and 12.9 s at 32 MiB, peaking at 50–61 MB RSS against 50–53 and 57–62 MB.
pub(crate) const RANGE_BUFFER_BYTES: u64 = 24 << 20;

/// How large blobs are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangeOptions {
    /// Bytes per `Range` request.
    pub chunk_size: u64,
    /// `Range` requests in flight per blob; 1 fetches every blob as one stream.
    pub connections: usize,
    /// Ranges from the first byte, rather than one stream first (`RangeMode::Eager`).
    pub eager: bool,
}

impl RangeOptions {
    /// Whether `remaining` bytes of a blob are worth fetching in ranges: at least two chunks.
    pub(crate) fn applies(&self, remaining: u64) -> bool {
        self.connections > 1 && self.chunk_size > 0 && remaining >= 2 * self.chunk_size
    }

    /// The ranges covering `span`, in order.
    pub(crate) fn chunks(&self, span: Range<u64>) -> Vec<Range<u64>> {
        let step = self.chunk_size.max(1);
        let mut out = Vec::new();
        let mut at = span.start;
        while at < span.end {
            let end = span.end.min(at.saturating_add(step));
            out.push(at..end);
            at = end;
        }
        out
    }
}

/// One semaphore per registry: blob requests in flight (each holds its permit until its body
/// is read or dropped), so the connections a registry sees stay bounded however many layers
/// and ranges run.
#[derive(Debug)]
pub(crate) struct ConnectionLimits {
    per_registry: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl ConnectionLimits {
    pub(crate) fn new(per_registry: usize) -> Self {
        ConnectionLimits {
            per_registry: per_registry.max(1),
            hosts: Mutex::default(),
        }
    }

    /// Wait for a connection to `registry`.
    pub(crate) async fn acquire(&self, registry: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(registry.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_registry)))
                .clone()
        };
        // The semaphore is never closed.
        match sem.acquire_owned().await {
            Ok(p) => p,
            Err(_) => unreachable!("connection semaphores are never closed"),
        }
    }
}

/// The bytes of ranges fetched ahead, shared by every download of a client (at most
/// [`RANGE_BUFFER_BYTES`], or two chunks if a chunk is larger).
#[derive(Debug, Clone)]
pub(crate) struct RangeBuffers {
    bytes: Arc<Semaphore>,
    total: u64,
}

impl RangeBuffers {
    pub(crate) fn new(chunk_size: u64) -> Self {
        let total = RANGE_BUFFER_BYTES.max(chunk_size.saturating_mul(2));
        let total = total.min(u64::from(u32::MAX));
        RangeBuffers {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Wait until `len` bytes may be held.
    pub(crate) async fn reserve(&self, len: u64) -> OwnedSemaphorePermit {
        let n = len.min(self.total) as u32;
        match self.bytes.clone().acquire_many_owned(n).await {
            Ok(p) => p,
            Err(_) => unreachable!("range buffers are never closed"),
        }
    }
}

/// A `Content-Range: bytes FIRST-LAST/TOTAL` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// The bytes sent, end exclusive.
    pub first: u64,
    pub end: u64,
    /// The whole length, when the server says (`*` otherwise).
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parse the header's value; `None` when it is not a satisfied byte range.
    pub(crate) fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (span, total) = rest.split_once('/')?;
        let (first, last) = span.trim().split_once('-')?;
        let (first, last) = (
            first.trim().parse::<u64>().ok()?,
            last.trim().parse::<u64>().ok()?,
        );
        if last < first {
            return None;
        }
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse::<u64>().ok()?),
        };
        Some(ContentRange {
            first,
            end: last.checked_add(1)?,
            total,
        })
    }

    /// Whether this answers `asked` of a blob of `size` bytes exactly.
    pub(crate) fn answers(&self, asked: &Range<u64>, size: u64) -> bool {
        self.first == asked.start && self.end == asked.end && self.total.is_none_or(|t| t == size)
    }
}

/// Where the ranges of one blob are requested: through the registry, or, once a range was
/// redirected to a storage host (a signed URL), straight there, saving the redirect's round
/// trip on every later range. A storage URL that stops working (expired) is forgotten and
/// the registry asked again.
#[derive(Debug, Default)]
pub(crate) struct BlobSource {
    direct: Mutex<Option<Url>>,
}

impl BlobSource {
    fn direct(&self) -> Option<Url> {
        self.direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, url: Option<Url>) {
        *self.direct.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// Remember where a response the registry redirected came from.
    pub(crate) fn learn(&self, resp: &BlobResponse) {
        if resp.redirected {
            self.set(Some(resp.response.url().clone()));
        }
    }
}

/// The `Range` header for `range` (`bytes=FIRST-` when it runs to the end).
pub(super) fn range_header(range: &Range<u64>, to_end: bool) -> Result<HeaderValue, RegistryError> {
    let v = if to_end {
        format!("bytes={}-", range.start)
    } else {
        format!("bytes={}-{}", range.start, range.end.saturating_sub(1))
    };
    HeaderValue::from_str(&v).map_err(|e| RegistryError::Protocol {
        url: String::new(),
        detail: e.to_string(),
    })
}

impl RegistryClient {
    /// Whether a blob with `remaining` bytes to fetch is fetched in ranges.
    pub(crate) fn ranges_for(&self, remaining: u64) -> Option<RangeOptions> {
        self.opts
            .ranges
            .applies(remaining)
            .then_some(self.opts.ranges)
    }

    /// The client's shared buffer for ranges fetched ahead.
    pub(crate) fn range_buffers(&self) -> &RangeBuffers {
        &self.range_buffers
    }

    /// Request bytes `range` of a blob (exactly: the caller checks the answer with
    /// [`BlobResponse::content_range`]), from `source`'s storage URL when it has one.
    pub(crate) async fn open_range(
        &self,
        r: &Reference,
        digest: &Digest,
        range: Range<u64>,
        source: &BlobSource,
    ) -> Result<BlobResponse, RegistryError> {
        if let Some(url) = source.direct() {
            match self.open_direct(r, &url, &range).await {
                Ok(resp) if resp.partial => return Ok(resp),
                // Expired, refused or not a range any more: through the registry again.
                Ok(_) | Err(_) => source.set(None),
            }
        }
        let resp = self
            .with_endpoints(r, Need::Pull, |ep| {
                let range = range.clone();
                async move { self.open_blob_at(&ep, r, digest, range, false).await }
            })
            .await?;
        source.learn(&resp);
        Ok(resp)
    }

    /// `GET` a storage URL with a `Range`, without the registry's credentials.
    async fn open_direct(
        &self,
        r: &Reference,
        url: &Url,
        range: &Range<u64>,
    ) -> Result<BlobResponse, RegistryError> {
        let permit = self.connections.acquire(r.registry()).await;
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, range_header(range, false)?);
        let req = self
            .http_for(&super::url_host(url))?
            .get(url.clone())
            .headers(headers);
        let resp = self.send_retrying(req, url).await?;
        let resp = expect_success(resp, url, "blob").await?;
        Ok(BlobResponse::new(resp, permit, true))
    }
}

impl BlobResponse {
    pub(super) fn new(
        response: reqwest::Response,
        permit: OwnedSemaphorePermit,
        redirected: bool,
    ) -> Self {
        let partial = response.status() == StatusCode::PARTIAL_CONTENT;
        BlobResponse {
            response,
            partial,
            redirected,
            _connection: permit,
        }
    }

    /// The range a `206` says it holds.
    pub(crate) fn content_range(&self) -> Option<ContentRange> {
        if !self.partial {
            return None;
        }
        header_str(self.response.headers(), header::CONTENT_RANGE)
            .as_deref()
            .and_then(ContentRange::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed_and_checked() {
        let c = ContentRange::parse("bytes 0-99/1000").unwrap();
        assert_eq!((c.first, c.end, c.total), (0, 100, Some(1000)));
        assert!(c.answers(&(0..100), 1000));
        assert!(!c.answers(&(0..100), 999), "another blob's length");
        assert!(!c.answers(&(0..101), 1000), "a shorter range than asked");
        assert!(!c.answers(&(1..100), 1000));
        let c = ContentRange::parse("bytes 5-9/*").unwrap();
        assert_eq!((c.first, c.end, c.total), (5, 10, None));
        assert!(c.answers(&(5..10), 123));
        for bad in [
            "",
            "bytes */1000",
            "bytes 9-5/10",
            "items 0-1/2",
            "bytes 0-x/2",
            "bytes 0-1",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chunks_cover_the_span_in_order() {
        let o = RangeOptions {
            chunk_size: 10,
            connections: 4,
            eager: false,
        };
        assert_eq!(o.chunks(5..30), vec![5..15, 15..25, 25..30]);
        assert_eq!(o.chunks(0..20), vec![0..10, 10..20]);
        assert!(o.chunks(7..7).is_empty());
        assert!(o.applies(20) && !o.applies(19));
        assert!(
            !RangeOptions {
                connections: 1,
                ..o
            }
            .applies(1000)
        );
    }

    #[test]
    fn range_headers() {
        assert_eq!(range_header(&(10..20), false).unwrap(), "bytes=10-19");
        assert_eq!(range_header(&(10..20), true).unwrap(), "bytes=10-");
    }
}
