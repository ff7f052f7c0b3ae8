//! `Registry`: built from a platform, a cache and the core's registry settings (the options
//! object deserialises straight into `RegistryConfig`), it pulls images. `pull` returns a
//! Promise settled on the JS thread after every progress event was delivered; the pull runs on
//! the runtime's threads, never on the JS thread or libuv's pool.

use microsandbox_image as core;
use microsandbox_image::{CancelToken, ErrorKind, PullOptions, Reference, RegistryConfig};
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

    /// Pulls `reference`. Resolves with the result once the image is in the cache and every
    /// progress event was delivered; rejects with an `Error` whose `code` is the core's kind
    /// (`'NOT_CACHED'`, …), or, when `signal` aborted it, one named `'AbortError'` (after the
    /// pull removed its staging directories). If `onProgress` throws, the pull is cancelled
    /// and the promise rejects with what it threw.
    #[napi(
        ts_args_type = "reference: string, options?: PullOptions | null",
        ts_return_type = "Promise<PullResult>"
    )]
    pub fn pull<'env>(
        &self,
        env: &'env Env,
        reference: String,
        options: Option<Object<'env>>,
    ) -> Result<PromiseRaw<'env, PullResult>> {
        match Prepared::new(env, &reference, options) {
            Ok(Prepared {
                reference,
                options,
                on_progress,
                cancel,
                link,
            }) => {
                let registry = self.inner.clone();
                let pull = async move {
                    Ok::<_, napi::Error>(
                        run_pull(registry, reference, options, on_progress, cancel).await,
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

    /// Starts pulling `reference` and returns its progress events as an async iterator
    /// (`for await (const event of registry.pullEvents(ref))`); `await events.result()`
    /// gives the `PullResult`. Breaking out of the loop cancels the pull. Options as `pull`,
    /// without `onProgress`.
    #[napi(ts_args_type = "reference: string, options?: Omit<PullOptions, 'onProgress'> | null")]
    pub fn pull_events<'env>(
        &self,
        env: &'env Env,
        reference: String,
        options: Option<Object<'env>>,
    ) -> Result<ClassInstance<'env, PullEvents>> {
        let reference = reference::parse(env, &reference)?;
        let opts = pull_options::read(env, options)?;
        if opts.on_progress.is_some() {
            return Err(kind_error(
                env,
                ErrorKind::InvalidArgument,
                "pullEvents takes no onProgress: iterate the events instead",
            ));
        }
        PullEvents::start(env, &self.inner, reference, opts.options, opts.signal)
    }
}

/// A pull's arguments, converted on the JS thread.
struct Prepared {
    reference: Reference,
    options: PullOptions,
    on_progress: Option<ProgressFn>,
    cancel: CancelToken,
    link: Option<AbortLink>,
}

impl Prepared {
    fn new(env: &Env, reference: &str, options: Option<Object<'_>>) -> Result<Prepared> {
        let reference = reference::parse(env, reference)?;
        let opts = pull_options::read(env, options)?;
        let cancel = CancelToken::new();
        let link = match &opts.signal {
            Some(signal) => abort::link(env, signal, &cancel)?,
            None => None,
        };
        Ok(Prepared {
            reference,
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
    reference: Reference,
    options: PullOptions,
    on_progress: Option<ProgressFn>,
    cancel: CancelToken,
) -> std::result::Result<core::PullResult, Failure> {
    let (mut events, task) = registry.pull_with_progress(&reference, &options);
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
