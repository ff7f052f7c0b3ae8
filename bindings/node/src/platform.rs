//! `Platform`: the OS/architecture/variant an image is pulled for.

use microsandbox_image as core;
use microsandbox_image::ErrorKind;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::kind_error;

/// A target platform, normalised as the core does (`x86_64` → `amd64`, `aarch64` →
/// `arm64/v8`, `armhf` → `arm/v7`).
#[napi]
#[derive(Clone)]
pub struct Platform {
    pub(crate) inner: core::Platform,
}

#[napi]
impl Platform {
    /// `os`/`arch` with an optional `variant` (`new Platform('linux', 'arm', 'v6')`).
    #[napi(constructor)]
    pub fn new(os: String, arch: String, variant: Option<String>) -> Self {
        let inner = match variant {
            Some(v) => core::Platform::with_variant(os, arch, v),
            None => core::Platform::new(os, arch),
        };
        Platform { inner }
    }

    /// Linux on the architecture this addon was built for (`linux/amd64`, `linux/arm64/v8`).
    #[napi(factory)]
    pub fn host_linux() -> Self {
        Platform {
            inner: core::Platform::host_linux(),
        }
    }

    /// Parses `os/arch` or `os/arch/variant`. Throws `INVALID_ARGUMENT` otherwise.
    #[napi(factory)]
    pub fn parse(env: Env, platform: String) -> Result<Self> {
        match platform.parse() {
            Ok(inner) => Ok(Platform { inner }),
            Err(e) => Err(kind_error(
                &env,
                ErrorKind::InvalidArgument,
                &format!("invalid platform {platform:?}: {e}"),
            )),
        }
    }

    /// The operating system (`linux`).
    #[napi(getter)]
    pub fn os(&self) -> String {
        self.inner.os().to_owned()
    }

    /// The architecture as OCI names it (`amd64`, `arm64`, `arm`, …).
    #[napi(getter)]
    pub fn arch(&self) -> String {
        self.inner.architecture().to_owned()
    }

    /// The variant (`v8` for `arm64`, `v7` for `arm` by default), or `null`.
    #[napi(getter)]
    pub fn variant(&self) -> Option<String> {
        self.inner.variant().map(str::to_owned)
    }

    /// `os/arch[/variant]`, as `Platform.parse` reads it.
    #[napi(js_name = "toString")]
    pub fn to_js_string(&self) -> String {
        self.inner.to_string()
    }
}
