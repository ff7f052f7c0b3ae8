//! The metadata half of an image, written once the layer's tar has ended: the inode records
//! (inode, xattr body, inline tail), then the directories' and long symlinks' whole blocks,
//! then the shared xattr area, then the superblock in block 0 (see `FORMAT.md`).
//!
//! Two passes over the records in `nid` order run the same placement ([`Plan`]): the first
//! finds where each record goes and so every `nid`; the second writes, streaming inline tails
//! back from the side file, so memory stays a few words per entry.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use foldhash::{HashMap, HashMapExt};

use super::data::{DataParts, FileData, Tail, block_addr};
use super::format::{
    BLOCK, COMPACT_LEN, DIRENT_LEN, EXTENDED_LEN, Inode, SLOT, SUPER_OFFSET, SuperBlock, dirent,
    layout,
};
use super::tree::{Listed, Records, listing};
use super::xattrs::{self, Shared};
use super::{ErofsError, ErofsOptions, ImageSummary};
use crate::index::IndexBuilder;
use crate::stat::mode;

/// Where each regular file's data went, by the inode the index records for it.
pub(crate) type FileMap = HashMap<u64, FileData>;

/// What one record takes in the metadata area and after it.
struct Plan {
    inode: Inode,
    /// Bytes of the inode itself (compact or extended).
    inode_len: usize,
    /// The inode's xattr body (header, shared ids, inline entries), empty without xattrs.
    xattr_body: Vec<u8>,
    /// Bytes of data right after the inode and its xattrs.
    inline_len: usize,
    /// Whole blocks written after the metadata area (directories, long symlinks).
    late_blocks: u64,
}

/// A record's bytes after its inode and xattrs (inline data), and its late blocks.
#[derive(Default)]
struct RecordData {
    inline: Vec<u8>,
    late: Vec<u8>,
}

/// What the planner reads: the tree, its records, the files' data, the options.
struct Ctx<'a, 'f> {
    b: &'a IndexBuilder,
    rec: &'a Records,
    files: &'f FileMap,
    options: ErofsOptions,
    build_time: (u64, u32),
}

/// Write the metadata of the tree in `b` after the data area in `parts`, then the
/// superblock; the image is complete (not yet synced) when this returns.
pub(crate) fn write(
    b: &IndexBuilder,
    files: &FileMap,
    parts: DataParts,
    options: ErofsOptions,
) -> Result<ImageSummary, ErofsError> {
    let rec = Records::of(b)?;
    let build_time = most_common_mtime(b, &rec);
    let ctx = Ctx {
        b,
        rec: &rec,
        files,
        options,
        build_time,
    };
    let shared = Shared::of(|f| {
        for &node in &rec.order {
            f(&xattrs::of_node(b, node, ctx.opaque(node))?);
        }
        Ok(())
    })?;
    let meta_blkaddr = parts.next_block;
    // Pass 1: positions (and so nids), and the late blocks' count.
    let mut nids = Vec::with_capacity(rec.order.len());
    let mut pos = 0u64;
    let mut late_blocks = 0u64;
    for r in 0..rec.order.len() as u32 {
        let plan = ctx.plan(r, &shared, 0)?;
        pos = place(pos, &plan);
        nids.push(pos / SLOT);
        pos += plan.len().next_multiple_of(SLOT);
        late_blocks += plan.late_blocks;
    }
    let meta_blocks = pos.div_ceil(BLOCK);
    let late_start = meta_blkaddr + meta_blocks;
    let xattr_blkaddr = late_start + late_blocks;
    let total_blocks = xattr_blkaddr + (shared.area.len() as u64).div_ceil(BLOCK);
    let root_nid = u16::try_from(nids[0]).map_err(|_| ErofsError::Internal("root nid".into()))?;
    // Pass 2: write.
    let mut w = MetaWriter {
        out: parts.image,
        path: parts.image_path.display().to_string(),
        pos: meta_blkaddr * BLOCK,
    };
    let tails = (&parts.tails, parts.tails_path.as_path());
    let mut next_late = late_start;
    for r in 0..rec.order.len() as u32 {
        let plan = ctx.plan(r, &shared, block_addr(next_late)?)?;
        let at = meta_blkaddr * BLOCK + nids[r as usize] * SLOT;
        w.pad_to(at)?;
        w.write(&encode_inode(&plan))?;
        w.write(&plan.xattr_body)?;
        let data = ctx.record_data(r, &plan, &nids, tails)?;
        w.write(&data.inline)?;
        w.write_late(&data.late, next_late)?;
        next_late += plan.late_blocks;
    }
    w.pad_to(late_start * BLOCK)?;
    // The late blocks are written in place already (their gaps read as zeros).
    w.skip_to(xattr_blkaddr * BLOCK)?;
    w.write(&shared.area)?;
    w.pad_to(total_blocks * BLOCK)?;
    let file = w.finish()?;
    let sb = SuperBlock {
        root_nid,
        inodes: rec.order.len() as u64,
        build_time: build_time.0,
        build_time_nsec: build_time.1,
        blocks: block_addr(total_blocks)?,
        meta_blkaddr: block_addr(meta_blkaddr)?,
        xattr_blkaddr: block_addr(xattr_blkaddr)?,
        uuid: options.uuid,
    };
    file.write_all_at(&sb.encode_block_tail(), SUPER_OFFSET)
        .map_err(ErofsError::io("write", &parts.image_path))?;
    // A last late block written short leaves the file short of its last block.
    file.set_len(total_blocks * BLOCK)
        .map_err(ErofsError::io("extend", &parts.image_path))?;
    Ok(ImageSummary {
        blocks: total_blocks,
        inodes: rec.order.len() as u64,
    })
}

/// The timestamp compact inodes share: the most common `(mtime, nsec)` of the records
/// (the earliest among equals), so a layer built with one fixed time is all compact.
fn most_common_mtime(b: &IndexBuilder, rec: &Records) -> (u64, u32) {
    let mut count: HashMap<(u64, u32), u32> = HashMap::new();
    for &node in &rec.order {
        let m = &b.nodes()[node as usize].meta;
        *count
            .entry((mtime_of(m.mtime_sec), m.mtime_nsec))
            .or_default() += 1;
    }
    count
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or((0, 0), |(t, _)| t)
}

/// EROFS timestamps are unsigned: times before 1970 are stored as 1970.
fn mtime_of(sec: i64) -> u64 {
    u64::try_from(sec).unwrap_or(0)
}

/// Where a record goes at or after `pos`: 32-byte aligned, and within one block (the kernel
/// reads an inode's inline data from the inode's block).
fn place(pos: u64, plan: &Plan) -> u64 {
    let pos = pos.next_multiple_of(SLOT);
    if pos % BLOCK + plan.len() > BLOCK {
        pos.next_multiple_of(BLOCK)
    } else {
        pos
    }
}

impl Plan {
    /// Bytes of the record: inode, xattr body, inline data.
    fn len(&self) -> u64 {
        (self.inode_len + self.xattr_body.len() + self.inline_len) as u64
    }
}

fn encode_inode(plan: &Plan) -> Vec<u8> {
    if plan.inode_len == COMPACT_LEN {
        plan.inode.encode_compact().to_vec()
    } else {
        plan.inode.encode_extended().to_vec()
    }
}

impl<'a> Ctx<'a, '_> {
    /// The opaque marker a directory node gets in a per-layer image.
    fn opaque(&self, node: u32) -> Option<super::OpaqueXattr> {
        self.b.nodes()[node as usize]
            .is_opaque_dir()
            .then_some(self.options.opaque)
    }

    /// The plan of record `r`; `late_start` is the block its late blocks start at (pass 1
    /// does not need it).
    fn plan(&self, r: u32, shared: &Shared<'a>, late_start: u32) -> Result<Plan, ErofsError> {
        let node = self.rec.order[r as usize];
        let n = &self.b.nodes()[node as usize];
        let m = &n.meta;
        let xattr_body = shared.body(&xattrs::of_node(self.b, node, self.opaque(node))?)?;
        let body = xattr_body.len();
        let inode = Inode {
            layout: layout::FLAT_PLAIN,
            xattr_icount: icount(body)?,
            mode: m.mode,
            nlink: self.rec.nlink(self.b, node),
            size: 0,
            startblk_or_rdev: 0,
            ino: r + 1,
            uid: m.uid,
            gid: m.gid,
            mtime: mtime_of(m.mtime_sec),
            mtime_nsec: m.mtime_nsec,
        };
        let inode_len = if inode.fits_compact(self.build_time.0, self.build_time.1) {
            COMPACT_LEN
        } else {
            EXTENDED_LEN
        };
        let Some(room) = (BLOCK as usize).checked_sub(inode_len + body) else {
            return Err(ErofsError::XattrTooLarge {
                name: String::from_utf8_lossy(self.b.name(node)).into_owned(),
                len: body,
            });
        };
        let mut plan = Plan {
            inode,
            inode_len,
            xattr_body,
            inline_len: 0,
            late_blocks: 0,
        };
        if n.is_whiteout() {
            plan.inode.mode = mode::S_IFCHR;
            return Ok(plan);
        }
        match m.mode & mode::S_IFMT {
            mode::S_IFREG => {
                let data = self.file_data(node)?;
                plan.inode.size = data.size;
                plan.inode.startblk_or_rdev = data.start_block;
                if let Tail::Inline { len, .. } = data.tail {
                    plan.inode.layout = layout::FLAT_INLINE;
                    plan.inline_len = usize::from(len);
                }
            }
            mode::S_IFDIR => {
                let size = dir_size(&listing(self.b, self.rec, r)?);
                self.data_of_len(&mut plan, size, room, late_start);
            }
            mode::S_IFLNK => {
                let size = m.link_target().map_or(0, |t| t.len()) as u64;
                self.data_of_len(&mut plan, size, room, late_start);
            }
            _ => plan.inode.startblk_or_rdev = m.rdev,
        }
        Ok(plan)
    }

    /// Lay out `size` bytes written at the end (a directory's blocks, a symlink's target):
    /// whole blocks late, the rest inline when it fits beside the inode.
    fn data_of_len(&self, plan: &mut Plan, size: u64, room: usize, late_start: u32) {
        plan.inode.size = size;
        let tail = (size % BLOCK) as usize;
        let whole = size / BLOCK;
        if tail > 0 && tail <= room {
            plan.inode.layout = layout::FLAT_INLINE;
            plan.inline_len = tail;
            plan.late_blocks = whole;
        } else {
            plan.late_blocks = size.div_ceil(BLOCK);
        }
        if plan.late_blocks > 0 {
            plan.inode.startblk_or_rdev = late_start;
        }
    }

    fn file_data(&self, node: u32) -> Result<FileData, ErofsError> {
        let m = &self.b.nodes()[node as usize].meta;
        self.files.get(&m.inode).copied().ok_or_else(|| {
            ErofsError::Internal(format!(
                "no data recorded for {:?}",
                String::from_utf8_lossy(self.b.name(node))
            ))
        })
    }

    /// The bytes of record `r` after its xattrs, and the late blocks it owns.
    fn record_data(
        &self,
        r: u32,
        plan: &Plan,
        nids: &[u64],
        tails: (&File, &std::path::Path),
    ) -> Result<RecordData, ErofsError> {
        let node = self.rec.order[r as usize];
        let n = &self.b.nodes()[node as usize];
        if n.is_whiteout() {
            return Ok(RecordData::default());
        }
        let whole: Vec<u8> = match n.meta.mode & mode::S_IFMT {
            mode::S_IFREG => {
                let Tail::Inline { offset, len } = self.file_data(node)?.tail else {
                    return Ok(RecordData::default());
                };
                let mut buf = vec![0u8; usize::from(len)];
                tails
                    .0
                    .read_exact_at(&mut buf, offset)
                    .map_err(ErofsError::io("read", tails.1))?;
                return Ok(RecordData {
                    inline: buf,
                    late: Vec::new(),
                });
            }
            mode::S_IFDIR => dir_bytes(&listing(self.b, self.rec, r)?, nids),
            mode::S_IFLNK => n.meta.link_target().unwrap_or_default().to_vec(),
            _ => return Ok(RecordData::default()),
        };
        if plan.inline_len == 0 {
            return Ok(RecordData {
                inline: Vec::new(),
                late: whole,
            });
        }
        let split = (plan.late_blocks * BLOCK).min(whole.len() as u64) as usize;
        let (late, inline) = whole.split_at(split);
        Ok(RecordData {
            inline: inline.to_vec(),
            late: late.to_vec(),
        })
    }
}

/// `i_xattr_icount` for an xattr body of `body` bytes.
fn icount(body: usize) -> Result<u16, ErofsError> {
    if body == 0 {
        return Ok(0);
    }
    let n = (body - super::format::XATTR_HEADER_LEN) / 4 + 1;
    u16::try_from(n).map_err(|_| ErofsError::TooLarge {
        what: "xattr body",
        value: body as u64,
        max: u16::MAX.into(),
    })
}

/// A directory's size: entries packed in blocks, an entry never crossing one (erofs-utils'
/// rule, so our sizes match its).
fn dir_size(entries: &[Listed<'_>]) -> u64 {
    let mut size = 0u64;
    for e in entries {
        let len = (DIRENT_LEN + e.name.len()) as u64;
        if size % BLOCK + len > BLOCK {
            size = size.next_multiple_of(BLOCK);
        }
        size += len;
    }
    size
}

/// A directory's bytes: per block, its dirents then their names; every block but the last
/// zero-padded to the block.
fn dir_bytes(entries: &[Listed<'_>], nids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir_size(entries) as usize);
    let mut start = 0;
    while start < entries.len() {
        // The entries that fit this block.
        let mut used = 0usize;
        let mut end = start;
        while let Some(e) = entries.get(end) {
            let len = DIRENT_LEN + e.name.len();
            if used + len > BLOCK as usize {
                break;
            }
            used += len;
            end += 1;
        }
        if !out.is_empty() {
            out.resize(out.len().next_multiple_of(BLOCK as usize), 0);
        }
        let mut name_off = (end - start) * DIRENT_LEN;
        for e in &entries[start..end] {
            out.extend_from_slice(&dirent(
                nids[e.record as usize],
                name_off as u16,
                e.file_type,
            ));
            name_off += e.name.len();
        }
        for e in &entries[start..end] {
            out.extend_from_slice(e.name);
        }
        start = end;
    }
    out
}

/// Sequential writer of the metadata area and what follows it.
struct MetaWriter {
    out: BufWriter<File>,
    path: String,
    pos: u64,
}

impl MetaWriter {
    fn write(&mut self, b: &[u8]) -> Result<(), ErofsError> {
        self.out
            .write_all(b)
            .map_err(ErofsError::io("write", std::path::Path::new(&self.path)))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, at: u64) -> Result<(), ErofsError> {
        if at < self.pos {
            return Err(ErofsError::Internal(format!(
                "metadata placement went back from {} to {at}",
                self.pos
            )));
        }
        const ZEROS: [u8; 4096] = [0; 4096];
        while self.pos < at {
            let n = (at - self.pos).min(ZEROS.len() as u64) as usize;
            self.write(&ZEROS[..n])?;
        }
        Ok(())
    }

    /// Write `blocks` at block `at`, after the metadata area, leaving the sequential
    /// position alone.
    fn write_late(&mut self, blocks: &[u8], at: u64) -> Result<(), ErofsError> {
        if blocks.is_empty() {
            return Ok(());
        }
        self.out
            .get_ref()
            .write_all_at(blocks, at * BLOCK)
            .map_err(ErofsError::io("write", std::path::Path::new(&self.path)))
    }

    /// Move the sequential position forward to `at` without writing what is between.
    fn skip_to(&mut self, at: u64) -> Result<(), ErofsError> {
        if at < self.pos {
            return Err(ErofsError::Internal(format!(
                "metadata placement went back from {} to {at}",
                self.pos
            )));
        }
        self.out
            .seek(SeekFrom::Start(at))
            .map_err(ErofsError::io("seek", std::path::Path::new(&self.path)))?;
        self.pos = at;
        Ok(())
    }

    fn finish(self) -> Result<File, ErofsError> {
        let path = self.path;
        self.out
            .into_inner()
            .map_err(|e| ErofsError::io("write", std::path::Path::new(&path))(e.into_error()))
    }
}
