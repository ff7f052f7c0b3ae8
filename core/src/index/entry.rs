//! [`Entry`], a borrowed handle on one record of a [`LayerIndex`], and [`EntryKind`]. Every
//! accessor reads straight from the mapped file (zero-copy); an entry is only handed out
//! after its directory's records were checked, so accessors cannot fail.

use std::fmt;

use super::format::{self, ATTR_LEN, attr, flag};
use super::reader::LayerIndex;
use crate::stat::mode;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (stored on the host as a regular file holding the target).
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// A whiteout: the layer deletes this name from the layers below. Only seen through
    /// [`LayerIndex`]; a [`LayerStack`](super::LayerStack) never returns one.
    Whiteout,
}

impl EntryKind {
    /// The kind for `mode`'s `S_IFMT` bits, or `None` for a type the format does not know.
    ///
    /// ```
    /// use microsandbox_image::index::EntryKind;
    /// assert_eq!(EntryKind::from_mode(0o100644), Some(EntryKind::File));
    /// assert_eq!(EntryKind::from_mode(0o140755), None); // sockets do not come from tars
    /// ```
    pub fn from_mode(m: u32) -> Option<EntryKind> {
        Some(match m & mode::S_IFMT {
            mode::S_IFREG => EntryKind::File,
            mode::S_IFDIR => EntryKind::Dir,
            mode::S_IFLNK => EntryKind::Symlink,
            mode::S_IFCHR => EntryKind::CharDevice,
            mode::S_IFBLK => EntryKind::BlockDevice,
            mode::S_IFIFO => EntryKind::Fifo,
            _ => return None,
        })
    }
}

/// One entry of a layer index: a cheap, copyable handle borrowing the [`LayerIndex`] it
/// comes from.
///
/// Entries returned by a [`LayerStack`](super::LayerStack) also say which layer they come
/// from ([`layer`](Self::layer)), which is where the file's content lives on the host.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub(crate) index: &'a LayerIndex,
    pub(crate) id: u32,
    pub(crate) layer: u32,
}

impl<'a> Entry<'a> {
    pub(crate) fn new(index: &'a LayerIndex, id: u32, layer: u32) -> Self {
        Entry { index, id, layer }
    }

    fn flags(&self) -> u16 {
        self.index.key_flags(self.id)
    }

    fn attr_u32(&self, field: usize) -> u32 {
        format::u32_at(self.index.bytes(), self.attr_off() + field)
    }

    fn attr_u64(&self, field: usize) -> u64 {
        format::u64_at(self.index.bytes(), self.attr_off() + field)
    }

    fn attr_off(&self) -> usize {
        self.index.layout().attrs_off + self.id as usize * ATTR_LEN
    }

    /// The entry's name (its last path component); empty for a layer root.
    pub fn name(&self) -> &'a [u8] {
        self.index.key_name(self.id)
    }

    /// The entry's full path inside its layer (`usr/bin/sh`; empty for the root). Costs a
    /// binary search and an allocation; lookups never need it.
    pub fn path(&self) -> Vec<u8> {
        self.index.path_of(self.id)
    }

    /// Position, in the [`LayerStack`](super::LayerStack) that returned it, of the layer this
    /// entry comes from (0 = bottom). Entries obtained from a [`LayerIndex`] directly say 0.
    pub fn layer(&self) -> usize {
        self.layer as usize
    }

    /// The [`LayerIndex`] this entry belongs to.
    pub fn index(&self) -> &'a LayerIndex {
        self.index
    }

    /// Record number of the entry inside its index (0 is the root); stable for a given file,
    /// usable to build inode numbers.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What the entry is.
    pub fn kind(&self) -> EntryKind {
        if self.is_whiteout() {
            return EntryKind::Whiteout;
        }
        EntryKind::from_mode(self.mode()).unwrap_or(EntryKind::File)
    }

    /// Whether the entry is a (real) directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == EntryKind::Dir
    }

    /// Full mode, `S_IFMT` type bits included (whiteouts: `S_IFCHR` with no permissions).
    pub fn mode(&self) -> u32 {
        self.attr_u32(attr::MODE)
    }

    /// Owner.
    pub fn uid(&self) -> u32 {
        self.attr_u32(attr::UID)
    }

    /// Group.
    pub fn gid(&self) -> u32 {
        self.attr_u32(attr::GID)
    }

    /// Link count inside the entry's layer (hardlink group size; 2 + subdirectories for a
    /// directory).
    pub fn nlink(&self) -> u32 {
        self.attr_u32(attr::NLINK)
    }

    /// Size in bytes (a symlink's target length; 0 for directories and special files).
    pub fn size(&self) -> u64 {
        self.attr_u64(attr::SIZE)
    }

    /// Device number of a character or block device (kernel `new_encode_dev` form).
    pub fn rdev(&self) -> u32 {
        match self.kind() {
            EntryKind::CharDevice | EntryKind::BlockDevice => self.attr_u32(attr::AUX),
            _ => 0,
        }
    }

    /// Modification time: seconds since the epoch.
    pub fn mtime_sec(&self) -> i64 {
        self.attr_u64(attr::MTIME_SEC) as i64
    }

    /// Modification time: nanoseconds (< 10⁹).
    pub fn mtime_nsec(&self) -> u32 {
        self.attr_u32(attr::MTIME_NSEC)
    }

    /// Inode of the extracted file in the layer's `fs/` tree on the host (0 if unknown).
    pub fn inode(&self) -> u64 {
        self.attr_u64(attr::INODE)
    }

    /// Whether this is a whiteout (only through [`LayerIndex`]).
    pub fn is_whiteout(&self) -> bool {
        self.flags() & flag::WHITEOUT != 0
    }

    /// Whether this directory hides the lower layers' contents.
    pub fn is_opaque(&self) -> bool {
        self.flags() & flag::OPAQUE != 0
    }

    /// Whether this entry shares its inode with another entry of its layer
    /// (see [`LayerIndex::hardlinks_of`]).
    pub fn is_hardlink(&self) -> bool {
        self.flags() & flag::HARDLINK != 0
    }

    /// Whether this directory was created only as a parent, with placeholder metadata.
    /// A [`LayerStack`](super::LayerStack) replaces such an entry by the lower layer's
    /// directory when there is one.
    pub fn is_implicit(&self) -> bool {
        self.flags() & flag::IMPLICIT != 0
    }

    /// Whether the entry has extended attributes.
    pub fn has_xattrs(&self) -> bool {
        self.flags() & flag::HAS_XATTRS != 0
    }

    /// A symlink's target; `None` for other kinds.
    pub fn link_target(&self) -> Option<&'a [u8]> {
        if self.kind() != EntryKind::Symlink {
            return None;
        }
        let off = self.attr_u32(attr::AUX) as usize;
        Some(self.index.pool_str(off, self.size() as usize))
    }

    /// The entry's extended attributes as the image gives them (`security.capability`, …),
    /// sorted by name.
    pub fn xattrs(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let index = self.index;
        let range = if self.has_xattrs() {
            index.xattr_range(self.id)
        } else {
            0..0
        };
        range.map(move |i| index.xattr(i))
    }

    /// The value of extended attribute `name`, if present.
    pub fn xattr(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.xattrs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub(crate) fn dir_index(&self) -> u32 {
        self.attr_u32(attr::AUX)
    }
}

impl PartialEq for Entry<'_> {
    /// Two handles are equal when they name the same record of the same index at the same
    /// stack position.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.index, other.index) && self.id == other.id && self.layer == other.layer
    }
}

impl Eq for Entry<'_> {}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &String::from_utf8_lossy(self.name()))
            .field("kind", &self.kind())
            .field("mode", &format_args!("{:o}", self.mode()))
            .field("uid", &self.uid())
            .field("gid", &self.gid())
            .field("size", &self.size())
            .field("layer", &self.layer)
            .field("id", &self.id)
            .finish()
    }
}
