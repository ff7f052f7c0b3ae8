//! [`RedirectFront`]: a registry front that answers every blob GET with
//! `307 Temporary Redirect` to a second listener reached under a different host name
//! (`localhost` instead of `127.0.0.1`), like registries that hand blobs off to a CDN.
//! The blob host fetches the blob from the upstream with its own credentials and records
//! the headers it received, so tests can prove `Authorization` never followed the
//! redirect.

use std::io;
use std::sync::{Arc, Mutex};

use reqwest::header::RANGE;
use tokio::net::TcpStream;

use super::FrontOptions;
use super::forward::{BodyPlan, Upstream, bad_gateway, blob_get, relay};
use crate::auth::Authenticator;
use crate::http1::{self, RecordedRequest, Request, Server, percent_encode};

struct State {
    upstream: Upstream,
    auth: Authenticator,
    front_requests: Mutex<Vec<RecordedRequest>>,
    blob_requests: Mutex<Vec<RecordedRequest>>,
}

/// A redirecting front on `127.0.0.1` plus its blob host on `localhost`; stops when
/// dropped.
pub struct RedirectFront {
    state: Arc<State>,
    front: Server,
    blob_host: Server,
}

impl RedirectFront {
    /// Starts a front for the registry at `upstream_base_url` (anonymous blob host).
    pub async fn start(upstream_base_url: &str) -> io::Result<RedirectFront> {
        RedirectFront::start_with(upstream_base_url, FrontOptions::default()).await
    }

    /// Starts a front with options (CA for an HTTPS upstream, blob-host credentials).
    pub async fn start_with(
        upstream_base_url: &str,
        opts: FrontOptions,
    ) -> io::Result<RedirectFront> {
        let upstream = Upstream::new(upstream_base_url, opts.ca_pem.as_deref())?;
        let auth = Authenticator::new(upstream.client().clone(), opts.credentials.clone());
        let state = Arc::new(State {
            upstream,
            auth,
            front_requests: Mutex::new(Vec::new()),
            blob_requests: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&state);
        let blob_host = http1::serve(move |req, stream| {
            let s = Arc::clone(&s);
            async move { serve_blob(&s, req, stream).await }
        })
        .await?;
        let blob_port = blob_host.addr().port();
        let s = Arc::clone(&state);
        let front = http1::serve(move |req, stream| {
            let s = Arc::clone(&s);
            async move { serve_front(&s, blob_port, req, stream).await }
        })
        .await?;
        Ok(RedirectFront {
            state,
            front,
            blob_host,
        })
    }

    /// `127.0.0.1:PORT` of the front.
    pub fn host(&self) -> String {
        self.front.addr().to_string()
    }

    /// `http://127.0.0.1:PORT` of the front.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// `http://localhost:PORT`, where blob GETs are redirected.
    pub fn blob_base_url(&self) -> String {
        format!("http://localhost:{}", self.blob_host.addr().port())
    }

    /// Every request the blob host received, oldest first.
    pub fn blob_host_requests(&self) -> Vec<RecordedRequest> {
        self.state.blob_requests.lock().unwrap().clone()
    }

    /// Every request the front itself received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.front_requests.lock().unwrap().clone()
    }
}

async fn serve_front(
    state: &State,
    blob_port: u16,
    req: Request,
    mut stream: TcpStream,
) -> io::Result<()> {
    state.front_requests.lock().unwrap().push(req.record());
    if let Some((name, digest)) = blob_get(&req) {
        let location = format!(
            "http://localhost:{blob_port}/blobs/{digest}?name={}",
            percent_encode(&name)
        );
        let headers = [("Location".to_string(), location)];
        return http1::write_simple(&mut stream, 307, &headers, b"").await;
    }
    let front_base = format!("http://{}", req.header("host").unwrap_or("127.0.0.1"));
    match state.upstream.forward(&req).await {
        Ok(resp) => {
            relay(
                &mut stream,
                resp,
                state.upstream.base(),
                &front_base,
                BodyPlan::default(),
            )
            .await
        }
        Err(e) => bad_gateway(&mut stream, &e).await,
    }
}

async fn serve_blob(state: &State, req: Request, mut stream: TcpStream) -> io::Result<()> {
    state.blob_requests.lock().unwrap().push(req.record());
    let digest = req.path().strip_prefix("/blobs/").unwrap_or("");
    let name = http1::parse_query(req.query())
        .into_iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if req.method != "GET" || digest.is_empty() || name.is_empty() {
        return http1::write_simple(&mut stream, 404, &[], b"not a blob").await;
    }
    let url = format!("{}/v2/{name}/blobs/{digest}", state.upstream.base());
    let scope = format!("repository:{name}:pull");
    let range = req.header("range").map(str::to_string);
    let client = state.upstream.client().clone();
    let result = state
        .auth
        .send(&name, Some(&scope), || {
            let mut r = client.get(&url);
            if let Some(range) = &range {
                r = r.header(RANGE, range);
            }
            r
        })
        .await;
    match result {
        Ok(resp) => relay(&mut stream, resp, "", "", BodyPlan::default()).await,
        Err(e) => {
            http1::write_simple(&mut stream, 502, &[], format!("upstream: {e}").as_bytes()).await
        }
    }
}
