//! Early writeback for durable pulls. A durable publish ends with one `syncfs`, which waits for
//! every dirty page of the layer: on a 170 MB layer that wait was a fifth of the whole pull,
//! spent after the CPU work was done. The [`Flusher`] moves most of that wait into the
//! extraction: the pipeline kicks it every [`FLUSH_EVERY`] bytes of tar, and a background
//! thread runs `syncfs` on the cache's file system while the extractor goes on writing, so the
//! final `syncfs` only has the tail left. Kicks are coalesced (a kick while a sync runs queues
//! at most one more), and they never block the extractor.
//!
//! Nothing here is needed for correctness: the publish step's own `syncfs` is what makes a
//! layer durable. A kick that fails (the thread is gone) is ignored.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Bytes of tar between two kicks.
pub(crate) const FLUSH_EVERY: u64 = 16 << 20;

/// A background `syncfs` runner for one file system. Its thread starts at the first kick (a
/// pull whose layers are all cached never starts one); dropping the flusher ends the thread
/// once its current sync (if any) returns.
pub(crate) struct Flusher {
    dir: PathBuf,
    tx: OnceLock<Option<SyncSender<()>>>,
}

impl Flusher {
    /// A flusher for the file system holding `dir`.
    pub(crate) fn new(dir: PathBuf) -> Flusher {
        Flusher {
            dir,
            tx: OnceLock::new(),
        }
    }

    /// `None` if `dir` cannot be opened or no thread can be started: the pull then just
    /// waits longer at publish.
    fn start(dir: &Path) -> Option<SyncSender<()>> {
        let fd: OwnedFd = std::fs::File::open(dir).ok()?.into();
        let (tx, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("msb-flush".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // An error here only means the final sync will have more to do.
                    let _ = rustix::fs::syncfs(fd.as_fd());
                }
            })
            .ok()?;
        Some(tx)
    }

    /// Ask for a writeback soon. Never blocks (but the first kick opens `dir` and starts the
    /// thread).
    pub(crate) fn kick(&self) {
        if let Some(tx) = self.tx.get_or_init(|| Self::start(&self.dir)) {
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

/// Kicks a [`Flusher`] every [`FLUSH_EVERY`] bytes of a growing offset.
pub(crate) struct FlushTicker<'a> {
    flusher: Option<&'a Flusher>,
    next: u64,
}

impl<'a> FlushTicker<'a> {
    /// A ticker for `flusher` (none: a no-op).
    pub(crate) fn new(flusher: Option<&'a Flusher>) -> Self {
        FlushTicker {
            flusher,
            next: FLUSH_EVERY,
        }
    }

    /// The stream has reached `offset`.
    pub(crate) fn at(&mut self, offset: u64) {
        if let Some(f) = self.flusher
            && offset >= self.next
        {
            self.next = offset.saturating_add(FLUSH_EVERY);
            f.kick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_coalesce_and_never_block() {
        let dir = tempfile::tempdir().unwrap();
        let f = Flusher::new(dir.path().to_owned());
        for _ in 0..1000 {
            f.kick();
        }
        assert!(
            matches!(f.tx.get(), Some(Some(_))),
            "the first kick starts the thread"
        );
        let mut t = FlushTicker::new(Some(&f));
        for off in (0..10 * FLUSH_EVERY).step_by(1 << 20) {
            t.at(off);
        }
        assert_eq!(t.next, 10 * FLUSH_EVERY);
    }

    #[test]
    fn a_missing_directory_gives_no_flusher() {
        let f = Flusher::new("/nonexistent/msbimage-flush".into());
        f.kick();
        assert!(matches!(f.tx.get(), Some(None)));
    }
}
