//! Waiting before a retry, and saying so: every retry of a request (a manifest, a config, a
//! token, a blob, a resumed blob) waits through [`pause`], which reports a
//! [`PullProgress::RequestRetrying`] event to the pull the request belongs to (and logs it)
//! before it sleeps. The client is shared by every pull of a `Registry`, so the pull is not an
//! argument: a pull runs its steps inside [`observe`], which binds its observer to the pull's
//! task (a task-local; a pull's layers run in that task too), and a layer download adds its
//! layer with [`for_layer`].
//!
//! The URL an event carries has no user info, query or fragment: signed storage URLs (a
//! redirect to S3 or a CDN) carry their credentials in the query.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;

use crate::digest::Digest;
use crate::progress::{ProgressSink, PullProgress};

tokio::task_local! {
    static OBSERVER: RetryObserver;
}

/// Who hears about the retries of one pull.
#[derive(Clone, Default)]
pub(crate) struct RetryObserver {
    progress: ProgressSink,
    /// The layer (position, blob digest) the requests in scope are for.
    layer: Option<(usize, Digest)>,
    /// The last retry reported, for an error that ends the pull while it waits.
    last: Arc<Mutex<Option<String>>>,
}

impl RetryObserver {
    /// An observer that sends events to `progress`.
    pub(crate) fn new(progress: ProgressSink) -> Self {
        RetryObserver {
            progress,
            ..Default::default()
        }
    }

    /// The last retry this observer (or one made from it by [`for_layer`]) heard of, as the
    /// CLI prints it: `GET https://… in 2.0 s (attempt 2/5): HTTP 503`.
    pub(crate) fn last_retry(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs `f` with `observer` hearing about its retries.
pub(crate) async fn observe<F: Future>(observer: RetryObserver, f: F) -> F::Output {
    OBSERVER.scope(observer, f).await
}

/// Runs `f` (the requests for one layer's blob) with its retries reported as that layer's.
pub(crate) async fn for_layer<F: Future>(layer_index: usize, digest: &Digest, f: F) -> F::Output {
    let observer = OBSERVER.try_with(|o| RetryObserver {
        layer: Some((layer_index, digest.clone())),
        ..o.clone()
    });
    match observer {
        Ok(o) => OBSERVER.scope(o, f).await,
        Err(_) => f.await,
    }
}

/// One retry about to happen.
pub(crate) struct Retry<'a> {
    /// The request's URL (its query is not reported).
    pub url: &'a str,
    /// Retries so far, this one included (1 for the first retry).
    pub retry: u32,
    /// Retries allowed.
    pub max_retries: u32,
    /// How long to wait before it.
    pub wait: Duration,
    /// Why the attempt before failed, without the URL.
    pub reason: String,
}

/// Reports `r` to the current pull (and the log), then waits `r.wait`.
pub(crate) async fn pause(r: Retry<'_>) {
    let layer = OBSERVER.try_with(|o| o.layer.clone()).ok().flatten();
    let event = PullProgress::RequestRetrying {
        url: public_url(r.url),
        layer_index: layer.as_ref().map(|(i, _)| *i),
        digest: layer.map(|(_, d)| d),
        attempt: r.retry.saturating_add(1),
        max_attempts: r.max_retries.saturating_add(1),
        wait_ms: u64::try_from(r.wait.as_millis()).unwrap_or(u64::MAX),
        reason: r.reason,
    };
    let line = event.retry_summary().unwrap_or_default();
    log::info!("retrying {line}");
    let _ = OBSERVER.try_with(|o| {
        *o.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
        o.progress.emit(event);
    });
    tokio::time::sleep(r.wait).await;
}

/// `url` without user info, query and fragment (unparsable: cut at the first `?` or `#`).
pub(crate) fn public_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_lose_credentials() {
        assert_eq!(
            public_url("https://u:p@s3.example/b/sha256:ab?X-Amz-Signature=s#f"),
            "https://s3.example/b/sha256:ab"
        );
        assert_eq!(public_url("not a url?sig=1"), "not a url");
    }

    #[tokio::test]
    async fn a_pause_is_reported_to_the_pull_and_its_layer() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let events = events.clone();
            ProgressSink::callback(Arc::new(move |e: &PullProgress| {
                events.lock().unwrap().push(e.clone())
            }))
        };
        let observer = RetryObserver::new(sink);
        let digest = Digest::sha256_of(b"blob");
        let retry = || Retry {
            url: "http://r/v2/a/blobs/x?sig=1",
            retry: 1,
            max_retries: 4,
            wait: Duration::from_millis(2),
            reason: "HTTP 503".into(),
        };
        observe(observer.clone(), async {
            pause(retry()).await;
            for_layer(3, &digest, pause(retry())).await;
        })
        .await;
        pause(retry()).await; // outside any pull: nobody hears it
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 2);
        let PullProgress::RequestRetrying {
            url,
            layer_index,
            attempt,
            max_attempts,
            wait_ms,
            ..
        } = &events[1]
        else {
            panic!("{events:?}")
        };
        assert_eq!(url, "http://r/v2/a/blobs/x");
        assert_eq!(
            (*layer_index, *attempt, *max_attempts, *wait_ms),
            (Some(3), 2, 5, 2)
        );
        assert!(matches!(
            events[0],
            PullProgress::RequestRetrying {
                layer_index: None,
                ..
            }
        ));
        assert!(observer.last_retry().unwrap().contains("attempt 2/5"));
    }
}
