//! `GlobalCache`: the content-addressed cache directory shared by every process.

use microsandbox_image as core;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::core_error;

/// The shared cache of layers, manifests and image records (created if missing). Cheap to
/// hand to any number of registries; processes share it safely through file locks.
#[napi]
pub struct GlobalCache {
    pub(crate) inner: core::GlobalCache,
}

#[napi]
impl GlobalCache {
    /// Opens (and creates if needed) the cache at `path`. Throws `IO` when it cannot be
    /// created.
    #[napi(constructor)]
    pub fn new(env: Env, path: String) -> Result<Self> {
        match core::GlobalCache::new(&path) {
            Ok(inner) => Ok(GlobalCache { inner }),
            Err(e) => Err(core_error(&env, &core::Error::from(e))),
        }
    }

    /// The cache's root directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.root().to_string_lossy().into_owned()
    }
}
