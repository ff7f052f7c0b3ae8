//! The EROFS on-disk records this crate writes, byte for byte: the superblock, compact and
//! extended inodes, the inline xattr body and its entries, and directory entries. Field
//! offsets follow the kernel's `fs/erofs/erofs_fs.h` (and erofs-utils' `include/erofs_fs.h`);
//! which of them we use, and how, is in `FORMAT.md` next to this file.

/// Block size: 4 KiB, the page size every kernel that mounts EROFS supports.
pub(crate) const BLOCK: u64 = 4096;
/// `log2(BLOCK)`, as the superblock stores it.
pub(crate) const BLOCK_BITS: u8 = 12;
/// Where the superblock starts in block 0 (room for boot sectors before it).
pub(crate) const SUPER_OFFSET: u64 = 1024;
/// The superblock's magic number.
pub(crate) const MAGIC: u32 = 0xE0F5_E1E2;
/// Inodes are addressed in 32-byte slots from the start of the metadata area (`nid`).
pub(crate) const SLOT: u64 = 32;
/// Length of a compact inode.
pub(crate) const COMPACT_LEN: usize = 32;
/// Length of an extended inode.
pub(crate) const EXTENDED_LEN: usize = 64;
/// Length of a directory entry (`erofs_dirent`).
pub(crate) const DIRENT_LEN: usize = 12;
/// Length of the inline xattr body's header.
pub(crate) const XATTR_HEADER_LEN: usize = 12;
/// Length of an xattr entry's header (`erofs_xattr_entry`, before its name and value).
pub(crate) const XATTR_ENTRY_LEN: usize = 4;
/// The longest name a directory entry holds.
pub(crate) const NAME_MAX: usize = 255;
/// Compat feature: the superblock carries a CRC32C of its block.
pub(crate) const COMPAT_SB_CHKSUM: u32 = 0x1;

/// Data layouts (`i_format` bits 1–3).
pub(crate) mod layout {
    /// Data in whole blocks from `startblk`, the last one zero-padded.
    pub const FLAT_PLAIN: u16 = 0;
    /// Whole blocks from `startblk`, the last partial block inline, right after the inode
    /// and its xattrs, in the same metadata block.
    pub const FLAT_INLINE: u16 = 2;
}

/// File types of directory entries (`EROFS_FT_*`).
pub(crate) mod file_type {
    pub const REG: u8 = 1;
    pub const DIR: u8 = 2;
    pub const CHR: u8 = 3;
    pub const BLK: u8 = 4;
    pub const FIFO: u8 = 5;
    pub const SOCK: u8 = 6;
    pub const SYMLINK: u8 = 7;
}

/// The directory entry type of a full `st_mode`.
pub(crate) fn file_type_of(mode: u32) -> u8 {
    use crate::stat::mode as m;
    match mode & m::S_IFMT {
        m::S_IFDIR => file_type::DIR,
        m::S_IFCHR => file_type::CHR,
        m::S_IFBLK => file_type::BLK,
        m::S_IFIFO => file_type::FIFO,
        m::S_IFSOCK => file_type::SOCK,
        m::S_IFLNK => file_type::SYMLINK,
        _ => file_type::REG,
    }
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// The superblock's fields we set (everything else is zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SuperBlock {
    /// `nid` of the root directory (below 2¹⁶: the root is the first inode written).
    pub root_nid: u16,
    /// Inodes in the image.
    pub inodes: u64,
    /// The time compact inodes carry (they have no timestamp of their own).
    pub build_time: u64,
    /// Its nanoseconds.
    pub build_time_nsec: u32,
    /// Blocks in the image.
    pub blocks: u32,
    /// First block of the metadata area (where `nid` 0 is).
    pub meta_blkaddr: u32,
    /// First block of the shared xattr area.
    pub xattr_blkaddr: u32,
    /// Volume UUID.
    pub uuid: [u8; 16],
}

impl SuperBlock {
    /// The superblock's bytes followed by the rest of block 0 (zeros), with the checksum over
    /// both, as the kernel verifies it.
    pub(crate) fn encode_block_tail(&self) -> Vec<u8> {
        let mut b = vec![0u8; (BLOCK - SUPER_OFFSET) as usize];
        put(&mut b, 0, &MAGIC.to_le_bytes());
        put(&mut b, 8, &COMPAT_SB_CHKSUM.to_le_bytes());
        b[12] = BLOCK_BITS;
        put(&mut b, 14, &self.root_nid.to_le_bytes());
        put(&mut b, 16, &self.inodes.to_le_bytes());
        put(&mut b, 24, &self.build_time.to_le_bytes());
        put(&mut b, 32, &self.build_time_nsec.to_le_bytes());
        put(&mut b, 36, &self.blocks.to_le_bytes());
        put(&mut b, 40, &self.meta_blkaddr.to_le_bytes());
        put(&mut b, 44, &self.xattr_blkaddr.to_le_bytes());
        put(&mut b, 48, &self.uuid);
        let crc = sb_checksum(&b);
        put(&mut b, 4, &crc.to_le_bytes());
        b
    }
}

/// The superblock checksum: CRC32C seeded with `!0` and not inverted at the end (the
/// kernel's `crc32c(~0, …)`), over the block from the superblock on, checksum field zero.
pub(crate) fn sb_checksum(block_tail: &[u8]) -> u32 {
    let head = block_tail.get(..4).unwrap_or(block_tail);
    let rest = block_tail.get(8..).unwrap_or(&[]);
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    d.update(head);
    d.update(&[0u8; 4]);
    d.update(rest);
    // The standard CRC-32C inverts its result; the kernel's raw form does not.
    !(d.finalize() as u32)
}

/// One inode's fields, in the form either layout takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Inode {
    /// `layout::FLAT_PLAIN` or `layout::FLAT_INLINE`.
    pub layout: u16,
    /// `i_xattr_icount`: 0, or the inline xattr body's size in 4-byte units after its
    /// 12-byte header, plus one.
    pub xattr_icount: u16,
    pub mode: u32,
    pub nlink: u32,
    pub size: u64,
    /// Start block (regular files, directories, symlinks) or device number (`new_encode_dev`
    /// form) of device nodes.
    pub startblk_or_rdev: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
}

impl Inode {
    /// Whether the compact layout can hold this inode, given the superblock's build time
    /// (a compact inode takes its mtime from it).
    pub(crate) fn fits_compact(&self, build_time: u64, build_time_nsec: u32) -> bool {
        self.mtime == build_time
            && self.mtime_nsec == build_time_nsec
            && self.uid <= u16::MAX.into()
            && self.gid <= u16::MAX.into()
            && self.nlink <= u16::MAX.into()
            && self.size <= u32::MAX.into()
    }

    /// The 32-byte compact form (callers check [`Inode::fits_compact`]).
    pub(crate) fn encode_compact(&self) -> [u8; COMPACT_LEN] {
        let mut b = [0u8; COMPACT_LEN];
        put(&mut b, 0, &(self.layout << 1).to_le_bytes());
        put(&mut b, 2, &self.xattr_icount.to_le_bytes());
        put(&mut b, 4, &(self.mode as u16).to_le_bytes());
        put(&mut b, 6, &(self.nlink as u16).to_le_bytes());
        put(&mut b, 8, &(self.size as u32).to_le_bytes());
        // Offset 12 (i_mtime in newer kernels, relative to the build time) stays 0: the inode
        // has the build time itself, whichever way a kernel reads it.
        put(&mut b, 16, &self.startblk_or_rdev.to_le_bytes());
        put(&mut b, 20, &self.ino.to_le_bytes());
        put(&mut b, 24, &(self.uid as u16).to_le_bytes());
        put(&mut b, 26, &(self.gid as u16).to_le_bytes());
        b
    }

    /// The 64-byte extended form.
    pub(crate) fn encode_extended(&self) -> [u8; EXTENDED_LEN] {
        let mut b = [0u8; EXTENDED_LEN];
        put(&mut b, 0, &(1 | (self.layout << 1)).to_le_bytes());
        put(&mut b, 2, &self.xattr_icount.to_le_bytes());
        put(&mut b, 4, &(self.mode as u16).to_le_bytes());
        put(&mut b, 8, &self.size.to_le_bytes());
        put(&mut b, 16, &self.startblk_or_rdev.to_le_bytes());
        put(&mut b, 20, &self.ino.to_le_bytes());
        put(&mut b, 24, &self.uid.to_le_bytes());
        put(&mut b, 28, &self.gid.to_le_bytes());
        put(&mut b, 32, &self.mtime.to_le_bytes());
        put(&mut b, 40, &self.mtime_nsec.to_le_bytes());
        put(&mut b, 44, &self.nlink.to_le_bytes());
        b
    }
}

/// An xattr name split as EROFS stores it: a prefix index and the rest of the name.
/// `None` for a name no EROFS prefix covers (the kernel could not return it).
pub(crate) fn xattr_prefix(name: &[u8]) -> Option<(u8, &[u8])> {
    const FULL: [(&[u8], u8); 2] = [
        (b"system.posix_acl_access", 2),
        (b"system.posix_acl_default", 3),
    ];
    const PREFIX: [(&[u8], u8); 3] = [(b"user.", 1), (b"trusted.", 4), (b"security.", 6)];
    if let Some(&(_, index)) = FULL.iter().find(|(n, _)| *n == name) {
        return Some((index, &[]));
    }
    PREFIX.iter().find_map(|&(p, index)| {
        let rest = name.strip_prefix(p)?;
        (!rest.is_empty()).then_some((index, rest))
    })
}

/// Length of one xattr entry, padded to 4 bytes.
pub(crate) fn xattr_entry_len(suffix_len: usize, value_len: usize) -> usize {
    (XATTR_ENTRY_LEN + suffix_len + value_len).next_multiple_of(4)
}

/// Append one xattr entry (padded to 4 bytes) to `out`. Callers check that the suffix fits
/// a byte and the value 16 bits.
pub(crate) fn push_xattr_entry(out: &mut Vec<u8>, index: u8, suffix: &[u8], value: &[u8]) {
    let start = out.len();
    out.push(suffix.len() as u8);
    out.push(index);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    out.resize(start + xattr_entry_len(suffix.len(), value.len()), 0);
}

/// The inline xattr body's header: no name filter, `shared` shared xattr ids follow.
pub(crate) fn xattr_header(shared: u8) -> [u8; XATTR_HEADER_LEN] {
    let mut b = [0u8; XATTR_HEADER_LEN];
    b[4] = shared;
    b
}

/// One directory entry.
pub(crate) fn dirent(nid: u64, name_off: u16, file_type: u8) -> [u8; DIRENT_LEN] {
    let mut b = [0u8; DIRENT_LEN];
    put(&mut b, 0, &nid.to_le_bytes());
    put(&mut b, 8, &name_off.to_le_bytes());
    b[10] = file_type;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_checksum_is_the_kernels_raw_crc32c() {
        // The bitwise loop of erofs-utils' `erofs_crc32c(~0, …)`.
        fn reference(data: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &byte in data {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = (crc >> 1) ^ if crc & 1 == 1 { 0x82F6_3B78 } else { 0 };
                }
            }
            crc
        }
        let sb = SuperBlock {
            root_nid: 36,
            inodes: 9,
            blocks: 12,
            meta_blkaddr: 3,
            ..Default::default()
        };
        let tail = sb.encode_block_tail();
        let stored = u32::from_le_bytes(tail[4..8].try_into().unwrap());
        let mut zeroed = tail.clone();
        zeroed[4..8].fill(0);
        assert_eq!(stored, reference(&zeroed));
        assert_eq!(u32::from_le_bytes(tail[..4].try_into().unwrap()), MAGIC);
    }

    #[test]
    fn inodes_put_fields_where_the_kernel_reads_them() {
        let i = Inode {
            layout: layout::FLAT_INLINE,
            xattr_icount: 3,
            mode: 0o100644,
            nlink: 2,
            size: 5000,
            startblk_or_rdev: 7,
            ino: 11,
            uid: 1000,
            gid: 100,
            mtime: 1_700_000_000,
            mtime_nsec: 5,
        };
        let c = i.encode_compact();
        assert_eq!(u16::from_le_bytes([c[0], c[1]]), 4, "compact, FLAT_INLINE");
        assert_eq!(u16::from_le_bytes([c[6], c[7]]), 2);
        assert_eq!(u32::from_le_bytes(c[8..12].try_into().unwrap()), 5000);
        assert_eq!(u16::from_le_bytes([c[24], c[25]]), 1000);
        let e = i.encode_extended();
        assert_eq!(u16::from_le_bytes([e[0], e[1]]), 5, "extended, FLAT_INLINE");
        assert_eq!(
            u64::from_le_bytes(e[32..40].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(e[44..48].try_into().unwrap()), 2);
        assert!(i.fits_compact(1_700_000_000, 5));
        assert!(!i.fits_compact(1_700_000_000, 0));
    }

    #[test]
    fn xattr_names_split_on_the_prefixes_erofs_knows() {
        assert_eq!(
            xattr_prefix(b"security.capability"),
            Some((6, &b"capability"[..]))
        );
        assert_eq!(xattr_prefix(b"user.a"), Some((1, &b"a"[..])));
        assert_eq!(
            xattr_prefix(b"system.posix_acl_access"),
            Some((2, &b""[..]))
        );
        assert_eq!(xattr_prefix(b"user."), None);
        assert_eq!(xattr_prefix(b"system.other"), None);
        let mut out = Vec::new();
        push_xattr_entry(&mut out, 4, b"overlay.opaque", b"y");
        assert_eq!(out.len(), xattr_entry_len(14, 1));
        assert_eq!(out.len() % 4, 0);
        assert_eq!(&out[..4], &[14, 4, 1, 0]);
    }
}
