//! Bytes on disk: what a tree really occupies (allocated blocks, each hardlinked inode once),
//! for `du`, `ls` and the size cap of `gc`.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Allocated bytes of everything under `path`, `path` included, without following symlinks
/// (blocking). Entries that vanish while we walk are skipped.
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_once_per_inode_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir(&t).unwrap();
        std::fs::write(t.join("a"), vec![1u8; 64 * 1024]).unwrap();
        let one = disk_bytes(&t);
        assert!(one >= 64 * 1024, "{one}");
        std::fs::hard_link(t.join("a"), t.join("b")).unwrap();
        assert_eq!(disk_bytes(&t), one, "a hardlink adds no blocks");
        let outside = dir.path().join("big");
        std::fs::write(&outside, vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("l")).unwrap();
        assert!(
            disk_bytes(&t) < one + 64 * 1024,
            "the symlink's target is not counted"
        );
    }
}
