//! `registry.pullEvents(ref)`: a pull whose progress events are read as an async iterator.
//! `next()` waits for the next event; the core's queue keeps every milestone and the newest
//! byte count per layer while nobody reads. When the events end, the iterator is done if the
//! pull succeeded and rejects with the pull's error otherwise; `result()` gives the
//! `PullResult`. `return()` (what `break` in `for await` calls) cancels the pull and resolves
//! once it has cleaned up.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use microsandbox_image as core;
use microsandbox_image::{CancelToken, ErrorReport, ImageSource, PullOptions, PullProgressHandle};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::{Mutex, OnceCell};
use tokio::task::JoinHandle;

use crate::abort::{self, AbortLink};
use crate::error::report_error;
use crate::progress::event_value;
use crate::result::PullResult;

/// One step of the iteration, as the iterator protocol wants it.
#[napi(object)]
pub struct EventStep {
    /// True once the events have ended.
    pub done: bool,
    /// The event (absent when done).
    #[napi(ts_type = "PullProgress | undefined")]
    pub value: Option<serde_json::Value>,
}

type Outcome = std::result::Result<core::PullResult, ErrorReport>;

/// What the iterator's promises share with the runtime.
struct Shared {
    events: Mutex<PullProgressHandle>,
    task: Mutex<Option<JoinHandle<core::Result<core::PullResult>>>>,
    outcome: OnceCell<Outcome>,
}

impl Shared {
    /// The pull's result, once it has finished.
    async fn outcome(&self) -> Outcome {
        self.outcome
            .get_or_init(|| async {
                let task = self.task.lock().await.take();
                let joined = match task {
                    Some(task) => task.await,
                    None => return Err(internal("pull task already taken")),
                };
                match joined {
                    Ok(result) => result.map_err(|e| e.report()),
                    Err(e) => Err(internal(&format!("pull task: {e}"))),
                }
            })
            .await
            .clone()
    }
}

fn internal(message: &str) -> ErrorReport {
    core::Error::Internal(message.to_owned()).report()
}

/// A running pull whose progress events are read with `for await`.
#[napi]
pub struct PullEvents {
    shared: Arc<Shared>,
    cancel: CancelToken,
    /// The AbortSignal listener, removed when the pull has settled.
    link: Rc<RefCell<Option<AbortLink>>>,
}

impl PullEvents {
    /// Starts the pull on the runtime and wraps it as an async iterable object.
    pub(crate) fn start<'env>(
        env: &'env Env,
        registry: &core::Registry,
        source: ImageSource,
        options: PullOptions,
        signal: Option<Object<'env>>,
    ) -> Result<ClassInstance<'env, PullEvents>> {
        let (events, task) = napi::bindgen_prelude::within_runtime_if_available(|| {
            registry.pull_source_with_progress(&source, &options)
        });
        let cancel = events.cancel_token();
        let link = match &signal {
            Some(signal) => abort::link(env, signal, &cancel)?,
            None => None,
        };
        let events = PullEvents {
            shared: Arc::new(Shared {
                events: Mutex::new(events),
                task: Mutex::new(Some(task)),
                outcome: OnceCell::new(),
            }),
            cancel,
            link: Rc::new(RefCell::new(link)),
        };
        let mut instance = events.into_instance(env)?;
        // `for await` looks up `[Symbol.asyncIterator]()`: the object is its own iterator.
        // `Symbol` is a function; read its property through it as an object.
        let symbol = env
            .get_global()?
            .get_named_property::<Unknown>("Symbol")?
            .coerce_to_object()?;
        let async_iterator: Unknown = symbol.get_named_property("asyncIterator")?;
        let this_fn = env
            .create_function_from_closure::<(), Unknown, _>("asyncIterator", |ctx| {
                ctx.this::<Unknown>()
            })?;
        instance.set_property(async_iterator, this_fn)?;
        Ok(instance)
    }

    /// Settles a promise on the JS thread: removes the signal's listener once the pull has
    /// finished, turns a failure into the JS error.
    fn settle<'env, T: Send + 'static, V: ToNapiValue + 'env>(
        &self,
        env: &'env Env,
        work: impl Future<Output = (bool, std::result::Result<T, ErrorReport>)> + Send + 'static,
        done: impl FnOnce(T) -> V + 'static,
    ) -> Result<PromiseRaw<'env, V>> {
        let link = self.link.clone();
        env.spawn_future_with_callback(async move { Ok(work.await) }, move |env, (finished, r)| {
            if finished && let Some(link) = link.borrow_mut().take() {
                let _ = link.unlink(env);
            }
            r.map(done).map_err(|report| report_error(env, &report))
        })
    }
}

#[napi]
impl PullEvents {
    /// The next event: `{ done: false, value }`, then `{ done: true }` when the pull
    /// succeeded; rejects with the pull's error (`AbortError` when cancelled) otherwise.
    #[napi(ts_return_type = "Promise<IteratorResult<PullProgress, undefined>>")]
    pub fn next<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, EventStep>> {
        let shared = self.shared.clone();
        self.settle(
            env,
            async move {
                let event = shared.events.lock().await.recv().await;
                match event {
                    Some(event) => (false, Ok(Some(event_value(&event)))),
                    None => (true, shared.outcome().await.map(|_| None)),
                }
            },
            |value| EventStep {
                done: value.is_none(),
                value,
            },
        )
    }

    /// Stops the iteration: cancels the pull if it still runs and resolves with
    /// `{ done: true }` once it has finished and cleaned up.
    #[napi(
        js_name = "return",
        ts_return_type = "Promise<IteratorResult<PullProgress, undefined>>"
    )]
    pub fn stop<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, EventStep>> {
        self.cancel.cancel();
        let shared = self.shared.clone();
        self.settle(
            env,
            async move {
                let _ = shared.outcome().await;
                (true, Ok(()))
            },
            |()| EventStep {
                done: true,
                value: None,
            },
        )
    }

    /// The pull's result, once it has finished; rejects with its error.
    #[napi(ts_return_type = "Promise<PullResult>")]
    pub fn result<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, PullResult>> {
        let shared = self.shared.clone();
        self.settle(
            env,
            async move { (true, shared.outcome().await) },
            |inner| PullResult { inner },
        )
    }

    /// Cancels the pull (like aborting its signal).
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}
