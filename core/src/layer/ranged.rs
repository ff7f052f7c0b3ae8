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
//! Two halves run in the download's own task, so dropping the download (cancel, a sibling's
//! failure, the deadline) stops every request:
//!
//! * the *driver* starts the lead (unless eager), then the ranges in order, each after
//!   reserving its length from the client's shared [`RangeBuffers`](crate::client::ranges); each range's bytes go into a
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
//! The lead holds no reservation: its channel is bounded by [`LEAD_PIECES`] pieces, so it
//! reads the socket no faster than the extractor takes its bytes, as one stream does.
//!
//! Eager, the first two ranges go out together rather than after the first answer, saving a
//! round trip. A range that fails (reset, timeout, an early end) is asked again for
//! its missing bytes only, within the same retry budget as a single stream; a registry that
//! answers a range with anything but exactly that range (a `200` with the whole blob, another
//! span) turns the download into one stream from the bytes passed on so far
//! ([`Outcome::OneStream`]).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::{
    Receiver, Sender, UnboundedReceiver, UnboundedSender, channel, unbounded_channel,
};
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

/// A range on its way to the forwarder: its bytes, its share of the buffer (none for the
/// lead) and its place in the blob's window, both given back once it is passed on.
struct Slot {
    pieces: Receiver<Piece>,
    /// Where the range ends: fixed, or the lead's end, which a split may pull in.
    end: End,
    _reserved: Option<OwnedSemaphorePermit>,
    _place: OwnedSemaphorePermit,
}

/// Where a range ends.
#[derive(Clone)]
enum End {
    Fixed(u64),
    Lead(Arc<Lead>),
}

impl End {
    fn get(&self) -> u64 {
        match self {
            End::Fixed(end) => *end,
            End::Lead(lead) => lead.end(),
        }
    }
}

/// Pieces a lead's channel holds: the lead reads its socket no further ahead of the
/// extractor than one stream does (a piece can be a few hundred KiB: more would cost memory
/// for every large layer at once).
const LEAD_PIECES: usize = 1;
/// Pieces a range's channel holds: its bytes are reserved already, so this only keeps the
/// channel's own bookkeeping bounded (a range waits, it is not lost, when it is full).
const RANGE_PIECES: usize = 1024;

/// The lead of an adaptive download: one request for the rest of the blob, read up to an end
/// that a split pulls in. The position and the end change under one lock, so a split never
/// cuts behind bytes already received.
struct Lead {
    span: Mutex<Range<u64>>,
}

impl Lead {
    fn new(span: Range<u64>) -> Self {
        Lead {
            span: Mutex::new(span),
        }
    }

    fn end(&self) -> u64 {
        self.span.lock().unwrap_or_else(|p| p.into_inner()).end
    }

    /// Take `len` more bytes at the lead's position: how many of them are before its end.
    fn advance(&self, len: u64) -> u64 {
        let mut span = self.span.lock().unwrap_or_else(|p| p.into_inner());
        let n = len.min(span.end - span.start);
        span.start += n;
        n
    }

    /// End the lead `ahead` bytes past what it has received, if at least `rest` bytes are
    /// left after that for ranges; the new end.
    fn split(&self, ahead: u64, rest: u64) -> Option<u64> {
        let mut span = self.span.lock().unwrap_or_else(|p| p.into_inner());
        let cut = span.start.saturating_add(ahead);
        if cut.saturating_add(rest) > span.end {
            return None;
        }
        span.end = cut;
        Some(cut)
    }
}

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

    /// Start the lead (unless eager) and, once it is split, every range in order, at most a
    /// window of them not yet passed on: two, widened by one each time the forwarder starves,
    /// up to `connections`.
    async fn drive(&self, from: u64, slots: UnboundedSender<Slot>) {
        let most = self.options.connections;
        let mut width = most.min(2);
        let window = Arc::new(Semaphore::new(width));
        let mut fetches = FuturesUnordered::new();
        let mut next = from;
        if !self.options.eager {
            let Ok(place) = window.clone().acquire_owned().await else {
                return;
            };
            let lead = Arc::new(Lead::new(from..self.layer.size));
            let (out, pieces) = channel(LEAD_PIECES);
            let end = End::Lead(lead.clone());
            let slot = Slot {
                pieces,
                end: end.clone(),
                _reserved: None,
                _place: place,
            };
            if slots.send(slot).is_err() {
                return;
            }
            fetches.push(self.fetch(from, end, out));
            match self.split_when_starved(&lead, &mut fetches).await {
                Some(cut) => next = cut,
                None => {
                    // One stream to the end.
                    while fetches.next().await.is_some() {}
                    return;
                }
            }
        }
        for range in self.options.chunks(next..self.layer.size) {
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
            let (out, pieces) = channel(RANGE_PIECES);
            let end = End::Fixed(range.end);
            let slot = Slot {
                pieces,
                end: end.clone(),
                _reserved: Some(reserved),
                _place: place,
            };
            if slots.send(slot).is_err() {
                // The forwarder has stopped.
                return;
            }
            fetches.push(self.fetch(range.start, end, out));
        }
        drop(slots);
        while fetches.next().await.is_some() {}
    }

    /// Drive the lead until the forwarder has starved [`SPLIT_AFTER`] times, then split it
    /// one chunk past what it has received; the split point, or `None` when the lead ended
    /// first or too little is left to be worth ranges.
    async fn split_when_starved<F: std::future::Future<Output = ()>>(
        &self,
        lead: &Lead,
        fetches: &mut FuturesUnordered<F>,
    ) -> Option<u64> {
        let mut starved = 0;
        while starved < SPLIT_AFTER {
            tokio::select! {
                // The lead, the only fetch yet, ended.
                _ = fetches.next() => return None,
                () = self.starved.notified() => starved += 1,
            }
        }
        if self.stopped.load(Ordering::SeqCst) {
            return None;
        }
        let chunk = self.options.chunk_size;
        lead.split(chunk, chunk)
    }

    /// Fetch the bytes from `start` up to `end` (which a split may pull in) into `out`,
    /// resuming from where a failure left it.
    async fn fetch(&self, start: u64, end: End, out: Sender<Piece>) {
        let mut at = start;
        let mut stalled = 0u32;
        loop {
            let before = at;
            let (failure, url) = match self.open(at..end.get()).await {
                Ok(Answer::Range(resp)) => {
                    let url = resp.response.url().to_string();
                    match read_range(resp, &mut at, &end, &out).await {
                        Ok(()) => return,
                        Err(e) => (e, url),
                    }
                }
                Ok(Answer::Other(resp)) => {
                    self.stopped.store(true, Ordering::SeqCst);
                    let _ = out.send(Err(Stop::NoRanges(resp))).await;
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
                let _ = out
                    .send(Err(Stop::Failed(DownloadError::Registry(failure))))
                    .await;
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
                    end.get().saturating_sub(1)
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
        let mut waits = Waits::default();
        while let Some(mut slot) = order.recv().await {
            loop {
                let Some(piece) = self.next_piece(&mut slot.pieces, &mut waits).await else {
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
                waits.flowing();
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
            if at != slot.end.get() {
                // A range's sender goes only at its end or with a `Stop`.
                return Err(DownloadError::TooShort {
                    expected: self.layer.size,
                    actual: at,
                });
            }
        }
        Ok(Outcome::Done(at))
    }
}

impl RangedBlob<'_> {
    /// The next piece of a range. Once the blob's bytes flow, every [`STARVED`] spent waiting
    /// while waiting is most of the forwarder's time ([`Waits::network_bound`]) tells the
    /// driver that the network is behind: time to split the lead, or to start another range.
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
                Err(_) if waits.network_bound(waiting.elapsed()) => self.starved.notify_one(),
                Err(_) => {}
            }
        }
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
}

/// Waiting this long for a range's bytes widens the blob's window by one range.
const STARVED: Duration = Duration::from_millis(5);

/// Network-bound waits of [`STARVED`] for the lead's bytes, after its first, before it is
/// split into ranges: 15 ms at least. With the registry nearby, one stream hardly ever keeps
/// the extractor waiting (about 3 ms in all for a 60 MB blob on the bench); over a link with
/// a round trip of tens of milliseconds, slow start alone does within the first round trip.
const SPLIT_AFTER: u32 = 3;

/// Read a range's body into `out`, advancing `at`; `Ok` once it reached `end` (or the
/// forwarder is gone), the failure otherwise. A lead stops at its end, however far its
/// response goes (the connection is dropped with the rest of the body).
async fn read_range(
    resp: BlobResponse,
    at: &mut u64,
    end: &End,
    out: &Sender<Piece>,
) -> Result<(), RegistryError> {
    let url = resp.response.url().to_string();
    let mut body = resp.response.bytes_stream();
    while let Some(next) = body.next().await {
        let mut bytes = next.map_err(|e| crate::client::network_error(&url, &e))?;
        if bytes.is_empty() {
            continue;
        }
        let len = bytes.len() as u64;
        let taken = match end {
            End::Lead(lead) => lead.advance(len),
            End::Fixed(end) if *at + len > *end => {
                return Err(RegistryError::Protocol {
                    url,
                    detail: format!("more bytes than the range ending at byte {}", end - 1),
                });
            }
            End::Fixed(_) => len,
        };
        bytes.truncate(taken as usize);
        *at += taken;
        if !bytes.is_empty() && out.send(Ok(bytes)).await.is_err() {
            return Ok(());
        }
        if *at == end.get() {
            return Ok(());
        }
    }
    let end = end.get();
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

#[cfg(test)]
mod tests {
    use super::Lead;

    #[test]
    fn a_lead_is_cut_ahead_of_what_it_received_and_stops_there() {
        let lead = Lead::new(100..1000);
        assert_eq!(lead.advance(50), 50);
        // Too little left after one chunk of 400 for another of 400.
        assert_eq!(lead.split(400, 500), None);
        assert_eq!(lead.end(), 1000);
        assert_eq!(lead.split(400, 400), Some(550));
        assert_eq!(lead.end(), 550);
        // A piece crossing the cut is taken up to it only.
        assert_eq!(lead.advance(300), 300);
        assert_eq!(lead.advance(300), 100);
        assert_eq!(lead.advance(1), 0);
    }
}
