//! The per-layer pipeline: one pass over the network bytes that hashes the blob, inflates it,
//! hashes the tar and extracts it into a staging directory, then publishes the directory by
//! one rename once both digests match. Runs the download on the async runtime and everything
//! CPU- or disk-bound on a blocking thread, joined by a bounded channel.

mod decompress;
mod download;
mod extract;
mod flush;
mod gzip;
mod pipe;
mod ranged;
mod reader;
mod reindex;
pub(crate) use reindex::index_from_tree;
mod resume;
mod tar_guard;
mod wait;

use std::io::Read;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

pub use extract::{ExtractLimits, IMPLICIT_DIR_XATTR, OPAQUE_XATTR, WHITEOUT_XATTR};

use crate::cache::{
    CacheError, ErofsRecord, FileLock, GlobalCache, LayerMeta, PartialBlob, Staging,
};
use crate::cancel::CancelToken;
use crate::client::retry::for_layer;
use crate::client::{RegistryClient, RegistryError};
use crate::digest::{Digest, HashingReader};
use crate::erofs::{ErofsOptions, LayerImageWriter};
use crate::error::ErrorKind;
use crate::manifest::LayerDescriptor;
use crate::progress::{ProgressSink, PullProgress};
use crate::reference::Reference;
pub(crate) use decompress::Decoder;
pub(crate) use download::{DownloadError, stream_blob};
use flush::FlushTicker;
pub(crate) use flush::Flusher;
use pipe::{PipeReader, Pumped};
pub(crate) use reader::chunk_channel;
pub(crate) use reindex::ensure_index;

/// What went wrong with one layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The blob could not be downloaded.
    #[error("download failed: {0}")]
    Download(#[source] RegistryError),
    /// The blob's size differs from the manifest's.
    #[error("blob size mismatch: manifest says {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Size in the manifest.
        expected: u64,
        /// Bytes received (at least).
        actual: u64,
    },
    /// The blob does not hash to its digest.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Digest in the manifest.
        expected: Digest,
        /// Digest of what arrived.
        actual: Digest,
    },
    /// The uncompressed tar does not hash to the config's diff_id.
    #[error("diff_id mismatch: config says {expected}, uncompressed content is {actual}")]
    DiffIdMismatch {
        /// diff_id in the config.
        expected: Digest,
        /// Digest of the uncompressed stream.
        actual: Digest,
    },
    /// The stream is not a valid (compressed) tar.
    #[error("bad layer stream: {detail}")]
    Tar {
        /// Decompressor or tar parser message.
        detail: String,
    },
    /// An entry tries to leave the layer directory or has an unusable path.
    #[error("unsafe entry {path:?}: {reason}")]
    UnsafePath {
        /// The entry's path as in the tar.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A configured limit was exceeded.
    #[error("limit {limit} exceeded: {value} > {max}{}", path.as_ref().map(|p| format!(" at {p:?}")).unwrap_or_default())]
    Limit {
        /// The limit's name (a field of [`ExtractLimits`]).
        limit: &'static str,
        /// The value reached.
        value: u64,
        /// The limit.
        max: u64,
        /// The entry, if one is to blame.
        path: Option<String>,
    },
    /// Writing the layer failed.
    #[error("cannot {op} {path:?}: {source}")]
    Io {
        /// What we tried.
        op: &'static str,
        /// The path inside the layer (or cache).
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The cache failed (locks, publishing).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The layer's blob could not be read from an offline image.
    #[error(transparent)]
    Source(#[from] crate::offline::SourceError),
    /// The layer's entries do not form a valid index (or the index is too large).
    #[error("index: {0}")]
    Index(#[from] crate::index::IndexError),
    /// The layer's EROFS image could not be written.
    #[error("EROFS image: {0}")]
    Erofs(#[from] crate::erofs::ErofsError),
    /// A bug: a worker thread panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// The pull was cancelled (or another layer failed) before this layer was done.
    #[error("cancelled")]
    Cancelled,
    /// Another pull held the layer for longer than `lockTimeout`.
    #[error("waited {:.1} s for the layer's lock{}, longer than lockTimeout", waited.as_secs_f64(), holder_pid.map(|p| format!(" (held by pid {p})")).unwrap_or_default())]
    LockTimeout {
        /// How long we waited.
        waited: std::time::Duration,
        /// The process holding the lock, when known.
        holder_pid: Option<u32>,
    },
}

impl LayerError {
    pub(crate) fn tar(e: std::io::Error) -> LayerError {
        LayerError::Tar {
            detail: e.to_string(),
        }
    }

    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LayerError::Download(e) => e.kind(),
            LayerError::SizeMismatch { .. }
            | LayerError::DigestMismatch { .. }
            | LayerError::DiffIdMismatch { .. } => ErrorKind::DigestMismatch,
            LayerError::Io { .. } | LayerError::Erofs(crate::erofs::ErofsError::Io { .. }) => {
                ErrorKind::Io
            }
            LayerError::Cache(e) => e.kind(),
            LayerError::Source(e) => e.kind(),
            LayerError::LockTimeout { .. } => ErrorKind::LockTimeout,
            LayerError::Internal(_) => ErrorKind::Internal,
            LayerError::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Extraction,
        }
    }
}

/// One layer to make present in the cache.
#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    /// Position in the image, bottom = 0.
    pub index: usize,
    /// The blob.
    pub descriptor: LayerDescriptor,
    /// Uncompressed digest from the config (the cache key).
    pub diff_id: Digest,
}

/// Everything the layers of one pull share.
pub(crate) struct LayerContext {
    pub client: Arc<RegistryClient>,
    pub cache: GlobalCache,
    pub reference: Reference,
    pub limits: ExtractLimits,
    pub progress: ProgressSink,
    /// Layers built again even when they are in the cache.
    pub rebuild: Rebuild,
    pub durable: bool,
    /// Longest wait for a layer another pull holds (`None`: no limit).
    pub lock_timeout: Option<std::time::Duration>,
    /// Blobs of at least this many bytes keep their downloaded bytes (`cache/partial.rs`).
    pub partial_min_size: Option<u64>,
    /// Early writeback for durable pulls (see [`flush`]).
    pub flusher: Option<Flusher>,
    pub build_index: bool,
    /// Write each layer's tree (`fs/`); without it the layer is its EROFS image alone.
    pub tree: bool,
    /// Write each layer's EROFS image too, with this opaque marker (`None`: no image).
    pub erofs: Option<crate::erofs::OpaqueXattr>,
    /// The offline image the blobs come from, instead of `client`.
    pub local: Option<Arc<crate::offline::local::LocalImage>>,
    /// Tripped by the caller, or by the pull when another layer failed.
    pub cancel: CancelToken,
}

/// Which layers a pull builds again even when the cache has them: none (the usual pull),
/// all (`force`), or the ones `verify` found damaged (`Registry::repair`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Rebuild {
    #[default]
    Nothing,
    All,
    Only(std::collections::HashSet<Digest>),
}

impl Rebuild {
    /// `All` when forced, else `Nothing`.
    pub fn forced(force: bool) -> Rebuild {
        if force {
            Rebuild::All
        } else {
            Rebuild::Nothing
        }
    }

    /// These layers as well.
    pub fn and(self, more: std::collections::HashSet<Digest>) -> Rebuild {
        match self {
            Rebuild::All => Rebuild::All,
            _ if more.is_empty() => self,
            Rebuild::Nothing => Rebuild::Only(more),
            Rebuild::Only(mut set) => {
                set.extend(more);
                Rebuild::Only(set)
            }
        }
    }

    /// Whether `diff_id` is built again.
    pub fn wants(&self, diff_id: &Digest) -> bool {
        match self {
            Rebuild::Nothing => false,
            Rebuild::All => true,
            Rebuild::Only(set) => set.contains(diff_id),
        }
    }
}

/// How a layer became present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerOutcome {
    /// It was already in the cache.
    Cached,
    /// We downloaded and extracted it.
    Pulled,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LayerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LayerError::Internal(format!("layer worker: {e}")))
}

/// Make one layer present in the cache: reuse it, or download, verify, extract and publish it.
pub(crate) async fn ensure_layer(
    ctx: Arc<LayerContext>,
    job: LayerJob,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<LayerOutcome, LayerError> {
    let Some((_in_process, lock)) = wait::lock_layer(&ctx, &job).await? else {
        return cached(&ctx, &job).await;
    };
    // Under the lock: another process may have published it while we waited.
    let (cache, diff_id) = (ctx.cache.clone(), job.diff_id.clone());
    if !ctx.rebuild.wants(&diff_id) && blocking(move || cache.has_layer(&diff_id)).await? {
        drop(lock);
        return cached(&ctx, &job).await;
    }

    ctx.progress.emit(PullProgress::LayerExtractStarted {
        layer_index: job.index,
        diff_id: job.diff_id.clone(),
    });
    resume::download_layer(&ctx, &job, lock, permit).await?;
    Ok(LayerOutcome::Pulled)
}

/// The end of one pass over a layer's blob: its result, and the layer lock, concurrency
/// permit and partial back for another pass (the permit and the partial are gone once the
/// blob was verified).
pub(super) struct Attempt {
    pub result: Result<(), LayerError>,
    pub lock: Option<FileLock>,
    pub permit: Option<OwnedSemaphorePermit>,
    pub partial: Option<PartialBlob>,
}

/// One pass: feed `partial`'s kept bytes, then the network's from where they end (with
/// `Range`), through the pipeline, keeping the new bytes in `partial` when it keeps them.
pub(super) async fn run_pipeline(
    ctx: &Arc<LayerContext>,
    job: &LayerJob,
    lock: FileLock,
    permit: Option<OwnedSemaphorePermit>,
    partial: Option<PartialBlob>,
) -> Attempt {
    if let Some(local) = &ctx.local {
        return run_local(ctx, local, job, lock, permit).await;
    }
    let from = partial.as_ref().map_or(0, PartialBlob::kept);
    let (tx, mut reader) = chunk_channel();
    // Opening two files of our own: no need for a blocking thread.
    let opened = partial.as_ref().map(|p| {
        let prefix = (p.kept() > 0).then(|| p.prefix()).transpose()?;
        Ok::<_, CacheError>((prefix, p.writer()?))
    });
    let prefix = match opened {
        Some(Err(e)) => {
            return Attempt {
                result: Err(e.into()),
                lock: Some(lock),
                permit,
                partial,
            };
        }
        Some(Ok((prefix, writer))) => {
            if let Some(writer) = writer {
                reader.keep_in(writer);
            }
            prefix
        }
        None => None,
    };
    let source: Box<dyn Read + Send> = match prefix {
        Some(prefix) => Box::new(prefix.chain(reader)),
        None => Box::new(reader),
    };
    let worker = {
        let ctx = ctx.clone();
        let job = job.clone();
        tokio::task::spawn_blocking(move || {
            // The lock is held until the layer is published or abandoned.
            let (mut permit, mut partial) = (permit, partial);
            let result = extract_and_publish(&ctx, &job, source, &mut permit, &mut partial);
            (result, lock, permit, partial)
        })
    };
    // On cancel the download stops; the worker still runs to its end (it sees the failure,
    // removes its staging directory) before this function returns.
    let downloaded = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => Err(DownloadError::Cancelled),
        r = for_layer(job.index, &job.descriptor.digest, stream_blob(
            &ctx.client,
            &ctx.reference,
            &job.descriptor,
            job.index,
            from,
            &tx,
            &ctx.progress,
        )) => r,
    };
    if downloaded.is_err() {
        let _ = tx.send(Err(())).await;
    }
    drop(tx);
    let (extracted, lock, permit, partial) = match worker.await {
        Ok(done) => done,
        Err(e) => {
            return Attempt {
                result: Err(LayerError::Internal(format!("layer worker: {e}"))),
                lock: None,
                permit: None,
                partial: None,
            };
        }
    };
    let result = match downloaded.map_err(DownloadError::layer_error) {
        Ok(_) | Err(None) => extracted.map(drop),
        Err(Some(e)) => Err(e),
    };
    Attempt {
        result,
        lock: Some(lock),
        permit,
        partial,
    }
}

/// One pass over a layer of an offline image: its file (or archive member) is the source.
async fn run_local(
    ctx: &Arc<LayerContext>,
    local: &Arc<crate::offline::local::LocalImage>,
    job: &LayerJob,
    lock: FileLock,
    permit: Option<OwnedSemaphorePermit>,
) -> Attempt {
    let (ctx, local, job) = (ctx.clone(), local.clone(), job.clone());
    let worker = tokio::task::spawn_blocking(move || {
        let mut permit = permit;
        let result = local
            .open_layer(&job.descriptor)
            .map_err(LayerError::from)
            .and_then(|source| extract_and_publish(&ctx, &job, source, &mut permit, &mut None));
        (result, lock, permit)
    });
    match worker.await {
        Ok((result, lock, permit)) => Attempt {
            result: result.map(drop),
            lock: Some(lock),
            permit,
            partial: None,
        },
        Err(e) => Attempt {
            result: Err(LayerError::Internal(format!("layer worker: {e}"))),
            lock: None,
            permit: None,
            partial: None,
        },
    }
}

/// A layer already in the cache: report it, and index it if it lacks an index we want.
async fn cached(ctx: &Arc<LayerContext>, job: &LayerJob) -> Result<LayerOutcome, LayerError> {
    ctx.progress.emit(PullProgress::LayerCached {
        layer_index: job.index,
        diff_id: job.diff_id.clone(),
    });
    // Bytes an earlier pull kept of this blob are of no use now (the layer may have been
    // published from another blob of the same content).
    let (cache, blob) = (ctx.cache.clone(), job.descriptor.digest.clone());
    blocking(move || cache.drop_partial(&blob)).await??;
    if ctx.build_index {
        index_cached_layers(
            &ctx.cache,
            &[(job.index, job.diff_id.clone())],
            &ctx.progress,
        )
        .await?;
    }
    Ok(LayerOutcome::Cached)
}

/// Give cached layers that lack an index one (no network involved). A read-only cache
/// cannot: a missing index is [`CacheError::ReadOnly`] there.
pub(crate) async fn index_cached_layers(
    cache: &GlobalCache,
    layers: &[(usize, Digest)],
    progress: &ProgressSink,
) -> Result<(), LayerError> {
    for (layer_index, diff_id) in layers {
        let (c, d) = (cache.clone(), diff_id.clone());
        let index = cache.layer_index(diff_id);
        if blocking({
            let index = index.clone();
            move || index.exists()
        })
        .await?
        {
            continue;
        }
        if cache.is_read_only() {
            return Err(CacheError::ReadOnly {
                path: index,
                need: format!(
                    "layer {diff_id} has no index (pulled with --no-index) and building one \
                     writes it"
                ),
                fix: "pull with --no-index (buildIndex: false), or ask the cache's owner to \
                      pull the image with its index"
                    .into(),
            }
            .into());
        }
        progress.emit(PullProgress::LayerIndexStarted {
            layer_index: *layer_index,
        });
        if let Some(entries) = blocking(move || ensure_index(&c, &d)).await?? {
            progress.emit(PullProgress::LayerIndexComplete {
                layer_index: *layer_index,
                entries,
            });
        }
    }
    Ok(())
}

/// The small limits the fuzzing hooks extract with.
const FUZZ_LIMITS: ExtractLimits = ExtractLimits {
    max_entries: 256,
    max_total_bytes: 1 << 20,
    max_file_size: 256 << 10,
    max_depth: 16,
    max_path_len: 1024,
};

/// Fuzzing hook (`core/fuzz/fuzz_targets/extract.rs`): extract `tar` into the existing empty
/// directory `root` with small limits, building the index too. Not part of the API.
#[doc(hidden)]
pub fn fuzz_extract(tar: &[u8], root: &std::path::Path) -> Result<(), LayerError> {
    let limits = FUZZ_LIMITS;
    extract::check_guard_transparent(tar, &limits)?;
    extract_layer_tar(tar, root, limits).map(drop)
}

/// Fuzzing and test hook (`core/fuzz/fuzz_targets/extract.rs`, `core/tests/erofs.rs`):
/// [`extract_layer_tar_erofs`] with [`fuzz_extract`]'s limits; returns only the problems.
/// Not part of the API.
#[doc(hidden)]
pub fn fuzz_extract_erofs(
    tar: &[u8],
    root: &std::path::Path,
    image: &std::path::Path,
    opaque: crate::erofs::OpaqueXattr,
) -> Result<Vec<String>, LayerError> {
    let limits = FUZZ_LIMITS;
    extract_layer_tar_erofs(tar, root, image, opaque, limits).map(|(_, problems)| problems)
}

/// Test hook (the differential driver's EROFS mode, [`fuzz_extract_erofs`]): extract the
/// uncompressed layer `tar` into the existing empty directory `root` with `limits`, writing
/// the layer's EROFS image to `image` (opaque marker `opaque`) in the same pass, as a pull
/// with `erofs-layers` does. Returns the layer's index and what `verify` finds wrong with
/// the image against that index and the content digests taken while extracting (`kind:
/// path: detail` each; none for a faithful image). Not part of the API.
#[doc(hidden)]
pub fn extract_layer_tar_erofs(
    tar: &[u8],
    root: &std::path::Path,
    image: &std::path::Path,
    opaque: crate::erofs::OpaqueXattr,
    limits: ExtractLimits,
) -> Result<(Vec<u8>, Vec<String>), LayerError> {
    let mut archive = extract::open_archive(tar, &limits);
    let writer = LayerImageWriter::create(
        image,
        ErofsOptions {
            opaque,
            uuid: [0; 16],
        },
    )?;
    let mut stats = extract::Extractor::new(root, limits, true)?
        .with_erofs(writer)
        .run(&mut archive, &mut |_, _| {})?;
    let (Some(writer), Some(tree)) = (stats.erofs.take(), stats.index.take()) else {
        return Err(LayerError::Internal("no image or index built".into()));
    };
    let summary = writer.finish(&tree)?;
    let bytes = tree.finish()?;
    let index = crate::index::LayerIndex::from_bytes(bytes.clone())?;
    let contents = stats.content_digests.into_iter().collect();
    let problems = crate::cache::image_problems(image, summary.blocks, opaque, &index, &contents);
    Ok((bytes, problems.iter().map(ToString::to_string).collect()))
}

/// Test hook (`core/tests/breakouts.rs`, the differential driver of `tests/differential`):
/// extract the uncompressed layer `tar` into the existing empty directory `root` with
/// `limits`, as a pull does, and return the layer's index. Not part of the API.
#[doc(hidden)]
pub fn extract_layer_tar(
    tar: &[u8],
    root: &std::path::Path,
    limits: ExtractLimits,
) -> Result<Vec<u8>, LayerError> {
    let mut archive = extract::open_archive(tar, &limits);
    let stats = extract::Extractor::new(root, limits, true)?.run(&mut archive, &mut |_, _| {})?;
    match stats.index {
        Some(index) => Ok(index.finish()?),
        None => Err(LayerError::Internal("no index built".into())),
    }
}

/// Test hook (`core/tests/breakouts.rs`): extract the uncompressed layer `tar` as a pull
/// with the EROFS output does, into the existing empty directory `tree` too when given
/// (`outputs: [directory, erofs-layers]`), else into nothing but the image (`outputs:
/// [erofs-layers]`), and write the layer's image at `image` (which must not exist). Not part
/// of the API.
#[doc(hidden)]
pub fn extract_layer_image(
    tar: &[u8],
    tree: Option<&std::path::Path>,
    image: &std::path::Path,
    limits: ExtractLimits,
) -> Result<(), LayerError> {
    let writer = LayerImageWriter::create(image, ErofsOptions::default())?;
    let mut archive = extract::open_archive(tar, &limits);
    let stats = match tree {
        Some(root) => extract::Extractor::new(root, limits, true)?
            .with_erofs(writer)
            .run(&mut archive, &mut |_, _| {})?,
        None => extract::Extractor::image_only(limits, writer).run(&mut archive, &mut |_, _| {})?,
    };
    match (stats.erofs, &stats.index) {
        (Some(writer), Some(index)) => writer.finish(index).map(drop).map_err(Into::into),
        _ => Err(LayerError::Internal("no image or index built".into())),
    }
}

/// Benchmark hook (`core/benches/index_overhead.rs`): extract the uncompressed layer `tar`
/// into the existing empty directory `root` with the default limits, building and
/// serialising the index when `build_index`; returns the number of entries and the index's
/// size in bytes (0 without it). Not part of the API.
#[doc(hidden)]
pub fn bench_extract(
    tar: &[u8],
    root: &std::path::Path,
    build_index: bool,
) -> Result<(u64, usize), LayerError> {
    let limits = ExtractLimits::default();
    let mut archive = extract::open_archive(tar, &limits);
    let stats =
        extract::Extractor::new(root, limits, build_index)?.run(&mut archive, &mut |_, _| {})?;
    let index_len = match stats.index {
        Some(index) => index.finish()?.len(),
        None => 0,
    };
    Ok((stats.entries, index_len))
}

/// The extractor thread's half of a layer: hash the tar and write the tree. `Err` for a
/// failure that makes the rest of the blob not worth reading (the inflater is stopped);
/// otherwise the extraction's own result (a broken stream included, with the inflater told to
/// hash the rest of the blob), the tar's digest and its length.
fn extract_tar(
    ctx: &LayerContext,
    job: &LayerJob,
    outputs: Outputs,
    staging: &Staging,
    pipe: PipeReader,
) -> Result<(Result<extract::ExtractStats, LayerError>, Digest, u64), LayerError> {
    let mut archive = extract::open_archive(
        HashingReader::new(pipe, job.diff_id.algorithm()),
        &ctx.limits,
    );
    let progress = &ctx.progress;
    let mut flush = FlushTicker::new(ctx.flusher.as_ref());
    let image = match outputs.erofs {
        Some(opaque) => Some(LayerImageWriter::create(
            &staging.erofs(),
            ErofsOptions::keyed_by(&job.diff_id, opaque),
        )?),
        None => None,
    };
    let mut report = |entries, offset| {
        flush.at(offset);
        progress.emit(PullProgress::LayerExtractProgress {
            layer_index: job.index,
            bytes_extracted: offset,
            entries,
        })
    };
    let extracted = match image {
        // No tree: the image is the layer's only copy of the files.
        Some(image) if !outputs.tree => {
            extract::Extractor::image_only(ctx.limits, image).run(&mut archive, &mut report)
        }
        image => {
            extract::Extractor::new(&staging.fs(), ctx.limits, ctx.build_index).and_then(|x| {
                let x = x.with_perms(ctx.cache.perms());
                let x = match image {
                    Some(image) => x.with_erofs(image),
                    None => x,
                };
                x.run(&mut archive, &mut report)
            })
        }
    };
    // Only a broken stream is worth reading to its end (to tell corruption from a bad tar);
    // anything else (unsafe path, limit) stops the download now.
    let extracted = match extracted {
        Err(e) if !matches!(e, LayerError::Tar { .. }) => return Err(e),
        other => other,
    };
    // The tar may end before the stream does (padding): hash every remaining byte too.
    let mut tar_reader = archive.into_inner();
    let drained = match &extracted {
        Ok(_) => std::io::copy(&mut tar_reader, &mut std::io::sink())
            .map(|_| ())
            .map_err(LayerError::tar),
        Err(_) => Ok(()),
    };
    let (pipe, diff_id, uncompressed_size) = tar_reader.into_inner().into_parts();
    pipe.finish(true);
    Ok((
        extracted.and_then(|s| drained.map(|()| s)),
        diff_id,
        uncompressed_size,
    ))
}

/// What one layer's pass writes: what the pull asks for, plus what the published layer it
/// replaces had (a layer rebuilt for its tree keeps its image, and the other way round, so
/// that pulls asking for different outputs do not take turns deleting each other's).
#[derive(Debug, Clone, Copy)]
struct Outputs {
    /// The tree `fs/`.
    tree: bool,
    /// The EROFS image, with this opaque marker.
    erofs: Option<crate::erofs::OpaqueXattr>,
}

impl Outputs {
    /// The outputs of `job`'s layer (blocking: reads the published `meta.json`, if any; the
    /// caller holds the layer's lock).
    fn of(ctx: &LayerContext, job: &LayerJob) -> Outputs {
        let asked = Outputs {
            tree: ctx.tree,
            erofs: ctx.erofs,
        };
        match LayerMeta::read(&ctx.cache.layer_dir(&job.diff_id)) {
            Ok(had) => Outputs {
                tree: asked.tree || !had.image_only,
                erofs: asked.erofs.or(had.erofs.map(|r| r.opaque_xattr)),
            },
            Err(_) => asked,
        }
    }
}

/// The blocking half: decompress, hash, extract, verify, publish.
fn extract_and_publish(
    ctx: &LayerContext,
    job: &LayerJob,
    source: Box<dyn Read + Send>,
    permit: &mut Option<OwnedSemaphorePermit>,
    partial: &mut Option<PartialBlob>,
) -> Result<LayerMeta, LayerError> {
    let layout = ctx.cache.layout();
    let outputs = Outputs::of(ctx, job);
    let staging = Staging::create(layout, ctx.cache.perms(), &job.diff_id)?;
    let (extracted, diff_id, uncompressed_size, pumped) =
        inflate_and_extract(ctx, job, outputs, &staging, source)?;
    let blob_size = pumped.blob_size;
    let mut stats = verify_blob(job, extracted, pumped)?;
    // The blob is verified: its kept bytes are of no more use. Removed now, before the
    // `syncfs` of a durable publish, their dirty pages are dropped instead of written out.
    // Best effort: a partial left behind is only space, and `gc` collects it.
    if let Some(partial) = partial.take() {
        let _ = partial.remove();
    }
    // Milestones are emitted here, in order, once each fact is verified.
    ctx.progress.emit(PullProgress::LayerDownloadComplete {
        layer_index: job.index,
        digest: job.descriptor.digest.clone(),
        downloaded_bytes: blob_size,
    });
    if diff_id != job.diff_id {
        return Err(LayerError::DiffIdMismatch {
            expected: job.diff_id.clone(),
            actual: diff_id,
        });
    }
    ctx.progress.emit(PullProgress::LayerExtractComplete {
        layer_index: job.index,
        diff_id: job.diff_id.clone(),
        entries: stats.entries,
        bytes_extracted: uncompressed_size,
    });
    let erofs = match (stats.erofs.take(), &stats.index, outputs.erofs) {
        (Some(image), Some(tree), Some(opaque_xattr)) => {
            let summary = image.finish(tree)?;
            staging.adopt_file(&staging.erofs())?;
            Some(ErofsRecord {
                blocks: summary.blocks,
                opaque_xattr,
            })
        }
        _ => None,
    };
    let index_digest = match stats.index {
        // (A layer without its tree always keeps its index: nothing could build it later.)
        Some(index) if ctx.build_index || !outputs.tree => {
            Some(write_index(ctx, job, &staging, index)?)
        }
        _ => None,
    };
    // With the index, the files' content digests let `verify` check the whole tree later.
    let contents_digest = match index_digest {
        Some(_) => {
            let contents = crate::cache::contents::encode(&stats.content_digests);
            staging.write_contents(&contents)?;
            Some(Digest::sha256_of(&contents))
        }
        None => None,
    };
    let meta = LayerMeta {
        diff_id: job.diff_id.clone(),
        compressed_digests: vec![job.descriptor.digest.clone()],
        compressed_size: blob_size,
        media_type: job.descriptor.media_type.clone(),
        uncompressed_size,
        entries: stats.entries,
        file_bytes: stats.file_bytes,
        implicit_dirs: stats.implicit_dirs,
        tree_format: crate::cache::TREE_FORMAT,
        index_digest,
        contents_digest,
        erofs,
        image_only: !outputs.tree,
    };
    if meta.image_only {
        staging.drop_tree()?;
    }
    // The CPU and network work is done: let the next layer start while this one is made
    // durable (a `syncfs` waits for every layer's dirty data, which can take seconds).
    drop(permit.take());
    if let Some(trash) = staging.publish(layout, &meta, ctx.durable)? {
        ctx.cache.defer_trash(&job.diff_id, trash);
    }
    Ok(meta)
}

/// What [`inflate_and_extract`] yields: the extraction's own result, the tar's digest and
/// length, and what the inflater read.
type Extracted = (
    Result<extract::ExtractStats, LayerError>,
    Digest,
    u64,
    Pumped,
);

/// Run the inflater on its own thread (hashing the compressed bytes) and the extractor on
/// this one, joined by a pipe.
fn inflate_and_extract(
    ctx: &LayerContext,
    job: &LayerJob,
    outputs: Outputs,
    staging: &Staging,
    source: Box<dyn Read + Send>,
) -> Result<Extracted, LayerError> {
    let compressed = HashingReader::new(source, job.descriptor.digest.algorithm());
    let decoder = Decoder::new(compressed, job.descriptor.compression).map_err(LayerError::tar)?;
    let (pipe_writer, pipe_reader) = pipe::pipe();
    std::thread::scope(|s| {
        let inflater = std::thread::Builder::new()
            .name("msb-inflate".into())
            .spawn_scoped(s, move || pipe_writer.pump(decoder))
            .map_err(|e| LayerError::Internal(format!("cannot start the inflater thread: {e}")))?;
        let tar_side = extract_tar(ctx, job, outputs, staging, pipe_reader);
        let pumped = inflater
            .join()
            .map_err(|_| LayerError::Internal("the inflater thread panicked".into()))?;
        tar_side.map(|(extracted, diff_id, size)| (extracted, diff_id, size, pumped))
    })
}

/// Check the blob against its descriptor (size, digest, nothing after the compressed stream)
/// and return the extraction's stats. When the stream broke, a corrupted blob is the root
/// cause worth naming.
fn verify_blob(
    job: &LayerJob,
    extracted: Result<extract::ExtractStats, LayerError>,
    pumped: Pumped,
) -> Result<extract::ExtractStats, LayerError> {
    let Pumped {
        blob_digest,
        blob_size,
        trailing,
    } = pumped;
    let trailing = trailing.unwrap_or(Ok(0));
    let stats = match extracted {
        Ok(stats) => stats,
        Err(e) => {
            let stream_broke = matches!(e, LayerError::Tar { .. });
            if stream_broke
                && trailing.is_ok()
                && blob_size == job.descriptor.size
                && blob_digest != job.descriptor.digest
            {
                return Err(LayerError::DigestMismatch {
                    expected: job.descriptor.digest.clone(),
                    actual: blob_digest,
                });
            }
            return Err(e);
        }
    };
    let trailing = trailing.map_err(LayerError::tar)?;
    if blob_size != job.descriptor.size {
        return Err(LayerError::SizeMismatch {
            expected: job.descriptor.size,
            actual: blob_size,
        });
    }
    if blob_digest != job.descriptor.digest {
        return Err(LayerError::DigestMismatch {
            expected: job.descriptor.digest.clone(),
            actual: blob_digest,
        });
    }
    if trailing > 0 && job.descriptor.compression != crate::manifest::Compression::None {
        return Err(LayerError::Tar {
            detail: format!("{trailing} bytes of trailing garbage after the compressed stream"),
        });
    }
    Ok(stats)
}

/// Serialise the layer's index into the staging directory, between its two milestones, and
/// return its digest (kept in `meta.json`).
fn write_index(
    ctx: &LayerContext,
    job: &LayerJob,
    staging: &Staging,
    index: crate::index::IndexBuilder,
) -> Result<Digest, LayerError> {
    ctx.progress.emit(PullProgress::LayerIndexStarted {
        layer_index: job.index,
    });
    let entries = index.len() as u64;
    let bytes = index.finish()?;
    staging.write_index(&bytes)?;
    ctx.progress.emit(PullProgress::LayerIndexComplete {
        layer_index: job.index,
        entries,
    });
    Ok(Digest::sha256_of(&bytes))
}
