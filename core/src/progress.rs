//! Progress events of a pull and the queue that carries them to the caller.
//!
//! The pipeline must never wait for a slow consumer. Milestone events (`Resolved`,
//! `…Started`, `…Complete`) are always delivered, in order; byte-progress events are
//! lossy: when the consumer falls behind, a newer byte count for a layer replaces the one
//! still queued, so the queue stays bounded by the number of layers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::digest::Digest;

/// One progress event of a pull. Layer indexes count from 0 at the bottom layer, in manifest
/// order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PullProgress {
    /// Resolving the reference to a manifest (or answering from the cache).
    Resolving {
        /// The normalised reference.
        reference: Arc<str>,
    },
    /// The manifest and config are known.
    Resolved {
        /// The normalised reference.
        reference: Arc<str>,
        /// The platform manifest's digest.
        manifest_digest: Digest,
        /// Number of layers in the image.
        layer_count: usize,
        /// Compressed bytes of the layers that still have to be downloaded.
        total_download_bytes: u64,
    },
    /// A layer is already complete in the cache; no download or extraction follows for it.
    LayerCached {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest (the cache key).
        diff_id: Digest,
    },
    /// Bytes of a layer blob arrived. Lossy: intermediate values may be skipped.
    LayerDownloadProgress {
        /// Layer position.
        layer_index: usize,
        /// Compressed digest.
        digest: Digest,
        /// Compressed bytes received so far.
        downloaded_bytes: u64,
        /// The blob's size from the manifest, when known.
        total_bytes: Option<u64>,
    },
    /// The whole blob arrived and its digest matched.
    LayerDownloadComplete {
        /// Layer position.
        layer_index: usize,
        /// Compressed digest.
        digest: Digest,
        /// Compressed bytes received.
        downloaded_bytes: u64,
    },
    /// Extraction of a layer started (it runs while the blob streams in).
    LayerExtractStarted {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest.
        diff_id: Digest,
    },
    /// Extraction progress. Lossy.
    LayerExtractProgress {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed tar bytes consumed so far.
        bytes_extracted: u64,
        /// Tar entries written so far.
        entries: u64,
    },
    /// The layer is extracted, verified and published.
    LayerExtractComplete {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest.
        diff_id: Digest,
        /// Tar entries written.
        entries: u64,
        /// Uncompressed tar bytes.
        bytes_extracted: u64,
    },
    /// Building the layer's sidecar index started.
    LayerIndexStarted {
        /// Layer position.
        layer_index: usize,
    },
    /// The layer's sidecar index is written.
    LayerIndexComplete {
        /// Layer position.
        layer_index: usize,
        /// Entries in the index.
        entries: u64,
    },
    /// The pull finished successfully.
    Complete {
        /// The normalised reference.
        reference: Arc<str>,
        /// The platform manifest's digest.
        manifest_digest: Digest,
        /// Number of layers in the image.
        layer_count: usize,
        /// True when the answer came entirely from the cache.
        cached: bool,
    },
}

impl PullProgress {
    /// The layer a lossy event belongs to; `None` for milestones, which are never dropped.
    fn lossy_slot(&self) -> Option<(usize, u8)> {
        match self {
            PullProgress::LayerDownloadProgress { layer_index, .. } => Some((*layer_index, 0)),
            PullProgress::LayerExtractProgress { layer_index, .. } => Some((*layer_index, 1)),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Queue {
    events: VecDeque<PullProgress>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned queue only means a sender panicked mid-push; the data is still sound.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A callback that receives every event synchronously on a library thread. It must return
/// quickly: the pipeline waits for it.
pub type ProgressCallback = Arc<dyn Fn(&PullProgress) + Send + Sync>;

/// Where a pull sends its events. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ProgressSink {
    queue: Option<Arc<Shared>>,
    callback: Option<ProgressCallback>,
}

impl ProgressSink {
    /// A sink that drops everything.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// A sink calling `f` for every event.
    pub(crate) fn callback(f: ProgressCallback) -> Self {
        ProgressSink {
            queue: None,
            callback: Some(f),
        }
    }

    /// A sink feeding a [`PullProgressHandle`].
    pub(crate) fn channel() -> (Self, PullProgressHandle) {
        let shared = Arc::new(Shared::default());
        let sink = ProgressSink {
            queue: Some(shared.clone()),
            callback: None,
        };
        (sink, PullProgressHandle { shared })
    }

    /// Whether anyone listens (lets hot paths skip building events).
    pub(crate) fn is_active(&self) -> bool {
        self.queue.is_some() || self.callback.is_some()
    }

    /// Send one event. Never blocks on the consumer.
    pub(crate) fn emit(&self, event: PullProgress) {
        if let Some(cb) = &self.callback {
            cb(&event);
        }
        let Some(shared) = &self.queue else { return };
        {
            let mut q = shared.lock();
            if q.closed {
                return;
            }
            if let Some(slot) = event.lossy_slot() {
                // Replace a still-queued value for the same layer and stage instead of growing.
                if let Some(old) = q
                    .events
                    .iter_mut()
                    .rev()
                    .take_while(|e| e.lossy_slot().is_some())
                    .find(|e| e.lossy_slot() == Some(slot))
                {
                    *old = event;
                    return;
                }
            }
            q.events.push_back(event);
        }
        shared.notify.notify_one();
    }

    /// Mark the stream finished: the handle's `recv` returns `None` once drained.
    pub(crate) fn close(&self) {
        if let Some(shared) = &self.queue {
            shared.lock().closed = true;
            shared.notify.notify_one();
        }
    }
}

/// The receiving end of a pull's progress events, returned by
/// [`Registry::pull_with_progress`](crate::Registry::pull_with_progress).
///
/// ```no_run
/// # async fn f(registry: microsandbox_image::Registry, reference: microsandbox_image::Reference) {
/// use microsandbox_image::{PullOptions, PullProgress};
/// let (mut progress, task) = registry.pull_with_progress(&reference, &PullOptions::default());
/// while let Some(event) = progress.recv().await {
///     if let PullProgress::Complete { .. } = event { println!("done"); }
/// }
/// let result = task.await.unwrap().unwrap();
/// # }
/// ```
pub struct PullProgressHandle {
    shared: Arc<Shared>,
}

impl PullProgressHandle {
    /// The next event, or `None` when the pull has finished and every event was received.
    pub async fn recv(&mut self) -> Option<PullProgress> {
        loop {
            let notified = self.shared.notify.notified();
            if let Some(ev) = self.try_recv_inner() {
                return ev;
            }
            notified.await;
        }
    }

    /// The next event if one is queued now. `Ok(None)` means the stream has ended.
    pub fn try_recv(&mut self) -> Result<Option<PullProgress>, Empty> {
        self.try_recv_inner().ok_or(Empty)
    }

    fn try_recv_inner(&self) -> Option<Option<PullProgress>> {
        let mut q = self.shared.lock();
        match q.events.pop_front() {
            Some(ev) => Some(Some(ev)),
            None if q.closed => Some(None),
            None => None,
        }
    }
}

/// Returned by [`PullProgressHandle::try_recv`] when no event is queued yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Digest {
        Digest::sha256_of(b"x")
    }

    #[tokio::test]
    async fn milestones_survive_and_progress_coalesces() {
        let (sink, mut handle) = ProgressSink::channel();
        sink.emit(PullProgress::LayerExtractStarted {
            layer_index: 0,
            diff_id: d(),
        });
        for i in 0..10_000u64 {
            sink.emit(PullProgress::LayerDownloadProgress {
                layer_index: 0,
                digest: d(),
                downloaded_bytes: i,
                total_bytes: None,
            });
        }
        sink.emit(PullProgress::LayerDownloadComplete {
            layer_index: 0,
            digest: d(),
            downloaded_bytes: 10_000,
        });
        sink.close();
        let mut got = Vec::new();
        while let Some(ev) = handle.recv().await {
            got.push(ev);
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(
            got[1],
            PullProgress::LayerDownloadProgress {
                downloaded_bytes: 9_999,
                ..
            }
        ));
        assert!(matches!(got[2], PullProgress::LayerDownloadComplete { .. }));
    }

    #[tokio::test]
    async fn progress_of_other_layers_is_not_merged() {
        let (sink, mut handle) = ProgressSink::channel();
        for layer_index in 0..3 {
            sink.emit(PullProgress::LayerExtractProgress {
                layer_index,
                bytes_extracted: 1,
                entries: 1,
            });
        }
        sink.close();
        let mut n = 0;
        while handle.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
}
