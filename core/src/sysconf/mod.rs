//! Configuration files other tools keep, read when the settings name them: containers'
//! `registries.conf` (`registries_conf.rs`), containerd's `hosts.toml` directories
//! (`hosts_toml.rs`), and our own `config.toml` (`config_toml.rs`). The library reads none
//! unless [`RegistryConfig`] lists them (`registriesConf`, `hostsDirs`, `certsDirs`); the CLI
//! turns on the default places ([`RegistryConfig::with_system_files`]).
//!
//! A malformed file is an error naming the file and the line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::client::routes::Route;
use crate::client::tls::HostTls;
use crate::error::Error;
use crate::settings::RegistryConfig;

mod config_toml;
mod hosts_toml;
mod registries_conf;

pub use config_toml::default_config_path;

/// What the configuration files say, ready for the client.
#[derive(Debug, Default)]
pub(crate) struct FileRoutes {
    /// Routes, `registries.conf`'s first (they win over `hosts.toml`'s of equal prefix).
    pub routes: Vec<Route>,
    /// Hosts allowed plain HTTP and unverified TLS.
    pub insecure_hosts: Vec<String>,
    /// TLS per `host[:port]`.
    pub host_tls: HashMap<String, HostTls>,
}

/// Reads the files `config` names.
pub(crate) fn load(config: &RegistryConfig) -> Result<FileRoutes, Error> {
    let mut out = FileRoutes::default();
    if let Some(path) = config.registries_conf.iter().find(|p| p.is_file()) {
        registries_conf::load(path, &mut out)?;
    }
    hosts_toml::load(&config.hosts_dirs, &mut out)?;
    Ok(out)
}

/// A file's text, or an error naming it.
fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))
}

/// A TOML parse or shape error, naming the file (the message names the line).
fn toml_error(path: &Path, e: toml::de::Error) -> Error {
    Error::InvalidArgument(format!("{}: {}", path.display(), e.to_string().trim_end()))
}

/// The `host[:port]` to connect to for a `location` (`host[:port][/namespace]`), checking
/// that it makes an image name; `docker.io` is Docker Hub's API host.
fn location_host(file: &Path, location: &str) -> Result<String, Error> {
    let r: crate::Reference = format!("{}/x:latest", location.trim_end_matches('/'))
        .parse()
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "{}: location {location:?} is not a registry host[/namespace]: {e}",
                file.display()
            ))
        })?;
    let first = location.split('/').next().unwrap_or("");
    let hub = r.registry() == "docker.io" && first.ends_with("docker.io");
    if r.registry() != first && !hub {
        return Err(Error::InvalidArgument(format!(
            "{}: location {location:?} does not start with a registry host (one with a dot, a \
             port, or localhost)",
            file.display()
        )));
    }
    Ok(r.api_host().to_owned())
}

/// The directories of the default places, existing or not.
pub(crate) fn home_config_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
}
