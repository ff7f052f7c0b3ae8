//! One proxied connection: two directions, each a reader that paces what it reads (slow
//! start window, per-connection bucket, link bucket) and stamps it with its due time, a
//! [`delay`](super::delay) line, and a writer that delivers it when due.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until};

use super::bucket::TokenBucket;
use super::delay::{self, DelaySender};
use super::profile::LinkProfile;
use super::window::SlowStart;

/// The most read, paced and delayed as one piece.
pub const BLOCK: usize = 64 * 1024;

/// What a delay line may hold when no rate bounds the direction (like a TCP window: it
/// caps an unthrottled direction at this much per one-way delay).
pub const UNRATED_LINE: usize = 4 * 1024 * 1024;

/// The receive buffer of the upstream socket.
pub const UPSTREAM_RCVBUF: u32 = 1024 * 1024;

/// How one direction of one connection is paced before its delay.
struct Pacing {
    window: Option<SlowStart>,
    conn: Option<TokenBucket>,
    link: Option<Arc<Mutex<TokenBucket>>>,
}

impl Pacing {
    /// Waits until `want` bytes (or a first part of them) may be sent; returns how many.
    async fn admit(&mut self, want: usize) -> usize {
        let mut n = want as u64;
        if let Some(w) = &mut self.window {
            loop {
                let allowed = w.allowed(Instant::now(), n);
                if allowed > 0 {
                    n = allowed;
                    break;
                }
                match w.next_ack() {
                    Some(at) => sleep_until(at).await,
                    None => break, // cannot happen: an empty window has nothing in flight
                }
            }
        }
        if let Some(b) = &mut self.conn {
            wait_until(b.reserve(Instant::now(), n)).await;
        }
        if let Some(l) = &self.link {
            let at = match l.lock() {
                Ok(mut b) => b.reserve(Instant::now(), n),
                Err(poisoned) => poisoned.into_inner().reserve(Instant::now(), n),
            };
            wait_until(at).await;
        }
        if let Some(w) = &mut self.window {
            w.sent(Instant::now(), n);
        }
        n as usize
    }
}

async fn wait_until(at: Instant) {
    if at > Instant::now() {
        sleep_until(at).await;
    }
}

/// Reads `from` until its end, pacing every piece and putting it on `line` due one-way
/// delay after it was sent, but never before `not_before` (+ the delay). The end of the
/// stream goes down the line the same way.
async fn send(
    mut from: OwnedReadHalf,
    mut pacing: Pacing,
    line: DelaySender,
    owd: Duration,
    not_before: Instant,
) -> io::Result<()> {
    let mut buf = vec![0u8; BLOCK];
    let due = || Instant::now().max(not_before) + owd;
    loop {
        let mut n = from.read(&mut buf).await?;
        if n == 0 {
            return line.end(due());
        }
        // Top the block up with what is already there, so that a connection's pieces are
        // as large as its backlog allows whatever size the peer writes in: the link bucket
        // serves connections a piece at a time, and small pieces would get a small share.
        while n < buf.len() {
            match from.try_read(&mut buf[n..]) {
                Ok(0) => break, // the end of stream comes with the next read
                Ok(more) => n += more,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut off = 0;
        while off < n {
            let piece = pacing.admit(n - off).await;
            let room = line.room(piece).await?;
            line.send(due(), buf[off..off + piece].to_vec(), room)?;
            off += piece;
        }
    }
}

/// State shared by all connections of one shaper.
pub struct Shared {
    pub profile: LinkProfile,
    pub upstream: SocketAddr,
    /// The link bucket (server→client), if the profile caps the link.
    pub link: Option<Arc<Mutex<TokenBucket>>>,
}

/// Proxies `client` (accepted at `accepted`) to the upstream until both directions have
/// ended, or either fails (then both sockets are dropped).
pub async fn run(client: TcpStream, accepted: Instant, shared: Arc<Shared>) -> io::Result<()> {
    let p = &shared.profile;
    let socket = if shared.upstream.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A backlog of the upstream's bytes, so that a piece is ready whenever the link gives
    // this connection its turn, even if the upstream was not scheduled since the last one
    // (autotuning would keep the buffer near 64 KiB at these rates).
    socket.set_recv_buffer_size(UPSTREAM_RCVBUF)?;
    let upstream = socket.connect(shared.upstream).await?;
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (up_r, up_w) = upstream.into_split();
    let owd = p.one_way_delay();

    let bucket = |rate: Option<u64>| rate.map(|r| TokenBucket::new(r, p.burst));
    let capacity = |rate: Option<u64>| match rate {
        Some(r) => {
            let burst =
                (p.burst as f64).max(r as f64 * super::bucket::MIN_DEPTH_TIME.as_secs_f64());
            (r as f64 * owd.as_secs_f64() + burst) as usize + BLOCK
        }
        None => UNRATED_LINE,
    };

    // Client → server: the connection's setup costs one RTT (SYN, SYN-ACK) before the
    // client's first bytes leave, then the same delay and per-connection cap.
    let up = Pacing {
        window: None,
        conn: bucket(p.conn_rate),
        link: None,
    };
    let (up_tx, up_rx) = delay::line(capacity(p.conn_rate));

    // Server → client: slow start, per-connection cap, link cap, delay.
    let down_rate = p.effective_conn_rate();
    let down = Pacing {
        window: match (p.slow_start, down_rate) {
            (true, Some(r)) => Some(SlowStart::new(
                p.rtt,
                (r as f64 * p.rtt.as_secs_f64()) as u64,
            )),
            _ => None,
        },
        conn: bucket(p.conn_rate),
        link: shared.link.clone(),
    };
    let (down_tx, down_rx) = delay::line(capacity(down_rate));

    tokio::try_join!(
        send(client_r, up, up_tx, owd, accepted + p.rtt),
        up_rx.deliver(up_w),
        send(up_r, down, down_tx, owd, accepted),
        down_rx.deliver(client_w),
    )?;
    Ok(())
}
