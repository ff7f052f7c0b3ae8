//! Signal handling: SIGINT (Ctrl-C), SIGTERM (`timeout`, systemd, Kubernetes) and SIGHUP (a
//! closed terminal) all cancel the pull, whose workers remove their staging directories
//! before it returns; the command then exits with 128 + the signal's number (130 for Ctrl-C).
//! A second signal while the pull winds down exits at once.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};

/// The first signal received (0 = none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Start catching the signals on the current tokio runtime.
pub fn install() {
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let signo = kind.as_raw_value();
                if RECEIVED
                    .compare_exchange(0, signo, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    std::process::exit(128 + RECEIVED.load(Ordering::SeqCst));
                }
            }
        });
    }
}

/// Resolves once a signal has arrived (after [`install`]).
pub async fn interrupted() {
    while RECEIVED.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The exit code for the signal that cancelled the command, if one did.
pub fn exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signo => u8::try_from(128 + signo).ok(),
    }
}
