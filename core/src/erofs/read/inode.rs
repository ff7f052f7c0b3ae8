//! One inode of an image: its compact or extended record, where its data is (`FLAT_PLAIN`
//! blocks, or whole blocks and an inline tail), its xattrs (inline entries and shared ids),
//! and a bounded reader of its data.

use super::{ErofsImage, ReadError, read_u16, read_u32, read_u64};
use crate::erofs::format::{
    BLOCK, COMPACT_LEN, EXTENDED_LEN, SLOT, XATTR_ENTRY_LEN, XATTR_HEADER_LEN, layout,
};
use crate::stat::mode;

/// Xattrs as read: full names and values.
pub(super) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Longest symlink target read.
pub(super) const MAX_SYMLINK: u64 = 64 * 1024;

/// Where an inode's data is, checked against the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct DataLoc {
    /// Bytes of data.
    pub size: u64,
    /// Byte offset of the data held in whole blocks.
    pub blocks_at: u64,
    /// How many of the data's bytes are in those blocks (the rest is inline).
    pub in_blocks: u64,
    /// Byte offset of the inline tail.
    pub inline_at: u64,
}

/// An inode as read.
pub(super) struct Inode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    pub size: u64,
    pub nlink: u32,
    pub rdev: u32,
    pub xattrs: Xattrs,
    pub data: DataLoc,
}

/// The xattr name prefixes by index (`format::xattr_prefix` writes them).
fn prefix(index: u8) -> Option<&'static [u8]> {
    Some(match index {
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        6 => b"security.",
        _ => return None,
    })
}

impl Inode {
    /// Read and check inode `nid`.
    pub(super) fn read(img: &ErofsImage, nid: u64) -> Result<Inode, ReadError> {
        let at = nid
            .checked_mul(SLOT)
            .and_then(|o| o.checked_add(img.sb.meta_blkaddr * BLOCK))
            .ok_or_else(|| img.corrupt(format!("nid {nid} out of range")))?;
        let mut head = [0u8; EXTENDED_LEN];
        let room = img.limit.saturating_sub(at).min(EXTENDED_LEN as u64) as usize;
        img.read_at(&mut head[..room.max(COMPACT_LEN)], at)
            .map_err(|_| img.corrupt(format!("nid {nid}: inode past the end of the image")))?;
        let format = read_u16(&head, 0);
        let extended = format & 1 == 1;
        let data_layout = (format >> 1) & 0x7;
        if format >> 4 != 0 {
            return Err(img.unsupported(format!("inode format bits {format:#x} (nid {nid})")));
        }
        if data_layout != layout::FLAT_PLAIN && data_layout != layout::FLAT_INLINE {
            return Err(img.unsupported(format!("data layout {data_layout} (nid {nid})")));
        }
        let inode_len = if extended { EXTENDED_LEN } else { COMPACT_LEN };
        if extended && room < EXTENDED_LEN {
            return Err(img.corrupt(format!("nid {nid}: inode past the end of the image")));
        }
        let icount = read_u16(&head, 2);
        let mode = u32::from(read_u16(&head, 4));
        let i_u = read_u32(&head, 16);
        let mut inode = if extended {
            Inode {
                mode,
                size: read_u64(&head, 8),
                uid: read_u32(&head, 24),
                gid: read_u32(&head, 28),
                mtime: read_u64(&head, 32),
                mtime_nsec: read_u32(&head, 40),
                nlink: read_u32(&head, 44),
                rdev: 0,
                xattrs: Vec::new(),
                data: DataLoc::default(),
            }
        } else {
            Inode {
                mode,
                nlink: read_u16(&head, 6).into(),
                size: read_u32(&head, 8).into(),
                uid: read_u16(&head, 24).into(),
                gid: read_u16(&head, 26).into(),
                mtime: img.sb.build_time,
                mtime_nsec: img.sb.build_time_nsec,
                rdev: 0,
                xattrs: Vec::new(),
                data: DataLoc::default(),
            }
        };
        if inode.mtime_nsec >= 1_000_000_000 {
            return Err(img.corrupt(format!("nid {nid}: mtime nanoseconds over 10^9")));
        }
        let xattr_len = if icount == 0 {
            0
        } else {
            XATTR_HEADER_LEN + (usize::from(icount) - 1) * 4
        };
        let body_at = at + inode_len as u64;
        if xattr_len > 0 {
            inode.xattrs = read_xattrs(img, body_at, xattr_len)
                .map_err(|e| img.at(format!("nid {nid}").as_bytes(), e))?;
        }
        let inline_at = body_at + xattr_len as u64;
        match mode & mode::S_IFMT {
            mode::S_IFREG | mode::S_IFDIR | mode::S_IFLNK => {
                inode.data = data_loc(img, nid, data_layout, inode.size, i_u, inline_at)?;
            }
            mode::S_IFCHR | mode::S_IFBLK => inode.rdev = i_u,
            mode::S_IFIFO | mode::S_IFSOCK => {}
            other => {
                return Err(img.corrupt(format!("nid {nid}: unknown file type {other:o}")));
            }
        }
        Ok(inode)
    }

    /// A symlink's target (its data), at most [`MAX_SYMLINK`] bytes.
    pub(super) fn symlink_target(&self, img: &ErofsImage) -> Result<Vec<u8>, ReadError> {
        if self.size > MAX_SYMLINK {
            let why = format!("a symlink target of {} bytes", self.size);
            return Err(img.corrupt(why));
        }
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut FileData::new(img, self.data), &mut out).map_err(
            |source| ReadError::Io {
                path: img.path.clone(),
                source,
            },
        )?;
        Ok(out)
    }
}

/// Where `size` bytes of data in layout `data_layout` are, checked against the image: whole
/// blocks from block `startblk`, and for `FLAT_INLINE` the last partial block at `inline_at`
/// (in the inode's own block, as the kernel reads it).
fn data_loc(
    img: &ErofsImage,
    nid: u64,
    data_layout: u16,
    size: u64,
    startblk: u32,
    inline_at: u64,
) -> Result<DataLoc, ReadError> {
    let tail = size % BLOCK;
    let inline = data_layout == layout::FLAT_INLINE && tail > 0;
    let in_blocks = if inline { size - tail } else { size };
    let blocks_at = u64::from(startblk) * BLOCK;
    if in_blocks > 0 {
        let end = in_blocks
            .checked_next_multiple_of(BLOCK)
            .and_then(|n| blocks_at.checked_add(n));
        if startblk == 0 || end.is_none_or(|end| end > img.limit) {
            return Err(img.corrupt(format!(
                "nid {nid}: {in_blocks} bytes of data from block {startblk}, outside the image"
            )));
        }
    }
    if inline && (inline_at % BLOCK + tail > BLOCK || inline_at + tail > img.limit) {
        return Err(img.corrupt(format!(
            "nid {nid}: an inline tail of {tail} bytes crosses its block or the image's end"
        )));
    }
    Ok(DataLoc {
        size,
        blocks_at,
        in_blocks,
        inline_at,
    })
}

/// Read the xattr body of `len` bytes at `at`: header, shared ids, inline entries.
fn read_xattrs(img: &ErofsImage, at: u64, len: usize) -> Result<Xattrs, ReadError> {
    let mut body = vec![0u8; len];
    img.read_at(&mut body, at)?;
    let shared = usize::from(body[4]);
    let ids_end = XATTR_HEADER_LEN + shared * 4;
    if ids_end > len {
        return Err(img.corrupt(format!(
            "{shared} shared xattr ids in a body of {len} bytes"
        )));
    }
    let mut out = Vec::new();
    for i in 0..shared {
        let id = read_u32(&body, XATTR_HEADER_LEN + i * 4);
        let at = (img.sb.xattr_blkaddr * BLOCK).checked_add(u64::from(id) * 4);
        let at = at.ok_or_else(|| img.corrupt(format!("shared xattr id {id} out of range")))?;
        let mut head = [0u8; XATTR_ENTRY_LEN];
        img.read_at(&mut head, at)?;
        let (name_len, value_len) = (usize::from(head[0]), usize::from(read_u16(&head, 2)));
        let mut rest = vec![0u8; name_len + value_len];
        img.read_at(&mut rest, at + XATTR_ENTRY_LEN as u64)?;
        out.push(xattr(img, head[1], &rest[..name_len], &rest[name_len..])?);
    }
    let mut pos = ids_end;
    while pos < len {
        let Some(head) = body.get(pos..pos + XATTR_ENTRY_LEN) else {
            return Err(img.corrupt("an xattr entry's header crosses the end of its body"));
        };
        let (name_len, value_len) = (usize::from(head[0]), usize::from(read_u16(head, 2)));
        let index = head[1];
        let start = pos + XATTR_ENTRY_LEN;
        let Some(rest) = body.get(start..start + name_len + value_len) else {
            return Err(img.corrupt("an xattr entry crosses the end of its body"));
        };
        out.push(xattr(img, index, &rest[..name_len], &rest[name_len..])?);
        pos = (start + name_len + value_len).next_multiple_of(4);
    }
    out.sort();
    if out.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(img.corrupt("an xattr name repeated on one inode"));
    }
    Ok(out)
}

fn xattr(
    img: &ErofsImage,
    index: u8,
    suffix: &[u8],
    value: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), ReadError> {
    let Some(p) = prefix(index) else {
        return Err(img.unsupported(format!("xattr name prefix index {index}")));
    };
    let mut name = p.to_vec();
    name.extend_from_slice(suffix);
    if suffix.contains(&0) || (index == 2 || index == 3) != suffix.is_empty() {
        let why = format!("xattr name {:?}", String::from_utf8_lossy(&name));
        return Err(img.corrupt(why));
    }
    Ok((name, value.to_vec()))
}

/// A reader of one inode's data (its location checked when the inode was read).
#[derive(Debug)]
pub struct FileData<'a> {
    img: &'a ErofsImage,
    loc: DataLoc,
    pos: u64,
}

impl<'a> FileData<'a> {
    pub(super) fn new(img: &'a ErofsImage, loc: DataLoc) -> FileData<'a> {
        FileData { img, loc, pos: 0 }
    }

    /// Bytes of data in all.
    pub fn size(&self) -> u64 {
        self.loc.size
    }
}

impl std::io::Read for FileData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.loc.size - self.pos.min(self.loc.size);
        let (at, run) = if self.pos < self.loc.in_blocks {
            (self.loc.blocks_at + self.pos, self.loc.in_blocks - self.pos)
        } else {
            let off = self.pos - self.loc.in_blocks;
            (self.loc.inline_at + off, left)
        };
        let n = (buf.len() as u64).min(run).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.img
            .read_at(&mut buf[..n], at)
            .map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}
