//! `msbimage-push-tree --registry URL --image REPO:TAG [--compression gzip|zstd|none]
//! [--platform os/arch] --layer DEST=SRC[,DEST=SRC…] [--whiteout PATH]… [--layer …]…
//! [--oci-layout DIR]`: builds an image whose layers are tars of real host directories and
//! pushes it to a registry (and/or writes an OCI layout for umoci and skopeo). Each `--layer`
//! starts a new layer; `--whiteout` adds a deletion marker to the layer before it. Prints the
//! manifest digest and sizes as one JSON line. Used by the benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;

use msbimage_testkit::tree::tar_from_trees;
use msbimage_testkit::{Compression, ImageBuilder, Layer, Pusher};

struct Spec {
    sources: Vec<(PathBuf, String)>,
    whiteouts: Vec<String>,
}

/// Registry URL, image, compression, (os, arch), layers, OCI layout dir.
type Args = (
    Option<String>,
    String,
    Compression,
    (String, String),
    Vec<Spec>,
    Option<PathBuf>,
);

fn parse() -> Result<Args, String> {
    let mut registry = None;
    let mut image = None;
    let mut compression = Compression::Gzip;
    let mut platform = ("linux".to_string(), "amd64".to_string());
    let mut layers: Vec<Spec> = Vec::new();
    let mut layout = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--registry" => registry = Some(val()?),
            "--image" => image = Some(val()?),
            "--oci-layout" => layout = Some(PathBuf::from(val()?)),
            "--compression" => {
                compression = match val()?.as_str() {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "none" => Compression::None,
                    other => return Err(format!("unknown compression {other}")),
                }
            }
            "--platform" => {
                let v = val()?;
                let (os, arch) = v.split_once('/').ok_or("--platform os/arch")?;
                platform = (os.to_string(), arch.to_string());
            }
            "--layer" => {
                let v = val()?;
                let mut sources = Vec::new();
                for part in v.split(',').filter(|p| !p.is_empty()) {
                    let (dest, src) = part.split_once('=').ok_or("--layer DEST=SRC[,DEST=SRC]")?;
                    sources.push((PathBuf::from(src), dest.to_string()));
                }
                layers.push(Spec {
                    sources,
                    whiteouts: Vec::new(),
                });
            }
            "--whiteout" => {
                let v = val()?;
                layers
                    .last_mut()
                    .ok_or("--whiteout after a --layer")?
                    .whiteouts
                    .push(v);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let image = image.ok_or("--image REPO:TAG is required")?;
    if layers.is_empty() {
        return Err("at least one --layer".into());
    }
    Ok((registry, image, compression, platform, layers, layout))
}

#[tokio::main]
async fn main() -> ExitCode {
    let (registry, image, compression, platform, specs, layout) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("msbimage-push-tree: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = ImageBuilder::new(&platform.0, &platform.1).cmd(&["/bin/sh"]);
    let (mut tar_bytes, mut blob_bytes) = (0u64, 0u64);
    for spec in &specs {
        let tar = match tar_from_trees(&spec.sources, &spec.whiteouts) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("msbimage-push-tree: reading trees: {e}");
                return ExitCode::FAILURE;
            }
        };
        let layer = Layer::from_tar(tar, compression);
        tar_bytes += layer.tar.len() as u64;
        blob_bytes += layer.blob.len() as u64;
        builder = builder.layer(layer);
    }
    let built = builder.build();
    let (repo, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
    if let Some(url) = registry
        && let Err(e) = Pusher::new(&url).push_image(repo, tag, &built).await
    {
        eprintln!("msbimage-push-tree: push failed: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(dir) = layout
        && let Err(e) = msbimage_testkit::write_oci_layout(&dir, tag, &built)
    {
        eprintln!("msbimage-push-tree: OCI layout: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{}",
        serde_json::json!({
            "image": image, "manifest_digest": built.manifest_digest,
            "layers": specs.len(), "tar_bytes": tar_bytes, "blob_bytes": blob_bytes,
        })
    );
    ExitCode::SUCCESS
}
