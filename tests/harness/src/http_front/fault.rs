//! [`FaultProxy`]: a forwarding front that injects one kind of [`Fault`] into blob GETs
//! (`/v2/<name>/blobs/<digest>`, optionally only one digest) — connection resets after N
//! bytes or in one GET out of N at a varying point, a corrupted byte, error statuses with
//! `Retry-After`, a stall, or a stall then a reset — and records every blob GET with its headers (e.g. `Range`)
//! and the body bytes it served ([`BlobServed`], also appended as JSON lines to
//! [`FrontOptions::log`]), so tests and the soak test can count retries and resumes.

use std::fs::File;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::net::TcpStream;

use super::FrontOptions;
use super::forward::{BodyPlan, Upstream, bad_gateway, blob_get, relay};
use crate::http1::{self, RecordedRequest, Request, Server};

/// What goes wrong with blob downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a plain recording proxy.
    None,
    /// For the first `times` blob GETs, send `bytes` body bytes, then reset the
    /// connection. `Range` requests are forwarded, so resuming works.
    ResetAfter {
        /// Body bytes sent before the reset.
        bytes: u64,
        /// How many blob GETs are cut.
        times: u32,
    },
    /// Flip every bit of the byte at blob offset `offset` in every blob GET (ranged
    /// responses are corrupted at the same blob offset, if they include it).
    CorruptByte {
        /// Offset within the blob.
        offset: u64,
    },
    /// Answer the first `times` blob GETs with `code` (e.g. 429, 503) and an optional
    /// `Retry-After: <secs>`, then pass through.
    Status {
        /// Status code to answer with.
        code: u16,
        /// `Retry-After` value in seconds, if any.
        retry_after: Option<u32>,
        /// How many blob GETs get the status.
        times: u32,
    },
    /// Answer the first `times` targeted GETs with `307` to the same path plus `?hop=<n>`
    /// (which is forwarded, not redirected again unless `times` allows), so every kind of
    /// request can be checked for following redirects; `u32::MAX` makes a loop.
    Redirect {
        /// How many GETs are redirected.
        times: u32,
    },
    /// Reset one blob GET in `every`: the `every`-th, the 2·`every`-th, … (counted over the
    /// GETs the fault applies to, successful responses or not) is cut after a number of
    /// body bytes that varies from one cut to the next, drawn from `seed` and the GET's
    /// number, always below the response's length, so every such GET is really cut (an
    /// empty body cannot be). `Range` requests are forwarded, so resuming works.
    ResetEvery {
        /// One GET in this many is cut (0 or 1: every one).
        every: u32,
        /// Seed of the cut points.
        seed: u64,
    },
    /// In every blob GET, pause for `millis` after `after_bytes` body bytes.
    Stall {
        /// Body bytes sent before the pause.
        after_bytes: u64,
        /// Pause length in milliseconds.
        millis: u64,
    },
    /// For the first `times` blob GETs whose body is longer than `after_bytes`, send
    /// `after_bytes` body bytes, pause for `millis`, then reset the connection: a slow
    /// download that must resume (with `Range`) after the pause, e.g. once a short-lived token
    /// has expired. Shorter bodies pass untouched.
    StallThenReset {
        /// Body bytes sent before the pause and the reset.
        after_bytes: u64,
        /// Pause length in milliseconds.
        millis: u64,
        /// How many blob GETs are stalled and cut.
        times: u32,
    },
    /// Serve blob GETs as a registry without `Range` support would: the `Range` header is
    /// dropped, so every answer is `200` with the whole blob.
    IgnoreRange,
    /// Answer every blob GET without `Content-Length`: the body ends when the connection
    /// closes (HTTP/1.1's last resort, which some proxies and CDNs use).
    NoContentLength,
    /// Hold every blob GET whose `Range` starts at byte `start` for `millis` before
    /// answering it, so the ranges after it complete first.
    DelayRange {
        /// First byte of the delayed range.
        start: u64,
        /// The delay in milliseconds.
        millis: u64,
    },
}

/// One blob GET the fault applied to, as it ended: what [`FaultProxy::blob_log`] returns and
/// [`FrontOptions::log`] receives (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobServed {
    /// Milliseconds since the Unix epoch when the response ended.
    pub at_ms: u64,
    /// The blob's digest, as in the path.
    pub digest: String,
    /// The request's `Range` header, if any.
    pub range: Option<String>,
    /// The request's `User-Agent` header, if any (the soak test makes it name the pull).
    pub user_agent: Option<String>,
    /// The status relayed (0 when the upstream could not be reached).
    pub status: u16,
    /// Body bytes written to the client.
    pub bytes: u64,
    /// The body was cut by the fault (a reset).
    pub reset: bool,
    /// Why relaying stopped early other than by the fault (e.g. the client went away).
    pub error: Option<String>,
}

struct State {
    upstream: Upstream,
    fault: Fault,
    only_digest: Option<String>,
    manifests: bool,
    seen: AtomicU32,
    /// Targeted GETs long enough for [`Fault::StallThenReset`].
    long_seen: AtomicU32,
    injected: AtomicU32,
    /// Blob GETs being answered now, and the most there ever were at once.
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    served: Arc<AtomicU64>,
    blob_requests: Mutex<Vec<RecordedRequest>>,
    requests: Mutex<Vec<RecordedRequest>>,
    served_log: Mutex<Vec<BlobServed>>,
    log_file: Option<Mutex<File>>,
}

/// A fault-injecting front on `127.0.0.1`; stops when dropped.
pub struct FaultProxy {
    state: Arc<State>,
    server: Server,
}

impl FaultProxy {
    /// Starts a proxy for the registry at `upstream_base_url` applying `fault`.
    pub async fn start(upstream_base_url: &str, fault: Fault) -> io::Result<FaultProxy> {
        FaultProxy::start_with(upstream_base_url, fault, FrontOptions::default()).await
    }

    /// Starts a proxy with options (CA for an HTTPS upstream, a single target digest).
    pub async fn start_with(
        upstream_base_url: &str,
        fault: Fault,
        opts: FrontOptions,
    ) -> io::Result<FaultProxy> {
        let log_file = match &opts.log {
            Some(path) => Some(Mutex::new(
                File::options().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        let state = Arc::new(State {
            upstream: Upstream::new(upstream_base_url, opts.ca_pem.as_deref())?,
            fault,
            only_digest: opts.only_digest,
            manifests: opts.manifests,
            seen: AtomicU32::new(0),
            long_seen: AtomicU32::new(0),
            injected: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            served: Arc::new(AtomicU64::new(0)),
            blob_requests: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            served_log: Mutex::new(Vec::new()),
            log_file,
        });
        let s = Arc::clone(&state);
        let server = http1::serve(move |req, stream| {
            let s = Arc::clone(&s);
            async move { serve(&s, req, stream).await }
        })
        .await?;
        Ok(FaultProxy { state, server })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The blob GETs the fault applies to, oldest first (see [`FrontOptions::only_digest`]);
    /// `.header("range")` tells resumes apart.
    pub fn blob_requests(&self) -> Vec<RecordedRequest> {
        self.state.blob_requests.lock().unwrap().clone()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Body bytes of the blob GETs the fault applies to (see [`FrontOptions::only_digest`])
    /// written to clients so far: what a download really cost the registry.
    pub fn blob_bytes_served(&self) -> u64 {
        self.state.served.load(Ordering::SeqCst)
    }

    /// Every blob GET the fault applies to that has ended, in the order they ended, with the
    /// bytes it served and whether it was cut.
    pub fn blob_log(&self) -> Vec<BlobServed> {
        self.state.served_log.lock().unwrap().clone()
    }

    /// The most blob GETs (any digest) that were being answered at once.
    pub fn max_concurrent_blob_gets(&self) -> u32 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many responses were actually faulted so far.
    pub fn faults_injected(&self) -> u32 {
        self.state.injected.load(Ordering::SeqCst)
    }
}

/// The blob offset a (possibly 206) response body starts at.
fn body_start(resp: &reqwest::Response) -> u64 {
    if resp.status().as_u16() != 206 {
        return 0;
    }
    resp.headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The first byte a request's `Range: bytes=FIRST-…` asks for.
fn range_start(req: &Request) -> Option<u64> {
    req.header("range")?
        .trim()
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// SplitMix64: a well-mixed 64-bit value from `x` (for cut points that vary).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Record a finished blob GET in memory and in the log file, if any.
fn log_served(
    state: &State,
    req: &Request,
    status: u16,
    bytes: u64,
    reset: bool,
    error: Option<String>,
) {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let entry = BlobServed {
        at_ms,
        digest: blob_get(req).map(|(_, d)| d).unwrap_or_default(),
        range: req.header("range").map(str::to_string),
        user_agent: req.header("user-agent").map(str::to_string),
        status,
        bytes,
        reset,
        error,
    };
    if let Some(file) = &state.log_file
        && let Ok(mut line) = serde_json::to_vec(&entry)
    {
        line.push(b'\n');
        // One write per line, in append mode: lines never interleave. A failed write loses
        // a line of the log, not the response.
        let _ = file.lock().unwrap().write_all(&line);
    }
    state.served_log.lock().unwrap().push(entry);
}

async fn serve(state: &State, req: Request, stream: TcpStream) -> io::Result<()> {
    let counted = blob_get(&req).is_some();
    if counted {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }
    let result = serve_counted(state, req, stream).await;
    if counted {
        state.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    result
}

async fn serve_counted(state: &State, req: Request, mut stream: TcpStream) -> io::Result<()> {
    state.requests.lock().unwrap().push(req.record());
    let front_base = format!("http://{}", req.header("host").unwrap_or("127.0.0.1"));
    let targeted = blob_get(&req).is_some_and(|(_, digest)| {
        state
            .only_digest
            .as_deref()
            .is_none_or(|only| only == digest)
    }) || (state.manifests && manifest_get(&req));
    let n = if targeted {
        state.blob_requests.lock().unwrap().push(req.record());
        state.seen.fetch_add(1, Ordering::SeqCst)
    } else {
        u32::MAX
    };
    if let Fault::Status {
        code,
        retry_after,
        times,
    } = &state.fault
        && targeted
        && n < *times
    {
        state.injected.fetch_add(1, Ordering::SeqCst);
        log_served(state, &req, *code, 0, false, None);
        let mut headers = Vec::new();
        if let Some(secs) = retry_after {
            headers.push(("Retry-After".to_string(), secs.to_string()));
        }
        let code_name = if *code == 429 {
            "TOOMANYREQUESTS"
        } else {
            "UNAVAILABLE"
        };
        let body = json!({"errors": [{"code": code_name, "message": "injected by FaultProxy"}]});
        return http1::write_json(&mut stream, *code, &headers, &body).await;
    }
    if let Fault::Redirect { times } = &state.fault
        && targeted
        && n < *times
    {
        state.injected.fetch_add(1, Ordering::SeqCst);
        let path = req.path();
        let location = format!("{front_base}{path}?hop={n}");
        return http1::write_simple(&mut stream, 307, &[("Location".to_string(), location)], b"")
            .await;
    }
    let mut req = req;
    if targeted {
        match &state.fault {
            Fault::IgnoreRange => {
                req.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
                state.injected.fetch_add(1, Ordering::SeqCst);
            }
            Fault::DelayRange { start, millis } if range_start(&req) == Some(*start) => {
                state.injected.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(*millis)).await;
            }
            _ => {}
        }
    }
    let resp = match state.upstream.forward(&req).await {
        Ok(resp) => resp,
        Err(e) => {
            if targeted {
                log_served(state, &req, 0, 0, false, Some(e.to_string()));
            }
            return bad_gateway(&mut stream, &e).await;
        }
    };
    let status = resp.status().as_u16();
    let mut plan = BodyPlan::default();
    let this_request = Arc::new(AtomicU64::new(0));
    if targeted {
        plan.served = vec![Arc::clone(&state.served), Arc::clone(&this_request)];
    }
    if targeted && resp.status().is_success() {
        match &state.fault {
            Fault::ResetAfter { bytes, times } if n < *times => {
                plan.cut_after = Some(*bytes);
            }
            Fault::ResetEvery { every, seed } if (n + 1) % (*every).max(1) == 0 => {
                let len = resp.content_length().unwrap_or(1 << 20);
                if len > 0 {
                    plan.cut_after = Some(mix(seed ^ u64::from(n)) % len);
                }
            }
            Fault::CorruptByte { offset } => {
                let start = body_start(&resp);
                if *offset >= start {
                    plan.corrupt_at = Some(offset - start);
                }
            }
            Fault::Stall {
                after_bytes,
                millis,
            } => {
                plan.stall = Some((*after_bytes, Duration::from_millis(*millis)));
            }
            Fault::StallThenReset {
                after_bytes,
                millis,
                times,
            } if resp.content_length().is_some_and(|len| len > *after_bytes)
                && state.long_seen.fetch_add(1, Ordering::SeqCst) < *times =>
            {
                plan.stall = Some((*after_bytes, Duration::from_millis(*millis)));
                plan.cut_after = Some(*after_bytes);
            }
            Fault::NoContentLength => plan.no_length = true,
            _ => {}
        }
        if plan.cut_after.is_some()
            || plan.corrupt_at.is_some()
            || plan.stall.is_some()
            || plan.no_length
        {
            state.injected.fetch_add(1, Ordering::SeqCst);
        }
    }
    let cut = plan.cut_after.is_some();
    let relayed = relay(&mut stream, resp, state.upstream.base(), &front_base, plan).await;
    if targeted {
        let error = relayed.as_ref().err().map(ToString::to_string);
        let bytes = this_request.load(Ordering::SeqCst);
        log_served(state, &req, status, bytes, cut && error.is_none(), error);
    }
    relayed
}

/// Whether `req` is `GET /v2/<name>/manifests/<reference>`.
fn manifest_get(req: &Request) -> bool {
    req.method == "GET"
        && req
            .path()
            .strip_prefix("/v2/")
            .and_then(|rest| rest.rsplit_once("/manifests/"))
            .is_some_and(|(name, r)| !name.is_empty() && !r.is_empty())
}
