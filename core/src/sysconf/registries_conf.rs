//! containers-registries.conf(5), version 2: `[[registry]]` entries with `prefix`,
//! `location`, `insecure`, `blocked`, `mirror-by-digest-only` and `[[registry.mirror]]`
//! (`location`, `insecure`, `pull-from-mirror` = `"all"`, `"digest-only"`, `"tag-only"`).
//! Drop-ins (`registries.conf.d/*.conf` beside the file, in name order) come after it; an
//! entry with the same prefix as an earlier one replaces it.
//!
//! Ignored, since this library never expands short names: `unqualified-search-registries`,
//! `short-name-mode`, `[aliases]`; also `credential-helpers`. A version 1 file
//! (`[registries.search]`, …) has no entries this reads; it is logged and skipped.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FileRoutes, location_host, read_text, toml_error};
use crate::client::routes::{Place, RefKinds, Route};
use crate::error::Error;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    registry: Vec<Entry>,
    /// Version 1's tables.
    registries: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<Mirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Mirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<PullFromMirror>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

/// Reads `path` and its drop-ins into `out`.
pub(super) fn load(path: &Path, out: &mut FileRoutes) -> Result<(), Error> {
    let mut routes: Vec<Route> = Vec::new();
    let mut files = vec![path.to_path_buf()];
    files.extend(drop_ins(path));
    for file in &files {
        for route in parse(file, &read_text(file)?, out)? {
            routes.retain(|r| r.prefix != route.prefix);
            routes.push(route);
        }
    }
    out.routes.extend(routes);
    Ok(())
}

/// `registries.conf.d/*.conf` beside `path`, in name order.
fn drop_ins(path: &Path) -> Vec<PathBuf> {
    let Some(dir) = path.parent().map(|d| d.join("registries.conf.d")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    files.sort();
    files
}

/// The routes of one file; its insecure hosts go into `out`.
fn parse(file: &Path, text: &str, out: &mut FileRoutes) -> Result<Vec<Route>, Error> {
    let parsed: File = toml::from_str(text).map_err(|e| toml_error(file, e))?;
    if parsed.registries.is_some() {
        log::warn!(
            "{}: a version 1 registries.conf ([registries.*]) is not read; use [[registry]]",
            file.display()
        );
    }
    let bad = |what: String| Error::InvalidArgument(format!("{}: {what}", file.display()));
    let mut routes = Vec::new();
    for e in parsed.registry {
        let prefix = if e.prefix.is_empty() {
            e.location.clone()
        } else {
            e.prefix.clone()
        };
        if prefix.is_empty() {
            return Err(bad("a [[registry]] needs a prefix or a location".into()));
        }
        if prefix.starts_with("*.") && !e.location.is_empty() {
            return Err(bad(format!(
                "prefix {prefix:?} is a wildcard: it cannot have a location"
            )));
        }
        let mut places = Vec::new();
        for m in &e.mirror {
            let host = location_host(file, &m.location)?;
            if m.insecure {
                out.insecure_hosts.push(host);
            }
            let refs = match (m.pull_from_mirror, e.mirror_by_digest_only) {
                (Some(_), true) => {
                    return Err(bad(format!(
                        "{prefix:?}: pull-from-mirror and mirror-by-digest-only cannot be \
                         used together"
                    )));
                }
                (None | Some(PullFromMirror::All), false) => RefKinds::All,
                (None, true) | (Some(PullFromMirror::DigestOnly), _) => RefKinds::DigestOnly,
                (Some(PullFromMirror::TagOnly), _) => RefKinds::TagOnly,
            };
            places.push(Place {
                refs,
                ..Place::all(m.location.trim_end_matches('/'))
            });
        }
        // The location itself comes last; a wildcard's is each matching registry itself.
        let location = if prefix.starts_with("*.") {
            String::new()
        } else if e.location.is_empty() {
            prefix.clone()
        } else {
            e.location.clone()
        };
        if !location.is_empty() {
            let host = location_host(file, &location)?;
            if e.insecure {
                out.insecure_hosts.push(host);
            }
        }
        places.push(Place::all(location.trim_end_matches('/')));
        routes.push(Route {
            prefix: prefix.trim_end_matches('/').to_owned(),
            source: file.to_path_buf(),
            blocked: e.blocked,
            places,
        });
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<(Vec<Route>, FileRoutes), Error> {
        let mut out = FileRoutes::default();
        let routes = parse(Path::new("/x/registries.conf"), text, &mut out)?;
        Ok((routes, out))
    }

    #[test]
    fn entries_mirrors_and_kinds() {
        let (routes, out) = parse_str(
            r#"
unqualified-search-registries = ["docker.io"]
short-name-mode = "enforcing"
[aliases]
"fedora" = "registry.fedoraproject.org/fedora"

[[registry]]
prefix = "example.com/team"
location = "internal.example:5000/team"
insecure = true

[[registry.mirror]]
location = "mirror.example/cache"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "mirror2.example"
insecure = true

[[registry]]
location = "blocked.example"
blocked = true
"#,
        )
        .unwrap();
        assert_eq!(routes.len(), 2);
        let r = &routes[0];
        assert_eq!(r.prefix, "example.com/team");
        assert_eq!(r.places.len(), 3);
        assert_eq!(r.places[0].refs, RefKinds::DigestOnly);
        assert_eq!(r.places[1].refs, RefKinds::All);
        assert_eq!(r.places[2].location, "internal.example:5000/team");
        assert_eq!(
            out.insecure_hosts,
            vec![
                "mirror2.example".to_string(),
                "internal.example:5000".into()
            ]
        );
        assert!(routes[1].blocked);
        assert_eq!(routes[1].prefix, "blocked.example");
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let err = parse_str("[[registry]]\nprefix = \"a.example\"\nlocaton = \"b.example\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x/registries.conf"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("locaton"), "{err}");
        let err = parse_str("[[registry]\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = parse_str("[[registry]]\nprefix = \"a.example\"\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes") && err.contains("line 5"), "{err}");
        let err = parse_str("[[registry]]\ninsecure = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prefix or a location"), "{err}");
    }
}
