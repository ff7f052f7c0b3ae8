//! One large blob fetched as several parallel `Range` requests and handed to the extractor in
//! order, so the single-pass hash → inflate → untar pipeline sees one stream. Over a link
//! where each connection gets a fraction of the bandwidth (CDNs, object stores, long round
//! trips), one stream leaves most of the link idle; a few ranges in flight fill it.
//!
//! Two halves run in the download's own task, so dropping the download (cancel, a sibling's
//! failure, the deadline) stops every request:
//!
//! * the *driver* starts the ranges in order, at most `rangeConnections` at once, each after
//!   reserving its length from the client's shared [`RangeBuffers`](crate::client::ranges);
//!   each range's bytes go into a channel of its own as they arrive;
//! * the *forwarder* reads those channels in order, passes the bytes on to the extractor and
//!   releases each range's reservation once it has passed all of them on.
//!
//! Memory therefore stays within the shared reservation (ranges fetched ahead wait there),
//! and the driver never waits on the extractor. Reservations are taken in order within a
//! blob, and a blob's first unfinished range always holds one, so every blob holding
//! reservations can finish the range the extractor waits for: no blob starves another for
//! good.
//!
//! A range that fails (reset, timeout, an early end) is asked again for its missing bytes
//! only, within the same retry budget as a single stream; a registry that answers a range
//! with anything but exactly that range fails the blob (the first range is checked before
//! any of this starts, `download.rs`, and a registry that ignores `Range` gets one stream).

use std::ops::Range;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::download::{DownloadError, MAX_STALLED_ATTEMPTS, SpeedFloor};
use super::reader::ChunkSender;
use crate::client::ranges::{BlobSource, RangeOptions};
use crate::client::retry::{Retry, pause};
use crate::client::{BlobResponse, RegistryClient, RegistryError, backoff};
use crate::manifest::LayerDescriptor;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;

/// What a range's channel carries: its bytes in order, or why it stopped for good.
type Piece = Result<Bytes, DownloadError>;

/// A range on its way to the forwarder: its span, its bytes, and its share of the buffer.
type Slot = (Range<u64>, UnboundedReceiver<Piece>, OwnedSemaphorePermit);

/// One blob being fetched in ranges.
pub(super) struct RangedBlob<'a> {
    pub client: &'a RegistryClient,
    pub reference: &'a Reference,
    pub layer: &'a LayerDescriptor,
    pub layer_index: usize,
    pub options: RangeOptions,
    pub source: BlobSource,
}

/// The first range, already answered with exactly its bytes.
pub(super) struct FirstRange {
    pub range: Range<u64>,
    pub response: BlobResponse,
    pub reserved: OwnedSemaphorePermit,
}

impl RangedBlob<'_> {
    /// Fetch bytes `from..` of the blob, starting with `first`, into `tx`; returns the
    /// blob's length.
    pub(super) async fn stream(
        &self,
        first: FirstRange,
        tx: &ChunkSender,
        progress: &ProgressSink,
        floor: &mut SpeedFloor,
    ) -> Result<u64, DownloadError> {
        let (slots, order) = unbounded_channel();
        let driver = self.drive(first, slots);
        let forwarder = self.forward(order, tx, progress, floor);
        let ((), n) = tokio::try_join!(driver, forwarder)?;
        Ok(n)
    }

    /// Start every range in order, at most `connections` at once.
    async fn drive(
        &self,
        first: FirstRange,
        slots: UnboundedSender<Slot>,
    ) -> Result<(), DownloadError> {
        let rest = self.options.chunks(first.range.end..self.layer.size);
        let mut fetches = FuturesUnordered::new();
        let (out, rx) = unbounded_channel();
        if slots
            .send((first.range.clone(), rx, first.reserved))
            .is_err()
        {
            return Ok(());
        }
        fetches.push(self.fetch(first.range, Some(first.response), out));
        for range in rest {
            while fetches.len() >= self.options.connections {
                fetches.next().await;
            }
            // Reserve the range's bytes, still driving the ranges in flight.
            let reserve = self.client.range_buffers().reserve(range.end - range.start);
            tokio::pin!(reserve);
            let reserved = loop {
                tokio::select! {
                    r = &mut reserve => break r,
                    Some(()) = fetches.next(), if !fetches.is_empty() => {}
                }
            };
            let (out, rx) = unbounded_channel();
            if slots.send((range.clone(), rx, reserved)).is_err() {
                // The forwarder stopped: its error ends the download.
                return Ok(());
            }
            fetches.push(self.fetch(range, None, out));
        }
        drop(slots);
        while fetches.next().await.is_some() {}
        Ok(())
    }

    /// Fetch `range` into `out`, resuming from where a failure left it.
    async fn fetch(
        &self,
        range: Range<u64>,
        first: Option<BlobResponse>,
        out: UnboundedSender<Piece>,
    ) {
        let mut at = range.start;
        let mut first = first;
        let mut stalled = 0u32;
        loop {
            let opened = match first.take() {
                Some(r) => Ok(r),
                None => self.open(at..range.end).await,
            };
            let before = at;
            let (failure, url) = match opened {
                Ok(resp) => {
                    let url = resp.response.url().to_string();
                    match read_range(resp, &mut at, range.end, &out).await {
                        Ok(()) => return,
                        Err(e) => (e, url),
                    }
                }
                Err(e) => {
                    let url = e.url().unwrap_or_default().to_owned();
                    (e, url)
                }
            };
            if at > before {
                stalled = 0;
            }
            stalled += 1;
            if !failure.is_transient() || stalled > MAX_STALLED_ATTEMPTS {
                let _ = out.send(Err(DownloadError::Registry(failure)));
                return;
            }
            pause(Retry {
                url: &url,
                retry: stalled,
                max_retries: MAX_STALLED_ATTEMPTS,
                wait: backoff(stalled),
                reason: format!(
                    "{}; asking again for bytes {at}-{} of the range",
                    failure.reason(),
                    range.end - 1
                ),
            })
            .await;
        }
    }

    /// Request `range`, accepting only an answer with exactly those bytes.
    async fn open(&self, range: Range<u64>) -> Result<BlobResponse, RegistryError> {
        let resp = self
            .client
            .open_range(
                self.reference,
                &self.layer.digest,
                range.clone(),
                &self.source,
            )
            .await?;
        match resp.content_range() {
            Some(c) if c.answers(&range, self.layer.size) => Ok(resp),
            got => Err(RegistryError::Protocol {
                url: resp.response.url().to_string(),
                detail: format!(
                    "asked for bytes {}-{} of {} and got {}",
                    range.start,
                    range.end - 1,
                    self.layer.size,
                    match got {
                        Some(c) => format!("bytes {}-{}", c.first, c.end - 1),
                        None => format!(
                            "HTTP {} without that range",
                            resp.response.status().as_u16()
                        ),
                    }
                ),
            }),
        }
    }

    /// Pass every range's bytes on in order; returns the blob's length.
    async fn forward(
        &self,
        mut order: UnboundedReceiver<Slot>,
        tx: &ChunkSender,
        progress: &ProgressSink,
        floor: &mut SpeedFloor,
    ) -> Result<u64, DownloadError> {
        let name = format!("blob {}", self.layer.digest);
        let mut offset = None;
        while let Some((range, mut pieces, reserved)) = order.recv().await {
            let mut at = *offset.get_or_insert(range.start);
            while let Some(piece) = pieces.recv().await {
                let bytes = piece?;
                at += bytes.len() as u64;
                floor.check(bytes.len() as u64, &name)?;
                tx.send(Ok(bytes))
                    .await
                    .map_err(|()| DownloadError::ReceiverGone)?;
                if progress.is_active() {
                    progress.emit(PullProgress::LayerDownloadProgress {
                        layer_index: self.layer_index,
                        digest: self.layer.digest.clone(),
                        downloaded_bytes: at,
                        total_bytes: Some(self.layer.size),
                    });
                }
            }
            if at != range.end {
                // The driver was dropped mid-range; only a stopping download gets here.
                return Err(DownloadError::TooShort {
                    expected: self.layer.size,
                    actual: at,
                });
            }
            offset = Some(at);
            drop(reserved);
        }
        Ok(offset.unwrap_or(self.layer.size))
    }
}

/// Read a range's body into `out`, advancing `at`; `Ok` once it reached `end` (or the
/// forwarder is gone), the failure otherwise.
async fn read_range(
    resp: BlobResponse,
    at: &mut u64,
    end: u64,
    out: &UnboundedSender<Piece>,
) -> Result<(), RegistryError> {
    let url = resp.response.url().to_string();
    let mut body = resp.response.bytes_stream();
    while let Some(next) = body.next().await {
        let bytes = next.map_err(|e| crate::client::network_error(&url, &e))?;
        if bytes.is_empty() {
            continue;
        }
        if *at + bytes.len() as u64 > end {
            return Err(RegistryError::Protocol {
                url,
                detail: format!("more bytes than the range ending at byte {}", end - 1),
            });
        }
        *at += bytes.len() as u64;
        if out.send(Ok(bytes)).is_err() {
            return Ok(());
        }
    }
    if *at == end {
        return Ok(());
    }
    Err(RegistryError::Network {
        url,
        detail: format!(
            "the body ended at byte {} of a range ending at byte {}",
            *at,
            end - 1
        ),
    })
}
