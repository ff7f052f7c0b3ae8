//! `PullResult` and `ImageConfig`: what a pull gives back, copied out of the core's result.

use std::path::Path;

use microsandbox_image as core;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::layer_stack::LayerStack;
use crate::platform::Platform;

/// The runtime settings of an image (its OCI config, the parts a sandbox uses).
#[napi(object)]
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    pub labels: std::collections::HashMap<String, String>,
    /// Signal that stops the container, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
    /// Operating system the image is built for.
    pub os: String,
    /// CPU architecture the image is built for.
    pub architecture: String,
    /// CPU variant, if any.
    pub variant: Option<String>,
}

impl ImageConfig {
    /// The core's config as JS sees it, through the one conversion `RemoteImage.config` takes
    /// too ([`camel_keys`](crate::json::camel_keys) of the core's serde form), so the two
    /// cannot differ. Fails only if this struct and the core's fields part (a bug that the
    /// unit test below catches first).
    pub(crate) fn of(c: &core::ImageConfig) -> serde_json::Result<ImageConfig> {
        serde_json::from_value(crate::json::camel_keys(serde_json::to_value(c)?))
    }
}

/// What a pull produced: where the layers are, bottom to top, and the image's identity.
#[napi]
pub struct PullResult {
    pub(crate) inner: core::PullResult,
}

fn paths(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths.iter().map(|p| path_string(p)).collect()
}

pub(crate) fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[napi]
impl PullResult {
    /// The normalised reference pulled.
    #[napi(getter)]
    pub fn reference(&self) -> String {
        self.inner.reference.to_string()
    }

    /// The platform pulled for.
    #[napi(getter)]
    pub fn platform(&self) -> Platform {
        Platform {
            inner: self.inner.platform.clone(),
        }
    }

    /// Extracted layer trees (`…/layers/sha256/<diff_id>/fs`), bottom to top.
    #[napi(getter)]
    pub fn layers(&self) -> Vec<String> {
        paths(&self.inner.layers)
    }

    /// Each layer's sidecar index file, parallel to `layers`.
    #[napi(getter)]
    pub fn layer_indexes(&self) -> Vec<String> {
        paths(&self.inner.layer_indexes)
    }

    /// Each layer's EROFS image, parallel to `layers`: present when this pull or an earlier
    /// one of the layer had `"erofs-layers"` among its `outputs`.
    #[napi(getter)]
    pub fn layer_images(&self) -> Vec<String> {
        paths(&self.inner.layer_images)
    }

    /// The flat EROFS image of the whole image (its layers merged), when this pull had
    /// `"erofs-flat"` among its `outputs`; `null` otherwise.
    #[napi(getter)]
    pub fn flat_image(&self) -> Option<String> {
        self.inner.flat_image.as_deref().map(path_string)
    }

    /// The layers' uncompressed digests (`sha256:…`), parallel to `layers`.
    #[napi(getter)]
    pub fn layer_diff_ids(&self) -> Vec<String> {
        self.inner
            .layer_diff_ids
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The image config.
    #[napi(getter)]
    pub fn config(&self) -> Result<ImageConfig> {
        ImageConfig::of(&self.inner.config)
            .map_err(|e| Error::from_reason(format!("cannot convert the image config: {e}")))
    }

    /// The config blob's digest (the image ID).
    #[napi(getter)]
    pub fn config_digest(&self) -> String {
        self.inner.config_digest.to_string()
    }

    /// The platform manifest's digest.
    #[napi(getter)]
    pub fn manifest_digest(&self) -> String {
        self.inner.manifest_digest.to_string()
    }

    /// The index's digest when the reference resolved through an index, else `null`.
    #[napi(getter)]
    pub fn index_digest(&self) -> Option<String> {
        self.inner.index_digest.as_ref().map(ToString::to_string)
    }

    /// True when the answer came from the cache without contacting the registry.
    #[napi(getter)]
    pub fn cached(&self) -> bool {
        self.inner.cached
    }

    /// The merged view of the image's layers, answered from their sidecar indexes. Throws
    /// `IO` when an index is missing (pulled with `buildIndex: false`) or corrupt.
    #[napi]
    pub fn layer_stack(&self, env: Env) -> Result<LayerStack> {
        LayerStack::open(&env, &self.inner)
    }

    /// Writes the image's merged root filesystem under `dest` (missing or an empty directory)
    /// as an ordinary tree: real symlinks, hardlinks, modes, times, xattrs, and owners when
    /// run as root. `rootless` (default: unless running as root) writes owners as
    /// `user.rootlesscontainers` xattrs and devices as empty files, as `umoci unpack
    /// --rootless` does. A destination that is not empty rejects with `INVALID_ARGUMENT`.
    #[napi(
        ts_args_type = "dest: string, options?: { rootless?: boolean } | null",
        ts_return_type = "Promise<UnpackReport>"
    )]
    pub fn unpack<'env>(
        &self,
        env: &'env Env,
        dest: String,
        options: Option<UnpackOptions>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let result = self.inner.clone();
        let opts = core::unpack::UnpackOptions {
            rootless: options.and_then(|o| o.rootless),
        };
        crate::cache::report(env, move || result.unpack(Path::new(&dest), &opts))
    }
}

/// How `result.unpack` writes owners and devices.
#[napi(object)]
pub struct UnpackOptions {
    /// Owners as xattrs and devices as empty files (default: unless running as root).
    pub rootless: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the core's config reaches the JS object, set or not.
    #[test]
    fn the_config_converts_with_every_field_set_and_with_none() {
        let full = br#"{"architecture":"arm64","os":"linux","variant":"v8",
            "rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Env":["A=1"],"Cmd":["sh"],"Entrypoint":["/init"],"WorkingDir":"/srv",
                      "User":"1:2","ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},
                      "Labels":{"a_b":"c"},"StopSignal":"SIGINT"}}"#;
        let c = ImageConfig::of(&core::ImageConfig::from_json(full).unwrap()).unwrap();
        assert_eq!(
            (
                c.working_dir.as_deref(),
                c.stop_signal.as_deref(),
                c.variant.as_deref()
            ),
            (Some("/srv"), Some("SIGINT"), Some("v8"))
        );
        assert_eq!(
            (c.exposed_ports, c.volumes),
            (vec!["80/tcp".to_string()], vec!["/data".to_string()])
        );
        assert_eq!(
            c.labels.get("a_b").map(String::as_str),
            Some("c"),
            "label keys as they are"
        );
        assert_eq!(
            (c.cmd, c.entrypoint, c.user),
            (
                Some(vec!["sh".into()]),
                Some(vec!["/init".into()]),
                Some("1:2".into())
            )
        );
        let bare =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::of(&core::ImageConfig::from_json(bare).unwrap()).unwrap();
        assert!(c.cmd.is_none() && c.working_dir.is_none() && c.env.is_empty());
    }
}
