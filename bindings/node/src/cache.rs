//! `GlobalCache`: the content-addressed cache directory shared by every process, and its life
//! cycle (`images`, `layers`, `diskUsage`, `removeImage`, `gc`, `holdLayer`). Those calls
//! walk the file system and take file locks, so they run on the runtime's blocking threads
//! and return Promises; reports come back as the core's camelCase data (typed in index.d.ts
//! from the core's report schemas).

use std::sync::Arc;

use microsandbox_image as core;
use microsandbox_image::{ErrorKind, GcPolicy};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use serde_json::Value;

use crate::error::{core_error, kind_error};
use crate::lease::LayerLease;

/// The shared cache of layers, manifests and image records (created if missing). Cheap to
/// hand to any number of registries; processes share it safely through file locks.
#[napi]
pub struct GlobalCache {
    pub(crate) inner: core::GlobalCache,
}

/// Runs `work` on a blocking thread of the runtime; the promise resolves with `done` of its
/// result, made on the JS thread, or rejects with its error.
fn blocking<'env, T, V>(
    env: &'env Env,
    work: impl FnOnce() -> core::Result<T> + Send + 'static,
    done: impl FnOnce(&Env, T) -> Result<V> + 'static,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(tokio::task::spawn_blocking(work).await) },
        move |env, joined| match joined {
            Ok(Ok(value)) => done(env, value),
            Ok(Err(e)) => Err(core_error(env, &e)),
            Err(e) => Err(kind_error(
                env,
                ErrorKind::Internal,
                &format!("a cache task failed: {e}"),
            )),
        },
    )
}

/// `work`'s report as JS data (run on a blocking thread).
pub(crate) fn report<'env, T, E>(
    env: &'env Env,
    work: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> Result<PromiseRaw<'env, Value>>
where
    T: serde::Serialize + Send + 'static,
    core::Error: From<E>,
{
    blocking(env, move || work().map_err(core::Error::from), to_data)
}

/// The report of the core future `work` as JS data.
pub(crate) fn async_report<'env, T>(
    env: &'env Env,
    work: impl Future<Output = core::Result<T>> + Send + 'static,
) -> Result<PromiseRaw<'env, Value>>
where
    T: serde::Serialize + Send + 'static,
{
    env.spawn_future_with_callback(async move { Ok(work.await) }, |env, outcome| {
        outcome
            .map_err(|e| core_error(env, &e))
            .and_then(|report| to_data(env, report))
    })
}

/// A report as JS data (the core's camelCase serde form).
fn to_data<T: serde::Serialize>(env: &Env, report: T) -> Result<Value> {
    serde_json::to_value(report).map_err(|e| {
        kind_error(
            env,
            ErrorKind::Internal,
            &format!("cannot convert a report: {e}"),
        )
    })
}

/// A promise that rejects with `error` (bad arguments reject, as for a pull).
pub(crate) fn rejected<'env, V: ToNapiValue + 'static>(
    env: &'env Env,
    error: napi::Error,
) -> Result<PromiseRaw<'env, V>> {
    env.spawn_future_with_callback(async move { Ok::<_, napi::Error>(()) }, move |_, ()| {
        Err::<V, _>(error)
    })
}

/// A platform given as a `Platform` or its string form.
pub(crate) fn platform(env: &Env, value: Option<Unknown<'_>>) -> Result<Option<core::Platform>> {
    let Some(value) = value else { return Ok(None) };
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Object => ClassInstance::<crate::Platform>::from_unknown(value)
            .map(|p| Some(p.inner.clone()))
            .map_err(|_| {
                kind_error(
                    env,
                    ErrorKind::InvalidArgument,
                    "platform must be a Platform or a string",
                )
            }),
        _ => {
            let text = String::from_unknown(value).map_err(|_| {
                kind_error(
                    env,
                    ErrorKind::InvalidArgument,
                    "platform must be a Platform or a string",
                )
            })?;
            text.parse().map(Some).map_err(|e| {
                kind_error(
                    env,
                    ErrorKind::InvalidArgument,
                    &format!("invalid platform {text:?}: {e}"),
                )
            })
        }
    }
}

/// The core's gc policy from its JS data (`undefined`/`null`: the default).
fn gc_policy(env: &Env, policy: Option<Value>) -> Result<GcPolicy> {
    match policy {
        None | Some(Value::Null) => Ok(GcPolicy::default()),
        Some(value) => GcPolicy::from_json(&crate::json::integral(value).to_string())
            .map_err(|e| core_error(env, &e)),
    }
}

#[napi]
impl GlobalCache {
    /// Opens (and creates if needed) the cache at `path`. Throws `IO` when it cannot be
    /// created.
    /// `options` (the core's `CacheOptions`): `group` shares the cache read-only with a group
    /// (name or gid: directories `2750`, files `0640`); `readOnly` opens it as a reader that
    /// never writes (the cache may belong to another user). An unknown key throws
    /// `INVALID_ARGUMENT`.
    #[napi(
        constructor,
        ts_args_type = "path: string, options?: CacheOptions | null"
    )]
    pub fn new(env: Env, path: String, options: Option<Value>) -> Result<Self> {
        let options = match options {
            None | Some(Value::Null) => core::cache::CacheOptions::default(),
            Some(value) => serde_json::from_value(crate::json::integral(value)).map_err(|e| {
                kind_error(
                    &env,
                    ErrorKind::InvalidArgument,
                    &format!("cache options: {e}"),
                )
            })?,
        };
        match core::GlobalCache::with_options(&path, &options) {
            Ok(inner) => Ok(GlobalCache { inner }),
            Err(e) => Err(core_error(&env, &core::Error::from(e))),
        }
    }

    /// Whether the cache was opened read-only (it never writes).
    #[napi(getter)]
    pub fn read_only(&self) -> bool {
        self.inner.is_read_only()
    }

    /// Checks every layer's tree against its index and content digests, and the images'
    /// records and manifests (only the images `references` name, and their layers, when
    /// given). Reports damage; changes nothing. A malformed reference rejects with
    /// `INVALID_REFERENCE`.
    #[napi(
        ts_args_type = "references?: string[] | null",
        ts_return_type = "Promise<VerifyReport>"
    )]
    pub fn verify<'env>(
        &self,
        env: &'env Env,
        references: Option<Vec<String>>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let only = references
            .unwrap_or_default()
            .iter()
            .map(|r| crate::reference::parse(env, r))
            .collect::<Result<Vec<_>>>();
        match only {
            Ok(only) => {
                let cache = self.inner.clone();
                report(env, move || cache.verify(&only))
            }
            Err(e) => rejected(env, e),
        }
    }

    /// The cache's root directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.root().to_string_lossy().into_owned()
    }

    /// The images in the cache, sorted by name.
    #[napi(ts_return_type = "Promise<CachedImage[]>")]
    pub fn images<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Value>> {
        let cache = self.inner.clone();
        report(env, move || cache.images())
    }

    /// The layers in the cache, with their size and the names of the images that hold them
    /// (walks every layer tree).
    #[napi(ts_return_type = "Promise<CachedLayer[]>")]
    pub fn layers<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Value>> {
        let cache = self.inner.clone();
        report(env, move || cache.layers())
    }

    /// Bytes per image (exclusive and shared), per layer, unreferenced and in `tmp/`.
    #[napi(ts_return_type = "Promise<DiskUsage>")]
    pub fn disk_usage<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Value>> {
        let cache = self.inner.clone();
        report(env, move || cache.disk_usage())
    }

    /// Removes the image `reference` (for `platform`, or every platform it was pulled for)
    /// and the layers only it held, unless someone holds them (`inUseLayers`). Rejects with
    /// `INVALID_REFERENCE` for a malformed reference, `NOT_FOUND` when the cache does not
    /// hold the image.
    #[napi(
        ts_args_type = "reference: string, platform?: string | Platform | null",
        ts_return_type = "Promise<GcReport>"
    )]
    pub fn remove_image<'env>(
        &self,
        env: &'env Env,
        reference: String,
        platform_arg: Option<Unknown<'_>>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let parsed = crate::reference::parse(env, &reference)
            .and_then(|r| Ok((r, platform(env, platform_arg)?)));
        match parsed {
            Ok((reference, platform)) => {
                let cache = self.inner.clone();
                report(env, move || {
                    cache.remove_image(&reference, platform.as_ref())
                })
            }
            Err(e) => rejected(env, e),
        }
    }

    /// Collects garbage: debris, layers and manifests no image refers to, and the images the
    /// policy evicts (`maxSize`: least recently used first until the layers fit;
    /// `keepRecent`: seconds within which an image is never evicted, alone it evicts every
    /// other; `dryRun`: report, remove nothing). An unknown key or a bad value rejects with
    /// `INVALID_ARGUMENT`. Layers someone holds are left and listed in `inUseLayers`.
    #[napi(
        ts_args_type = "policy?: GcPolicy | null",
        ts_return_type = "Promise<GcReport>"
    )]
    pub fn gc<'env>(
        &self,
        env: &'env Env,
        policy: Option<Value>,
    ) -> Result<PromiseRaw<'env, Value>> {
        match gc_policy(env, policy) {
            Ok(policy) => {
                let cache = self.inner.clone();
                report(env, move || cache.gc(&policy))
            }
            Err(e) => rejected(env, e),
        }
    }

    /// Holds the layer `diffId` (`sha256:…`) until the lease is released: `gc`, `removeImage`
    /// and forced pulls, in any process, leave its tree alone. Rejects with
    /// `INVALID_ARGUMENT` when `diffId` is not a digest.
    #[napi(ts_return_type = "Promise<LayerLease>")]
    pub fn hold_layer<'env>(
        &self,
        env: &'env Env,
        diff_id: String,
    ) -> Result<PromiseRaw<'env, LayerLease>> {
        let diff_id: core::Digest = match diff_id.parse() {
            Ok(d) => d,
            Err(e) => {
                let error = kind_error(env, ErrorKind::InvalidArgument, &format!("diffId: {e}"));
                return rejected(env, error);
            }
        };
        let cache = self.inner.clone();
        blocking(
            env,
            move || cache.hold_layer(&diff_id).map_err(core::Error::from),
            |_, lease: Arc<core::LayerLease>| Ok(LayerLease::new(lease)),
        )
    }
}
