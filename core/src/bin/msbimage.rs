//! `msbimage`: pull OCI images into the msbimage cache from the command line.
//!
//! `msbimage pull REF` pulls (with progress on stderr and a summary or `--json` on stdout);
//! `msbimage inspect REF` answers from the cache alone; `msbimage login REGISTRY` keeps
//! credentials where pulls (and Podman) find them. Failures print one line,
//! `msbimage: error: …`, and exit with a code per [`ErrorKind`] (see [`args::exit_codes_help`]).

// The crate root's modules would live next to it in `src/bin/`, where Cargo would take them
// for binaries of their own; they live in `src/bin/msbimage/` instead.
#[path = "msbimage/args.rs"]
mod args;
#[path = "msbimage/cache_cmds.rs"]
mod cache_cmds;
#[path = "msbimage/interrupt.rs"]
mod interrupt;
#[path = "msbimage/login_cmds.rs"]
mod login_cmds;
#[path = "msbimage/malloc.rs"]
mod malloc;
#[path = "msbimage/progress_ui.rs"]
mod progress_ui;

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use args::{Cli, Command, InspectArgs, PolicyArg, PullArgs, SaveArgs, UnpackArgs};
use clap::Parser as _;
use microsandbox_image::{
    Error, ErrorKind, GlobalCache, ImageSource, Platform, PullOptions, PullPolicy, PullResult,
    Reference, Registry, SaveReport, unpack::UnpackOptions,
};
use progress_ui::Reporter;

/// Why the command failed: a library error, or a failure of the command itself.
enum Failure {
    Pull(Error),
    Other { code: u8, message: String },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Pull(e)
    }
}

/// The exit status for each error kind (the table in the core, shown in `--help`).
fn exit_code(kind: ErrorKind) -> u8 {
    kind.exit_code()
}

/// The default cache (see [`GlobalCache::default_path`]).
fn default_cache_dir() -> Result<PathBuf, Error> {
    GlobalCache::default_path().ok_or_else(|| {
        Error::InvalidArgument(
            "cannot find a cache directory (HOME is not set); pass --cache DIR".into(),
        )
    })
}

/// The JSON document of `pull --json` and `inspect` (the core's, shared with Python).
fn result_json(r: &PullResult) -> String {
    r.to_json()
}

fn summary(r: &PullResult) -> String {
    let mut s = format!("{}\n", r.reference);
    s += &format!("  platform: {}\n", r.platform);
    s += &format!("  digest:   {}\n", r.manifest_digest);
    if let Some(index) = &r.index_digest {
        s += &format!("  index:    {index}\n");
    }
    s += &format!("  config:   {}\n", r.config_digest);
    s += &format!("  cached:   {}\n", if r.cached { "yes" } else { "no" });
    s += &format!("  layers:   {}\n", r.layers.len());
    for layer in &r.layers {
        s += &format!("    {}\n", layer.display());
    }
    s
}

fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Other {
            code: exit_code(ErrorKind::Io),
            message: format!("cannot write to stdout: {e}"),
        })
}

fn open_cache(dir: Option<&Path>, access: &args::CacheAccess) -> Result<GlobalCache, Error> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => default_cache_dir()?,
    };
    Ok(GlobalCache::with_options(dir, &access.options())?)
}

/// The password piped to `--password-stdin`, without its trailing newline.
fn read_password() -> Result<String, Error> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::InvalidArgument(
            "--password-stdin: stdin is a terminal; pipe the password in".into(),
        ));
    }
    let mut password = String::new();
    stdin
        .lock()
        .read_to_string(&mut password)
        .map_err(|e| Error::InvalidArgument(format!("--password-stdin: cannot read stdin: {e}")))?;
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password);
    if password.is_empty() {
        return Err(Error::InvalidArgument(
            "--password-stdin: stdin is empty".into(),
        ));
    }
    Ok(password.to_owned())
}

async fn pull(args: PullArgs) -> Result<(), Failure> {
    let outcome = run_pull(&args).await;
    match outcome {
        Ok(result) => {
            let text = if args.json {
                result_json(&result) + "\n"
            } else {
                summary(&result)
            };
            print_stdout(&text)
        }
        Err(e) => {
            if args.json {
                // Errors are data too: the same report the bindings attach to exceptions.
                print_stdout(&(error_json(&e) + "\n"))?;
            }
            Err(e.into())
        }
    }
}

/// `msbimage unpack REF DIR`: pull as `pull` does, then write the merged root filesystem.
async fn unpack(args: UnpackArgs) -> Result<(), Failure> {
    let result = match run_pull(&args.pull).await {
        Ok(result) => result,
        Err(e) => {
            if args.pull.json {
                print_stdout(&(error_json(&e) + "\n"))?;
            }
            return Err(e.into());
        }
    };
    let (dir, opts) = (
        args.dir.clone(),
        UnpackOptions {
            rootless: args.rootless.then_some(true),
        },
    );
    let report = tokio::task::spawn_blocking(move || result.unpack(&dir, &opts))
        .await
        .map_err(|e| Error::Internal(format!("unpack task: {e}")))?
        .map_err(|e| Failure::Other {
            code: e.kind().exit_code(),
            message: e.to_string(),
        })?;
    if args.pull.json {
        let doc = serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))?;
        return print_stdout(&(doc + "\n"));
    }
    print_stdout(&format!(
        "unpacked {} entries ({} bytes) into {}{}\n",
        report.entries,
        report.bytes,
        args.dir.display(),
        if report.rootless {
            " (rootless: owners in user.rootlesscontainers)"
        } else {
            ""
        }
    ))
}

/// Pull as the arguments ask, with progress on stderr and Ctrl-C/SIGTERM cancelling.
async fn run_pull(args: &PullArgs) -> Result<PullResult, Error> {
    let source = ImageSource::parse_arg(&args.common.reference)?;
    if args.force && args.policy == PolicyArg::Never {
        return Err(Error::InvalidArgument(
            "--force needs the network; it cannot be combined with --policy never".into(),
        ));
    }
    let password = match (&args.username, args.password_stdin) {
        (Some(_), true) => Some(read_password()?),
        _ => None,
    };
    let registry = registry_for(args, &source, password)?;

    let mut options = PullOptions {
        pull_policy: args.policy.into(),
        force: args.force,
        build_index: !args.no_index,
        ..PullOptions::default()
    };
    if !args.outputs.is_empty() {
        options.outputs = args.outputs.clone();
    }
    if let Some(form) = args.erofs_opaque_xattr {
        options.erofs_opaque_xattr = form;
    }
    let mut reporter = Reporter::new(args.progress, options.build_index);

    interrupt::install();
    let (mut events, mut task) = registry.pull_source_with_progress(&source, &options);
    let mut events_open = true;
    let outcome = loop {
        tokio::select! {
            biased;
            event = events.recv(), if events_open => match event {
                Some(event) => reporter.event(&event),
                None => events_open = false,
            },
            joined = &mut task => break joined.unwrap_or_else(|e| {
                Err(Error::Internal(format!("pull task failed: {e}")))
            }),
            () = interrupt::interrupted() => {
                // The pull stops at once and returns Cancelled after its workers have removed
                // their staging directories.
                events.cancel();
            }
        }
    };
    // The pull closes its event stream before returning: drain what is still queued.
    while let Ok(Some(event)) = events.try_recv() {
        reporter.event(&event);
    }

    if let Err(e) = &outcome {
        reporter.abandon(e);
    }
    reporter.end();
    outcome
}

/// The registry client the arguments describe, for `source` (credentials apply to its
/// registry).
fn registry_for(
    args: &PullArgs,
    source: &ImageSource,
    password: Option<String>,
) -> Result<Registry, Error> {
    let cache = open_cache(args.common.cache.as_deref(), &args.common.access)?;
    let platform = args
        .common
        .platform
        .clone()
        .unwrap_or_else(Platform::host_linux);
    let reference = match source {
        ImageSource::Registry(r) => Some(r),
        _ => None,
    };
    let config = args.registry_config(reference, password)?;
    Registry::from_config(platform, cache, config)
}

/// `msbimage save SRC TARGET`.
async fn save(args: SaveArgs) -> Result<(), Failure> {
    let outcome = run_save(&args).await;
    match outcome {
        Ok(report) => {
            let text = if args.pull.json {
                serde_json::to_string(&report).map_err(|e| Error::Internal(e.to_string()))? + "\n"
            } else {
                format!(
                    "saved {} ({}) to {}: {} blobs, {} bytes written\n",
                    report.reference,
                    report.manifest_digest,
                    report.target,
                    report.blobs_written,
                    report.bytes_written
                )
            };
            print_stdout(&text)
        }
        Err(e) => {
            if args.pull.json {
                print_stdout(&(error_json(&e) + "\n"))?;
            }
            Err(e.into())
        }
    }
}

async fn run_save(args: &SaveArgs) -> Result<SaveReport, Error> {
    let source = ImageSource::parse_arg(&args.pull.common.reference)?;
    let target: ImageSource = args.target.parse().map_err(|e| Error::Source {
        reference: args.target.clone(),
        source: Box::new(e),
    })?;
    let password = match (&args.pull.username, args.pull.password_stdin) {
        (Some(_), true) => Some(read_password()?),
        _ => None,
    };
    let registry = registry_for(&args.pull, &source, password)?;
    let platform = args.pull.common.platform.clone();
    interrupt::install();
    tokio::select! {
        saved = registry.save(&source, &target, platform) => saved,
        () = interrupt::interrupted() => Err(Error::Cancelled { reference: source.to_string() }),
    }
}

/// `{"error": {"kind": "NOT_CACHED", "message": …, "image": …, "layer": …, "blob": …}}`.
fn error_json(e: &Error) -> String {
    serde_json::json!({ "error": e.report() }).to_string()
}

async fn inspect(args: InspectArgs) -> Result<(), Failure> {
    if args.remote {
        return inspect_remote(args).await;
    }
    let reference: Reference = args.common.reference.parse().map_err(Error::from)?;
    let dir = match args.common.cache {
        Some(d) => d,
        None => default_cache_dir()?,
    };
    // A read-only command: do not create a cache that does not exist.
    if !dir.is_dir() {
        return Err(Error::NotCached {
            reference: reference.to_string(),
        }
        .into());
    }
    let cache = open_cache(Some(&dir), &args.common.access)?;
    let platform = args.common.platform.unwrap_or_else(Platform::host_linux);
    // What it prints needs no index: a reader need not fail on a layer without one.
    let build_index = !cache.is_read_only();
    let registry = Registry::builder(platform, cache).build()?;
    let options = PullOptions {
        pull_policy: PullPolicy::Never,
        build_index,
        ..PullOptions::default()
    };
    let result = registry.pull(&reference, &options).await?;
    print_stdout(&(result_json(&result) + "\n"))
}

/// `inspect --remote`: what the registry serves, as text or (`--json`) one object.
async fn inspect_remote(args: InspectArgs) -> Result<(), Failure> {
    let reference: Reference = args.common.reference.parse().map_err(Error::from)?;
    let mut config = args::base_registry_config(args.config.as_deref())?;
    config
        .insecure_registries
        .extend(args.insecure_registry.iter().cloned());
    // Nothing is read from or written to a cache, but a registry needs one: a throwaway.
    let scratch = tempfile_dir()?;
    let cache = GlobalCache::new(scratch.path()).map_err(Error::from)?;
    let platform = args
        .common
        .platform
        .clone()
        .unwrap_or_else(Platform::host_linux);
    let registry = Registry::from_config(platform, cache, config)?;
    let image = registry.inspect(&reference, None).await?;
    if args.json {
        let doc = serde_json::to_string(&image).map_err(|e| Error::Internal(e.to_string()))?;
        return print_stdout(&(doc + "\n"));
    }
    let mut out = format!("{}\ndigest    {}\n", image.reference, image.digest);
    if image.index_digest.is_some() {
        out += &format!("platforms {}\n", image.platforms.join(", "));
    }
    out += &format!(
        "platform  {}\nmanifest  {}\nconfig    {}\n",
        image.platform, image.manifest_digest, image.config_digest
    );
    let c = &image.config;
    if let Some(e) = &c.entrypoint {
        out += &format!("entrypoint {e:?}\n");
    }
    if let Some(cmd) = &c.cmd {
        out += &format!("cmd       {cmd:?}\n");
    }
    out += &format!(
        "layers    {} ({} bytes to download)\n",
        image.layers.len(),
        image.download_size
    );
    for l in &image.layers {
        out += &format!("  {} {:>12}  {}\n", l.digest, l.size, l.media_type);
    }
    print_stdout(&out)
}

/// A temporary directory removed on drop.
fn tempfile_dir() -> Result<TempDir, Error> {
    let base = std::env::temp_dir().join(format!("msbimage-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&base)
        .map_err(|e| Error::InvalidArgument(format!("cannot create {}: {e}", base.display())))?;
    Ok(TempDir(base))
}

/// A directory deleted when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Keeps the library's warnings (its `log` records at `Warn` and above: a failed collection
/// after a pull) until the command's own output is done ([`WarningLogger::print`]), so they
/// never land in the middle of progress bars; drops everything else.
struct WarningLogger {
    held: std::sync::Mutex<Vec<String>>,
}

impl WarningLogger {
    /// Print the warnings held so far on stderr as `msbimage: warning: …`.
    fn print(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        for warning in held {
            eprintln!("msbimage: warning: {warning}");
        }
    }
}

impl log::Log for WarningLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().starts_with("microsandbox_image")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOGGER: WarningLogger = WarningLogger {
    held: std::sync::Mutex::new(Vec::new()),
};

fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("msbimage: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit_code(ErrorKind::Internal));
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Pull(args) => pull(args).await,
            Command::Inspect(args) => inspect(args).await,
            Command::Ls(args) => cache_cmds::ls(args).await,
            Command::Rm(args) => cache_cmds::rm(args).await,
            Command::Du(args) => cache_cmds::du(args).await,
            Command::Gc(args) => cache_cmds::gc(args).await,
            Command::Verify(args) => cache_cmds::verify(args).await,
            Command::Unpack(args) => unpack(args).await,
            Command::Save(args) => save(args).await,
            Command::Login(args) => login_cmds::login(args).await,
            Command::Logout(args) => login_cmds::logout(args).await,
        }
    });
    // Blocking work of an aborted pull (an extraction mid-layer) may still be finishing; it
    // cleans up after itself, but do not wait long for it.
    runtime.shutdown_timeout(Duration::from_secs(2));
    LOGGER.print();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Pull(e)) => {
            eprintln!("msbimage: error: {e}");
            let by_signal = (e.kind() == ErrorKind::Cancelled)
                .then(interrupt::exit_code)
                .flatten();
            ExitCode::from(by_signal.unwrap_or_else(|| exit_code(e.kind())))
        }
        Err(Failure::Other { code, message }) => {
            eprintln!("msbimage: error: {message}");
            ExitCode::from(code)
        }
    }
}
