//! The bridge from the async download to the blocking extractor: a `Read` over a channel of
//! network chunks bounded in **bytes** (not only in chunks: HTTP bodies arrive in chunks of
//! anything from a few bytes to hundreds of KiB, so a count bound alone let a layer hold
//! several MiB). The bound is what keeps memory flat: the downloader waits when the extractor
//! falls behind, and the network does not run ahead by more than [`CHANNEL_BYTES`].
//!
//! The reader also keeps each chunk, as it takes it off the channel, in the blob's `.partial`
//! when the pull keeps one (`cache/partial.rs`): the same single pass, one `write` per chunk.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use crate::cache::PartialWriter;

/// What the downloader sends: a chunk, or the news that the download failed for good.
pub(crate) type Chunk = Result<Bytes, ()>;

/// Bytes of downloaded data in flight between the downloader and the extractor of one layer.
/// The extractor reads in 256 KiB blocks; four of them keep it fed between network reads.
pub(crate) const CHANNEL_BYTES: usize = 1 << 20;

/// Chunks in flight (a second bound, for bodies that arrive in tiny chunks).
const CHANNEL_CHUNKS: usize = 64;

/// The downloader's end of the channel.
pub(crate) struct ChunkSender {
    tx: mpsc::Sender<(Chunk, u32)>,
    budget: Arc<Semaphore>,
}

/// A channel from a downloader to a [`ChunkReader`].
pub(crate) fn chunk_channel() -> (ChunkSender, ChunkReader) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let budget = Arc::new(Semaphore::new(CHANNEL_BYTES));
    let reader = ChunkReader {
        rx,
        current: Bytes::new(),
        current_permits: 0,
        budget: budget.clone(),
        keep: None,
    };
    (ChunkSender { tx, budget }, reader)
}

impl ChunkSender {
    /// Send `chunk` once the reader has room for it; `Err` when the reader is gone.
    pub(crate) async fn send(&self, chunk: Chunk) -> Result<(), ()> {
        let permits = match &chunk {
            // A chunk larger than the whole budget takes all of it.
            Ok(b) => b.len().min(CHANNEL_BYTES) as u32,
            Err(()) => 0,
        };
        if permits > 0 {
            self.budget
                .acquire_many(permits)
                .await
                .map_err(drop)?
                .forget();
        }
        self.tx.send((chunk, permits)).await.map_err(drop)
    }
}

/// A blocking reader over downloaded chunks. Must be used on a blocking thread.
pub(crate) struct ChunkReader {
    rx: mpsc::Receiver<(Chunk, u32)>,
    current: Bytes,
    /// Budget taken by `current`, given back once it is consumed.
    current_permits: u32,
    budget: Arc<Semaphore>,
    /// Where every chunk is appended as it is taken, if the blob's bytes are kept.
    keep: Option<PartialWriter>,
}

impl ChunkReader {
    /// Append every chunk read from now on to `partial`.
    pub(crate) fn keep_in(&mut self, partial: PartialWriter) {
        self.keep = Some(partial);
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        // A downloader waiting for budget must not wait forever for a reader that is gone.
        self.budget.close();
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            self.budget
                .add_permits(std::mem::take(&mut self.current_permits) as usize);
            match self.rx.blocking_recv() {
                Some((Ok(chunk), permits)) => {
                    if let Some(keep) = &mut self.keep {
                        keep.append(&chunk);
                    }
                    self.current = chunk;
                    self.current_permits = permits;
                }
                Some((Err(()), _)) => {
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
