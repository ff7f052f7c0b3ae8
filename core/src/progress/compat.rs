//! The original `microsandbox-image` crate's way of making a progress stream by hand:
//! [`progress_channel`] gives a [`PullProgressHandle`] and a [`PullProgressSender`] that
//! feeds it (with the same never-blocking, milestone-keeping queue as a pull's own stream).

use std::sync::Arc;

use super::{ProgressSink, PullProgress, PullProgressHandle};
use crate::cancel::CancelToken;

/// Sends events to the [`PullProgressHandle`] made with it by [`progress_channel`]. Never
/// blocks. The stream ends (the handle's `recv` returns `None`) when every clone of the
/// sender is dropped.
#[derive(Clone)]
pub struct PullProgressSender {
    inner: Arc<SenderInner>,
}

struct SenderInner {
    sink: ProgressSink,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.sink.close();
    }
}

impl PullProgressSender {
    /// Emits one event. Byte-progress events may be merged with a newer one if the receiver
    /// falls behind; milestones are always delivered.
    pub fn send(&self, event: PullProgress) {
        self.inner.sink.emit(event);
    }
}

impl std::fmt::Debug for PullProgressSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullProgressSender")
    }
}

/// A progress stream made by hand: events sent through the sender arrive at the handle.
///
/// ```
/// # tokio_test_block_on(async {
/// use microsandbox_image::{PullProgress, progress_channel};
/// let (mut handle, sender) = progress_channel();
/// sender.send(PullProgress::Resolving { reference: "alpine".into() });
/// drop(sender);
/// assert!(matches!(handle.recv().await, Some(PullProgress::Resolving { .. })));
/// assert!(handle.recv().await.is_none());
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub fn progress_channel() -> (PullProgressHandle, PullProgressSender) {
    let (sink, handle) = ProgressSink::channel(CancelToken::new());
    let sender = PullProgressSender {
        inner: Arc::new(SenderInner { sink }),
    };
    (handle, sender)
}
