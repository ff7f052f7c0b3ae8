//! `msb_stat`: the metadata of one entry of a layer stack as a flat C struct, copied out of
//! the index, plus `msb_entry_kind` and the `MSB_ENTRY_FLAG_*` bits.

use microsandbox_image::index::{Entry, EntryKind};

/// What an entry is (the `kind` of an `msb_stat`). Stable numbers; new kinds are only ever
/// added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum msb_entry_kind {
    /// A regular file.
    File = 1,
    /// A directory.
    Dir = 2,
    /// A symbolic link (`msb_layer_stack_readlink` gives its target).
    Symlink = 3,
    /// A character device (`rdev` says which).
    CharDevice = 4,
    /// A block device (`rdev` says which).
    BlockDevice = 5,
    /// A named pipe.
    Fifo = 6,
    /// A whiteout. A layer stack never returns one (it hides the name instead); listed so
    /// that every kind of the index format has a number.
    Whiteout = 7,
}

impl From<EntryKind> for msb_entry_kind {
    fn from(kind: EntryKind) -> Self {
        match kind {
            EntryKind::File => msb_entry_kind::File,
            EntryKind::Dir => msb_entry_kind::Dir,
            EntryKind::Symlink => msb_entry_kind::Symlink,
            EntryKind::CharDevice => msb_entry_kind::CharDevice,
            EntryKind::BlockDevice => msb_entry_kind::BlockDevice,
            EntryKind::Fifo => msb_entry_kind::Fifo,
            EntryKind::Whiteout => msb_entry_kind::Whiteout,
        }
    }
}

/// `msb_stat.flags`: the directory hides the lower layers' contents (an opaque whiteout).
pub const MSB_ENTRY_FLAG_OPAQUE: u32 = 1;
/// `msb_stat.flags`: the entry shares its inode with another entry of its layer (`nlink` > 1
/// counts them).
pub const MSB_ENTRY_FLAG_HARDLINK: u32 = 2;
/// `msb_stat.flags`: a directory created only as a parent, whose metadata are placeholders
/// (no lower layer had a real one).
pub const MSB_ENTRY_FLAG_IMPLICIT: u32 = 4;
/// `msb_stat.flags`: the entry has extended attributes (`msb_layer_stack_list_xattrs`).
pub const MSB_ENTRY_FLAG_HAS_XATTRS: u32 = 8;

/// The metadata of an entry of the merged view, as the image describes it (not as the host
/// stores it: a symlink is `S_IFLNK` here although its host file is a regular file holding
/// the target). Filled in by `msb_layer_stack_stat` and `msb_dir_list_stat`; a plain value
/// with nothing to free. Left unchanged when the call fails.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct msb_stat {
    /// The full mode: the `S_IFMT` type bits, set-id and sticky bits, permissions
    /// (`0100644`, `040755`, `0104755`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count within the entry's layer (the size of its hardlink group; for a
    /// directory, 2 + its subdirectories in that layer).
    pub nlink: u32,
    /// Size in bytes: a file's length, a symlink's target length; 0 for directories and
    /// special files.
    pub size: u64,
    /// A device's number in the kernel's `new_encode_dev` form (`(major << 8) | minor` for
    /// numbers below 256, as glibc's `makedev`: major = `(rdev & 0xfff00) >> 8`, minor =
    /// `(rdev & 0xff) | ((rdev >> 12) & 0xfff00)`); 0 for other kinds.
    pub rdev: u32,
    /// Modification time: nanoseconds (below 10⁹).
    pub mtime_nsec: u32,
    /// Modification time: seconds since the epoch.
    pub mtime_sec: i64,
    /// Inode of the extracted file in its layer's tree on the host (0 if unknown). Entries of
    /// one layer with the same inode are hardlinks of each other.
    pub inode: u64,
    /// The layer the entry comes from, 0 = bottom (its content is in that layer's tree:
    /// `msb_layer_stack_host_path`). For a directory, the layer that gives it its metadata.
    pub layer: usize,
    /// What the entry is.
    pub kind: msb_entry_kind,
    /// `MSB_ENTRY_FLAG_*` bits.
    pub flags: u32,
}

impl msb_stat {
    /// Copies an entry's metadata.
    pub(crate) fn of(e: &Entry<'_>) -> msb_stat {
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        msb_stat {
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            nlink: e.nlink(),
            size: e.size(),
            rdev: e.rdev(),
            mtime_nsec: e.mtime_nsec(),
            mtime_sec: e.mtime_sec(),
            inode: e.inode(),
            layer: e.layer(),
            kind: e.kind().into(),
            flags: flag(e.is_opaque(), MSB_ENTRY_FLAG_OPAQUE)
                | flag(e.is_hardlink(), MSB_ENTRY_FLAG_HARDLINK)
                | flag(e.is_implicit(), MSB_ENTRY_FLAG_IMPLICIT)
                | flag(e.has_xattrs(), MSB_ENTRY_FLAG_HAS_XATTRS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_layout_is_what_c_sees() {
        // Four u32, u64 size, two u32, i64, u64, size_t layer, two u32: no padding.
        assert_eq!(std::mem::size_of::<msb_stat>(), 64);
        assert_eq!(std::mem::align_of::<msb_stat>(), 8);
        assert_eq!(std::mem::offset_of!(msb_stat, mtime_sec), 32);
        assert_eq!(std::mem::offset_of!(msb_stat, layer), 48);
        assert_eq!(std::mem::offset_of!(msb_stat, flags), 60);
    }

    #[test]
    fn kinds_are_stable() {
        assert_eq!(msb_entry_kind::from(EntryKind::File) as u32, 1);
        assert_eq!(msb_entry_kind::from(EntryKind::Fifo) as u32, 6);
        assert_eq!(msb_entry_kind::from(EntryKind::Whiteout) as u32, 7);
    }
}
