//! Stat virtualisation: the image's own ownership, mode and device numbers, kept in the
//! `user.containers.override_stat` xattr of each extracted file because an unprivileged
//! process cannot give files those attributes for real. Tar xattrs (e.g. `security.capability`)
//! are kept as `user.msb.xattr.<name>` for the same reason.
//!
//! Owns the override record's byte form, the `S_IFMT` mode constants and the device-number
//! encoding. It sits at the top of the crate, below both `layer` (which writes these records
//! while extracting) and `index` (which stores the same modes and device numbers), so that
//! neither reaches into the other.

use std::os::fd::AsFd;

/// Name of the override xattr (the same name containers/storage and fuse-overlayfs use).
pub const OVERRIDE_STAT_XATTR: &str = "user.containers.override_stat";
/// Prefix under which the image's own xattrs are stored.
pub const XATTR_PREFIX: &str = "user.msb.xattr.";
/// Current version byte of the override record.
pub const OVERRIDE_STAT_VERSION: u8 = 1;

/// File type bits (`S_IFMT`) and their values.
pub mod mode {
    /// Mask of the file type bits.
    pub const S_IFMT: u32 = 0o170000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010000;
    /// Socket (no tar entry makes one; listed for the EROFS file types).
    pub const S_IFSOCK: u32 = 0o140000;
}

/// The metadata an extracted entry really has inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrideStat {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode: file type bits and permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Device number of character/block devices, in the kernel's `new_encode_dev` form.
    pub rdev: u32,
}

impl OverrideStat {
    /// Encode as the 20-byte little-endian record: version u8, 3 pad bytes, uid, gid, mode,
    /// rdev (each u32).
    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0] = OVERRIDE_STAT_VERSION;
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..12].copy_from_slice(&self.gid.to_le_bytes());
        b[12..16].copy_from_slice(&self.mode.to_le_bytes());
        b[16..20].copy_from_slice(&self.rdev.to_le_bytes());
        b
    }

    /// Decode a record written by [`encode`](Self::encode).
    pub fn decode(b: &[u8]) -> Option<OverrideStat> {
        if b.len() != 20 || b[0] != OVERRIDE_STAT_VERSION {
            return None;
        }
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(OverrideStat {
            uid: u(4),
            gid: u(8),
            mode: u(12),
            rdev: u(16),
        })
    }

    /// Write this record on an open file or directory.
    pub(crate) fn apply(&self, fd: impl AsFd) -> std::io::Result<()> {
        rustix::fs::fsetxattr(
            fd,
            OVERRIDE_STAT_XATTR,
            &self.encode(),
            rustix::fs::XattrFlags::empty(),
        )?;
        Ok(())
    }
}

/// Read the override record of a path, if it has one.
pub fn read_override_stat(path: &std::path::Path) -> std::io::Result<Option<OverrideStat>> {
    let mut buf = [0u8; 32];
    match rustix::fs::getxattr(path, OVERRIDE_STAT_XATTR, &mut buf) {
        Ok(n) => Ok(OverrideStat::decode(&buf[..n])),
        Err(rustix::io::Errno::NODATA) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Store one of the image's xattrs on an open file under [`XATTR_PREFIX`].
pub(crate) fn store_xattr(fd: impl AsFd, name: &[u8], value: &[u8]) -> std::io::Result<()> {
    let mut full = XATTR_PREFIX.as_bytes().to_vec();
    full.extend_from_slice(name);
    rustix::fs::fsetxattr(fd, full.as_slice(), value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The kernel's `new_encode_dev`: 12-bit major, 20-bit minor, packed into 32 bits.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_layout() {
        let s = OverrideStat {
            uid: 1000,
            gid: 0x01020304,
            mode: mode::S_IFREG | 0o4755,
            rdev: 0,
        };
        let b = s.encode();
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..4], &[0, 0, 0]);
        assert_eq!(&b[4..8], &1000u32.to_le_bytes());
        assert_eq!(&b[8..12], &[4, 3, 2, 1]);
        assert_eq!(OverrideStat::decode(&b), Some(s));
        assert_eq!(OverrideStat::decode(&b[..19]), None);
    }

    #[test]
    fn device_numbers_use_new_encoding() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(
            encode_dev(8, 0x12345),
            0x12345 & 0xff | (8 << 8) | ((0x12345 & !0xff) << 12)
        );
    }
}
