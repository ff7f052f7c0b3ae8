//! The delay line of one direction of one connection: a FIFO of byte segments (and the
//! end of the stream), each stamped with the instant it is due at the far end, and the
//! task that writes each segment out when it is due. It holds at most a fixed number of
//! bytes (see [`line`]); a sender waits for room, which is how a reader that does not keep
//! up slows the stream down.

use std::io;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

/// What travels down the line.
enum Segment {
    Data(Vec<u8>),
    /// The sender's end of the stream (a FIN): shut the far end's write side down.
    End,
}

/// Puts segments on the line.
pub struct DelaySender {
    tx: mpsc::UnboundedSender<(Instant, Segment, Option<OwnedSemaphorePermit>)>,
    room: Arc<Semaphore>,
    capacity: usize,
}

/// Takes segments off the line when due.
pub struct DelayReceiver {
    rx: mpsc::UnboundedReceiver<(Instant, Segment, Option<OwnedSemaphorePermit>)>,
}

/// A line holding at most `capacity` bytes (at least one segment of any size up to it).
pub fn line(capacity: usize) -> (DelaySender, DelayReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        DelaySender {
            tx,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
        },
        DelayReceiver { rx },
    )
}

impl DelaySender {
    /// Waits for room for `len` bytes. The returned permit goes to [`DelaySender::send`];
    /// holding it reserves the room.
    pub async fn room(&self, len: usize) -> io::Result<OwnedSemaphorePermit> {
        let n = len.clamp(1, self.capacity) as u32;
        Arc::clone(&self.room)
            .acquire_many_owned(n)
            .await
            .map_err(|_| io::Error::other("delay line closed"))
    }

    /// Puts `data` on the line, due at `at` (never earlier than what is already on it).
    pub fn send(&self, at: Instant, data: Vec<u8>, room: OwnedSemaphorePermit) -> io::Result<()> {
        self.tx
            .send((at, Segment::Data(data), Some(room)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "delay line closed"))
    }

    /// Ends the stream at `at`.
    pub fn end(&self, at: Instant) -> io::Result<()> {
        self.tx
            .send((at, Segment::End, None))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "delay line closed"))
    }
}

impl DelayReceiver {
    /// Writes every segment to `out` when it is due; at the end of the stream shuts
    /// `out`'s write side down and returns. A sender gone without ending the stream is an
    /// error (the connection is being torn down).
    pub async fn deliver(mut self, mut out: OwnedWriteHalf) -> io::Result<()> {
        while let Some((at, segment, room)) = self.rx.recv().await {
            if at > Instant::now() {
                sleep_until(at).await;
            }
            match segment {
                Segment::Data(data) => out.write_all(&data).await?,
                Segment::End => {
                    // The peer may be gone already; its reads or writes will say so.
                    let _ = out.shutdown().await;
                    return Ok(());
                }
            }
            drop(room);
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "delay line dropped",
        ))
    }
}
