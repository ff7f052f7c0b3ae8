//! Credential files in the format Docker's `config.json` and Podman's `auth.json` share:
//! `auths` entries (base64 `user:password`, or separate fields, or a registry token) and
//! credential helpers (`credHelpers` per host, `credsStore` for all), run as
//! `docker-credential-<name> get` with the server on stdin, as the Docker CLI does.
//!
//! Keys are matched as Podman and Docker match them: an `auths` key without a scheme may name a
//! namespace (`registry.example.com/team/app`, `registry.example.com/team`), tried most
//! specific first, then the host; a key written with a scheme (`https://host`, Docker's
//! `https://index.docker.io/v1/`) names its host only; `index.docker.io` and
//! `registry-1.docker.io` are `docker.io`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use super::RegistryAuth;

/// A parsed Docker client config file (or Podman `auth.json`: the same format).
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys and helper names only: entries hold secrets.
        let mut keys: Vec<&String> = self.auths.keys().collect();
        keys.sort();
        f.debug_struct("DockerConfig")
            .field("auths", &keys)
            .field("cred_helpers", &self.cred_helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

#[derive(Default, serde::Deserialize)]
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

    /// Read and parse a config file. A parse error names the line and column only: serde's
    /// messages may quote the file's values, which are secrets.
    pub fn load(path: &Path) -> std::io::Result<DockerConfig> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not a credential file ({:?} error at line {} column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// The credential helper named for `registry` (`credHelpers`, else `credsStore`).
    pub(super) fn helper_for(&self, registry: &str) -> Option<&str> {
        server_keys(&normalize_host(registry))
            .iter()
            .find_map(|k| self.cred_helpers.get(k))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// Credentials for a registry host, if the config has any.
    pub fn credentials_for(&self, registry: &str) -> Option<RegistryAuth> {
        self.credentials_for_repository(registry, "")
    }

    /// Credentials for `repository` (`team/app`, empty for the whole registry) on `registry`
    /// (`docker.io`, `localhost:5000`), if the config has any: a credential helper named for
    /// the host, else the most specific `auths` entry (`host/team/app`, `host/team`, `host`),
    /// else the `credsStore` helper.
    pub fn credentials_for_repository(
        &self,
        registry: &str,
        repository: &str,
    ) -> Option<RegistryAuth> {
        let keys = server_keys(registry);
        for key in &keys {
            if let Some(helper) = self.cred_helpers.get(key) {
                return run_helper(helper, key);
            }
        }
        let host = normalize_host(registry);
        let mut wanted: Vec<String> = Vec::new();
        let mut scope = format!("{host}/{}", repository.trim_matches('/'));
        while let Some((parent, _)) = scope.rsplit_once('/') {
            wanted.push(scope.trim_end_matches('/').to_owned());
            scope = parent.to_owned();
        }
        wanted.push(host);
        wanted.dedup();
        for want in &wanted {
            // Several spellings may name the same place; take them in a stable order.
            let mut hits: Vec<(&String, &AuthEntry)> = self
                .auths
                .iter()
                .filter(|(k, _)| &normalize_key(k) == want)
                .collect();
            hits.sort_by(|a, b| a.0.cmp(b.0));
            if let Some(a) = hits.iter().find_map(|(_, e)| e.to_auth()) {
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
        let (user, pass) = match (&self.username, &self.password, &self.auth) {
            (Some(u), Some(p), _) => (Some(u.clone()), Some(p.clone())),
            (_, _, Some(encoded)) => match decode_auth(encoded) {
                Some((u, p)) => (Some(u), Some(p)),
                None => (None, None),
            },
            (u, _, None) => (u.clone(), None),
        };
        // An identity token wins over a password (Docker stores it beside the user name).
        if let Some(token) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Some(RegistryAuth::IdentityToken {
                username: user.unwrap_or_default(),
                token: token.clone(),
            });
        }
        Some(RegistryAuth::Basic {
            username: user?,
            password: pass?,
        })
    }
}

/// `user:password` from a base64 `auth` value.
fn decode_auth(encoded: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// The names a registry may be filed under in config.json.
pub(super) fn server_keys(registry: &str) -> Vec<String> {
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

/// `docker.io` for the names Docker Hub goes by, else the host as given.
fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

/// What an `auths` key names, as `host[/namespace…]`: a key with a scheme is a URL whose host
/// alone counts (Docker's legacy form); a key without one may carry a namespace.
pub(super) fn normalize_key(key: &str) -> String {
    let (rest, url) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(rest) => (rest, true),
        None => (key, false),
    };
    let rest = if url {
        rest.split('/').next().unwrap_or(rest)
    } else {
        rest.trim_end_matches('/')
    };
    match rest.split_once('/') {
        // `index.docker.io/v1/` written without its scheme is still Docker Hub's legacy key.
        Some(("index.docker.io", "v1")) => "docker.io".to_owned(),
        Some((host, path)) => format!("{}/{path}", normalize_host(host)),
        None => normalize_host(rest),
    }
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
        // Docker's helpers file an identity token under this user name.
        return Some(RegistryAuth::IdentityToken {
            username: String::new(),
            token: answer.secret,
        });
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

    fn basic(u: &str, p: &str) -> Option<RegistryAuth> {
        Some(RegistryAuth::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn namespace_keys_most_specific_first_then_the_host() {
        let cfg: DockerConfig = serde_json::from_str(
            r#"{"auths":{"r.example/team/app":{"username":"app","password":"1"},
                         "r.example/team":{"username":"team","password":"2"},
                         "https://r.example/ignored/path":{"username":"host","password":"3"}}}"#,
        )
        .unwrap();
        let at = |repo| cfg.credentials_for_repository("r.example", repo);
        assert_eq!(at("team/app"), basic("app", "1"));
        assert_eq!(at("team/app2"), basic("team", "2"));
        assert_eq!(at("team/sub/x"), basic("team", "2"));
        assert_eq!(at("teamx/app"), basic("host", "3"));
        assert_eq!(at(""), basic("host", "3"));
        assert_eq!(cfg.credentials_for("r.example"), basic("host", "3"));
    }

    #[test]
    fn docker_hub_keys_are_one_registry() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io/v1/",
            "index.docker.io",
            "registry-1.docker.io",
            "docker.io",
        ] {
            let cfg: DockerConfig = serde_json::from_str(&format!(
                r#"{{"auths":{{"{key}":{{"username":"u","password":"p"}}}}}}"#
            ))
            .unwrap();
            assert_eq!(
                cfg.credentials_for_repository("docker.io", "library/alpine"),
                basic("u", "p"),
                "{key}"
            );
        }
        let cfg: DockerConfig = serde_json::from_str(
            r#"{"auths":{"docker.io/library":{"username":"lib","password":"p"}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.credentials_for_repository("docker.io", "library/alpine"),
            basic("lib", "p")
        );
        assert_eq!(cfg.credentials_for_repository("docker.io", "me/app"), None);
    }

    #[test]
    fn parse_errors_and_debug_show_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, r#"{"auths":{"h":{"password":12345678}}}"#).unwrap();
        let err = DockerConfig::load(&path).unwrap_err();
        assert!(!err.to_string().contains("12345678"), "{err}");
        let cfg: DockerConfig =
            serde_json::from_str(r#"{"auths":{"h":{"username":"u","password":"hunter2"}}}"#)
                .unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn identity_tokens_win_over_passwords_and_keep_the_user() {
        let cfg: DockerConfig = serde_json::from_str(
            r#"{"auths":{"a.example":{"auth":"Ym9iOg==","identitytoken":"idt"},
                         "b.example":{"username":"u","password":"p","identitytoken":"idt2"},
                         "c.example":{"identitytoken":"idt3"},
                         "d.example":{"username":"u","password":"p","identitytoken":""}}}"#,
        )
        .unwrap();
        let idt = |u: &str, t: &str| {
            Some(RegistryAuth::IdentityToken {
                username: u.into(),
                token: t.into(),
            })
        };
        assert_eq!(cfg.credentials_for("a.example"), idt("bob", "idt"));
        assert_eq!(cfg.credentials_for("b.example"), idt("u", "idt2"));
        assert_eq!(cfg.credentials_for("c.example"), idt("", "idt3"));
        assert_eq!(cfg.credentials_for("d.example"), basic("u", "p"));
        let shown = format!("{:?}", cfg.credentials_for("b.example"));
        assert!(!shown.contains("idt2"), "{shown}");
    }

    #[test]
    fn helpers_per_host_then_the_store() {
        let cfg: DockerConfig = serde_json::from_str(
            r#"{"credHelpers":{"a.example":"one","https://index.docker.io/v1/":"hub"},
                "credsStore":"all"}"#,
        )
        .unwrap();
        assert_eq!(cfg.helper_for("a.example"), Some("one"));
        assert_eq!(cfg.helper_for("docker.io"), Some("hub"));
        assert_eq!(cfg.helper_for("index.docker.io"), Some("hub"));
        assert_eq!(cfg.helper_for("b.example"), Some("all"));
        assert_eq!(DockerConfig::default().helper_for("a.example"), None);
    }

    #[test]
    fn missing_helper_means_no_credentials() {
        let cfg: DockerConfig =
            serde_json::from_str(r#"{"credHelpers":{"example.test":"msb-does-not-exist"}}"#)
                .unwrap();
        assert_eq!(cfg.credentials_for("example.test"), None);
    }
}
