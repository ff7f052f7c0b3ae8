//! [`PullProgress`], declared once through `progress_events!` so that the same declaration
//! yields the enum, its stable JSON form (`{"type":"layerDownloadProgress","layerIndex":0,…}`)
//! and its schema ([`PullProgress::SCHEMA`]), from which the C ABI, the CLI, Python and Node
//! take their event types. The schema is described for users in `PROGRESS.md` at the crate
//! root.

use std::sync::Arc;

use super::schema::{EventSchema, FieldSchema, SchemaType};
use crate::digest::Digest;

/// Declares the event enum and its schema. Each variant is `milestone` (never dropped) or
/// `lossy` (a newer value may replace a queued one).
macro_rules! progress_events {
    ($(#[doc = $enum_doc:literal])* pub enum $name:ident {
        $($(#[doc = $doc:literal])+ $class:ident $variant:ident {
            $($(#[doc = $fdoc:literal])+ $field:ident: $ty:ty,)*
        },)+
    }) => {
        $(#[doc = $enum_doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[doc = $doc])+ $variant { $($(#[doc = $fdoc])+ $field: $ty,)* },)+
        }

        impl $name {
            /// Every event type with its fields, in declaration order.
            pub const SCHEMA: &'static [EventSchema] = &[$(EventSchema {
                variant: stringify!($variant),
                doc: concat!($($doc),+).trim_ascii(),
                milestone: progress_events!(@milestone $class),
                fields: &[$(FieldSchema {
                    name: stringify!($field),
                    ty: <$ty as SchemaType>::NAME,
                    doc: concat!($($fdoc),+).trim_ascii(),
                },)*],
            },)+];

            /// This event's entry in [`SCHEMA`](Self::SCHEMA).
            pub fn schema(&self) -> &'static EventSchema {
                let i = match self {
                    $($name::$variant { .. } => stringify!($variant),)+
                };
                Self::SCHEMA.iter().find(|s| s.variant == i).expect("every variant has a schema")
            }
        }
    };
    (@milestone milestone) => { true };
    (@milestone lossy) => { false };
}

progress_events! {
    /// One progress event of a pull. Layer indexes count from 0 at the bottom layer, in
    /// manifest order. Serialised as `{"type": "<event in camelCase>", <fields in camelCase>}`.
    pub enum PullProgress {
    /// Resolving the reference to a manifest (or answering from the cache).
    milestone Resolving {
        /// The normalised reference.
        reference: Arc<str>,
    },
    /// The manifest and config are known.
    milestone Resolved {
        /// The normalised reference.
        reference: Arc<str>,
        /// The platform manifest's digest.
        manifest_digest: Digest,
        /// Number of layers in the image.
        layer_count: usize,
        /// Compressed bytes of the layers that still have to be downloaded.
        total_download_bytes: u64,
    },
    /// A layer is already complete in the cache; no download or extraction follows for it.
    milestone LayerCached {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest (the cache key).
        diff_id: Digest,
    },
    /// Bytes of a layer blob arrived. Lossy: intermediate values may be skipped.
    lossy LayerDownloadProgress {
        /// Layer position.
        layer_index: usize,
        /// Compressed digest.
        digest: Digest,
        /// Compressed bytes received so far (a download resumed from bytes an earlier pull
        /// kept counts them from its first event).
        downloaded_bytes: u64,
        /// The blob's size from the manifest, when known.
        total_bytes: Option<u64>,
    },
    /// The whole blob arrived and its digest matched.
    milestone LayerDownloadComplete {
        /// Layer position.
        layer_index: usize,
        /// Compressed digest.
        digest: Digest,
        /// Compressed bytes received.
        downloaded_bytes: u64,
    },
    /// Extraction of a layer started (it runs while the blob streams in).
    milestone LayerExtractStarted {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest.
        diff_id: Digest,
    },
    /// Extraction progress. Lossy.
    lossy LayerExtractProgress {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed tar bytes consumed so far.
        bytes_extracted: u64,
        /// Tar entries written so far.
        entries: u64,
    },
    /// The layer is extracted, verified and published.
    milestone LayerExtractComplete {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest.
        diff_id: Digest,
        /// Tar entries written.
        entries: u64,
        /// Uncompressed tar bytes.
        bytes_extracted: u64,
    },
    /// Building the layer's sidecar index started.
    milestone LayerIndexStarted {
        /// Layer position.
        layer_index: usize,
    },
    /// The layer's sidecar index is written.
    milestone LayerIndexComplete {
        /// Layer position.
        layer_index: usize,
        /// Entries in the index.
        entries: u64,
    },
    /// Another pull (in this process or another) is building this layer; this one waits for
    /// it and then uses its result (or builds the layer itself if that pull failed).
    milestone LayerWaiting {
        /// Layer position.
        layer_index: usize,
        /// Uncompressed digest.
        diff_id: Digest,
        /// The process that holds the layer's lock, when known.
        holder_pid: Option<u32>,
    },
    /// A request failed in a way that may pass (a reset, a timeout, HTTP 429 or 5xx) and is
    /// tried again after a wait: a manifest, a config, a token, a blob, or the rest of a blob
    /// whose stream broke off. Sent before the wait.
    milestone RequestRetrying {
        /// The request's URL, without its query (where signed storage URLs carry credentials).
        url: String,
        /// The layer whose blob the request is for; null for a manifest, config or token.
        layer_index: Option<usize>,
        /// That layer's compressed digest; null when `layerIndex` is.
        digest: Option<Digest>,
        /// The attempt about to start (2 for the first retry).
        attempt: u32,
        /// Attempts allowed in all (`maxRetries` + 1 for a request).
        max_attempts: u32,
        /// The wait before it, in milliseconds (a `Retry-After` capped at `maxRetryAfter`, or
        /// the backoff).
        wait_ms: u64,
        /// Why the attempt before failed (`HTTP 503`, `connection reset`, …).
        reason: String,
    },
    /// The pull finished successfully.
    milestone Complete {
        /// The normalised reference.
        reference: Arc<str>,
        /// The platform manifest's digest.
        manifest_digest: Digest,
        /// Number of layers in the image.
        layer_count: usize,
        /// True when the answer came entirely from the cache.
        cached: bool,
    },
    }
}

impl PullProgress {
    /// Whether this event is a milestone: never dropped, delivered in order. The others
    /// (byte counts) are lossy.
    pub fn is_milestone(&self) -> bool {
        self.schema().milestone
    }

    /// A `requestRetrying` event as one line, as the CLI prints it after `retrying ` and a
    /// pull's `DEADLINE_EXCEEDED` error names the retry it cut short: `GET <url> in 2.0 s
    /// (attempt 2/5): HTTP 503 …`. `None` for other events.
    pub fn retry_summary(&self) -> Option<String> {
        let PullProgress::RequestRetrying {
            url,
            attempt,
            max_attempts,
            wait_ms,
            reason,
            ..
        } = self
        else {
            return None;
        };
        Some(format!(
            "GET {url} in {:.1} s (attempt {attempt}/{max_attempts}): {reason}",
            *wait_ms as f64 / 1000.0
        ))
    }

    /// The layer a lossy event belongs to; `None` for milestones, which are never dropped.
    pub(super) fn lossy_slot(&self) -> Option<(usize, u8)> {
        match self {
            PullProgress::LayerDownloadProgress { layer_index, .. } => Some((*layer_index, 0)),
            PullProgress::LayerExtractProgress { layer_index, .. } => Some((*layer_index, 1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_is_tagged_camel_case() {
        let ev = PullProgress::LayerDownloadProgress {
            layer_index: 2,
            digest: Digest::sha256_of(b"x"),
            downloaded_bytes: 10,
            total_bytes: None,
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "layerDownloadProgress");
        assert_eq!(v["layerIndex"], 2);
        assert_eq!(v["downloadedBytes"], 10);
        assert!(v["totalBytes"].is_null());
        let back: PullProgress = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn schema_matches_the_json_form() {
        let ev = PullProgress::Resolved {
            reference: "r".into(),
            manifest_digest: Digest::sha256_of(b"m"),
            layer_count: 1,
            total_download_bytes: 5,
        };
        let v = serde_json::to_value(&ev).unwrap();
        let schema = ev.schema();
        assert_eq!(v["type"], schema.type_tag());
        let keys: Vec<String> = v
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "type")
            .cloned()
            .collect();
        let mut want: Vec<String> = schema.fields.iter().map(|f| f.json_name()).collect();
        let mut got = keys;
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn lossy_events_are_exactly_the_non_milestones() {
        let lossy: Vec<_> = PullProgress::SCHEMA
            .iter()
            .filter(|s| !s.milestone)
            .map(|s| s.variant)
            .collect();
        assert_eq!(lossy, ["LayerDownloadProgress", "LayerExtractProgress"]);
    }
}
