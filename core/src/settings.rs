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
    /// Hosts (`host[:port]`, or a URL) allowed plain HTTP and unverified TLS. Loopback hosts
    /// may always fall back to plain HTTP.
    pub insecure_registries: Vec<String>,
    /// PEM files of CA certificates to trust besides the system's.
    pub ca_files: Vec<PathBuf>,
    /// Registry (`"docker.io"`) → mirrors (`host[:port]` or `http(s)://host[:port]`) tried
    /// before it, in order; the registry comes last. A mirror given as `http://…` is allowed
    /// plain HTTP.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// How many layers download and extract at once (at least 1).
    pub concurrency: usize,
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
    /// Limits applied to every layer (entries, bytes, file size, path depth and length).
    pub limits: ExtractLimits,
    /// Longest wait, in seconds, for a layer that another pull (this process or another)
    /// is building before this pull fails with `LOCK_TIMEOUT`; `null` (the default) waits as
    /// long as it takes. The wait is shown by a `layerWaiting` progress event either way.
    #[serde(with = "opt_seconds")]
    pub lock_timeout: Option<Duration>,
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
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
            mirrors: BTreeMap::new(),
            concurrency: 4,
            durable: true,
            partial_min_size: Some(DEFAULT_PARTIAL_MIN_SIZE),
            max_retries: 4,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(60),
            user_agent: default_user_agent(),
            limits: ExtractLimits::default(),
            lock_timeout: None,
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

/// `msbimage/<version>`, the default [`RegistryConfig::user_agent`].
pub fn default_user_agent() -> String {
    concat!("msbimage/", env!("CARGO_PKG_VERSION")).to_owned()
}

impl RegistryConfig {
    /// Reads settings from JSON, on top of the defaults. Unknown keys are an error naming
    /// them.
    pub fn from_json(json: &str) -> Result<RegistryConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Applies the keys of a JSON object onto these settings, leaving the others as they
    /// are (what the C ABI's `msb_registry_builder_set_config_json` does).
    pub fn merge_json(&mut self, json: &str) -> Result<(), serde_json::Error> {
        let patch: serde_json::Value = serde_json::from_str(json)?;
        let mut base = serde_json::to_value(&*self)?;
        match (base.as_object_mut(), patch) {
            (Some(base), serde_json::Value::Object(patch)) => base.extend(patch),
            _ => {
                return Err(serde::de::Error::custom(
                    "registry settings must be a JSON object",
                ));
            }
        }
        *self = serde_json::from_value(base)?;
        Ok(())
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
        assert_eq!(keys.len(), 20);
    }
}
