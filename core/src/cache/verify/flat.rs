//! Checking an image's flat EROFS image (`flat/sha256/<manifest hex>.erofs`, when there is
//! one): what `image.rs` checks on a layer's image, against the tree the writer builds from
//! the image's layers (`erofs::merged_tree`: the merge of their indexes) and, for each
//! regular file, the `contents` digest of the layer file it was copied from.
//!
//! It needs every layer's index and `contents`; when one is missing or damaged, that layer's
//! own check reports it and the flat image is not checked.

use super::Problem;
use super::image::image_problems;
use crate::cache::contents::{self, Contents};
use crate::cache::layout::Layout;
use crate::cache::{GlobalCache, LayerMeta};
use crate::digest::Digest;
use crate::erofs::{BLOCK_SIZE, OpaqueXattr, merged_tree};
use crate::index::{LayerIndex, LayerStack};

impl GlobalCache {
    /// The problems of the flat image of `manifest`, whose layers are `layers` (bottom to
    /// top); none when it has none.
    pub(super) fn verify_flat(&self, manifest: &Digest, layers: &[Digest]) -> Vec<Problem> {
        let path = self.layout().flat_image(manifest);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Vec::new();
        };
        let Some((stack, per_layer)) = self.layers_for_flat(layers) else {
            return Vec::new();
        };
        let mut digests = Contents::new();
        let tree = merged_tree(&stack, |_, entry, key| {
            if let Some(d) = per_layer[entry.layer()].get(&entry.inode()) {
                digests.insert(key, *d);
            }
            Ok(())
        });
        let index = tree
            .ok()
            .and_then(|t| t.finish().ok())
            .and_then(|bytes| LayerIndex::from_bytes(bytes).ok());
        let Some(index) = index else {
            // The layers' own checks say what is wrong with their indexes.
            return Vec::new();
        };
        let blocks = meta.len().div_ceil(BLOCK_SIZE);
        image_problems(&path, blocks, OpaqueXattr::Trusted, &index, &digests)
    }

    /// Every layer's index (as one stack) and `contents`, if all are there and intact.
    fn layers_for_flat(&self, layers: &[Digest]) -> Option<(LayerStack, Vec<Contents>)> {
        let mut indexes = Vec::with_capacity(layers.len());
        let mut digests = Vec::with_capacity(layers.len());
        for d in layers {
            let dir = self.layer_dir(d);
            let want = LayerMeta::read(&dir).ok()?.contents_digest?;
            let bytes = std::fs::read(Layout::contents_in(&dir)).ok()?;
            if !want.matches(&bytes) {
                return None;
            }
            digests.push(contents::decode(&bytes).ok()?);
            indexes.push(LayerIndex::open(Layout::index_in(&dir)).ok()?);
        }
        Some((LayerStack::new(indexes), digests))
    }
}
