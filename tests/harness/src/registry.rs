//! Real `docker-registry` (CNCF distribution 2.8) processes on loopback: it owns choosing a
//! free port, writing the `config.yml` (filesystem storage in a temp dir, deletes enabled,
//! optional TLS, htpasswd or token auth, or pull-through proxy mode), supervising the
//! child process and waiting until `/v2/` answers. Each [`Registry`] kills its process and
//! removes its temp dir when dropped; the process is also killed if the test process dies
//! (`PR_SET_PDEATHSIG` tied to a supervisor thread that lives as long as the `Registry`).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::tls::{TestCa, client_trusting};
use crate::token::TokenAuthConfig;

/// The registry binary, unless `MSBIMAGE_REGISTRY_BIN` names another.
pub const DEFAULT_REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long [`Registry::start`] waits for `/v2/` to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`Registry`] is configured. Start from [`RegistryOptions::plain`] (or `default()`)
/// and chain the builder methods.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a CA made at start (see [`Registry::ca_pem_path`]).
    pub tls: bool,
    /// With `tls`: require a client certificate signed by that CA (`http.tls.clientcas`);
    /// see [`Registry::client_dir`].
    pub client_certs: bool,
    /// htpasswd Basic auth with this one (user, password).
    pub basic: Option<(String, String)>,
    /// Bearer token auth verified against a [`crate::TokenServer`].
    pub token: Option<TokenAuthConfig>,
    /// Pull-through cache (mirror) of this upstream registry URL.
    pub proxy_upstream: Option<String>,
    /// Credentials the proxy presents to its upstream.
    pub proxy_credentials: Option<(String, String)>,
    /// A CA bundle the proxy trusts for an HTTPS upstream (passed as `SSL_CERT_FILE`).
    pub proxy_ca: Option<PathBuf>,
}

impl RegistryOptions {
    /// Plain HTTP, no auth.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Serves HTTPS with a CA generated at start.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Serves HTTPS and requires a client certificate signed by its CA (mutual TLS).
    pub fn client_certs(mut self) -> Self {
        self.tls = true;
        self.client_certs = true;
        self
    }

    /// Requires Basic auth (htpasswd, bcrypt) for `user`/`pass`.
    pub fn basic(mut self, user: &str, pass: &str) -> Self {
        self.basic = Some((user.to_string(), pass.to_string()));
        self
    }

    /// Requires bearer tokens from the token server described by `config`.
    pub fn token(mut self, config: TokenAuthConfig) -> Self {
        self.token = Some(config);
        self
    }

    /// Runs as a pull-through cache of `upstream_url` (e.g. another [`Registry::base_url`]).
    pub fn proxy(mut self, upstream_url: &str) -> Self {
        self.proxy_upstream = Some(upstream_url.to_string());
        self
    }

    /// Credentials for the proxy's upstream.
    pub fn proxy_credentials(mut self, user: &str, pass: &str) -> Self {
        self.proxy_credentials = Some((user.to_string(), pass.to_string()));
        self
    }

    /// A CA PEM file the proxy trusts for its HTTPS upstream.
    pub fn proxy_ca(mut self, pem_path: &Path) -> Self {
        self.proxy_ca = Some(pem_path.to_path_buf());
        self
    }
}

/// A running docker-registry process on `127.0.0.1`; killed and cleaned up on drop.
pub struct Registry {
    port: u16,
    tls: bool,
    ca_path: Option<PathBuf>,
    log_path: PathBuf,
    storage: PathBuf,
    child: Option<Supervisor>,
    // Dropped after `child` (fields drop in order), so the process is gone first.
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits (up to 20 s) until `GET /v2/` answers 200 or 401.
    /// On failure the error carries the tail of the registry's log. A port lost to
    /// another process between choosing and binding it is retried with a new port.
    /// Asking for both basic and token auth is an `InvalidInput` error.
    pub async fn start(opts: RegistryOptions) -> io::Result<Registry> {
        if opts.basic.is_some() && opts.token.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a registry has one auth method: basic or token, not both",
            ));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Registry::start_once(&opts).await? {
                Ok(reg) => return Ok(reg),
                Err((e, log)) => {
                    if attempt < 5 && log.contains("address already in use") {
                        continue;
                    }
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e}\n--- registry log tail ---\n{}", tail(&log, 40)),
                    ));
                }
            }
        }
    }

    /// One attempt: `Ok(Err((error, log)))` when the process started but never got ready.
    async fn start_once(
        opts: &RegistryOptions,
    ) -> io::Result<Result<Registry, (io::Error, String)>> {
        let dir = tempfile::Builder::new()
            .prefix("msbimage-registry-")
            .tempdir()?;
        let ca_path = if opts.tls {
            // `registry.test`: the name a test gives the registry to reach it only through a
            // `ConnectProxy`.
            let ca = TestCa::generate(&["127.0.0.1", "localhost", "registry.test"])?;
            std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem)?;
            std::fs::write(dir.path().join("cert.pem"), &ca.leaf_cert_pem)?;
            std::fs::write(dir.path().join("key.pem"), &ca.leaf_key_pem)?;
            write_client_dir(&dir.path().join("client"), &ca)?;
            Some(dir.path().join("ca.pem"))
        } else {
            None
        };
        if let Some((user, pass)) = &opts.basic {
            let hash = bcrypt::hash(pass, 4).map_err(io::Error::other)?;
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n"))?;
        }
        if let Some(token) = &opts.token {
            std::fs::write(dir.path().join("token-root.pem"), &token.root_cert_pem)?;
        }
        let identity = opts
            .client_certs
            .then(|| dir.path().join("client/identity.pem"));
        let client = client_trusting(ca_path.as_deref(), identity.as_deref())?;
        let port = free_port()?;
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, render_config(dir.path(), port, opts))?;
        let log_path = dir.path().join("registry.log");
        let mut cmd = Command::new(registry_bin());
        cmd.arg("serve").arg(&config_path).current_dir(dir.path());
        if let Some(ca) = &opts.proxy_ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        let child = Supervisor::spawn(cmd, &log_path)?;
        let reg = Registry {
            port,
            tls: opts.tls,
            ca_path,
            log_path,
            storage: dir.path().join("storage"),
            child: Some(child),
            _dir: dir,
        };
        Ok(match reg.wait_ready(&client).await {
            Ok(()) => Ok(reg),
            Err(e) => {
                let log = reg.log();
                drop(reg);
                Err((e, log))
            }
        })
    }

    async fn wait_ready(&self, client: &reqwest::Client) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/v2/", self.base_url());
        loop {
            if let Some(status) = self.child.as_ref().and_then(Supervisor::exit_status) {
                return Err(io::Error::other(format!(
                    "docker-registry exited early with {status}"
                )));
            }
            if let Ok(resp) = client.get(&url).send().await
                && matches!(resp.status().as_u16(), 200 | 401)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("docker-registry not ready at {url} after {READY_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, or `https://…` for a TLS registry.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The PEM of the CA that signed a TLS registry's certificate (`None` for plain HTTP).
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// For a TLS registry: a directory laid out as Docker's `certs.d/<host>/` wants it
    /// (`ca.crt`, and `client.cert` + `client.key` signed by the same CA), plus
    /// `identity.pem` (certificate and key in one file, for [`crate::Pusher`]).
    pub fn client_dir(&self) -> Option<PathBuf> {
        let ca = self.ca_path.as_deref()?;
        ca.parent().map(|d| d.join("client"))
    }

    /// For a TLS registry: `identity.pem` of [`Self::client_dir`].
    pub fn client_identity_path(&self) -> Option<PathBuf> {
        self.client_dir().map(|d| d.join("identity.pem"))
    }

    /// Stops the registry process now (as a crash or an outage would); its files stay until
    /// the `Registry` is dropped.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            child.stop();
        }
    }

    /// The registry's storage root (filesystem driver), for tests that tamper with blobs.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Everything the registry has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            child.stop();
        }
    }
}

fn registry_bin() -> PathBuf {
    std::env::var_os("MSBIMAGE_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_BIN))
}

/// `dir` as [`Registry::client_dir`] describes it.
fn write_client_dir(dir: &Path, ca: &TestCa) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.crt"), &ca.ca_pem)?;
    std::fs::write(dir.join("client.cert"), &ca.client_cert_pem)?;
    std::fs::write(dir.join("client.key"), &ca.client_key_pem)?;
    let identity = format!("{}{}", ca.client_cert_pem, ca.client_key_pem);
    std::fs::write(dir.join("identity.pem"), identity)
}

/// A loopback port that was free a moment ago (bind `127.0.0.1:0`, read, release).
pub(crate) fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A YAML double-quoted scalar (JSON strings are valid ones).
fn q(s: impl AsRef<str>) -> String {
    serde_json::Value::String(s.as_ref().to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(p.to_string_lossy())
}

/// The registry's `config.yml` for `opts`, with state under `dir`.
fn render_config(dir: &Path, port: u16, opts: &RegistryOptions) -> String {
    let mut y = String::new();
    y.push_str("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n");
    y.push_str(&format!(
        "storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
        qp(&dir.join("storage"))
    ));
    y.push_str("  maintenance:\n    uploadpurging:\n      enabled: false\n");
    y.push_str(&format!(
        "http:\n  addr: {}\n  secret: msbimage-testkit-secret\n",
        q(format!("127.0.0.1:{port}"))
    ));
    if opts.tls {
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            qp(&dir.join("cert.pem")),
            qp(&dir.join("key.pem"))
        ));
        if opts.client_certs {
            y.push_str(&format!(
                "    clientcas:
      - {}
",
                qp(&dir.join("ca.pem"))
            ));
        }
    }
    if opts.basic.is_some() {
        y.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: \"msbimage-testkit\"\n    path: {}\n",
            qp(&dir.join("htpasswd"))
        ));
    } else if let Some(t) = &opts.token {
        y.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            q(&t.realm),
            q(&t.service),
            q(&t.issuer),
            qp(&dir.join("token-root.pem"))
        ));
    }
    if let Some(upstream) = &opts.proxy_upstream {
        y.push_str(&format!("proxy:\n  remoteurl: {}\n", q(upstream)));
        if let Some((u, p)) = &opts.proxy_credentials {
            y.push_str(&format!("  username: {}\n  password: {}\n", q(u), q(p)));
        }
    }
    y
}

/// A thread that spawns the registry (so `PR_SET_PDEATHSIG` fires if this process dies),
/// watches it, and kills and reaps it when told to stop.
struct Supervisor {
    stop_tx: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
    exited: Arc<Mutex<Option<ExitStatus>>>,
}

impl Supervisor {
    fn spawn(mut cmd: Command, log_path: &Path) -> io::Result<Supervisor> {
        let log = File::create(log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: the closure only makes one async-signal-safe syscall (prctl).
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(io::Error::from)
            });
        }
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let exited = Arc::new(Mutex::new(None));
        let exited_in = Arc::clone(&exited);
        let thread = std::thread::Builder::new()
            .name("msbimage-registry".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                loop {
                    match stop_rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Ok(Some(status)) = child.try_wait() {
                                *exited_in.lock().unwrap() = Some(status);
                                let _ = stop_rx.recv();
                                return;
                            }
                        }
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Supervisor {
                stop_tx,
                thread: Some(thread),
                exited,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", registry_bin().display()),
                ))
            }
            Err(_) => Err(io::Error::other("registry supervisor thread died")),
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        *self.exited.lock().unwrap()
    }

    /// Kills the process (if still running) and waits for it.
    fn stop(mut self) {
        let _ = self.stop_tx.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
