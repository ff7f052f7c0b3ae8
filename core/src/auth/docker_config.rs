//! Docker's `config.json`: `auths` entries (base64 `user:password`, or separate fields) and
//! credential helpers (`credHelpers` per host, `credsStore` for all), run as
//! `docker-credential-<name> get` with the server on stdin, as the Docker CLI does.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::RegistryAuth;

/// A parsed Docker client config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl DockerConfig {
    /// The default location: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
    }

    /// Read and parse a config file.
    pub fn load(path: &Path) -> std::io::Result<DockerConfig> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Credentials for a registry host, if the config has any.
    pub fn credentials_for(&self, registry: &str) -> Option<RegistryAuth> {
        let keys = server_keys(registry);
        for key in &keys {
            if let Some(helper) = self.cred_helpers.get(key) {
                return run_helper(helper, key);
            }
        }
        for (k, entry) in &self.auths {
            if keys.iter().any(|key| key == &strip_scheme(k))
                && let Some(a) = entry.to_auth()
            {
                return Some(a);
            }
        }
        let store = self.creds_store.as_ref()?;
        keys.iter().find_map(|k| run_helper(store, k))
    }
}

impl AuthEntry {
    fn to_auth(&self) -> Option<RegistryAuth> {
        if let Some(token) = self.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Some(RegistryAuth::Bearer {
                token: token.clone(),
            });
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Some(RegistryAuth::Basic {
                username: u.clone(),
                password: p.clone(),
            });
        }
        if let Some(encoded) = &self.auth {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some(RegistryAuth::Basic {
                username: u.to_owned(),
                password: p.to_owned(),
            });
        }
        // An identity token alone is an OAuth refresh token, which needs the
        // token endpoint's POST flow; we do not implement that flow.
        let _ = &self.identitytoken;
        None
    }
}

/// The names a registry may be filed under in config.json.
fn server_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".to_owned(),
            "index.docker.io/v1/".to_owned(),
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
            "registry-1.docker.io".to_owned(),
        ]
    } else {
        vec![registry.to_owned()]
    }
}

fn strip_scheme(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    if k.starts_with("index.docker.io/v1") {
        return key.to_owned();
    }
    k.trim_end_matches('/').to_owned()
}

fn run_helper(helper: &str, server: &str) -> Option<RegistryAuth> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).ok()?;
    if answer.username == "<token>" {
        return None; // identity token: see AuthEntry::to_auth
    }
    Some(RegistryAuth::Basic {
        username: answer.username,
        password: answer.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inline_auths_for_docker_hub_and_private_hosts() {
        let cfg: DockerConfig = serde_json::from_str(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                         "localhost:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.credentials_for("docker.io"),
            Some(RegistryAuth::Basic {
                username: "user".into(),
                password: "pass".into()
            })
        );
        assert_eq!(
            cfg.credentials_for("localhost:5000"),
            Some(RegistryAuth::Basic {
                username: "a".into(),
                password: "b".into()
            })
        );
        assert_eq!(cfg.credentials_for("ghcr.io"), None);
    }

    #[test]
    fn missing_helper_means_no_credentials() {
        let cfg: DockerConfig =
            serde_json::from_str(r#"{"credHelpers":{"example.test":"msb-does-not-exist"}}"#)
                .unwrap();
        assert_eq!(cfg.credentials_for("example.test"), None);
    }
}
