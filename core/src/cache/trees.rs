//! Where an image's layers are on the host: the tree beside each layer's index (the cache's
//! layout), which layers have one (a layer published as its EROFS image alone has none), and
//! where an entry's content lives ([`LayerTrees::host_path`], what every front door's
//! `host_path` answers).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Layout;
use crate::index::Entry;

/// The extracted tree that belongs to a layer's index file (`…/<diff_id>/index` →
/// `…/<diff_id>/fs`): the cache's layout, for callers that were handed index paths.
///
/// ```
/// use std::path::Path;
/// let fs = microsandbox_image::cache::layer_tree_of_index(Path::new("/c/layers/sha256/ab/index"));
/// assert_eq!(fs, Path::new("/c/layers/sha256/ab/fs"));
/// ```
pub fn layer_tree_of_index(index: &Path) -> PathBuf {
    Layout::fs_in(index.parent().unwrap_or(Path::new("")))
}

/// The host trees of an image's layers, bottom to top, as a layer stack sees them: each
/// layer's tree, or none when the layer was published as its EROFS image alone
/// (`outputs: ["erofs-layers"]`). Which layers have a tree is found once, when it is made;
/// [`host_path`](Self::host_path) does no I/O.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use microsandbox_image::cache::{LayerTrees, NoHostPath};
/// # use microsandbox_image::index::{EntryMeta, IndexBuilder, LayerIndex, LayerStack};
/// # let mut b = IndexBuilder::new();
/// # b.add(b"etc", EntryMeta { mode: 0o040755, ..Default::default() })?;
/// # let stack = LayerStack::new(vec![LayerIndex::from_bytes(b.finish()?)?]);
/// let here = std::env::temp_dir();
/// let trees = LayerTrees::resolve([here.clone()]);
/// let etc = stack.get(b"etc")?.expect("etc");
/// assert_eq!(trees.host_path(&etc), Ok(here.join("etc")));
///
/// let missing = LayerTrees::resolve([PathBuf::from("/nowhere/fs")]);
/// assert_eq!(missing.get(0), None);
/// assert_eq!(missing.host_path(&etc), Err(NoHostPath::NoTree { layer: 0 }));
/// assert_eq!(LayerTrees::default().host_path(&etc), Err(NoHostPath::Unlisted { layer: 0 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTrees(Vec<Option<PathBuf>>);

impl LayerTrees {
    /// The layers' trees (bottom to top), each kept if it is a directory (one `stat` each).
    pub fn resolve(trees: impl IntoIterator<Item = PathBuf>) -> Self {
        LayerTrees(trees.into_iter().map(|t| t.is_dir().then_some(t)).collect())
    }

    /// Trees already known to exist (`Some`) or not (`None`), bottom to top.
    pub(crate) fn known(trees: impl IntoIterator<Item = Option<PathBuf>>) -> Self {
        LayerTrees(trees.into_iter().collect())
    }

    /// The trees beside the index files `indexes` (bottom to top; [`layer_tree_of_index`]),
    /// resolved as [`resolve`](Self::resolve) does.
    pub fn beside_indexes(indexes: &[PathBuf]) -> Self {
        Self::resolve(indexes.iter().map(|i| layer_tree_of_index(i)))
    }

    /// Layer `layer`'s tree (bottom = 0); `None` if it has none or there is no such layer.
    pub fn get(&self, layer: usize) -> Option<&Path> {
        self.0.get(layer)?.as_deref()
    }

    /// Every layer's tree, bottom to top (`None` for a layer without one).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<&Path>> + '_ {
        self.0.iter().map(|t| t.as_deref())
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No layers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where the content of `entry` lives on the host: the tree of its layer joined with its
    /// path.
    pub fn host_path(&self, entry: &Entry<'_>) -> Result<PathBuf, NoHostPath> {
        let layer = entry.layer();
        let tree = self.0.get(layer).ok_or(NoHostPath::Unlisted { layer })?;
        let tree = tree.as_ref().ok_or(NoHostPath::NoTree { layer })?;
        let path = entry.path();
        Ok(match path.is_empty() {
            true => tree.clone(),
            false => tree.join(std::ffi::OsStr::from_bytes(&path)),
        })
    }
}

/// Why an entry has no host path ([`LayerTrees::host_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoHostPath {
    /// Its layer was published as its EROFS image alone (`outputs: ["erofs-layers"]`).
    #[error("layer {layer} has no tree (pulled with outputs [\"erofs-layers\"] only)")]
    NoTree {
        /// The layer's position, bottom = 0.
        layer: usize,
    },
    /// No tree was given for its layer (a bug in the caller).
    #[error("layer {layer} has no tree")]
    Unlisted {
        /// The layer's position, bottom = 0.
        layer: usize,
    },
}

impl NoHostPath {
    /// The kind shared with every front door.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            NoHostPath::NoTree { .. } => crate::ErrorKind::InvalidArgument,
            NoHostPath::Unlisted { .. } => crate::ErrorKind::Internal,
        }
    }
}
