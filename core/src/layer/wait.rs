//! Waiting for a layer that another pull is building: first for the in-process mutex (two
//! pulls of one layer in this process), then for the layer's file lock (another process),
//! polled so that the wait can be cancelled, bounded by `lockTimeout` and shown with one
//! `LayerWaiting` event naming the holder.

use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use super::{LayerContext, LayerError, LayerJob, blocking};
use crate::cache::FileLock;
use crate::progress::PullProgress;

/// How often a busy layer lock is tried again.
const POLL: Duration = Duration::from_millis(50);

/// What the file lock of a layer looks like when we try it.
enum Attempt {
    /// The layer is published and we were not asked to rebuild it.
    Present,
    /// We hold the lock (and have written our pid into the lock file).
    Locked(FileLock),
    /// Someone else holds it.
    Busy(Option<u32>),
}

/// One `LayerWaiting` event per layer and pull, then the deadline.
struct Waiting<'a> {
    ctx: &'a LayerContext,
    job: &'a LayerJob,
    since: Option<Instant>,
}

impl Waiting<'_> {
    fn started(&mut self, holder_pid: Option<u32>) -> Result<(), LayerError> {
        let since = *self.since.get_or_insert_with(|| {
            self.ctx.progress.emit(PullProgress::LayerWaiting {
                layer_index: self.job.index,
                diff_id: self.job.diff_id.clone(),
                holder_pid,
            });
            Instant::now()
        });
        match self.ctx.lock_timeout {
            Some(limit) if since.elapsed() >= limit => Err(LayerError::LockTimeout {
                waited: since.elapsed(),
                holder_pid,
            }),
            _ => Ok(()),
        }
    }

    fn remaining(&self) -> Option<Duration> {
        let (since, limit) = (self.since?, self.ctx.lock_timeout?);
        Some(limit.saturating_sub(since.elapsed()))
    }
}

/// Take the layer's in-process mutex and then its file lock. `None` when the layer turned
/// out to be published (and `force` is off): use it as it is.
pub(super) async fn lock_layer(
    ctx: &LayerContext,
    job: &LayerJob,
) -> Result<Option<(OwnedMutexGuard<()>, FileLock)>, LayerError> {
    let mut waiting = Waiting {
        ctx,
        job,
        since: None,
    };
    let mutex = ctx.cache.layer_mutex(&job.diff_id);
    let guard = match mutex.clone().try_lock_owned() {
        Ok(guard) => guard,
        Err(_) => {
            waiting.started(Some(std::process::id()))?;
            let deadline = waiting.remaining();
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Err(LayerError::Cancelled),
                () = sleep_or_forever(deadline) => {
                    waiting.started(Some(std::process::id()))?;
                    return Err(LayerError::Internal("lock deadline passed".into()));
                }
                guard = mutex.lock_owned() => guard,
            }
        }
    };
    loop {
        match try_file_lock(ctx, job).await? {
            Attempt::Present => return Ok(None),
            Attempt::Locked(lock) => return Ok(Some((guard, lock))),
            Attempt::Busy(holder) => waiting.started(holder)?,
        }
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return Err(LayerError::Cancelled),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn try_file_lock(ctx: &LayerContext, job: &LayerJob) -> Result<Attempt, LayerError> {
    let (cache, diff_id) = (ctx.cache.clone(), job.diff_id.clone());
    let force = ctx.rebuild.wants(&diff_id);
    blocking(move || {
        if !force && cache.has_layer(&diff_id) {
            return Ok(Attempt::Present);
        }
        Ok(match cache.try_lock_layer(&diff_id)? {
            Some(lock) => Attempt::Locked(lock),
            None => Attempt::Busy(cache.layer_lock_holder(&diff_id)),
        })
    })
    .await?
}
