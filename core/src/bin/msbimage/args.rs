//! The command line: subcommands, options, and the exit-code table shown in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use microsandbox_image::cache::{CacheGroup, CacheOptions};
use microsandbox_image::{
    CredentialSource, DockerConfigSource, Error, ErrorKind, Platform, PullPolicy, Reference,
    RegistryAuth, RegistryConfig,
};

use crate::progress_ui::ProgressMode;

/// The `--help` footer: exit codes (from the core's error-kind table), the error line and
/// the environment.
pub fn exit_codes_help() -> String {
    let mut codes: Vec<(u8, Vec<&str>)> = Vec::new();
    for kind in ErrorKind::ALL {
        match codes.iter_mut().find(|(c, _)| *c == kind.exit_code()) {
            Some((_, docs)) => docs.push(kind.doc()),
            None => codes.push((kind.exit_code(), vec![kind.doc()])),
        }
    }
    codes.sort_by_key(|(c, _)| *c);
    let mut s = String::from("Exit codes:\n    0    success\n");
    for (code, docs) in codes {
        let mut docs = docs.join("; ");
        if code == ErrorKind::InvalidArgument.exit_code() {
            docs.push_str(" (including command-line usage errors)");
        }
        s += &format!("    {code:<4} {docs}\n");
    }
    s += "\nOn failure one line is printed to stderr: `msbimage: error: <message>` (and, with \
          --json, an {\"error\": {\"kind\", \"message\", \"image\", \"layer\", \"blob\"}} object on \
          stdout).\n\n\
          Environment:\n    \
          MSBIMAGE_CACHE    default cache directory (else $XDG_CACHE_HOME/msbimage, else ~/.cache/msbimage)\n    \
          MSBIMAGE_CACHE_GROUP    default of --cache-group\n    \
          MSBIMAGE_CACHE_READ_ONLY    1 = --read-only\n    \
          Credentials (unless --config sets \"credentialSources\"), the first file with an entry wins:\n    \
          REGISTRY_AUTH_FILE    a Podman auth.json\n    \
          XDG_RUNTIME_DIR   its containers/auth.json (where `podman login` writes)\n    \
          XDG_CONFIG_HOME   its containers/auth.json (default ~/.config/containers/auth.json)\n    \
          DOCKER_CONFIG     directory of the Docker config.json (default ~/.docker)\n    \
          Registry settings (before --config and the flags):\n    \
          MSBIMAGE_CONFIG   our config.toml (default $XDG_CONFIG_HOME/msbimage/config.toml, else ~/.config/msbimage/config.toml): RegistryConfig's keys as TOML\n    \
          CONTAINERS_REGISTRIES_CONF    the registries.conf to read (default ~/.config/containers/registries.conf, else /etc/containers/registries.conf)\n    \
          also read (unless the settings say otherwise): /etc/containers/certs.d, /etc/docker/certs.d (per-host CAs and client certificates), /etc/containerd/certs.d (hosts.toml)\n    \
          SSL_CERT_FILE, SSL_CERT_DIR   replace the system's trusted CAs";
    s
}

/// Pull OCI images, verify them and extract their layers into a shared cache.
#[derive(Debug, Parser)]
#[command(
    name = "msbimage",
    version,
    about = "Pull OCI images, verify them and extract their layers into a shared cache",
    long_about = "Pull OCI images from a registry, verify every blob against its digest, and \
                  extract the layers into a content-addressed cache shared by all images \
                  (with a lookup index per layer). Progress goes to stderr; results to stdout.",
    after_help = exit_codes_help(),
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull an image into the cache and print where its layers are.
    #[command(after_help = exit_codes_help())]
    Pull(PullArgs),
    /// Print what the cache holds for an image (as JSON, like `pull --json`), offline; with
    /// --remote, what the registry serves for it, without downloading layers.
    #[command(after_help = exit_codes_help())]
    Inspect(InspectArgs),
    /// List the images in the cache (names, platform, digest, size, last use).
    #[command(after_help = exit_codes_help())]
    Ls(LsArgs),
    /// Remove images from the cache, with the layers no other image holds.
    #[command(after_help = exit_codes_help())]
    Rm(RmArgs),
    /// Show where the cache's bytes are: per image (exclusive, shared) and per layer.
    #[command(after_help = exit_codes_help())]
    Du(LsArgs),
    /// Remove what no image refers to; with --max-size or --keep-recent, evict images too.
    #[command(after_help = exit_codes_help())]
    Gc(GcArgs),
    /// Check layers, indexes, manifests and records against what was published; with
    /// --repair, re-pull only what is damaged. Exits 1 if damage remains.
    #[command(after_help = exit_codes_help())]
    Verify(VerifyArgs),
    /// Write an image as an OCI layout or a docker archive, to carry it where there is no
    /// registry: `save REF oci-layout:DIR[:TAG]` or `save REF docker-archive:FILE[:NAME:TAG]`.
    /// The blobs come from REF's registry (the cache keeps extracted layers, not blobs) or
    /// from an offline image (`save oci-layout:A docker-archive:B` converts).
    #[command(after_help = exit_codes_help())]
    Save(SaveArgs),
    /// Pull an image (as `pull` does) and write its merged root filesystem into DIR as an
    /// ordinary tree (real symlinks, modes, owners as root; rootless like `umoci unpack
    /// --rootless` otherwise).
    #[command(after_help = exit_codes_help())]
    Unpack(UnpackArgs),
    /// Check a user name and password with a registry and keep them where the next pull (and
    /// Podman) finds them: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json
    /// (or --authfile), or the credential helper configured for the registry.
    #[command(after_help = exit_codes_help())]
    Login(LoginArgs),
    /// Remove the credentials `login` kept for a registry (or, with --all, for every one).
    #[command(after_help = exit_codes_help())]
    Logout(LogoutArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry: host[:port], optionally with a namespace (host/team)
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// User name [default: asked on the terminal]
    #[arg(long, short = 'u', value_name = "U")]
    pub username: Option<String>,

    /// Read the password (or token) from stdin instead of asking on the terminal
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,

    /// Keep the credentials in this auth.json (as `podman login --authfile`)
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    /// Allow plain HTTP and unverified TLS for this registry host[:port] (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Also trust the CA certificates in this PEM file
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Registry settings, as for `pull --config` (its network settings apply)
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry, as given to `login`
    #[arg(value_name = "REGISTRY", required_unless_present = "all")]
    pub registry: Option<String>,

    /// Remove the credentials of every registry from the file
    #[arg(long, conflicts_with = "registry")]
    pub all: bool,

    /// The auth.json to remove them from (as `podman logout --authfile`)
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub pull: PullArgs,

    /// Where to write it: oci-layout:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]
    #[arg(value_name = "TARGET")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct UnpackArgs {
    #[command(flatten)]
    pub pull: PullArgs,

    /// Where to write the root filesystem (missing or an empty directory)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Owners in `user.rootlesscontainers` xattrs and devices as empty files, even as root
    #[arg(long)]
    pub rootless: bool,
}

/// How to open the cache: shared with a group (its owner), or read-only (another user).
#[derive(Debug, Args)]
pub struct CacheAccess {
    /// Share the cache read-only with GROUP (name or gid): directories 2750 and files 0640
    /// with that group; nothing is group-writable [default: $MSBIMAGE_CACHE_GROUP; a cache
    /// already shared stays shared]
    #[arg(long = "cache-group", value_name = "GROUP")]
    pub cache_group: Option<CacheGroup>,

    /// Open a cache another user owns and shares with you, never writing to it (warm pulls,
    /// inspect, ls, du work; anything that needs a write fails) [default:
    /// $MSBIMAGE_CACHE_READ_ONLY]
    #[arg(long = "read-only")]
    pub read_only: bool,
}

impl CacheAccess {
    /// The cache options: the environment's, then these flags.
    pub fn options(&self) -> CacheOptions {
        let mut options = CacheOptions::from_env();
        if let Some(group) = &self.cache_group {
            options.group = Some(group.clone());
        }
        options.read_only |= self.read_only;
        options
    }
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Cache directory [default: $MSBIMAGE_CACHE, $XDG_CACHE_HOME/msbimage or ~/.cache/msbimage]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    #[command(flatten)]
    pub access: CacheAccess,

    /// Print the result as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Images to remove: [registry/]repository[:tag][@digest]
    #[arg(value_name = "REF", required = true)]
    pub references: Vec<String>,

    /// Remove only the image pulled for this platform [default: every platform]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    pub platform: Option<Platform>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Show what would be removed; remove nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Evict least-recently-used images until the layers fit in SIZE (e.g. 20G, 500M, 1T;
    /// powers of 1024)
    #[arg(long = "max-size", value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Never evict images used within DURATION (e.g. 7d, 12h, 30m); without --max-size, evict
    /// every image unused for longer
    #[arg(long = "keep-recent", value_name = "DURATION", value_parser = parse_duration)]
    pub keep_recent: Option<std::time::Duration>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Images to check [default: every image and layer in the cache]
    #[arg(value_name = "REF")]
    pub references: Vec<String>,

    /// Re-pull what is damaged (only the damaged layers; manifests again), then check again
    #[arg(long)]
    pub repair: bool,

    /// Registry settings for --repair, as for `pull --config`
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,

    /// Allow plain HTTP and unverified TLS for this registry host[:port] (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The CLI's default registry settings (credentials from the files Podman and Docker keep,
/// in Podman's order; the system's `certs.d`, `registries.conf` and `hosts.toml` files), then
/// our `config.toml` if it exists, then the file `path` on top (JSON, or TOML when its name
/// ends in `.toml`; `"credentialSources": []` and the like opt out).
pub fn base_registry_config(path: Option<&std::path::Path>) -> Result<RegistryConfig, Error> {
    let mut config = RegistryConfig {
        credential_sources: CredentialSource::PODMAN_ORDER.to_vec(),
        ..RegistryConfig::default()
    }
    .with_system_files();
    if let Some(own) = microsandbox_image::default_config_path().filter(|p| p.is_file()) {
        config.merge_toml_file(&own)?;
    }
    if let Some(path) = path.filter(|p| p.extension().is_some_and(|x| x == "toml")) {
        config.merge_toml_file(path)?;
    } else if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidArgument(format!("--config {}: {e}", path.display())))?;
        config
            .merge_json(&text)
            .map_err(|e| Error::InvalidArgument(format!("--config {}: {e}", path.display())))?;
    }
    Ok(config)
}

/// `20G`, `500M`, `1.5T`, `4096` (bytes), powers of 1024; a trailing `B`/`iB` is allowed.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size unit in {s:?} (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("expected a size like 20G or 500M, got {s:?}"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("expected a size like 20G or 500M, got {s:?}"));
    }
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// `7d`, `12h`, `30m`, `45s`, `2w`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let unit = t.chars().last().filter(char::is_ascii_alphabetic);
    let secs = match unit {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        _ => {
            return Err(format!(
                "expected a duration like 7d, 12h or 30m, got {s:?}"
            ));
        }
    };
    let n: u64 = t[..t.len() - 1]
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration like 7d, 12h or 30m, got {s:?}"))?;
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Image: [registry/]repository[:tag][@digest], oci-layout:DIR[:TAG|@DIGEST] or
    /// docker-archive:FILE[:NAME:TAG]
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Target platform [default: linux/<host architecture>]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    pub platform: Option<Platform>,

    /// Cache directory [default: $MSBIMAGE_CACHE, $XDG_CACHE_HOME/msbimage or ~/.cache/msbimage]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    #[command(flatten)]
    pub access: CacheAccess,
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

    /// Parallel Range requests per large layer blob; 1 fetches each blob as one stream
    /// (setting `rangeConnections`) [default: 6]
    #[arg(long = "range-connections", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub range_connections: Option<u16>,

    /// Bytes per Range request of a large blob (e.g. 4M; setting `rangeChunkSize`)
    /// [default: 2M]
    #[arg(long = "range-chunk-size", value_name = "SIZE", value_parser = parse_size)]
    pub range_chunk_size: Option<u64>,

    /// When a large blob's ranges start: adaptive (one stream first, ranges once the network
    /// is the limit) or eager (ranges from the first byte) (setting `rangeMode`)
    /// [default: adaptive]
    #[arg(long = "range-mode", value_name = "MODE", value_parser = parse_range_mode)]
    pub range_mode: Option<microsandbox_image::RangeMode>,

    /// Blob requests in flight to one registry (setting `maxConnections`) [default: 16]
    #[arg(long = "max-connections", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: Option<u16>,

    /// Registry settings as a JSON object, or TOML for a FILE.toml (keys as in the library's
    /// `RegistryConfig`: `insecureRegistries`, `mirrors`, `caFiles`, `certsDirs`,
    /// `registriesConf`, `maxRetries`, `limits`, …); applied after config.toml, the flags
    /// above apply on top of it
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,

    /// Keep the cache's layers under SIZE (e.g. 20G, 500M; powers of 1024): after a pull
    /// that downloaded a layer, evict least-recently-used images as `gc --max-size` does,
    /// never the image just pulled (setting `cacheMaxSize`)
    #[arg(long = "cache-max-size", value_name = "SIZE", value_parser = parse_size)]
    pub cache_max_size: Option<u64>,

    /// With a cap (--cache-max-size): never evict images used within DURATION (e.g. 7d, 12h,
    /// 30m) (setting `cacheKeepRecent`)
    #[arg(long = "cache-keep-recent", value_name = "DURATION", value_parser = parse_duration)]
    pub cache_keep_recent: Option<std::time::Duration>,

    /// Give up on the pull after DURATION in all (e.g. 90s, 10m; setting `deadline`): requests,
    /// retries and their waits included
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub deadline: Option<std::time::Duration>,

    /// Do not build the per-layer lookup index
    #[arg(long = "no-index")]
    pub no_index: bool,

    /// What each layer becomes, comma-separated: directory (the extracted tree,
    /// layers/sha256/<diff_id>/fs), erofs-layers (an EROFS image,
    /// layers/sha256/<diff_id>/layer.erofs); both are written in one pass, and erofs-layers
    /// alone writes no tree. erofs-flat adds one EROFS image of the merged tree,
    /// flat/sha256/<manifest>.erofs (setting `outputs`) [default: directory]
    #[arg(long = "output", value_name = "OUTPUTS", value_delimiter = ',', value_parser = parse_output)]
    pub outputs: Vec<microsandbox_image::Output>,

    /// The xattr marking opaque directories in EROFS layer images: trusted (overlayfs mounted
    /// by root) or user (overlayfs' userxattr mounts) (setting `erofsOpaqueXattr`)
    /// [default: trusted]
    #[arg(long = "erofs-opaque-xattr", value_name = "FORM", value_parser = parse_opaque_xattr)]
    pub erofs_opaque_xattr: Option<microsandbox_image::OpaqueXattr>,

    /// User name for the image's registry (the password is read from stdin)
    #[arg(long, value_name = "U", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password (or token) for --username from stdin
    #[arg(long = "password-stdin", requires = "username")]
    pub password_stdin: bool,

    /// Read stored credentials from this auth.json only (as `podman pull --authfile`)
    #[arg(long, value_name = "PATH", conflicts_with = "no_stored_credentials")]
    pub authfile: Option<PathBuf>,

    /// Read no stored credentials (no auth.json, no Docker config, no credential helper)
    #[arg(long = "no-stored-credentials")]
    pub no_stored_credentials: bool,

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

    /// Ask the registry instead of the cache: the resolved digest, an index's platforms, the
    /// config and the layer sizes, without downloading layers
    #[arg(long)]
    pub remote: bool,

    /// With --remote: print one JSON object instead of text
    #[arg(long, requires = "remote")]
    pub json: bool,

    /// With --remote: registry settings, as for `pull --config`
    #[arg(long, value_name = "FILE.json", requires = "remote")]
    pub config: Option<PathBuf>,

    /// With --remote: allow plain HTTP and unverified TLS for this host[:port] (repeatable)
    #[arg(long = "insecure-registry", value_name = "HOST", requires = "remote")]
    pub insecure_registry: Vec<String>,
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

/// An output as the setting's serde form spells it.
fn parse_output(s: &str) -> Result<microsandbox_image::Output, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: expected directory, erofs-layers or erofs-flat"))
}

/// `trusted` | `user`, as the setting's serde form spells them.
fn parse_opaque_xattr(s: &str) -> Result<microsandbox_image::OpaqueXattr, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: expected trusted or user"))
}

/// `adaptive` | `eager`, as the setting's serde form spells them.
fn parse_range_mode(s: &str) -> Result<microsandbox_image::RangeMode, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: expected adaptive or eager"))
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

impl PullArgs {
    /// The registry settings these arguments ask for: the CLI's defaults (Docker config at
    /// its default place), then `--config FILE`, then the flags.
    pub fn registry_config(
        &self,
        reference: Option<&Reference>,
        password: Option<String>,
    ) -> Result<RegistryConfig, Error> {
        let mut config = base_registry_config(self.config.as_deref())?;
        if let Some(path) = &self.authfile {
            config.credential_sources = vec![CredentialSource::Path(path.clone())];
            config.docker_config = DockerConfigSource::Off;
        }
        if self.no_stored_credentials {
            config.credential_sources.clear();
            config.docker_config = DockerConfigSource::Off;
        }
        if let (Some(username), Some(password), Some(reference)) =
            (self.username.clone(), password, reference)
        {
            let auth = RegistryAuth::Basic { username, password };
            config
                .auth_for
                .insert(reference.registry().to_owned(), auth);
        }
        config
            .insecure_registries
            .extend(self.insecure_registry.iter().cloned());
        config.ca_files.extend(self.ca_file.iter().cloned());
        for (registry, url) in &self.mirror {
            config
                .mirrors
                .entry(registry.clone())
                .or_default()
                .push(url.clone());
        }
        if let Some(n) = self.concurrency {
            config.concurrency = n.into();
        }
        if let Some(n) = self.range_connections {
            config.range_connections = n.into();
        }
        if let Some(bytes) = self.range_chunk_size {
            config.range_chunk_size = bytes;
        }
        if let Some(mode) = self.range_mode {
            config.range_mode = mode;
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n.into();
        }
        if let Some(cap) = self.cache_max_size {
            config.cache_max_size = Some(cap);
        }
        if let Some(recent) = self.cache_keep_recent {
            config.cache_keep_recent = Some(recent);
        }
        if let Some(deadline) = self.deadline {
            config.deadline = Some(deadline);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert!(parse_size("5X").is_err());
        assert!(parse_size("-1G").is_err());
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("xh").is_err());
    }
}
