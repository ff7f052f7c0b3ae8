//! The split of a layer's pipeline over two threads. One pass over a layer is four kinds of
//! work: hash the blob, inflate it, hash the tar, write the tree. On one thread, a single-layer
//! image (the common Debian- or Alpine-based case) leaves the second core idle. Here the
//! *inflater* thread hashes and inflates, and hands blocks of tar to the *extractor* thread
//! (the caller) through a channel [`DEPTH`] blocks deep, which hashes the tar and writes the
//! tree. The two halves take about the same time, so a lone layer finishes in a little over
//! half the wall time; when several layers run at once the threads simply share the cores.
//!
//! Blocks are recycled, so the steady state allocates nothing. Memory per layer stays bounded
//! at `(DEPTH + 2) * BLOCK`.
//!
//! The extractor decides what the inflater does once the tar is done or broken:
//! [`PipeReader::finish`] with `drain = true` lets it hash the rest of the blob (to tell a
//! corrupted blob from a bad tar, and to check the digest); dropping the reader without that
//! stops the inflater at its next block and abandons the download (a refused entry or a
//! limit: nothing more of the blob is worth reading).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use super::decompress::Decoder;
use crate::digest::{Digest, HashingReader};

/// Bytes per block handed from the inflater to the extractor.
pub(crate) const BLOCK: usize = 128 << 10;
/// Blocks in flight between the two threads.
pub(crate) const DEPTH: usize = 4;

/// The inflater's end.
pub(crate) struct PipeWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    drain: Arc<AtomicBool>,
}

/// The extractor's end: a `Read` over the inflated stream.
pub(crate) struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    /// The inflater's error, repeated on every later read (a broken stream never turns into
    /// a clean end).
    failed: Option<(io::ErrorKind, String)>,
    drain: Arc<AtomicBool>,
}

/// A new pipe.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(DEPTH);
    let (recycle, recycled) = channel();
    let drain = Arc::new(AtomicBool::new(false));
    (
        PipeWriter {
            tx,
            recycled,
            drain: drain.clone(),
        },
        PipeReader {
            rx,
            recycle,
            current: Vec::new(),
            pos: 0,
            failed: None,
            drain,
        },
    )
}

/// What the inflater knows when it stops.
pub(crate) struct Pumped {
    /// Digest of every compressed byte read (all of the blob, when it was drained).
    pub blob_digest: Digest,
    /// Compressed bytes read.
    pub blob_size: u64,
    /// Compressed bytes after the end of the compressed stream, or the error that ended the
    /// drain; `None` when the extractor gave up and nothing was drained.
    pub trailing: Option<io::Result<u64>>,
}

/// How the inflating loop ended.
enum End {
    /// The decompressed stream ended.
    Eof,
    /// The decoder failed (the extractor got the error).
    Broken,
    /// The extractor is gone.
    Abandoned,
}

impl PipeWriter {
    /// Inflate `decoder` into the pipe until the stream ends, breaks, or the extractor goes
    /// away; then drain the compressed rest if that is wanted. Runs on the inflater thread.
    pub(crate) fn pump<R: Read>(self, mut decoder: Decoder<HashingReader<R>>) -> Pumped {
        let end = loop {
            let mut buf = self
                .recycled
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
            buf.resize(BLOCK, 0);
            match read_full(&mut decoder, &mut buf) {
                Ok(0) => break End::Eof,
                Ok(n) => {
                    buf.truncate(n);
                    if self.tx.send(Ok(buf)).is_err() {
                        break End::Abandoned;
                    }
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e));
                    break End::Broken;
                }
            }
        };
        drop(self.tx);
        let mut rest = decoder.into_inner();
        let drain = match end {
            End::Eof | End::Broken => true,
            End::Abandoned => self.drain.load(Ordering::SeqCst),
        };
        let trailing = drain.then(|| io::copy(&mut rest, &mut io::sink()));
        let (blob_digest, blob_size) = rest.into_inner().finish();
        Pumped {
            blob_digest,
            blob_size,
            trailing,
        }
    }
}

/// Read until `buf` is full or the stream ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl PipeReader {
    /// Hand the stream back to the inflater: with `drain`, it hashes the rest of the blob
    /// (compressed, without inflating it); without, it stops.
    pub(crate) fn finish(self, drain: bool) {
        self.drain.store(drain, Ordering::SeqCst);
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((kind, msg)) = &self.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if self.pos < self.current.len() {
                let n = out.len().min(self.current.len() - self.pos);
                out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.current.capacity() > 0 {
                // The inflater may be gone already; then the block is just freed.
                let _ = self.recycle.send(std::mem::take(&mut self.current));
            }
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(block)) => self.current = block,
                Ok(Err(e)) => {
                    let err = io::Error::new(e.kind(), e.to_string());
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(err);
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::manifest::Compression;

    use crate::layer::gzip::gzip;

    fn run(blob: &[u8], read_all: bool, drain: bool) -> (Vec<u8>, io::Result<()>, Pumped) {
        let decoder = Decoder::new(
            HashingReader::new(blob, Algorithm::Sha256),
            Compression::Gzip,
        )
        .unwrap();
        let (w, mut r) = pipe();
        std::thread::scope(|s| {
            let t = s.spawn(move || w.pump(decoder));
            let mut out = Vec::new();
            let res = if read_all {
                r.read_to_end(&mut out).map(drop)
            } else {
                let mut first = vec![0u8; 1000];
                r.read_exact(&mut first).map(|()| out = first)
            };
            r.finish(drain);
            (out, res, t.join().unwrap())
        })
    }

    #[test]
    fn carries_the_stream_and_hashes_all_of_the_blob() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let blob = gzip(&data);
        let (out, res, p) = run(&blob, true, true);
        res.unwrap();
        assert_eq!(out, data);
        assert_eq!(p.blob_size, blob.len() as u64);
        assert_eq!(p.blob_digest, Digest::sha256_of(&blob));
        assert_eq!(p.trailing.unwrap().unwrap(), 0);
    }

    #[test]
    fn an_abandoned_pipe_stops_without_draining_unless_asked() {
        // Incompressible, so the blob is far longer than what the pipe holds.
        let mut x = 1u32;
        let data: Vec<u8> = (0..4 * BLOCK * DEPTH)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let blob = gzip(&data);
        let (_, res, p) = run(&blob, false, false);
        res.unwrap();
        assert!(p.trailing.is_none());
        assert!(p.blob_size < blob.len() as u64, "stopped early");

        // Drained: the unread rest of the blob is hashed (and counted), not inflated.
        let (_, _, p) = run(&blob, false, true);
        assert!(p.trailing.unwrap().unwrap() > 0);
        assert_eq!(p.blob_size, blob.len() as u64);
        assert_eq!(p.blob_digest, Digest::sha256_of(&blob));
    }

    #[test]
    fn a_broken_stream_stays_broken_and_the_rest_is_hashed() {
        let data: Vec<u8> = (0..2 * BLOCK as u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut blob = gzip(&data);
        let mid = blob.len() / 2;
        blob[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
        let decoder = Decoder::new(
            HashingReader::new(&blob[..], Algorithm::Sha256),
            Compression::Gzip,
        )
        .unwrap();
        let (w, mut r) = pipe();
        std::thread::scope(|s| {
            let t = s.spawn(move || w.pump(decoder));
            let err = r.read_to_end(&mut Vec::new()).unwrap_err();
            let again = r.read(&mut [0u8; 16]).unwrap_err();
            assert_eq!(err.kind(), again.kind());
            r.finish(true);
            let p = t.join().unwrap();
            assert_eq!(p.blob_size, blob.len() as u64);
            assert_eq!(p.blob_digest, Digest::sha256_of(&blob));
        });
    }
}
