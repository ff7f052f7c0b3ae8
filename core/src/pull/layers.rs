//! Running the layer pipelines of one pull: each distinct diff_id once, at most
//! `concurrency` large ones at a time and as many small ones (under [`SMALL_LAYER`]) beside
//! them, so a small layer never queues behind large ones; the caller's cancel and the first
//! failure stop the others, and every pipeline is awaited to its end so none leaves a worker
//! behind.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cancel::CancelToken;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::{LayerContext, LayerError, LayerJob, LayerOutcome, Rebuild, ensure_layer};
use crate::progress::PullProgress;

use super::context::PullContext;
use super::resolve::ResolvedImage;
use super::{PullOptions, Puller, blocking};

/// Layer blobs under this many bytes run in slots of their own: over a long round trip such
/// a layer costs a few round trips, not bandwidth, and waiting for a large layer's slot would
/// add that layer's whole download to it.
pub(crate) const SMALL_LAYER: u64 = 8 << 20;

impl Puller {
    /// Makes every layer of `image` present in the cache, emitting `Resolved` first. `true`
    /// when at least one layer was downloaded (rather than found in the cache).
    pub(super) async fn run_layers(
        &self,
        cx: &PullContext<'_>,
        image: &ResolvedImage,
        opts: &PullOptions,
        rebuild: Rebuild,
    ) -> Result<bool> {
        // The same content may be listed twice; fetch each diff_id once.
        let mut seen = HashSet::new();
        let unique: Vec<LayerJob> = image
            .jobs
            .iter()
            .filter(|j| seen.insert(j.diff_id.clone()))
            .cloned()
            .collect();
        let rebuild = self.without_images(&unique, rebuild, opts).await?;
        let total_download_bytes = self.bytes_to_download(&unique, &rebuild).await?;
        cx.progress.emit(PullProgress::Resolved {
            reference: cx.image.clone(),
            manifest_digest: image.manifest_digest.clone(),
            layer_count: image.jobs.len(),
            total_download_bytes,
        });
        let ctx = Arc::new(self.layer_context(cx, opts, rebuild));
        let results = self.run_jobs(cx, &ctx, unique).await;
        if cx.cancel.is_cancelled() {
            return Err(cx.cancelled());
        }
        first_real_error(results)
    }

    /// `rebuild`, plus the cached layers that lack an output `opts` asks for (the tree of a
    /// layer published as its image alone, or the EROFS image: both are written in the pass
    /// that extracts the blob, so they are pulled again).
    async fn without_images(
        &self,
        jobs: &[LayerJob],
        rebuild: Rebuild,
        opts: &PullOptions,
    ) -> Result<Rebuild> {
        let cache = self.cache.clone();
        let diff_ids: Vec<Digest> = jobs.iter().map(|j| j.diff_id.clone()).collect();
        let (tree, erofs) = (opts.wants_tree(), opts.erofs_layers());
        let lacking = blocking(move || cache.published_lacking(&diff_ids, tree, erofs)).await?;
        Ok(rebuild.and(lacking.into_iter().collect()))
    }

    /// Compressed bytes of the layers that are not published yet or are built again.
    async fn bytes_to_download(&self, jobs: &[LayerJob], rebuild: &Rebuild) -> Result<u64> {
        let cache = self.cache.clone();
        let sizes: Vec<(Digest, u64, bool)> = jobs
            .iter()
            .map(|j| {
                let again = rebuild.wants(&j.diff_id);
                (j.diff_id.clone(), j.descriptor.size, again)
            })
            .collect();
        blocking(move || {
            sizes
                .iter()
                .filter(|(d, _, again)| *again || !cache.has_layer(d))
                .map(|(_, s, _)| *s)
                .sum()
        })
        .await
    }

    fn layer_context(
        &self,
        cx: &PullContext<'_>,
        opts: &PullOptions,
        rebuild: Rebuild,
    ) -> LayerContext {
        LayerContext {
            client: self.client.clone(),
            cache: self.cache.clone(),
            reference: cx.reference.clone(),
            limits: self.limits,
            progress: cx.progress.clone(),
            rebuild,
            durable: self.durable,
            lock_timeout: self.lock_timeout,
            partial_min_size: self.partial_min_size,
            flusher: self
                .durable
                .then(|| crate::layer::Flusher::new(self.cache.layout().tmp())),
            build_index: opts.build_index,
            tree: opts.wants_tree(),
            erofs: opts.erofs_layers(),
            local: cx.local.clone(),
            cancel: CancelToken::new(),
        }
    }

    /// Runs every job to its end. The caller's cancel reaches the layers through their own
    /// token, which a failing layer also trips so its siblings stop early.
    async fn run_jobs(
        &self,
        cx: &PullContext<'_>,
        ctx: &Arc<LayerContext>,
        jobs: Vec<LayerJob>,
    ) -> Vec<Result<LayerOutcome>> {
        let large = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let small = Arc::new(Semaphore::new(self.concurrency.max(1)));
        let forward = {
            let (user, layers) = (cx.cancel.clone(), ctx.cancel.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = user.cancelled() => layers.cancel(),
                    () = layers.cancelled() => {}
                }
            })
        };
        let results = futures_util::future::join_all(jobs.into_iter().map(|job| {
            let permits = if job.descriptor.size < SMALL_LAYER {
                small.clone()
            } else {
                large.clone()
            };
            let ctx = ctx.clone();
            async move {
                let (diff_id, blob) = (job.diff_id.clone(), job.descriptor.digest.clone());
                let layer_err = |source| cx.layer(&diff_id, Some(&blob), source);
                let permit = tokio::select! {
                    biased;
                    () = ctx.cancel.cancelled() => return Err(layer_err(LayerError::Cancelled)),
                    p = permits.acquire_owned() => {
                        p.map_err(|_| Error::Internal("semaphore closed".into()))?
                    }
                };
                let result = ensure_layer(ctx.clone(), job, permit).await;
                if result.is_err() {
                    ctx.cancel.cancel();
                }
                result.map_err(layer_err)
            }
        }))
        .await;
        forward.abort();
        results
    }
}

/// The first error that is not a layer stopped because a sibling failed; without one,
/// whether any layer was downloaded.
fn first_real_error(results: Vec<Result<LayerOutcome>>) -> Result<bool> {
    let is_sibling_cancel = |e: &Error| matches!(e, Error::Layer { source, .. } if matches!(**source, LayerError::Cancelled));
    let mut first: Option<Error> = None;
    let mut pulled = false;
    for result in results {
        match result {
            Ok(outcome) => pulled |= outcome == LayerOutcome::Pulled,
            Err(e) if first.as_ref().is_none_or(is_sibling_cancel) => first = Some(e),
            Err(_) => {}
        }
    }
    first.map_or(Ok(pulled), Err)
}
