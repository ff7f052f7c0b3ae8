//! `msb_progress_event`: one `PullProgress` event as a flat C struct (a kind code plus the
//! fields of every kind), built on the stack for the duration of one callback.

use microsandbox_image::PullProgress;

use crate::slice::msb_str;

/// What a progress event reports. Stable numbers; new kinds are only ever added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum msb_progress_kind {
    /// Resolving the reference (or answering from the cache). Fields: `reference`.
    Resolving = 1,
    /// Manifest and config are known. Fields: `reference`, `manifest_digest`, `layer_count`,
    /// `total_download_bytes` (compressed bytes still to download).
    Resolved = 2,
    /// A layer is already complete in the cache; nothing else follows for it. Fields:
    /// `layer_index`, `diff_id`.
    LayerCached = 3,
    /// Bytes of a layer blob arrived (lossy: values may be skipped). Fields: `layer_index`,
    /// `digest`, `downloaded_bytes`, `total_bytes` (valid when `has_total_bytes`).
    LayerDownloadProgress = 4,
    /// The whole blob arrived and matched its digest. Fields: `layer_index`, `digest`,
    /// `downloaded_bytes`.
    LayerDownloadComplete = 5,
    /// Extraction of a layer started (it runs while the blob streams in). Fields:
    /// `layer_index`, `diff_id`.
    LayerExtractStarted = 6,
    /// Extraction progress (lossy). Fields: `layer_index`, `bytes_extracted`, `entries`.
    LayerExtractProgress = 7,
    /// The layer is extracted, verified and published. Fields: `layer_index`, `diff_id`,
    /// `entries`, `bytes_extracted`.
    LayerExtractComplete = 8,
    /// Building the layer's index started. Fields: `layer_index`.
    LayerIndexStarted = 9,
    /// The layer's index is written. Fields: `layer_index`, `entries`.
    LayerIndexComplete = 10,
    /// The pull finished successfully. Fields: `reference`, `manifest_digest`,
    /// `layer_count`, `cached`.
    Complete = 11,
    /// Another pull is building this layer; this one waits for it. Fields: `layer_index`,
    /// `diff_id`, `holder_pid` (valid when `has_holder_pid`).
    LayerWaiting = 12,
    /// A request failed in a way that may pass and is tried again after a wait. Fields:
    /// `url` (no query), `layer_index` and `digest` (valid when `has_layer_index`: a layer's
    /// blob), `attempt`, `max_attempts`, `wait_ms`, `reason`.
    RequestRetrying = 13,
}

/// One progress event. Only the fields listed for its `kind` are meaningful; the others are
/// 0, false or the empty string. Layer indexes count from 0 at the bottom layer.
///
/// Borrowed: the event and every `msb_str` in it are valid only during the callback.
/// The library allocates events; fields may be appended in later versions of this ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct msb_progress_event<'a> {
    /// What happened (`msb_progress_kind`).
    pub kind: msb_progress_kind,
    /// Layer position (layer events).
    pub layer_index: usize,
    /// The normalised image reference.
    pub reference: msb_str<'a>,
    /// The platform manifest's digest.
    pub manifest_digest: msb_str<'a>,
    /// A layer's compressed digest (download events).
    pub digest: msb_str<'a>,
    /// A layer's uncompressed digest, the cache key.
    pub diff_id: msb_str<'a>,
    /// Number of layers in the image.
    pub layer_count: usize,
    /// Compressed bytes of the layers that still have to be downloaded.
    pub total_download_bytes: u64,
    /// Compressed bytes of this layer received so far (or in total, when complete).
    pub downloaded_bytes: u64,
    /// The blob's size from the manifest; valid when `has_total_bytes`.
    pub total_bytes: u64,
    /// Whether `total_bytes` is known.
    pub has_total_bytes: bool,
    /// Uncompressed tar bytes consumed so far (or in total, when complete).
    pub bytes_extracted: u64,
    /// Tar entries written, or index entries.
    pub entries: u64,
    /// True when the answer came entirely from the cache (`Complete`).
    pub cached: bool,
    /// The whole event in the core's JSON form, the same for every front door:
    /// `{"type":"layerDownloadProgress","layerIndex":0,…}` (schema in `PROGRESS.md`).
    pub json: msb_str<'a>,
    /// The process holding the layer's lock (`LayerWaiting`); valid when `has_holder_pid`.
    pub holder_pid: u32,
    /// Whether `holder_pid` is known.
    pub has_holder_pid: bool,
    /// The URL of a request about to be retried, without its query (`RequestRetrying`).
    pub url: msb_str<'a>,
    /// Whether `layer_index` and `digest` name the layer a retried request is for
    /// (`RequestRetrying`; the other layer events always have a layer).
    pub has_layer_index: bool,
    /// The attempt about to start, 2 for the first retry (`RequestRetrying`).
    pub attempt: u32,
    /// Attempts allowed in all (`RequestRetrying`).
    pub max_attempts: u32,
    /// The wait before the retry, in milliseconds (`RequestRetrying`).
    pub wait_ms: u64,
    /// Why the attempt before failed (`RequestRetrying`).
    pub reason: msb_str<'a>,
}

/// The strings an event borrows; they live on the caller's stack during the callback.
#[derive(Default)]
struct Texts<'a> {
    reference: &'a str,
    manifest_digest: String,
    digest: String,
    diff_id: String,
    json: String,
    url: &'a str,
    reason: &'a str,
}

/// Builds the C view of `event` and passes it to `f`. Events of a kind newer than this
/// library are not delivered.
pub(crate) fn with_c_event(event: &PullProgress, f: impl FnOnce(&msb_progress_event<'_>)) {
    use msb_progress_kind as K;
    let mut t = Texts::default();
    let mut e = msb_progress_event {
        kind: K::Resolving,
        layer_index: 0,
        reference: msb_str::default(),
        manifest_digest: msb_str::default(),
        digest: msb_str::default(),
        diff_id: msb_str::default(),
        layer_count: 0,
        total_download_bytes: 0,
        downloaded_bytes: 0,
        total_bytes: 0,
        has_total_bytes: false,
        bytes_extracted: 0,
        entries: 0,
        cached: false,
        json: msb_str::default(),
        holder_pid: 0,
        has_holder_pid: false,
        url: msb_str::default(),
        has_layer_index: false,
        attempt: 0,
        max_attempts: 0,
        wait_ms: 0,
        reason: msb_str::default(),
    };
    match event {
        PullProgress::Resolving { reference } => {
            e.kind = K::Resolving;
            t.reference = reference;
        }
        PullProgress::Resolved {
            reference,
            manifest_digest,
            layer_count,
            total_download_bytes,
        } => {
            e.kind = K::Resolved;
            t.reference = reference;
            t.manifest_digest = manifest_digest.to_string();
            e.layer_count = *layer_count;
            e.total_download_bytes = *total_download_bytes;
        }
        PullProgress::LayerCached {
            layer_index,
            diff_id,
        } => {
            e.kind = K::LayerCached;
            e.layer_index = *layer_index;
            t.diff_id = diff_id.to_string();
        }
        PullProgress::LayerDownloadProgress {
            layer_index,
            digest,
            downloaded_bytes,
            total_bytes,
        } => {
            e.kind = K::LayerDownloadProgress;
            e.layer_index = *layer_index;
            t.digest = digest.to_string();
            e.downloaded_bytes = *downloaded_bytes;
            e.total_bytes = total_bytes.unwrap_or(0);
            e.has_total_bytes = total_bytes.is_some();
        }
        PullProgress::LayerDownloadComplete {
            layer_index,
            digest,
            downloaded_bytes,
        } => {
            e.kind = K::LayerDownloadComplete;
            e.layer_index = *layer_index;
            t.digest = digest.to_string();
            e.downloaded_bytes = *downloaded_bytes;
        }
        PullProgress::LayerExtractStarted {
            layer_index,
            diff_id,
        } => {
            e.kind = K::LayerExtractStarted;
            e.layer_index = *layer_index;
            t.diff_id = diff_id.to_string();
        }
        PullProgress::LayerExtractProgress {
            layer_index,
            bytes_extracted,
            entries,
        } => {
            e.kind = K::LayerExtractProgress;
            e.layer_index = *layer_index;
            e.bytes_extracted = *bytes_extracted;
            e.entries = *entries;
        }
        PullProgress::LayerExtractComplete {
            layer_index,
            diff_id,
            entries,
            bytes_extracted,
        } => {
            e.kind = K::LayerExtractComplete;
            e.layer_index = *layer_index;
            t.diff_id = diff_id.to_string();
            e.entries = *entries;
            e.bytes_extracted = *bytes_extracted;
        }
        PullProgress::LayerIndexStarted { layer_index } => {
            e.kind = K::LayerIndexStarted;
            e.layer_index = *layer_index;
        }
        PullProgress::LayerIndexComplete {
            layer_index,
            entries,
        } => {
            e.kind = K::LayerIndexComplete;
            e.layer_index = *layer_index;
            e.entries = *entries;
        }
        PullProgress::LayerWaiting {
            layer_index,
            diff_id,
            holder_pid,
        } => {
            e.kind = K::LayerWaiting;
            e.layer_index = *layer_index;
            t.diff_id = diff_id.to_string();
            e.holder_pid = holder_pid.unwrap_or(0);
            e.has_holder_pid = holder_pid.is_some();
        }
        PullProgress::RequestRetrying {
            url,
            layer_index,
            digest,
            attempt,
            max_attempts,
            wait_ms,
            reason,
        } => {
            e.kind = K::RequestRetrying;
            t.url = url;
            e.layer_index = layer_index.unwrap_or(0);
            e.has_layer_index = layer_index.is_some();
            t.digest = digest.as_ref().map(|d| d.to_string()).unwrap_or_default();
            e.attempt = *attempt;
            e.max_attempts = *max_attempts;
            e.wait_ms = *wait_ms;
            t.reason = reason;
        }
        PullProgress::Complete {
            reference,
            manifest_digest,
            layer_count,
            cached,
        } => {
            e.kind = K::Complete;
            t.reference = reference;
            t.manifest_digest = manifest_digest.to_string();
            e.layer_count = *layer_count;
            e.cached = *cached;
        }
        _ => return,
    }
    e.reference = msb_str::borrow(t.reference);
    e.manifest_digest = msb_str::borrow(&t.manifest_digest);
    e.digest = msb_str::borrow(&t.digest);
    e.diff_id = msb_str::borrow(&t.diff_id);
    e.url = msb_str::borrow(t.url);
    e.reason = msb_str::borrow(t.reason);
    t.json = serde_json::to_string(event).unwrap_or_default();
    e.json = msb_str::borrow(&t.json);
    f(&e);
}

#[cfg(test)]
mod tests {
    use super::*;
    use microsandbox_image::Digest;

    #[test]
    fn every_field_of_an_event_arrives() {
        let digest = Digest::sha256_of(b"layer");
        let event = PullProgress::LayerDownloadProgress {
            layer_index: 2,
            digest: digest.clone(),
            downloaded_bytes: 10,
            total_bytes: Some(20),
        };
        let mut seen = false;
        with_c_event(&event, |e| {
            assert_eq!(e.kind, msb_progress_kind::LayerDownloadProgress);
            assert_eq!(e.layer_index, 2);
            assert_eq!(e.digest.to_str(), digest.to_string());
            assert_eq!((e.downloaded_bytes, e.total_bytes), (10, 20));
            assert!(e.has_total_bytes);
            assert_eq!(e.reference.to_str(), "");
            let json: serde_json::Value = serde_json::from_str(e.json.to_str()).unwrap();
            assert_eq!(json["type"], "layerDownloadProgress");
            assert_eq!(json["totalBytes"], 20);
            seen = true;
        });
        assert!(seen);
    }

    #[test]
    fn a_retry_arrives_with_its_layer_or_without() {
        let digest = Digest::sha256_of(b"layer");
        let event = PullProgress::RequestRetrying {
            url: "https://r/v2/a/blobs/x".into(),
            layer_index: Some(1),
            digest: Some(digest.clone()),
            attempt: 2,
            max_attempts: 5,
            wait_ms: 400,
            reason: "HTTP 503".into(),
        };
        let mut seen = 0;
        with_c_event(&event, |e| {
            assert_eq!(e.kind, msb_progress_kind::RequestRetrying);
            assert_eq!((e.layer_index, e.has_layer_index), (1, true));
            assert_eq!(e.digest.to_str(), digest.to_string());
            assert_eq!((e.attempt, e.max_attempts, e.wait_ms), (2, 5, 400));
            assert_eq!(
                (e.url.to_str(), e.reason.to_str()),
                ("https://r/v2/a/blobs/x", "HTTP 503")
            );
            seen += 1;
        });
        let manifest = PullProgress::RequestRetrying {
            url: "https://r/v2/a/manifests/1".into(),
            layer_index: None,
            digest: None,
            attempt: 2,
            max_attempts: 5,
            wait_ms: 400,
            reason: "reset".into(),
        };
        with_c_event(&manifest, |e| {
            assert!(!e.has_layer_index);
            assert_eq!(e.digest.to_str(), "");
            seen += 1;
        });
        assert_eq!(seen, 2);
    }
}
