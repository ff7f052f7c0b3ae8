//! Images that travel without a registry: [`ImageSource`] names where a pull reads an image
//! from (a registry, an OCI image layout directory, a `docker save` archive) and where
//! [`Registry::save`](crate::Registry::save) writes one. This module owns reading those local
//! formats (`layout.rs`, `docker_archive.rs`, over the blob stores of `blobs.rs` and the tar
//! member table of `members.rs`) into a [`LocalImage`](local::LocalImage) the pull pipeline
//! reads blobs from, and writing them (`write_layout.rs`, `write_archive.rs`).

mod blobs;
mod docker_archive;
mod error;
mod layout;
pub(crate) mod local;
mod members;
pub(crate) mod write_archive;
pub(crate) mod write_layout;

use std::path::PathBuf;

pub use error::SourceError;

use crate::cache::cache_report;
use crate::digest::Digest;
use crate::reference::Reference;

/// Which image of an OCI layout: by the tag in its `org.opencontainers.image.ref.name`
/// annotation, or by manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutRef {
    /// The `org.opencontainers.image.ref.name` of an `index.json` entry.
    Tag(String),
    /// A manifest (or index) digest in the layout.
    Digest(Digest),
}

/// Where an image comes from (a pull) or goes to (a save), as skopeo names transports:
///
/// * `REF` or `docker://REF`: a registry;
/// * `oci-layout:DIR`, `oci-layout:DIR:TAG`, `oci-layout:DIR@sha256:…` (also `oci:`): an OCI
///   image layout directory (`oci-layout`, `index.json`, `blobs/`);
/// * `docker-archive:FILE` or `docker-archive:FILE:NAME:TAG`: a tar written by `docker save`,
///   `podman save` or `skopeo copy … docker-archive:` (with or without an `index.json`).
///
/// A path ends at its first `:` (as in skopeo), so paths with `:` cannot be named.
///
/// ```
/// use microsandbox_image::offline::{ImageSource, LayoutRef};
/// let s: ImageSource = "oci-layout:/tmp/images:v1".parse().unwrap();
/// assert_eq!(s, ImageSource::OciLayout { dir: "/tmp/images".into(), reference: Some(LayoutRef::Tag("v1".into())) });
/// let s: ImageSource = "docker-archive:/tmp/a.tar:alpine:3.20".parse().unwrap();
/// assert!(matches!(s, ImageSource::DockerArchive { name: Some(_), .. }));
/// assert!(matches!("alpine".parse::<ImageSource>().unwrap(), ImageSource::Registry(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An image on a registry.
    Registry(Reference),
    /// An OCI image layout directory.
    OciLayout {
        /// The layout's directory.
        dir: PathBuf,
        /// Which image; `None`: the layout's only one.
        reference: Option<LayoutRef>,
    },
    /// A `docker save`-style tar archive.
    DockerArchive {
        /// The archive.
        file: PathBuf,
        /// Which image (one of its `RepoTags`); `None`: the archive's only one.
        name: Option<Reference>,
    },
}

/// Transport prefixes for OCI layouts (`oci:` is skopeo's).
const OCI_PREFIXES: [&str; 2] = ["oci-layout:", "oci:"];
const ARCHIVE_PREFIX: &str = "docker-archive:";

impl std::str::FromStr for ImageSource {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, SourceError> {
        let invalid = |reason: &str| SourceError::Invalid {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = OCI_PREFIXES.iter().find_map(|p| s.strip_prefix(p)) {
            let (dir, reference) = split_layout(rest).map_err(|r| invalid(&r))?;
            if dir.is_empty() {
                return Err(invalid("no directory"));
            }
            return Ok(ImageSource::OciLayout {
                dir: dir.into(),
                reference,
            });
        }
        if let Some(rest) = s.strip_prefix(ARCHIVE_PREFIX) {
            let (file, name) = match rest.split_once(':') {
                Some((file, name)) => (file, Some(name)),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(invalid("no file"));
            }
            let name = name
                .map(|n| n.parse::<Reference>())
                .transpose()
                .map_err(|e| invalid(&e.to_string()))?;
            return Ok(ImageSource::DockerArchive {
                file: file.into(),
                name,
            });
        }
        let r = s.strip_prefix("docker://").unwrap_or(s);
        if r.contains(':')
            && r.split_once(':')
                .is_some_and(|(t, _)| TRANSPORTS.contains(&t))
        {
            return Err(invalid(
                "this transport is not supported (oci-layout:, docker-archive: and registry references are)",
            ));
        }
        r.parse::<Reference>()
            .map(ImageSource::Registry)
            .map_err(|e| invalid(&e.to_string()))
    }
}

impl ImageSource {
    /// Parses `s` as a front door's pull or save argument: as [`FromStr`](std::str::FromStr)
    /// does, but a string naming no transport that is not a valid reference fails as a
    /// reference does ([`Error::InvalidReference`](crate::Error::InvalidReference)), as a
    /// pull of a reference always has; a bad transport string is [`Error::Source`](crate::Error::Source).
    ///
    /// ```
    /// use microsandbox_image::{ErrorKind, ImageSource};
    /// assert_eq!(ImageSource::parse_arg("Not A Ref").unwrap_err().kind(), ErrorKind::InvalidReference);
    /// assert_eq!(ImageSource::parse_arg("oci-layout:").unwrap_err().kind(), ErrorKind::InvalidArgument);
    /// ```
    pub fn parse_arg(s: &str) -> crate::Result<Self> {
        s.parse().map_err(|e| {
            let plain = s.strip_prefix("docker://").unwrap_or(s);
            let transport = OCI_PREFIXES
                .iter()
                .chain([&ARCHIVE_PREFIX])
                .any(|p| s.starts_with(p))
                || plain
                    .split_once(':')
                    .is_some_and(|(t, _)| TRANSPORTS.contains(&t));
            match plain.parse::<Reference>() {
                Err(reference) if !transport => crate::Error::from(reference),
                _ => crate::Error::Source {
                    reference: s.to_owned(),
                    source: Box::new(e),
                },
            }
        })
    }
}

/// skopeo transports we do not read, named so that `oci-archive:x.tar` is not taken for a
/// registry host called `oci-archive`.
const TRANSPORTS: &[&str] = &[
    "oci-archive",
    "dir",
    "containers-storage",
    "docker-daemon",
    "ostree",
    "sif",
];

/// `DIR`, `DIR:TAG` or `DIR@DIGEST`.
fn split_layout(rest: &str) -> Result<(&str, Option<LayoutRef>), String> {
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    if let Some(at) = rest[last_slash..].find('@') {
        let (dir, digest) = (&rest[..last_slash + at], &rest[last_slash + at + 1..]);
        let digest = digest.parse::<Digest>().map_err(|e| e.to_string())?;
        return Ok((dir, Some(LayoutRef::Digest(digest))));
    }
    match rest.split_once(':') {
        Some((dir, "")) => Ok((dir, None)),
        Some((dir, tag)) => {
            if tag.contains('/') || tag.len() > 128 {
                return Err(format!("{tag:?} is not a tag"));
            }
            Ok((dir, Some(LayoutRef::Tag(tag.to_owned()))))
        }
        None => Ok((rest, None)),
    }
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::Registry(r) => write!(f, "{r}"),
            ImageSource::OciLayout { dir, reference } => {
                write!(f, "oci-layout:{}", dir.display())?;
                match reference {
                    Some(LayoutRef::Tag(t)) => write!(f, ":{t}"),
                    Some(LayoutRef::Digest(d)) => write!(f, "@{d}"),
                    None => Ok(()),
                }
            }
            ImageSource::DockerArchive { file, name } => {
                write!(f, "docker-archive:{}", file.display())?;
                match name {
                    Some(n) => write!(f, ":{n}"),
                    None => Ok(()),
                }
            }
        }
    }
}

cache_report! {
/// What [`Registry::save`](crate::Registry::save) wrote.
pub struct SaveReport {
    /// The image saved, as named on its registry.
    pub reference: String,
    /// Where it went.
    pub target: String,
    /// The manifest written (the platform's manifest).
    pub manifest_digest: Digest,
    /// The config blob.
    pub config_digest: Digest,
    /// Blobs written, config included (blobs already in an OCI layout are not counted).
    pub blobs_written: usize,
    /// Bytes of those blobs as written.
    pub bytes_written: u64,
}
}

/// The name `docker save` gives `reference` in `RepoTags`: `alpine:3.20` for an official
/// Docker Hub image, `user/app:tag` for another Docker Hub one, the full name otherwise.
pub(crate) fn familiar_name(reference: &Reference) -> String {
    let tag = reference.tag().unwrap_or("latest");
    let repo = reference.repository();
    if reference.registry() == "docker.io" {
        let short = repo.strip_prefix("library/").unwrap_or(repo);
        format!("{short}:{tag}")
    } else {
        format!("{}/{repo}:{tag}", reference.registry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let s: ImageSource = format!("oci-layout:/a/b@sha256:{hex}").parse().unwrap();
        assert_eq!(
            s,
            ImageSource::OciLayout {
                dir: "/a/b".into(),
                reference: Some(LayoutRef::Digest(format!("sha256:{hex}").parse().unwrap()))
            }
        );
        let s: ImageSource = "oci:rel/dir".parse().unwrap();
        assert_eq!(
            s,
            ImageSource::OciLayout {
                dir: "rel/dir".into(),
                reference: None
            }
        );
        let s: ImageSource = "docker-archive:/x.tar:127.0.0.1:5000/a/b:t"
            .parse()
            .unwrap();
        let ImageSource::DockerArchive { file, name } = s else {
            panic!("not an archive")
        };
        assert_eq!(file, PathBuf::from("/x.tar"));
        assert_eq!(name.unwrap().to_string(), "127.0.0.1:5000/a/b:t");
        assert!("oci-layout:".parse::<ImageSource>().is_err());
        assert!("oci-archive:/x.tar".parse::<ImageSource>().is_err());
        assert!("oci-layout:/d:a/b".parse::<ImageSource>().is_err());
        let s: ImageSource = "docker://alpine".parse().unwrap();
        assert_eq!(s.to_string(), "docker.io/library/alpine:latest");
    }

    #[test]
    fn familiar_names() {
        let r: Reference = "alpine:3.20".parse().unwrap();
        assert_eq!(familiar_name(&r), "alpine:3.20");
        let r: Reference = "127.0.0.1:5000/a/b".parse().unwrap();
        assert_eq!(familiar_name(&r), "127.0.0.1:5000/a/b:latest");
    }
}
