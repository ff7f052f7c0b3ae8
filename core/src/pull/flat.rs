//! The flat EROFS image of a pull (`outputs: ["erofs-flat"]`): once the image's layers are
//! complete in the cache (pulled now or found there), their merged tree is written as one
//! image under the cache (`cache/flat.rs`), unless the image's manifest has one already.

use std::path::PathBuf;

use super::{Output, PullOptions, PullResult, Puller, blocking};
use crate::cache::GlobalCache;
use crate::digest::Digest;
use crate::erofs::{ErofsError, ErofsOptions, LayerFiles, OpaqueXattr, write_flat};
use crate::error::{Error, Result};
use crate::index::LayerStack;
use crate::pull::context::PullContext;

impl Puller {
    /// Give `result` its flat image when `opts` asks for one, writing it if the cache has
    /// none for its manifest (a read-only cache cannot: [`CacheError::ReadOnly`]).
    ///
    /// [`CacheError::ReadOnly`]: crate::cache::CacheError::ReadOnly
    pub(super) async fn flat_if_asked(
        &self,
        cx: &PullContext<'_>,
        mut result: PullResult,
        opts: &PullOptions,
    ) -> Result<PullResult> {
        if !opts.outputs.contains(&Output::ErofsFlat) {
            return Ok(result);
        }
        let manifest = result.manifest_digest.clone();
        if !self.cache.has_flat_image(&manifest) {
            if self.cache.is_read_only() {
                return Err(self.needs_writes(cx, "its flat EROFS image is not in the cache"));
            }
            let failed = |source| Error::FlatImage {
                reference: cx.image.to_string(),
                source: Box::new(source),
            };
            let stack = result
                .layer_stack()
                .map_err(|e| failed(ErofsError::Index(e)))?;
            let files = LayerFiles::of(&result.layers, &result.layer_images);
            let (cache, durable, m) = (self.cache.clone(), self.durable, manifest.clone());
            blocking(move || write_into_cache(&cache, &m, &stack, files, durable))
                .await?
                .map_err(|e| match e {
                    Failure::Cache(e) => cx.cache(e),
                    Failure::Image(e) => failed(e),
                })?;
        }
        result.flat_image = Some(self.cache.flat_image(&manifest));
        Ok(result)
    }
}

/// Why writing a flat image failed: the cache's part, or the image's.
enum Failure {
    Cache(crate::cache::CacheError),
    Image(ErofsError),
}

/// Write the flat image of `manifest` from `stack` (file bytes from `files`) in a staging
/// directory and publish it; its path.
fn write_into_cache(
    cache: &GlobalCache,
    manifest: &Digest,
    stack: &LayerStack,
    mut files: LayerFiles,
    durable: bool,
) -> std::result::Result<PathBuf, Failure> {
    let staging = cache.stage_flat_image(manifest).map_err(Failure::Cache)?;
    // The UUID comes from the manifest; the opaque marker has no use in a merged tree.
    let options = ErofsOptions::keyed_by(manifest, OpaqueXattr::default());
    write_flat(stack, &mut files, &staging.image(), options).map_err(Failure::Image)?;
    cache
        .publish_flat_image(staging, durable)
        .map_err(Failure::Cache)
}
