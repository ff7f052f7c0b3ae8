//! The image config: the runtime settings a sandbox needs (env, cmd, entrypoint, …) and the
//! `rootfs.diff_ids` that name each layer's uncompressed content.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use crate::digest::Digest;
use crate::manifest::ManifestError;

/// The parts of an OCI image config a runtime uses. Built from the verified config blob; the
/// full document stays available through [`ImageConfig::oci`].
///
/// ```
/// # use microsandbox_image::ImageConfig;
/// let json = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
///                "config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/srv"}}"#;
/// let config = ImageConfig::from_json(json).unwrap();
/// assert_eq!(config.env, vec!["PATH=/bin"]);
/// assert_eq!(config.cmd, Some(vec!["sh".to_string()]));
/// assert_eq!(config.working_dir.as_deref(), Some("/srv"));
/// ```
/// Equality compares the runtime fields above; the raw OCI document is not compared (its
/// maps have no stable order).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ImageConfig {
    /// `KEY=value` environment entries.
    pub env: Vec<String>,
    /// Default command (arguments to the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// `user[:group]`, by name or id.
    pub user: Option<String>,
    /// Exposed ports such as `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Volume mount points, sorted.
    pub volumes: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Signal that stops the container, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    /// Operating system the image is built for.
    pub os: String,
    /// CPU architecture the image is built for.
    pub architecture: String,
    /// CPU variant, if any.
    pub variant: Option<String>,
    #[serde(skip)]
    oci: Option<Box<ImageConfiguration>>,
}

/// In report schemas (`RemoteImage.config`) the config is its own type, which each front door
/// maps to its image-config class.
impl crate::progress::SchemaType for ImageConfig {
    const NAME: &'static str = "ImageConfig";
}

impl PartialEq for ImageConfig {
    fn eq(&self, o: &Self) -> bool {
        (
            &self.env,
            &self.cmd,
            &self.entrypoint,
            &self.working_dir,
            &self.user,
            &self.exposed_ports,
            &self.volumes,
            &self.labels,
            &self.stop_signal,
            &self.os,
            &self.architecture,
            &self.variant,
        ) == (
            &o.env,
            &o.cmd,
            &o.entrypoint,
            &o.working_dir,
            &o.user,
            &o.exposed_ports,
            &o.volumes,
            &o.labels,
            &o.stop_signal,
            &o.os,
            &o.architecture,
            &o.variant,
        )
    }
}

impl Eq for ImageConfig {}

impl ImageConfig {
    /// Parse a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        let oci: ImageConfiguration =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
                what: "image config",
                detail: e.to_string(),
            })?;
        Ok(Self::from_oci(oci))
    }

    fn from_oci(oci: ImageConfiguration) -> ImageConfig {
        let c = oci.config().clone().unwrap_or_default();
        let sorted = |v: &Option<Vec<String>>| {
            let mut v = v.clone().unwrap_or_default();
            v.sort();
            v
        };
        ImageConfig {
            env: c.env().clone().unwrap_or_default(),
            cmd: c.cmd().clone(),
            entrypoint: c.entrypoint().clone(),
            working_dir: c.working_dir().clone().filter(|s| !s.is_empty()),
            user: c.user().clone().filter(|s| !s.is_empty()),
            exposed_ports: sorted(c.exposed_ports()),
            volumes: sorted(c.volumes()),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
            stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
            os: oci.os().to_string(),
            architecture: oci.architecture().to_string(),
            variant: oci.variant().clone(),
            oci: Some(Box::new(oci)),
        }
    }

    /// The full OCI config document (absent only for a config restored from an old record).
    pub fn oci(&self) -> Option<&ImageConfiguration> {
        self.oci.as_deref()
    }

    /// The layers' uncompressed digests, bottom to top.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ManifestError> {
        let Some(oci) = &self.oci else {
            return Ok(Vec::new());
        };
        oci.rootfs()
            .diff_ids()
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|_| ManifestError::BadDescriptorDigest(d.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_runtime_field() {
        let json = br#"{"architecture":"arm64","variant":"v8","os":"linux",
          "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
          "config":{"Env":["A=1","B=2"],"Cmd":["-c","x"],"Entrypoint":["/bin/sh"],"WorkingDir":"/w",
            "User":"1000:1000","ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Volumes":{"/data":{}},
            "Labels":{"a":"b"},"StopSignal":"SIGINT"}}"#;
        let c = ImageConfig::from_json(json).unwrap();
        assert_eq!(c.env, ["A=1", "B=2"]);
        assert_eq!(
            c.cmd.as_deref(),
            Some(&["-c".to_string(), "x".to_string()][..])
        );
        assert_eq!(c.entrypoint.as_deref(), Some(&["/bin/sh".to_string()][..]));
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(c.volumes, ["/data"]);
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!((c.os.as_str(), c.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(c.diff_ids().unwrap().len(), 1);
    }

    #[test]
    fn rejects_malformed_config() {
        assert!(ImageConfig::from_json(b"[]").is_err());
        assert!(ImageConfig::from_json(br#"{"os":"linux"}"#).is_err());
    }
}
