//! Lazy checksums of a version-2 index: the data after the header is cut into 64 KiB blocks,
//! each with its own CRC32C in a table the header checksum covers. Opening checks only the
//! header and that table; a block is checked the first time anything reads from it, and one
//! atomic bit per block (shared by clones of the index) remembers that it passed. Opening
//! therefore costs the same for a 10 KB index and a 10 MB one, and a lookup pays for the few
//! blocks it touches, once.
//!
//! Version-1 files carry one checksum for the whole file, checked at open: their `Blocks`
//! treats every block as checked.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use super::IndexError;
use super::format::{self, BLOCK_SHIFT, HEADER_LEN, Layout};

/// Which blocks of one index passed their checksum.
pub(crate) struct Blocks {
    /// Bit `i` set once block `i` matched its checksum; empty for version 1.
    checked: Box<[AtomicU64]>,
    /// End of the checksummed data (start of the checksum table).
    end: usize,
}

impl Blocks {
    /// The blocks of a file with layout `l` (all already checked if it is version 1).
    pub(crate) fn new(l: &Layout) -> Blocks {
        let words = if l.lazy() {
            l.block_count.div_ceil(64)
        } else {
            0
        };
        Blocks {
            checked: (0..words).map(|_| AtomicU64::new(0)).collect(),
            end: l.blocks_off,
        }
    }

    /// Check every block of `b` overlapping `range` that was not checked before. Parts of
    /// `range` outside the checksummed data are ignored (readers bound-check every read
    /// anyway; what matters is that no byte inside is used unchecked).
    #[inline]
    pub(crate) fn ensure(&self, b: &[u8], range: Range<usize>) -> Result<(), IndexError> {
        if self.checked.is_empty() {
            return Ok(());
        }
        let lo = range.start.max(HEADER_LEN);
        let hi = range.end.min(self.end);
        if lo >= hi {
            return Ok(());
        }
        for i in (lo - HEADER_LEN) >> BLOCK_SHIFT..=(hi - 1 - HEADER_LEN) >> BLOCK_SHIFT {
            self.ensure_block(b, i)?;
        }
        Ok(())
    }

    /// Check every block.
    pub(crate) fn ensure_all(&self, b: &[u8]) -> Result<(), IndexError> {
        self.ensure(b, HEADER_LEN..self.end)
    }

    #[inline]
    fn ensure_block(&self, b: &[u8], i: usize) -> Result<(), IndexError> {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let Some(w) = self.checked.get(word) else {
            return Ok(());
        };
        if w.load(Ordering::Acquire) & bit != 0 {
            return Ok(());
        }
        let stored = format::u32_at(b, self.end + 4 * i);
        let computed = format::block_checksum(b, self.end, i);
        if stored != computed {
            return Err(IndexError::ChecksumMismatch { stored, computed });
        }
        w.fetch_or(bit, Ordering::Release);
        Ok(())
    }
}
