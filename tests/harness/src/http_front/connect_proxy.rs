//! [`ConnectProxy`]: a small HTTP proxy on `127.0.0.1`, as a corporate proxy would be: it
//! opens `CONNECT host:port` tunnels (for HTTPS registries) and forwards absolute-form
//! requests (`GET http://host:port/v2/…`, for plain-HTTP registries), optionally only with
//! the right `Proxy-Authorization` (else `407`), and counts what it did, so tests can prove
//! a client went through it (or did not).
//!
//! It only ever connects to the local machine: an IP on loopback, `localhost`, or a name
//! under `.test` (reserved, RFC 6761), which it takes to mean `127.0.0.1`, so a test can name
//! a registry that only the proxy can reach. Anything else gets `502`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http1::{self, Request, Server};

#[derive(Default)]
struct State {
    /// `Basic <base64(user:pass)>` required, if any.
    auth: Option<String>,
    tunnels: Mutex<Vec<String>>,
    forwarded: Mutex<Vec<String>>,
    refused: Mutex<Vec<Option<String>>>,
}

/// A running proxy; stops when dropped.
pub struct ConnectProxy {
    state: Arc<State>,
    server: Server,
}

impl ConnectProxy {
    /// Starts a proxy that needs no credentials.
    pub async fn start() -> io::Result<ConnectProxy> {
        ConnectProxy::serve(State::default()).await
    }

    /// Starts a proxy that answers `407` unless `Proxy-Authorization` is Basic `user:pass`.
    pub async fn start_with_credentials(user: &str, pass: &str) -> io::Result<ConnectProxy> {
        ConnectProxy::serve(State {
            auth: Some(format!("Basic {}", B64.encode(format!("{user}:{pass}")))),
            ..State::default()
        })
        .await
    }

    async fn serve(state: State) -> io::Result<ConnectProxy> {
        let state = Arc::new(state);
        let s = Arc::clone(&state);
        let server = http1::serve(move |req, stream| {
            let s = Arc::clone(&s);
            async move { handle(&s, req, stream).await }
        })
        .await?;
        Ok(ConnectProxy { state, server })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// The `host:port` of every tunnel opened, in order.
    pub fn tunnels(&self) -> Vec<String> {
        self.state.tunnels.lock().unwrap().clone()
    }

    /// The URL of every absolute-form request forwarded, in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.state.forwarded.lock().unwrap().clone()
    }

    /// The `Proxy-Authorization` of every request refused with `407` (`None`: there was
    /// none), in order.
    pub fn refused(&self) -> Vec<Option<String>> {
        self.state.refused.lock().unwrap().clone()
    }
}

async fn handle(s: &State, req: Request, mut client: TcpStream) -> io::Result<()> {
    let given = req.header("proxy-authorization").map(str::to_owned);
    if let Some(want) = &s.auth
        && given.as_deref() != Some(want.as_str())
    {
        s.refused.lock().unwrap().push(given);
        let challenge = [(
            "Proxy-Authenticate".to_string(),
            "Basic realm=\"test proxy\"".to_string(),
        )];
        return http1::write_simple(&mut client, 407, &challenge, b"proxy credentials needed")
            .await;
    }
    if req.method.eq_ignore_ascii_case("CONNECT") {
        return tunnel(s, &req.target, client).await;
    }
    forward(s, req, client).await
}

/// `CONNECT host:port`: connect, answer 200, then relay bytes both ways.
async fn tunnel(s: &State, target: &str, mut client: TcpStream) -> io::Result<()> {
    let Some(addr) = local_address(target) else {
        return http1::write_simple(&mut client, 502, &[], b"not a local address").await;
    };
    let mut upstream = match TcpStream::connect(addr).await {
        Ok(u) => u,
        Err(e) => {
            return http1::write_simple(&mut client, 502, &[], e.to_string().as_bytes()).await;
        }
    };
    s.tunnels.lock().unwrap().push(target.to_owned());
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// `GET http://host:port/path`: send it on in origin form (without the proxy's headers, with
/// `Connection: close`) and relay the response back as it comes.
async fn forward(s: &State, req: Request, mut client: TcpStream) -> io::Result<()> {
    let Some(rest) = req.target.strip_prefix("http://") else {
        return http1::write_simple(&mut client, 400, &[], b"absolute http:// URL expected").await;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some(addr) = local_address(authority) else {
        return http1::write_simple(&mut client, 502, &[], b"not a local address").await;
    };
    let mut upstream = match TcpStream::connect(addr).await {
        Ok(u) => u,
        Err(e) => {
            return http1::write_simple(&mut client, 502, &[], e.to_string().as_bytes()).await;
        }
    };
    s.forwarded.lock().unwrap().push(req.target.clone());
    let mut head = format!("{} {path} HTTP/1.1\r\n", req.method);
    for (k, v) in &req.headers {
        let k_lower = k.to_ascii_lowercase();
        if !matches!(
            k_lower.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "content-length"
        ) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    upstream.write_all(head.as_bytes()).await?;
    upstream.write_all(&req.body).await?;
    tokio::io::copy(&mut upstream, &mut client).await?;
    client.shutdown().await
}

/// The loopback address `host:port` stands for, if it is one this proxy may reach.
fn local_address(authority: &str) -> Option<SocketAddr> {
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => ip,
        Ok(_) => return None,
        Err(_) => {
            let name = host.to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".test") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                return None;
            }
        }
    };
    Some(SocketAddr::new(ip, port))
}
