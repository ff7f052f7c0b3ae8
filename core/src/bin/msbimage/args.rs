//! The command line: subcommands, options, and the exit-code table shown in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use microsandbox_image::{Platform, PullPolicy};

use crate::progress_ui::ProgressMode;

pub const EXIT_CODES: &str = "\
Exit codes:
    0    success
    2    invalid argument or image reference (including command-line usage errors)
    3    image not in the cache (--policy never, inspect)
    4    no manifest for the requested platform
    5    authentication refused by the registry
    6    registry or network error (including unknown repository or tag)
    7    digest mismatch (corrupt or tampered content)
    8    a layer could not be decompressed or extracted
    9    local file-system error
    10   unsupported or malformed manifest or config
    70   internal error (a bug)
    130  interrupted (Ctrl-C)

On failure one line is printed to stderr: `msbimage: error: <message>`.

Environment:
    MSBIMAGE_CACHE    default cache directory (else $XDG_CACHE_HOME/msbimage, else ~/.cache/msbimage)
    DOCKER_CONFIG     directory of the Docker config.json used for credentials (default ~/.docker)";

/// Pull OCI images, verify them and extract their layers into a shared cache.
#[derive(Debug, Parser)]
#[command(
    name = "msbimage",
    version,
    about = "Pull OCI images, verify them and extract their layers into a shared cache",
    long_about = "Pull OCI images from a registry, verify every blob against its digest, and \
                  extract the layers into a content-addressed cache shared by all images \
                  (with a lookup index per layer). Progress goes to stderr; results to stdout.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image into the cache and print where its layers are.
    #[command(after_help = EXIT_CODES)]
    Pull(PullArgs),
    /// Print what the cache holds for an image (as JSON, like `pull --json`), offline.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Image reference: [registry/]repository[:tag][@digest]
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Target platform [default: linux/<host architecture>]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    pub platform: Option<Platform>,

    /// Cache directory [default: $MSBIMAGE_CACHE, $XDG_CACHE_HOME/msbimage or ~/.cache/msbimage]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// When to contact the registry
    #[arg(long, value_enum, default_value_t = PolicyArg::IfMissing)]
    pub policy: PolicyArg,

    /// Download and extract every layer again, even if cached
    #[arg(long)]
    pub force: bool,

    /// Allow plain HTTP and unverified TLS for this registry host[:port] (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Also trust the CA certificates in this PEM file
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Try URL (host[:port] or http(s)://host[:port]) before REGISTRY, e.g.
    /// docker.io=http://localhost:5000 (repeatable; mirrors are tried in order)
    #[arg(long, value_name = "REGISTRY=URL", value_parser = parse_mirror)]
    pub mirror: Vec<(String, String)>,

    /// How many layers download and extract at once [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: Option<u16>,

    /// Do not build the per-layer lookup index
    #[arg(long = "no-index")]
    pub no_index: bool,

    /// User name for the image's registry (the password is read from stdin)
    #[arg(long, value_name = "U", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password (or token) for --username from stdin
    #[arg(long = "password-stdin", requires = "username")]
    pub password_stdin: bool,

    /// Print the result as one JSON object on stdout
    #[arg(long)]
    pub json: bool,

    /// How to show progress on stderr
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Use the cache when the image is complete there; pull otherwise
    IfMissing,
    /// Always fetch the manifest again (cached layers are reused)
    Always,
    /// Never touch the network; fail with exit code 3 if not cached
    Never,
}

impl From<PolicyArg> for PullPolicy {
    fn from(p: PolicyArg) -> PullPolicy {
        match p {
            PolicyArg::IfMissing => PullPolicy::IfMissing,
            PolicyArg::Always => PullPolicy::Always,
            PolicyArg::Never => PullPolicy::Never,
        }
    }
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_mirror(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((registry, url)) if !registry.trim().is_empty() && !url.trim().is_empty() => {
            let registry = registry.trim().to_ascii_lowercase();
            // References name Docker Hub `docker.io` whatever alias the user wrote.
            let registry = match registry.as_str() {
                "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                    "docker.io".to_string()
                }
                _ => registry,
            };
            Ok((registry, url.trim().to_string()))
        }
        _ => Err(format!(
            "expected REGISTRY=URL, e.g. docker.io=http://localhost:5000; got {s:?}"
        )),
    }
}
