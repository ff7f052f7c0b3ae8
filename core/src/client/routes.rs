//! Routes: where the images under a name prefix are fetched from, in order, as
//! `registries.conf` (`[[registry]]` with its mirrors and `location`) and containerd's
//! `hosts.toml` (`[host]` entries, then `server`) describe it, and which prefixes are
//! blocked. The files are read in [`crate::sysconf`]; this module owns matching a reference to
//! its route (longest prefix wins) and turning the route into [`Endpoint`]s.

use std::path::PathBuf;

use super::{Endpoint, RegistryError};
use crate::reference::Reference;

/// What references a place serves, by how the reference names its image
/// (`pull-from-mirror` of `registries.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKinds {
    /// Tags and digests.
    All,
    /// Only references pinned by digest.
    DigestOnly,
    /// Only references by tag.
    TagOnly,
}

/// One place a route fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// `host[:port][/namespace]` that replaces the route's prefix.
    pub location: String,
    /// Which references it serves.
    pub refs: RefKinds,
    /// Whether it resolves tags (containerd capability `resolve`).
    pub resolve: bool,
    /// Whether it serves content by digest: manifests and blobs (capability `pull`).
    pub pull: bool,
}

impl Place {
    /// A place serving everything.
    pub fn all(location: impl Into<String>) -> Place {
        Place {
            location: location.into(),
            refs: RefKinds::All,
            resolve: true,
            pull: true,
        }
    }
}

/// Where the references under `prefix` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// `host[:port][/namespace]`, or `*.domain` for every host under a domain.
    pub prefix: String,
    /// The file the route comes from (named in errors).
    pub source: PathBuf,
    /// Refuse every reference under the prefix.
    pub blocked: bool,
    /// Places tried in order (mirrors first, the location last).
    pub places: Vec<Place>,
}

impl Route {
    /// How long a match of `name` (`registry/repository`) this route's prefix is, if it
    /// matches: a prefix matches itself and the names under it at a `/` (not `foobar` for
    /// `foo`); `*.example.com` matches hosts under `example.com`.
    fn match_len(&self, name: &str) -> Option<usize> {
        if self.prefix == DEFAULT_PREFIX {
            return Some(0);
        }
        if let Some(domain) = self.prefix.strip_prefix("*.") {
            let host = name.split('/').next().unwrap_or("");
            let host = host.split(':').next().unwrap_or("");
            return host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
                .then_some(self.prefix.len());
        }
        let rest = name.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(self.prefix.len())
    }
}

/// The prefix of a route for every registry without one of its own (containerd's
/// `_default` hosts directory).
pub(crate) const DEFAULT_PREFIX: &str = "_default";

/// The route of `r` among `routes`: the longest matching prefix (the first of equals).
pub(crate) fn route_for<'a>(routes: &'a [Route], r: &Reference) -> Option<&'a Route> {
    let name = format!("{}/{}", r.registry(), r.repository());
    let mut best: Option<(usize, &Route)> = None;
    for route in routes {
        if let Some(n) = route.match_len(&name)
            && best.is_none_or(|(b, _)| n > b)
        {
            best = Some((n, route));
        }
    }
    best.map(|(_, route)| route)
}

/// The endpoints of `route` for `r`: each place serving `r`'s kind of reference, with the
/// route's prefix replaced by the place's location. A blocked route is an error naming the
/// reference and the file.
pub(crate) fn endpoints(route: &Route, r: &Reference) -> Result<Vec<Endpoint>, RegistryError> {
    if route.blocked {
        return Err(RegistryError::Blocked {
            reference: format!("{}/{}", r.registry(), r.repository()),
            prefix: route.prefix.clone(),
            source_file: route.source.clone(),
        });
    }
    let name = format!("{}/{}", r.registry(), r.repository());
    let by_digest = r.digest().is_some();
    let mut eps = Vec::new();
    for place in &route.places {
        let serves = match place.refs {
            RefKinds::All => true,
            RefKinds::DigestOnly => by_digest,
            RefKinds::TagOnly => !by_digest,
        };
        if !serves {
            continue;
        }
        let rewritten = rewrite(&route.prefix, &name, &place.location);
        let at: Reference = format!("{rewritten}:latest").parse().map_err(|e| {
            RegistryError::Config(format!(
                "{}: location {:?} makes {name} into {rewritten:?}, not an image name: {e}",
                route.source.display(),
                place.location
            ))
        })?;
        eps.push(Endpoint {
            host: at.api_host().to_owned(),
            repository: at.repository().to_owned(),
            auth_key: at.registry().to_owned(),
            auth_repository: at.repository().to_owned(),
            resolve: place.resolve,
            pull: place.pull,
        });
    }
    Ok(eps)
}

/// `name` with `prefix` replaced by `location`; an empty location is the name unchanged (the
/// registry itself); a wildcard or default prefix replaces the host only.
fn rewrite(prefix: &str, name: &str, location: &str) -> String {
    if location.is_empty() {
        return name.to_owned();
    }
    if prefix.starts_with("*.") || prefix == DEFAULT_PREFIX {
        let repo = name.split_once('/').map(|(_, r)| r).unwrap_or("");
        return format!("{}/{repo}", location.trim_end_matches('/'));
    }
    let rest = name.strip_prefix(prefix).unwrap_or("");
    format!("{}{rest}", location.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, places: &[&str]) -> Route {
        Route {
            prefix: prefix.into(),
            source: "/etc/containers/registries.conf".into(),
            blocked: false,
            places: places.iter().map(|p| Place::all(*p)).collect(),
        }
    }

    #[test]
    fn the_longest_prefix_wins_at_a_slash() {
        let routes = [
            route("example.com", &["a.example"]),
            route("example.com/team", &["b.example"]),
            route("*.corp.example", &["c.example"]),
        ];
        let r = |s: &str| s.parse::<Reference>().unwrap();
        let p = |s: &str| route_for(&routes, &r(s)).map(|x| x.prefix.clone());
        assert_eq!(
            p("example.com/team/app:1").as_deref(),
            Some("example.com/team")
        );
        assert_eq!(p("example.com/teamx/app:1").as_deref(), Some("example.com"));
        assert_eq!(p("reg.corp.example/x:1").as_deref(), Some("*.corp.example"));
        assert_eq!(p("corp.example/x:1"), None);
        assert_eq!(p("other.io/x:1"), None);
    }

    #[test]
    fn locations_rewrite_the_prefix() {
        let rt = route(
            "example.com/team",
            &["mirror.local:5000/cache/team", "example.com/team"],
        );
        let eps = endpoints(&rt, &"example.com/team/app:1".parse().unwrap()).unwrap();
        assert_eq!(eps[0].host, "mirror.local:5000");
        assert_eq!(eps[0].repository, "cache/team/app");
        assert_eq!(eps[1].host, "example.com");
        assert_eq!(eps[1].repository, "team/app");
        let hub = route("docker.io", &["docker.io"]);
        let eps = endpoints(&hub, &"alpine".parse().unwrap()).unwrap();
        assert_eq!(eps[0].host, "registry-1.docker.io");
        assert_eq!(eps[0].repository, "library/alpine");
    }

    #[test]
    fn digest_only_mirrors_serve_digests_only() {
        let mut rt = route("example.com", &["m.local", "example.com"]);
        rt.places[0].refs = RefKinds::DigestOnly;
        let tag = endpoints(&rt, &"example.com/a:1".parse().unwrap()).unwrap();
        assert_eq!(tag.len(), 1);
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let pinned: Reference = format!("example.com/a@sha256:{hex}").parse().unwrap();
        assert_eq!(endpoints(&rt, &pinned).unwrap()[0].host, "m.local");
    }

    #[test]
    fn blocked_names_the_file() {
        let mut rt = route("example.com", &[]);
        rt.blocked = true;
        let err = endpoints(&rt, &"example.com/a:1".parse().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("example.com/a"), "{msg}");
        assert!(msg.contains("/etc/containers/registries.conf"), "{msg}");
    }
}
