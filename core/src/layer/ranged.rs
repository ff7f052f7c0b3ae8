//! One large blob fetched as several parallel `Range` requests and handed to the extractor in
//! order, so the single-pass hash → inflate → untar pipeline sees one stream. Over a link
//! where each connection gets a fraction of the bandwidth (CDNs, object stores, long round
//! trips), one stream leaves most of the link idle; a few ranges in flight fill it.
//!
//! Two halves run in the download's own task, so dropping the download (cancel, a sibling's
//! failure, the deadline) stops every request:
//!
//! * the *driver* starts the ranges in order, each after reserving its length from the
//!   client's shared [`RangeBuffers`](crate::client::ranges); each range's bytes go into a
//!   channel of its own as they arrive. At most a *window* of ranges is started and not yet
//!   passed on: two at first (the one being passed on and the next), one more for every
//!   [`STARVED`] the forwarder spends waiting for bytes, up to `rangeConnections`. Where the
//!   extractor is the limit (a registry nearby) ranges fetched further ahead would only take
//!   CPU and memory from it; over a long or narrow link the window opens within a few
//!   milliseconds of waiting;
//! * the *forwarder* reads those channels in order, passes the bytes on to the extractor and
//!   releases each range's reservation once it has passed all of them on.
//!
//! Memory therefore stays within the shared reservation (ranges fetched ahead wait there),
//! and the driver never waits on the extractor. Reservations are taken in order within a
//! blob, and a blob's first unfinished range always holds one, so every blob holding
//! reservations can finish the range the extractor waits for: no blob starves another for
//! good.
//!
//! The first two ranges go out together rather than after the first answer, saving a round
//! trip. A range that fails (reset, timeout, an early end) is asked again for
//! its missing bytes only, within the same retry budget as a single stream; a registry that
//! answers a range with anything but exactly that range (a `200` with the whole blob, another
//! span) turns the download into one stream from the bytes passed on so far
//! ([`Outcome::OneStream`]).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::download::{DownloadError, MAX_STALLED_ATTEMPTS, SpeedFloor};
use super::reader::ChunkSender;
use crate::client::ranges::{BlobSource, RangeOptions};
use crate::client::retry::{Retry, pause};
use crate::client::{BlobResponse, RegistryClient, RegistryError, backoff};
use crate::manifest::LayerDescriptor;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;

/// Why a range stopped short of its end for good.
pub(super) enum Stop {
    /// The download failed.
    Failed(DownloadError),
    /// The registry answered a range with something else: the whole blob (`200`, kept to
    /// be read as one stream) or another span.
    NoRanges(Option<BlobResponse>),
}

impl From<DownloadError> for Stop {
    fn from(e: DownloadError) -> Self {
        Stop::Failed(e)
    }
}

/// How a ranged download ended.
pub(super) enum Outcome {
    /// Every byte passed on: the blob's length.
    Done(u64),
    /// The registry does not serve ranges as asked: go on as one stream from byte `at`,
    /// with `response` (the whole blob) when one came.
    OneStream {
        at: u64,
        response: Option<BlobResponse>,
    },
}

/// What a range's channel carries: its bytes in order, or why it stopped.
type Piece = Result<Bytes, Stop>;

/// A range on its way to the forwarder: its span, its bytes, its share of the buffer and its
/// place in the blob's window (both given back once it is passed on).
type Slot = (
    Range<u64>,
    UnboundedReceiver<Piece>,
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
);

/// One blob being fetched in ranges.
pub(super) struct RangedBlob<'a> {
    pub client: &'a RegistryClient,
    pub reference: &'a Reference,
    pub layer: &'a LayerDescriptor,
    pub layer_index: usize,
    pub options: RangeOptions,
    pub source: BlobSource,
    /// Set when a range stopped for good: no range is started after that.
    pub stopped: AtomicBool,
    /// Told by the forwarder for every [`STARVED`] it waits for bytes: the network, not the
    /// extractor, is the limit, so another range is worth starting.
    pub starved: Notify,
}

/// How a registry answered one range request.
enum Answer {
    /// Exactly the range.
    Range(BlobResponse),
    /// Something else (see [`Stop::NoRanges`]).
    Other(Option<BlobResponse>),
}

impl RangedBlob<'_> {
    /// Fetch bytes `from..` of the blob into `tx`. The first ranges go out together: a
    /// registry that ignores `Range` is found out by their answers, and then the blob goes
    /// on as one stream ([`Outcome::OneStream`]).
    pub(super) async fn stream(
        &self,
        from: u64,
        tx: &ChunkSender,
        progress: &ProgressSink,
        floor: &mut SpeedFloor,
    ) -> Result<Outcome, DownloadError> {
        let (slots, order) = unbounded_channel();
        let forwarder = self.forward(from, order, tx, progress, floor);
        // The driver's work is done when the forwarder's is; it never ends the race itself.
        let driver = async {
            self.drive(from, slots).await;
            std::future::pending().await
        };
        tokio::pin!(forwarder, driver);
        tokio::select! {
            biased;
            r = &mut forwarder => r,
            r = &mut driver => r,
        }
    }

    /// Start every range in order, at most a window of them not yet passed on: two, widened
    /// by one each time the forwarder starves, up to `connections`.
    async fn drive(&self, from: u64, slots: UnboundedSender<Slot>) {
        let most = self.options.connections;
        let mut width = most.min(2);
        let window = Arc::new(Semaphore::new(width));
        let mut fetches = FuturesUnordered::new();
        for range in self.options.chunks(from..self.layer.size) {
            let place = loop {
                tokio::select! {
                    p = window.clone().acquire_owned() => match p {
                        Ok(p) => break p,
                        Err(_) => return,
                    },
                    Some(()) = fetches.next(), if !fetches.is_empty() => {}
                    () = self.starved.notified(), if width < most => {
                        width += 1;
                        window.add_permits(1);
                    }
                }
            };
            if self.stopped.load(Ordering::SeqCst) {
                break;
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
            if slots.send((range.clone(), rx, reserved, place)).is_err() {
                // The forwarder has stopped.
                return;
            }
            fetches.push(self.fetch(range, out));
        }
        drop(slots);
        while fetches.next().await.is_some() {}
    }

    /// Fetch `range` into `out`, resuming from where a failure left it.
    async fn fetch(&self, range: Range<u64>, out: UnboundedSender<Piece>) {
        let mut at = range.start;
        let mut stalled = 0u32;
        loop {
            let before = at;
            let (failure, url) = match self.open(at..range.end).await {
                Ok(Answer::Range(resp)) => {
                    let url = resp.response.url().to_string();
                    match read_range(resp, &mut at, range.end, &out).await {
                        Ok(()) => return,
                        Err(e) => (e, url),
                    }
                }
                Ok(Answer::Other(resp)) => {
                    self.stopped.store(true, Ordering::SeqCst);
                    let _ = out.send(Err(Stop::NoRanges(resp)));
                    return;
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
                self.stopped.store(true, Ordering::SeqCst);
                let _ = out.send(Err(Stop::Failed(DownloadError::Registry(failure))));
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

    /// Request `range` and sort the answer: exactly the range, or anything else.
    async fn open(&self, range: Range<u64>) -> Result<Answer, RegistryError> {
        let resp = self
            .client
            .open_range(
                self.reference,
                &self.layer.digest,
                range.clone(),
                &self.source,
            )
            .await?;
        if !resp.partial {
            return Ok(Answer::Other(Some(resp)));
        }
        Ok(match resp.content_range() {
            Some(c) if c.answers(&range, self.layer.size) => Answer::Range(resp),
            _ => Answer::Other(None),
        })
    }

    /// Pass every range's bytes on in order, from byte `from`.
    async fn forward(
        &self,
        from: u64,
        mut order: UnboundedReceiver<Slot>,
        tx: &ChunkSender,
        progress: &ProgressSink,
        floor: &mut SpeedFloor,
    ) -> Result<Outcome, DownloadError> {
        let name = format!("blob {}", self.layer.digest);
        let mut at = from;
        while let Some((range, mut pieces, reserved, place)) = order.recv().await {
            loop {
                let Some(piece) = self.next_piece(&mut pieces).await else {
                    break;
                };
                let bytes = match piece {
                    Ok(bytes) => bytes,
                    Err(Stop::Failed(e)) => return Err(e),
                    Err(Stop::NoRanges(response)) => {
                        return Ok(Outcome::OneStream { at, response });
                    }
                };
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
                // A range's sender goes only at its end or with a `Stop`.
                return Err(DownloadError::TooShort {
                    expected: self.layer.size,
                    actual: at,
                });
            }
            drop((reserved, place));
        }
        Ok(Outcome::Done(at))
    }
}

impl RangedBlob<'_> {
    /// The next piece of a range; every [`STARVED`] spent waiting for it tells the driver
    /// that the network is behind and another range is worth starting.
    async fn next_piece(&self, pieces: &mut UnboundedReceiver<Piece>) -> Option<Piece> {
        loop {
            match tokio::time::timeout(STARVED, pieces.recv()).await {
                Ok(piece) => return piece,
                Err(_) => self.starved.notify_one(),
            }
        }
    }
}

/// Waiting this long for a range's bytes widens the blob's window by one range.
const STARVED: std::time::Duration = std::time::Duration::from_millis(5);

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
