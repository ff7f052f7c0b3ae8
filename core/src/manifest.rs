//! Manifests and indexes as registries serve them: media types, parsing of the exact bytes
//! (OCI and Docker v2 schema 2), schema 1 rejection, and choosing one platform's manifest out
//! of an index. Parsing uses oci-spec types; what leaves this module is our own small
//! [`LayerDescriptor`] list, so the rest of the crate never handles raw JSON.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: every type we can use, preferred first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or index we accept (the distribution spec's own limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Why a manifest, index or config cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Docker schema 1 manifests are deprecated and unsigned-verifiable only by their own
    /// scheme; registries convert on the fly when asked for schema 2.
    #[error(
        "Docker schema 1 manifests are not supported (push the image again with a current client)"
    )]
    Schema1,
    /// The bytes are not a manifest or index we understand.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// "manifest", "index" or "image config".
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// The media type is neither an image manifest nor an index.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A descriptor's digest is malformed.
    #[error("descriptor with invalid digest {0:?}")]
    BadDescriptorDigest(String),
    /// The config lists a different number of diff_ids than the manifest lists layers.
    #[error("manifest lists {layers} layers but the config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// An index points at another index (nested indexes are not followed).
    #[error("nested image index {0}")]
    NestedIndex(Digest),
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
    /// Unknown media type: decide from the first bytes.
    Detect,
}

impl Compression {
    /// The compression a layer media type implies.
    pub fn from_media_type(media_type: &str) -> Compression {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            _ => Compression::Detect,
        }
    }
}

/// One layer blob as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Digest of the blob as stored in the registry (compressed).
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The layer's media type.
    pub media_type: String,
    /// Compression implied by the media type.
    pub compression: Compression,
}

/// A single-platform image manifest, reduced to what a pull needs.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The config blob's size.
    pub config_size: u64,
    /// Layers bottom to top.
    pub layers: Vec<LayerDescriptor>,
}

/// A parsed manifest response.
#[derive(Debug)]
pub enum Parsed {
    /// An image manifest.
    Manifest(Manifest),
    /// An index / manifest list.
    Index(Box<ImageIndex>),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    fs_layers: Option<serde_json::Value>,
}

/// Parse manifest bytes. The media type comes from the document itself, else from the HTTP
/// `Content-Type`, else from its shape.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
        what: "manifest",
        detail: e.to_string(),
    })?;
    if probe.schema_version == Some(1) || probe.fs_layers.is_some() {
        return Err(ManifestError::Schema1);
    }
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    let media_type = match (probe.media_type.as_deref(), content_type) {
        (Some(m), _) => m.to_owned(),
        (None, Some(c)) if c != "application/json" && !c.is_empty() => c.to_owned(),
        _ if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        _ if probe.layers.is_some() => OCI_MANIFEST.to_owned(),
        _ => {
            return Err(ManifestError::Malformed {
                what: "manifest",
                detail: "neither `layers` nor `manifests` present".into(),
            });
        }
    };
    match media_type.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let index: ImageIndex =
                serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
                    what: "index",
                    detail: e.to_string(),
                })?;
            Ok(Parsed::Index(Box::new(index)))
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: ImageManifest =
                serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
                    what: "manifest",
                    detail: e.to_string(),
                })?;
            Ok(Parsed::Manifest(reduce(&m)?))
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1),
        other => Err(ManifestError::UnsupportedMediaType(other.to_owned())),
    }
}

fn descriptor_digest(d: &Descriptor) -> Result<Digest, ManifestError> {
    let s = d.digest().to_string();
    s.parse()
        .map_err(|_| ManifestError::BadDescriptorDigest(s.clone()))
}

fn reduce(m: &ImageManifest) -> Result<Manifest, ManifestError> {
    let layers = m
        .layers()
        .iter()
        .map(|l| {
            let media_type = l.media_type().to_string();
            Ok(LayerDescriptor {
                digest: descriptor_digest(l)?,
                size: l.size(),
                compression: Compression::from_media_type(&media_type),
                media_type,
            })
        })
        .collect::<Result<Vec<_>, ManifestError>>()?;
    Ok(Manifest {
        config_digest: descriptor_digest(m.config())?,
        config_size: m.config().size(),
        layers,
    })
}

/// The outcome of choosing a platform in an index.
#[derive(Debug)]
pub enum Selection {
    /// The best manifest for the platform.
    Found {
        /// Its digest.
        digest: Digest,
        /// Its media type as the index lists it.
        media_type: String,
    },
    /// Nothing fits; the platforms that were listed.
    NotFound(Vec<String>),
}

/// The platforms an index offers images for (attestations and `unknown` entries left out),
/// as `os/arch[/variant]`, in index order.
pub fn index_platforms(index: &ImageIndex) -> Vec<String> {
    image_entries(index)
        .map(|(_, (os, arch, variant))| platform_string(&os, &arch, variant.as_deref()))
        .collect()
}

/// The index's image entries with their (os, architecture, variant).
fn image_entries(
    index: &ImageIndex,
) -> impl Iterator<Item = (&Descriptor, (String, String, Option<String>))> {
    index.manifests().iter().filter_map(|d| {
        if is_attestation(d) {
            return None;
        }
        let p = d.platform().as_ref()?;
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        if os == "unknown" || arch == "unknown" {
            return None;
        }
        Some((d, (os, arch, p.variant().clone())))
    })
}

/// `os/arch[/variant]`.
pub(crate) fn platform_string(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// Choose the manifest of an index that best fits `target`. Attestation manifests and
/// `unknown/unknown` entries are skipped; among runnable entries the highest
/// [`Platform::score`] wins, and the first listed wins a tie.
pub fn select_platform(index: &ImageIndex, target: &Platform) -> Result<Selection, ManifestError> {
    let mut best: Option<(u32, &Descriptor)> = None;
    let mut available = Vec::new();
    for (d, (os, arch, variant)) in image_entries(index) {
        available.push(platform_string(&os, &arch, variant.as_deref()));
        if let Some(score) = target.score(&os, &arch, variant.as_deref())
            && best.is_none_or(|(b, _)| score > b)
        {
            best = Some((score, d));
        }
    }
    match best {
        Some((_, d)) => Ok(Selection::Found {
            digest: descriptor_digest(d)?,
            media_type: d.media_type().to_string(),
        }),
        None => Ok(Selection::NotFound(available)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn manifest(media_type: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":10}},
            "layers":[{{"mediaType":"{layer_type}","digest":"{D2}","size":20}}]}}"#
        )
    }

    #[test]
    fn parses_oci_and_docker_manifests() {
        for (mt, lt, c) in [
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar",
                Compression::None,
            ),
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (OCI_MANIFEST, "application/x-unknown", Compression::Detect),
        ] {
            let Parsed::Manifest(m) = parse(manifest(mt, lt).as_bytes(), None).unwrap() else {
                panic!("not a manifest")
            };
            assert_eq!(m.config_digest.to_string(), D1);
            assert_eq!(m.layers[0].digest.to_string(), D2);
            assert_eq!(m.layers[0].size, 20);
            assert_eq!(m.layers[0].compression, c);
        }
    }

    #[test]
    fn rejects_schema1_and_garbage() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            parse(s1.as_bytes(), None),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            parse(b"not json", None),
            Err(ManifestError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"{}", None),
            Err(ManifestError::Malformed { .. })
        ));
        let bad_digest = manifest(OCI_MANIFEST, "x").replace(D2, "sha256:zz");
        assert!(parse(bad_digest.as_bytes(), None).is_err());
        assert!(matches!(
            parse(br#"{"mediaType":"text/plain"}"#, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }

    fn index() -> ImageIndex {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v6"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D3}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{D3}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
        );
        match parse(json.as_bytes(), None).unwrap() {
            Parsed::Index(i) => *i,
            Parsed::Manifest(_) => panic!("not an index"),
        }
    }

    #[test]
    fn selects_exact_variant_over_compatible() {
        let Selection::Found { digest, .. } =
            select_platform(&index(), &Platform::with_variant("linux", "arm", "v7")).unwrap()
        else {
            panic!("not found")
        };
        assert_eq!(digest.to_string(), D2);
        let Selection::Found { digest, .. } =
            select_platform(&index(), &Platform::new("linux", "amd64")).unwrap()
        else {
            panic!("not found")
        };
        assert_eq!(digest.to_string(), D3);
    }

    #[test]
    fn not_found_lists_platforms_without_attestations() {
        let Selection::NotFound(avail) =
            select_platform(&index(), &Platform::new("linux", "s390x")).unwrap()
        else {
            panic!("found")
        };
        assert_eq!(avail, vec!["linux/arm/v6", "linux/arm/v7", "linux/amd64"]);
    }
}
