//! Image fixtures: [`ImageBuilder`] turns [`Layer`]s plus runtime settings into a real OCI
//! image config (with `rootfs.diff_ids` in order and one `history` entry per layer) and a
//! manifest in OCI or Docker schema 2 form; [`build_index`] makes an OCI image index or a
//! Docker manifest list over several images. All JSON is serialised once and its bytes are
//! what gets digested and pushed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::layer::{Layer, sha256_digest};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer media type.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Which family of media types a manifest (or index) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ManifestFormat {
    /// OCI image spec media types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 (and manifest list) media types.
    DockerV2,
}

impl ManifestFormat {
    /// The manifest media type.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => OCI_MANIFEST,
            ManifestFormat::DockerV2 => DOCKER_MANIFEST,
        }
    }

    /// The index / manifest-list media type.
    pub fn index_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => OCI_INDEX,
            ManifestFormat::DockerV2 => DOCKER_MANIFEST_LIST,
        }
    }

    /// The config media type.
    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => OCI_CONFIG,
            ManifestFormat::DockerV2 => DOCKER_CONFIG,
        }
    }

    /// A layer's media type in this format: OCI gzip and plain tar map to their Docker
    /// names; anything else (zstd, in-toto, …) is kept.
    pub fn layer_media_type(self, oci: &str) -> String {
        match (self, oci) {
            (ManifestFormat::DockerV2, "application/vnd.oci.image.layer.v1.tar+gzip") => {
                DOCKER_LAYER_GZIP.to_string()
            }
            (ManifestFormat::DockerV2, "application/vnd.oci.image.layer.v1.tar") => {
                DOCKER_LAYER_TAR.to_string()
            }
            _ => oci.to_string(),
        }
    }
}

/// A built single-platform image: config, manifest and layer blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Config JSON bytes.
    pub config: Vec<u8>,
    /// `sha256:` digest of `config`.
    pub config_digest: String,
    /// Manifest JSON bytes.
    pub manifest: Vec<u8>,
    /// `sha256:` digest of `manifest`.
    pub manifest_digest: String,
    /// Manifest media type.
    pub manifest_media_type: String,
    /// Layers in order, media types as written in the manifest.
    pub layers: Vec<Layer>,
    /// (os, architecture, variant).
    pub platform: (String, String, Option<String>),
}

impl Image {
    /// This image's manifest descriptor with its platform, as an index entry.
    pub fn index_entry(&self) -> Value {
        let (os, arch, variant) = &self.platform;
        let mut platform = json!({"architecture": arch, "os": os});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        json!({
            "mediaType": self.manifest_media_type,
            "digest": self.manifest_digest,
            "size": self.manifest.len(),
            "platform": platform,
        })
    }

    /// The parsed config JSON.
    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config).expect("config is JSON")
    }
}

/// A built index (OCI image index or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIndex {
    /// Index JSON bytes.
    pub bytes: Vec<u8>,
    /// `sha256:` digest of `bytes`.
    pub digest: String,
    /// Index media type.
    pub media_type: String,
}

/// Declares a single-platform image.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    os: String,
    arch: String,
    variant: Option<String>,
    layers: Vec<Layer>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: BTreeMap<String, String>,
    exposed_ports: BTreeSet<String>,
    volumes: BTreeSet<String>,
    stop_signal: Option<String>,
    annotations: BTreeMap<String, String>,
    created: String,
    format: ManifestFormat,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl ImageBuilder {
    /// An image for `os`/`arch` (e.g. "linux", "amd64") with no layers, OCI format.
    pub fn new(os: &str, arch: &str) -> Self {
        ImageBuilder {
            os: os.to_string(),
            arch: arch.to_string(),
            variant: None,
            layers: Vec::new(),
            env: Vec::new(),
            cmd: None,
            entrypoint: None,
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: BTreeSet::new(),
            volumes: BTreeSet::new(),
            stop_signal: None,
            annotations: BTreeMap::new(),
            created: "2023-11-14T22:13:20Z".to_string(),
            format: ManifestFormat::Oci,
        }
    }

    /// Sets the platform variant (e.g. "v8", "v7").
    pub fn variant(mut self, v: &str) -> Self {
        self.variant = Some(v.to_string());
        self
    }

    /// Appends a layer (bottom first).
    pub fn layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }

    /// Adds an `Env` entry, `KEY=value`.
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_string());
        self
    }

    /// Sets `Cmd`.
    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = Some(strings(args));
        self
    }

    /// Sets `Entrypoint`.
    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = Some(strings(args));
        self
    }

    /// Sets `WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_string());
        self
    }

    /// Sets `User`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Adds a config label.
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }

    /// Adds an exposed port such as "80/tcp".
    pub fn exposed_port(mut self, port: &str) -> Self {
        self.exposed_ports.insert(port.to_string());
        self
    }

    /// Adds a volume such as "/data".
    pub fn volume(mut self, path: &str) -> Self {
        self.volumes.insert(path.to_string());
        self
    }

    /// Sets `StopSignal`.
    pub fn stop_signal(mut self, sig: &str) -> Self {
        self.stop_signal = Some(sig.to_string());
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_string(), v.to_string());
        self
    }

    /// Sets the config's `created` timestamp (RFC 3339).
    pub fn created(mut self, rfc3339: &str) -> Self {
        self.created = rfc3339.to_string();
        self
    }

    /// Chooses OCI or Docker schema 2 media types.
    pub fn format(mut self, f: ManifestFormat) -> Self {
        self.format = f;
        self
    }

    fn runtime_config(&self) -> Map<String, Value> {
        let mut c = Map::new();
        if let Some(u) = &self.user {
            c.insert("User".into(), json!(u));
        }
        if !self.exposed_ports.is_empty() {
            let ports: Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            c.insert("ExposedPorts".into(), Value::Object(ports));
        }
        if !self.env.is_empty() {
            c.insert("Env".into(), json!(self.env));
        }
        if let Some(e) = &self.entrypoint {
            c.insert("Entrypoint".into(), json!(e));
        }
        if let Some(cmd) = &self.cmd {
            c.insert("Cmd".into(), json!(cmd));
        }
        if !self.volumes.is_empty() {
            let vols: Map<String, Value> = self
                .volumes
                .iter()
                .map(|v| (v.clone(), json!({})))
                .collect();
            c.insert("Volumes".into(), Value::Object(vols));
        }
        if let Some(w) = &self.working_dir {
            c.insert("WorkingDir".into(), json!(w));
        }
        if !self.labels.is_empty() {
            c.insert("Labels".into(), json!(self.labels));
        }
        if let Some(s) = &self.stop_signal {
            c.insert("StopSignal".into(), json!(s));
        }
        c
    }

    /// Serialises config and manifest and computes their digests.
    pub fn build(&self) -> Image {
        let layers: Vec<Layer> = self
            .layers
            .iter()
            .map(|l| Layer {
                media_type: self.format.layer_media_type(&l.media_type),
                ..l.clone()
            })
            .collect();
        let history: Vec<Value> = (0..layers.len())
            .map(|i| {
                json!({
                    "created": self.created,
                    "created_by": format!("msbimage-testkit layer {i}"),
                })
            })
            .collect();
        let mut config = json!({
            "created": self.created,
            "architecture": self.arch,
            "os": self.os,
            "config": Value::Object(self.runtime_config()),
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history,
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).expect("config JSON");
        let config_digest = sha256_digest(&config);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": self.format.manifest_media_type(),
            "config": {
                "mediaType": self.format.config_media_type(),
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers.iter().map(|l| json!({
                "mediaType": l.media_type,
                "digest": l.digest,
                "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let manifest = serde_json::to_vec(&manifest).expect("manifest JSON");
        Image {
            config_digest,
            config,
            manifest_digest: sha256_digest(&manifest),
            manifest,
            manifest_media_type: self.format.manifest_media_type().to_string(),
            layers,
            platform: (self.os.clone(), self.arch.clone(), self.variant.clone()),
        }
    }
}

/// An index over `images` (one platform entry each, in order) followed by
/// `extra_entries` verbatim (e.g. attestation manifests with platform unknown/unknown).
pub fn build_index(
    images: &[&Image],
    format: ManifestFormat,
    extra_entries: Vec<Value>,
) -> ImageIndex {
    let mut manifests: Vec<Value> = images.iter().map(|i| i.index_entry()).collect();
    manifests.extend(extra_entries);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": format.index_media_type(),
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index).expect("index JSON");
    ImageIndex {
        digest: sha256_digest(&bytes),
        bytes,
        media_type: format.index_media_type().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Compression, LayerBuilder};

    #[test]
    fn config_lists_diff_ids_in_order() {
        let a = LayerBuilder::new()
            .file("a", "a", 0o644)
            .build(Compression::Gzip);
        let b = LayerBuilder::new()
            .file("b", "b", 0o644)
            .build(Compression::Zstd);
        let img = ImageBuilder::new("linux", "arm64")
            .variant("v8")
            .layer(a.clone())
            .layer(b.clone())
            .cmd(&["sh"])
            .build();
        let cfg = img.config_json();
        assert_eq!(cfg["rootfs"]["diff_ids"], json!([a.diff_id, b.diff_id]));
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["variant"], "v8");
        let m: Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(m["config"]["digest"], img.config_digest);
        assert_eq!(m["layers"][1]["mediaType"], Compression::Zstd.media_type());
    }

    #[test]
    fn docker_format_renames_layer_types() {
        let a = LayerBuilder::new()
            .file("a", "a", 0o644)
            .build(Compression::Gzip);
        let img = ImageBuilder::new("linux", "amd64")
            .layer(a)
            .format(ManifestFormat::DockerV2)
            .build();
        let m: Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(m["mediaType"], DOCKER_MANIFEST);
        assert_eq!(m["config"]["mediaType"], DOCKER_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], DOCKER_LAYER_GZIP);
        assert_eq!(img.layers[0].media_type, DOCKER_LAYER_GZIP);
    }
}
