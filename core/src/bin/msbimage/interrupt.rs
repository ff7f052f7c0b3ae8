//! Ctrl-C (SIGINT) handling: the first Ctrl-C cancels the pull (the caller aborts its task and
//! exits 130); a second one, while the pull winds down, exits at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Start catching SIGINT on the current tokio runtime.
pub fn install() {
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        }
    });
}

/// Resolves once SIGINT has arrived (after [`install`]).
pub async fn interrupted() {
    while !INTERRUPTED.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
