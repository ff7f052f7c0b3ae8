//! A layer's `contents` file: the BLAKE3 of every regular file's content as it was extracted,
//! by host inode (hardlinks share one), so `verify` can tell a changed file without the tar
//! (the blob is not kept). Everything else about the tree (which paths, kinds, sizes, times,
//! owners, modes, xattrs, markers) is in the layer's index, which `verify` compares with an
//! index rebuilt from the tree (`layer/reindex.rs`: the same bytes for an untouched tree).
//!
//! The digests are taken while extracting: the bytes go through BLAKE3 as they are written
//! (no second read, no walk of the tree at publish; BLAKE3 because SHA-256 of every byte cost
//! a tenth to a fifth of a cold pull's CPU). Written once, next to `index`, only for layers
//! published with an index; never changed afterwards.
//!
//! ```text
//! "MSBCONT1"                      magic and format version
//! u64 count
//! count × (u64 inode, 32 BLAKE3)  sorted by inode, unique
//! 32  BLAKE3 of every byte above
//! ```
//!
//! Integers are little-endian. Inodes of files the tar later replaced may be listed too
//! (harmless: only the index's inodes are looked up). Reading is strict: a file that is too
//! large, truncated, unsorted, or whose trailing digest does not match is refused.

use std::collections::{BTreeMap, HashMap};

const MAGIC: &[u8; 8] = b"MSBCONT1";
/// Largest `contents` file read (4 M files, as the `maxEntries` limit allows).
pub(crate) const MAX_CONTENTS_BYTES: u64 = 4_000_000 * RECORD as u64 + 64;
const DIGEST: usize = 32;
const RECORD: usize = 8 + DIGEST;

/// Content digests by inode.
pub(crate) type Contents = BTreeMap<u64, [u8; DIGEST]>;

/// Why a `contents` file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ContentsError(pub String);

fn bad(what: impl Into<String>) -> ContentsError {
    ContentsError(what.into())
}

/// Serialise the digests the extractor took.
pub(crate) fn encode(digests: &HashMap<u64, [u8; DIGEST]>) -> Vec<u8> {
    let sorted: Contents = digests.iter().map(|(k, v)| (*k, *v)).collect();
    let mut out = Vec::with_capacity(16 + sorted.len() * RECORD + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    for (inode, digest) in &sorted {
        out.extend_from_slice(&inode.to_le_bytes());
        out.extend_from_slice(digest);
    }
    let sum = *blake3::hash(&out).as_bytes();
    out.extend_from_slice(&sum);
    out
}

/// Parse a `contents` file strictly.
pub(crate) fn decode(bytes: &[u8]) -> Result<Contents, ContentsError> {
    let head = MAGIC.len() + 8;
    if bytes.len() < head + DIGEST {
        return Err(bad(format!("only {} bytes", bytes.len())));
    }
    let (body, sum) = bytes.split_at(bytes.len() - DIGEST);
    if blake3::hash(body).as_bytes().as_slice() != sum {
        return Err(bad("its trailing BLAKE3 does not match (torn or changed)"));
    }
    if &body[..MAGIC.len()] != MAGIC {
        return Err(bad("not a contents file of this format (bad magic)"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&body[MAGIC.len()..head]);
    let count = u64::from_le_bytes(count);
    let records = &body[head..];
    if records.len() % RECORD != 0 || (records.len() / RECORD) as u64 != count {
        return Err(bad(format!(
            "{} bytes of records do not hold {count} records",
            records.len()
        )));
    }
    let mut out = Contents::new();
    let mut last = None;
    for (i, rec) in records.chunks_exact(RECORD).enumerate() {
        let mut inode = [0u8; 8];
        inode.copy_from_slice(&rec[..8]);
        let inode = u64::from_le_bytes(inode);
        if last.is_some_and(|l| l >= inode) {
            return Err(bad(format!("record {i}: inodes not sorted and unique")));
        }
        last = Some(inode);
        let mut digest = [0u8; DIGEST];
        digest.copy_from_slice(&rec[8..]);
        out.insert(inode, digest);
    }
    Ok(out)
}

/// BLAKE3 of a file's bytes, read through `file`.
pub(crate) fn digest_file(file: std::fs::File) -> std::io::Result<[u8; DIGEST]> {
    digest_reader(file)
}

/// BLAKE3 of every byte `file` gives (a file of the tree, or a file of an EROFS image).
pub(crate) fn digest_reader(mut file: impl std::io::Read) -> std::io::Result<[u8; DIGEST]> {
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
