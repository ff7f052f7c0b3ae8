//! Reading back the EROFS images this crate writes (`FORMAT.md`), for `verify` and tests:
//! [`ErofsImage::open`] checks the superblock, [`ErofsImage::walk`] visits every path of the
//! tree from the root inode, [`ErofsImage::file_data`] reads a regular file's bytes.
//!
//! The image is untrusted: every size and offset is checked against the image's length
//! (`blocks` × 4 KiB, itself checked against the file's), every loop is bounded (each
//! directory is listed once, the directory bytes read in one walk never exceed the image's
//! length, paths are at most [`MAX_DEPTH`] deep), and nothing is allocated beyond what one
//! block, one xattr body or one symlink target needs. A hostile or damaged image gives a
//! [`ReadError`], never a panic.
//!
//! What is read: the superblock (magic, its CRC32C, 4 KiB blocks, no incompatible feature);
//! compact and extended inodes with the `FLAT_PLAIN` and `FLAT_INLINE` layouts (compressed and
//! chunked files are refused); directory blocks; inline and shared xattrs with the prefixes
//! `format.rs` names; symlinks, devices, FIFOs and sockets. The parts: `read/inode.rs`
//! (inodes, their data and xattrs), `read/dir.rs` (directory blocks).

mod dir;
mod inode;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{BLOCK, BLOCK_BITS, COMPAT_SB_CHKSUM, MAGIC, SUPER_OFFSET, sb_checksum};

pub use inode::FileData;
use inode::{DataLoc, Inode};

/// Deepest path a walk follows (directories below the root).
pub const MAX_DEPTH: usize = 4096;

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read EROFS image {path}: {source}")]
    Io {
        /// The image.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The image breaks the format (damaged or hostile).
    #[error("EROFS image {path} is not valid: {reason}")]
    Corrupt {
        /// The image.
        path: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// The image uses a part of the format this reader does not read (compression, chunks,
    /// other block sizes, incompatible features).
    #[error("EROFS image {path} uses {what}, which this reader does not support")]
    Unsupported {
        /// The image.
        path: String,
        /// The feature.
        what: String,
    },
}

/// The superblock's fields the reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperBlock {
    /// `nid` of the root directory.
    pub root_nid: u64,
    /// Inodes in the image, as recorded.
    pub inodes: u64,
    /// The time of compact inodes.
    pub build_time: u64,
    /// Its nanoseconds.
    pub build_time_nsec: u32,
    /// Blocks of 4 KiB.
    pub blocks: u64,
    /// First block of the metadata area.
    pub meta_blkaddr: u64,
    /// First block of the shared xattr area.
    pub xattr_blkaddr: u64,
}

/// An opened image, its superblock checked.
#[derive(Debug)]
pub struct ErofsImage {
    file: File,
    path: String,
    /// Bytes the image holds (`blocks` × 4 KiB): no offset at or past it is read.
    limit: u64,
    sb: SuperBlock,
}

/// One path of the image's tree, as [`ErofsImage::walk`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Path from the root (empty for the root), components joined by `/`.
    pub path: Vec<u8>,
    /// The inode's number (hardlinks share it).
    pub nid: u64,
    /// Full mode: type bits and permissions.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Its nanoseconds.
    pub mtime_nsec: u32,
    /// Bytes of data (a directory's: its blocks of entries).
    pub size: u64,
    /// Link count.
    pub nlink: u32,
    /// Device number (`new_encode_dev` form) of character and block devices, else 0.
    pub rdev: u32,
    /// A symlink's target.
    pub link_target: Option<Vec<u8>>,
    /// Extended attributes, full names, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    data: DataLoc,
}

impl ImageEntry {
    /// The type bits of the mode (`stat::mode::S_IF*`).
    pub fn file_type(&self) -> u32 {
        self.mode & crate::stat::mode::S_IFMT
    }
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

impl ErofsImage {
    /// Open the image at `path` and check its superblock: magic, checksum (required: every
    /// image we write carries it), 4 KiB blocks, no incompatible feature, a block count the
    /// file holds, metadata and xattr areas inside it.
    pub fn open(path: &Path) -> Result<ErofsImage, ReadError> {
        let shown = path.display().to_string();
        let io = |source| ReadError::Io {
            path: shown.clone(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut image = ErofsImage {
            file,
            path: shown.clone(),
            limit: len.min(BLOCK),
            sb: SuperBlock {
                root_nid: 0,
                inodes: 0,
                build_time: 0,
                build_time_nsec: 0,
                blocks: 0,
                meta_blkaddr: 0,
                xattr_blkaddr: 0,
            },
        };
        if len < BLOCK {
            return Err(image.corrupt(format!("{len} bytes: shorter than its superblock's block")));
        }
        let mut tail = vec![0u8; (BLOCK - SUPER_OFFSET) as usize];
        image.read_at(&mut tail, SUPER_OFFSET)?;
        let magic = read_u32(&tail, 0);
        if magic != MAGIC {
            return Err(image.corrupt(format!("bad magic {magic:#010x}")));
        }
        let compat = read_u32(&tail, 8);
        if compat & COMPAT_SB_CHKSUM == 0 {
            return Err(image.corrupt("no superblock checksum (every image we write has one)"));
        }
        let (stored, computed) = (read_u32(&tail, 4), sb_checksum(&tail));
        if stored != computed {
            return Err(image.corrupt(format!(
                "superblock checksum {stored:#010x}, computed {computed:#010x}"
            )));
        }
        if tail[12] != BLOCK_BITS {
            return Err(image.unsupported(format!("blocks of 2^{} bytes", tail[12])));
        }
        if tail[13] != 0 {
            return Err(image.unsupported("superblock extension slots"));
        }
        let incompat = read_u32(&tail, 80);
        if incompat != 0 {
            return Err(image.unsupported(format!("incompatible features {incompat:#x}")));
        }
        let sb = SuperBlock {
            root_nid: read_u16(&tail, 14).into(),
            inodes: read_u64(&tail, 16),
            build_time: read_u64(&tail, 24),
            build_time_nsec: read_u32(&tail, 32),
            blocks: read_u32(&tail, 36).into(),
            meta_blkaddr: read_u32(&tail, 40).into(),
            xattr_blkaddr: read_u32(&tail, 44).into(),
        };
        let bytes = sb.blocks * BLOCK;
        if bytes > len {
            return Err(image.corrupt(format!(
                "{} blocks ({bytes} bytes) recorded, the file has {len}",
                sb.blocks
            )));
        }
        if sb.meta_blkaddr == 0 || sb.meta_blkaddr >= sb.blocks || sb.xattr_blkaddr > sb.blocks {
            return Err(image.corrupt(format!(
                "metadata at block {}, xattrs at block {}, in an image of {} blocks",
                sb.meta_blkaddr, sb.xattr_blkaddr, sb.blocks
            )));
        }
        if sb.build_time_nsec >= 1_000_000_000 {
            return Err(image.corrupt("build time nanoseconds over 10^9"));
        }
        image.limit = bytes;
        image.sb = sb;
        Ok(image)
    }

    /// The superblock.
    pub fn superblock(&self) -> &SuperBlock {
        &self.sb
    }

    /// Visit every path of the tree, the root first (path empty), each directory before its
    /// entries, entries in the directory's (name) order. A hardlinked file is visited once
    /// per name, with the same `nid`. Stops at the first error, the visitor's included.
    pub fn walk<E: From<ReadError>>(
        &self,
        mut visit: impl FnMut(&ImageEntry) -> Result<(), E>,
    ) -> Result<(), E> {
        let root = self.entry(Vec::new(), self.sb.root_nid)?;
        if root.file_type() != crate::stat::mode::S_IFDIR {
            return Err(self.corrupt("the root inode is not a directory").into());
        }
        let mut listed: HashSet<u64> = HashSet::new();
        // Directory bytes the walk may still read: honest directories never share blocks,
        // so they add up to less than the image.
        let mut budget = self.limit;
        // (directory, its parent's nid, depth)
        let mut stack = vec![(root, self.sb.root_nid, 0usize)];
        while let Some((dir, parent, depth)) = stack.pop() {
            visit(&dir)?;
            if !listed.insert(dir.nid) {
                let why = format!("directory nid {} is listed twice", dir.nid);
                return Err(self.corrupt(why).into());
            }
            let children = self.list(&dir, parent, &mut budget)?;
            let mut subdirs = Vec::new();
            for (name, nid, file_type) in children {
                let mut path = dir.path.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&name);
                let e = self.entry(path, nid)?;
                if super::format::file_type_of(e.mode) != file_type {
                    let why = format!(
                        "{}: directory entry type {file_type}, inode mode {:o}",
                        String::from_utf8_lossy(&e.path),
                        e.mode
                    );
                    return Err(self.corrupt(why).into());
                }
                if e.file_type() == crate::stat::mode::S_IFDIR {
                    if depth + 1 > MAX_DEPTH {
                        let why = format!("directories nested deeper than {MAX_DEPTH}");
                        return Err(self.corrupt(why).into());
                    }
                    subdirs.push((e, dir.nid, depth + 1));
                } else {
                    visit(&e)?;
                }
            }
            // Visited in name order: the stack pops the last pushed first.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Every entry of the tree, in [`ErofsImage::walk`]'s order.
    pub fn entries(&self) -> Result<Vec<ImageEntry>, ReadError> {
        let mut out = Vec::new();
        self.walk(|e| {
            out.push(e.clone());
            Ok::<(), ReadError>(())
        })?;
        Ok(out)
    }

    /// A reader of the regular file `entry`'s bytes (its location checked against the
    /// image first).
    pub fn file_data<'a>(&'a self, entry: &ImageEntry) -> Result<FileData<'a>, ReadError> {
        if entry.file_type() != crate::stat::mode::S_IFREG {
            let why = format!(
                "{} is not a regular file",
                String::from_utf8_lossy(&entry.path)
            );
            return Err(self.corrupt(why));
        }
        Ok(FileData::new(self, entry.data))
    }

    /// The entry at `path` made of inode `nid`.
    fn entry(&self, path: Vec<u8>, nid: u64) -> Result<ImageEntry, ReadError> {
        let inode = Inode::read(self, nid).map_err(|e| self.at(&path, e))?;
        let link_target = if inode.mode & crate::stat::mode::S_IFMT == crate::stat::mode::S_IFLNK {
            Some(inode.symlink_target(self).map_err(|e| self.at(&path, e))?)
        } else {
            None
        };
        Ok(ImageEntry {
            path,
            nid,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            mtime: inode.mtime,
            mtime_nsec: inode.mtime_nsec,
            size: inode.size,
            nlink: inode.nlink,
            rdev: inode.rdev,
            link_target,
            xattrs: inode.xattrs,
            data: inode.data,
        })
    }

    /// Read exactly `buf.len()` bytes at `offset`, which must lie inside the image.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.limit) {
            return Err(self.corrupt(format!(
                "{} bytes at offset {offset}: past the end of the image ({} bytes)",
                buf.len(),
                self.limit
            )));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| ReadError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn corrupt(&self, reason: impl Into<String>) -> ReadError {
        ReadError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, what: impl Into<String>) -> ReadError {
        ReadError::Unsupported {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    /// `e`, saying which path it was met at.
    fn at(&self, path: &[u8], e: ReadError) -> ReadError {
        let shown = if path.is_empty() {
            "/".to_owned()
        } else {
            String::from_utf8_lossy(path).into_owned()
        };
        match e {
            ReadError::Corrupt { path, reason } => ReadError::Corrupt {
                path,
                reason: format!("{shown}: {reason}"),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
