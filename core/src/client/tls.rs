//! TLS per host: which CA certificates a host is trusted with beyond the system's and the
//! settings' (`caFiles`, `caDirs`), which client certificate it is shown, whether its
//! certificate is checked at all; read from Docker/containers `certs.d` directories and
//! containerd `hosts.toml` files; and the reqwest client for each host with TLS of its own
//! (a reqwest client carries one identity), built on first use and kept.
//!
//! The system's trust store is rustls-native-certs' (through rustls-platform-verifier), which
//! honours `SSL_CERT_FILE` and `SSL_CERT_DIR` as OpenSSL does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::RegistryError;

/// The TLS of one host beyond the global settings.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct HostTls {
    /// CA certificates (PEM) trusted for this host, besides the system's and the global ones.
    pub ca_pem: Vec<u8>,
    /// The client certificate chain and its key (PEM), and the file(s) they came from.
    pub identity: Option<(Vec<u8>, String)>,
    /// Accept any server certificate (containerd's `skip_verify`).
    pub skip_verify: bool,
}

impl std::fmt::Debug for HostTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("HostTls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("identity", &self.identity.as_ref().map(|(_, from)| from))
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl HostTls {
    /// Whether this adds nothing to the global settings.
    pub fn is_empty(&self) -> bool {
        self.ca_pem.is_empty() && self.identity.is_none() && !self.skip_verify
    }

    /// Adds `other`'s CAs; takes its identity if this has none; skips verification if
    /// either does.
    pub fn merge(&mut self, other: HostTls) {
        self.ca_pem.extend_from_slice(&other.ca_pem);
        if self.identity.is_none() {
            self.identity = other.identity;
        }
        self.skip_verify |= other.skip_verify;
    }

    /// Adds the CA certificates of the PEM file at `path`.
    pub fn add_ca_file(&mut self, path: &Path) -> Result<(), RegistryError> {
        let pem = read(path)?;
        self.ca_pem.extend_from_slice(&pem);
        self.ca_pem.push(b'\n');
        Ok(())
    }

    /// Uses the certificate in `cert` and the key in `key` (which may be the same file) as
    /// the client identity, unless one is already set.
    pub fn set_identity(&mut self, cert: &Path, key: &Path) -> Result<(), RegistryError> {
        if self.identity.is_some() {
            return Ok(());
        }
        let mut pem = read(cert)?;
        let from = if cert == key {
            cert.display().to_string()
        } else {
            pem.push(b'\n');
            pem.extend_from_slice(&read(key)?);
            format!("{} + {}", cert.display(), key.display())
        };
        self.identity = Some((pem, from));
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path)
        .map_err(|e| RegistryError::TlsConfig(format!("cannot read {}: {e}", path.display())))
}

/// The PEM files (`*.crt`, `*.pem`, `*.cer`) of a `caDirs` directory, in name order.
pub(crate) fn ca_dir_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            RegistryError::TlsConfig(format!("cannot read CA directory {}: {e}", dir.display()))
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "crt" || x == "pem" || x == "cer")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What the `certs.d` directories say of `host` (`host[:port]`), as Docker documents them:
/// in `<dir>/<host>/`, every `*.crt` is a CA to trust and a `*.cert` with its `*.key` (same
/// stem) is the client identity. Directories are read in order; CAs add up, the first
/// identity wins. A `.cert` without its `.key` (or the reverse) is an error naming it.
pub(crate) fn from_certs_dirs(dirs: &[PathBuf], host: &str) -> Result<HostTls, RegistryError> {
    let mut tls = HostTls::default();
    for root in dirs {
        let dir = root.join(host);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in &files {
            match file.extension().and_then(|x| x.to_str()) {
                Some("crt") => tls.add_ca_file(file)?,
                Some("cert") => {
                    let key = file.with_extension("key");
                    if !key.is_file() {
                        return Err(RegistryError::TlsConfig(format!(
                            "{}: client certificate without its key {}",
                            file.display(),
                            key.display()
                        )));
                    }
                    tls.set_identity(file, &key)?;
                }
                Some("key") if !file.with_extension("cert").is_file() => {
                    return Err(RegistryError::TlsConfig(format!(
                        "{}: client key without its certificate {}",
                        file.display(),
                        file.with_extension("cert").display()
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(tls)
}

/// The reqwest clients of hosts with TLS of their own, built on first use.
#[derive(Default)]
pub(crate) struct HostClients {
    /// `None`: the host has nothing of its own (the shared verified client serves it).
    clients: Mutex<HashMap<String, Option<reqwest::Client>>>,
}

impl HostClients {
    /// The client for `host`, if it has TLS of its own: `configured` (from `hosts.toml`)
    /// merged with what `certs_dirs` hold for it, trusting `roots` (the global extra CAs)
    /// too. `base` is the builder every client starts from.
    pub fn get(
        &self,
        host: &str,
        configured: Option<&HostTls>,
        certs_dirs: &[PathBuf],
        roots: &[reqwest::Certificate],
        base: impl FnOnce() -> reqwest::ClientBuilder,
    ) -> Result<Option<reqwest::Client>, RegistryError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let mut tls = from_certs_dirs(certs_dirs, host)?;
        if let Some(c) = configured {
            tls.merge(c.clone());
        }
        let client = if tls.is_empty() {
            None
        } else {
            Some(build(base(), roots, &tls, host)?)
        };
        clients.insert(host.to_owned(), client.clone());
        Ok(client)
    }
}

/// A client from `base` trusting `roots` and `tls`'s CAs, presenting its identity.
fn build(
    mut b: reqwest::ClientBuilder,
    roots: &[reqwest::Certificate],
    tls: &HostTls,
    host: &str,
) -> Result<reqwest::Client, RegistryError> {
    let bad = |what: &str, e: reqwest::Error| {
        RegistryError::TlsConfig(format!("{host}: invalid {what}: {e}"))
    };
    let mut certs = roots.to_vec();
    if !tls.ca_pem.is_empty() {
        certs.extend(reqwest::Certificate::from_pem_bundle(&tls.ca_pem).map_err(|e| bad("CA", e))?);
    }
    if !certs.is_empty() {
        b = b.tls_certs_merge(certs);
    }
    if let Some((pem, from)) = &tls.identity {
        let id = reqwest::Identity::from_pem(pem).map_err(|e| {
            RegistryError::TlsConfig(format!("{host}: invalid client certificate {from}: {e}"))
        })?;
        b = b.identity(id);
    }
    if tls.skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build()
        .map_err(|e| RegistryError::TlsConfig(format!("{host}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_dirs_need_key_and_cert_pairs() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("reg:5000");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "CA").unwrap();
        std::fs::write(host.join("client.cert"), "CERT").unwrap();
        let err = from_certs_dirs(&[d.path().to_owned()], "reg:5000").unwrap_err();
        assert!(err.to_string().contains("client.key"), "{err}");
        std::fs::write(host.join("client.key"), "KEY").unwrap();
        let tls = from_certs_dirs(&[d.path().to_owned()], "reg:5000").unwrap();
        assert_eq!(tls.ca_pem, b"CA\n");
        let (pem, from) = tls.identity.clone().unwrap();
        assert_eq!(pem, b"CERT\nKEY");
        assert!(from.contains("client.cert"));
        assert!(!format!("{tls:?}").contains("KEY"));
        assert!(
            from_certs_dirs(&[d.path().to_owned()], "other")
                .unwrap()
                .is_empty()
        );
        std::fs::remove_file(host.join("client.cert")).unwrap();
        let err = from_certs_dirs(&[d.path().to_owned()], "reg:5000").unwrap_err();
        assert!(err.to_string().contains("without its certificate"), "{err}");
    }
}
