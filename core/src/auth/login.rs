//! Logging in and out as `podman login` and `docker login` do: the credentials are checked
//! against the registry first (`GET /v2/` with the challenge dance), then kept where the next
//! pull finds them — a credential helper when the credential file or Docker's `config.json`
//! names one for the registry (`docker-credential-<name> store`, JSON on stdin), else Podman's
//! `auth.json` (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`), written
//! whole to a temporary file (mode 0600) renamed over the old one, with every other entry and
//! key kept. Logging out removes the entry (or every entry) and erases it from the helper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use super::docker_config::{DockerConfig, normalize_key};
use super::{AuthStore, RegistryAuth};
use crate::client::RegistryClient;
use crate::error::Error;
use crate::settings::{CredentialSource, RegistryConfig};

/// Where [`login`] keeps credentials and [`logout`] removes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialTarget {
    /// The `auth.json` written (Podman's format, which Docker's `config.json` shares).
    pub auth_file: PathBuf,
    /// A Docker `config.json` whose `credHelpers` / `credsStore` also count (after the auth
    /// file's own): a helper named there stores the credentials instead of the file.
    pub docker_config: Option<PathBuf>,
}

impl CredentialTarget {
    /// Podman's place: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// with Docker's `config.json` consulted for credential helpers. `None` when neither
    /// variable is set.
    pub fn podman_default() -> Option<CredentialTarget> {
        let auth_file = CredentialSource::RegistryAuthFile
            .path()
            .or_else(|| CredentialSource::XdgRuntime.path())?;
        Some(CredentialTarget {
            auth_file,
            docker_config: CredentialSource::Docker.path(),
        })
    }

    /// Exactly this file (its own helpers only), as `--authfile` names it.
    pub fn file(path: impl Into<PathBuf>) -> CredentialTarget {
        CredentialTarget {
            auth_file: path.into(),
            docker_config: None,
        }
    }

    /// The credential helper configured for `key`'s host, if any.
    fn helper_for(&self, key: &str) -> Result<Option<String>, Error> {
        let host = key.split('/').next().unwrap_or(key);
        let mut files = vec![self.auth_file.as_path()];
        files.extend(self.docker_config.as_deref());
        for path in files {
            match DockerConfig::load(path) {
                Ok(cfg) => {
                    if let Some(h) = cfg.helper_for(host) {
                        return Ok(Some(h.to_owned()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(store_error(path, e)),
            }
        }
        Ok(None)
    }
}

/// Where [`login`] put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredIn {
    /// An entry of this `auth.json`.
    File(PathBuf),
    /// This credential helper (`docker-credential-<name>`).
    Helper(String),
}

/// The `auths` key for what the user typed: no scheme, no trailing `/`, Docker Hub's names as
/// `docker.io`; a namespace (`host/team`) is kept, as Podman keeps it.
pub fn auth_key(registry: &str) -> Result<String, Error> {
    let key = normalize_key(registry.trim());
    let host = key.split('/').next().unwrap_or_default();
    if host.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "not a registry name: {registry:?}"
        )));
    }
    Ok(key)
}

/// Check `username`/`password` against `registry` (a host, `host/namespace`, or a URL) with
/// the network settings of `config` (insecure hosts, CA files, …; its credentials are not
/// used), then keep them in `target`. Nothing is written when the registry refuses them.
pub async fn login(
    config: &RegistryConfig,
    registry: &str,
    username: &str,
    password: &str,
    target: &CredentialTarget,
) -> Result<StoredIn, Error> {
    let key = auth_key(registry)?;
    let host = key.split('/').next().unwrap_or(&key).to_owned();
    let auth = RegistryAuth::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let options = crate::registry::client_options(config)?;
    let store = AuthStore::new(
        RegistryAuth::Anonymous,
        [(host.clone(), auth)].into_iter().collect(),
        Vec::new(),
    );
    let client =
        RegistryClient::new(options, store).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    client.ping(&host).await.map_err(|e| Error::Registry {
        reference: key.clone(),
        source: Box::new(e),
    })?;
    let target = target.clone();
    let (user, pass) = (username.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || store_credentials(&target, &key, &user, &pass))
        .await
        .map_err(|e| Error::Internal(format!("login task: {e}")))?
}

fn store_credentials(
    target: &CredentialTarget,
    key: &str,
    username: &str,
    password: &str,
) -> Result<StoredIn, Error> {
    if let Some(helper) = target.helper_for(key)? {
        let body = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        run_helper(&helper, "store", body.to_string().as_bytes())?;
        return Ok(StoredIn::Helper(helper));
    }
    let path = &target.auth_file;
    let mut doc = read_doc(path)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    auths_of(&mut doc, path)?.insert(key.to_owned(), serde_json::json!({ "auth": b64 }));
    write_doc(path, &doc)?;
    Ok(StoredIn::File(path.clone()))
}

/// Remove the credentials for `registry` from `target` (its `auths` entries under any
/// spelling of the key, and the helper's); whether there were any.
pub fn logout(registry: &str, target: &CredentialTarget) -> Result<bool, Error> {
    let key = auth_key(registry)?;
    let mut removed = false;
    if let Some(helper) = target.helper_for(&key)? {
        removed |= run_helper(&helper, "erase", key.as_bytes()).is_ok();
    }
    let path = &target.auth_file;
    let mut doc = match read_existing(path)? {
        Some(doc) => doc,
        None => return Ok(removed),
    };
    let auths = auths_of(&mut doc, path)?;
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != key);
    if auths.len() != before {
        write_doc(path, &doc)?;
        removed = true;
    }
    Ok(removed)
}

/// Remove every `auths` entry of `target`'s file (other keys, such as `credHelpers`, stay);
/// how many there were.
pub fn logout_all(target: &CredentialTarget) -> Result<usize, Error> {
    let path = &target.auth_file;
    let Some(mut doc) = read_existing(path)? else {
        return Ok(0);
    };
    let auths = auths_of(&mut doc, path)?;
    let n = auths.len();
    auths.clear();
    if n > 0 {
        write_doc(path, &doc)?;
    }
    Ok(n)
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::CredentialStore {
        store: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// The file's JSON object, `None` when it does not exist.
fn read_existing(path: &Path) -> Result<Option<Value>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_error(path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Value::Object(Map::new())));
    }
    // serde's messages may quote the file's values (secrets): position only.
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
        store_error(
            path,
            format!(
                "not a credential file (error at line {} column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if !doc.is_object() {
        return Err(store_error(
            path,
            "not a credential file (not a JSON object)",
        ));
    }
    Ok(Some(doc))
}

fn read_doc(path: &Path) -> Result<Value, Error> {
    Ok(read_existing(path)?.unwrap_or_else(|| Value::Object(Map::new())))
}

/// The `auths` object of `doc`, created if missing.
fn auths_of<'a>(doc: &'a mut Value, path: &Path) -> Result<&'a mut Map<String, Value>, Error> {
    let Some(obj) = doc.as_object_mut() else {
        return Err(store_error(
            path,
            "not a credential file (not a JSON object)",
        ));
    };
    obj.entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| store_error(path, "not a credential file (`auths` is not an object)"))
}

/// Write `doc` to `path` atomically: a new file (mode 0600) in the same directory, synced,
/// renamed over `path`. The directory is made (mode 0700) if missing.
fn write_doc(path: &Path, doc: &Value) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| store_error(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "auth.json".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut text = serde_json::to_vec_pretty(doc).map_err(|e| store_error(path, e))?;
    text.push(b'\n');
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(store_error(path, e));
    }
    Ok(())
}

/// Run `docker-credential-<helper> <action>` with `input` on stdin. Its output is never
/// shown (a helper may echo secrets): a failure names the helper and its exit status.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(), Error> {
    let program = format!("docker-credential-{helper}");
    let fail = |detail: String| Error::CredentialStore {
        store: program.clone(),
        detail,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("{action}: {e}")))?;
    }
    let status = child.wait().map_err(|e| fail(format!("{action}: {e}")))?;
    if !status.success() {
        return Err(fail(format!("{action} failed ({status})")));
    }
    Ok(())
}
