//! The shaping proxy against a real loopback server: keep-alive round trips each cost an
//! RTT (the first one two), one connection is held to the per-connection rate, several to
//! the link rate, slow start costs round trips on a new connection, closes propagate both
//! ways, a real registry works through it over one keep-alive connection, and the binary
//! prints its address.
//!
//! The timing assertions are lower bounds only: the shaper must hold traffic back at least
//! as much as its profile says, and a busy machine can only make things slower, so none of
//! them fails on a slow machine. How close to the profile it gets is the bench's shaping
//! check (`tests/bench/run.sh`), not a test. The profiles are small so that each test takes
//! a second or two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use msbimage_testkit::{LinkProfile, Registry, RegistryOptions, Shaper};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// A request asking the server to close the connection.
const CLOSE: u64 = u64::MAX;

/// What the test server saw on a connection.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The client's end of stream (the server then closed its side).
    Eof,
    /// Writing a response failed: the client was gone.
    WriteFailed,
    /// It closed the connection on request.
    Closed,
}

/// A server on loopback: reads 8-byte big-endian lengths and answers each with that many
/// bytes (`i as u8` for byte `i`), until the client's end of stream.
struct Server {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    _task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(serve(conn).await);
                });
            }
        });
        Server {
            addr,
            seen,
            _task: task,
        }
    }

    /// The next connection's outcome (fails after 10 s).
    async fn next_seen(&mut self) -> Seen {
        timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("the server saw nothing within 10 s")
            .unwrap()
    }
}

async fn serve(mut conn: TcpStream) -> Seen {
    let block: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
    loop {
        let mut len = [0u8; 8];
        if conn.read_exact(&mut len).await.is_err() {
            let _ = conn.shutdown().await;
            return Seen::Eof;
        }
        let mut left = u64::from_be_bytes(len);
        if left == CLOSE {
            return Seen::Closed;
        }
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if conn.write_all(&block[..n]).await.is_err() {
                return Seen::WriteFailed;
            }
            left -= n as u64;
        }
    }
}

/// Asks for `len` bytes on `conn` and reads them, checking the pattern.
async fn round_trip(conn: &mut TcpStream, len: u64) {
    conn.write_all(&len.to_be_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < len {
        let want = (len - got).min(buf.len() as u64) as usize;
        let n = conn.read(&mut buf[..want]).await.unwrap();
        assert!(n > 0, "end of stream after {got} of {len} bytes");
        // Responses are sent in 64 KiB blocks of the pattern.
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, ((got + i as u64) % (64 * 1024)) as u8);
        }
        got += n as u64;
    }
}

fn profile(spec: &str) -> LinkProfile {
    LinkProfile::parse(spec).unwrap()
}

/// Asserts `took` is at least 0.8 × `expected`: the shaper held the traffic back.
fn assert_took(what: &str, took: Duration, expected: Duration) {
    eprintln!("{what}: {took:?} (expected {expected:?})");
    assert!(
        took.as_secs_f64() >= 0.8 * expected.as_secs_f64(),
        "{what}: {took:?}, faster than the profile allows ({expected:?})"
    );
}

async fn wait_for_no_open_connections(shaper: &Shaper) {
    for _ in 0..500 {
        if shaper.open_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} connections still open in the shaper after 5 s",
        shaper.open_connections()
    );
}

#[tokio::test]
async fn keep_alive_round_trips_cost_one_rtt_each() {
    let server = Server::start().await;
    let rtt = Duration::from_millis(20);
    let shaper = Shaper::start(server.addr, profile("rtt=20ms,conn=10MB,link=20MB"))
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    conn.set_nodelay(true).unwrap();
    round_trip(&mut conn, 1000).await;
    // The first request pays for the connection's setup too.
    assert_took("first round trip", t0.elapsed(), 2 * rtt);
    let mut times = Vec::new();
    let all = Instant::now();
    for _ in 0..30 {
        let t = Instant::now();
        round_trip(&mut conn, 1000).await;
        times.push(t.elapsed());
    }
    let min = times.iter().min().unwrap();
    assert!(
        min.as_secs_f64() >= 0.8 * rtt.as_secs_f64(),
        "a round trip took {min:?} (RTT {rtt:?})"
    );
    assert_took("30 round trips", all.elapsed(), 30 * rtt);
    assert_eq!(shaper.connections(), 1);
    assert_eq!(shaper.failed_connections(), 0);
}

#[tokio::test]
async fn one_connection_is_capped_near_the_per_connection_rate() {
    let server = Server::start().await;
    let shaper = Shaper::start(
        server.addr,
        profile("rtt=20ms,conn=10MB,link=100MB,no-slow-start"),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    round_trip(&mut conn, 10_000_000).await;
    // 10 MB at 10 MB/s, plus connection setup and the request's round trip.
    assert_took(
        "10 MB on one connection",
        t0.elapsed(),
        Duration::from_millis(1000 + 40),
    );
}

#[tokio::test]
async fn connections_together_are_capped_by_the_link_rate() {
    let server = Server::start().await;
    let shaper = Shaper::start(
        server.addr,
        profile("rtt=10ms,conn=10MB,link=20MB,no-slow-start"),
    )
    .await
    .unwrap();
    let addr = shaper.addr();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            round_trip(&mut conn, 5_000_000).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 20 MB at the link's 20 MB/s (each connection alone could do 10 MB/s: 0.5 s).
    assert_took(
        "4 × 5 MB on 4 connections",
        t0.elapsed(),
        Duration::from_millis(1000 + 20),
    );
    assert_eq!(shaper.connections(), 4);
}

#[tokio::test]
async fn slow_start_costs_round_trips_on_a_new_connection() {
    let server = Server::start().await;
    let rtt = Duration::from_millis(40);
    let shaper = Shaper::start(server.addr, profile("rtt=40ms,conn=100MB,link=off"))
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    round_trip(&mut conn, 200_000).await;
    // Setup and request (2 RTT), then windows of 10, 20, 40 and 80 segments, one RTT
    // apart (3 more): at 100 MB/s the bytes alone would take 2 ms.
    assert_took("200 kB in slow start", t0.elapsed(), 5 * rtt);

    // Without slow start the same costs two RTTs; here only the lower bound is checked.
    let shaper = Shaper::start(
        server.addr,
        profile("rtt=40ms,conn=100MB,link=off,no-slow-start"),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    round_trip(&mut conn, 200_000).await;
    assert_took("200 kB without slow start", t0.elapsed(), 2 * rtt);
}

#[tokio::test]
async fn closes_propagate_both_ways() {
    let mut server = Server::start().await;
    let shaper = Shaper::start(server.addr, profile("rtt=20ms,conn=10MB,link=20MB"))
        .await
        .unwrap();
    let limit = Duration::from_secs(10);

    // The client half-closes: the server still answers, sees the end of stream, closes
    // its side, and the client reads the answer and then the end.
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    conn.write_all(&100_000u64.to_be_bytes()).await.unwrap();
    conn.shutdown().await.unwrap();
    let mut body = Vec::new();
    timeout(limit, conn.read_to_end(&mut body))
        .await
        .expect("no end of stream after the client's half-close")
        .unwrap();
    assert_eq!(body.len(), 100_000);
    assert_eq!(server.next_seen().await, Seen::Eof);
    drop(conn);
    wait_for_no_open_connections(&shaper).await;

    // The server closes: the client reads the end of stream.
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    round_trip(&mut conn, 1000).await;
    conn.write_all(&CLOSE.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    timeout(limit, conn.read_to_end(&mut rest))
        .await
        .expect("no end of stream after the server closed")
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(server.next_seen().await, Seen::Closed);
    drop(conn);
    wait_for_no_open_connections(&shaper).await;

    // The client goes away in the middle of a long response: the server's writes fail
    // (or it sees the end of stream), and the shaper lets go of both sides.
    let mut conn = TcpStream::connect(shaper.addr()).await.unwrap();
    conn.write_all(&100_000_000u64.to_be_bytes()).await.unwrap();
    let mut buf = vec![0u8; 100_000];
    conn.read_exact(&mut buf).await.unwrap();
    drop(conn);
    let seen = server.next_seen().await;
    assert!(
        matches!(seen, Seen::WriteFailed | Seen::Eof),
        "server saw {seen:?}"
    );
    wait_for_no_open_connections(&shaper).await;
    assert_eq!(shaper.connections(), 3);
}

#[tokio::test]
async fn a_registry_works_over_one_keep_alive_connection() {
    let reg = Registry::start(RegistryOptions::plain()).await.unwrap();
    let upstream: SocketAddr = reg.host().parse().unwrap();
    let shaper = Shaper::start(upstream, LinkProfile::wan()).await.unwrap();
    let client = msbimage_testkit::tls::client_builder()
        .no_proxy()
        .build()
        .unwrap();
    let url = format!("http://{}/v2/", shaper.addr());
    let t0 = Instant::now();
    for _ in 0..10 {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    // One connection (setup + 10 requests: 11 RTTs of 40 ms).
    assert_took("10 requests", t0.elapsed(), Duration::from_millis(11 * 40));
    assert_eq!(shaper.connections(), 1);
}

#[tokio::test]
async fn the_binary_prints_its_address_and_shapes() {
    let server = Server::start().await;
    let exe = env!("CARGO_BIN_EXE_msbimage-shaper");

    let out = tokio::process::Command::new(exe)
        .args(["--print-profile", "slow"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rtt_ms"], 100.0);
    assert_eq!(json["conn_bytes_per_s"], 8_000_000);
    assert_eq!(json["link_bytes_per_s"], 40_000_000);
    assert_eq!(json["slow_start"], true);

    let mut child = tokio::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--upstream"])
        .arg(server.addr.to_string())
        .args(["--profile", "rtt=30ms,conn=10MB,link=20MB"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no address within 10 s")
        .unwrap()
        .expect("stdout ended");
    let addr: SocketAddr = first.parse().unwrap();
    let t0 = Instant::now();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut conn, 1000).await;
    assert_took(
        "a first round trip",
        t0.elapsed(),
        Duration::from_millis(60),
    );
    child.kill().await.unwrap();

    let bad = tokio::process::Command::new(exe)
        .args(["--profile", "rtt=fast", "--upstream", "127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
