//! [`TarGuard`]: a reader under `tar::Archive` that keeps memory bounded whatever a layer
//! claims. The tar crate reads GNU long names/links and PAX headers whole into memory; the
//! guard follows the archive's block structure exactly as the crate walks it and fails the
//! stream before an extension header could be buffered without bound. Also the helpers that
//! open a guarded archive and check that the guard never changes what the reader sees.

use std::io::Read;

use super::LayerError;
use super::extract::ExtractLimits;

/// What [`TarGuard`] refuses, carried through the tar reader as an `io::Error`.
#[derive(Debug, Clone)]
enum Refusal {
    /// A GNU long name or long link longer than `max_path_len`.
    LongName { size: u64, max: usize },
    /// Anything else the reader would buffer without bound.
    Stream(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LongName { size, max } => {
                write!(f, "GNU long name/link of {size} bytes (max_path_len {max})")
            }
            Refusal::Stream(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Refusal {}

/// A tar reader error as a [`LayerError`], keeping what [`TarGuard`] refused as such.
pub(super) fn stream_err(e: std::io::Error) -> LayerError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refusal>())
    {
        Some(Refusal::LongName { size, max }) => LayerError::Limit {
            limit: "max_path_len",
            value: *size,
            max: *max as u64,
            path: None,
        },
        Some(Refusal::Stream(detail)) => LayerError::Tar {
            detail: detail.clone(),
        },
        None => LayerError::tar(e),
    }
}

/// Largest PAX extended header (`x`) accepted: the records of one entry (path, link target,
/// times, ids, xattrs). Linux caps one xattr value at 64 KiB and a file's xattr names at
/// 64 KiB in all, so real headers stay far below this.
pub(crate) const MAX_PAX_HEADER: u64 = 1 << 20;
/// Most GNU sparse extension blocks after one header (21 map entries each).
pub(crate) const MAX_SPARSE_EXT_BLOCKS: u32 = 2048;

const BLOCK: usize = 512;

#[derive(Debug, Clone, Copy)]
enum GuardState {
    /// Reading a header block.
    Header,
    /// Reading the GNU sparse extension blocks after a header; `size` is the entry's body.
    SparseExt { size: u64, blocks: u32 },
    /// Inside a body and its padding, up to `end`; a PAX body (up to `data_end`) is kept.
    Body { end: u64, data_end: u64, pax: bool },
    /// Past the archive's end, or past a header the tar reader will reject: pass through.
    Done,
}

/// A reader under `tar::Archive` that follows the archive's block structure exactly as the
/// tar crate walks it (headers, PAX `size` overrides, GNU sparse extension blocks) and fails
/// the stream before the crate would buffer an extension header without bound: the crate
/// reads GNU long names/links and PAX headers whole into memory, whatever size they claim.
/// Bodies pass through untouched; entries' own limits are the extractor's business.
pub(crate) struct TarGuard<R> {
    inner: R,
    max_name: usize,
    pos: u64,
    state: GuardState,
    block: [u8; BLOCK],
    filled: usize,
    /// PAX records waiting for the entry they describe.
    pending_pax: Option<Vec<u8>>,
    /// The PAX body being read.
    pax_body: Vec<u8>,
    refused: Option<Refusal>,
}

impl<R: Read> TarGuard<R> {
    pub(crate) fn new(inner: R, limits: &ExtractLimits) -> Self {
        TarGuard {
            inner,
            max_name: limits.max_path_len,
            pos: 0,
            state: GuardState::Header,
            block: [0; BLOCK],
            filled: 0,
            pending_pax: None,
            pax_body: Vec::new(),
            refused: None,
        }
    }

    /// The wrapped reader, positioned wherever the tar reader stopped.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    fn body(&mut self, size: u64, pax: bool) -> GuardState {
        let padded = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s & !(BLOCK as u64 - 1));
        match padded.and_then(|p| self.pos.checked_add(p)) {
            // The tar crate fails on the overflow itself.
            None => GuardState::Done,
            Some(end) if end == self.pos => {
                if pax {
                    self.pending_pax = Some(Vec::new());
                }
                GuardState::Header
            }
            Some(end) => {
                self.pax_body.clear();
                GuardState::Body {
                    end,
                    data_end: self.pos + size,
                    pax,
                }
            }
        }
    }

    /// A whole header (or sparse extension) block has been read.
    fn on_block(&mut self) {
        if let GuardState::SparseExt { size, blocks } = self.state {
            let blocks = blocks + 1;
            self.state = if blocks > MAX_SPARSE_EXT_BLOCKS {
                self.refused = Some(Refusal::Stream(format!(
                    "GNU sparse map longer than {MAX_SPARSE_EXT_BLOCKS} extension blocks"
                )));
                GuardState::Done
            } else if self.block[504] == 1 {
                GuardState::SparseExt { size, blocks }
            } else {
                self.body(size, false)
            };
            return;
        }
        if self.block.iter().all(|b| *b == 0) {
            self.state = GuardState::Done; // end of archive
            return;
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let sum = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .map(|b| u32::from(*b))
            .sum::<u32>()
            + 8 * 32;
        let Ok(size) = header.entry_size() else {
            self.state = GuardState::Done;
            return;
        };
        if header.cksum().ok() != Some(sum) {
            self.state = GuardState::Done;
            return;
        }
        let kind = self.block[156];
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        // PAX `size` overrides the header's for the entry the records describe.
        let size = match &self.pending_pax {
            Some(records) if !extension => pax_size(records).unwrap_or(size),
            _ => size,
        };
        self.state = match kind {
            b'L' | b'K' if recognized => {
                // One NUL may end the name.
                if size > (self.max_name as u64).saturating_add(1) {
                    self.refused = Some(Refusal::LongName {
                        size,
                        max: self.max_name,
                    });
                    GuardState::Done
                } else {
                    self.body(size, false)
                }
            }
            b'x' if recognized => {
                if self.pending_pax.is_some() {
                    GuardState::Done // the tar crate refuses a second one
                } else if size > MAX_PAX_HEADER {
                    self.refused = Some(Refusal::Stream(format!(
                        "PAX extended header of {size} bytes (at most {MAX_PAX_HEADER} accepted)"
                    )));
                    GuardState::Done
                } else {
                    self.body(size, true)
                }
            }
            _ => {
                // An entry: the records pending were its own.
                self.pending_pax = None;
                if kind == b'S' && header.as_gnu().is_some_and(|g| g.is_extended()) {
                    GuardState::SparseExt { size, blocks: 0 }
                } else {
                    self.body(size, false)
                }
            }
        };
    }
}

/// The PAX `size` record as the tar crate reads it (first `size` record; any malformed
/// record before it means none).
fn pax_size(records: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse::<u64>().ok();
    }
    None
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(r) = &self.refused {
            return Err(std::io::Error::other(r.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        match self.state {
            GuardState::Done => self.inner.read(buf),
            GuardState::Header | GuardState::SparseExt { .. } => {
                let want = (BLOCK - self.filled).min(buf.len());
                let n = self.inner.read(&mut buf[..want])?;
                self.block[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
                self.filled += n;
                self.pos += n as u64;
                if self.filled == BLOCK {
                    self.filled = 0;
                    self.on_block();
                }
                Ok(n)
            }
            GuardState::Body { end, data_end, pax } => {
                let want = usize::try_from(end - self.pos).map_or(buf.len(), |r| r.min(buf.len()));
                let n = self.inner.read(&mut buf[..want])?;
                if pax && self.pos < data_end {
                    let keep = usize::try_from(data_end - self.pos).map_or(n, |r| r.min(n));
                    self.pax_body.extend_from_slice(&buf[..keep]);
                }
                self.pos += n as u64;
                if self.pos == end {
                    if pax {
                        self.pending_pax = Some(std::mem::take(&mut self.pax_body));
                    }
                    self.state = GuardState::Header;
                }
                Ok(n)
            }
        }
    }
}

/// Checks that [`TarGuard`] is invisible to the tar reader: over `tar`, the guarded reader
/// yields the same entries (path, type, size, content) and the same end as the bare one,
/// unless the guard refused, in which case what it yielded is a prefix of the bare listing.
/// For the fuzz target and tests.
pub(crate) fn check_guard_transparent(
    tar: &[u8],
    limits: &ExtractLimits,
) -> Result<(), LayerError> {
    type Listing = (Vec<(Vec<u8>, u8, u64, Vec<u8>)>, Option<String>);
    fn list<R: Read>(mut ar: tar::Archive<R>) -> Listing {
        let mut out = Vec::new();
        let entries = match ar.entries() {
            Ok(e) => e,
            Err(e) => return (out, Some(e.to_string())),
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => return (out, Some(e.to_string())),
            };
            let mut data = Vec::new();
            if let Err(e) = entry.read_to_end(&mut data) {
                return (out, Some(e.to_string()));
            }
            out.push((
                entry.path_bytes().into_owned(),
                entry.header().entry_type().as_byte(),
                entry.size(),
                data,
            ));
        }
        (out, None)
    }
    let (bare, bare_end) = list(tar::Archive::new(tar));
    let guarded_archive = open_archive(tar, limits);
    let (guarded, guarded_end) = list(guarded_archive);
    let refused = guarded_end.as_deref().is_some_and(|e| {
        e.contains("GNU long name")
            || e.contains("PAX extended header")
            || e.contains("GNU sparse map")
    });
    let agrees = if refused {
        bare.starts_with(&guarded)
    } else {
        bare == guarded && bare_end.is_some() == guarded_end.is_some()
    };
    if agrees {
        Ok(())
    } else {
        Err(LayerError::Internal(format!(
            "tar guard changed the archive: bare {} entries ({bare_end:?}), guarded {} ({guarded_end:?})",
            bare.len(),
            guarded.len()
        )))
    }
}

/// A tar reader over a layer's uncompressed stream, guarded by [`TarGuard`].
pub(crate) fn open_archive<R: Read>(tar: R, limits: &ExtractLimits) -> tar::Archive<TarGuard<R>> {
    tar::Archive::new(TarGuard::new(tar, limits))
}
