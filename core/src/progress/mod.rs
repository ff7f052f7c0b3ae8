//! Progress events of a pull and the queue that carries them to the caller.
//!
//! The pipeline must never wait for a slow consumer. Milestone events (`Resolved`,
//! `…Started`, `…Complete`) are always delivered, in order; byte-progress events are
//! lossy: when the consumer falls behind, a newer byte count for a layer replaces the one
//! still queued, so the queue stays bounded by the number of layers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::cancel::CancelToken;

mod compat;
mod events;
pub(crate) mod schema;

pub use compat::{PullProgressSender, progress_channel};

pub use events::PullProgress;
pub use schema::{EventSchema, FieldSchema, SchemaType};

#[cfg(test)]
use crate::digest::Digest;

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

    /// A sink feeding a [`PullProgressHandle`] whose `cancel` trips `cancel`.
    pub(crate) fn channel(cancel: CancelToken) -> (Self, PullProgressHandle) {
        let shared = Arc::new(Shared::default());
        let sink = ProgressSink {
            queue: Some(shared.clone()),
            callback: None,
        };
        (sink, PullProgressHandle { shared, cancel })
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
    cancel: CancelToken,
}

impl PullProgressHandle {
    /// Cancels the pull: it stops, its workers clean up, and its task returns
    /// [`Error::Cancelled`](crate::Error::Cancelled) with nothing of it left in `tmp/`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The pull's cancel token (for another task or thread to cancel it).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

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
        let (sink, mut handle) = ProgressSink::channel(CancelToken::new());
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
        let (sink, mut handle) = ProgressSink::channel(CancelToken::new());
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
