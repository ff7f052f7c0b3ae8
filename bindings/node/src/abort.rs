//! `signal` (an `AbortSignal`) → the core's `CancelToken`: an `abort` listener trips the
//! token, and is removed again when the pull settles, so one long-lived signal can serve any
//! number of pulls without collecting listeners.

use microsandbox_image::CancelToken;
use napi::bindgen_prelude::*;

type Listener = FunctionRef<(), ()>;

/// `addEventListener` / `removeEventListener` as called here.
type ListenerMethod<'a> = Function<'a, FnArgs<(&'a str, Function<'a, (), ()>)>, Unknown<'a>>;

/// A listener added to a signal, to be removed on the JS thread.
pub(crate) struct AbortLink {
    signal: ObjectRef<false>,
    listener: Listener,
}

/// Makes `signal` cancel `token`: at once if it is already aborted, else when it fires.
pub(crate) fn link(
    env: &Env,
    signal: &Object<'_>,
    token: &CancelToken,
) -> Result<Option<AbortLink>> {
    if signal.get_named_property::<Option<bool>>("aborted")? == Some(true) {
        token.cancel();
        return Ok(None);
    }
    let on_abort = token.clone();
    let listener = env.create_function_from_closure::<(), (), _>("onAbort", move |_| {
        on_abort.cancel();
        Ok(())
    })?;
    let listener_ref = listener.create_ref()?;
    call_method(signal, "addEventListener", listener)?;
    Ok(Some(AbortLink {
        signal: signal.create_ref()?,
        listener: listener_ref,
    }))
}

impl AbortLink {
    /// Removes the listener (on the JS thread, when the pull has settled).
    pub(crate) fn unlink(self, env: &Env) -> Result<()> {
        let signal = self.signal.get_value(env)?;
        let listener = self.listener.borrow_back(env)?;
        let removed = call_method(&signal, "removeEventListener", listener);
        self.signal.unref(env)?;
        removed
    }
}

/// `signal[method]('abort', listener)`.
fn call_method(signal: &Object<'_>, method: &str, listener: Function<'_, (), ()>) -> Result<()> {
    let f: ListenerMethod<'_> = signal.get_named_property(method).map_err(|_| {
        Error::new(
            Status::InvalidArg,
            format!("signal must be an AbortSignal (it has no {method})"),
        )
    })?;
    f.apply(signal, FnArgs::from(("abort", listener)))?;
    Ok(())
}
