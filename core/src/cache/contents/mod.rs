//! A layer's `contents` file: what its extracted tree held when it was published, so
//! `verify` can tell exactly which file changed without the tar (the blob is not kept).
//!
//! Written once, into the staging directory, next to `index` and `meta.json`; never changed
//! afterwards. One record per entry of `fs/` (the root excluded), sorted by path bytes:
//!
//! ```text
//! "MSBCONT1"                             magic and format version
//! u64 count                              records that follow
//! count × record:
//!   u32 path length, path bytes          relative to fs/, no leading '/'
//!   u8  kind                             1 directory, 2 regular file
//!   u64 size                             st_size (0 for directories)
//!   i64 mtime seconds, u32 nanoseconds   as set from the tar
//!   32  BLAKE3 of the entry's user.* xattrs (sorted; u32-length-prefixed names and values)
//!   32  BLAKE3 of the content            regular files only
//! 32  BLAKE3 of every byte above
//! ```
//!
//! Integers are little-endian. The content digests are taken while extracting (the bytes go
//! through BLAKE3 as they are written, no second read; BLAKE3 because it is several times
//! faster than SHA-256 on one core, which made SHA-256 cost a fifth of a pull's CPU); the
//! rest comes from a metadata-only walk of the finished tree (`walk.rs`), so the record describes the final
//! tree whatever the tar replaced, hardlinked or whited out on the way. Reading is strict: a
//! file that is too large, truncated, unsorted, or whose trailing digest does not match is
//! refused (and `verify` reports it).

mod walk;

use std::collections::BTreeMap;
use std::path::Path;

pub(crate) use walk::{Node, NodeKind, walk};

const MAGIC: &[u8; 8] = b"MSBCONT1";
/// Largest `contents` file read (a layer at the 4 M entries limit with long paths).
pub(crate) const MAX_CONTENTS_BYTES: u64 = 2 << 30;
/// Longest path a record may hold.
const MAX_PATH: usize = 1 << 20;
const DIGEST: usize = 32;

/// What a published tree held at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: (i64, u32),
    pub xattrs: [u8; DIGEST],
    /// Files only.
    pub content: Option<[u8; DIGEST]>,
}

/// The parsed file: records by path.
pub(crate) type Contents = BTreeMap<Vec<u8>, Recorded>;

/// Why a `contents` file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ContentsError(pub String);

fn bad(what: impl Into<String>) -> ContentsError {
    ContentsError(what.into())
}

/// Serialise `records` (any order; sorted here).
pub(crate) fn encode(mut records: Vec<(Vec<u8>, Recorded)>) -> Vec<u8> {
    records.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(16 + records.len() * 120);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for (path, r) in &records {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.push(r.kind.code());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.mtime.0.to_le_bytes());
        out.extend_from_slice(&r.mtime.1.to_le_bytes());
        out.extend_from_slice(&r.xattrs);
        if r.kind == NodeKind::File {
            out.extend_from_slice(&r.content.unwrap_or([0; DIGEST]));
        }
    }
    let sum = *blake3::hash(&out).as_bytes();
    out.extend_from_slice(&sum);
    out
}

/// A cursor over the bytes being decoded.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ContentsError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| bad(format!("truncated at byte {} (reading {what})", self.at)))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ContentsError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
}

/// Parse a `contents` file strictly.
pub(crate) fn decode(bytes: &[u8]) -> Result<Contents, ContentsError> {
    if bytes.len() < MAGIC.len() + 8 + DIGEST {
        return Err(bad(format!("only {} bytes", bytes.len())));
    }
    let (body, sum) = bytes.split_at(bytes.len() - DIGEST);
    if blake3::hash(body).as_bytes().as_slice() != sum {
        return Err(bad("its trailing BLAKE3 does not match (torn or changed)"));
    }
    let mut c = Cursor { bytes: body, at: 0 };
    if c.take(MAGIC.len(), "magic")? != MAGIC {
        return Err(bad("not a contents file of this format (bad magic)"));
    }
    let count = u64::from_le_bytes(c.array("count")?);
    let mut out = Contents::new();
    let mut last: Option<Vec<u8>> = None;
    for i in 0..count {
        let len = u32::from_le_bytes(c.array("path length")?) as usize;
        if len == 0 || len > MAX_PATH {
            return Err(bad(format!("record {i}: path length {len}")));
        }
        let path = c.take(len, "path")?.to_vec();
        if last.as_ref().is_some_and(|l| *l >= path) {
            return Err(bad(format!("record {i}: paths not sorted and unique")));
        }
        let kind = NodeKind::from_code(c.array::<1>("kind")?[0])
            .ok_or_else(|| bad(format!("record {i}: unknown kind")))?;
        let size = u64::from_le_bytes(c.array("size")?);
        let secs = i64::from_le_bytes(c.array("mtime")?);
        let nanos = u32::from_le_bytes(c.array("mtime")?);
        let xattrs = c.array("xattr digest")?;
        let content = match kind {
            NodeKind::File => Some(c.array("content digest")?),
            _ => None,
        };
        last = Some(path.clone());
        out.insert(
            path,
            Recorded {
                kind,
                size,
                mtime: (secs, nanos),
                xattrs,
                content,
            },
        );
    }
    if c.at != body.len() {
        return Err(bad(format!(
            "{} bytes after the last record",
            body.len() - c.at
        )));
    }
    Ok(out)
}

/// Read the bytes of the `contents` file at `path` (bounded by [`MAX_CONTENTS_BYTES`], not
/// following a symlink); [`decode`] parses them.
pub(crate) fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONTENTS_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONTENTS_BYTES {
        return Err(std::io::Error::other("larger than any layer's could be"));
    }
    Ok(bytes)
}

/// The record of the finished tree under `fs`, with the content digests the extractor took
/// by inode. A regular file the extractor wrote no content for must be empty (whiteout and
/// device placeholders); anything else is refused, as is any entry that is neither a
/// directory nor a regular file (the extracted format holds no other kind).
pub(crate) fn record_tree(
    fs: &Path,
    digests: &std::collections::HashMap<u64, [u8; DIGEST]>,
) -> Result<Vec<u8>, ContentsError> {
    let empty = *blake3::hash(&[]).as_bytes();
    let mut records = Vec::new();
    walk(fs, &mut |node: Node| {
        let content = match node.kind {
            NodeKind::Dir => None,
            NodeKind::File => match digests.get(&node.ino) {
                Some(d) => Some(*d),
                None if node.size == 0 => Some(empty),
                None => {
                    return Err(bad(format!(
                        "{}: a file of {} bytes the extraction did not write",
                        String::from_utf8_lossy(&node.path),
                        node.size
                    )));
                }
            },
            NodeKind::Other(_) => {
                return Err(bad(format!(
                    "{}: neither a directory nor a regular file",
                    String::from_utf8_lossy(&node.path)
                )));
            }
        };
        records.push((
            node.path,
            Recorded {
                kind: node.kind,
                size: node.size,
                mtime: node.mtime,
                xattrs: node.xattrs,
                content,
            },
        ));
        Ok(())
    })?;
    Ok(encode(records))
}

/// BLAKE3 of a file's bytes, read through `file`.
pub(crate) fn digest_file(mut file: std::fs::File) -> std::io::Result<[u8; DIGEST]> {
    use std::io::Read;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(*hasher.finalize().as_bytes()),
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
