//! Progress events to a JS callback. Events are the core's `PullProgress` in its serde form
//! (`{ type: 'layerDownloadProgress', layerIndex: 0, … }`), delivered on the JS thread through
//! a threadsafe function, one at a time: the next call waits until the callback returned. The
//! pull itself never waits for JS: the core's progress queue keeps every milestone and
//! replaces a still-queued byte count with a newer one.

use microsandbox_image::PullProgress;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use serde_json::Value;

/// Whatever the callback returns, ignored (a returned promise is not awaited).
pub(crate) struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_: napi::sys::napi_env, _: napi::sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}

/// The `onProgress` callback, callable from the runtime's threads. A JS exception comes back
/// as an `Err` holding the thrown value instead of reaching `uncaughtException`.
pub(crate) type ProgressFn = ThreadsafeFunction<Value, Ignored, Value, Status, false>;

/// Wraps a JS function.
pub(crate) fn progress_fn(f: &Function<'_, Value, Ignored>) -> Result<ProgressFn> {
    f.build_threadsafe_function::<Value>()
        .callee_handled::<false>()
        .build()
}

/// An event as the JS object it becomes.
pub(crate) fn event_value(event: &PullProgress) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// Calls `f` with `event` and waits until it returned. `Err` carries what it threw.
pub(crate) async fn deliver(f: &ProgressFn, event: &PullProgress) -> Result<()> {
    f.call_async_catch(event_value(event)).await.map(|_| ())
}
