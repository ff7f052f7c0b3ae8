//! Ready-made, deterministic fixture images shared by many tests: the three-layer
//! "standard" image that exercises every tar feature an unpacker must handle, and a
//! multi-platform index with an attestation manifest. The paths and contents they contain
//! are exported as constants so tests can assert on an unpacked root filesystem.

use std::sync::OnceLock;

use serde_json::json;

use crate::image::{Image, ImageBuilder, ImageIndex, ManifestFormat, build_index};
use crate::layer::{Compression, Layer, LayerBuilder, sha256_digest};

/// Path (> 100 bytes) of a file in layer 1 of the standard image; needs a GNU long name.
pub const LONG_PATH: &str = concat!(
    "long/",
    "directory-name-that-is-quite-long-0123456789-abcdefghijklmnopqrstuvwxyz/",
    "file-name-that-is-also-long-0123456789-abcdefghij.txt"
);
/// The parent directory of [`LONG_PATH`].
pub const LONG_DIR: &str =
    "long/directory-name-that-is-quite-long-0123456789-abcdefghijklmnopqrstuvwxyz";
/// Content of `etc/overwritten` after all layers (layer 2 replaced layer 1's).
pub const OVERWRITTEN_FINAL: &[u8] = b"from layer 2\n";
/// Size of `data/random-100k`.
pub const RANDOM_100K_LEN: usize = 100 * 1024;
/// Size of `data/big-3m`.
pub const BIG_3M_LEN: usize = 3 * 1024 * 1024;
/// The xattr set on `app/xattr-file`: key and value.
pub const XATTR: (&str, &[u8]) = ("user.test", b"hello");

/// `len` deterministic pseudo-random bytes (xorshift64*) from `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The standard image's three layers, bottom first, before compression.
///
/// Layer 1: `etc/` (0755) with `overwritten`, `to-delete` and `abs-link` → `/usr/bin/tool`;
/// `root/` (0700) with `secret` (0600); `tmp/` (1777); `usr/bin/tool` (0755),
/// `usr/bin/suid` (04755), `usr/bin/rel-link` → `tool`, `usr/bin/tool-hardlink` (hard link
/// to `usr/bin/tool`); `home/user/owned` (1000:1000); `data/empty` (0 bytes),
/// `data/one-byte`, `data/random-100k` (100 KiB, [`pseudo_random`] seed 1), `data/big-3m`
/// (3 MiB, seed 2); `dev/null` (char 1:3, 0666), `dev/fifo`; [`LONG_PATH`]; `opaque/old-a`,
/// `opaque/old-b`.
///
/// Layer 2: overwrites `etc/overwritten` ([`OVERWRITTEN_FINAL`]), whiteouts
/// `etc/to-delete`, makes `opaque/` opaque and adds `opaque/new`.
///
/// Layer 3: `app/hello.txt` and `app/xattr-file` with xattr [`XATTR`].
pub fn standard_layers() -> [LayerBuilder; 3] {
    let l1 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/overwritten", "from layer 1\n", 0o644)
        .file("etc/to-delete", "deleted by layer 2\n", 0o644)
        .symlink("etc/abs-link", "/usr/bin/tool")
        .dir("root", 0o700)
        .file("root/secret", "root only\n", 0o600)
        .dir("tmp", 0o1777)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
        .file("usr/bin/suid", "#!/bin/sh\necho suid\n", 0o4755)
        .symlink("usr/bin/rel-link", "tool")
        .hardlink("usr/bin/tool-hardlink", "usr/bin/tool")
        .dir("home", 0o755)
        .dir("home/user", 0o755)
        .file_owned("home/user/owned", "owned by 1000\n", 0o644, 1000, 1000)
        .dir("data", 0o755)
        .file("data/empty", Vec::new(), 0o644)
        .file("data/one-byte", "x", 0o644)
        .file("data/random-100k", pseudo_random(RANDOM_100K_LEN, 1), 0o644)
        .file("data/big-3m", pseudo_random(BIG_3M_LEN, 2), 0o644)
        .dir("dev", 0o755)
        .char_device("dev/null", 1, 3, 0o666)
        .fifo("dev/fifo", 0o644)
        .dir("long", 0o755)
        .dir(LONG_DIR, 0o755)
        .file(LONG_PATH, "deep\n", 0o644)
        .dir("opaque", 0o755)
        .file("opaque/old-a", "a\n", 0o644)
        .file("opaque/old-b", "b\n", 0o644);
    let l2 = LayerBuilder::new()
        .dir("etc", 0o755)
        .file("etc/overwritten", OVERWRITTEN_FINAL, 0o644)
        .whiteout("etc/to-delete")
        .dir("opaque", 0o755)
        .opaque("opaque")
        .file("opaque/new", "from layer 2\n", 0o644);
    let l3 = LayerBuilder::new()
        .dir("app", 0o755)
        .file("app/hello.txt", "hello from layer 3\n", 0o644)
        .file("app/xattr-file", "has an xattr\n", 0o644)
        .xattr("app/xattr-file", XATTR.0, XATTR.1);
    [l1, l2, l3]
}

/// The standard linux/amd64 image (see [`standard_layers`]) with every layer compressed
/// as `c`, OCI format, and a config setting env, cmd, entrypoint, working dir, user,
/// labels, exposed ports, a volume and the stop signal.
pub fn standard_image(c: Compression) -> Image {
    standard_image_with(c, ManifestFormat::Oci)
}

/// [`standard_image`] in the given manifest format.
pub fn standard_image_with(c: Compression, format: ManifestFormat) -> Image {
    let mut b = ImageBuilder::new("linux", "amd64")
        .format(format)
        .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("GREETING=hello world")
        .entrypoint(&["/usr/bin/tool"])
        .cmd(&["--flag", "value"])
        .working_dir("/app")
        .user("1000:1000")
        .label(
            "org.opencontainers.image.title",
            "msbimage standard fixture",
        )
        .label("com.example.fixture", "standard")
        .exposed_port("80/tcp")
        .exposed_port("53/udp")
        .volume("/data")
        .stop_signal("SIGTERM");
    for layer in standard_layer_blobs(c) {
        b = b.layer(layer);
    }
    b.build()
}

/// The standard layers built with `c`, computed once per process and cloned: the 3 MiB
/// layer takes about a second to gzip in a debug build.
fn standard_layer_blobs(c: Compression) -> Vec<Layer> {
    static NONE: OnceLock<Vec<Layer>> = OnceLock::new();
    static GZIP: OnceLock<Vec<Layer>> = OnceLock::new();
    static ZSTD: OnceLock<Vec<Layer>> = OnceLock::new();
    let cell = match c {
        Compression::None => &NONE,
        Compression::Gzip => &GZIP,
        Compression::Zstd => &ZSTD,
    };
    cell.get_or_init(|| standard_layers().iter().map(|l| l.build(c)).collect())
        .clone()
}

/// The platforms of [`multiplatform`], in index order: (os, arch, variant).
pub const PLATFORMS: [(&str, &str, Option<&str>); 4] = [
    ("linux", "amd64", None),
    ("linux", "arm64", Some("v8")),
    ("linux", "arm", Some("v7")),
    ("linux", "arm", Some("v6")),
];

/// A multi-platform image set: per-platform images, an attestation manifest, and the
/// index over them all.
#[derive(Debug, Clone)]
pub struct MultiPlatform {
    /// One small image per entry of [`PLATFORMS`], same order. Each has one gzip layer
    /// with `etc/platform` containing e.g. `linux/arm/v7\n`.
    pub images: Vec<Image>,
    /// A buildkit-style attestation manifest for the amd64 image.
    pub attestation: Image,
    /// The index: the platform images, then the attestation entry (platform
    /// unknown/unknown, `vnd.docker.reference.type: attestation-manifest`).
    pub index: ImageIndex,
}

impl MultiPlatform {
    /// Every manifest the index refers to (pass to [`crate::Pusher::push_index`]).
    pub fn all_images(&self) -> Vec<&Image> {
        self.images.iter().chain([&self.attestation]).collect()
    }

    /// The image for `arch` and `variant`.
    pub fn image(&self, arch: &str, variant: Option<&str>) -> Option<&Image> {
        self.images
            .iter()
            .find(|i| i.platform.1 == arch && i.platform.2.as_deref() == variant)
    }
}

/// The text in `etc/platform` of the image for this platform.
pub fn platform_marker(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{arch}/{v}\n"),
        None => format!("{os}/{arch}\n"),
    }
}

/// Builds the multi-platform fixture; the index (and image manifests) use `format`.
pub fn multiplatform(format: ManifestFormat) -> MultiPlatform {
    let images: Vec<Image> = PLATFORMS
        .iter()
        .map(|(os, arch, variant)| {
            let layer = LayerBuilder::new()
                .dir("etc", 0o755)
                .file("etc/platform", platform_marker(os, arch, *variant), 0o644)
                .build(Compression::Gzip);
            let mut b = ImageBuilder::new(os, arch)
                .format(format)
                .layer(layer)
                .cmd(&["/bin/sh"]);
            if let Some(v) = variant {
                b = b.variant(v);
            }
            b.build()
        })
        .collect();
    let subject = &images[0];
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{
            "name": "pkg:docker/fixtures/multi@latest?platform=linux%2Famd64",
            "digest": {"sha256": subject.manifest_digest.trim_start_matches("sha256:")},
        }],
        "predicate": {"spdxVersion": "SPDX-2.3", "name": "msbimage-testkit"},
    });
    let statement = serde_json::to_vec(&statement).expect("JSON");
    let digest = sha256_digest(&statement);
    let intoto = Layer {
        tar: statement.clone(),
        blob: statement,
        media_type: "application/vnd.in-toto+json".to_string(),
        diff_id: digest.clone(),
        digest,
    };
    let attestation = ImageBuilder::new("unknown", "unknown")
        .layer(intoto)
        .build();
    let mut entry = attestation.index_entry();
    entry["annotations"] = json!({
        "vnd.docker.reference.digest": subject.manifest_digest,
        "vnd.docker.reference.type": "attestation-manifest",
    });
    let refs: Vec<&Image> = images.iter().collect();
    let index = build_index(&refs, format, vec![entry]);
    MultiPlatform {
        images,
        attestation,
        index,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_path_is_long() {
        assert!(LONG_PATH.len() > 100);
        assert!(LONG_PATH.starts_with(LONG_DIR));
    }

    #[test]
    fn multiplatform_index_lists_platforms_then_attestation() {
        let mp = multiplatform(ManifestFormat::Oci);
        let index: serde_json::Value = serde_json::from_slice(&mp.index.bytes).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[1]["platform"]["variant"], "v8");
        assert_eq!(entries[4]["platform"]["os"], "unknown");
        assert_eq!(
            entries[4]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(entries[4]["digest"], mp.attestation.manifest_digest);
    }
}
