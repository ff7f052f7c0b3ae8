//! Downloading a layer with what an earlier pull kept of its blob (`cache/partial.rs`): the
//! kept bytes go through the pipeline first, the network's follow from where they end, and all
//! of it is verified as one stream. This module decides what happens to the partial after a
//! pass:
//!
//! * verified: removed (before the layer is published, so a durable publish's `syncfs` does
//!   not write out bytes about to be deleted);
//! * cancelled, or the download failed: kept, so the next pull resumes from it;
//! * anything else (digest or size mismatch, a bad stream, a refused entry, a failed
//!   publish): removed, since the bytes may be what is wrong; and if this pass had resumed
//!   from kept bytes, the layer is pulled once more from zero within the same pull, so a
//!   corrupted partial never costs more than a second download.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::{Attempt, LayerContext, LayerError, LayerJob, blocking, run_pipeline};
use crate::cache::{FileLock, PartialBlob};

/// Download, verify, extract and publish a layer we hold the lock of, resuming from a
/// partial when there is one.
pub(super) async fn download_layer(
    ctx: &Arc<LayerContext>,
    job: &LayerJob,
    lock: FileLock,
    permit: OwnedSemaphorePermit,
) -> Result<(), LayerError> {
    let (mut lock, mut permit) = (lock, Some(permit));
    let mut retried = false;
    loop {
        // An offline image's blob is a local file: nothing to keep or resume.
        let partial = match ctx.local {
            Some(_) => None,
            None => open_partial(ctx, job).await?,
        };
        let resumed = partial.as_ref().is_some_and(|p| p.kept() > 0);
        let Attempt {
            result,
            lock: lock_back,
            permit: permit_back,
            partial,
        } = run_pipeline(ctx, job, lock, permit, partial).await;
        let keep = result.as_ref().err().is_some_and(keeps_partial);
        let removed = match partial.filter(|_| !keep) {
            Some(partial) => blocking(move || partial.remove()).await?.is_ok(),
            None => false,
        };
        match (result, lock_back) {
            // The kept bytes may be what was wrong: once more, from zero.
            (Err(_), Some(lock_back)) if resumed && removed && !retried => {
                (lock, permit, retried) = (lock_back, permit_back, true);
            }
            // A partial that could not be removed is only space; `gc` collects it.
            (result, _) => return result,
        }
    }
}

/// Hold the blob's partial for this pass: resume from it if it exists, and start one if the
/// blob is large enough for the settings.
async fn open_partial(
    ctx: &Arc<LayerContext>,
    job: &LayerJob,
) -> Result<Option<PartialBlob>, LayerError> {
    let keep_new = ctx
        .partial_min_size
        .is_some_and(|min| job.descriptor.size >= min);
    let (cache, blob, size) = (
        ctx.cache.clone(),
        job.descriptor.digest.clone(),
        job.descriptor.size,
    );
    Ok(blocking(move || cache.open_partial(&blob, size, keep_new)).await??)
}

/// Whether a pass that ended with `e` leaves its bytes worth resuming from.
fn keeps_partial(e: &LayerError) -> bool {
    matches!(e, LayerError::Cancelled | LayerError::Download(_))
}
