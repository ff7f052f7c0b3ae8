//! The fixture images contain what their docs promise, read back with the `tar` crate:
//! entry types, modes, owners, device numbers, link targets, whiteouts, the PAX xattr,
//! the long path; blobs decompress to the tar their diff ID names; the config carries
//! every runtime setting; outputs are deterministic.

use std::io::Read as _;

use msbimage_testkit::fixtures::{self, multiplatform, standard_image, standard_layers};
use msbimage_testkit::{Compression, Layer, ManifestFormat, sha256_digest};
use tar::EntryType;

/// (path, type, mode, uid, gid, link target, device, xattrs, data) of each entry.
#[derive(Debug)]
struct Seen {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    link: Option<String>,
    dev: Option<(u32, u32)>,
    xattrs: Vec<(String, Vec<u8>)>,
    data: Vec<u8>,
}

fn entries(layer: &Layer) -> Vec<Seen> {
    let mut ar = tar::Archive::new(layer.tar.as_slice());
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut xattrs = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    if let Some(k) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.push((k.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            Seen {
                path: e.path().unwrap().to_string_lossy().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                link: e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                dev: h.device_major().unwrap().zip(h.device_minor().unwrap()),
                xattrs,
                data,
            }
        })
        .collect()
}

fn find<'a>(seen: &'a [Seen], path: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.path.trim_end_matches('/') == path)
        .unwrap_or_else(|| panic!("no entry {path}"))
}

#[test]
fn standard_image_layers_hold_every_entry_kind() {
    let image = standard_image(Compression::Gzip);
    assert_eq!(image.layers.len(), 3);
    let l1 = entries(&image.layers[0]);
    assert_eq!(find(&l1, "root").mode, 0o700);
    assert_eq!(find(&l1, "root").kind, EntryType::Directory);
    assert_eq!(find(&l1, "tmp").mode, 0o1777);
    assert_eq!(find(&l1, "usr/bin/tool").mode, 0o755);
    assert_eq!(find(&l1, "usr/bin/suid").mode, 0o4755);
    assert_eq!(find(&l1, "home/user/owned").uid, 1000);
    assert_eq!(find(&l1, "data/empty").data.len(), 0);
    assert_eq!(find(&l1, "data/one-byte").data, b"x");
    assert_eq!(find(&l1, "data/random-100k").data.len(), 100 * 1024);
    assert_eq!(find(&l1, "data/big-3m").data.len(), 3 * 1024 * 1024);
    let rel = find(&l1, "usr/bin/rel-link");
    assert_eq!(
        (rel.kind, rel.link.as_deref()),
        (EntryType::Symlink, Some("tool"))
    );
    assert_eq!(
        find(&l1, "etc/abs-link").link.as_deref(),
        Some("/usr/bin/tool")
    );
    let hard = find(&l1, "usr/bin/tool-hardlink");
    assert_eq!(
        (hard.kind, hard.link.as_deref()),
        (EntryType::Link, Some("usr/bin/tool"))
    );
    let null = find(&l1, "dev/null");
    assert_eq!((null.kind, null.dev), (EntryType::Char, Some((1, 3))));
    assert_eq!(find(&l1, "dev/fifo").kind, EntryType::Fifo);
    assert!(fixtures::LONG_PATH.len() > 100);
    assert_eq!(find(&l1, fixtures::LONG_PATH).data, b"deep\n");

    let l2 = entries(&image.layers[1]);
    assert_eq!(
        find(&l2, "etc/overwritten").data,
        fixtures::OVERWRITTEN_FINAL
    );
    find(&l2, "etc/.wh.to-delete");
    find(&l2, "opaque/.wh..wh..opq");

    let l3 = entries(&image.layers[2]);
    let x = find(&l3, "app/xattr-file");
    assert_eq!(
        x.xattrs,
        [(fixtures::XATTR.0.to_string(), fixtures::XATTR.1.to_vec())]
    );
}

#[test]
fn blobs_decompress_to_their_diff_ids_for_every_compression() {
    let tars: Vec<Vec<u8>> = standard_layers().iter().map(|b| b.tar_bytes()).collect();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let image = standard_image(c);
        for (layer, tar) in image.layers.iter().zip(&tars) {
            assert_eq!(layer.media_type, c.media_type());
            assert_eq!(sha256_digest(&layer.blob), layer.digest);
            let raw = match c {
                Compression::None => layer.blob.clone(),
                Compression::Gzip => {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(layer.blob.as_slice())
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                }
                Compression::Zstd => zstd::decode_all(layer.blob.as_slice()).unwrap(),
            };
            assert_eq!(&raw, tar);
            assert_eq!(sha256_digest(&raw), layer.diff_id);
        }
    }
}

#[test]
fn standard_config_has_runtime_settings_and_is_deterministic() {
    let image = standard_image(Compression::Zstd);
    assert_eq!(image, standard_image(Compression::Zstd));
    assert_eq!(image.platform, ("linux".into(), "amd64".into(), None));
    let cfg = image.config_json();
    let c = &cfg["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/tool"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--flag", "value"]));
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert!(c["ExposedPorts"]["80/tcp"].is_object());
    assert!(c["Volumes"]["/data"].is_object());
    assert_eq!(c["Labels"]["com.example.fixture"], "standard");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello world")
    );
    let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(cfg["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(cfg["history"].as_array().unwrap().len(), 3);
    assert_eq!(sha256_digest(&image.config), image.config_digest);
    assert_eq!(sha256_digest(&image.manifest), image.manifest_digest);
}

#[test]
fn multiplatform_images_are_distinct_per_platform() {
    let mp = multiplatform(ManifestFormat::Oci);
    for (image, (os, arch, variant)) in mp.images.iter().zip(fixtures::PLATFORMS) {
        let seen = entries(&image.layers[0]);
        assert_eq!(
            find(&seen, "etc/platform").data,
            fixtures::platform_marker(os, arch, variant).into_bytes()
        );
        assert_eq!(image.config_json()["architecture"], arch);
    }
    assert_eq!(
        mp.image("arm", Some("v6")).unwrap().platform.2.as_deref(),
        Some("v6")
    );
    let docker = multiplatform(ManifestFormat::DockerV2);
    assert_eq!(
        docker.index.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
}
