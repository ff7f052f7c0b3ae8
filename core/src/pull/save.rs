//! `save`: an image written out as an OCI image layout or a docker archive, to be carried
//! to a machine without a registry. The cache keeps extracted layer trees, not the blobs
//! they came from (re-packing a tree would not give the same bytes, hence not the same
//! digests), so the blobs are read from where the image lives (the registry, or another
//! offline image) and verified as a pull verifies them: manifests and config by digest,
//! every layer's size and digest as it streams (and, into a docker archive, whose layers are
//! stored uncompressed, its diff_id too). Nothing is downloaded whole into memory.

use std::io::Read;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::cancel::CancelToken;
use crate::config::ImageConfig;
use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::layer::{Decoder, DownloadError, LayerError, chunk_channel, stream_blob};
use crate::manifest::{LayerDescriptor, ManifestError, OCI_MANIFEST};
use crate::offline::local::LocalImage;
use crate::offline::write_archive::{ArchiveWriter, StreamError};
use crate::offline::write_layout::LayoutWriter;
use crate::offline::{ImageSource, LayoutRef, SaveReport, SourceError, familiar_name};
use crate::platform::Platform;
use crate::progress::ProgressSink;
use crate::reference::Reference;

use super::context::PullContext;
use super::resolve::MAX_CONFIG_BYTES;
use super::{Puller, blocking};

/// The image to write, resolved and its config verified.
struct Saving {
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
    media_type: String,
    config: Vec<u8>,
    config_digest: Digest,
    layers: Vec<(LayerDescriptor, Digest)>,
}

impl Puller {
    /// Writes `reference` (read from `local` when given, else from its registry) to
    /// `target`.
    pub(crate) async fn save(
        &self,
        reference: &Reference,
        local: Option<Arc<LocalImage>>,
        target: &ImageSource,
        platform: Option<Platform>,
    ) -> Result<SaveReport> {
        let platform = platform.unwrap_or_else(|| self.platform.clone());
        let (progress, cancel) = (ProgressSink::none(), CancelToken::new());
        let reference = local.as_ref().map_or(reference.clone(), |l| l.name.clone());
        let mut cx = PullContext::new(&reference, platform, &progress, &cancel);
        if let Some(local) = local {
            cx = cx.reading(local);
        }
        let image = self.resolve_for_save(&cx).await?;
        let (blobs_written, bytes_written) = match target {
            ImageSource::OciLayout {
                dir,
                reference: tag,
            } => {
                let tag = match tag {
                    Some(LayoutRef::Tag(t)) => t.clone(),
                    Some(LayoutRef::Digest(_)) => {
                        return Err(Error::InvalidArgument(format!(
                            "{target}: a layout is written under a tag, not a digest"
                        )));
                    }
                    None => reference.tag().unwrap_or("latest").to_owned(),
                };
                self.save_layout(&cx, &image, dir, &tag).await?
            }
            ImageSource::DockerArchive { file, name } => {
                let tag = name.as_ref().or(reference.tag().map(|_| &reference));
                self.save_archive(&cx, &image, file, tag.map(familiar_name))
                    .await?
            }
            ImageSource::Registry(_) => {
                return Err(Error::InvalidArgument(format!(
                    "{target}: save writes oci-layout:DIR or docker-archive:FILE; pushing to a \
                     registry is not supported"
                )));
            }
        };
        Ok(SaveReport {
            reference: reference.to_string(),
            target: target.to_string(),
            manifest_digest: image.manifest_digest,
            config_digest: image.config_digest,
            blobs_written,
            bytes_written,
        })
    }

    /// The platform manifest and the verified config.
    async fn resolve_for_save(&self, cx: &PullContext<'_>) -> Result<Saving> {
        let fetched = match self.fetch_manifests(cx).await {
            Ok(f) => f,
            Err(e) if cx.local.is_none() && self.has_record(cx).await => {
                return Err(cx.source(SourceError::BlobsNotCached {
                    reference: cx.image.to_string(),
                    detail: e.to_string(),
                }));
            }
            Err(e) => return Err(e),
        };
        let m = fetched.platform_manifest.unwrap_or(fetched.top);
        let media_type = serde_json::from_slice::<serde_json::Value>(&m.bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .or(m.content_type.filter(|c| c.contains("manifest")))
            .unwrap_or_else(|| OCI_MANIFEST.to_owned());
        let manifest = fetched.manifest;
        let config = self
            .get_blob(cx, &manifest.config_digest, "config", MAX_CONFIG_BYTES)
            .await?;
        let diff_ids = ImageConfig::from_json(&config)
            .and_then(|c| c.diff_ids())
            .map_err(|e| cx.manifest(e))?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(cx.manifest(ManifestError::LayerCountMismatch {
                layers: manifest.layers.len(),
                diff_ids: diff_ids.len(),
            }));
        }
        Ok(Saving {
            manifest_bytes: m.bytes,
            manifest_digest: m.digest,
            media_type,
            config,
            config_digest: manifest.config_digest,
            layers: manifest.layers.into_iter().zip(diff_ids).collect(),
        })
    }

    async fn has_record(&self, cx: &PullContext<'_>) -> bool {
        let (cache, key) = (self.cache.clone(), cx.record_key());
        blocking(move || cache.read_record(&key).is_some())
            .await
            .unwrap_or(false)
    }

    /// A layer's bytes as they arrive, and the download feeding them (registry only).
    async fn layer_stream(
        &self,
        cx: &PullContext<'_>,
        layer: &LayerDescriptor,
        diff_id: &Digest,
    ) -> Result<(
        Box<dyn Read + Send>,
        Option<JoinHandle<Result<u64, DownloadError>>>,
    )> {
        if let Some(local) = cx.local.clone() {
            let l = layer.clone();
            let reader = blocking(move || local.open_layer(&l))
                .await?
                .map_err(|e| cx.layer(diff_id, Some(&layer.digest), e.into()))?;
            return Ok((reader, None));
        }
        let (tx, reader) = chunk_channel();
        let (client, reference, layer) = (self.client.clone(), cx.reference.clone(), layer.clone());
        let download = tokio::spawn(async move {
            let r = stream_blob(
                &client,
                &reference,
                &layer,
                0,
                0,
                &tx,
                &ProgressSink::none(),
            )
            .await;
            if r.is_err() {
                let _ = tx.send(Err(())).await;
            }
            r
        });
        Ok((Box::new(reader), Some(download)))
    }

    /// The download's failure if it failed, else `written`'s.
    async fn layer_outcome<T>(
        cx: &PullContext<'_>,
        layer: &LayerDescriptor,
        diff_id: &Digest,
        download: Option<JoinHandle<Result<u64, DownloadError>>>,
        written: Result<T, LayerError>,
    ) -> Result<T> {
        let failed = match download {
            Some(d) => d
                .await
                .map_err(|e| Error::Internal(format!("download task: {e}")))?
                .err()
                .and_then(DownloadError::layer_error),
            None => None,
        };
        failed
            .map_or(written, Err)
            .map_err(|e| cx.layer(diff_id, Some(&layer.digest), e))
    }

    async fn save_layout(
        &self,
        cx: &PullContext<'_>,
        image: &Saving,
        dir: &std::path::Path,
        tag: &str,
    ) -> Result<(usize, u64)> {
        let dir = dir.to_owned();
        let writer = blocking(move || LayoutWriter::create(&dir))
            .await?
            .map_err(|e| cx.source(e))?;
        let writer = Arc::new(writer);
        let (mut count, mut bytes) = (0usize, 0u64);
        for (layer, diff_id) in &image.layers {
            let (w, d, s) = (writer.clone(), layer.digest.clone(), layer.size);
            if blocking(move || w.has(&d, s)).await? {
                continue;
            }
            let (reader, download) = self.layer_stream(cx, layer, diff_id).await?;
            let (w, d, s) = (writer.clone(), layer.digest.clone(), layer.size);
            let written = blocking(move || w.put(&d, s, reader)).await?;
            bytes += Self::layer_outcome(
                cx,
                layer,
                diff_id,
                download,
                written.map_err(LayerError::from),
            )
            .await?;
            count += 1;
        }
        let small = [
            (image.config_digest.clone(), image.config.clone()),
            (image.manifest_digest.clone(), image.manifest_bytes.clone()),
        ];
        let (w, manifest) = (writer.clone(), image.manifest_digest.clone());
        let (size, media_type, tag) = (
            image.manifest_bytes.len() as u64,
            image.media_type.clone(),
            tag.to_owned(),
        );
        let (c, b) = blocking(move || {
            let (mut c, mut b) = (0usize, 0u64);
            for (digest, data) in &small {
                if !w.has(digest, data.len() as u64) {
                    b += w.put(digest, data.len() as u64, data.as_slice())?;
                    c += 1;
                }
            }
            w.tag(&manifest, size, &media_type, &tag)?;
            Ok::<_, SourceError>((c, b))
        })
        .await?
        .map_err(|e| cx.source(e))?;
        Ok((count + c, bytes + b))
    }

    async fn save_archive(
        &self,
        cx: &PullContext<'_>,
        image: &Saving,
        file: &std::path::Path,
        repo_tag: Option<String>,
    ) -> Result<(usize, u64)> {
        let file = file.to_owned();
        let mut writer = blocking(move || ArchiveWriter::create(&file))
            .await?
            .map_err(|e| cx.source(e))?;
        let config_name = format!("{}.json", image.config_digest.hex());
        writer
            .add(&config_name, &image.config)
            .map_err(|e| cx.source(e))?;
        let mut names = Vec::new();
        for (layer, diff_id) in &image.layers {
            let name = format!("{}.tar", diff_id.hex());
            names.push(name.clone());
            let (reader, download) = self.layer_stream(cx, layer, diff_id).await?;
            let (l, d) = (layer.clone(), diff_id.clone());
            let (back, written) = blocking(move || {
                let written = inflate_into(&mut writer, &name, reader, &l, &d);
                (writer, written)
            })
            .await?;
            writer = back;
            Self::layer_outcome(cx, layer, diff_id, download, written).await?;
        }
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": repo_tag.into_iter().collect::<Vec<_>>(),
            "Layers": names,
        }]);
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Internal(format!("manifest.json: {e}")))?;
        let count = image.layers.len() + 1;
        let len = blocking(move || {
            writer.add("manifest.json", &bytes)?;
            writer.finish()
        })
        .await?
        .map_err(|e| cx.source(e))?;
        Ok((count, len))
    }
}

/// Streams `layer` into member `name`, inflated, checking its size and digest and the
/// diff_id of what it inflates to.
fn inflate_into(
    writer: &mut ArchiveWriter,
    name: &str,
    reader: Box<dyn Read + Send>,
    layer: &LayerDescriptor,
    diff_id: &Digest,
) -> Result<u64, LayerError> {
    let compressed = HashingReader::new(reader.take(layer.size + 1), layer.digest.algorithm());
    let decoder = Decoder::new(compressed, layer.compression).map_err(LayerError::tar)?;
    let mut tar = HashingReader::new(decoder, Algorithm::Sha256);
    let size = match writer.add_stream(name, &mut tar) {
        Ok(size) => size,
        Err(StreamError::Read(e)) => return Err(LayerError::tar(e)),
        Err(StreamError::Write(e)) => return Err(e.into()),
    };
    let (decoder, actual_diff_id, _) = tar.into_parts();
    let mut rest = decoder.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(LayerError::tar)?;
    let (blob_digest, blob_size) = rest.into_inner().finish();
    if blob_size != layer.size {
        return Err(LayerError::SizeMismatch {
            expected: layer.size,
            actual: blob_size,
        });
    }
    if blob_digest != layer.digest {
        return Err(LayerError::DigestMismatch {
            expected: layer.digest.clone(),
            actual: blob_digest,
        });
    }
    if &actual_diff_id != diff_id {
        return Err(LayerError::DiffIdMismatch {
            expected: diff_id.clone(),
            actual: actual_diff_id,
        });
    }
    Ok(size)
}
