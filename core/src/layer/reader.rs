//! The bridge from the async download to the blocking extractor: a `Read` over a bounded
//! channel of network chunks. The bound is what keeps memory flat: the downloader waits when
//! the extractor falls behind.

use std::io::Read;

use bytes::Bytes;
use tokio::sync::mpsc;

/// What the downloader sends: a chunk, or the news that the download failed for good.
pub(crate) type Chunk = Result<Bytes, ()>;

/// Chunks in flight between downloader and extractor.
pub(crate) const CHANNEL_CHUNKS: usize = 16;

/// A blocking reader over downloaded chunks. Must be used on a blocking thread.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
}

impl ChunkReader {
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        ChunkReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(())) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "download failed",
                    ));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
