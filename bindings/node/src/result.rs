//! `PullResult` and `ImageConfig`: what a pull gives back, copied out of the core's result.

use std::path::Path;

use microsandbox_image as core;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::layer_stack::LayerStack;
use crate::platform::Platform;

/// The runtime settings of an image (its OCI config, the parts a sandbox uses).
#[napi(object)]
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

impl From<&core::ImageConfig> for ImageConfig {
    fn from(c: &core::ImageConfig) -> Self {
        ImageConfig {
            env: c.env.clone(),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            exposed_ports: c.exposed_ports.clone(),
            volumes: c.volumes.clone(),
            labels: c.labels.clone().into_iter().collect(),
            stop_signal: c.stop_signal.clone(),
            os: c.os.clone(),
            architecture: c.architecture.clone(),
            variant: c.variant.clone(),
        }
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
    pub fn config(&self) -> ImageConfig {
        ImageConfig::from(&self.inner.config)
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
