//! `Registry`: built from a platform, a cache and the core's registry settings (the options
//! object deserialises straight into `RegistryConfig`), it pulls images. `pull` returns a
//! Promise settled on the JS thread after every progress event was delivered; the pull runs on
//! the runtime's threads, never on the JS thread or libuv's pool.

use microsandbox_image as core;
use microsandbox_image::{CancelToken, ErrorKind, ImageSource, PullOptions, RegistryConfig};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::abort::{self, AbortLink};
use crate::cache::GlobalCache;
use crate::error::{core_error, kind_error};
use crate::events::PullEvents;
use crate::platform::Platform;
use crate::progress::{ProgressFn, deliver};
use crate::pull_options;
use crate::reference;
use crate::result::PullResult;

/// Pulls images into a `GlobalCache`. Cheap to share; concurrent pulls share connections,
/// tokens and in-flight layers.
#[napi]
pub struct Registry {
    inner: core::Registry,
}

/// Why a pull failed: the core said so, or JS did (`onProgress` threw, a bad argument).
pub(crate) enum Failure {
    Core(core::Error),
    Js(napi::Error),
}

impl Failure {
    /// The JS error (built on the JS thread).
    fn into_js(self, env: &Env) -> napi::Error {
        match self {
            Failure::Core(e) => core_error(env, &e),
            Failure::Js(e) => e,
        }
    }
}

#[napi]
impl Registry {
    /// A registry client. `options` are the core's registry settings as data
    /// (`{ insecureRegistries: ['localhost:5000'], concurrency: 8, authFor: { … } }`); an
    /// unknown key throws `INVALID_ARGUMENT` naming it.
    #[napi(
        constructor,
        ts_args_type = "platform: Platform, cache: GlobalCache, options?: RegistryOptions | null"
    )]
    pub fn new(
        env: Env,
        platform: &Platform,
        cache: &GlobalCache,
        options: Option<serde_json::Value>,
    ) -> Result<Self> {
        let config = match options {
            None | Some(serde_json::Value::Null) => RegistryConfig::default(),
            Some(value) => serde_json::from_value(crate::json::integral(value)).map_err(|e| {
                kind_error(
                    &env,
                    ErrorKind::InvalidArgument,
                    &format!("registry options: {e}"),
                )
            })?,
        };
        core::Registry::from_config(platform.inner.clone(), cache.inner.clone(), config)
            .map(|inner| Registry { inner })
            .map_err(|e| core_error(&env, &e))
    }

    /// The default target platform.
    #[napi(getter)]
    pub fn platform(&self) -> Platform {
        Platform {
            inner: self.inner.platform().clone(),
        }
    }

    /// What `reference` resolves to on its registry for `platform` (default: the registry's):
    /// its digest, an index's platforms, the chosen manifest, the config and the layers with
    /// their sizes, verified like a pull's first steps. No layer is downloaded and nothing is
    /// written to the cache. Rejects as a pull would (`PLATFORM_NOT_FOUND`, `NOT_FOUND`, …).
    #[napi(
        ts_args_type = "reference: string, platform?: string | Platform | null",
        ts_return_type = "Promise<RemoteImage>"
    )]
    pub fn inspect<'env>(
        &self,
        env: &'env Env,
        reference: String,
        platform: Option<Unknown<'_>>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let parsed = reference::parse(env, &reference)
            .and_then(|r| Ok((r, crate::cache::platform(env, platform)?)));
        let (reference, platform) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return crate::cache::rejected(env, e),
        };
        let registry = self.inner.clone();
        crate::cache::async_report(env, async move {
            let mut image = serde_json::to_value(registry.inspect(&reference, platform).await?)
                .map_err(|e| core::Error::Internal(format!("cannot convert a report: {e}")))?;
            if let Some(config) = image.get_mut("config") {
                *config = crate::json::camel_keys(config.take());
            }
            Ok(image)
        })
    }

    /// Writes the image `source` names (as `pull` takes it) to `target`, an OCI image layout
    /// (`oci-layout:DIR[:TAG]`) or a docker archive (`docker-archive:FILE[:NAME:TAG]`), for
    /// `options.platform` (default: the registry's), to carry it where no registry is. A
    /// registry image is fetched again (the cache keeps extracted layers, not blobs).
    #[napi(
        ts_args_type = "source: string, target: string, options?: { platform?: string | Platform | null } | null",
        ts_return_type = "Promise<SaveReport>"
    )]
    pub fn save<'env>(
        &self,
        env: &'env Env,
        source: String,
        target: String,
        options: Option<Object<'env>>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let parsed = (|| {
            let source = reference::parse_source(env, &source)?;
            let target = reference::parse_source(env, &target)?;
            let platform = match options {
                Some(o) => {
                    crate::cache::platform(env, Some(o.get_named_property::<Unknown>("platform")?))?
                }
                None => None,
            };
            Ok::<_, napi::Error>((source, target, platform))
        })();
        let (source, target, platform) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => return crate::cache::rejected(env, e),
        };
        let registry = self.inner.clone();
        crate::cache::async_report(env, async move {
            registry.save(&source, &target, platform).await
        })
    }

    /// Repairs what `cache.verify()` found: removes invalid image records, fetches the
    /// damaged images' manifests again (pinned to their digests) and rebuilds only their
    /// damaged layers. Images that cannot be repaired are listed in `failed`. Verify again
    /// to confirm. A report that is not a `VerifyReport` rejects with `INVALID_ARGUMENT`.
    #[napi(
        ts_args_type = "report: VerifyReport",
        ts_return_type = "Promise<RepairReport>"
    )]
    pub fn repair<'env>(
        &self,
        env: &'env Env,
        report: serde_json::Value,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let report: core::cache::VerifyReport =
            match serde_json::from_value(crate::json::integral(report)) {
                Ok(report) => report,
                Err(e) => {
                    let e = kind_error(
                        env,
                        ErrorKind::InvalidArgument,
                        &format!("verify report: {e}"),
                    );
                    return crate::cache::rejected(env, e);
                }
            };
        let registry = self.inner.clone();
        crate::cache::async_report(env, async move { registry.repair(&report).await })
    }

    /// Pulls `source`: a reference (`docker://` optional) or an offline image,
    /// `oci-layout:DIR[:TAG|@DIGEST]` (or `oci:`) or `docker-archive:FILE[:NAME:TAG]`, pulled
    /// into the cache under its name through the same verification. Resolves with the result once the image is in the cache and every
    /// progress event was delivered; rejects with an `Error` whose `code` is the core's kind
    /// (`'NOT_CACHED'`, …), or, when `signal` aborted it, one named `'AbortError'` (after the
    /// pull removed its staging directories). If `onProgress` throws, the pull is cancelled
    /// and the promise rejects with what it threw.
    #[napi(
        ts_args_type = "source: string, options?: PullOptions | null",
        ts_return_type = "Promise<PullResult>"
    )]
    pub fn pull<'env>(
        &self,
        env: &'env Env,
        source: String,
        options: Option<Object<'env>>,
    ) -> Result<PromiseRaw<'env, PullResult>> {
        match Prepared::new(env, &source, options) {
            Ok(Prepared {
                source,
                options,
                on_progress,
                cancel,
                link,
            }) => {
                let registry = self.inner.clone();
                let pull = async move {
                    Ok::<_, napi::Error>(
                        run_pull(registry, source, options, on_progress, cancel).await,
                    )
                };
                env.spawn_future_with_callback(pull, move |env, outcome| {
                    if let Some(link) = link {
                        // The listener only matters while the pull runs; failing to remove it
                        // leaves a listener that trips a spent token.
                        let _ = link.unlink(env);
                    }
                    outcome
                        .map(|inner| PullResult { inner })
                        .map_err(|f| f.into_js(env))
                })
            }
            // Bad arguments reject the promise too, rather than throw.
            Err(e) => env.spawn_future_with_callback(
                async move { Ok::<_, napi::Error>(()) },
                move |_, ()| Err::<PullResult, _>(e),
            ),
        }
    }

    /// Starts pulling `source` (as `pull` takes it) and returns its progress events as an async iterator
    /// (`for await (const event of registry.pullEvents(ref))`); `await events.result()`
    /// gives the `PullResult`. Breaking out of the loop cancels the pull. Options as `pull`,
    /// without `onProgress`.
    #[napi(ts_args_type = "source: string, options?: Omit<PullOptions, 'onProgress'> | null")]
    pub fn pull_events<'env>(
        &self,
        env: &'env Env,
        source: String,
        options: Option<Object<'env>>,
    ) -> Result<ClassInstance<'env, PullEvents>> {
        let source = reference::parse_source(env, &source)?;
        let opts = pull_options::read(env, options)?;
        if opts.on_progress.is_some() {
            return Err(kind_error(
                env,
                ErrorKind::InvalidArgument,
                "pullEvents takes no onProgress: iterate the events instead",
            ));
        }
        PullEvents::start(env, &self.inner, source, opts.options, opts.signal)
    }
}

/// A pull's arguments, converted on the JS thread.
struct Prepared {
    source: ImageSource,
    options: PullOptions,
    on_progress: Option<ProgressFn>,
    cancel: CancelToken,
    link: Option<AbortLink>,
}

impl Prepared {
    fn new(env: &Env, source: &str, options: Option<Object<'_>>) -> Result<Prepared> {
        let source = reference::parse_source(env, source)?;
        let opts = pull_options::read(env, options)?;
        let cancel = CancelToken::new();
        let link = match &opts.signal {
            Some(signal) => abort::link(env, signal, &cancel)?,
            None => None,
        };
        Ok(Prepared {
            source,
            options: opts.options,
            on_progress: opts.on_progress,
            cancel,
            link,
        })
    }
}

/// Runs one pull on the runtime: events go to `on_progress` one at a time; `cancel` (the
/// AbortSignal's token) or an exception in `on_progress` cancels the pull. Returns only when
/// the pull has finished (and, when cancelled, cleaned up) and every event was delivered.
async fn run_pull(
    registry: core::Registry,
    source: ImageSource,
    options: PullOptions,
    on_progress: Option<ProgressFn>,
    cancel: CancelToken,
) -> std::result::Result<core::PullResult, Failure> {
    let (mut events, task) = registry.pull_source_with_progress(&source, &options);
    let mut thrown = None;
    let mut cancelled = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let (Some(f), None) = (&on_progress, &thrown)
                    && let Err(e) = deliver(f, &event).await
                {
                    thrown = Some(e);
                    events.cancel();
                }
            }
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                events.cancel();
            }
        }
    }
    let result = task
        .await
        .map_err(|e| Failure::Core(core::Error::Internal(format!("pull task: {e}"))))?;
    if let Some(e) = thrown {
        return Err(Failure::Js(e));
    }
    result.map_err(Failure::Core)
}
