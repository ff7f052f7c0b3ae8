//! Streaming one blob from the registry into the extractor's channel, resuming with `Range`
//! after a dropped connection so the same decompressor keeps going. The blob is never
//! buffered whole; its size is enforced as it arrives. A download may also start past the
//! beginning, after the bytes an earlier pull kept (`cache/partial.rs`).

use bytes::Bytes;
use futures_util::StreamExt;

use super::ranged::{Outcome, RangedBlob};
use super::reader::ChunkSender;
use crate::client::ranges::BlobSource;
use crate::client::retry::{Retry, pause};
use crate::client::{BlobResponse, RegistryClient, RegistryError, backoff};
use crate::manifest::LayerDescriptor;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;

/// Consecutive failures without a byte of progress before we give up.
const MAX_STALLED_ATTEMPTS: u32 = 5;
/// Resumes in total, progress or not.
const MAX_RESUMES: u32 = 100;

/// The failed attempts at a blob's bytes since the last that made progress: one stream and
/// each range (`ranged/`) retry by the same rule, [`MAX_STALLED_ATTEMPTS`] in a row.
#[derive(Default)]
pub(super) struct Stalls(u32);

impl Stalls {
    /// Count a failed attempt (`progressed` if it received bytes first): `true` if another
    /// is allowed.
    pub(super) fn failed(&mut self, progressed: bool) -> bool {
        if progressed {
            self.0 = 0;
        }
        self.0 += 1;
        self.0 <= MAX_STALLED_ATTEMPTS
    }

    /// Wait before the next attempt at `url`, saying why.
    pub(super) async fn pause(&self, url: &str, reason: String) {
        pause(Retry {
            url,
            retry: self.0,
            max_retries: MAX_STALLED_ATTEMPTS,
            wait: backoff(self.0),
            reason,
        })
        .await;
    }
}

/// Why a download stopped.
#[derive(Debug)]
pub(crate) enum DownloadError {
    /// The registry failed us.
    Registry(RegistryError),
    /// More bytes arrived than the manifest announced.
    TooLong { expected: u64 },
    /// The stream ended early and could not be resumed.
    TooShort { expected: u64, actual: u64 },
    /// The extractor stopped reading (it failed; its error is the one to report).
    ReceiverGone,
    /// The pull was cancelled.
    Cancelled,
}

impl DownloadError {
    /// What a layer failed with when its download stopped this way; `None` when the reader
    /// stopped first (its own error is the one to report).
    pub(crate) fn layer_error(self) -> Option<super::LayerError> {
        use super::LayerError;
        Some(match self {
            DownloadError::ReceiverGone => return None,
            DownloadError::Cancelled => LayerError::Cancelled,
            DownloadError::Registry(e) => LayerError::Download(e),
            DownloadError::TooLong { expected } => LayerError::SizeMismatch {
                expected,
                actual: expected + 1,
            },
            DownloadError::TooShort { expected, actual } => {
                LayerError::SizeMismatch { expected, actual }
            }
        })
    }
}

/// The low-speed rule over one blob's download, resumes included: every `window`, at least
/// `limit × window` bytes must have arrived.
pub(super) struct SpeedFloor {
    rule: Option<(u64, std::time::Duration)>,
    since: std::time::Instant,
    bytes: u64,
}

impl SpeedFloor {
    pub(super) fn new(rule: Option<(u64, std::time::Duration)>) -> Self {
        SpeedFloor {
            rule,
            since: std::time::Instant::now(),
            bytes: 0,
        }
    }

    /// Count `n` bytes; an error when a window closed with too few.
    pub(super) fn check(&mut self, n: u64, url: &str) -> Result<(), DownloadError> {
        self.bytes += n;
        let Some((limit, window)) = self.rule else {
            return Ok(());
        };
        if self.since.elapsed() < window {
            return Ok(());
        }
        let floor = (limit as f64 * window.as_secs_f64()) as u64;
        if self.bytes < floor {
            return Err(DownloadError::Registry(RegistryError::TooSlow {
                url: url.to_owned(),
                bytes: self.bytes,
                secs: window.as_secs(),
                limit,
            }));
        }
        self.since = std::time::Instant::now();
        self.bytes = 0;
        Ok(())
    }
}

/// Stream `layer` from byte `from` on into `tx` (the bytes before it were kept by an earlier
/// pull and count as downloaded); returns the blob's length. A blob with enough left to fetch
/// goes as parallel ranges (`ranged.rs`) while the registry answers them exactly; otherwise
/// (no `Range` support, another answer) it goes on as one stream.
pub(crate) async fn stream_blob(
    client: &RegistryClient,
    reference: &Reference,
    layer: &LayerDescriptor,
    layer_index: usize,
    from: u64,
    tx: &ChunkSender,
    progress: &ProgressSink,
) -> Result<u64, DownloadError> {
    let mut floor = SpeedFloor::new(client.low_speed());
    if from > 0 {
        progress.emit(PullProgress::LayerDownloadProgress {
            layer_index,
            digest: layer.digest.clone(),
            downloaded_bytes: from,
            total_bytes: Some(layer.size),
        });
    }
    if from == layer.size {
        return Ok(from);
    }
    let (mut from, mut opened) = (from, None);
    if let Some(options) = client.ranges_for(layer.size - from) {
        let blob = RangedBlob {
            client,
            reference,
            layer,
            layer_index,
            options,
            source: BlobSource::default(),
            stopped: Default::default(),
            starving: Default::default(),
            starved: Default::default(),
        };
        match blob.stream(from, tx, progress, &mut floor).await? {
            Outcome::Done(n) => return Ok(n),
            Outcome::OneStream { at, response } => (from, opened) = (at, response),
        }
    }
    stream_whole(
        client,
        reference,
        layer,
        layer_index,
        from,
        opened,
        tx,
        progress,
        floor,
    )
    .await
}

/// Stream the blob from byte `from` as one response (`opened`, if one is already open),
/// resuming with `Range` after a dropped connection.
#[allow(clippy::too_many_arguments)]
async fn stream_whole(
    client: &RegistryClient,
    reference: &Reference,
    layer: &LayerDescriptor,
    layer_index: usize,
    from: u64,
    opened: Option<BlobResponse>,
    tx: &ChunkSender,
    progress: &ProgressSink,
    mut floor: SpeedFloor,
) -> Result<u64, DownloadError> {
    let mut offset = from;
    let mut stalls = Stalls::default();
    let mut resumes = 0u32;
    let mut opened = opened;
    loop {
        let before = offset;
        let next = match opened.take() {
            Some(r) => Ok(r),
            None => client.open_blob(reference, &layer.digest, offset).await,
        };
        let resp = match next {
            Ok(r) => r,
            Err(e) if e.is_transient() && stalls.failed(false) => {
                stalls.pause(e.url().unwrap_or_default(), e.reason()).await;
                continue;
            }
            Err(e) => return Err(DownloadError::Registry(e)),
        };
        // A server that ignores Range sends everything again: skip what we already have.
        let mut skip = if resp.partial { 0 } else { offset };
        // The URL the bytes come from (after redirects), for the error if they stop.
        let url = resp.response.url().to_string();
        let mut stream = resp.response.bytes_stream();
        let failure = loop {
            match stream.next().await {
                Some(Ok(mut chunk)) => {
                    if skip > 0 {
                        let n = skip.min(chunk.len() as u64) as usize;
                        skip -= n as u64;
                        let _: Bytes = chunk.split_to(n);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    offset += chunk.len() as u64;
                    floor.check(chunk.len() as u64, &url)?;
                    if offset > layer.size {
                        return Err(DownloadError::TooLong {
                            expected: layer.size,
                        });
                    }
                    tx.send(Ok(chunk))
                        .await
                        .map_err(|()| DownloadError::ReceiverGone)?;
                    if progress.is_active() {
                        progress.emit(PullProgress::LayerDownloadProgress {
                            layer_index,
                            digest: layer.digest.clone(),
                            downloaded_bytes: offset,
                            total_bytes: Some(layer.size),
                        });
                    }
                }
                Some(Err(e)) => break Some(e),
                None if offset == layer.size => return Ok(offset),
                // Ended early without an error: resume like after a reset.
                None => break None,
            }
        };
        let again = stalls.failed(offset > before);
        resumes += 1;
        floor.check(0, &url)?;
        let failure = match failure {
            Some(e) => DownloadError::Registry(crate::client::network_error(&url, &e)),
            None => DownloadError::TooShort {
                expected: layer.size,
                actual: offset,
            },
        };
        if !again || resumes > MAX_RESUMES {
            return Err(failure);
        }
        let reason = match failure {
            DownloadError::Registry(e) => e.reason(),
            _ => format!("the stream ended at byte {offset} of {}", layer.size),
        };
        stalls
            .pause(&url, format!("{reason}; resuming from byte {offset}"))
            .await;
    }
}
