//! The sidecar lookup index of an extracted layer: one memory-mappable file per layer
//! (`layers/sha256/<hex>/index`) describing the layer's final tree, whiteouts and opaque
//! directories already interpreted, so a runtime answers `stat`, `readlink`, `listxattr` and
//! `readdir` for a whole image without touching the host tree. The byte layout is specified in
//! `FORMAT.md` beside this file.
//!
//! This module owns:
//! * [`IndexBuilder`] (`writer.rs`): fed by the extractor one tar entry at a time, serialises
//!   the index;
//! * [`LayerIndex`] (`reader.rs`): maps one index file, checks it (`validate.rs` when it is
//!   opened, `tree_check.rs` for each directory on first use, `blocks.rs` for the checksum of
//!   each 64 KiB block on first use) and answers zero-copy lookups within one layer,
//!   returning [`Entry`] handles (`entry.rs`);
//! * [`LayerStack`] (`stack.rs`): the merged, overlay-style view of several layers;
//! * [`IndexError`]: everything that can go wrong building or opening an index.
//!
//! ```
//! use microsandbox_image::index::{EntryKind, EntryMeta, IndexBuilder, LayerIndex, LayerStack};
//!
//! let dir = EntryMeta { mode: 0o040755, ..EntryMeta::default() };
//! let file = |size| EntryMeta { mode: 0o100644, size, ..EntryMeta::default() };
//!
//! // Lower layer: /etc/hosts and /etc/motd.
//! let mut lower = IndexBuilder::new();
//! lower.add(b"etc", dir.clone())?;
//! lower.add(b"etc/hosts", file(10))?;
//! lower.add(b"etc/motd", file(20))?;
//! // Upper layer: deletes /etc/motd, replaces /etc/hosts; /etc is only implied.
//! let mut upper = IndexBuilder::new();
//! upper.add(b"etc", EntryMeta { implicit: true, ..dir })?;
//! upper.add(b"etc/.wh.motd", file(0))?;
//! upper.add(b"etc/hosts", file(30))?;
//!
//! let stack = LayerStack::new(vec![
//!     LayerIndex::from_bytes(lower.finish()?)?,
//!     LayerIndex::from_bytes(upper.finish()?)?,
//! ]);
//! let hosts = stack.get(b"etc/hosts")?.expect("visible");
//! assert_eq!((hosts.size(), hosts.layer()), (30, 1));
//! assert!(stack.get(b"etc/motd")?.is_none());
//! let etc = stack.read_dir(b"etc")?.expect("a directory");
//! let names: Vec<&[u8]> = etc.iter().map(|e| e.name()).collect();
//! assert_eq!(names, [&b"hosts"[..]]);
//! assert_eq!(stack.get(b"etc")?.map(|e| e.kind()), Some(EntryKind::Dir));
//! # Ok::<(), microsandbox_image::index::IndexError>(())
//! ```

mod blocks;
mod entry;
mod format;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod name_tree;
mod reader;
mod serialize;
mod stack;
mod tree_check;
mod validate;
mod writer;

#[cfg(test)]
mod tests;

pub use entry::{Entry, EntryKind};
pub use reader::LayerIndex;
pub(crate) use serialize::LinkGroups;
pub use stack::LayerStack;
pub use writer::{EntryMeta, IndexBuilder};

/// Everything that can go wrong building, opening or validating a layer index.
///
/// Reading never panics: a truncated, corrupt or hostile file yields one of the variants
/// below, naming the section, record and rule it broke, from `open` or from the first lookup
/// that reaches the bad directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The index file could not be opened, inspected or mapped.
    #[error("cannot {op} index {path}: {source}")]
    Io {
        /// What was being done (`open`, `stat`, `map`).
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is shorter than its header or than the length its header states.
    #[error("index truncated: needs {needed} bytes, has {len}")]
    Truncated {
        /// Bytes required.
        needed: u64,
        /// Bytes present.
        len: u64,
    },
    /// The file does not start with the index magic.
    #[error("not a layer index (magic {found:02x?})")]
    BadMagic {
        /// The first 8 bytes of the file.
        found: [u8; 8],
    },
    /// The file was written in a format version this code does not read.
    #[error("unsupported index version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// The stored CRC32C does not match the file's contents.
    #[error("index checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A structural rule of the format is broken (a hostile or buggy writer: the checksum
    /// matched).
    #[error("malformed index: {section}[{index}]: {reason}")]
    Malformed {
        /// Section of the file (`header`, `keys`, `attrs`, `dirs`, `hardlinks`, `xattrs`).
        section: &'static str,
        /// Record number inside the section (0 for the header).
        index: u64,
        /// The rule that is broken.
        reason: &'static str,
    },
    /// The builder was given an entry it cannot represent (or that the extractor could not
    /// have produced).
    #[error("cannot index {path:?}: {reason}")]
    InvalidEntry {
        /// The entry's path, lossily decoded.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The layer is too large for the format's 32-bit counts and offsets.
    #[error("layer too large to index: {what} is {value}, at most {max}")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The format's limit.
        max: u64,
    },
}

impl IndexError {
    /// The stable kind every front door reports: an unreadable file is `Io`, a file that
    /// breaks the format `Io` too (a corrupt cache), a newer format `Unsupported`.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind;
        match self {
            IndexError::UnsupportedVersion { .. } => ErrorKind::Unsupported,
            IndexError::Io { .. } => ErrorKind::Io,
            e if e.is_corrupt() => ErrorKind::Io,
            _ => ErrorKind::Internal,
        }
    }

    /// Whether the error says the file's bytes are bad (as opposed to an I/O failure or a
    /// builder input problem): the caller may rebuild the index from the layer tree.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            IndexError::Truncated { .. }
                | IndexError::BadMagic { .. }
                | IndexError::UnsupportedVersion { .. }
                | IndexError::ChecksumMismatch { .. }
                | IndexError::Malformed { .. }
        )
    }
}
