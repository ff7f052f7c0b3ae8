//! The answer from the cache alone: a warm `IfMissing` (or `Never`) pull reads the image
//! record, checks that every layer is published, builds a missing index if asked, and emits
//! the events of a cached pull, without touching the network.

use crate::cache::{CacheError, GlobalCache};
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::Result;
use crate::layer::index_cached_layers;
use crate::platform::Platform;
use crate::progress::PullProgress;
use crate::reference::Reference;

use super::context::PullContext;
use super::{PullOptions, PullResult, Puller, blocking};

impl Puller {
    /// The result for a completely cached image, or `None` when the network is needed.
    pub(super) async fn answer_from_cache(
        &self,
        cx: &PullContext<'_>,
        opts: &PullOptions,
    ) -> Result<Option<PullResult>> {
        let (cache, key) = (self.cache.clone(), cx.record_key());
        let (reference, platform) = (cx.reference.clone(), cx.platform.clone());
        let Some(result) = blocking(move || read_cached(&cache, &key, reference, platform))
            .await?
            .map_err(|e| cx.cache(e))?
        else {
            return Ok(None);
        };
        if self.lacking_output(&result, opts).await?.is_some() {
            return Ok(None);
        }
        self.index_if_asked(cx, &result, opts.build_index).await?;
        emit_cached_events(cx, &result);
        Ok(Some(result))
    }

    /// The first of `result`'s layers without an output `opts` asks for (its tree, its
    /// EROFS image), if any.
    pub(super) async fn lacking_output(
        &self,
        result: &PullResult,
        opts: &PullOptions,
    ) -> Result<Option<Digest>> {
        let (tree, erofs) = (opts.wants_tree(), opts.erofs_layers());
        let (cache, diff_ids) = (self.cache.clone(), result.layer_diff_ids.clone());
        // A cached result's layers are all published.
        blocking(move || {
            cache
                .published_lacking(&diff_ids, tree, erofs)
                .into_iter()
                .next()
        })
        .await
    }

    /// Give the result's layers their index if asked and one lacks it (a read-only cache
    /// cannot: [`CacheError::ReadOnly`], naming the layer).
    pub(super) async fn index_if_asked(
        &self,
        cx: &PullContext<'_>,
        result: &PullResult,
        build_index: bool,
    ) -> Result<()> {
        if build_index {
            for (i, diff_id) in result.layer_diff_ids.iter().enumerate() {
                index_cached_layers(&self.cache, &[(i, diff_id.clone())], cx.progress)
                    .await
                    .map_err(|source| cx.layer(diff_id, None, source))?;
            }
        }
        Ok(())
    }
}

/// The events of a pull whose layers were all in the cache.
pub(super) fn emit_cached_events(cx: &PullContext<'_>, result: &PullResult) {
    cx.progress.emit(PullProgress::Resolved {
        reference: cx.image.clone(),
        manifest_digest: result.manifest_digest.clone(),
        layer_count: result.layers.len(),
        total_download_bytes: 0,
    });
    for (layer_index, diff_id) in result.layer_diff_ids.iter().enumerate() {
        cx.progress.emit(PullProgress::LayerCached {
            layer_index,
            diff_id: diff_id.clone(),
        });
    }
    cx.progress.emit(PullProgress::Complete {
        reference: cx.image.clone(),
        manifest_digest: result.manifest_digest.clone(),
        layer_count: result.layers.len(),
        cached: result.cached,
    });
}

/// The cached image under `key` if its record, config and every layer are there (blocking).
/// A layer that cannot be held is an error, not an absent image: its cause (an unreadable
/// `locks/`, say) would otherwise hide behind `NOT_CACHED` or a pull from the network. On a
/// read-only cache that is so only when every layer is there (a lease file missing or
/// unreadable); with a layer missing the image is simply not cached.
pub(super) fn read_cached(
    cache: &GlobalCache,
    key: &str,
    reference: Reference,
    platform: Platform,
) -> std::result::Result<Option<PullResult>, CacheError> {
    let Some(stored) = cache.read_record(key) else {
        return Ok(None);
    };
    let diff_ids: Vec<Digest> = stored
        .record
        .layers
        .iter()
        .map(|l| l.diff_id.clone())
        .collect();
    // Held before they are checked, so a `gc` cannot remove one after the check.
    let leases = match cache.hold_layers(&diff_ids) {
        Ok(leases) => leases,
        Err(_) if cache.is_read_only() && !diff_ids.iter().all(|d| cache.has_layer(d)) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !diff_ids.iter().all(|d| cache.has_layer(d)) {
        return Ok(None);
    }
    cache.touch_record(key, &stored);
    let rec = stored.record;
    let Some(config) = cache
        .get_manifest(&rec.config_digest)
        .and_then(|bytes| ImageConfig::from_json(&bytes).ok())
    else {
        return Ok(None);
    };
    Ok(Some(
        PullResult::new(
            cache,
            reference,
            platform,
            diff_ids,
            config,
            rec.config_digest,
            rec.manifest_digest,
            rec.index_digest,
            true,
        )
        .holding(leases),
    ))
}
