//! EROFS images of layers, written by our own code in the pass that extracts the layer.
//!
//! Micro-VM runtimes hand their guests block devices, not host directories: a read-only
//! EROFS image per layer, stacked by the guest's overlayfs. This module writes that image
//! while the layer's tar streams, with no second read of the tar and no `mkfs.erofs`:
//!
//! - `data.rs`: each regular file's whole blocks go into the image as its bytes arrive (after
//!   the hashing and inflating that the extraction does anyway); a short tail that will sit
//!   beside its inode waits in a side file;
//! - `tree.rs`, `xattrs.rs`, `meta.rs`: once the tar has ended, the tree the layer's index
//!   builder already holds gives every inode, directory and xattr; they are written after the
//!   data, then the superblock.
//!
//! `read.rs` (with `read/`) reads such images back, bounded against hostile ones: what
//! `verify` checks a layer's image with, and what the tests compare with the index.
//!
//! The layout is described in `FORMAT.md` next to this file. The same layer always gives the
//! same bytes: the order of everything written comes from the tar (data) or from sorted names
//! (metadata), and no clock or random value is read.

mod data;
mod flat;
mod format;
mod meta;
pub mod read;
mod tree;
mod xattrs;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub(crate) use flat::{LayerFiles, merged_tree, write_flat};

use data::DataWriter;
use meta::FileMap;

use crate::index::IndexBuilder;

/// Bytes per block of the images we write.
pub(crate) const BLOCK_SIZE: u64 = format::BLOCK;

/// Which xattr marks an opaque directory in a per-layer image (overlayfs reads one or the
/// other depending on how it is mounted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpaqueXattr {
    /// `trusted.overlay.opaque`: what overlayfs reads when mounted by root, as a micro-VM's
    /// guest mounts its layers (the default).
    #[default]
    Trusted,
    /// `user.overlay.opaque`: what overlayfs reads with the `userxattr` mount option, in a
    /// user namespace (rootless), where `trusted.*` cannot be read.
    User,
}

impl OpaqueXattr {
    /// The xattr's name.
    pub(crate) fn name(self) -> &'static [u8] {
        match self {
            OpaqueXattr::Trusted => b"trusted.overlay.opaque",
            OpaqueXattr::User => b"user.overlay.opaque",
        }
    }
}

/// Whether an image can hold an xattr of this name (some EROFS prefix covers it: `user.`,
/// `trusted.`, `security.`, a POSIX ACL); the writer leaves the others out.
pub(crate) fn has_prefix(name: &[u8]) -> bool {
    format::xattr_prefix(name).is_some()
}

/// How an image is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ErofsOptions {
    /// The opaque directory marker.
    pub opaque: OpaqueXattr,
    /// The volume UUID (derived from what the image holds, so it is deterministic).
    pub uuid: [u8; 16],
}

impl ErofsOptions {
    /// The options of an image keyed by `digest` (a layer's diff_id, a flat image's
    /// manifest): its UUID is the digest's first 16 bytes.
    pub(crate) fn keyed_by(digest: &crate::digest::Digest, opaque: OpaqueXattr) -> Self {
        let mut uuid = [0u8; 16];
        if let Ok(bytes) = hex::decode(digest.hex()) {
            for (u, b) in uuid.iter_mut().zip(bytes) {
                *u = b;
            }
        }
        ErofsOptions { opaque, uuid }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSummary {
    /// Blocks of 4 KiB in the image.
    pub blocks: u64,
    /// Inodes in the image.
    pub inodes: u64,
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ErofsError {
    /// A file of the image could not be written or read.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A name is longer than an EROFS directory entry holds (255 bytes).
    #[error("name {name:?} is {len} bytes long: EROFS names hold at most 255")]
    NameTooLong {
        /// The name (lossy).
        name: String,
        /// Its length.
        len: usize,
    },
    /// An inode's xattrs do not fit beside it in one block.
    #[error("the xattrs of {name:?} take {len} bytes: more than an EROFS inode block holds")]
    XattrTooLarge {
        /// The entry or xattr (lossy).
        name: String,
        /// Bytes.
        len: usize,
    },
    /// The layer exceeds a limit of the format.
    #[error("{what} is {value}, more than the EROFS format holds ({max})")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// A layer image read for a flat image is not valid: the image and what is wrong.
    #[error("{image}: {detail}")]
    Read {
        /// The image file.
        image: String,
        /// What is wrong (the reader's error).
        detail: String,
    },
    /// A layer index read for a flat image is not valid (see [`IndexError`]).
    #[error("the merged tree: {0}")]
    Index(#[from] crate::index::IndexError),
    /// A bug in the writer.
    #[error("internal error writing an EROFS image: {0}")]
    Internal(String),
}

impl ErofsError {
    /// The kind shared with every front door: a file that could not be read or written, or a
    /// layer index that breaks its format (the cache's `verify` says more), is `Io`; a tree
    /// the format cannot hold is `Extraction`.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ErofsError::Io { .. } | ErofsError::Index(_) | ErofsError::Read { .. } => {
                crate::ErrorKind::Io
            }
            ErofsError::Internal(_) => crate::ErrorKind::Internal,
            _ => crate::ErrorKind::Extraction,
        }
    }

    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> ErofsError + 'p {
        move |source| ErofsError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Writes one layer's image: file data while the tar streams, metadata at the end.
pub(crate) struct LayerImageWriter {
    data: DataWriter,
    files: FileMap,
    tails_path: PathBuf,
    options: ErofsOptions,
}

impl std::fmt::Debug for LayerImageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerImageWriter")
            .field("files", &self.files.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LayerImageWriter {
    /// Start the image `path` (its side file of tails goes next to it).
    pub(crate) fn create(path: &Path, options: ErofsOptions) -> Result<Self, ErofsError> {
        let mut tails_path = path.as_os_str().to_owned();
        tails_path.push(".tails");
        let tails_path = PathBuf::from(tails_path);
        Ok(LayerImageWriter {
            data: DataWriter::create(path, &tails_path)?,
            files: FileMap::default(),
            tails_path,
            options,
        })
    }

    /// Begin a regular file of `size` bytes carrying the image xattrs `xattrs`.
    pub(crate) fn begin_file<'x>(
        &mut self,
        size: u64,
        xattrs: impl Iterator<Item = (&'x [u8], &'x [u8])>,
    ) -> Result<(), ErofsError> {
        self.data.begin(size, xattrs::body_len_bound(xattrs))
    }

    /// The next bytes of the current file.
    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<(), ErofsError> {
        self.data.write(buf)
    }

    /// End the current file; `key` is the inode the index records for it (hardlinks share
    /// it; a key used again names the newer file).
    pub(crate) fn end_file(&mut self, key: u64) -> Result<(), ErofsError> {
        let data = self.data.end()?;
        self.files.insert(key, data);
        Ok(())
    }

    /// Write the metadata of the layer's tree and the superblock; the side file is removed.
    pub(crate) fn finish(self, tree: &IndexBuilder) -> Result<ImageSummary, ErofsError> {
        let parts = self.data.into_parts()?;
        let summary = meta::write(tree, &self.files, parts, self.options)?;
        std::fs::remove_file(&self.tails_path)
            .map_err(ErofsError::io("remove", &self.tails_path))?;
        Ok(summary)
    }
}
