//! One large blob fetched as several parallel `Range` requests and handed to the extractor in
//! order, so the single-pass hash → inflate → untar pipeline sees one stream. Over a link
//! where each connection gets a fraction of the bandwidth (CDNs, object stores, long round
//! trips), one stream leaves most of the link idle; a few ranges in flight fill it.
//!
//! Ranges cost the registry a request each (a few milliseconds of its CPU) and buy nothing
//! where one stream already keeps the extractor busy, so by default
//! ([`RangeMode::Adaptive`](crate::RangeMode::Adaptive)) a blob starts as one request for all
//! of its bytes, the *lead*. Only once the extractor has waited for the lead's bytes for
//! [`SPLIT_AFTER`] × [`STARVED`] after its first byte, at a time when waiting has been at
//! least half of the time since that byte (the network, not the CPU, is the limit), is the
//! lead cut one chunk past what it has received, and the rest of the blob goes as ranges. A
//! registry nearby therefore sees one request per blob; over a long or narrow link the ranges
//! start a round trip or two after the first byte.
//! [`RangeMode::Eager`](crate::RangeMode::Eager) skips the lead: ranges from the first byte.
//!
//! The lead is read by the forwarder itself (`lead.rs`): its bytes go from the socket straight
//! to the extractor, as one stream's do, with no hop through a channel and no timer armed per
//! wait (the time spent waiting is measured when the bytes arrive). Two halves run in the
//! download's own task, so dropping the download (cancel, a sibling's failure, the deadline)
//! stops every request:
//!
//! * the *driver* waits for the lead's split (unless eager), then starts the ranges in order,
//!   each after reserving its length from the client's shared
//!   [`RangeBuffers`](crate::client::ranges); each range's bytes go into a channel of its own
//!   as they arrive. At most a *window* of
//!   requests is started and not yet passed on (the lead holds a place while it is read):
//!   two at first (the one being passed on and the next), one more for every
//!   [`STARVED`] the forwarder spends waiting for bytes, up to `rangeConnections`. Where the
//!   extractor is the limit (a registry nearby) ranges fetched further ahead would only take
//!   CPU and memory from it; over a long or narrow link the window opens within a few
//!   milliseconds of waiting;
//! * the *forwarder* reads the lead up to its end, then those channels in order, passes the
//!   bytes on to the extractor and releases each range's reservation once it has passed all
//!   of them on.
//!
//! Memory therefore stays within the shared reservation (ranges fetched ahead wait there),
//! and the driver never waits on the extractor. Reservations are taken in order within a
//! blob, and a blob's first unfinished range always holds one, so every blob holding
//! reservations can finish the range the extractor waits for: no blob starves another for
//! good.
//!
//! The lead holds no reservation: it is read no faster than the extractor takes its bytes, as
//! one stream is.
//!
//! Eager, the first two ranges go out together rather than after the first answer, saving a
//! round trip. A range that fails (reset, timeout, an early end) is asked again for
//! its missing bytes only, within the same retry budget as a single stream; a registry that
//! answers a range with anything but exactly that range (a `200` with the whole blob, another
//! span) turns the download into one stream from the bytes passed on so far
//! ([`Outcome::OneStream`]).

mod lead;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::{
    Receiver, Sender, UnboundedReceiver, UnboundedSender, channel, unbounded_channel,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use super::download::{DownloadError, SpeedFloor, Stalls};
use super::reader::ChunkSender;
use crate::client::ranges::{BlobSource, RangeOptions};
use crate::client::{BlobResponse, RegistryClient, RegistryError};
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

/// A range on its way to the forwarder: its bytes, its share of the buffer and its place in
/// the blob's window, both given back once it is passed on.
struct Slot {
    pieces: Receiver<Piece>,
    /// Where the range ends.
    end: u64,
    _reserved: OwnedSemaphorePermit,
    _place: OwnedSemaphorePermit,
}

/// Pieces a range's channel holds: its bytes are reserved already, so this only keeps the
/// channel's own bookkeeping bounded (a range waits, it is not lost, when it is full).
const RANGE_PIECES: usize = 1024;

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
    /// Told each time [`starved`](Self::starved) counts: the network, not the extractor, is
    /// the limit, so another range is worth starting.
    pub starving: Notify,
    /// [`STARVED`]s the forwarder waited for bytes that the driver has not yet answered with
    /// another range.
    pub starved: AtomicU32,
}

/// How a registry answered one range request.
enum Answer {
    /// Exactly the range.
    Range(BlobResponse),
    /// Something else (see [`Stop::NoRanges`]).
    Other(Option<BlobResponse>),
}

impl RangedBlob<'_> {
    /// Fetch bytes `from..` of the blob into `tx`: the lead first (unless eager), then the
    /// ranges. A registry that ignores `Range` is found out by its first answers, and then
    /// the blob goes on as one stream ([`Outcome::OneStream`]).
    pub(super) async fn stream(
        &self,
        from: u64,
        tx: &ChunkSender,
        progress: &ProgressSink,
        floor: &mut SpeedFloor,
    ) -> Result<Outcome, DownloadError> {
        let window = Arc::new(Semaphore::new(self.options.connections.min(2)));
        let (slots, order) = unbounded_channel();
        let (cut, split) = match self.options.eager {
            true => (None, None),
            false => {
                let (cut, split) = oneshot::channel();
                (Some(cut), Some(split))
            }
        };
        let forwarder = async {
            let mut pass = PassOn {
                tx,
                progress,
                floor,
                waits: Waits::default(),
                name: format!("blob {}", self.layer.digest),
            };
            let mut at = from;
            if let Some(cut) = cut {
                let place = window.clone().acquire_owned().await;
                match self.lead(from, cut, &mut pass).await? {
                    lead::End::Blob => return Ok(Outcome::Done(self.layer.size)),
                    lead::End::Cut(end) => at = end,
                    lead::End::NoRanges { at, response } => {
                        return Ok(Outcome::OneStream { at, response });
                    }
                }
                drop(place);
            }
            self.forward(at, order, &mut pass).await
        };
        // The driver's work is done when the forwarder's is; it never ends the race itself.
        let driver = async {
            let start = match split {
                None => Some(from),
                Some(split) => split.await.ok(),
            };
            if let Some(start) = start {
                self.drive(start, &window, slots).await;
            }
            std::future::pending().await
        };
        tokio::pin!(forwarder, driver);
        tokio::select! {
            biased;
            r = &mut forwarder => r,
            r = &mut driver => r,
        }
    }

    /// Start every range from `from` in order, at most a window of requests not yet passed
    /// on: two, widened by one for each [`STARVED`] the forwarder waits, up to
    /// `connections`.
    async fn drive(&self, from: u64, window: &Arc<Semaphore>, slots: UnboundedSender<Slot>) {
        let most = self.options.connections;
        let mut width = most.min(2);
        let mut fetches = FuturesUnordered::new();
        for range in self.options.chunks(from..self.layer.size) {
            let place = loop {
                tokio::select! {
                    p = window.clone().acquire_owned() => match p {
                        Ok(p) => break p,
                        Err(_) => return,
                    },
                    Some(()) = fetches.next(), if !fetches.is_empty() => {}
                    () = self.starving.notified(), if width < most => {
                        let more = (self.starved.swap(0, Ordering::SeqCst) as usize)
                            .clamp(1, most - width);
                        width += more;
                        window.add_permits(more);
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
            let (out, pieces) = channel(RANGE_PIECES);
            let slot = Slot {
                pieces,
                end: range.end,
                _reserved: reserved,
                _place: place,
            };
            if slots.send(slot).is_err() {
                // The forwarder has stopped.
                return;
            }
            fetches.push(self.fetch(range, out));
        }
        drop(slots);
        while fetches.next().await.is_some() {}
    }

    /// Tell the driver the forwarder waited `ticks` × [`STARVED`] for bytes while the
    /// network was the limit.
    fn starve(&self, ticks: u32) {
        if ticks > 0 {
            self.starved.fetch_add(ticks, Ordering::SeqCst);
            self.starving.notify_one();
        }
    }

    /// Fetch `range` into `out`, resuming from where a failure left it.
    async fn fetch(&self, range: Range<u64>, out: Sender<Piece>) {
        let (mut at, end) = (range.start, range.end);
        let mut stalls = Stalls::default();
        loop {
            let before = at;
            let failure = match self.open(at..end).await {
                Ok(Answer::Range(resp)) => match read_range(resp, &mut at, end, &out).await {
                    Ok(()) => return,
                    Err(e) => e,
                },
                Ok(Answer::Other(resp)) => {
                    self.stopped.store(true, Ordering::SeqCst);
                    let _ = out.send(Err(Stop::NoRanges(resp))).await;
                    return;
                }
                Err(e) => e,
            };
            if let Err(failure) = again(failure, at > before, &mut stalls, at..end).await {
                self.stopped.store(true, Ordering::SeqCst);
                let _ = out
                    .send(Err(Stop::Failed(DownloadError::Registry(failure))))
                    .await;
                return;
            }
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
        pass: &mut PassOn<'_>,
    ) -> Result<Outcome, DownloadError> {
        let mut at = from;
        while let Some(mut slot) = order.recv().await {
            while let Some(piece) = self.next_piece(&mut slot.pieces, &mut pass.waits).await {
                let bytes = match piece {
                    Ok(bytes) => bytes,
                    Err(Stop::Failed(e)) => return Err(e),
                    Err(Stop::NoRanges(response)) => {
                        return Ok(Outcome::OneStream { at, response });
                    }
                };
                at += bytes.len() as u64;
                pass.send(self, bytes, at).await?;
            }
            if at != slot.end {
                // A range's sender goes only at its end or with a `Stop`.
                return Err(DownloadError::TooShort {
                    expected: self.layer.size,
                    actual: at,
                });
            }
        }
        Ok(Outcome::Done(at))
    }

    /// The next piece of a range. Once the blob's bytes flow, every [`STARVED`] spent waiting
    /// while waiting is most of the forwarder's time ([`Waits::network_bound`]) tells the
    /// driver that the network is behind: time to start another range.
    async fn next_piece(&self, pieces: &mut Receiver<Piece>, waits: &mut Waits) -> Option<Piece> {
        if let Ok(piece) = pieces.try_recv() {
            return Some(piece);
        }
        if waits.since.is_none() {
            return pieces.recv().await;
        }
        let waiting = Instant::now();
        loop {
            match tokio::time::timeout(STARVED, pieces.recv()).await {
                Ok(piece) => {
                    waits.waited += waiting.elapsed();
                    return piece;
                }
                Err(_) if waits.network_bound(waiting.elapsed()) => self.starve(1),
                Err(_) => {}
            }
        }
    }
}

/// Where the forwarder's bytes go, and what it keeps while passing them on.
struct PassOn<'a> {
    tx: &'a ChunkSender,
    progress: &'a ProgressSink,
    floor: &'a mut SpeedFloor,
    waits: Waits,
    /// The blob, as the speed floor names it.
    name: String,
}

impl PassOn<'_> {
    /// Pass `bytes` on to the extractor, `at` being the blob's position after them.
    async fn send(
        &mut self,
        blob: &RangedBlob<'_>,
        bytes: Bytes,
        at: u64,
    ) -> Result<(), DownloadError> {
        let len = bytes.len() as u64;
        self.waits.flowing();
        self.floor.check(len, &self.name)?;
        self.tx
            .send(Ok(bytes))
            .await
            .map_err(|()| DownloadError::ReceiverGone)?;
        if self.progress.is_active() {
            self.progress.emit(PullProgress::LayerDownloadProgress {
                layer_index: blob.layer_index,
                digest: blob.layer.digest.clone(),
                downloaded_bytes: at,
                total_bytes: Some(blob.layer.size),
            });
        }
        Ok(())
    }
}

/// The forwarder's waits for bytes since the blob's first byte (the wait for the first
/// answer is a round trip, not a sign of a narrow link).
#[derive(Default)]
struct Waits {
    /// When the first byte was passed on.
    since: Option<Instant>,
    /// Time spent waiting for bytes since then.
    waited: Duration,
}

impl Waits {
    /// Bytes were passed on.
    fn flowing(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether waiting (`waiting` more in the current wait) has taken at least half the time
    /// since the first byte: the network, not the extractor, is the limit. A registry on a
    /// machine whose CPU the extraction saturates is late now and then, but the extractor
    /// still spends most of its time extracting.
    fn network_bound(&self, waiting: Duration) -> bool {
        self.since
            .is_some_and(|since| (self.waited + waiting) * 2 >= since.elapsed())
    }

    /// Count a wait of `waiting` that has ended: the [`STARVED`]s it spans if the network
    /// was the limit, else none (nor any before the first byte).
    fn waited(&mut self, waiting: Duration) -> u32 {
        if self.since.is_none() {
            return 0;
        }
        let bound = self.network_bound(waiting);
        self.waited += waiting;
        match bound {
            true => (waiting.as_micros() / STARVED.as_micros()) as u32,
            false => 0,
        }
    }
}

/// Waiting this long for a range's bytes widens the blob's window by one range.
const STARVED: Duration = Duration::from_millis(5);

/// Network-bound waits of [`STARVED`] for the lead's bytes, after its first, before it is
/// split into ranges: 15 ms at least. With the registry nearby, one stream hardly ever keeps
/// the extractor waiting (about 3 ms in all for a 60 MB blob on the bench); over a link with
/// a round trip of tens of milliseconds, slow start alone does within the first round trip.
const SPLIT_AFTER: u32 = 3;

/// After an attempt at `missing` failed (having `progressed` or not): wait before asking
/// again, or give the failure back when it is not transient or the attempts are spent.
async fn again(
    failure: RegistryError,
    progressed: bool,
    stalls: &mut Stalls,
    missing: Range<u64>,
) -> Result<(), RegistryError> {
    if !failure.is_transient() || !stalls.failed(progressed) {
        return Err(failure);
    }
    let reason = format!(
        "{}; asking again for bytes {}-{} of the range",
        failure.reason(),
        missing.start,
        missing.end.saturating_sub(1)
    );
    stalls
        .pause(failure.url().unwrap_or_default(), reason)
        .await;
    Ok(())
}

/// Read a range's body into `out`, advancing `at`; `Ok` once it reached `end` (or the
/// forwarder is gone), the failure otherwise.
async fn read_range(
    resp: BlobResponse,
    at: &mut u64,
    end: u64,
    out: &Sender<Piece>,
) -> Result<(), RegistryError> {
    let url = resp.response.url().to_string();
    let mut body = resp.response.bytes_stream();
    while let Some(next) = body.next().await {
        let bytes = next.map_err(|e| crate::client::network_error(&url, &e))?;
        if bytes.is_empty() {
            continue;
        }
        let len = bytes.len() as u64;
        if *at + len > end {
            return Err(RegistryError::Protocol {
                url,
                detail: format!("more bytes than the range ending at byte {}", end - 1),
            });
        }
        *at += len;
        if out.send(Ok(bytes)).await.is_err() {
            return Ok(());
        }
        if *at == end {
            return Ok(());
        }
    }
    match *at == end {
        true => Ok(()),
        false => Err(ended_early(url, *at, end)),
    }
}

/// A body that ended at byte `at` of a range ending before `end`.
fn ended_early(url: String, at: u64, end: u64) -> RegistryError {
    RegistryError::Network {
        url,
        detail: format!(
            "the body ended at byte {at} of a range ending at byte {}",
            end - 1
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{STARVED, Waits};

    #[test]
    fn waits_count_only_once_bytes_flow_and_the_network_is_the_limit() {
        let mut waits = Waits::default();
        // Before the first byte: the first answer's round trip.
        assert_eq!(waits.waited(STARVED * 10), 0);
        waits.flowing();
        // Waiting most of the time since the first byte: each STARVED counts.
        assert_eq!(waits.waited(STARVED * 3 + Duration::from_micros(10)), 3);
        // Far more time passed than was spent waiting: the extractor is the limit.
        waits.since = waits.since.and_then(|s| s.checked_sub(STARVED * 100));
        assert_eq!(waits.waited(STARVED * 2), 0);
    }
}
