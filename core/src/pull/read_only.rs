//! A pull on a read-only cache that the cache cannot answer offline. Nothing is written, so
//! the only answer is what the owner already recorded: an `Always` pull asks the registry
//! for the manifest (and config) and succeeds when the image record for this reference and
//! platform names that very manifest and every layer is there; a forced pull, an image that
//! is not completely cached, or a tag that has moved fail with `CacheError::ReadOnly`.

use crate::cache::CacheError;
use crate::error::{Error, Result};

use super::cached::{emit_cached_events, read_cached};
use super::context::PullContext;
use super::{PullOptions, PullPolicy, PullResult, Puller, blocking};

impl Puller {
    /// The pull of `cx` on a read-only cache, past the offline answer (see the module docs).
    pub(super) async fn pull_read_only(
        &self,
        cx: &PullContext<'_>,
        opts: &PullOptions,
    ) -> Result<PullResult> {
        if opts.force {
            return Err(self.needs_writes(cx, "a forced pull re-extracts every layer"));
        }
        if opts.pull_policy != PullPolicy::Always {
            return Err(self.needs_writes(cx, "it is not completely in the cache"));
        }
        let image = cx.until_cancelled(self.resolve_image(cx)).await?;
        let (cache, key) = (self.cache.clone(), cx.record_key());
        let (reference, platform) = (cx.reference.clone(), cx.platform.clone());
        let recorded = blocking(move || read_cached(&cache, &key, reference, platform)).await??;
        let leases = match recorded {
            Some(r) if r.manifest_digest == image.manifest_digest => r.leases().to_vec(),
            Some(r) => {
                let why = format!(
                    "the registry now has manifest {} and the cache holds {}",
                    image.manifest_digest, r.manifest_digest
                );
                return Err(self.needs_writes(cx, &why));
            }
            None => return Err(self.needs_writes(cx, "it is not completely in the cache")),
        };
        let result = image
            .into_result(&self.cache, cx.reference.clone(), cx.platform.clone())
            .holding(leases);
        if let Some(layer) = self.lacking_output(&result, opts).await? {
            let why =
                format!("layer {layer} lacks an output asked for (its tree or its EROFS image)");
            return Err(self.needs_writes(cx, &why));
        }
        self.index_if_asked(cx, &result, opts.build_index).await?;
        emit_cached_events(cx, &result);
        Ok(result)
    }

    /// The error of a read-only pull that would have to write: `why` says what is missing.
    pub(super) fn needs_writes(&self, cx: &PullContext<'_>, why: &str) -> Error {
        Error::Cache(CacheError::ReadOnly {
            path: self.cache.layout().image_record(&cx.record_key()),
            need: format!(
                "pulling {} for {} needs writes ({why})",
                cx.image, cx.platform
            ),
            fix: "ask the cache's owner to pull it".into(),
        })
    }
}
