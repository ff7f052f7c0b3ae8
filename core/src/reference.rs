//! Image references: parsing `[registry/]repository[:tag][@digest]` with Docker's grammar and
//! normalisation rules (the `distribution/reference` package), and the pieces the registry
//! client needs from a reference: the host to connect to, the repository path and the
//! `<reference>` that goes in `/v2/<repository>/manifests/<reference>`.
//!
//! Normalisation follows `docker pull`:
//!
//! * The first `/`-separated component names a registry when it contains `.` or `:`, is
//!   `localhost`, or has an uppercase letter (`Foo/bar`, `LOCALDOMAIN/debian`: repositories
//!   are lowercase, so it can only be a host); otherwise the whole name is a Docker Hub
//!   repository.
//! * `docker.io`, `index.docker.io` and `registry-1.docker.io` are all Docker Hub, printed as
//!   `docker.io` and reached at `registry-1.docker.io`.
//! * Single-component Docker Hub names live under `library/` (`alpine` is
//!   `docker.io/library/alpine`); other registries get no prefix.
//! * With neither a tag nor a digest the tag is `latest`.
//!
//! * The repository path (after normalisation, so with `library/`) is at most 255
//!   characters; the host does not count.
//!
//! `core/tests/reference_tables.rs` holds the cases of `distribution/reference`'s own test
//! tables, which this parser matches. (Where we differ on purpose: `registry-1.docker.io`
//! also means Docker Hub, and `sha512` digests are accepted, as the OCI spec registers them.)

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry name Docker Hub references print as.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API is served from.
pub(crate) const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Registry names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 3] = [DOCKER_HUB, "index.docker.io", DOCKER_HUB_API];
/// The namespace single-component Docker Hub names live in.
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag used when a reference has neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// Longest allowed repository path (host not counted), as in `distribution/reference`.
const NAME_MAX_LEN: usize = 255;
/// Longest allowed tag.
const TAG_MAX_LEN: usize = 128;

/// Why a string is not a valid image reference. Every variant carries the whole input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference \"\": empty")]
    Empty,
    /// The input contains whitespace or control characters.
    #[error("invalid reference {0:?}: contains whitespace or control characters")]
    Whitespace(String),
    /// The input starts with a URL scheme such as `http://` or `docker://`.
    #[error(
        "invalid reference {input:?}: remove the scheme {scheme:?}; write it as \
         [registry/]repository[:tag][@digest]"
    )]
    Scheme {
        /// The whole input.
        input: String,
        /// The scheme found, including `://`.
        scheme: String,
    },
    /// The input is a bare 64-character hex string, which looks like an image ID or digest.
    #[error(
        "invalid reference {0:?}: a 64-character hex string is not a repository name; \
         to pin a digest write name@sha256:<hex>"
    )]
    HexName(String),
    /// There is a tag, digest or registry but no repository name (`:tag`, `@sha256:…`).
    #[error("invalid reference {0:?}: missing repository name")]
    MissingName(String),
    /// The repository path starts with `/`.
    #[error("invalid reference {0:?}: repository name must not start with '/'")]
    LeadingSlash(String),
    /// The repository path ends with `/`.
    #[error("invalid reference {0:?}: repository name must not end with '/'")]
    TrailingSlash(String),
    /// The repository path has an empty component (`a//b`).
    #[error("invalid reference {0:?}: repository name has an empty path component")]
    EmptyComponent(String),
    /// The repository path contains an uppercase letter.
    #[error("invalid reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// A repository path component breaks the grammar.
    #[error(
        "invalid reference {input:?}: path component {component:?} must be lowercase letters \
         and digits, separated by '.', '_', '__' or dashes, starting and ending with a letter \
         or digit"
    )]
    InvalidPathComponent {
        /// The whole input.
        input: String,
        /// The offending component.
        component: String,
    },
    /// The registry host name is malformed.
    #[error(
        "invalid reference {input:?}: registry host {host:?} must be dot-separated labels of \
         letters, digits and inner dashes"
    )]
    InvalidHost {
        /// The whole input.
        input: String,
        /// The offending host, without port.
        host: String,
    },
    /// The registry port is not a number from 1 to 65535.
    #[error("invalid reference {input:?}: registry port {port:?} must be a number from 1 to 65535")]
    InvalidPort {
        /// The whole input.
        input: String,
        /// The offending port text.
        port: String,
    },
    /// An IPv6 registry address is malformed or not written in brackets.
    #[error(
        "invalid reference {input:?}: {host:?} is not a valid IPv6 address in brackets \
         (write it like [::1]:5000)"
    )]
    InvalidIpv6 {
        /// The whole input.
        input: String,
        /// The offending host text.
        host: String,
    },
    /// The reference ends with `:` and no tag.
    #[error("invalid reference {0:?}: empty tag after ':'")]
    EmptyTag(String),
    /// The tag has characters other than letters, digits, `_`, `.`, `-`, or starts with `.`/`-`.
    #[error(
        "invalid reference {input:?}: tag {tag:?} must be letters, digits, '_', '.' or '-', \
         not starting with '.' or '-'"
    )]
    InvalidTag {
        /// The whole input.
        input: String,
        /// The offending tag.
        tag: String,
    },
    /// The tag is longer than 128 characters.
    #[error("invalid reference {input:?}: tag is {len} characters long, the limit is 128")]
    TagTooLong {
        /// The whole input.
        input: String,
        /// The tag's length.
        len: usize,
    },
    /// The reference ends with `@` and no digest.
    #[error("invalid reference {0:?}: empty digest after '@'")]
    EmptyDigest(String),
    /// The part after `@` is not a valid digest.
    #[error("invalid reference {input:?}: {error}")]
    InvalidDigest {
        /// The whole input.
        input: String,
        /// What is wrong with the digest.
        error: DigestError,
    },
    /// The repository path (after normalisation) is longer than 255 characters.
    #[error(
        "invalid reference {input:?}: repository {name:?} is {len} characters long, the limit \
         is 255"
    )]
    NameTooLong {
        /// The whole input.
        input: String,
        /// The normalised repository path.
        name: String,
        /// Its length.
        len: usize,
    },
}

/// A parsed, normalised image reference.
///
/// Parse with [`str::parse`]; print with [`Display`](fmt::Display), which always gives the fully
/// normalised form (and parses back to an equal value). Serialises as that string.
///
/// ```
/// use microsandbox_image::Reference;
///
/// let r: Reference = "alpine".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
/// assert_eq!(r.repository(), "library/alpine");
/// assert_eq!(r.reference_str(), "latest");
///
/// let r: Reference = "localhost:5000/team/app:1.0".parse().unwrap();
/// assert_eq!(r.registry(), "localhost:5000");
/// assert_eq!(r.tag(), Some("1.0"));
/// assert!(r.is_loopback());
///
/// assert!("Alpine".parse::<Reference>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Normalised registry (`docker.io` for Docker Hub), possibly with `:port`.
    registry: String,
    /// Repository path, with `library/` added for official Docker Hub images.
    repository: String,
    /// The tag; `None` only when `digest` is `Some`.
    tag: Option<String>,
    /// The pinned digest, if any.
    digest: Option<Digest>,
}

impl Reference {
    /// The normalised registry as the user names it: `docker.io`, `localhost:5000`,
    /// `[::1]:5000`, `ghcr.io`. Includes the port when one was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The `host[:port]` to connect to: `registry-1.docker.io` for Docker Hub, otherwise the
    /// same as [`registry`](Self::registry).
    ///
    /// ```
    /// use microsandbox_image::Reference;
    /// let r: Reference = "index.docker.io/library/alpine".parse().unwrap();
    /// assert_eq!(r.registry(), "docker.io");
    /// assert_eq!(r.api_host(), "registry-1.docker.io");
    /// ```
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path within the registry: `library/alpine`, `myorg/app/sub`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag. `None` only when a digest was given without a tag; a reference with neither
    /// gets `latest`.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What goes in `/v2/<repository>/manifests/<reference>`: the digest if there is one (it
    /// wins over a tag), otherwise the tag.
    ///
    /// ```
    /// use microsandbox_image::Reference;
    /// let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// let r: Reference = format!("alpine:3.19@sha256:{hex}").parse().unwrap();
    /// assert_eq!(r.reference_str(), format!("sha256:{hex}"));
    /// ```
    pub fn reference_str(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            // Unreachable by construction; the default tag is the honest fallback.
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same name and tag, pinned to `digest` (replacing any digest already present).
    ///
    /// ```
    /// use microsandbox_image::{Digest, Reference};
    /// let r: Reference = "alpine:3.19".parse().unwrap();
    /// let pinned = r.with_digest(Digest::sha256_of(b""));
    /// assert_eq!(pinned.tag(), Some("3.19"));
    /// assert_eq!(pinned.digest(), Some(&Digest::sha256_of(b"")));
    /// ```
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Whether the registry host is a loopback address: `localhost`, `127.0.0.0/8`, `::1`
    /// (or `::ffff:127.x.y.z`). The port is ignored.
    ///
    /// ```
    /// use microsandbox_image::Reference;
    /// assert!("127.0.0.1:5000/a".parse::<Reference>().unwrap().is_loopback());
    /// assert!(!"ghcr.io/a/b".parse::<Reference>().unwrap().is_loopback());
    /// ```
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.is_loopback(),
            Ok(IpAddr::V6(v6)) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Err(_) => false,
        }
    }

    /// The registry host without port or IPv6 brackets.
    fn host(&self) -> &str {
        let r = self.registry.as_str();
        match r.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
            None => r.split_once(':').map_or(r, |(h, _)| h),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse(input)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The whole parse: `[domain/]path[:tag][@digest]`.
fn parse(input: &str) -> Result<Reference, ReferenceError> {
    use ReferenceError as E;
    let owned = || input.to_owned();

    if input.is_empty() {
        return Err(E::Empty);
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(E::Whitespace(owned()));
    }
    if let Some(i) = input.find("://") {
        return Err(E::Scheme {
            input: owned(),
            scheme: input[..i + 3].to_owned(),
        });
    }
    if input.len() == 64
        && input
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(E::HexName(owned()));
    }

    // Names and tags never contain '@', so the first one starts the digest.
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((_, "")) => return Err(E::EmptyDigest(owned())),
        Some((name_and_tag, digest)) => {
            let digest = digest.parse::<Digest>().map_err(|error| E::InvalidDigest {
                input: owned(),
                error,
            })?;
            (name_and_tag, Some(digest))
        }
        None => (input, None),
    };

    // The first component is a registry iff it looks like a host.
    let (domain, rest) = match name_and_tag.split_once('/') {
        Some((first, rest)) if looks_like_domain(first) => (Some(first), rest),
        _ => (None, name_and_tag),
    };

    // Without the domain, the only ':' left can start the tag.
    let (path, tag) = match rest.split_once(':') {
        Some((_, "")) => return Err(E::EmptyTag(owned())),
        Some((path, tag)) => (path, Some(tag)),
        None => (rest, None),
    };

    if path.is_empty() {
        return Err(E::MissingName(owned()));
    }
    check_path(input, path, domain.is_some())?;
    if let Some(tag) = tag {
        check_tag(input, tag)?;
    }

    let registry = match domain {
        Some(domain) => normalise_domain(input, domain)?,
        None => DOCKER_HUB.to_owned(),
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_owned()
    };

    let len = repository.len();
    if len > NAME_MAX_LEN {
        return Err(E::NameTooLong {
            input: owned(),
            name: repository,
            len,
        });
    }

    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAG.to_owned()),
    };

    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's rule for whether the first path component names a registry (a `.` or `:`,
/// `localhost`, or an uppercase letter), extended to anything starting with `[` so a
/// malformed IPv6 literal is reported as one.
fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first.starts_with('[')
        || first.eq_ignore_ascii_case("localhost")
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// Checks the repository path: `component(/component)*`, lowercase.
fn check_path(input: &str, path: &str, has_domain: bool) -> Result<(), ReferenceError> {
    use ReferenceError as E;
    let owned = || input.to_owned();

    if path.starts_with('/') {
        // After a registry, `host//x` is an empty component rather than a leading slash.
        return Err(if has_domain {
            E::EmptyComponent(owned())
        } else {
            E::LeadingSlash(owned())
        });
    }
    if path.ends_with('/') {
        return Err(E::TrailingSlash(owned()));
    }
    if path.split('/').any(str::is_empty) {
        return Err(E::EmptyComponent(owned()));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(E::Uppercase(owned()));
    }
    match path.split('/').find(|c| !is_path_component(c)) {
        Some(component) => Err(E::InvalidPathComponent {
            input: owned(),
            component: component.to_owned(),
        }),
        None => Ok(()),
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Walk separator runs between alphanumeric runs.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`.
fn check_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let well_formed = tag.as_bytes().first().is_some_and(|&b| word(b))
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if !well_formed {
        return Err(ReferenceError::InvalidTag {
            input: input.to_owned(),
            tag: tag.to_owned(),
        });
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong {
            input: input.to_owned(),
            len: tag.len(),
        });
    }
    Ok(())
}

/// Validates `host[:port]` (host a DNS name or a bracketed IPv6 literal) and maps Docker Hub's
/// aliases to `docker.io`. Other domains are kept exactly as written.
fn normalise_domain(input: &str, domain: &str) -> Result<String, ReferenceError> {
    use ReferenceError as E;

    let port = if let Some(after_bracket) = domain.strip_prefix('[') {
        let bad_ipv6 = || E::InvalidIpv6 {
            input: input.to_owned(),
            host: domain
                .split_once("]:")
                .map_or(domain, |(h, _)| h)
                .to_owned(),
        };
        let (inner, tail) = after_bracket.split_once(']').ok_or_else(bad_ipv6)?;
        let literal_ok = !inner.is_empty()
            && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && inner.parse::<Ipv6Addr>().is_ok();
        if !literal_ok {
            return Err(bad_ipv6());
        }
        match tail {
            "" => None,
            _ => Some(tail.strip_prefix(':').ok_or_else(bad_ipv6)?),
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(E::InvalidIpv6 {
                input: input.to_owned(),
                host: domain.to_owned(),
            });
        }
        if !is_hostname(host) {
            return Err(E::InvalidHost {
                input: input.to_owned(),
                host: host.to_owned(),
            });
        }
        port
    };

    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(E::InvalidPort {
                input: input.to_owned(),
                port: port.to_owned(),
            });
        }
    }

    if DOCKER_HUB_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(domain))
    {
        Ok(DOCKER_HUB.to_owned())
    } else {
        Ok(domain.to_owned())
    }
}

/// Dot-separated labels of `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`.
fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            match (b.first(), b.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha() -> String {
        format!("sha256:{HEX}")
    }

    /// (input, display, registry, api_host, repository, tag, digest)
    type Valid = (
        String,
        String,
        &'static str,
        &'static str,
        String,
        Option<String>,
        Option<String>,
    );

    fn valid_cases() -> Vec<Valid> {
        let s = sha();
        let hub = |input: &str, repo: &str, tag: Option<&str>, digest: Option<&str>| -> Valid {
            let mut display = format!("docker.io/{repo}");
            if let Some(t) = tag {
                display += &format!(":{t}");
            }
            if let Some(d) = digest {
                display += &format!("@{d}");
            }
            (
                input.to_owned(),
                display,
                "docker.io",
                "registry-1.docker.io",
                repo.to_owned(),
                tag.map(str::to_owned),
                digest.map(str::to_owned),
            )
        };
        let other = |input: &str,
                     registry: &'static str,
                     repo: &str,
                     tag: Option<&str>,
                     digest: Option<&str>|
         -> Valid {
            let mut display = format!("{registry}/{repo}");
            if let Some(t) = tag {
                display += &format!(":{t}");
            }
            if let Some(d) = digest {
                display += &format!("@{d}");
            }
            (
                input.to_owned(),
                display,
                registry,
                registry,
                repo.to_owned(),
                tag.map(str::to_owned),
                digest.map(str::to_owned),
            )
        };
        let long_tag = "t".repeat(128);
        let local_245 = format!("localhost/{}", "a".repeat(245));
        let hub_237 = "a".repeat(237);
        let sha512 = format!("sha512:{}", "ab".repeat(64));

        vec![
            // Docker Hub short forms.
            hub("alpine", "library/alpine", Some("latest"), None),
            hub("alpine:3.19", "library/alpine", Some("3.19"), None),
            hub("alpine:LaTeSt", "library/alpine", Some("LaTeSt"), None),
            hub("alpine:_x", "library/alpine", Some("_x"), None),
            hub(
                "alpine:3.19-r0_x",
                "library/alpine",
                Some("3.19-r0_x"),
                None,
            ),
            hub("library/alpine", "library/alpine", Some("latest"), None),
            hub("docker.io/alpine", "library/alpine", Some("latest"), None),
            hub(
                "docker.io/library/alpine",
                "library/alpine",
                Some("latest"),
                None,
            ),
            hub(
                "index.docker.io/library/alpine",
                "library/alpine",
                Some("latest"),
                None,
            ),
            hub(
                "index.docker.io/alpine",
                "library/alpine",
                Some("latest"),
                None,
            ),
            hub(
                "registry-1.docker.io/alpine:3",
                "library/alpine",
                Some("3"),
                None,
            ),
            hub("Docker.IO/alpine", "library/alpine", Some("latest"), None),
            hub("myorg/app", "myorg/app", Some("latest"), None),
            hub("docker.io/myorg/app:v1", "myorg/app", Some("v1"), None),
            hub("a/b/c/d", "a/b/c/d", Some("latest"), None),
            hub(&format!("ubuntu@{s}"), "library/ubuntu", None, Some(&s)),
            hub(
                &format!("ubuntu:22.04@{s}"),
                "library/ubuntu",
                Some("22.04"),
                Some(&s),
            ),
            hub(
                &format!("alpine@{sha512}"),
                "library/alpine",
                None,
                Some(&sha512),
            ),
            // Path component separators.
            hub("foo_bar/baz", "foo_bar/baz", Some("latest"), None),
            hub("foo__bar", "library/foo__bar", Some("latest"), None),
            hub("foo-----bar", "library/foo-----bar", Some("latest"), None),
            hub("foo.bar", "library/foo.bar", Some("latest"), None),
            hub("x9/f.o_o-b__a--r", "x9/f.o_o-b__a--r", Some("latest"), None),
            hub("0", "library/0", Some("latest"), None),
            hub("a1/2b", "a1/2b", Some("latest"), None),
            // No slash: a host-looking name is still a Docker Hub repository (as in Docker).
            hub("localhost:5000", "library/localhost", Some("5000"), None),
            hub("localhost", "library/localhost", Some("latest"), None),
            // Tag length limit.
            hub(
                &format!("alpine:{long_tag}"),
                "library/alpine",
                Some(&long_tag),
                None,
            ),
            // Name length limit, counted on the normalised name.
            hub(
                &hub_237,
                &format!("library/{hub_237}"),
                Some("latest"),
                None,
            ),
            // Other registries.
            other("localhost/foo", "localhost", "foo", Some("latest"), None),
            other("LOCALHOST/foo", "LOCALHOST", "foo", Some("latest"), None),
            other(
                "localhost:5000/foo/bar:tag",
                "localhost:5000",
                "foo/bar",
                Some("tag"),
                None,
            ),
            other(
                "127.0.0.1:5000/a",
                "127.0.0.1:5000",
                "a",
                Some("latest"),
                None,
            ),
            other("[::1]:5000/a:b", "[::1]:5000", "a", Some("b"), None),
            other("[::1]/a", "[::1]", "a", Some("latest"), None),
            other(
                "[2001:db8::1]/x",
                "[2001:db8::1]",
                "x",
                Some("latest"),
                None,
            ),
            other(
                "[2001:DB8::1]:443/x",
                "[2001:DB8::1]:443",
                "x",
                Some("latest"),
                None,
            ),
            other(
                "ghcr.io/org/repo/sub:v1.2.3",
                "ghcr.io",
                "org/repo/sub",
                Some("v1.2.3"),
                None,
            ),
            other(
                &format!("quay.io/a/b:tag@{s}"),
                "quay.io",
                "a/b",
                Some("tag"),
                Some(&s),
            ),
            other(
                &format!("ghcr.io/x/y@{s}"),
                "ghcr.io",
                "x/y",
                None,
                Some(&s),
            ),
            other("a.b.c:443/x", "a.b.c:443", "x", Some("latest"), None),
            other(
                "My-Registry.Example.COM/x",
                "My-Registry.Example.COM",
                "x",
                Some("latest"),
                None,
            ),
            other("host:65535/x", "host:65535", "x", Some("latest"), None),
            other("1.2.3.4/x", "1.2.3.4", "x", Some("latest"), None),
            other(
                "docker.io:443/alpine",
                "docker.io:443",
                "alpine",
                Some("latest"),
                None,
            ),
            other(
                "xn--bcher-kva.example/x",
                "xn--bcher-kva.example",
                "x",
                Some("latest"),
                None,
            ),
            other("gcr.io/alpine", "gcr.io", "alpine", Some("latest"), None),
            other(
                &local_245,
                "localhost",
                &"a".repeat(245),
                Some("latest"),
                None,
            ),
        ]
    }

    #[test]
    fn valid_references_parse_and_normalise() {
        for (input, display, registry, api_host, repository, tag, digest) in valid_cases() {
            let r: Reference = input
                .parse()
                .unwrap_or_else(|e| panic!("{input:?} failed: {e}"));
            assert_eq!(r.to_string(), display, "display of {input:?}");
            assert_eq!(r.registry(), registry, "registry of {input:?}");
            assert_eq!(r.api_host(), api_host, "api_host of {input:?}");
            assert_eq!(r.repository(), repository, "repository of {input:?}");
            assert_eq!(r.tag(), tag.as_deref(), "tag of {input:?}");
            assert_eq!(
                r.digest().map(ToString::to_string),
                digest,
                "digest of {input:?}"
            );
            // Display is a fixed point of parsing.
            let again: Reference = display.parse().unwrap();
            assert_eq!(again, r, "re-parse of {display:?}");
            assert_eq!(again.to_string(), display);
        }
    }

    fn kind(e: &ReferenceError) -> &'static str {
        match e {
            ReferenceError::Empty => "Empty",
            ReferenceError::Whitespace(_) => "Whitespace",
            ReferenceError::Scheme { .. } => "Scheme",
            ReferenceError::HexName(_) => "HexName",
            ReferenceError::MissingName(_) => "MissingName",
            ReferenceError::LeadingSlash(_) => "LeadingSlash",
            ReferenceError::TrailingSlash(_) => "TrailingSlash",
            ReferenceError::EmptyComponent(_) => "EmptyComponent",
            ReferenceError::Uppercase(_) => "Uppercase",
            ReferenceError::InvalidPathComponent { .. } => "InvalidPathComponent",
            ReferenceError::InvalidHost { .. } => "InvalidHost",
            ReferenceError::InvalidPort { .. } => "InvalidPort",
            ReferenceError::InvalidIpv6 { .. } => "InvalidIpv6",
            ReferenceError::EmptyTag(_) => "EmptyTag",
            ReferenceError::InvalidTag { .. } => "InvalidTag",
            ReferenceError::TagTooLong { .. } => "TagTooLong",
            ReferenceError::EmptyDigest(_) => "EmptyDigest",
            ReferenceError::InvalidDigest { .. } => "InvalidDigest",
            ReferenceError::NameTooLong { .. } => "NameTooLong",
        }
    }

    fn invalid_cases() -> Vec<(String, &'static str)> {
        let s = sha();
        let cases: Vec<(String, &'static str)> = vec![
            (String::new(), "Empty"),
            ("foo bar".into(), "Whitespace"),
            (" alpine".into(), "Whitespace"),
            ("alpine\n".into(), "Whitespace"),
            ("alpine\t:3".into(), "Whitespace"),
            ("http://foo/bar".into(), "Scheme"),
            ("https://ghcr.io/a/b:1".into(), "Scheme"),
            ("docker://alpine".into(), "Scheme"),
            (HEX.into(), "HexName"),
            (":tag".into(), "MissingName"),
            (s.replace("sha256", "@sha256"), "MissingName"),
            ("localhost/:tag".into(), "MissingName"),
            ("localhost:5000/".into(), "MissingName"),
            ("/a".into(), "LeadingSlash"),
            ("/".into(), "LeadingSlash"),
            ("a/".into(), "TrailingSlash"),
            ("a/b/:tag".into(), "TrailingSlash"),
            ("a//b".into(), "EmptyComponent"),
            ("localhost//b".into(), "EmptyComponent"),
            ("Alpine".into(), "Uppercase"),
            ("foo/Bar".into(), "Uppercase"),
            ("Foo/Bar".into(), "Uppercase"),
            ("Fo_o/bar".into(), "InvalidHost"),
            ("ghcr.io/Org/repo".into(), "Uppercase"),
            ("-foo".into(), "InvalidPathComponent"),
            ("foo-".into(), "InvalidPathComponent"),
            ("_foo".into(), "InvalidPathComponent"),
            ("foo..bar".into(), "InvalidPathComponent"),
            ("foo___bar".into(), "InvalidPathComponent"),
            ("foo._bar".into(), "InvalidPathComponent"),
            ("foo-.bar".into(), "InvalidPathComponent"),
            ("foo$bar".into(), "InvalidPathComponent"),
            ("caf\u{e9}".into(), "InvalidPathComponent"),
            ("a/b!/c".into(), "InvalidPathComponent"),
            ("foo.-bar/x".into(), "InvalidHost"),
            ("-foo.com/x".into(), "InvalidHost"),
            ("foo..com/x".into(), "InvalidHost"),
            ("foo_bar.com/x".into(), "InvalidHost"),
            (".foo/x".into(), "InvalidHost"),
            (":5000/x".into(), "InvalidHost"),
            ("localhost:abc/foo".into(), "InvalidPort"),
            ("localhost:99999/foo".into(), "InvalidPort"),
            ("localhost:65536/foo".into(), "InvalidPort"),
            ("localhost:0/foo".into(), "InvalidPort"),
            ("localhost:/foo".into(), "InvalidPort"),
            ("localhost:-1/foo".into(), "InvalidPort"),
            ("[::1]:/foo".into(), "InvalidPort"),
            ("[::1]:x/foo".into(), "InvalidPort"),
            ("[::1/foo".into(), "InvalidIpv6"),
            ("[]/foo".into(), "InvalidIpv6"),
            ("[zz::1]/foo".into(), "InvalidIpv6"),
            ("[1:2:3:4:5:6:7:8:9]/foo".into(), "InvalidIpv6"),
            ("[::1]x/foo".into(), "InvalidIpv6"),
            ("[fe80::1%eth0]/foo".into(), "InvalidIpv6"),
            ("::1/foo".into(), "InvalidIpv6"),
            ("2001:db8::1/foo".into(), "InvalidIpv6"),
            ("foo:".into(), "EmptyTag"),
            ("ghcr.io/a/b:".into(), "EmptyTag"),
            ("foo:.tag".into(), "InvalidTag"),
            ("foo:-tag".into(), "InvalidTag"),
            ("foo:a:b".into(), "InvalidTag"),
            ("foo:t+g".into(), "InvalidTag"),
            ("foo/bar:x/baz".into(), "InvalidTag"),
            (format!("foo:{}", "t".repeat(129)), "TagTooLong"),
            ("foo@".into(), "EmptyDigest"),
            ("foo:tag@".into(), "EmptyDigest"),
            ("foo@sha256:short".into(), "InvalidDigest"),
            (
                "foo@md5:d41d8cd98f00b204e9800998ecf8427e".into(),
                "InvalidDigest",
            ),
            (format!("foo@{}", s.to_uppercase()), "InvalidDigest"),
            (format!("foo@{s}@{s}"), "InvalidDigest"),
            ("foo@latest".into(), "InvalidDigest"),
            (format!("localhost/{}", "a".repeat(256)), "NameTooLong"),
            ("a".repeat(248), "NameTooLong"),
        ];
        cases
    }

    #[test]
    fn invalid_references_are_rejected_with_the_right_error() {
        for (input, want) in invalid_cases() {
            match input.parse::<Reference>() {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => {
                    assert_eq!(kind(&e), want, "{input:?} gave {e}");
                    if !input.is_empty() {
                        let msg = e.to_string();
                        assert!(
                            msg.contains(&format!("{input:?}")),
                            "message for {input:?} lacks the input: {msg}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn enough_table_cases() {
        assert!(valid_cases().len() + invalid_cases().len() >= 70);
    }

    #[test]
    fn error_messages_read_well() {
        let e = "Alpine".parse::<Reference>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference \"Alpine\": repository name must be lowercase"
        );
        let e = "http://foo/bar".parse::<Reference>().unwrap_err();
        assert!(
            e.to_string().contains("remove the scheme \"http://\""),
            "{e}"
        );
        let e = "foo@sha256:short".parse::<Reference>().unwrap_err();
        assert!(e.to_string().contains("sha256 needs 64"), "{e}");
    }

    #[test]
    fn reference_str_prefers_digest() {
        let r: Reference = "alpine:3.19".parse().unwrap();
        assert_eq!(r.reference_str(), "3.19");
        let r: Reference = "alpine".parse().unwrap();
        assert_eq!(r.reference_str(), "latest");
        let r: Reference = format!("alpine:3.19@{}", sha()).parse().unwrap();
        assert_eq!(r.reference_str(), sha());
        let r: Reference = format!("alpine@{}", sha()).parse().unwrap();
        assert_eq!(r.reference_str(), sha());
    }

    #[test]
    fn with_digest_pins_and_keeps_name_and_tag() {
        let d: Digest = sha().parse().unwrap();
        let r: Reference = "ghcr.io/org/app:v1".parse().unwrap();
        let pinned = r.with_digest(d.clone());
        assert_eq!(pinned.registry(), "ghcr.io");
        assert_eq!(pinned.repository(), "org/app");
        assert_eq!(pinned.tag(), Some("v1"));
        assert_eq!(pinned.digest(), Some(&d));
        assert_eq!(pinned.reference_str(), sha());
        assert_eq!(pinned.to_string(), format!("ghcr.io/org/app:v1@{}", sha()));
        // The original is untouched.
        assert_eq!(r.digest(), None);

        // Replacing an existing digest.
        let other = Digest::sha256_of(b"other");
        let repinned = pinned.with_digest(other.clone());
        assert_eq!(repinned.digest(), Some(&other));
        assert_eq!(repinned.tag(), Some("v1"));

        // A digest-only reference stays tagless.
        let r: Reference = format!("alpine@{}", sha()).parse().unwrap();
        assert_eq!(r.with_digest(other).tag(), None);
    }

    #[test]
    fn loopback_detection() {
        for (input, want) in [
            ("localhost/a", true),
            ("localhost:5000/a", true),
            ("LocalHost:5000/a", true),
            ("127.0.0.1/a", true),
            ("127.0.0.1:5000/a", true),
            ("127.255.0.9:80/a", true),
            ("[::1]/a", true),
            ("[::1]:5000/a", true),
            ("[0:0:0:0:0:0:0:1]:5000/a", true),
            ("[::ffff:7f00:1]/a", true),
            ("alpine", false),
            ("docker.io/library/alpine", false),
            ("ghcr.io/a/b", false),
            ("128.0.0.1/a", false),
            ("10.0.0.1:5000/a", false),
            ("[::2]/a", false),
            ("[2001:db8::1]:5000/a", false),
            ("localhost.example.com/a", false),
            ("127.0.0.1.nip.io/a", false),
            ("mylocalhost:5000/a", false),
        ] {
            let r: Reference = input.parse().unwrap();
            assert_eq!(r.is_loopback(), want, "{input:?}");
        }
    }

    #[test]
    fn serde_round_trip_as_display_string() {
        let inputs = [
            "alpine".to_owned(),
            "[::1]:5000/a:b".to_owned(),
            format!("quay.io/a/b:tag@{}", sha()),
            format!("ubuntu@{}", sha()),
        ];
        for input in inputs {
            let r: Reference = input.parse().unwrap();
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
            let back: Reference = serde_json::from_str(&json).unwrap();
            assert_eq!(back, r);
        }
        // Non-normalised input is accepted and normalised on the way in.
        let r: Reference = serde_json::from_str("\"alpine:3\"").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:3");
        // Invalid input is a deserialisation error carrying the reason.
        let e = serde_json::from_str::<Reference>("\"Alpine\"").unwrap_err();
        assert!(e.to_string().contains("must be lowercase"), "{e}");
    }

    #[test]
    fn equality_and_hash_follow_normalisation() {
        use std::collections::HashSet;
        let set: HashSet<Reference> = [
            "alpine",
            "docker.io/library/alpine:latest",
            "index.docker.io/alpine",
        ]
        .iter()
        .map(|s| s.parse::<Reference>().unwrap())
        .collect();
        assert_eq!(set.len(), 1);
        let a: Reference = "alpine:3".parse().unwrap();
        let b: Reference = "alpine:4".parse().unwrap();
        assert_ne!(a, b);
    }
}
