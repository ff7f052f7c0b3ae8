//! The data area of an EROFS image, written while the layer's tar streams: each regular
//! file's whole blocks go straight into the image after the previous file's, in tar order;
//! the last partial block either follows them, zero-padded, or (when it will fit beside the
//! inode in the metadata area) goes to a side file of tails until the metadata is written at
//! the end (`meta.rs`). Nothing is held in memory beyond one write buffer per file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ErofsError;
use super::format::{BLOCK, EXTENDED_LEN};

/// Where one regular file's data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileData {
    /// Content length.
    pub size: u64,
    /// First block of the file's whole blocks (0 when it has none).
    pub start_block: u32,
    /// Where the last partial block is.
    pub tail: Tail,
}

/// Where a file's last partial block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// The size is a multiple of the block (or zero): no partial block.
    None,
    /// In the data area after the file's whole blocks, zero-padded (`FLAT_PLAIN`).
    Padded,
    /// In the side file at `offset`, to be written inline after the inode (`FLAT_INLINE`).
    Inline {
        /// Offset in the side file.
        offset: u64,
        /// Length (below one block).
        len: u16,
    },
}

/// The file being written.
struct Current {
    size: u64,
    start_block: u64,
    /// Bytes that go to the data area (the rest, if any, is the inline tail).
    body: u64,
    inline: bool,
    tail_offset: u64,
    written: u64,
}

/// Writes the data area of one image, file by file.
pub(crate) struct DataWriter {
    image: BufWriter<File>,
    image_path: PathBuf,
    tails: BufWriter<File>,
    tails_path: PathBuf,
    tails_len: u64,
    /// The first block not yet written (block 0 holds the superblock).
    next_block: u64,
    current: Option<Current>,
}

/// Bytes buffered before a write to the image or the side file.
const WRITE_BUF: usize = 256 * 1024;

impl DataWriter {
    /// Start an image at `image` (created; must not exist) with its side file of tails at
    /// `tails`.
    pub(crate) fn create(image: &Path, tails: &Path) -> Result<DataWriter, ErofsError> {
        let open = |p: &Path| {
            File::options()
                .write(true)
                .read(true)
                .create_new(true)
                .open(p)
                .map_err(ErofsError::io("create", p))
        };
        let mut w = DataWriter {
            image: BufWriter::with_capacity(WRITE_BUF, open(image)?),
            image_path: image.to_path_buf(),
            tails: BufWriter::with_capacity(WRITE_BUF, open(tails)?),
            tails_path: tails.to_path_buf(),
            tails_len: 0,
            next_block: 1,
            current: None,
        };
        // Block 0 (the superblock, written last).
        w.image
            .write_all(&[0u8; BLOCK as usize])
            .map_err(ErofsError::io("write", image))?;
        Ok(w)
    }

    /// Begin a regular file of `size` bytes whose inode's xattr body takes `xattr_len`
    /// bytes: its tail is kept for inline placement when an extended inode, those xattrs
    /// and the tail fit one block (so any inode layout fits), and padded into the data area
    /// otherwise.
    pub(crate) fn begin(&mut self, size: u64, xattr_len: usize) -> Result<(), ErofsError> {
        if self.current.is_some() {
            return Err(ErofsError::Internal("a file was begun twice".into()));
        }
        let tail = size % BLOCK;
        let inline = tail > 0 && EXTENDED_LEN as u64 + xattr_len as u64 + tail <= BLOCK;
        self.current = Some(Current {
            size,
            start_block: self.next_block,
            body: if inline { size - tail } else { size },
            inline,
            tail_offset: self.tails_len,
            written: 0,
        });
        Ok(())
    }

    /// Append the next bytes of the current file.
    pub(crate) fn write(&mut self, mut buf: &[u8]) -> Result<(), ErofsError> {
        let Some(cur) = self.current.as_mut() else {
            return Err(ErofsError::Internal("data written outside a file".into()));
        };
        if cur.written + buf.len() as u64 > cur.size {
            return Err(ErofsError::Internal(format!(
                "file data past its size ({} bytes)",
                cur.size
            )));
        }
        if cur.written < cur.body {
            let n = buf.len().min((cur.body - cur.written) as usize);
            self.image
                .write_all(&buf[..n])
                .map_err(ErofsError::io("write", &self.image_path))?;
            cur.written += n as u64;
            buf = &buf[n..];
        }
        if !buf.is_empty() {
            self.tails
                .write_all(buf)
                .map_err(ErofsError::io("write", &self.tails_path))?;
            self.tails_len += buf.len() as u64;
            cur.written += buf.len() as u64;
        }
        Ok(())
    }

    /// End the current file (all its bytes written) and say where its data is.
    pub(crate) fn end(&mut self) -> Result<FileData, ErofsError> {
        let Some(cur) = self.current.take() else {
            return Err(ErofsError::Internal("no file to end".into()));
        };
        if cur.written != cur.size {
            return Err(ErofsError::Internal(format!(
                "file ended after {} of {} bytes",
                cur.written, cur.size
            )));
        }
        let blocks = cur.body.div_ceil(BLOCK);
        let pad = blocks * BLOCK - cur.body;
        if pad > 0 {
            self.image
                .write_all(&vec![0u8; pad as usize])
                .map_err(ErofsError::io("write", &self.image_path))?;
        }
        let start_block = if blocks == 0 { 0 } else { cur.start_block };
        self.next_block += blocks;
        let tail = match (cur.size % BLOCK, cur.inline) {
            (0, _) => Tail::None,
            (len, true) => Tail::Inline {
                offset: cur.tail_offset,
                len: len as u16,
            },
            (_, false) => Tail::Padded,
        };
        Ok(FileData {
            size: cur.size,
            start_block: block_addr(start_block)?,
            tail,
        })
    }

    /// The data area is complete: the image (positioned at its end), its next free block,
    /// and the side file of tails (flushed) for the metadata writer.
    pub(crate) fn into_parts(mut self) -> Result<DataParts, ErofsError> {
        if self.current.is_some() {
            return Err(ErofsError::Internal("a file was not ended".into()));
        }
        self.tails
            .flush()
            .map_err(ErofsError::io("write", &self.tails_path))?;
        let tails = self
            .tails
            .into_inner()
            .map_err(|e| ErofsError::io("write", &self.tails_path)(e.into_error()))?;
        Ok(DataParts {
            image: self.image,
            image_path: self.image_path,
            next_block: self.next_block,
            tails,
            tails_path: self.tails_path,
        })
    }
}

/// What the metadata writer continues from.
pub(crate) struct DataParts {
    pub image: BufWriter<File>,
    pub image_path: PathBuf,
    pub next_block: u64,
    pub tails: File,
    pub tails_path: PathBuf,
}

/// A block number as the format stores it (32 bits: images up to 16 TiB).
pub(crate) fn block_addr(block: u64) -> Result<u32, ErofsError> {
    u32::try_from(block).map_err(|_| ErofsError::TooLarge {
        what: "image blocks",
        value: block,
        max: u32::MAX.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path) -> DataWriter {
        DataWriter::create(&dir.join("img"), &dir.join("tails")).unwrap()
    }

    fn file(w: &mut DataWriter, bytes: &[u8], xattr_len: usize) -> FileData {
        w.begin(bytes.len() as u64, xattr_len).unwrap();
        for chunk in bytes.chunks(1000) {
            w.write(chunk).unwrap();
        }
        w.end().unwrap()
    }

    #[test]
    fn whole_blocks_follow_each_other_and_tails_go_aside_when_they_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let a = file(&mut w, &vec![1u8; 5000], 0);
        assert_eq!(a.start_block, 1);
        assert_eq!(
            a.tail,
            Tail::Inline {
                offset: 0,
                len: 904
            }
        );
        let b = file(&mut w, &vec![2u8; 8192], 0);
        assert_eq!((b.start_block, b.tail), (2, Tail::None));
        // A tail that leaves no room for the inode and its xattrs is padded in place.
        let c = file(&mut w, &vec![3u8; 4000], 100);
        assert_eq!((c.start_block, c.tail), (4, Tail::Padded));
        let empty = file(&mut w, b"", 0);
        assert_eq!((empty.start_block, empty.tail), (0, Tail::None));
        let small = file(&mut w, b"hello", 0);
        assert_eq!(small.start_block, 0, "no whole block");
        assert_eq!(
            small.tail,
            Tail::Inline {
                offset: 904,
                len: 5
            }
        );
        let parts = w.into_parts().unwrap();
        assert_eq!(parts.next_block, 5);
        drop(parts.image);
        let img = std::fs::read(dir.path().join("img")).unwrap();
        assert_eq!(img.len(), 5 * 4096);
        assert!(img[4096..8192].iter().all(|&b| b == 1));
        assert!(img[8192..16384].iter().all(|&b| b == 2));
        assert!(img[16384..16384 + 4000].iter().all(|&b| b == 3));
        assert!(img[16384 + 4000..].iter().all(|&b| b == 0));
        let tails = std::fs::read(dir.path().join("tails")).unwrap();
        assert_eq!(tails.len(), 909);
        assert_eq!(&tails[904..], b"hello");
    }

    #[test]
    fn a_file_must_get_exactly_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.begin(10, 0).unwrap();
        w.write(b"12345").unwrap();
        assert!(w.end().is_err());
        w.begin(3, 0).unwrap();
        assert!(w.write(b"1234").is_err());
    }
}
