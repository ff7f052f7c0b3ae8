//! The options object of `registry.pull(ref, options)`: `onProgress` and `signal` are taken
//! out, `policy` is the JS name of the core's `pullPolicy`, and everything else deserialises
//! straight into the core's `PullOptions` (so a new pull option needs no code here).

use microsandbox_image::{ErrorKind, PullOptions};
use napi::bindgen_prelude::*;
use serde_json::{Map, Value};

use crate::error::kind_error;
use crate::progress::{ProgressFn, progress_fn};

/// The JS-only keys.
const ON_PROGRESS: &str = "onProgress";
const SIGNAL: &str = "signal";
/// The JS spelling of `pullPolicy` (both are accepted).
const POLICY: &str = "policy";
const PULL_POLICY: &str = "pullPolicy";

/// A pull's options, split into the core's data and the JS objects.
pub(crate) struct JsPullOptions<'env> {
    pub options: PullOptions,
    pub on_progress: Option<ProgressFn>,
    pub signal: Option<Object<'env>>,
}

/// Reads `options` (`undefined` or `null` mean all defaults).
pub(crate) fn read<'env>(env: &Env, options: Option<Object<'env>>) -> Result<JsPullOptions<'env>> {
    let Some(object) = options else {
        return Ok(JsPullOptions {
            options: PullOptions::default(),
            on_progress: None,
            signal: None,
        });
    };
    let invalid = |message: String| kind_error(env, ErrorKind::InvalidArgument, &message);
    let mut data = Map::new();
    let mut on_progress = None;
    let mut signal = None;
    for key in Object::keys(&object)? {
        let value: Unknown = object.get_named_property(&key)?;
        if value.get_type()? == ValueType::Undefined {
            continue;
        }
        match key.as_str() {
            ON_PROGRESS => {
                if value.get_type()? != ValueType::Function {
                    return Err(invalid("onProgress must be a function".into()));
                }
                on_progress = Some(progress_fn(&Function::from_unknown(value)?)?);
            }
            SIGNAL => {
                if value.get_type()? != ValueType::Object {
                    return Err(invalid("signal must be an AbortSignal".into()));
                }
                signal = Some(Object::from_unknown(value)?);
            }
            POLICY | PULL_POLICY => {
                if data.contains_key(PULL_POLICY) {
                    return Err(invalid("give either policy or pullPolicy, not both".into()));
                }
                data.insert(PULL_POLICY.into(), Value::from_unknown(value)?);
            }
            "platform" => {
                // A Platform instance or its string form.
                let instance = match value.get_type()? {
                    ValueType::Object => ClassInstance::<crate::Platform>::from_unknown(value).ok(),
                    _ => None,
                };
                let platform = match instance {
                    Some(p) => Value::String(p.inner.to_string()),
                    None => Value::from_unknown(value)?,
                };
                data.insert(key, platform);
            }
            _ => {
                data.insert(key, Value::from_unknown(value)?);
            }
        }
    }
    let options = serde_json::from_value(crate::json::integral(Value::Object(data)))
        .map_err(|e| invalid(format!("pull options: {e}")))?;
    Ok(JsPullOptions {
        options,
        on_progress,
        signal,
    })
}
