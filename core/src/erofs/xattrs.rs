//! Which xattrs an inode carries in the image and how they are stored: inline in the
//! inode's xattr body, or once in the shared xattr area when the same name and value appear
//! on two inodes or more (a file capability on many binaries, the opaque marker on many
//! directories).
//!
//! The image's own xattrs are kept, except overlayfs' (`trusted.overlay.*`,
//! `user.overlay.*`): a layer must not be able to redirect or fake-merge paths in the
//! overlay a runtime mounts; we write the opaque marker ourselves from the layer's whiteouts.
//! Names no EROFS prefix covers (neither `user.`, `trusted.`, `security.` nor a POSIX ACL)
//! cannot be read back from an EROFS mount and are left out.

use foldhash::{HashMap, HashMapExt};

use super::format::{
    XATTR_HEADER_LEN, push_xattr_entry, xattr_entry_len, xattr_header, xattr_prefix,
};
use super::{ErofsError, OpaqueXattr};
use crate::index::IndexBuilder;

/// An xattr as stored: prefix index, the rest of the name, the value.
pub(crate) type Xattr<'a> = (u8, &'a [u8], &'a [u8]);

/// Whether an image xattr is one of overlayfs' own.
fn is_overlay(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The xattrs of `node` in the image, in name order, with the opaque marker when `opaque`.
pub(crate) fn of_node<'a>(
    b: &'a IndexBuilder,
    node: u32,
    opaque: Option<OpaqueXattr>,
) -> Result<Vec<Xattr<'a>>, ErofsError> {
    let n = &b.nodes()[node as usize];
    let mut out = Vec::new();
    if n.is_whiteout() {
        return Ok(out);
    }
    for (name, value) in n.meta.xattrs() {
        if is_overlay(name) {
            continue;
        }
        let Some((index, suffix)) = xattr_prefix(name) else {
            log::debug!(
                "xattr {} has no EROFS prefix: left out of the image",
                String::from_utf8_lossy(name)
            );
            continue;
        };
        check_sizes(name, suffix, value)?;
        out.push((index, suffix, value.as_slice()));
    }
    if let Some((index, suffix)) = opaque.and_then(|o| xattr_prefix(o.name())) {
        out.push((index, suffix, b"y"));
    }
    Ok(out)
}

fn check_sizes(name: &[u8], suffix: &[u8], value: &[u8]) -> Result<(), ErofsError> {
    if suffix.len() > usize::from(u8::MAX) || value.len() > usize::from(u16::MAX) {
        return Err(ErofsError::XattrTooLarge {
            name: String::from_utf8_lossy(name).into_owned(),
            len: value.len(),
        });
    }
    Ok(())
}

/// Length of an inode's xattr body holding `inline` entries and `shared` ids (0 when it has
/// no xattrs at all).
pub(crate) fn body_len(inline: usize, shared: usize) -> usize {
    if inline == 0 && shared == 0 {
        0
    } else {
        XATTR_HEADER_LEN + 4 * shared + inline
    }
}

/// Upper bound of the xattr body of an inode with these image xattrs (all inline): what
/// decides, while the file streams, whether its tail will fit beside its inode.
pub(crate) fn body_len_bound<'x>(xattrs: impl Iterator<Item = (&'x [u8], &'x [u8])>) -> usize {
    let inline: usize = xattrs
        .filter(|(name, _)| !is_overlay(name))
        .filter_map(|(name, value)| {
            let (_, suffix) = xattr_prefix(name)?;
            Some(xattr_entry_len(suffix.len(), value.len()))
        })
        .sum();
    body_len(inline, 0)
}

/// The shared xattr area: each name and value found on two inodes or more, stored once.
#[derive(Default)]
pub(crate) struct Shared<'a> {
    /// Shared id (offset in the area ÷ 4) of each shared xattr.
    ids: HashMap<Xattr<'a>, u32>,
    /// The area's bytes.
    pub area: Vec<u8>,
}

impl<'a> Shared<'a> {
    /// Count every inode's xattrs (`each` yields one inode's list at a time) and keep those
    /// that repeat, in order of first appearance.
    pub(crate) fn of(
        mut each: impl FnMut(&mut dyn FnMut(&[Xattr<'a>])) -> Result<(), ErofsError>,
    ) -> Result<Shared<'a>, ErofsError> {
        let mut seen: HashMap<Xattr<'a>, (u32, u32)> = HashMap::new();
        let mut first = 0u32;
        each(&mut |list| {
            for x in list {
                let e = seen.entry(*x).or_insert((0, first));
                e.0 += 1;
                first += 1;
            }
        })?;
        let mut repeated: Vec<(u32, Xattr<'a>)> = seen
            .into_iter()
            .filter(|(_, (count, _))| *count > 1)
            .map(|(x, (_, at))| (at, x))
            .collect();
        repeated.sort_unstable();
        let mut shared = Shared::default();
        for (_, x) in repeated {
            let id = (shared.area.len() / 4) as u32;
            push_xattr_entry(&mut shared.area, x.0, x.1, x.2);
            shared.ids.insert(x, id);
        }
        Ok(shared)
    }

    /// The xattr body of an inode with `list`: header, shared ids, inline entries.
    pub(crate) fn body(&self, list: &[Xattr<'a>]) -> Result<Vec<u8>, ErofsError> {
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<u32> = list
            .iter()
            .filter_map(|x| self.ids.get(x).copied())
            .collect();
        let count = u8::try_from(ids.len()).map_err(|_| ErofsError::TooLarge {
            what: "shared xattrs of one inode",
            value: ids.len() as u64,
            max: u8::MAX.into(),
        })?;
        let mut out = xattr_header(count).to_vec();
        for id in &ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for x in list.iter().filter(|x| !self.ids.contains_key(*x)) {
            push_xattr_entry(&mut out, x.0, x.1, x.2);
        }
        Ok(out)
    }
}
