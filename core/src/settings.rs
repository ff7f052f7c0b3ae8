//! [`RegistryConfig`]: every setting of a [`Registry`](crate::Registry), as plain data. The
//! builder fills it, the CLI's flags fill it, the C ABI holds one, Python keyword arguments and
//! Node option objects deserialise into it, so a new setting is one field here (with its doc,
//! its default and a test) and reaches every front door.
//!
//! Its serde form uses camelCase keys (`insecureRegistries`), durations as seconds, and
//! rejects unknown keys, so a misspelt setting is an error rather than silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::RegistryAuth;
pub use crate::client::proxy::ProxyConfig;
use crate::layer::ExtractLimits;

/// Every setting of a registry client.
///
/// ```
/// use microsandbox_image::RegistryConfig;
/// let config: RegistryConfig = serde_json::from_str(
///     r#"{"insecureRegistries": ["localhost:5000"], "concurrency": 8}"#,
/// )?;
/// assert_eq!(config.concurrency, 8);
/// assert!(config.durable); // every other setting keeps its default
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfig {
    /// Credentials for every registry without more specific ones (default anonymous).
    pub auth: RegistryAuth,
    /// Credentials per registry (`"docker.io"`, `"ghcr.io"`, `"localhost:5000"`).
    pub auth_for: BTreeMap<String, RegistryAuth>,
    /// Where to read Docker `config.json` credentials (inline auths and credential helpers)
    /// for registries without explicit ones: off (`false`, the default), the default place
    /// (`true`: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) or a path.
    pub docker_config: DockerConfigSource,
    /// Credential files read, in order, for registries without explicit credentials; the
    /// first with an entry for the repository wins (a missing file is skipped). Each is a
    /// place by name (`"registryAuthFile"`: `$REGISTRY_AUTH_FILE`; `"xdgRuntime"`:
    /// `$XDG_RUNTIME_DIR/containers/auth.json`; `"xdgConfig"`:
    /// `$XDG_CONFIG_HOME/containers/auth.json`, default `~/.config/containers/auth.json`;
    /// `"docker"`: `$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`) or a path.
    /// [`CredentialSource::PODMAN_ORDER`] is the order Podman documents (the CLI's default);
    /// the library's default is none. `dockerConfig`'s file, if any, comes after these.
    pub credential_sources: Vec<CredentialSource>,
    /// Hosts (`host[:port]`, or a URL) allowed plain HTTP and unverified TLS. Loopback hosts
    /// may always fall back to plain HTTP.
    pub insecure_registries: Vec<String>,
    /// PEM files of CA certificates to trust besides the system's (whose store honours
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    pub ca_files: Vec<PathBuf>,
    /// Directories whose PEM files (`*.crt`, `*.pem`, `*.cer`) are CA certificates to trust
    /// besides the system's, for every host.
    pub ca_dirs: Vec<PathBuf>,
    /// Docker/containers `certs.d` directories: for a host `h[:port]`, `<dir>/h[:port]/`
    /// holds `*.crt` CA certificates trusted for that host and a `*.cert` with its `*.key`,
    /// the client certificate it is shown (mutual TLS). Read in order (CAs add up, the first
    /// client certificate wins). The library's default is none;
    /// [`SYSTEM_CERTS_DIRS`](Self::SYSTEM_CERTS_DIRS) is the CLI's.
    pub certs_dirs: Vec<PathBuf>,
    /// containers-registries.conf(5) files (version 2): the first that exists is read, with
    /// the `registries.conf.d/*.conf` drop-ins beside it; its `[[registry]]` entries give
    /// mirrors (`[[registry.mirror]]`, `pull-from-mirror`), a `location` that replaces the
    /// `prefix`, `insecure` hosts and `blocked` prefixes (refused with `REGISTRY_BLOCKED`).
    /// Short-name settings (`unqualified-search-registries`, aliases) are ignored. The
    /// library's default is none; [`system_registries_conf`](Self::system_registries_conf)
    /// is the CLI's.
    pub registries_conf: Vec<PathBuf>,
    /// containerd registry hosts directories: `<dir>/<registry>/hosts.toml` (or
    /// `<dir>/_default/hosts.toml`) lists hosts tried in order (`[host."…"]` with
    /// `capabilities`, `ca`, `client`, `skip_verify`), then `server`. The library's default is
    /// none; [`SYSTEM_HOSTS_DIRS`](Self::SYSTEM_HOSTS_DIRS) is the CLI's. The `mirrors`
    /// setting comes before these; a `registries.conf` entry wins over a `hosts.toml` for the
    /// same registry.
    pub hosts_dirs: Vec<PathBuf>,
    /// Registry (`"docker.io"`) → mirrors (`host[:port]` or `http(s)://host[:port]`) tried
    /// before it, in order; the registry comes last. A mirror given as `http://…` is allowed
    /// plain HTTP.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// How many large layers (blobs of 8 MiB or more) download and extract at once (at
    /// least 1; default 4). Small layers have as many slots again of their own, so they never
    /// wait for a large layer to finish.
    pub concurrency: usize,
    /// Bytes per `Range` request when a large layer blob is fetched as several parallel
    /// ranges (a blob of at least two chunks is; default 2 MiB). Ranges fetched ahead of the
    /// one being extracted wait in memory, at most 24 MiB (or two chunks) across the whole
    /// client, so memory stays flat however large the image.
    pub range_chunk_size: u64,
    /// `Range` requests in flight per large blob (default 6); `1` fetches every blob as one
    /// stream. A registry that ignores `Range` gets one stream anyway.
    pub range_connections: usize,
    /// When a large blob's ranges start: `"adaptive"` (the default) fetches it as one stream
    /// first and adds ranges for the rest only once the stream leaves the extractor waiting
    /// (the network, not the CPU, is the limit), so a registry nearby gets one request per
    /// blob; `"eager"` fetches ranges from the first byte, which saves a round trip or two
    /// where the link is known to be long or capped per connection.
    pub range_mode: RangeMode,
    /// Blob requests in flight to one registry, over all layers and ranges of every pull of
    /// the client (at least 1; default 16). Connections are kept alive and reused.
    pub max_connections: usize,
    /// Flush a layer to disk (`syncfs`) before publishing it. Turn off for throwaway caches
    /// on tmpfs.
    pub durable: bool,
    /// Layer blobs of at least this many (compressed) bytes keep what has arrived in
    /// `blobs/sha256/<hex>.partial` while they download, so a pull that is killed resumes
    /// from those bytes at the next pull (in any process) instead of downloading them again.
    /// `0` keeps every blob's bytes, `null` none; default 32 MiB. An existing partial is
    /// always resumed.
    pub partial_min_size: Option<u64>,
    /// Retries of a request after a transient failure (reset, 429, 5xx).
    pub max_retries: u32,
    /// Longest wait for a TCP/TLS connection, in seconds.
    #[serde(with = "seconds")]
    pub connect_timeout: Duration,
    /// Longest pause between two reads of a response before the request fails, in seconds.
    #[serde(with = "seconds")]
    pub read_timeout: Duration,
    /// Upper bound of a wait that a registry asks for with `Retry-After`, in seconds.
    #[serde(with = "seconds")]
    pub max_retry_after: Duration,
    /// A layer download that averages fewer than this many bytes per second over
    /// `lowSpeedTime` fails (as curl's `--speed-limit`), resumes and all: a server that
    /// trickles a byte now and then never trips `readTimeout`. `0` turns the rule off;
    /// default 1024.
    pub low_speed_limit: u64,
    /// The window of `lowSpeedLimit`, in seconds (default 60).
    #[serde(with = "seconds")]
    pub low_speed_time: Duration,
    /// The `User-Agent` header of every request (default `msbimage/<version>`).
    pub user_agent: String,
    /// Which proxy requests go through: `"env"` (the default: `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `NO_PROXY` and their lower-case forms, read when the client is built, as Podman and
    /// containerd do; loopback registries always go direct), `"off"`, or
    /// `{"https": URL, "http": URL, "noProxy": [HOST, …]}` (applied as written: a loopback
    /// host is proxied unless `noProxy` lists it). `NO_PROXY` entries: `*`, a domain (and its
    /// subdomains), `.domain` (subdomains only), an IP or CIDR block, each with an optional
    /// `:port`. A proxy URL may hold credentials (`http://user:pass@proxy:3128`); they never
    /// appear in errors, logs or events.
    pub proxy: ProxyConfig,
    /// Limits applied to every layer (entries, bytes, file size, path depth and length).
    pub limits: ExtractLimits,
    /// Longest wait, in seconds, for a layer that another pull (this process or another)
    /// is building before this pull fails with `LOCK_TIMEOUT`; `null` (the default) waits as
    /// long as it takes. The wait is shown by a `layerWaiting` progress event either way.
    #[serde(with = "opt_seconds")]
    pub lock_timeout: Option<Duration>,
    /// Longest time, in seconds, a whole pull may take: every request, retry, wait and
    /// extraction. On expiry the pull stops as a cancelled one does (nothing half-published; a
    /// layer blob's bytes stay for the next pull to resume) and fails with
    /// `DEADLINE_EXCEEDED`. `null` (the default): no deadline; each request is still bounded
    /// by `connectTimeout`, `readTimeout`, `lowSpeedLimit` and its retries.
    #[serde(with = "opt_seconds")]
    pub deadline: Option<Duration>,
    /// A cap on the cache's layers, in bytes: after a pull that downloaded a layer, the
    /// cache is collected as `msbimage gc --max-size` would, evicting the least recently used
    /// images until the layers fit (never the image just pulled, nor a layer anyone holds). A
    /// collection that fails is logged and does not fail the pull. `null` (the default): no
    /// automatic collection.
    pub cache_max_size: Option<u64>,
    /// With `cacheMaxSize`: images used within this many seconds are never evicted by the
    /// collection after a pull (as `gc --keep-recent`), even if the cap is not met. `null`
    /// (the default): any image but the one just pulled may be evicted. No effect without
    /// `cacheMaxSize`.
    #[serde(with = "opt_seconds")]
    pub cache_keep_recent: Option<Duration>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            auth: RegistryAuth::Anonymous,
            auth_for: BTreeMap::new(),
            docker_config: DockerConfigSource::Off,
            credential_sources: Vec::new(),
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            ca_dirs: Vec::new(),
            certs_dirs: Vec::new(),
            registries_conf: Vec::new(),
            hosts_dirs: Vec::new(),
            mirrors: BTreeMap::new(),
            concurrency: 4,
            range_chunk_size: DEFAULT_RANGE_CHUNK_SIZE,
            range_connections: DEFAULT_RANGE_CONNECTIONS,
            range_mode: RangeMode::Adaptive,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            durable: true,
            partial_min_size: Some(DEFAULT_PARTIAL_MIN_SIZE),
            max_retries: 4,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(60),
            user_agent: default_user_agent(),
            proxy: ProxyConfig::Env,
            limits: ExtractLimits::default(),
            lock_timeout: None,
            deadline: None,
            cache_max_size: None,
            cache_keep_recent: None,
        }
    }
}

/// The default [`RegistryConfig::partial_min_size`]: 32 MiB. Keeping a blob's bytes costs in
/// proportion to its size (on a loopback pull, 4% more CPU and 5-11% more wall time:
/// `tests/bench/PARTIALS.md`), so no size makes it free; the threshold bounds what a crash can
/// waste instead: a blob below it is at most 32 MiB to download again.
const DEFAULT_PARTIAL_MIN_SIZE: u64 = 32 << 20;

/// When a large blob's parallel ranges start ([`RegistryConfig::range_mode`]).
///
/// ```
/// use microsandbox_image::{RangeMode, RegistryConfig};
/// let config: RegistryConfig = serde_json::from_str(r#"{"rangeMode": "eager"}"#)?;
/// assert_eq!(config.range_mode, RangeMode::Eager);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RangeMode {
    /// One stream first; ranges for the rest once it leaves the extractor waiting.
    #[default]
    Adaptive,
    /// Ranges from the first byte.
    Eager,
}

/// The default [`RegistryConfig::range_chunk_size`]: 2 MiB. Within the 16 MiB that ranges
/// fetched ahead could hold when this was measured (24 MiB now; what keeps a pull's peak RSS
/// under 64 MiB), 2 MiB chunks keep eight ranges in flight where 4 MiB keep four: on the
/// bench's `wan` link the big image took 11.7 s against 16.7 s, with `slow` and Debian
/// unchanged; 1 MiB chunks cost a round trip per MiB
/// and more memory in partly used receive buffers (`tests/bench/RESULTS.md`, link profiles).
pub(crate) const DEFAULT_RANGE_CHUNK_SIZE: u64 = 2 << 20;

/// The default [`RegistryConfig::range_connections`].
pub(crate) const DEFAULT_RANGE_CONNECTIONS: usize = 6;

/// The default [`RegistryConfig::max_connections`].
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// `msbimage/<version>`, the default [`RegistryConfig::user_agent`].
pub fn default_user_agent() -> String {
    concat!("msbimage/", env!("CARGO_PKG_VERSION")).to_owned()
}

impl RegistryConfig {
    /// Where Podman and Docker keep per-host certificates: `/etc/containers/certs.d`, then
    /// `/etc/docker/certs.d`.
    pub const SYSTEM_CERTS_DIRS: [&'static str; 2] =
        ["/etc/containers/certs.d", "/etc/docker/certs.d"];

    /// Where containerd keeps registry hosts directories.
    pub const SYSTEM_HOSTS_DIRS: [&'static str; 1] = ["/etc/containerd/certs.d"];

    /// The `registries.conf` files Podman reads, from the environment now:
    /// `$CONTAINERS_REGISTRIES_CONF` alone if set, else
    /// `$XDG_CONFIG_HOME/containers/registries.conf` (default `~/.config/…`), then
    /// `/etc/containers/registries.conf` (the first that exists is read).
    pub fn system_registries_conf() -> Vec<PathBuf> {
        if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|v| !v.is_empty()) {
            return vec![PathBuf::from(p)];
        }
        let mut files: Vec<PathBuf> = crate::sysconf::home_config_dir()
            .map(|d| d.join("containers/registries.conf"))
            .into_iter()
            .collect();
        files.push(PathBuf::from("/etc/containers/registries.conf"));
        files
    }

    /// These settings with the system's configuration files turned on (what the CLI does):
    /// [`SYSTEM_CERTS_DIRS`](Self::SYSTEM_CERTS_DIRS),
    /// [`system_registries_conf`](Self::system_registries_conf) and
    /// [`SYSTEM_HOSTS_DIRS`](Self::SYSTEM_HOSTS_DIRS).
    pub fn with_system_files(mut self) -> Self {
        self.certs_dirs = Self::SYSTEM_CERTS_DIRS.map(PathBuf::from).to_vec();
        self.registries_conf = Self::system_registries_conf();
        self.hosts_dirs = Self::SYSTEM_HOSTS_DIRS.map(PathBuf::from).to_vec();
        self
    }

    /// Reads settings from JSON, on top of the defaults. Unknown keys are an error naming
    /// them.
    pub fn from_json(json: &str) -> Result<RegistryConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Applies the keys of a JSON object onto these settings, leaving the others as they
    /// are (what the C ABI's `msb_registry_builder_set_config_json` does).
    pub fn merge_json(&mut self, json: &str) -> Result<(), serde_json::Error> {
        merge_json(self, json, "registry settings")
    }

    /// The settings' keys as their serde form names them (`"insecureRegistries"`), sorted:
    /// what the API-surface parity checks hold every front door to.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(RegistryConfig::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

/// Apply the keys of the JSON object `json` onto `value` through its serde form, leaving the
/// other keys as they are; `what` names the object in the error for anything else.
pub(crate) fn merge_json<T>(value: &mut T, json: &str, what: &str) -> Result<(), serde_json::Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let patch: serde_json::Value = serde_json::from_str(json)?;
    let mut base = serde_json::to_value(&*value)?;
    match (base.as_object_mut(), patch) {
        (Some(base), serde_json::Value::Object(patch)) => base.extend(patch),
        _ => {
            return Err(serde::de::Error::custom(format!(
                "{what} must be a JSON object"
            )));
        }
    }
    *value = serde_json::from_value(base)?;
    Ok(())
}

/// A credential file of [`RegistryConfig::credential_sources`]. As data: `"registryAuthFile"`,
/// `"xdgRuntime"`, `"xdgConfig"`, `"docker"` or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `$REGISTRY_AUTH_FILE` (nothing if unset).
    RegistryAuthFile,
    /// `$XDG_RUNTIME_DIR/containers/auth.json` (nothing if unset), where `podman login`
    /// writes.
    XdgRuntime,
    /// `$XDG_CONFIG_HOME/containers/auth.json`, else `~/.config/containers/auth.json`.
    XdgConfig,
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    Docker,
    /// This file (Podman `auth.json` or Docker `config.json`: the format is the same).
    Path(PathBuf),
}

impl CredentialSource {
    /// The order Podman documents (`containers-auth.json(5)`): `$REGISTRY_AUTH_FILE`, the
    /// runtime directory's `auth.json`, the config directory's, then Docker's `config.json`.
    pub const PODMAN_ORDER: [CredentialSource; 4] = [
        CredentialSource::RegistryAuthFile,
        CredentialSource::XdgRuntime,
        CredentialSource::XdgConfig,
        CredentialSource::Docker,
    ];

    /// The name of a named place, as data.
    fn name(&self) -> Option<&'static str> {
        Some(match self {
            CredentialSource::RegistryAuthFile => "registryAuthFile",
            CredentialSource::XdgRuntime => "xdgRuntime",
            CredentialSource::XdgConfig => "xdgConfig",
            CredentialSource::Docker => "docker",
            CredentialSource::Path(_) => return None,
        })
    }

    /// The file this source names, from the environment now (`None`: the variable it needs
    /// is unset).
    pub fn path(&self) -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        match self {
            CredentialSource::RegistryAuthFile => var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            CredentialSource::XdgRuntime => {
                var("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("containers/auth.json"))
            }
            CredentialSource::XdgConfig => var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
                .map(|d| d.join("containers/auth.json")),
            CredentialSource::Docker => crate::auth::DockerConfig::default_path(),
            CredentialSource::Path(p) => Some(p.clone()),
        }
    }
}

impl serde::Serialize for CredentialSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.name(), self) {
            (Some(name), _) => s.serialize_str(name),
            (None, CredentialSource::Path(p)) => p.serialize(s),
            (None, _) => Err(serde::ser::Error::custom("unnamed credential source")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for CredentialSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let named = CredentialSource::PODMAN_ORDER
            .into_iter()
            .find(|c| c.name() == Some(text.as_str()));
        match named {
            Some(c) => Ok(c),
            None if text.contains('/') => Ok(CredentialSource::Path(text.into())),
            None => Err(serde::de::Error::custom(format!(
                "unknown credential source {text:?}: expected \"registryAuthFile\", \
                 \"xdgRuntime\", \"xdgConfig\", \"docker\" or a path"
            ))),
        }
    }
}

impl RegistryConfig {
    /// The credential files to read, in order: [`credential_sources`](Self::credential_sources)
    /// resolved from the environment now, then [`docker_config`](Self::docker_config)'s file
    /// if it is not already among them.
    pub fn credential_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::new();
        let sources = self
            .credential_sources
            .iter()
            .filter_map(CredentialSource::path);
        for path in sources.chain(self.docker_config.path()) {
            if !files.contains(&path) {
                files.push(path);
            }
        }
        files
    }
}

/// Where Docker `config.json` credentials come from. As data: `false`, `true` or a path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DockerConfigSource {
    /// Do not read a Docker config.
    #[default]
    Off,
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    Default,
    /// This file.
    Path(PathBuf),
}

impl DockerConfigSource {
    /// The file to read, if any.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            DockerConfigSource::Off => None,
            DockerConfigSource::Default => crate::auth::DockerConfig::default_path(),
            DockerConfigSource::Path(p) => Some(p.clone()),
        }
    }
}

impl serde::Serialize for DockerConfigSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DockerConfigSource::Off => s.serialize_bool(false),
            DockerConfigSource::Default => s.serialize_bool(true),
            DockerConfigSource::Path(p) => p.serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for DockerConfigSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(
            untagged,
            expecting = "false, true or the path of a Docker config.json"
        )]
        enum Raw {
            Flag(bool),
            Path(PathBuf),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Flag(false) => DockerConfigSource::Off,
            Raw::Flag(true) => DockerConfigSource::Default,
            Raw::Path(p) => DockerConfigSource::Path(p),
        })
    }
}

/// Optional durations as (fractional) seconds, `null` for none.
pub(crate) mod opt_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Durations as (fractional) seconds.
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let json = serde_json::to_string(&RegistryConfig::default()).unwrap();
        let back = RegistryConfig::from_json(&json).unwrap();
        assert_eq!(back, RegistryConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = RegistryConfig::from_json(r#"{"concurency": 3}"#).unwrap_err();
        assert!(err.to_string().contains("concurency"), "{err}");
    }

    #[test]
    fn merge_keeps_other_settings() {
        let mut c = RegistryConfig {
            concurrency: 9,
            ..Default::default()
        };
        c.merge_json(r#"{"durable": false, "dockerConfig": "/x/config.json"}"#)
            .unwrap();
        assert_eq!(c.concurrency, 9);
        assert!(!c.durable);
        assert_eq!(
            c.docker_config,
            DockerConfigSource::Path("/x/config.json".into())
        );
        assert!(c.merge_json("[1]").is_err());
    }

    #[test]
    fn auth_as_data() {
        let c = RegistryConfig::from_json(
            r#"{"authFor": {"ghcr.io": {"type": "basic", "username": "u", "password": "p"}},
                "auth": {"type": "bearer", "token": "t"}, "connectTimeout": 2.5}"#,
        )
        .unwrap();
        assert_eq!(
            c.auth_for["ghcr.io"],
            RegistryAuth::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        assert!(!format!("{c:?}").contains("\"t\""));
    }

    #[test]
    fn credential_sources_are_names_or_paths() {
        let c = RegistryConfig::from_json(
            r#"{"credentialSources": ["registryAuthFile", "xdgRuntime", "xdgConfig", "docker",
                "/etc/auth.json"]}"#,
        )
        .unwrap();
        let mut want = CredentialSource::PODMAN_ORDER.to_vec();
        want.push(CredentialSource::Path("/etc/auth.json".into()));
        assert_eq!(c.credential_sources, want);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["credentialSources"][0], "registryAuthFile");
        assert_eq!(back["credentialSources"][4], "/etc/auth.json");
        let err = RegistryConfig::from_json(r#"{"credentialSources": ["podman"]}"#).unwrap_err();
        assert!(err.to_string().contains("podman"), "{err}");
    }

    #[test]
    fn docker_config_comes_after_the_sources_once() {
        let c = RegistryConfig::from_json(
            r#"{"credentialSources": ["/a/auth.json", "/b/config.json"],
                "dockerConfig": "/b/config.json"}"#,
        )
        .unwrap();
        assert_eq!(
            c.credential_files(),
            vec![
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/b/config.json")
            ]
        );
        assert!(RegistryConfig::default().credential_files().is_empty());
    }

    #[test]
    fn lock_timeout_is_seconds_or_null() {
        let c = RegistryConfig::from_json(r#"{"lockTimeout": 1.5}"#).unwrap();
        assert_eq!(c.lock_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            RegistryConfig::from_json(r#"{"lockTimeout": null}"#)
                .unwrap()
                .lock_timeout,
            None
        );
        assert!(RegistryConfig::from_json(r#"{"lockTimeout": -1}"#).is_err());
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["lockTimeout"], 1.5);
    }

    #[test]
    fn the_cache_cap_is_bytes_and_its_keep_recent_seconds() {
        let c = RegistryConfig::from_json(r#"{"cacheMaxSize": 1048576, "cacheKeepRecent": 3600}"#)
            .unwrap();
        assert_eq!(c.cache_max_size, Some(1 << 20));
        assert_eq!(c.cache_keep_recent, Some(Duration::from_secs(3600)));
        let off = RegistryConfig::default();
        assert_eq!((off.cache_max_size, off.cache_keep_recent), (None, None));
        assert!(RegistryConfig::from_json(r#"{"cacheMaxSize": -1}"#).is_err());
        assert!(RegistryConfig::from_json(r#"{"cacheMaxSize": "1G"}"#).is_err());
    }

    #[test]
    fn keys_are_camel_case_and_complete() {
        let keys = RegistryConfig::keys();
        assert!(keys.contains(&"insecureRegistries".to_string()));
        assert!(keys.contains(&"maxRetryAfter".to_string()));
        assert!(keys.contains(&"userAgent".to_string()));
        assert!(keys.contains(&"partialMinSize".to_string()));
        assert!(keys.contains(&"lockTimeout".to_string()));
        assert!(keys.contains(&"lowSpeedLimit".to_string()));
        assert!(keys.contains(&"lowSpeedTime".to_string()));
        assert!(keys.contains(&"cacheMaxSize".to_string()));
        assert!(keys.contains(&"cacheKeepRecent".to_string()));
        assert!(keys.contains(&"credentialSources".to_string()));
        for k in ["caDirs", "certsDirs", "registriesConf", "hostsDirs"] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert!(keys.contains(&"deadline".to_string()));
        assert!(keys.contains(&"proxy".to_string()));
        for k in ["rangeChunkSize", "rangeConnections", "maxConnections"] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert_eq!(keys.len(), 31);
    }
}
