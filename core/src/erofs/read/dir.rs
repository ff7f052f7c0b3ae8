//! Directory blocks: per block, 12-byte dirents then their names (the first dirent's name
//! offset says how many dirents the block has; the last name ends at the block's end or at
//! its first NUL). Names are checked (1 to 255 bytes, no `/` or NUL, strictly increasing
//! across the directory), and so are `.` (the directory itself) and `..` (its parent).

use std::io::Read;

use super::{ErofsImage, ImageEntry, ReadError, read_u16, read_u64};
use crate::erofs::format::{BLOCK, DIRENT_LEN, NAME_MAX, file_type};

/// A directory's entry: name, `nid`, file type.
pub(super) type Dirent = (Vec<u8>, u64, u8);

impl ErofsImage {
    /// The entries of directory `dir` but `.` and `..` (checked to be `dir` and `parent`),
    /// in name order. The bytes read come off `budget`.
    pub(super) fn list(
        &self,
        dir: &ImageEntry,
        parent: u64,
        budget: &mut u64,
    ) -> Result<Vec<Dirent>, ReadError> {
        let at = |why: String| self.at(&dir.path, self.corrupt(why));
        if dir.size > *budget {
            return Err(at(format!(
                "directory of {} bytes: more directory bytes than the image holds",
                dir.size
            )));
        }
        *budget -= dir.size;
        let mut data = super::FileData::new(self, dir.data);
        let mut block = vec![0u8; BLOCK as usize];
        let mut left = dir.size;
        let mut out: Vec<Dirent> = Vec::new();
        let (mut dot, mut dotdot) = (false, false);
        let mut last: Option<Vec<u8>> = None;
        while left > 0 {
            let len = left.min(BLOCK) as usize;
            data.read_exact(&mut block[..len])
                .map_err(|source| ReadError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            left -= len as u64;
            for (name, nid, ft) in parse_block(&block[..len]).map_err(at)? {
                if last.as_ref().is_some_and(|l| *l >= name) {
                    return Err(at("directory entries out of order or repeated".into()));
                }
                last = Some(name.clone());
                match name.as_slice() {
                    b"." | b".." if ft != file_type::DIR => {
                        return Err(at(format!("`{}` is not a directory", lossy(&name))));
                    }
                    b"." if nid != dir.nid => {
                        return Err(at(format!("`.` is nid {nid}, not the directory")));
                    }
                    b".." if nid != parent => {
                        return Err(at(format!("`..` is nid {nid}, not the parent {parent}")));
                    }
                    b"." => dot = true,
                    b".." => dotdot = true,
                    _ => out.push((name, nid, ft)),
                }
            }
        }
        if !(dot && dotdot) {
            return Err(at("a directory without `.` or `..`".into()));
        }
        Ok(out)
    }
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// The dirents of one block of `b.len()` bytes (the last block of a directory may be short).
fn parse_block(b: &[u8]) -> Result<Vec<Dirent>, String> {
    if b.len() < DIRENT_LEN {
        return Err(format!("a directory block of {} bytes", b.len()));
    }
    let first = usize::from(read_u16(b, 8));
    if first < DIRENT_LEN || first % DIRENT_LEN != 0 || first > b.len() {
        return Err(format!(
            "first name offset {first} in a block of {} bytes",
            b.len()
        ));
    }
    let count = first / DIRENT_LEN;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let d = i * DIRENT_LEN;
        let nid = read_u64(b, d);
        let start = usize::from(read_u16(b, d + 8));
        let ft = b[d + 10];
        let end = if i + 1 < count {
            usize::from(read_u16(b, d + DIRENT_LEN + 8))
        } else {
            // The last name runs to the block's end or its first NUL.
            let rest = b.get(start..).unwrap_or(&[]);
            start + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
        };
        if start < first || end <= start || end > b.len() {
            return Err(format!(
                "dirent {i}: name at {start}..{end} in a block of {}",
                b.len()
            ));
        }
        let name = &b[start..end];
        if name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
            return Err(format!(
                "dirent {i}: name {:?} is not a valid name",
                lossy(name)
            ));
        }
        if !(file_type::REG..=file_type::SYMLINK).contains(&ft) {
            return Err(format!("dirent {:?}: unknown file type {ft}", lossy(name)));
        }
        out.push((name.to_vec(), nid, ft));
    }
    Ok(out)
}
