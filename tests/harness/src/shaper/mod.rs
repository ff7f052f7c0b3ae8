//! A shaping TCP proxy: [`Shaper`] listens on loopback and forwards every connection to an
//! upstream `host:port` (a registry), emulating a wide-area link described by a
//! [`LinkProfile`]. The pull benchmark (`tests/bench/run.sh --profiles`) puts one in front
//! of its registry for every puller alike. It exists because the machine's kernel has no
//! `sch_netem` (so no `tc` delay), and `tbf` shapes an interface, not each connection.
//!
//! # The model
//!
//! Per connection and direction, bytes read from one side are *paced* (below), stamped
//! with a due time, queued on a delay line and written to the other side when due:
//!
//! - **Latency.** A byte sent at `t` is delivered at `t + RTT/2`, in each direction, so a
//!   request and its response cost one RTT, while a stream is delayed, not slowed.
//!   **Connection setup costs one RTT**: the client's bytes are not sent before
//!   `accepted + RTT` (what SYN/SYN-ACK would cost), so a request on a new connection
//!   costs two RTTs. The upstream connection is opened at once (it is on loopback).
//! - **Per-connection rate.** A token bucket per direction of each connection (the
//!   client→server direction gets the same cap as server→client).
//! - **Link rate.** One token bucket shared by the server→client direction of all
//!   connections. The buckets are GCRA (reservations served in order), `burst` deep but
//!   never less than 5 ms of their rate, so that timer granularity costs no throughput.
//! - **Slow start** (server→client, when the profile has it and a rate): the window starts
//!   at 10 × 1460 bytes; a byte sent at `t` is acknowledged at `t + RTT`, and every
//!   acknowledged byte grows the window by one (it doubles per RTT) until it reaches the
//!   connection's rate × RTT, where slow start ends for good.
//! - **Close.** The end of a stream (FIN) travels the delay line like data and shuts the
//!   far side's write half down, so half-closes propagate both ways and keep-alive
//!   connections live as long as both ends keep them. A read or write error (reset, a peer
//!   gone) drops both sockets at once.
//! - **Memory.** A delay line holds at most rate × one-way delay + the bucket's depth + one
//!   64 KiB block ([`UNRATED_LINE`] when the direction has no rate, which then caps it at
//!   that much per one-way delay, like a TCP window); a sender waits for room, so a reader
//!   that does not keep up slows its stream down (back-pressure from the client's socket).
//!   The upstream socket gets a fixed 1 MiB receive buffer ([`UPSTREAM_RCVBUF`]), so that a
//!   connection has its next piece ready when the link gives it its turn (with autotuning
//!   the buffer stays near 64 KiB at these rates, and a registry not scheduled for a few
//!   milliseconds would cost its connections their turns: 10 connections sharing a link
//!   ended up to 15 % apart).
//!
//! # Not modelled
//!
//! Loss and retransmission; congestion avoidance and any window reduction (no loss, so the
//! window stays at its maximum); slow start after idle (Linux's
//! `tcp_slow_start_after_idle` would restart it on a keep-alive connection idle for an
//! RTO; here a connection stays fast); the receiver's advertised window beyond the
//! back-pressure above; a router's queue at the bottleneck (connections take the link's
//! tokens in turn, one piece of at most 64 KiB each, so a new small response waits for at
//! most one piece per busy connection, not behind a deep FIFO buffer); RST
//! timing (a reset is propagated at once, not after the delay); the per-connection cap
//! is a constant, whereas a real path shares its bottleneck by TCP's own dynamics.

mod bucket;
mod delay;
mod profile;
mod pump;
mod window;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub use bucket::TokenBucket;
pub use profile::{DEFAULT_BURST, LinkProfile, MB, ProfileError};
pub use pump::{BLOCK, UNRATED_LINE, UPSTREAM_RCVBUF};
pub use window::{INITIAL_WINDOW, MSS, SlowStart};

/// Counters of a running shaper.
#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    open: AtomicU64,
    failed: AtomicU64,
}

/// Decrements `open` when a connection's task ends (or is aborted).
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A shaping proxy on loopback; stops (dropping every connection) when dropped. Runs as
/// tasks on the tokio runtime that started it.
pub struct Shaper {
    addr: SocketAddr,
    profile: LinkProfile,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Shaper {
    /// Starts a shaper on `127.0.0.1` (a free port) in front of `upstream`.
    pub async fn start(upstream: SocketAddr, profile: LinkProfile) -> io::Result<Shaper> {
        Shaper::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, profile).await
    }

    /// Starts a shaper listening on `listen` in front of `upstream`.
    pub async fn start_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        profile: LinkProfile,
    ) -> io::Result<Shaper> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(pump::Shared {
            link: profile
                .link_rate
                .map(|r| Arc::new(Mutex::new(TokenBucket::new(r, profile.burst)))),
            profile: profile.clone(),
            upstream,
        });
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_loop(listener, shared, Arc::clone(&stats)));
        Ok(Shaper {
            addr,
            profile,
            stats,
            task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The profile it emulates.
    pub fn profile(&self) -> &LinkProfile {
        &self.profile
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections still being proxied.
    pub fn open_connections(&self) -> u64 {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Connections that ended in an error (a reset, a peer gone mid-write, the upstream
    /// refusing the connection) rather than by both sides closing.
    pub fn failed_connections(&self) -> u64 {
        self.stats.failed.load(Ordering::SeqCst)
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<pump::Shared>, stats: Arc<Stats>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let at = Instant::now();
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    stats.open.fetch_add(1, Ordering::SeqCst);
                    let guard = OpenGuard(Arc::clone(&stats));
                    let shared = Arc::clone(&shared);
                    let stats = Arc::clone(&stats);
                    conns.spawn(async move {
                        let _guard = guard;
                        if pump::run(client, at, shared).await.is_err() {
                            stats.failed.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
