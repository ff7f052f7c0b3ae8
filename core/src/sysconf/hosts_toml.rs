//! containerd's registry hosts directories (`/etc/containerd/certs.d`): one directory per
//! registry (`docker.io`, `localhost:5000`, or `_default` for the others) holding a
//! `hosts.toml`:
//!
//! ```toml
//! server = "https://registry.example"        # the registry itself (default https://<dir>)
//!
//! [host."https://mirror.example:5000"]       # tried first, in file order
//!   capabilities = ["pull", "resolve"]       # resolve: tags; pull: manifests by digest, blobs
//!   ca = "/etc/certs/mirror.pem"             # or a list; relative to this directory
//!   client = [["/etc/certs/client.cert", "/etc/certs/client.key"]]  # or "cert+key.pem"
//!   skip_verify = false
//! ```
//!
//! `server`'s own `capabilities`, `ca`, `client` and `skip_verify` are top-level keys. An
//! `http://` host is allowed plain HTTP. Only the first client pair is used (one identity
//! per host); a pair whose key is `""` has its key in the certificate file. Host URLs may end
//! in `/v2` but carry no other path (`override_path` is refused); `header` tables are ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FileRoutes, read_text, toml_error};
use crate::client::routes::{DEFAULT_PREFIX, Place, Route};
use crate::client::tls::HostTls;
use crate::error::Error;

/// The settings a host (or the server, at the top level) may have.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostKeys {
    capabilities: Option<Vec<Capability>>,
    ca: Option<OneOrMany>,
    client: Option<Client>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    override_path: bool,
    #[serde(default)]
    header: toml::Table,
}

/// A `hosts.toml`: [`HostKeys`] for the server at the top level, plus `server` and `host`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: Option<String>,
    capabilities: Option<Vec<Capability>>,
    ca: Option<OneOrMany>,
    client: Option<Client>,
    #[serde(default)]
    skip_verify: bool,
    #[serde(default)]
    override_path: bool,
    #[serde(default)]
    header: toml::Table,
    #[serde(default, deserialize_with = "in_order")]
    host: Vec<(String, HostKeys)>,
}

impl File {
    /// The server's keys, split from the hosts.
    fn split(self) -> (Option<String>, HostKeys, Vec<(String, HostKeys)>) {
        let top = HostKeys {
            capabilities: self.capabilities,
            ca: self.ca,
            client: self.client,
            skip_verify: self.skip_verify,
            override_path: self.override_path,
            header: self.header,
        };
        (self.server, top, self.host)
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Capability {
    Pull,
    Resolve,
    Push,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a path, a list of paths, or a list of [cert, key] pairs"
)]
enum Client {
    One(String),
    Many(Vec<ClientItem>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ClientItem {
    Path(String),
    Pair([String; 2]),
}

/// The `[host."…"]` tables in file order.
fn in_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, HostKeys)>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<(String, HostKeys)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a table of hosts")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut v = Vec::new();
            while let Some(entry) = m.next_entry()? {
                v.push(entry);
            }
            Ok(v)
        }
    }
    d.deserialize_map(V)
}

/// Reads every `<dir>/<registry>/hosts.toml` of `dirs` into `out` (the first directory with
/// a registry's wins).
pub(super) fn load(dirs: &[PathBuf], out: &mut FileRoutes) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let file = e.path().join("hosts.toml");
                let name = e.file_name().to_str()?.to_owned();
                file.is_file().then_some((name, file))
            })
            .collect();
        files.sort();
        for (registry, file) in files {
            if seen.insert(registry.clone()) {
                let route = parse(&registry, &file, &read_text(&file)?, out)?;
                out.routes.push(route);
            }
        }
    }
    Ok(())
}

/// The route of one `hosts.toml` for `registry`; hosts' TLS and insecure hosts go to `out`.
fn parse(registry: &str, file: &Path, text: &str, out: &mut FileRoutes) -> Result<Route, Error> {
    let parsed: File = toml::from_str(text).map_err(|e| toml_error(file, e))?;
    let (server, top, hosts) = parsed.split();
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut places = Vec::new();
    for (url, keys) in &hosts {
        places.push(place(file, dir, url, keys, out)?);
    }
    let server = match &server {
        Some(url) => place(file, dir, url, &top, out)?,
        None if registry == DEFAULT_PREFIX => Place {
            location: String::new(),
            ..capable(&top)
        },
        None => {
            let url = format!("https://{registry}");
            place(file, dir, &url, &top, out)?
        }
    };
    places.push(server);
    Ok(Route {
        prefix: registry.to_owned(),
        source: file.to_path_buf(),
        blocked: false,
        places,
    })
}

/// A place serving what `keys`' capabilities allow (all by default), location unset.
fn capable(keys: &HostKeys) -> Place {
    let mut p = Place::all("");
    if let Some(caps) = &keys.capabilities {
        p.resolve = caps.contains(&Capability::Resolve);
        p.pull = caps.contains(&Capability::Pull);
    }
    p
}

/// The place of host `url`, recording its TLS in `out`.
fn place(
    file: &Path,
    dir: &Path,
    url: &str,
    keys: &HostKeys,
    out: &mut FileRoutes,
) -> Result<Place, Error> {
    let bad =
        |what: String| Error::InvalidArgument(format!("{}: host {url:?}: {what}", file.display()));
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !matches!(path.trim_end_matches('/'), "" | "v2") {
        return Err(bad("a path other than /v2 is not supported".into()));
    }
    if keys.override_path {
        return Err(bad("override_path is not supported".into()));
    }
    if host.is_empty() {
        return Err(bad("no host".into()));
    }
    let host = super::location_host(file, host)?;
    match scheme {
        "http" => out.insecure_hosts.push(host.clone()),
        "https" => {}
        other => return Err(bad(format!("scheme {other:?} is not http or https"))),
    }
    let _ = &keys.header;
    let mut tls = HostTls {
        skip_verify: keys.skip_verify,
        ..HostTls::default()
    };
    let abs = |p: &str| dir.join(p);
    let tls_err = |e: crate::client::RegistryError| {
        Error::InvalidArgument(format!("{}: {e}", file.display()))
    };
    match &keys.ca {
        Some(OneOrMany::One(p)) => tls.add_ca_file(&abs(p)).map_err(tls_err)?,
        Some(OneOrMany::Many(ps)) => {
            for p in ps {
                tls.add_ca_file(&abs(p)).map_err(tls_err)?;
            }
        }
        None => {}
    }
    let first = match &keys.client {
        Some(Client::One(p)) => Some((p.clone(), String::new())),
        Some(Client::Many(items)) => items.first().map(|i| match i {
            ClientItem::Path(p) => (p.clone(), String::new()),
            ClientItem::Pair([c, k]) => (c.clone(), k.clone()),
        }),
        None => None,
    };
    if let Some((cert, key)) = first {
        let key = if key.is_empty() { cert.clone() } else { key };
        tls.set_identity(&abs(&cert), &abs(&key)).map_err(tls_err)?;
    }
    if !tls.is_empty() {
        out.host_tls.entry(host.clone()).or_default().merge(tls);
    }
    Ok(Place {
        location: host,
        ..capable(keys)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_in_order_then_the_server() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.pem"), "CA").unwrap();
        std::fs::write(d.path().join("c.cert"), "C").unwrap();
        std::fs::write(d.path().join("c.key"), "K").unwrap();
        let file = d.path().join("hosts.toml");
        let mut out = FileRoutes::default();
        let route = parse(
            "docker.io",
            &file,
            r#"
server = "https://registry-1.docker.io"
[host."http://z-mirror.local:5000"]
  capabilities = ["pull"]
[host."https://a-mirror.local/v2"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [["c.cert", "c.key"]]
  skip_verify = true
"#,
            &mut out,
        )
        .unwrap();
        let locs: Vec<&str> = route.places.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locs,
            [
                "z-mirror.local:5000",
                "a-mirror.local",
                "registry-1.docker.io"
            ]
        );
        assert!(route.places[0].pull && !route.places[0].resolve);
        assert!(route.places[1].resolve);
        assert_eq!(out.insecure_hosts, ["z-mirror.local:5000"]);
        let tls = &out.host_tls["a-mirror.local"];
        assert!(tls.skip_verify);
        assert_eq!(tls.ca_pem, b"CA\n");
        assert_eq!(tls.identity.as_ref().unwrap().0, b"C\nK");
    }

    #[test]
    fn mistakes_name_the_file() {
        let mut out = FileRoutes::default();
        let file = Path::new("/d/docker.io/hosts.toml");
        let err = parse(
            "docker.io",
            file,
            "[host.\"https://m.local\"]\ncapabilities = [\"fly\"]\n",
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/d/docker.io/hosts.toml") && err.contains("line 2"),
            "{err}"
        );
        let err = parse(
            "docker.io",
            file,
            "[host.\"https://m.local/cache\"]\n",
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/v2"), "{err}");
        let err = parse(
            "docker.io",
            file,
            "[host.\"https://m.local\"]\nca = \"nope.pem\"\n",
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nope.pem"), "{err}");
    }
}
